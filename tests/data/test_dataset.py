from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion

from gen3d.cli import main
from gen3d.data.dataset import load_views, read_index
from gen3d.errors import DataError


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "set"
    assert main(["data", "render", "--out", str(out), "--n", "4", "--views", "4", "--res", "128", "--quiet"]) == 0
    return out


def silhouette(mesh: trimesh.Trimesh, cams, v: int) -> np.ndarray:
    """Pixel centres inside any projected triangle: an independent check of cameras vs masks."""
    uv, z = cams[v].project(torch.from_numpy(np.asarray(mesh.vertices, np.float64)).float())
    uv = uv[0].double().numpy()
    out = np.zeros((cams.height, cams.width), bool)
    for tri in uv[mesh.faces]:
        lo = np.maximum(np.floor(tri.min(0) - 0.5).astype(int), 0)
        hi = np.minimum(np.ceil(tri.max(0) + 0.5).astype(int), [cams.width, cams.height])
        if (hi <= lo).any():
            continue
        xs, ys = np.meshgrid(np.arange(lo[0], hi[0]) + 0.5, np.arange(lo[1], hi[1]) + 0.5)
        (x0, y0), (x1, y1), (x2, y2) = tri
        den = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
        if abs(den) < 1e-12:
            continue
        a = ((y1 - y2) * (xs - x2) + (x2 - x1) * (ys - y2)) / den
        b = ((y2 - y0) * (xs - x2) + (x0 - x2) * (ys - y2)) / den
        inside = (a >= 0) & (b >= 0) & (a + b <= 1)
        out[lo[1] : hi[1], lo[0] : hi[0]] |= inside
    return out


def test_layout_and_index(rendered: Path):
    idx = read_index(rendered)
    assert len(idx["objects"]) == 4 and idx["config"]["n"] == 4
    for entry in idx["objects"]:
        d = rendered / entry["path"]
        for sub in ("images", "masks", "depth", "normals"):
            assert len(list((d / sub).glob("*.png"))) == 4, sub
        tf = json.loads((d / "transforms.json").read_text())
        assert tf["gen3d"]["spec"] == entry["spec"] and tf["gen3d"]["captions"] == entry["captions"]
        assert (d / "mesh.ply").is_file()
    assert (rendered / "config.yaml").is_file()


def test_cameras_reproject_mesh_silhouettes_onto_masks(rendered: Path):
    for entry in read_index(rendered)["objects"]:
        d = rendered / entry["path"]
        vs = load_views(d)
        mesh = trimesh.load(d / "mesh.ply", process=False)
        for v in range(len(vs)):
            sil = silhouette(mesh, vs.cameras, v)
            mask = vs.masks[v].numpy() > 0.5
            iou = (sil & mask).sum() / (sil | mask).sum()
            assert iou > 0.9, (entry["path"], v, iou)
            # Away from a 1-pixel band around the silhouette's edge the two agree exactly (the
            # mask is 2x2-supersampled coverage > 0.5, the silhouette a pixel-centre test).
            band = binary_dilation(sil) & ~binary_erosion(sil)
            wrong = (sil ^ mask) & ~band
            assert wrong.sum() == 0, (entry["path"], v, int(wrong.sum()))


def test_depth_backprojects_onto_the_mesh(rendered: Path):
    from scipy.spatial import cKDTree

    d = rendered / read_index(rendered)["objects"][0]["path"]
    vs = load_views(d)
    mesh = trimesh.load(d / "mesh.ply", process=False)
    pts, _ = trimesh.sample.sample_surface(mesh, 200_000, seed=0)
    tree = cKDTree(pts)
    o, dirs = vs.cameras.rays()
    # Camera z -> distance along the unit ray: t = z / cos(angle to the optical axis).
    fwd = vs.cameras.c2w[:, :3, 2][:, None, None, :]
    t = vs.depths / (dirs * fwd).sum(-1)
    inside = (vs.masks > 0.999) & (vs.depths > 0)
    p = (o + t[..., None] * dirs)[inside].numpy()
    dist, _ = tree.query(p)
    assert np.percentile(dist, 95) < 0.01  # 1% of the object size (depth PNG quantum is 1e-4)


def test_images_show_the_captioned_colour(rendered: Path):
    from gen3d.data.colors import COLOR_BY_NAME

    for entry in read_index(rendered)["objects"]:
        vs = load_views(rendered / entry["path"])
        spec = entry["spec"]
        primary = spec["colors"][next(iter(spec["colors"]))]
        fg = vs.masks > 0.99
        px = vs.images[fg].numpy()
        albedo = np.array(COLOR_BY_NAME[primary].rgb)
        # The median shaded pixel is closer to a scaled primary albedo than to any other named colour.
        med = np.median(px, axis=0)
        assert np.linalg.norm(med - albedo) < 0.35, (primary, med)


