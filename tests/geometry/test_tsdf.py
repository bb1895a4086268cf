"""Mesh extraction: TSDF fusion against ground-truth procedural objects (geometry, colour, floaters,
masks, bounds), and marching cubes on grids and on Gaussian densities."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
from importlib.util import find_spec

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from gen3d.cameras import Cameras, orbit_cameras
from gen3d.data.render import MeshRenderer, RenderConfig
from gen3d.data.world import CLASS_BY_NAME, ObjectSpec, build_object, canonical_spec
from gen3d.geometry.cleanup import decimate, remove_small_components, vertex_colors_of
from gen3d.geometry.marching import (
    covariances,
    gaussians_to_density_grid,
    gaussians_to_mesh,
    grid_points,
    marching_cubes_grid,
)
from gen3d.geometry.metrics import mesh_metrics
from gen3d.geometry.tsdf import MeshExtractConfig, tsdf_fusion
from gen3d.recon.gaussians import Gaussians, rgb_to_sh_dc

FLAT = RenderConfig(ambient=1.0, key=0.0, head=0.0, supersample=1)  # unshaded: pixel = albedo
COARSE = MeshExtractConfig(resolution=128)  # for tests about something other than accuracy: faster


def fibonacci_cameras(n: int, res: int = 128) -> Cameras:
    """``n`` cameras spread evenly over the whole sphere (so undersides are seen too)."""
    i = np.arange(n) + 0.5
    el = np.degrees(np.arcsin(1 - 2 * i / n))
    az = np.degrees(np.pi * (1 + 5**0.5) * i) % 360
    return orbit_cameras(el.tolist(), az.tolist(), 2.2, 40.0, res)


def cube_corner_cameras(res: int = 128) -> Cameras:
    """8 views from the directions of a cube's corners: the sparse layout reconstruction uses."""
    el = [35.26, -35.26] * 4
    az = [45, 135, 225, 315, 135, 225, 315, 45]
    return orbit_cameras(el, az, 2.2, 40.0, res)


@functools.cache
def scene(cls: str, colors: tuple[tuple[str, str], ...] = (), views: str = "fib20"):
    spec = canonical_spec(cls, "red")
    if colors:
        spec = ObjectSpec(cls, dict(CLASS_BY_NAME[cls].canonical_params), dict(colors), 1.0, None)
    obj = build_object(spec)
    cams = fibonacci_cameras(20) if views == "fib20" else cube_corner_cameras()
    out = MeshRenderer.from_object(obj, FLAT).render(cams)
    return obj, cams, out


def color_error(mesh: trimesh.Trimesh, gt: trimesh.Trimesh, face_colors: np.ndarray) -> np.ndarray:
    """Per-vertex |colour - colour of the nearest ground-truth surface point| (mean over RGB, in [0, 1])."""
    pts, fid = trimesh.sample.sample_surface(gt, 200_000, seed=0)
    _, idx = cKDTree(pts).query(mesh.vertices)
    got = vertex_colors_of(mesh)[:, :3] / 255.0
    return np.abs(got - face_colors[fid[idx]]).mean(axis=1)


ENGINES = ["open3d", "torch"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("cls", ["chair", "sphere"])
def test_fusion_matches_ground_truth(cls, engine):
    obj, cams, out = scene(cls)
    mesh = tsdf_fusion(out.depth, out.rgb, cams, cfg=MeshExtractConfig(engine=engine))
    m = mesh_metrics(mesh, obj.to_trimesh(), n_points=20_000)
    assert m.fscore >= 0.95, m
    assert m.precision >= 0.99, m


def test_engines_agree():
    """The dense torch engine fuses what open3d's block grid fuses: same surface, same colours, no
    extra shells (a closed sphere comes out as one watertight component with the true volume)."""
    obj, cams, out = scene("sphere")
    a = tsdf_fusion(out.depth, out.rgb, cams, cfg=dataclasses.replace(COARSE, engine="open3d"))
    b = tsdf_fusion(out.depth, out.rgb, cams, cfg=dataclasses.replace(COARSE, engine="torch"))
    assert abs(len(b.faces) / len(a.faces) - 1) < 0.02
    d, _ = cKDTree(a.vertices).query(b.vertices)
    vox = obj.to_trimesh().extents.max() * 3**0.5 / 128
    assert np.median(d) < 0.01 * vox and d.max() < vox  # most vertices coincide; none is a voxel off
    assert b.is_watertight and len(trimesh.graph.connected_components(b.face_adjacency)) == 1
    assert b.volume == pytest.approx(obj.to_trimesh().volume, rel=0.01)
    assert np.abs(vertex_colors_of(b).astype(int).mean(0) - vertex_colors_of(a).mean(0)).max() < 1


def test_skimage_masks_a_cube_at_its_last_corner():
    """The torch engine relies on this: mask[i, j, k] switches the cube spanning [i-1, i] x [j-1, j] x [k-1, k]."""
    from skimage.measure import marching_cubes

    v = np.ones((6, 6, 6), np.float32)
    v[2, 2, 2] = -1.0
    m = np.zeros_like(v, bool)
    m[2, 2, 2] = True  # the cube from (1, 1, 1) to (2, 2, 2): one corner inside, one triangle
    assert len(marching_cubes(v, 0.0, mask=m)[1]) == 1
    m[:] = False
    m[1, 1, 1] = True  # the cube from (0, 0, 0) to (1, 1, 1): all outside
    with pytest.raises(RuntimeError):
        marching_cubes(v, 0.0, mask=m)


def test_engine_choice_and_errors(monkeypatch):
    from gen3d.geometry import tsdf

    with pytest.raises(ValueError, match="engine must be one of"):
        MeshExtractConfig(engine="cuda")
    assert tsdf.resolve_engine("torch") == "torch"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "open3d" else find_spec(name, *a))
    assert tsdf.resolve_engine("auto") == "torch"  # no open3d installed: the torch engine
    _, cams, out = scene("sphere")
    monkeypatch.setattr(tsdf, "MAX_DENSE_VOXELS", 1000)
    with pytest.raises(ValueError, match="larger voxel_size"):
        tsdf_fusion(out.depth, out.rgb, cams, cfg=MeshExtractConfig(engine="torch"))


