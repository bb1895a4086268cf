"""Leave-one-out hull agreement: ray-cast hull silhouettes, and a score that finds the view that disagrees."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gen3d.cameras import Cameras, intrinsics_from_fov, look_at
from gen3d.priors.mvdata import PriorRig, render_views
from gen3d.recon.consistency import leave_one_out_hull_iou, raycast_silhouettes
from gen3d.recon.init import visual_hull_occupancy


def test_raycast_silhouette_of_a_ball_matches_its_projection():
    R, bound, r = 64, 1.0, 0.5
    ax = torch.linspace(-bound + bound / R, bound - bound / R, R)
    grid = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1)
    occ = grid.norm(dim=-1) <= r
    K = intrinsics_from_fov(30.0, 64, 64)[None]
    eye = torch.tensor([[0.6, 0.8, 2.4]])
    cams = Cameras(look_at(eye, torch.zeros(1, 3)), K, 64, 64)
    sil = raycast_silhouettes(occ, cams, bound)[0]
    # Exact silhouette: pixels whose ray passes within r of the centre.
    o, d = cams.rays()
    miss = torch.linalg.cross(-o[0], d[0]).norm(dim=-1)  # distance of the ray from the origin
    exact = miss <= r
    assert int(exact.sum()) > 500
    wrong = int((sil ^ exact).sum())
    rim = int((exact ^ (miss <= r - 0.03)).sum() + ((miss <= r + 0.03) ^ exact).sum())
    assert wrong <= rim  # disagreement only within a voxel of the rim
    assert not bool(raycast_silhouettes(torch.zeros_like(occ), cams, bound).any())


@pytest.fixture(scope="module")
def cube_render():
    from gen3d.data.world import canonical_spec

    spec = canonical_spec("cube")
    spec = dataclasses.replace(spec, colors={k: "orange" for k in spec.colors})
    rig = PriorRig(views=4, fov_deg=30)
    r = render_views(spec, rig)
    return rig.cameras(), torch.from_numpy(r["alpha"]).float() / 255, torch.from_numpy(r["depth"].astype(np.float32))


def test_consistent_views_score_high(cube_render):
    cams, masks, depths = cube_render
    s = leave_one_out_hull_iou(cams, masks, depths)
    assert s.shape == (4,)
    assert float(s.min()) > 0.85, s
    # without depth the hull of 3 views bulges toward the unseen face, so the agreement is lower
    s_sil = leave_one_out_hull_iou(cams, masks, None)
    assert float(s_sil.mean()) < float(s.mean())


def test_a_view_that_contradicts_the_others_is_found(cube_render):
    cams, masks, depths = cube_render
    bad_m, bad_d = masks.clone(), depths.clone()
    # view 2 draws the object a third wider than the others say it is
    grown = F.interpolate(masks[2][None, None], scale_factor=1.33, mode="bilinear", align_corners=False)[0, 0]
    o = (grown.shape[-1] - 64) // 2
    bad_m[2] = grown[o : o + 64, o : o + 64]
    bad_d[2] = torch.where(bad_m[2] >= 0.5, depths[2][depths[2] > 0].mean(), torch.zeros(()))
    good = leave_one_out_hull_iou(cams, masks, depths)
    bad = leave_one_out_hull_iou(cams, bad_m, bad_d)
    assert float(bad.mean()) < float(good.mean()) - 0.05
    assert int(bad.argmin()) == 2  # the widened view is the one the others disagree with most


def test_occupancy_is_the_hull_the_points_are_drawn_from(cube_render):
    from gen3d.recon.init import visual_hull_points

    cams, masks, depths = cube_render
    occ = visual_hull_occupancy(cams, masks, resolution=32, depths=depths, depth_margin=math.inf, convex_margin=0.02)
    pts, _ = visual_hull_points(cams, masks, None, n=2000, resolution=32, depths=depths, depth_margin=math.inf,
                                convex_margin=0.02)
    idx = ((pts + 1.0) / (2.0 / 32)).floor().long().clamp(0, 31)
    assert bool(occ[idx[:, 0], idx[:, 1], idx[:, 2]].all())


def test_bad_inputs_are_clear_errors(cube_render):
    cams, masks, depths = cube_render
    with pytest.raises(ValueError, match="at least 2 views"):
        leave_one_out_hull_iou(cams[[0]], masks[:1], depths[:1])
    with pytest.raises(ValueError, match="4 cameras"):
        leave_one_out_hull_iou(cams, masks[:3], depths)


def test_depth_from_fit_replaces_depth_only_where_the_fit_renders_inside_the_mask():
    from gen3d.recon.consistency import depth_from_fit

    depths = torch.full((2, 4, 4), 3.0)
    masks = torch.zeros(2, 4, 4)
    masks[:, 1:3, 1:3] = 1.0
    rd = torch.full((2, 4, 4), 2.5)
    ra = torch.ones(2, 4, 4)
    ra[0, 1, 1] = 0.01  # the fit barely renders this pixel: the view keeps its depth
    out = depth_from_fit(depths, masks, rd, ra)
    expect = torch.where(masks >= 0.5, torch.tensor(2.5), torch.tensor(3.0))
    expect[0, 1, 1] = 3.0
    assert torch.equal(out, expect)
    with pytest.raises(ValueError, match="equal shapes"):
        depth_from_fit(depths, masks[:1], rd, ra)


def test_depth_from_fit_corrects_a_too_shallow_rim_band():
    """Views whose depth reads too shallow a few pixels inside every silhouette (as a prior's decoder
    does): the fit to all 4 views, bounded by the silhouettes of the views that see each edge from the
    side, brings that band back toward the true surface."""
    from gen3d.pipelines.reconstruct import ReconstructConfig, fit

    from gen3d.data.dataset import ViewSet
    from gen3d.data.world import canonical_spec
    from gen3d.priors.mvdata import render_viewset
    from gen3d.recon.consistency import depth_from_fit
    from gen3d.recon.fit_gaussians import GaussianFitConfig

    spec = canonical_spec("cube")
    views = render_viewset(dataclasses.replace(spec, colors={k: "orange" for k in spec.colors}), PriorRig(views=4, fov_deg=30))
    inside = (views.masks >= 0.5).float()[:, None]
    core = -F.max_pool2d(-inside, 7, stride=1, padding=3)[:, 0] > 0.5  # 3 px inside the rim
    band = (inside[:, 0] > 0.5) & ~core
    bad = torch.where(band, views.depths - 0.15, views.depths)
    cfg = ReconstructConfig(gaussians=GaussianFitConfig(iters=150, init_points=2000, hull_resolution=48, views_per_step=4,
                                                        refine_start=60, refine_every=40, checkpoint_every=0,
                                                        hull_convex_margin=0.02), device="cpu")
    rep = fit(ViewSet(images=views.images, cameras=views.cameras, masks=views.masks, depths=bad), cfg, None,
              quiet=True).representation
    with torch.no_grad():
        r = rep.render(views.cameras)
    fused = depth_from_fit(bad, views.masks, r.depth, r.alpha)
    err_bad = float((bad - views.depths)[band].abs().mean())
    err_fused = float((fused - views.depths)[band].abs().mean())
    assert err_bad == pytest.approx(0.15, abs=1e-4)
    assert err_fused < 0.6 * err_bad, (err_fused, err_bad)
