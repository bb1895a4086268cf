"""Rasterizer backends against each other and against closed forms.

Parity tolerances (tiled runs in float32, the dense reference in float64 on the same float32 inputs):
- forward: colours and alphas element-wise within 2e-5, expected depth within 2e-4 relative (where
  alpha > 0.01), radii identical, means2d within 1e-4 px where visible;
- gradients: element-wise within 1e-4 x (largest |gradient| of that input), and the relative L2
  error of each input's gradient below 1e-3.
Threshold flips: a (pixel, Gaussian) pair whose alpha lies within float32 rounding (~1e-6 relative)
of 1/255, or a pixel whose transmittance lies that close to 1e-4, can resolve differently in float32
and float64 (gsplat is float32 too). Such a flip adds or removes one contribution of alpha ~1/255,
so up to 0.2% of elements (at least 2) may exceed the element-wise tolerances above, but must stay
within 1e-2 (colours, alphas), 1e-1 relative (expected depth, which divides by alpha) or 1e-2 x the
largest |gradient| (gradients).
"""

from __future__ import annotations

import math
import sys

import pytest
import torch

from gen3d.cameras import orbit_cameras
from gen3d.errors import DeviceError
from gen3d.recon.gaussians import Gaussians
from gen3d.recon.projection import project_ewa
from gen3d.recon.rasterize import RasterResult, rasterize, render_gaussians
from gen3d.recon.sh import eval_sh, sh_bases

FWD_ATOL = 2e-5
DEPTH_RTOL = 2e-4
GRAD_RTOL = 1e-4
FLIP_FRACTION = 2e-3  # elements allowed past the element-wise tolerance (threshold flips), at least 2
FLIP_ATOL = 1e-2  # ... which must still be within this (x the largest |value| for gradients)


def _assert_parity(actual, expected, atol, flip_atol, what):
    """|actual - expected| <= atol element-wise, except for rare threshold flips (module docstring)."""
    diff = (actual.double() - expected.double()).abs()
    n_over = int((diff > atol).sum())
    allowed = max(2, int(FLIP_FRACTION * diff.numel()))
    assert n_over <= allowed, f"{what}: {n_over} of {diff.numel()} elements differ by more than {atol:.3g}"
    assert diff.max() <= flip_atol, f"{what}: max difference {diff.max():.3g} > {flip_atol:.3g}"