@pytest.mark.parametrize("engine", ENGINES)
def test_fusion_from_eight_views_meets_the_reconstruction_target(engine):
    obj, cams, out = scene("chair", views="corners8")
    mesh = tsdf_fusion(out.depth, out.rgb, cams, cfg=MeshExtractConfig(engine=engine))
    assert mesh_metrics(mesh, obj.to_trimesh(), n_points=20_000).fscore >= 0.9


@pytest.mark.parametrize("engine", ENGINES)
def test_vertex_colours_match_the_part_colours(engine):
    colors = (("seat", "red"), ("legs", "blue"), ("back", "green"))
    obj, cams, out = scene("chair", colors)
    mesh = tsdf_fusion(out.depth, out.rgb, cams, cfg=dataclasses.replace(COARSE, engine=engine))
    _, _, face_rgb = obj.arrays()
    err = color_error(mesh, obj.to_trimesh(), face_rgb)
    assert err.mean() < 0.03, err.mean()
    assert np.median(err) < 0.01
    # All three part colours appear (no grey average over the whole object).
    vc = vertex_colors_of(mesh)[:, :3].astype(float)
    for name in ("red", "blue", "green"):
        from gen3d.data.colors import COLOR_BY_NAME

        target = np.asarray(COLOR_BY_NAME[name].rgb) * 255
        assert (np.abs(vc - target).max(axis=1) < 8).mean() > 0.05, name


@pytest.mark.parametrize("engine", ENGINES)
def test_floater_in_one_view_is_removed(engine):
    obj, cams, out = scene("chair")
    gt = obj.to_trimesh()
    depth = out.depth.copy()
    depth[3, 4:28, 4:28] = 1.2  # a stray blob 1 unit in front of camera 3, where it sees background
    assert out.alpha[3, 4:28, 4:28].max() == 0
    vox = 0.008  # fixed, so the blob does not enlarge the region and coarsen the voxels
    cfg = MeshExtractConfig(engine=engine)
    raw = tsdf_fusion(depth, out.rgb, cams, voxel_size=vox, cfg=dataclasses.replace(cfg, min_component_fraction=0.0))
    assert mesh_metrics(raw, gt, n_points=20_000).precision < 0.99  # the blob is in the raw mesh
    clean = tsdf_fusion(depth, out.rgb, cams, voxel_size=vox, cfg=cfg)
    reference = tsdf_fusion(out.depth, out.rgb, cams, voxel_size=vox, cfg=cfg)
    assert len(trimesh.graph.connected_components(clean.face_adjacency, min_len=1)) == 1
    assert len(clean.faces) == len(reference.faces)
    assert mesh_metrics(clean, gt, n_points=20_000).precision > 0.995


def test_masked_out_pixels_are_ignored():
    obj, cams, out = scene("chair")
    depth = out.depth.copy()
    depth[3, 4:28, 4:28] = 1.2
    masks = out.alpha > 0.5
    cfg = MeshExtractConfig(voxel_size=0.008, min_component_fraction=0.0)
    mesh = tsdf_fusion(depth, out.rgb, cams, masks=masks, cfg=cfg)
    assert mesh_metrics(mesh, obj.to_trimesh(), n_points=20_000).precision > 0.995