def test_motion_dataset_has_times(tmp_path: Path):
    out = tmp_path / "m"
    assert main(["data", "render", "--out", str(out), "--n", "2", "--views", "2", "--res", "32", "--motion",
                 "--frames", "3", "--quiet"]) == 0
    vs = load_views(out / "obj_00000")
    assert len(vs) == 6
    torch.testing.assert_close(vs.times, torch.tensor([0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3]))
    assert vs.meta["spec"]["motion"] is not None


def test_resume_skips_finished_objects_and_refuses_other_configs(tmp_path: Path):
    out = tmp_path / "r"
    args = ["data", "render", "--out", str(out), "--n", "3", "--views", "2", "--res", "32", "--quiet"]
    assert main(args) == 0
    keep = (out / "obj_00000" / "transforms.json").stat().st_mtime_ns
    import shutil

    shutil.rmtree(out / "obj_00002")  # as if interrupted before the last object
    assert main(args) == 0
    assert (out / "obj_00000" / "transforms.json").stat().st_mtime_ns == keep
    assert (out / "obj_00002" / "transforms.json").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary folders left behind"
    # More objects with the same config extends the set; a different config is refused.
    assert main(args[:-1] + ["--n", "4", "--quiet"]) == 0
    assert len(read_index(out)["objects"]) == 4
    assert main(["data", "render", "--out", str(out), "--n", "3", "--views", "2", "--res", "64", "--quiet"]) == 2


def test_missing_and_corrupt_files_are_clear_errors(tmp_path: Path, rendered: Path):
    with pytest.raises(DataError, match="no transforms.json"):
        load_views(tmp_path)
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(rendered / "obj_00000", d)
    (d / "images" / "v001.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="v001.png"):
        load_views(d)
    os.remove(d / "images" / "v001.png")
    with pytest.raises(DataError, match="not found: images/v001.png"):
        load_views(d)
    (d / "transforms.json").write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        load_views(d)


def test_reads_instant_ngp_style_sets(tmp_path: Path, rendered: Path):
    """A Blender/instant-ngp set: camera_angle_x, 3x4-free 4x4 matrices, paths without extension, RGBA."""
    src = load_views(rendered / "obj_00000")
    tf = json.loads((rendered / "obj_00000" / "transforms.json").read_text())
    (tmp_path / "train").mkdir()
    frames = []
    for i, fr in enumerate(tf["frames"]):
        rgb = np.asarray(Image.open(rendered / "obj_00000" / fr["file_path"]))
        a = np.asarray(Image.open(rendered / "obj_00000" / fr["mask_path"]))
        Image.fromarray(np.dstack([rgb, a])).save(tmp_path / "train" / f"r_{i}.png")
        frames.append({"file_path": f"./train/r_{i}", "transform_matrix": fr["transform_matrix"]})
    fov_x = 2 * np.arctan(tf["w"] / (2 * tf["fl_x"]))
    (tmp_path / "transforms.json").write_text(json.dumps({"camera_angle_x": fov_x, "frames": frames}))
    vs = load_views(tmp_path)
    torch.testing.assert_close(vs.cameras.w2c, src.cameras.w2c, atol=1e-5, rtol=0)
    torch.testing.assert_close(vs.cameras.K, src.cameras.K, atol=1e-3, rtol=0)
    torch.testing.assert_close(vs.masks, src.masks, atol=1 / 255, rtol=0)


def test_a_rendered_object_loads_in_nerfstudio(rendered: Path):
    """The folder is a valid nerfstudio dataset: its parser reads our cameras, masks and depth."""
    pytest.importorskip("nerfstudio")
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    d = rendered / "obj_00000"
    parser = NerfstudioDataParserConfig(
        data=d, load_3D_points=False, orientation_method="none", center_method="none", auto_scale_poses=False,
        train_split_fraction=1.0,
    ).setup()
    out = parser.get_dataparser_outputs("train")
    ours = load_views(d)
    assert len(out.image_filenames) == len(ours)
    assert out.mask_filenames is not None and len(out.metadata["depth_filenames"]) == len(ours)
    # With no re-orientation or re-scaling, nerfstudio's camera-to-world is exactly our OpenGL one.
    from gen3d.cameras import to_opengl_c2w

    torch.testing.assert_close(out.cameras.camera_to_worlds, to_opengl_c2w(ours.cameras)[:, :3, :], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.cameras.fx[:, 0], ours.cameras.K[:, 0, 0], atol=1e-4, rtol=0)
