"""Write the viewer's figures in docs/figures/: viewer_gallery.png, viewer_splat.png, viewer_mesh.png,
viewer_points.png and viewer_timeline.png.

Demo results are built from the procedural world (gen3d.data.world): each object's coloured mesh
(written by gen3d.geometry.mesh_io), Gaussians and points sampled on its surface (colours with a
little baked shading, since splats and points carry no lighting of their own), rendered views, and
for the timeline a chest opening its lid over 8 frames. They are shown in the viewer in headless
Chromium (the browser tests' flags) and captured.

Run from the repository root:  python tests/viewer/make_doc_figures.py [--out docs/figures] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[2]
LIGHT = np.array([0.4, 0.8, 0.6]) / np.linalg.norm([0.4, 0.8, 0.6])

DEMOS = [
    # folder, prompt, class, slot colours, seed
    (
        "mushroom",
        "a red mushroom with white spots",
        "mushroom",
        {"cap": "red", "stem": "white", "spots": "white"},
        7,
    ),
    (
        "house",
        "a yellow house with a brown roof",
        "house",
        {"walls": "yellow", "roof": "brown", "door": "blue", "windows": "cyan"},
        11,
    ),
    (
        "rocket",
        "a white rocket with red fins",
        "rocket",
        {"body": "white", "nose": "red", "fins": "red", "window": "blue"},
        3,
    ),
    (
        "snowman",
        "a snowman with a black hat",
        "snowman",
        {"body": "white", "hat": "black", "nose": "orange", "eyes": "black"},
        5,
    ),
]


def shaded(colours: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Two-sided Lambert + ambient: enough shading for a surface's form to read."""
    return np.clip(colours * (0.55 + 0.5 * np.abs(normals @ LIGHT))[:, None], 0, 1)


def surface_samples(mesh, n: int, seed: int):
    import trimesh

    from gen3d.recon.preview import mesh_face_colors

    pts, face = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(pts), shaded(mesh_face_colors(mesh)[face], mesh.face_normals[face])


def write_points(path: Path, pts: np.ndarray, rgb: np.ndarray) -> None:
    from plyfile import PlyData, PlyElement

    v = np.zeros(
        len(pts),
        dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")],
    )
    v["x"], v["y"], v["z"] = pts.T
    v["red"], v["green"], v["blue"] = np.round(rgb * 255).astype(np.uint8).T
    PlyData([PlyElement.describe(v, "vertex")]).write(str(path))


def write_views(d: Path, obj, n: int = 8, res: int = 128) -> None:
    from PIL import Image

    from gen3d.cameras import orbit_cameras, to_opengl_c2w
    from gen3d.data.render import render_object
    from gen3d.recon.preview import views_contact_sheet

    cams = orbit_cameras(20.0, [i * 360.0 / n for i in range(n)], 2.6, 40.0, res)
    rgb = render_object(obj, cams).rgb
    (d / "views" / "images").mkdir(parents=True, exist_ok=True)
    c2w = to_opengl_c2w(cams).numpy()
    frames = []
    for i, im in enumerate(rgb):
        Image.fromarray(np.round(im * 255).astype(np.uint8)).save(d / "views" / "images" / f"{i:03d}.png")
        frames.append({"file_path": f"images/{i:03d}.png", "transform_matrix": c2w[i].tolist()})
    K = cams.K[0].numpy()
    tf = {
        "fl_x": float(K[0, 0]),
        "fl_y": float(K[1, 1]),
        "cx": float(K[0, 2]),
        "cy": float(K[1, 2]),
        "w": res,
        "h": res,
        "frames": frames,
    }
    (d / "views" / "transforms.json").write_text(json.dumps(tf, indent=1))
    views_contact_sheet(rgb, d / "views.png", cols=4)


def write_result(d: Path, prompt: str, seed: int, timings: dict, metrics: dict, kind: str = "demo") -> None:
    cfg = {"seed": seed, "backend": "gaussians", "gaussians": {"iterations": 2000, "sh_degree": 0}}
    (d / "config.yaml").write_text(
        f"seed: {seed}\nbackend: gaussians\ngaussians:\n  iterations: 2000\n  sh_degree: 0\n"
    )
    result = {
        "kind": kind,
        "request": {"prompt": prompt},
        "backend": "gaussians",
        "seed": seed,
        "device": "cpu",
        "config": cfg,
        "timings": {**timings, "total": round(sum(timings.values()), 2)},
        "metrics": metrics,
        "versions": {"gen3d": "0.1.0"},
        "files": [],
        "meta": {},
    }
    (d / "result.json").write_text(json.dumps(result, indent=1))