@pytest.mark.parametrize("engine", ENGINES)
def test_weight_threshold_counts_views(engine):
    _, cams, out = scene("sphere")
    cfg = dataclasses.replace(COARSE, engine=engine)
    one = tsdf_fusion(out.depth[:1], out.rgb[:1], cams[0], weight_threshold=1, cfg=cfg)
    assert len(one.faces) > 1000  # a surface seen once is kept at threshold 1
    with pytest.raises(ValueError, match="empty mesh"):
        tsdf_fusion(out.depth[:1], out.rgb[:1], cams[0], weight_threshold=2, cfg=cfg)


@pytest.mark.parametrize("engine", ENGINES)
def test_bounds_crop_the_mesh(engine):
    obj, cams, out = scene("chair")
    lo, hi = obj.to_trimesh().bounds
    box = np.stack([lo - 0.05, hi + 0.05])
    box[0, 1] = 0.0  # keep the upper half only
    mesh = tsdf_fusion(out.depth, out.rgb, cams, bounds=box, cfg=dataclasses.replace(COARSE, engine=engine))
    assert mesh.vertices[:, 1].min() >= -1e-3
    assert mesh.vertices[:, 1].max() > hi[1] - 0.02


def test_voxel_size_controls_resolution_and_decimation_keeps_colour():
    obj, cams, out = scene("sphere")
    coarse = tsdf_fusion(out.depth, out.rgb, cams, voxel_size=0.03)
    fine = tsdf_fusion(out.depth, out.rgb, cams, voxel_size=0.015)
    assert 3.0 < len(fine.faces) / len(coarse.faces) < 5.0  # faces scale with 1 / voxel_size^2
    small = decimate(coarse, 2000)
    assert 1800 <= len(small.faces) <= 2000
    assert mesh_metrics(small, obj.to_trimesh(), n_points=20_000).fscore > 0.99
    np.testing.assert_allclose(
        vertex_colors_of(small)[:, :3].mean(0), np.asarray(obj.parts[0].rgb) * 255, atol=2
    )
    via_cfg = tsdf_fusion(out.depth, out.rgb, cams, cfg=MeshExtractConfig(voxel_size=0.03, target_faces=2000))
    assert len(via_cfg.faces) <= 2000


def test_remove_small_components_keeps_large_parts():
    a = trimesh.creation.icosphere(subdivisions=3)  # 1280 faces
    b = trimesh.creation.icosphere(subdivisions=2).apply_translation([3, 0, 0])  # 320 faces
    c = trimesh.creation.icosphere(subdivisions=0).apply_translation([6, 0, 0])  # 20 faces
    m = trimesh.util.concatenate([a, b, c])
    assert len(remove_small_components(m, 0.05).faces) == 1600
    assert len(remove_small_components(m, 1.0).faces) == 1280
    assert len(remove_small_components(m, 0.0).faces) == 1620


def test_torch_and_uint8_inputs_give_the_same_mesh():
    _, cams, out = scene("sphere")
    a = tsdf_fusion(out.depth, out.rgb, cams, cfg=COARSE)
    rgb8 = np.round(out.rgb * 255).astype(np.uint8)
    b = tsdf_fusion(torch.from_numpy(out.depth), torch.from_numpy(rgb8), cams, cfg=COARSE)
    np.testing.assert_allclose(b.vertices, a.vertices, atol=1e-6)
    assert np.abs(vertex_colors_of(b).astype(int) - vertex_colors_of(a)).max() <= 1


def test_bad_inputs_raise_clear_errors():
    _, cams, out = scene("sphere")
    with pytest.raises(ValueError, match="depths must have shape"):
        tsdf_fusion(out.depth[:2], out.rgb, cams)
    with pytest.raises(ValueError, match="colors must have shape"):
        tsdf_fusion(out.depth, out.rgb[..., :2], cams)
    with pytest.raises(ValueError, match="no valid depth"):
        tsdf_fusion(np.zeros_like(out.depth), out.rgb, cams)
    with pytest.raises(ValueError, match="resolution"):
        MeshExtractConfig(resolution=2)


# --------------------------------------------------------------------------------------------------
# Marching cubes on grids and on Gaussians (gen3d.geometry.marching). They live here, beside the
# other extraction tests, because the test files are organised by issue ownership.
# --------------------------------------------------------------------------------------------------