def _scene(
    n: int, views: int, width: int, height: int, sh_degree: int | None, seed: int, extremes: bool = False
):
    """Random Gaussians around the origin seen by ``views`` orbit cameras (float32)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * 0.5
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.empty(n, 3).uniform_(math.log(0.02), math.log(0.2), generator=g))
    opacities = torch.empty(n).uniform_(0.05, 0.99, generator=g)
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=g)
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.4
    cams = orbit_cameras(torch.linspace(-20, 30, views).tolist(), torch.linspace(0, 250, views).tolist(), 3.0,
                         45.0, width, height)  # fmt: skip
    if extremes and n >= 8:
        eye = cams.c2w[0, :3, 3]
        forward = cams.c2w[0, :3, 2]
        means[0] = eye - 0.5 * forward  # behind camera 0
        means[1] = eye + 0.005 * forward  # in front of camera 0 but nearer than near_plane
        means[2] = torch.tensor([40.0, 0.0, 0.0])  # far outside every image
        scales[3] = 1e-4  # tiny: a dot of eps2d size
        scales[4] = torch.tensor([2.0, 3.0, 1.5])  # huge: covers whole images
        opacities[4] = 0.3
        scales[5] = torch.tensor([1e-3, 0.5, 1e-3])  # a needle
        opacities[6] = 0.999  # saturating alpha (clamped at 0.999)
        opacities[7] = 0.003  # below 1/255: never contributes
    return [means, quats, scales, opacities, colors], cams


def _run(backend, params, cams, sh_degree, backgrounds, dtype):
    ps = [p.detach().to(dtype).requires_grad_(True) for p in params]
    bg = None if backgrounds is None else backgrounds.to(dtype)
    r = rasterize(*ps, cams.w2c.to(dtype), cams.K.to(dtype), cams.width, cams.height, sh_degree=sh_degree,
                  backgrounds=bg, backend=backend)  # fmt: skip
    g = torch.Generator().manual_seed(123)
    w_rgb = torch.randn(r.colors.shape, generator=g).to(r.colors)
    w_a = torch.randn(r.alphas.shape, generator=g).to(r.colors)
    w_d = torch.randn(r.depths.shape, generator=g).to(r.colors) * 0.1
    # Depth only where alpha is not tiny (expected depth is ill-conditioned there, in every backend).
    loss = (r.colors * w_rgb).sum() + (r.alphas * w_a).sum() + (r.depths * w_d * (r.alphas > 0.01)).sum()
    loss.backward()
    return r, [p.grad for p in ps]


CASES = [
    # (views, N, width, height, sh_degree, backgrounds, extremes)
    (1, 1, 32, 32, None, False, False),
    (1, 40, 40, 24, 0, True, False),
    (3, 300, 48, 40, 3, True, True),
    (3, 120, 37, 53, 1, False, True),
    (2, 200, 64, 32, 2, True, True),
]


@pytest.mark.parametrize("views,n,width,height,sh_degree,with_bg,extremes", CASES)
def test_tiled_matches_dense(views, n, width, height, sh_degree, with_bg, extremes, monkeypatch):
    import gen3d.recon.rasterize_tiled as tiled

    monkeypatch.setattr(tiled, "_PARALLEL_MIN_WORK", 0)  # these inputs are small: force the threaded path
    params, cams = _scene(n, views, width, height, sh_degree, seed=n + views, extremes=extremes)
    bgs = torch.rand(views, 3, generator=torch.Generator().manual_seed(7)) if with_bg else None
    ref, ref_grads = _run("dense", params, cams, sh_degree, bgs, torch.float64)
    out, grads = _run("tiled", params, cams, sh_degree, bgs, torch.float32)
    assert out.backend == "tiled" and ref.backend == "dense"
    assert out.colors.shape == (views, height, width, 3) and out.alphas.shape == (views, height, width, 1)
    assert out.depths.shape == (views, height, width, 1) and out.radii.shape == (views, n)
    assert ref.alphas.max() > 0.3, "the scene should cover some pixels"

    assert torch.equal(out.radii.long(), ref.radii.long())
    vis = ref.radii > 0
    torch.testing.assert_close(out.means2d.double()[vis], ref.means2d.detach()[vis], rtol=0, atol=1e-4)
    _assert_parity(out.colors, ref.colors.detach(), FWD_ATOL, FLIP_ATOL, "colors")
    _assert_parity(out.alphas, ref.alphas.detach(), FWD_ATOL, FLIP_ATOL, "alphas")
    covered = ref.alphas > 0.01
    rel_depth = (out.depths.double()[covered] - ref.depths.detach()[covered]) / ref.depths.detach()[covered]
    _assert_parity(rel_depth, torch.zeros_like(rel_depth), DEPTH_RTOL, 10 * FLIP_ATOL, "depths (relative)")

    names = ["means", "quats", "scales", "opacities", "colors"]
    for name, g, g_ref in zip(
        names + ["means2d"], grads + [out.means2d.grad], ref_grads + [ref.means2d.grad]
    ):
        scale = g_ref.abs().max().item()
        assert scale > 0, f"{name}: the reference gradient is all zero, the test checks nothing"
        _assert_parity(g, g_ref, GRAD_RTOL * scale, FLIP_ATOL * scale, f"d loss / d {name}")
        rel_l2 = ((g.double() - g_ref).norm() / g_ref.norm()).item()
        assert rel_l2 < 1e-3, f"d loss / d {name}: relative L2 error {rel_l2:.3g}"


def test_tiled_threads_do_not_change_results(monkeypatch):
    """One thread or all: the same numbers to the bit (no atomics, no order-dependent sums)."""
    import gen3d.recon.rasterize_tiled as tiled

    params, cams = _scene(3000, 2, 96, 80, 2, seed=9, extremes=True)
    results = []
    for min_work in (0, 10**12):  # all threads, then one
        monkeypatch.setattr(tiled, "_PARALLEL_MIN_WORK", min_work)
        r, grads = _run("tiled", params, cams, 2, None, torch.float32)
        results.append([r.colors, r.alphas, r.depths, r.means2d, r.means2d.grad, *grads])
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_extreme_gaussians_are_culled_or_kept_as_expected():
    params, cams = _scene(20, 2, 48, 40, None, seed=3, extremes=True)
    r = rasterize(*params, cams.w2c, cams.K, 48, 40, backend="tiled")
    assert r.radii[0, 0] == 0 and r.radii[0, 1] == 0  # behind camera 0 / nearer than near_plane
    assert (r.radii[:, 2] == 0).all()  # outside every image
    assert (r.radii[:, 4] > 20).all()  # huge
    assert (r.radii[:, 3] > 0).all() and (r.radii[:, 3] <= 2).all()  # tiny: ceil(3 sqrt(eps2d + 0.1)) = 2


def _head_on(z0: float, s: float, opacity: float, f: float = 40.0, size: int = 33):
    """One isotropic Gaussian on the optical axis; its centre projects onto pixel (16, 16)'s centre."""
    K = torch.tensor([[[f, 0.0, 16.5], [0.0, f, 16.5], [0.0, 0.0, 1.0]]])
    w2c = torch.eye(4)[None]
    params = [torch.tensor([[0.0, 0.0, z0]]), torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.full((1, 3), s),
              torch.tensor([opacity]), torch.tensor([[0.2, 0.6, 0.9]])]  # fmt: skip
    return params, w2c, K, size


