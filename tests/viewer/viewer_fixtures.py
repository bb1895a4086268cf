"""Tiny result folders for the viewer tests: a red sphere of splats (.ply and .splat), a green cube
mesh (with and without a material), a blue point cloud, a three-frame time sequence (red, green,
blue frames), views, and broken assets.

Splats and meshes are written by the library's own exporters (gen3d.recon.splat_io,
gen3d.geometry.mesh_io), so the viewer is tested on exactly what the pipelines write; point clouds
(x y z + uchar red green blue) with plyfile.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

RED, GREEN, BLUE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


def sphere_points(n: int, radius: float = 0.5, seed: int = 0) -> np.ndarray:
    """``n`` points on a sphere (Fibonacci lattice: even coverage, deterministic)."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = math.pi * (1 + 5**0.5) * i
    return radius * np.stack([np.cos(theta) * np.sin(phi), np.cos(phi), np.sin(theta) * np.sin(phi)], 1)


def sphere_gaussians(xyz: np.ndarray, rgb, scale: float = 0.04, opacity: float = 0.95):
    import torch

    from gen3d.recon.gaussians import Gaussians

    pts = torch.as_tensor(xyz, dtype=torch.float32)
    colours = torch.tensor(rgb, dtype=torch.float32).expand(len(pts), 3)
    return Gaussians.from_points(pts, colours, sh_degree=0, scale=scale, opacity=opacity)


def write_splats_ply(path: Path, xyz: np.ndarray, rgb, scale: float = 0.04, opacity: float = 0.95) -> None:
    """INRIA 3DGS .ply via the library's exporter."""
    from gen3d.recon.splat_io import save_splat_ply

    path.parent.mkdir(parents=True, exist_ok=True)
    save_splat_ply(sphere_gaussians(xyz, rgb, scale, opacity), path)


def write_splats_splat(path: Path, xyz: np.ndarray, rgb, scale: float = 0.04, opacity: float = 0.95) -> None:
    """32-byte-per-splat .splat via the library's exporter."""
    from gen3d.recon.splat_io import save_splat

    path.parent.mkdir(parents=True, exist_ok=True)
    save_splat(sphere_gaussians(xyz, rgb, scale, opacity), path)


def write_points_ply(path: Path, xyz: np.ndarray, rgb) -> None:
    from plyfile import PlyData, PlyElement

    v = np.zeros(
        len(xyz),
        dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")],
    )
    v["x"], v["y"], v["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    c = np.round(np.asarray(rgb) * 255).astype(np.uint8)
    v["red"], v["green"], v["blue"] = c
    path.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(v, "vertex")]).write(str(path))


def write_mesh_glb(path: Path, rgb, size: float = 0.8, material: bool = True) -> None:
    """A vertex-coloured cube. ``material``: the library's exporter (PBR metallic 0, roughness 1);
    otherwise trimesh's own export, which writes no material (glTF's default is metallic 1)."""
    import trimesh

    m = trimesh.creation.box(extents=(size, size, size))
    colours = np.tile([*(np.array(rgb) * 255), 255], (len(m.vertices), 1)).astype(np.uint8)
    m.visual = trimesh.visual.ColorVisuals(m, vertex_colors=colours)
    path.parent.mkdir(parents=True, exist_ok=True)
    if material:
        from gen3d.geometry.mesh_io import export_mesh

        export_mesh(m, path)
    else:
        m.export(str(path))


def write_views(d: Path, colours, res: int = 32) -> None:
    """Flat-colour images + transforms.json (OpenGL camera-to-world on a ring) + views.png."""
    from PIL import Image

    (d / "views" / "images").mkdir(parents=True, exist_ok=True)
    frames = []
    for i, c in enumerate(colours):
        name = f"images/{i:03d}.png"
        Image.new("RGB", (res, res), tuple(int(255 * x) for x in c)).save(d / "views" / name)
        a = 2 * math.pi * i / len(colours)
        eye = np.array([2.6 * math.sin(a), 0.8, 2.6 * math.cos(a)])
        z = eye / np.linalg.norm(eye)  # camera looks along -z toward the origin
        x = np.cross([0, 1, 0], z)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        c2w = np.eye(4)
        c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
        frames.append({"file_path": name, "transform_matrix": c2w.tolist()})
    tf = {
        "fl_x": res * 1.2,
        "fl_y": res * 1.2,
        "cx": res / 2,
        "cy": res / 2,
        "w": res,
        "h": res,
        "frames": frames,
    }
    (d / "views" / "transforms.json").write_text(json.dumps(tf))
    sheet = Image.new("RGB", (res * len(colours), res))
    for i, c in enumerate(colours):
        sheet.paste(Image.new("RGB", (res, res), tuple(int(255 * x) for x in c)), (i * res, 0))
    sheet.save(d / "views.png")


