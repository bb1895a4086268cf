"""The visual hull initialisation, with and without depth carving."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gen3d.priors.mvdata import PriorRig, render_views
from gen3d.recon.init import depth_points, visual_hull_points


@pytest.fixture(scope="module")
def cube_views():
    from gen3d.data.world import build_object, canonical_spec

    spec = canonical_spec("cube")
    spec = dataclasses.replace(spec, colors={k: "orange" for k in spec.colors})
    rig = PriorRig(views=4, fov_deg=40)
    r = render_views(spec, rig)
    cams = rig.cameras()
    bounds = build_object(spec).to_trimesh().bounds
    keep = [1, 2, 3]  # view 0 held out: the three others see its face only edge-on
    return {
        "cams": cams[keep], "masks": torch.from_numpy(r["alpha"][keep]).float() / 255,
        "depths": torch.from_numpy(r["depth"][keep].astype(np.float32)),
        "images": torch.from_numpy(r["rgb"][keep]).permute(0, 2, 3, 1).float() / 255,
        "bounds": torch.tensor(np.asarray(bounds), dtype=torch.float32), "all_cams": cams,
    }


def test_depth_points_lie_on_the_seen_surface(cube_views):
    v = cube_views
    pts = depth_points(v["cams"], v["depths"], v["masks"])
    lo, hi = v["bounds"]
    assert len(pts) > 1000
    # Every back-projected pixel is on the cube's surface: inside its box, and on one of its faces.
    assert bool(((pts >= lo - 0.02) & (pts <= hi + 0.02)).all())
    to_face = torch.minimum((pts - lo).abs(), (pts - hi).abs()).min(-1).values
    assert float(to_face.quantile(0.95)) < 0.02


def test_depth_carving_removes_the_bloated_far_side_and_the_wedge(cube_views):
    v = cube_views
    res, bound = 64, 1.0
    voxel = 2 * bound / res
    lo, hi = v["bounds"]
    args = (v["cams"], v["masks"], v["images"], 20000, res, bound)
    plain, _ = visual_hull_points(*args, seed=0)
    carved, cols = visual_hull_points(*args, seed=0, depths=v["depths"], depth_margin=0.03, box_margin=0.05)
    over = lambda p: torch.clamp(torch.maximum(lo - p, p - hi), min=0).max(-1).values  # distance outside the box
    # Silhouettes alone leave points well outside the cube (the cones widen behind it, and meet below it).
    assert float(over(plain).max()) > 2.5 * voxel
    assert float(over(carved).max()) < 2.5 * voxel
    assert float(carved[:, 1].min()) > float(lo[1]) - 0.05 - 1.5 * voxel  # no wedge below the lowest seen point
    # Carving keeps the object: the cube's surface, held-out face included, is still covered.
    g = torch.Generator().manual_seed(0)
    u = torch.rand(4000, 2, generator=g)
    face = torch.stack([lo[0] + u[:, 0] * (hi[0] - lo[0]), lo[1] + u[:, 1] * (hi[1] - lo[1]),
                        torch.full((4000,), float(hi[2]))], -1)  # the face of view 0 (+z)
    d = torch.cdist(face, carved).min(-1).values
    assert float((d < 2 * voxel).float().mean()) > 0.95
    # Colours come from the views that see a point: an orange cube stays orange (no white background mixed in).
    orange = torch.tensor([1.0, 0.5, 0.0])
    assert float(torch.nn.functional.cosine_similarity(cols.mean(0), orange, dim=0)) > 0.95


def test_without_depth_nothing_changes(cube_views):
    v = cube_views
    a, ca = visual_hull_points(v["cams"], v["masks"], v["images"], 2000, 48, 1.0, seed=1)
    b, cb = visual_hull_points(v["cams"], v["masks"], v["images"], 2000, 48, 1.0, seed=1, depths=None, box_margin=0.0)
    assert torch.equal(a, b) and torch.equal(ca, cb)


def test_inside_convex_hull_margin_and_degenerate_input():
    from gen3d.recon.init import inside_convex_hull

    corners = torch.tensor([[x, y, z] for x in (0.0, 1.0) for y in (0.0, 1.0) for z in (0.0, 1.0)])
    q = torch.tensor([[0.5, 0.5, 0.5], [1.05, 0.5, 0.5], [1.2, 0.5, 0.5], [-0.01, 0.0, 0.0]])
    assert inside_convex_hull(q, corners, 0.0).tolist() == [True, False, False, False]
    assert inside_convex_hull(q, corners, 0.1).tolist() == [True, True, False, True]
    flat = corners[corners[:, 2] == 0]  # coplanar: no volume, so nothing is clipped
    assert inside_convex_hull(q, flat, 0.0).all()
    assert inside_convex_hull(q, corners[:3], 0.0).all()


def test_convex_clip_removes_the_unseen_bulge_and_ignores_noisy_rims(cube_views):
    """Three views of a cube: the hull bulges toward the held-out face (+z), where the side views'
    perspective cones widen behind the edges they see. Clipping to the convex hull of the seen surface
    removes the bulge but keeps the face; depth outliers on the silhouette rim (as decoded depth has)
    do not undo that, because the rim is eroded away before the hull is taken."""
    v = cube_views
    res, bound = 64, 1.0
    voxel = 2 * bound / res
    lo, hi = v["bounds"]
    args = (v["cams"], v["masks"], v["images"], 20000, res, bound)
    over_z = lambda p: float((p[:, 2] - hi[2]).max())  # how far past the held-out face the points reach
    plain, _ = visual_hull_points(*args, seed=0)
    assert over_z(plain) > 3 * voxel
    noisy = v["depths"].clone()
    m = v["masks"] >= 0.5
    inner = -torch.nn.functional.max_pool2d(-m.float()[:, None], 3, stride=1, padding=1)[:, 0]
    rim = m & (inner < 0.5)
    noisy[rim] *= 1.5  # rim pixels pushed far behind the object
    for depths in (v["depths"], noisy):
        clipped, _ = visual_hull_points(*args, seed=0, depths=depths, depth_margin=float("inf"), convex_margin=0.02)
        assert over_z(clipped) < 0.02 + 1.5 * voxel
        assert float(clipped[:, 1].min()) > float(lo[1]) - 0.02 - 1.5 * voxel  # and no wedge below
        g = torch.Generator().manual_seed(0)
        u = torch.rand(4000, 2, generator=g)
        face = torch.stack([lo[0] + u[:, 0] * (hi[0] - lo[0]), lo[1] + u[:, 1] * (hi[1] - lo[1]),
                            torch.full((4000,), float(hi[2]))], -1)
        assert float((torch.cdist(face, clipped).min(-1).values < 2 * voxel).float().mean()) > 0.95