@pytest.mark.parametrize("backend", ["dense", "tiled"])
def test_single_gaussian_head_on_closed_form(backend):
    z0, s, o, f = 2.0, 0.1, 0.8, 40.0
    params, w2c, K, size = _head_on(z0, s, o, f)
    r = rasterize(*params, w2c, K, size, size, backend=backend)
    alpha = r.alphas[0, :, :, 0]
    assert alpha[16, 16].item() == pytest.approx(o, abs=1e-6)  # power 0 at the centre
    # Footprint variance: (f s / z)^2 from EWA (Zwicker et al. 2001) + eps2d dilation.
    var = (f * s / z0) ** 2 + 0.3
    for k in (1, 2, 3):
        expected = o * math.exp(-0.5 * k * k / var)
        assert alpha[16, 16 + k].item() == pytest.approx(expected, rel=1e-5)
        assert alpha[16 - k, 16].item() == pytest.approx(expected, rel=1e-5)
    # The radius is ceil(3 sqrt(lambda_max)) with lambda_max = var + sqrt(max(0, 0.01)).
    assert r.radii[0, 0].item() == math.ceil(3 * math.sqrt(var + 0.1))
    covered = alpha > 1e-3
    torch.testing.assert_close(r.depths[0, :, :, 0][covered], torch.full_like(alpha[covered], z0))
    torch.testing.assert_close(r.colors[0, 16, 16], torch.tensor([0.2, 0.6, 0.9]) * o)
    torch.testing.assert_close(r.means2d[0, 0], torch.tensor([16.5, 16.5]))


@pytest.mark.parametrize("backend", ["dense", "tiled"])
def test_saturation_and_early_termination(backend):
    """Two opaque Gaussians on one pixel: alpha is clamped at 0.999 only if the first alone stays above
    T = 1e-4; the second, which would take T to 1e-4 (0.01 * 0.01), is left out (gsplat's rule)."""
    _, w2c, K, size = _head_on(2.0, 0.1, 0.99)
    means = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 3.0]])
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 2)
    scales = torch.full((2, 3), 0.1)
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    r = rasterize(
        means, quats, scales, torch.tensor([0.99, 0.99]), colors, w2c, K, size, size, backend=backend
    )
    assert r.alphas[0, 16, 16, 0].item() == pytest.approx(0.99, abs=1e-6)
    torch.testing.assert_close(r.colors[0, 16, 16], torch.tensor([0.99, 0.0, 0.0]))
    assert r.depths[0, 16, 16, 0].item() == pytest.approx(2.0, rel=1e-6)
    # Opacity 1.0 is clamped to alpha 0.999 and the pixel keeps T = 1e-3.
    r = rasterize(means[:1], quats[:1], scales[:1], torch.tensor([1.0]), colors[:1], w2c, K, size, size,
                  backend=backend)  # fmt: skip
    assert r.alphas[0, 16, 16, 0].item() == pytest.approx(0.999, abs=1e-6)