def write_result_json(d: Path, prompt: str, seed: int = 0, **extra) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.yaml").write_text(f"seed: {seed}\nbackend: gaussians\ngaussians:\n  iterations: 300\n")
    result = {
        "kind": "reconstruct",
        "request": {"prompt": prompt},
        "backend": "gaussians",
        "seed": seed,
        "device": "cpu",
        "config": {"seed": seed, "backend": "gaussians", "gaussians": {"iterations": 300}},
        "timings": {"load": 0.12, "fit": 3.5, "mesh": 0.8, "export": 0.2, "total": 4.62},
        "metrics": {"train_psnr": 31.25, "train_ssim": 0.962, "iterations": 300},
        "versions": {"gen3d": "0.1.0"},
        "files": [],
        "meta": {},
        **extra,
    }
    (d / "result.json").write_text(json.dumps(result, indent=1))


def make_results(root: Path) -> dict[str, Path]:
    """Write every fixture result under ``root``; returns name -> folder."""
    out = {}

    d = out["red_sphere"] = root / "red_sphere"
    write_result_json(d, "a red sphere", seed=1)
    write_splats_ply(d / "splats.ply", sphere_points(1500), RED)

    d = out["red_splat_file"] = root / "red_splat_file"
    write_result_json(d, "a red sphere as .splat", seed=1)
    write_splats_splat(d / "splats.splat", sphere_points(1500), RED)

    d = out["green_cube"] = root / "green_cube"
    write_result_json(d, "a green cube", seed=2)
    write_mesh_glb(d / "mesh.glb", GREEN)

    d = out["green_cube_no_material"] = root / "green_cube_no_material"
    write_result_json(d, "a green cube without a material", seed=2)
    write_mesh_glb(d / "mesh.glb", GREEN, material=False)

    d = out["blue_points"] = root / "blue_points"
    write_result_json(d, "a blue point cloud", seed=3)
    write_points_ply(d / "points.ply", sphere_points(3000), BLUE)

    # Everything at once: splats red, mesh green, points blue, views.
    d = out["all_kinds"] = root / "all_kinds"
    write_result_json(d, "one of each", seed=4)
    write_splats_ply(d / "splats.ply", sphere_points(1500), RED)
    write_mesh_glb(d / "mesh.glb", GREEN)
    write_points_ply(d / "points.ply", sphere_points(3000), BLUE)
    write_views(d, [RED, GREEN, BLUE, (1.0, 1.0, 0.0)])

    # A time sequence: three frames of points and of splats, red -> green -> blue, moving along x.
    d = out["sequence"] = root / "sequence"
    write_result_json(d, "a ball changing colour", seed=5, kind="generate4d")
    frames = []
    for i, c in enumerate([RED, GREEN, BLUE]):
        write_points_ply(d / "frames" / f"{i:04d}" / "points.ply", sphere_points(2000) + [0.1 * i, 0, 0], c)
        write_splats_ply(d / "frames" / f"{i:04d}" / "splats.ply", sphere_points(800) + [0.1 * i, 0, 0], c)
        frames.append({"path": f"{i:04d}", "time": i / 4})
    (d / "frames" / "index.json").write_text(json.dumps({"kind": "sequence", "fps": 4, "frames": frames}))

    # Broken assets: a corrupt mesh, splats that are not a splat file.
    d = out["broken"] = root / "broken"
    write_result_json(d, "a broken result", seed=6)
    (d / "mesh.glb").write_bytes(b"this is not a glb file")
    (d / "splats.ply").write_bytes(b"ply\nformat nonsense\n")
    return out
