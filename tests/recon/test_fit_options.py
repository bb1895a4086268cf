"""Options of the Gaussian fit that shape the Gaussians: the flattening loss, the initial size, depth carving, the convex clip."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gen3d.priors.mvdata import PriorRig, render_viewset
from gen3d.recon.fit_gaussians import GaussianFitConfig, fit_gaussians, initial_gaussians


@pytest.fixture(scope="module")
def sphere_views():
    from gen3d.data.world import canonical_spec

    spec = canonical_spec("sphere")
    spec = dataclasses.replace(spec, colors={k: "red" for k in spec.colors})
    return render_viewset(spec, PriorRig(views=4, res=32), supersample=1)


def test_flatten_loss_makes_discs(sphere_views):
    torch.set_num_threads(1)
    cfg = GaussianFitConfig(iters=80, init_points=600, hull_resolution=32, views_per_step=2, densify="none", lr_scales=0.02,
                            checkpoint_every=0)
    smallest = {}
    for w in (0.0, 50.0):
        g = fit_gaussians(sphere_views, dataclasses.replace(cfg, flatten_weight=w), device="cpu", quiet=True).representation.gaussians
        smallest[w] = float(g.scales.min(-1).values.mean())
    assert smallest[50.0] < 0.85 * smallest[0.0], smallest


def test_initial_scale_and_depth_carving_options(sphere_views):
    cfg = GaussianFitConfig(init_points=500, hull_resolution=32)
    a = initial_gaussians(sphere_views, cfg)
    b = initial_gaussians(sphere_views, dataclasses.replace(cfg, init_scale=0.5))
    ratio = b.scales / a.scales  # 0.5 except where the 0.1 cap clipped the default size
    assert float(ratio.median()) == pytest.approx(0.5, rel=1e-3) and bool((ratio >= 0.5 - 1e-4).all())
    carved = initial_gaussians(sphere_views, dataclasses.replace(cfg, hull_depth_margin=0.05))
    r = lambda g: float(g.means.norm(dim=-1).quantile(0.95))  # the sphere's radius is about 0.45
    assert r(carved) < r(a)  # the bloated far sides of the silhouette hull are carved away
    clipped = initial_gaussians(sphere_views, dataclasses.replace(cfg, hull_convex_margin=0.02))
    assert r(clipped) < r(a)  # the convex hull of the seen surface removes the wedge and the bulges too
    low = lambda g: float(g.means[:, 1].min())
    assert low(clipped) > low(a) + 0.05  # no wedge under the lowest point the views see
    no_depth = dataclasses.replace(sphere_views, depths=None)
    same = initial_gaussians(no_depth, dataclasses.replace(cfg, hull_convex_margin=0.02))
    assert torch.equal(same.means, initial_gaussians(no_depth, cfg).means)  # without depth the option does nothing


def test_point_normals_of_a_sphere_point_outward():
    from gen3d.recon.init import point_normals

    g = torch.Generator().manual_seed(0)
    p = torch.randn(3000, 3, generator=g)
    p = 0.4 * p / p.norm(dim=-1, keepdim=True) + torch.tensor([0.1, -0.2, 0.05])
    n = point_normals(p)
    radial = (p - p.mean(0)) / (p - p.mean(0)).norm(dim=-1, keepdim=True)
    assert float((n * radial).sum(-1).min()) > 0.95


def test_view_lobe_makes_surfaces_brighter_toward_their_normal(sphere_views):
    from gen3d.recon.init import point_normals
    from gen3d.recon.sh import eval_sh

    cfg = GaussianFitConfig(init_points=500, hull_resolution=32, sh_degree=1)
    plain = initial_gaussians(sphere_views, cfg)
    lobed = initial_gaussians(sphere_views, dataclasses.replace(cfg, init_view_lobe=0.3))
    assert torch.equal(plain.means, lobed.means) and torch.equal(plain.sh[:, 0], lobed.sh[:, 0])
    assert float(plain.sh[:, 1:].abs().max()) == 0.0
    n = point_normals(lobed.means)
    rgb = lambda g, d: eval_sh(1, d, g.sh) + 0.5
    head_on, grazing = -n, torch.linalg.cross(n, torch.randn_like(n))  # view directions (camera -> point)
    grazing = grazing / grazing.norm(dim=-1, keepdim=True)
    base = rgb(plain, head_on)
    assert torch.allclose(rgb(lobed, head_on), 1.3 * base, atol=1e-4)  # 30% brighter seen head-on
    assert torch.allclose(rgb(lobed, grazing), base, atol=1e-4)  # unchanged at grazing angles
    assert torch.allclose(rgb(lobed, n), 0.7 * base, atol=1e-4)  # and darker from behind


def test_keep_extents_in_hull_shrinks_only_the_axes_that_leave_it():
    from gen3d.recon.fit_gaussians import keep_extents_in_hull
    from gen3d.recon.gaussians import Gaussians

    R = 20  # voxels of 0.1 over [-1, 1]^3; the occupied box is |x|, |y|, |z| < 0.5
    ax = torch.linspace(-0.95, 0.95, R)
    X, Y, Z = torch.meshgrid(ax, ax, ax, indexing="ij")
    occ = (X.abs() < 0.5) & (Y.abs() < 0.5) & (Z.abs() < 0.5)
    means = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.0, 0.0]])
    log_scales = torch.log(torch.tensor([[0.1, 0.1, 0.1], [0.1, 0.1, 0.1], [0.4, 0.05, 0.05]]))
    quats = torch.tensor([[1.0, 0, 0, 0]] * 3)  # axis-aligned
    g = Gaussians(means, quats, log_scales, torch.zeros(3), torch.zeros(3, 1, 3))
    f = keep_extents_in_hull(g, occ, 2.0, 1.0)
    assert f[0].tolist() == [1.0, 1.0, 1.0]  # +-0.2 stays inside
    assert f[1, 0] < 1.0 and 0.3 + 2 * 0.1 * float(f[1, 0]) < 0.5 and f[1, 1:].tolist() == [1.0, 1.0]  # x leaves at 0.5
    assert 2 * 0.4 * float(f[2, 0]) < 0.5 and float(f[2, 0]) >= 0.5 and f[2, 1:].tolist() == [1.0, 1.0]  # the longest fit
    turned = Gaussians(means[2:], torch.tensor([[0.9239, 0.0, 0.0, 0.3827]]), log_scales[2:], torch.zeros(1),
                       torch.zeros(1, 1, 3))  # 45 degrees about z: the long axis points along the diagonal,
    assert float(keep_extents_in_hull(turned, occ, 2.0, 1.0)[0, 0]) == pytest.approx(0.7)  # where 0.8 * 0.7 fits


def test_hull_extent_keeps_the_fitted_gaussians_inside_the_starting_hull(sphere_views):
    from gen3d.recon.fit_gaussians import extent_occupancy, keep_extents_in_hull
    from gen3d.recon.init import grid_occupied as _occupied
    from gen3d.recon.projection import quat_to_rotmat

    torch.set_num_threads(1)
    cfg = GaussianFitConfig(iters=60, init_points=600, hull_resolution=32, views_per_step=2, checkpoint_every=0,
                            lr_scales=0.05, hull_convex_margin=0.02)
    three = sphere_views.subset([1, 2, 3])
    assert extent_occupancy(three, cfg) is None  # off by default
    on = dataclasses.replace(cfg, hull_extent=2.0, hull_extent_every=5)
    occ = extent_occupancy(three, on)
    from gen3d.recon.fit_gaussians import hull_options
    from gen3d.recon.init import visual_hull_occupancy

    clipped = visual_hull_occupancy(three.cameras, three.masks, on.hull_resolution, **hull_options(on, three.depths))
    lowest = lambda o: int(o.any(dim=2).any(dim=0).nonzero().min())  # y is up
    assert lowest(occ) < lowest(clipped)  # below the clip's flat bottom, the silhouettes' hull is allowed
    g = fit_gaussians(three, on, device="cpu", quiet=True).representation.gaussians
    inside = _occupied(occ, g.means, on.bound)
    assert bool((keep_extents_in_hull(g, occ, 2.0, on.bound)[inside] == 1.0).all())  # every axis fits after the last step
    free = fit_gaussians(three, cfg, device="cpu", quiet=True).representation.gaussians
    tips = lambda g: g.means[:, None] + 2 * quat_to_rotmat(g.unit_quats).transpose(1, 2) * g.scales[..., None]
    out_frac = lambda g: 1 - float(_occupied(occ, tips(g).reshape(-1, 3), on.bound).float().mean())
    assert out_frac(g) < out_frac(free), (out_frac(g), out_frac(free))


def test_max_gaussians_caps_the_start_and_default_densification(sphere_views, tmp_path):
    torch.set_num_threads(1)
    cfg = GaussianFitConfig(init_points=500, hull_resolution=32, max_gaussians=300)
    assert len(initial_gaussians(sphere_views, cfg)) == 300  # the hull would give 500
    grow = GaussianFitConfig(iters=60, init_points=200, hull_resolution=32, views_per_step=2, refine_start=10,
                             refine_every=10, grow_grad2d=1e-9, checkpoint_every=0)  # every Gaussian splits or clones
    free = fit_gaussians(sphere_views, grow, device="cpu", quiet=True).representation.gaussians
    assert len(free) > 400
    capped = fit_gaussians(sphere_views, dataclasses.replace(grow, max_gaussians=250), device="cpu", quiet=True)
    assert len(capped.representation.gaussians) == 250
    assert capped.losses[-1] < capped.losses[0]


def test_fused_adam_fits_and_resumes(sphere_views, tmp_path):
    """adam="fused" (the default on CUDA) trains like the unfused Adam, and its checkpoint resumes."""
    torch.set_num_threads(1)
    cfg = GaussianFitConfig(iters=40, init_points=300, hull_resolution=32, views_per_step=2, densify="none",
                            checkpoint_every=20)
    a = fit_gaussians(sphere_views, dataclasses.replace(cfg, adam="unfused"), device="cpu", quiet=True)
    b = fit_gaussians(sphere_views, dataclasses.replace(cfg, adam="fused"), device="cpu", quiet=True)
    assert b.losses[-1] == pytest.approx(a.losses[-1], rel=0.05)
    ck = tmp_path / "ck"
    short = dataclasses.replace(cfg, adam="fused", iters=30)
    fit_gaussians(sphere_views, short, device="cpu", checkpoint_dir=ck, quiet=True)  # checkpoint at step 20
    resumed = fit_gaussians(sphere_views, dataclasses.replace(short, iters=40), device="cpu", checkpoint_dir=ck, quiet=True)
    assert len(resumed.losses) == 40
    assert resumed.losses[-1] == pytest.approx(b.losses[-1], rel=0.05)