def test_dense_gradcheck_float64():
    params, cams = _scene(3, 1, 12, 10, 1, seed=5)
    params[3] = torch.tensor([0.6, 0.5, 0.7])
    params[2] = torch.full((3, 3), 0.15) * torch.tensor([1.0, 0.7, 1.3])
    ps = tuple(p.double().requires_grad_(True) for p in params)
    w2c, K = cams.w2c.double(), cams.K.double()

    def f(*xs):
        r = rasterize(*xs, w2c, K, 12, 10, backend="dense")
        return r.colors, r.alphas, r.depths * r.alphas

    assert f(*ps)[1].max() > 0.3, "the Gaussians should cover pixels"

    assert torch.autograd.gradcheck(f, ps, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


def test_sh_twins_agree_values_and_tangent_gradients():
    from numba import njit

    from gen3d.recon.sh import sh_bases_grad_into, sh_bases_into

    nb_bases, nb_grads = njit(sh_bases_into), njit(sh_bases_grad_into)
    g = torch.Generator().manual_seed(0)
    dirs = torch.randn(20, 3, generator=g, dtype=torch.float64)
    for degree in range(4):
        k = (degree + 1) ** 2
        coeffs = torch.randn(20, k, 3, generator=g, dtype=torch.float64)
        d = dirs.clone().requires_grad_(True)
        red = eval_sh(degree, d, coeffs)[:, 0].sum()
        (d_grad,) = torch.autograd.grad(red, d) if red.requires_grad else (torch.zeros_like(dirs),)
        b, gb = torch.zeros(16, dtype=torch.float64).numpy(), torch.zeros(16, 3, dtype=torch.float64).numpy()
        for i in range(20):
            n = dirs[i].norm()
            u = (dirs[i] / n).tolist()
            nb_bases(degree, *u, b)
            nb_grads(degree, *u, gb)
            torch.testing.assert_close(torch.from_numpy(b[:k].copy()), sh_bases(degree, dirs[i] / n))
            grad_unit = torch.from_numpy(gb[:k].copy()).T @ coeffs[i, :, 0]  # d colour / d unit direction
            un = torch.tensor(u, dtype=torch.float64)
            tangent = (grad_unit - un * (un @ grad_unit)) / n
            torch.testing.assert_close(tangent, d_grad[i])


def test_sh_and_projection_match_gsplat_torch_impl():
    """gsplat's pure-torch twins (CPU-safe, nothing compiled) agree with ours."""
    pytest.importorskip("gsplat")
    from gsplat.cuda._torch_impl import (
        _fully_fused_projection,
        _quat_scale_to_covar_preci,
        _spherical_harmonics,
    )

    (means, quats, scales, _, sh), cams = _scene(200, 3, 64, 48, 3, seed=11, extremes=True)
    dirs = torch.randn(200, 3)
    for degree in range(4):
        torch.testing.assert_close(eval_sh(degree, dirs, sh), _spherical_harmonics(degree, dirs, sh), atol=1e-5,
                                   rtol=1e-5)  # fmt: skip
    ours = project_ewa(means, quats, scales, cams.w2c, cams.K, 64, 48)
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(means, covars, cams.w2c, cams.K, 64, 48)
    radii = radii.reshape(ours.radii.shape)  # some versions return (C, N, 2)
    assert torch.equal(ours.radii, radii.int())
    vis = ours.radii > 0
    torch.testing.assert_close(ours.means2d[vis], means2d[vis])
    torch.testing.assert_close(ours.depths[vis], depths[vis])
    torch.testing.assert_close(ours.conics[vis], conics[vis], rtol=1e-4, atol=1e-6)


def test_auto_backend_and_render_gaussians():
    gs = Gaussians.random_in_box(50, (-0.5, -0.5, -0.5), (0.5, 0.5, 0.5), sh_degree=1, seed=0)
    cams = orbit_cameras(10.0, [0.0, 90.0], 3.0, 45.0, 32, 24)
    r = render_gaussians(gs, cams, background=torch.tensor([1.0, 1.0, 1.0]))
    assert isinstance(r, RasterResult) and r.backend == "tiled"
    ref = rasterize(gs.means, gs.quats, gs.scales, gs.opacities, gs.sh, cams.w2c, cams.K, 32, 24, sh_degree=1,
                    backgrounds=torch.ones(2, 3), backend="dense")  # fmt: skip
    torch.testing.assert_close(r.colors, ref.colors, atol=FWD_ATOL, rtol=0)
    # Where nothing is drawn the background shows.
    empty = r.alphas[..., 0] == 0
    assert empty.any() and torch.allclose(r.colors[empty], torch.ones(3))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_gsplat_without_cuda_raises_device_error():
    params, cams = _scene(10, 1, 16, 16, None, seed=0)
    before = "gsplat" in sys.modules
    with pytest.raises(DeviceError, match="CUDA"):
        rasterize(*params, cams.w2c, cams.K, 16, 16, backend="gsplat")
    assert ("gsplat" in sys.modules) == before, "gsplat must not be imported (it may try to JIT-compile)"


def test_bad_inputs_name_the_argument():
    params, cams = _scene(10, 1, 16, 16, 1, seed=0)
    with pytest.raises(ValueError, match="quats"):
        rasterize(params[0], params[1][:, :3], *params[2:], cams.w2c, cams.K, 16, 16)
    with pytest.raises(ValueError, match="sh_degree=2"):
        rasterize(*params, cams.w2c, cams.K, 16, 16, sh_degree=2)
    with pytest.raises(ValueError, match="backgrounds"):
        rasterize(*params, cams.w2c, cams.K, 16, 16, backgrounds=torch.zeros(3))
    with pytest.raises(ValueError, match="backend"):
        rasterize(*params, cams.w2c, cams.K, 16, 16, backend="cuda")


# --------------------------------------------------------------------------------------------------
# GPU: tiled (CPU) against gsplat (CUDA). Skipped without CUDA (tests/conftest.py).
# --------------------------------------------------------------------------------------------------


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-12)).item()