def make_demo_results(root: Path) -> None:
    import torch

    from gen3d.data.world import ObjectSpec, build_object, canonical_spec, pose_object
    from gen3d.geometry.mesh_io import export_mesh
    from gen3d.recon.gaussians import Gaussians
    from gen3d.recon.splat_io import save_splat_ply

    rng = np.random.default_rng(0)
    for name, prompt, cls, colours, seed in DEMOS:
        d = root / name
        d.mkdir(parents=True)
        base = canonical_spec(cls)
        obj = build_object(ObjectSpec(base.cls, base.params, colours, 1.0, None))
        mesh = obj.to_trimesh()
        export_mesh(mesh, d / "mesh.glb")
        pts, rgb = surface_samples(mesh, 40000, seed)
        g = Gaussians.from_points(
            torch.tensor(pts, dtype=torch.float32),
            torch.tensor(rgb, dtype=torch.float32),
            scale=0.007,
            opacity=0.9,
        )
        save_splat_ply(g, d / "splats.ply")
        pts, rgb = surface_samples(mesh, 12000, seed + 1)
        write_points(d / "points.ply", pts, rgb)
        write_views(d, obj)
        t = {"load": 0.4, "fit": float(rng.uniform(40, 90)), "mesh": float(rng.uniform(3, 8)), "export": 1.2}
        m = {
            "train_psnr": float(rng.uniform(28, 34)),
            "train_ssim": float(rng.uniform(0.93, 0.98)),
            "iterations": 2000,
        }
        write_result(
            d, prompt, seed, {k: round(v, 2) for k, v in t.items()}, {k: round(v, 4) for k, v in m.items()}
        )

    # A 4D result: a chest opening its lid, one mesh per frame.
    d = root / "chest_opening"
    base = canonical_spec("chest")
    obj = build_object(
        ObjectSpec(base.cls, base.params, {"body": "brown", "lid": "orange", "trim": "yellow"}, 1.0, "open")
    )
    frames = []
    for i, t in enumerate(np.linspace(0, 1, 8)):
        (d / "frames" / f"{i:04d}").mkdir(parents=True)
        export_mesh(pose_object(obj, float(t)).to_trimesh(), d / "frames" / f"{i:04d}" / "mesh.glb")
        frames.append({"path": f"{i:04d}", "time": round(float(t) * 2, 3)})
    (d / "frames" / "index.json").write_text(
        json.dumps({"kind": "sequence", "fps": 4, "frames": frames}, indent=1)
    )
    write_views(d, obj)
    write_result(
        d,
        "a wooden chest opening its lid",
        21,
        {"load": 0.5, "fit": 212.0, "mesh": 24.0, "export": 3.1},
        {"train_psnr": 29.8, "iterations": 4000},
        kind="generate4d",
    )


def capture(root: Path, out: Path) -> None:
    from gen3d.viewer.server import ViewerServer
    from playwright.sync_api import sync_playwright
    from viewer_browser import CHROMIUM_FLAGS

    shots = [
        ("viewer_gallery.png", "#/"),
        ("viewer_splat.png", "#/r/mushroom?mode=splats"),
        ("viewer_mesh.png", "#/r/mushroom?mode=mesh"),
        ("viewer_points.png", "#/r/mushroom?mode=points"),
        ("viewer_timeline.png", "#/r/chest_opening?mode=mesh&frame=5"),
    ]
    out.mkdir(parents=True, exist_ok=True)
    with ViewerServer(root) as srv, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        ctx = browser.new_context(viewport={"width": 1100, "height": 640})
        page = ctx.new_page()
        for name, hash_ in shots:
            page.goto("about:blank")
            page.goto(srv.url + hash_)
            page.wait_for_function("window.__ready === true", timeout=120_000)
            if name == "viewer_gallery.png":
                page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
            page.screenshot(path=str(out / name))
            print("wrote", out / name)
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "figures")
    ap.add_argument(
        "--keep", type=Path, help="write the demo results here (and keep them) instead of a temp folder"
    )
    args = ap.parse_args()
    tmp = None if args.keep else Path(tempfile.mkdtemp(prefix="gen3d_viewer_demo_"))
    root = args.keep or tmp / "results"  # the gallery shows the folder's name: keep it stable
    if args.keep and args.keep.exists():
        shutil.rmtree(args.keep)
    make_demo_results(root)
    try:
        capture(root, args.out)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