def disks_on_sphere(n: int, radius: float = 0.5, tangent: float = 0.02, normal: float = 0.002) -> Gaussians:
    """Flat Gaussians tangent to a sphere (as 3DGS fits an opaque surface): red above y=0, blue below."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    y = 1 - 2 * i / n
    phi = math.pi * (1 + 5**0.5) * i
    rxz = torch.sqrt(1 - y * y)
    nrm = torch.stack([rxz * torch.cos(phi), y, rxz * torch.sin(phi)], -1).float()
    quats = torch.stack([1 + nrm[:, 2], -nrm[:, 1], nrm[:, 0], torch.zeros(n)], -1)  # rotates +z onto nrm
    rgb = torch.where(nrm[:, 1:2] > 0, torch.tensor([[0.9, 0.1, 0.1]]), torch.tensor([[0.1, 0.2, 0.9]]))
    log_scales = torch.log(torch.tensor([tangent, tangent, normal])).expand(n, 3).clone()
    return Gaussians(nrm * radius, quats, log_scales, torch.full((n,), 3.0), rgb_to_sh_dc(rgb)[:, None, :])


def test_marching_cubes_grid_on_an_analytic_sphere():
    box = np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    pts = grid_points((48, 56, 64), box)  # unequal axes catch an axis mix-up
    r = np.linalg.norm(pts - [0.1, 0.2, -0.1], axis=-1)
    ref = trimesh.creation.icosphere(5, radius=0.6).apply_translation([0.1, 0.2, -0.1])
    for values, level, inside in [(r, 0.6, "below"), (1 - r, 0.4, "above")]:
        mesh = marching_cubes_grid(values, level, box, inside)
        radial = np.linalg.norm(mesh.vertices - [0.1, 0.2, -0.1], axis=1) - 0.6
        assert np.abs(radial).max() < 0.002  # vertices lie on the sphere (world placement is right)
        assert mesh_metrics(mesh, ref, n_points=20_000).fscore > 0.999
        assert mesh.is_watertight and mesh.volume > 0  # faces wound outward
    with pytest.raises(ValueError, match="outside the grid's value range"):
        marching_cubes_grid(r, 5.0, box)


def test_density_grid_matches_brute_force_evaluation():
    g = Gaussians.random_in_box(40, (-0.5, -0.5, -0.5), (0.5, 0.5, 0.5), seed=1)
    gen = torch.Generator().manual_seed(2)
    g = Gaussians(
        g.means,
        torch.randn(40, 4, generator=gen),
        torch.log(0.02 + 0.06 * torch.rand(40, 3, generator=gen)),
        torch.randn(40, generator=gen),
        g.sh,
    )
    box = np.array([[-0.6, -0.7, -0.8], [0.7, 0.6, 0.5]])
    grid = gaussians_to_density_grid(g, (24, 28, 20), box, max_radius_voxels=64)
    x = torch.from_numpy(grid_points((24, 28, 20), box)).reshape(-1, 3)
    d = x[:, None, :] - g.means.double()[None]  # P N 3
    maha = torch.einsum("pni,nij,pnj->pn", d, torch.linalg.inv(covariances(g).double()), d)
    k = g.opacities.double() * torch.exp(-0.5 * maha) * (maha <= 9)
    want = k.sum(1).reshape(24, 28, 20).numpy()
    np.testing.assert_allclose(grid.density, want, atol=2e-5, rtol=1e-4)
    want_rgb = (k @ g.rgb.double()).reshape(24, 28, 20, 3).numpy()
    np.testing.assert_allclose(grid.weighted_rgb, want_rgb, atol=2e-5, rtol=1e-4)


def test_gaussians_to_mesh_recovers_the_sphere_and_its_colours():
    g = disks_on_sphere(3000)
    mesh = gaussians_to_mesh(g, resolution=64)
    ref = trimesh.creation.icosphere(5, radius=0.5)
    m = mesh_metrics(mesh, ref, n_points=20_000)
    assert m.fscore > 0.99 and m.normal_consistency > 0.97, m
    radius = np.linalg.norm(mesh.vertices, axis=1)
    spacing = (1.0 + 2 * 3 * 0.02) * 1.1 / 63  # default bounds: means +- 3 sigma, + 5% each side
    assert 0.5 < radius.min() and radius.max() < 0.5 + 1.2 * spacing  # the outer sheet, just outside
    assert len(mesh.split(only_watertight=False)) == 1 and mesh.is_watertight
    rgb = vertex_colors_of(mesh)[:, :3] / 255.0
    top, bottom = mesh.vertices[:, 1] > 0.1, mesh.vertices[:, 1] < -0.1
    np.testing.assert_allclose(rgb[top].mean(0), [0.9, 0.1, 0.1], atol=0.02)
    np.testing.assert_allclose(rgb[bottom].mean(0), [0.1, 0.2, 0.9], atol=0.02)
    shell = gaussians_to_mesh(g, resolution=64, fill_interior=False)
    inner = np.linalg.norm(shell.vertices, axis=1) < 0.5 - 0.5 * spacing
    assert inner.mean() > 0.3  # without filling, the shell's inner sheet is there too