@pytest.mark.gpu
@pytest.mark.parametrize("views,n,width,height,sh_degree,with_bg,extremes", CASES)
def test_tiled_matches_gsplat(views, n, width, height, sh_degree, with_bg, extremes):
    gsplat = pytest.importorskip("gsplat")
    params, cams = _scene(n, views, width, height, sh_degree, seed=n + views, extremes=extremes)
    bgs = torch.rand(views, 3, generator=torch.Generator().manual_seed(7)) if with_bg else None
    out, grads = _run("tiled", params, cams, sh_degree, bgs, torch.float32)
    cuda_cams = cams.to("cuda")
    ps = [p.cuda() for p in params]
    ref, ref_grads = _run(
        "gsplat", ps, cuda_cams, sh_degree, None if bgs is None else bgs.cuda(), torch.float32
    )
    assert ref.backend == "gsplat"
    v14 = gsplat.__version__.startswith("1.4")
    if v14:  # gsplat 1.5 radii are opacity-aware per-axis extents (reduced to their max here)
        assert torch.equal(out.radii.long(), ref.radii.cpu().long())
    vis = (out.radii > 0) & (ref.radii.cpu() > 0)
    torch.testing.assert_close(out.means2d.detach()[vis], ref.means2d.detach().cpu()[vis], atol=1e-3, rtol=0)
    # gsplat uses float32 fast-math exp: allow rounding-level differences and rare threshold flips.
    tol = 2e-3 if v14 else 2e-2
    assert _rel_err(out.colors, ref.colors.detach().cpu()) < tol
    assert _rel_err(out.alphas, ref.alphas.detach().cpu()) < tol
    covered = (out.alphas > 0.01) & (ref.alphas.cpu() > 0.01)
    assert _rel_err(out.depths[covered], ref.depths.detach().cpu()[covered]) < tol
    names = ["means", "quats", "scales", "opacities", "colors", "means2d"]
    for name, g, g_ref in zip(names, grads + [out.means2d.grad], ref_grads + [ref.means2d.grad]):
        assert _rel_err(g, g_ref.cpu()) < 10 * tol, name


@pytest.mark.gpu
def test_auto_picks_gsplat_for_cuda_tensors():
    pytest.importorskip("gsplat")
    params, cams = _scene(50, 2, 32, 32, 0, seed=1)
    r = rasterize(*[p.cuda() for p in params], cams.w2c.cuda(), cams.K.cuda(), 32, 32)
    assert r.backend == "gsplat" and r.colors.is_cuda and r.radii.shape == (2, 50)


# ---- median depth (where the accumulated opacity reaches a level): mesh extraction's first-surface depth ----


@pytest.mark.parametrize("level", [0.5, 0.2])
def test_median_depth_tiled_matches_dense(level, monkeypatch):
    import gen3d.recon.rasterize_tiled as tiled
    from gen3d.recon.rasterize_dense import median_depth_dense

    monkeypatch.setattr(tiled, "_PARALLEL_MIN_WORK", 0)
    (means, quats, scales, opacities, _), cams = _scene(300, 3, 48, 40, None, seed=5, extremes=True)
    args = (cams.w2c, cams.K, cams.width, cams.height, 0.01, 1e10, 0.3, level)
    ref = median_depth_dense(means.double(), quats.double(), scales.double(), opacities.double(), cams.w2c.double(),
                             cams.K.double(), *args[2:])  # fmt: skip
    out = tiled.median_depth_tiled(means, quats, scales, opacities, *args)
    assert out.shape == (3, 40, 48)
    reached = ref > 0
    assert 0.2 < reached.float().mean() < 1.0  # a scene with pixels on both sides of the level
    # The same Gaussian (so the same depth) wherever both reach the level; threshold flips are rare.
    _assert_parity(out, ref, 1e-4, 10.0, f"median depth at level {level}")
    assert ((out > 0) != reached).sum() <= max(2, int(FLIP_FRACTION * ref.numel()))


def _layers(z, opacity):
    """Broad flat Gaussians on the optical axis of ``_head_on``'s camera, one per depth in ``z``."""
    from gen3d.cameras import Cameras

    _, w2c, K, size = _head_on(2.0, 0.1, 0.5)
    n = len(z)
    g = Gaussians(
        means=torch.tensor([[0.0, 0.0, zi] for zi in z]), quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]] * n),
        log_scales=torch.log(torch.tensor([[0.25 * zi, 0.25 * zi, 0.01] for zi in z])),
        opacity_logits=torch.logit(torch.tensor(opacity)), sh=torch.zeros(n, 1, 3),
    )
    return g, Cameras(w2c=w2c, K=K, width=size, height=size)


@pytest.mark.parametrize("backend", ["dense", "tiled"])
def test_median_depth_is_the_first_surface_not_the_mean(backend):
    """A half-transparent front (opacity 0.6 at z = 2) before an opaque back (0.99 at z = 4): the
    expected depth, (0.6 * 2 + 0.396 * 4) / 0.996 = 2.80, sinks toward the back; the median depth is
    the front's. Three layers of opacity 0.4 (z = 2, 3, 4) accumulate 0.4, 0.64, 0.784: the median
    depth is the second's, the level-0.7 depth the third's, and level 0.9 is never reached (0)."""
    from gen3d.recon.rasterize import render_median_depth

    g, cams = _layers([2.0, 4.0], [0.6, 0.99])
    assert render_median_depth(g, cams, backend=backend)[0, 16, 16].item() == pytest.approx(2.0, abs=1e-5)
    ed = render_gaussians(g, cams, backend=backend).depths[0, 16, 16, 0].item()
    assert ed == pytest.approx((0.6 * 2 + 0.4 * 0.99 * 4) / (0.6 + 0.4 * 0.99), rel=1e-4)
    g, cams = _layers([2.0, 3.0, 4.0], [0.4, 0.4, 0.4])
    assert render_median_depth(g, cams, backend=backend)[0, 16, 16].item() == pytest.approx(3.0, abs=1e-5)
    assert render_median_depth(g, cams, level=0.7, backend=backend)[0, 16, 16].item() == pytest.approx(4.0, abs=1e-5)
    assert render_median_depth(g, cams, level=0.9, backend=backend)[0, 16, 16].item() == 0.0
    with pytest.raises(ValueError, match="level"):
        render_median_depth(g, cams, level=1.0, backend=backend)


@pytest.mark.gpu
def test_median_depth_on_cuda_matches_the_cpu_kernel():
    """On CUDA tensors (backend auto or gsplat) the dense twin runs on the GPU: the same depths."""
    from gen3d.recon.rasterize import render_median_depth

    (means, quats, scales, opacities, _), cams = _scene(400, 3, 64, 48, None, seed=9, extremes=True)
    g = Gaussians(means=means, quats=quats, log_scales=scales.log(), opacity_logits=torch.logit(opacities),
                  sh=torch.zeros(len(means), 1, 3))  # fmt: skip
    cpu = render_median_depth(g, cams)
    gpu = render_median_depth(g.to("cuda"), cams, backend="gsplat")
    assert gpu.is_cuda
    _assert_parity(gpu.cpu(), cpu, 1e-4, 10.0, "median depth, CUDA vs CPU")
