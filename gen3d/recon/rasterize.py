"""Differentiable Gaussian-splatting rasterization: the public API and backend dispatch.

``rasterize`` is modelled on ``gsplat.rasterization`` (render_mode "RGB+ED", rasterize_mode
"classic", packed=False) so the three backends are interchangeable:

- ``"tiled"``: the fast CPU path (numba kernels, hand-written backward), ``rasterize_tiled``;
- ``"gsplat"``: the CUDA path through gsplat, ``rasterize_gsplat``;
- ``"dense"``: the obviously-correct reference (all pixel-Gaussian pairs, autograd),
  ``rasterize_dense``; tiny inputs only;
- ``"auto"``: gsplat for CUDA tensors (when CUDA is available), tiled for CPU tensors.

Conventions, identical in every backend (tests/recon/test_rasterize.py checks they agree):

- Cameras: OpenCV world-to-camera ``viewmats`` (= gsplat's) and pixel intrinsics ``Ks``; pixel
  (row i, column j) has its centre at (j + 0.5, i + 0.5).
- Projection: EWA splatting (Zwicker et al. 2001), ``Sigma = R S S^T R^T`` (Kerbl et al. 2023,
  Eq. 6), 2D covariance ``J W Sigma W^T J^T`` + ``eps2d`` on the diagonal (no opacity compensation),
  3-sigma radius, culling outside [near_plane, far_plane] and outside the image: see
  ``gen3d.recon.projection``.
- Colour: ``colors`` (N, 3) is used as is; (N, K, 3) are SH coefficients (DC first) evaluated up to
  ``sh_degree`` (default: all K) along the normalised direction (mean - camera centre), then
  ``max(c + 0.5, 0)`` as gsplat does (``gen3d.recon.sh``).
- Compositing: Gaussians are sorted front to back by camera-space depth z (ties in index order) and
  blended as ``C = sum_i c_i alpha_i T_i``, ``T_i = prod_{j<i} (1 - alpha_j)`` (Kerbl et al. 2023,
  Eq. 3) with ``alpha_i = min(0.999, o_i exp(-power_i))``,
  ``power = 0.5 (a dx^2 + c dy^2) + b dx dy`` for the conic (a, b, c) and ``d = mean2d - pixel``.
  A pair with alpha < 1/255 (or power < 0) is skipped; a pixel stops before the first Gaussian that
  would take its transmittance to <= 1e-4 (gsplat's thresholds). A Gaussian is evaluated only at
  the pixels of the 16x16 tiles its 3-sigma square touches (gsplat's tile intersection).
- Outputs: ``colors = C + T_final * background``, ``alphas = 1 - T_final``, ``depths`` the expected
  depth ``sum_i z_i alpha_i T_i / max(alpha, 1e-10)`` (gsplat's "ED").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from gen3d.cameras import Cameras
from gen3d.errors import DeviceError
from gen3d.recon.gaussians import Gaussians
from gen3d.recon.sh import check_sh_degree

Backend = Literal["auto", "dense", "tiled", "gsplat"]
BACKENDS = ("auto", "dense", "tiled", "gsplat")


@dataclass(frozen=True)
class RasterResult:
    """What every backend returns (one row per camera)."""

    colors: Float[Tensor, "C H W 3"]
    alphas: Float[Tensor, "C H W 1"]
    depths: Float[Tensor, "C H W 1"]  # expected depth (accumulated z / alpha), gsplat's "ED"
    # Projected centres in pixels (0 where culled). After backward, ``means2d.grad`` is the
    # screen-space gradient that densification strategies use (``retain_grad()`` has been called).
    means2d: Float[Tensor, "C N 2"]
    radii: Int[Tensor, "C N"]  # 3-sigma radius in pixels, 0 = culled
    backend: str


def rasterize(
    means: Float[Tensor, "N 3"],
    quats: Float[Tensor, "N 4"],
    scales: Float[Tensor, "N 3"],
    opacities: Float[Tensor, " N"],
    colors: Tensor,
    viewmats: Float[Tensor, "C 4 4"],
    Ks: Float[Tensor, "C 3 3"],
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    backgrounds: Float[Tensor, "C 3"] | None = None,
    backend: Backend = "auto",
) -> RasterResult:
    """Render N Gaussians into C cameras; differentiable in every Gaussian parameter.

    ``quats`` are (w, x, y, z), normalised here; ``scales`` and ``opacities`` are activated values
    (not logs / logits). ``colors`` is (N, 3) RGB or (N, K, 3) SH coefficients. See the module
    docstring for the conventions and ``RasterResult`` for the outputs.
    """
    sh_degree = _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                              sh_degree, near_plane, backgrounds)  # fmt: skip
    chosen = _choose_backend(backend, means)
    args = (means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree,
            near_plane, far_plane, eps2d, backgrounds)  # fmt: skip
    if chosen == "dense":
        from gen3d.recon.rasterize_dense import rasterize_dense

        out = rasterize_dense(*args)
    elif chosen == "tiled":
        from gen3d.recon.rasterize_tiled import rasterize_tiled

        out = rasterize_tiled(*args)
    else:
        from gen3d.recon.rasterize_gsplat import rasterize_gsplat

        out = rasterize_gsplat(*args)
    colors_img, alphas, depths, means2d, radii = out
    return RasterResult(colors_img, alphas, depths, means2d, radii, chosen)


def render_gaussians(
    g: Gaussians,
    cams: Cameras,
    *,
    sh_degree: int | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    background: Float[Tensor, " 3"] | Float[Tensor, "C 3"] | None = None,
    backend: Backend = "auto",
) -> RasterResult:
    """Render a ``Gaussians`` set (stored unconstrained) from ``Cameras``; activations applied here."""
    bgs = None
    if background is not None:
        bgs = torch.as_tensor(background, dtype=g.means.dtype, device=g.device)
        bgs = bgs.expand(len(cams), 3) if bgs.ndim == 1 else bgs
    return rasterize(
        g.means, g.quats, g.scales, g.opacities, g.sh, cams.w2c.to(g.device), cams.K.to(g.device),
        cams.width, cams.height, sh_degree=g.sh_degree if sh_degree is None else sh_degree,
        near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, backgrounds=bgs, backend=backend,
    )  # fmt: skip


def render_median_depth(
    g: Gaussians,
    cams: Cameras,
    *,
    level: float = 0.5,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    backend: Backend = "auto",
) -> Float[Tensor, "C H W"]:
    """Per pixel, the camera depth of the Gaussian at which the accumulated opacity first reaches
    ``level`` (0.5: the median depth), 0 where it never does; no gradient.

    Unlike the expected depth ("ED", an opacity-weighted mean over every Gaussian on the ray), it is
    the depth of the first surface the ray meets: a half-transparent front shell does not pull it
    toward the back of the object. Gaussians are sorted and composited as in :func:`rasterize`.
    Backends: ``tiled`` for CPU tensors, the dense torch twin elsewhere (``gsplat`` has no such mode).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    chosen = _choose_backend(backend, g.means)
    args = (g.means, g.quats, g.scales, g.opacities, cams.w2c.to(g.device), cams.K.to(g.device), cams.width,
            cams.height, near_plane, far_plane, eps2d, level)  # fmt: skip
    if chosen == "tiled":
        from gen3d.recon.rasterize_tiled import median_depth_tiled

        return median_depth_tiled(*args)
    from gen3d.recon.rasterize_dense import median_depth_dense

    return median_depth_dense(*args)  # runs under no_grad


def cuda_available() -> bool:
    return torch.cuda.is_available()


def _choose_backend(backend: str, means: Tensor) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    on_cuda = means.device.type == "cuda"
    if (backend == "gsplat" or on_cuda) and not cuda_available():
        raise DeviceError(
            f"backend={backend!r} on {means.device} tensors needs a CUDA GPU, and torch.cuda.is_available() "
            "is False on this machine; use CPU tensors with backend='tiled' (fast) or 'dense' (reference)"
        )
    if backend == "auto":
        return "gsplat" if on_cuda else "tiled"
    if backend == "gsplat" and not on_cuda:
        raise DeviceError(
            "backend='gsplat' needs CUDA tensors: move the inputs with .cuda() or use 'tiled' on CPU"
        )
    if backend == "tiled" and on_cuda:
        raise DeviceError("backend='tiled' is the CPU rasterizer: pass CPU tensors, or use 'gsplat' on CUDA")
    return backend


def _check_inputs(
    means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, near_plane, backgrounds
) -> int | None:
    """Shape checks with messages that name the argument; returns the SH degree to use (None = RGB)."""
    N = means.shape[0] if means.ndim == 2 else -1
    C = viewmats.shape[0] if viewmats.ndim == 3 else -1
    want = {"means": (means, (N, 3)), "quats": (quats, (N, 4)), "scales": (scales, (N, 3)),
            "opacities": (opacities, (N,)), "viewmats": (viewmats, (C, 4, 4)), "Ks": (Ks, (C, 3, 3))}  # fmt: skip
    for name, (t, shape) in want.items():
        if tuple(t.shape) != shape or -1 in shape:
            raise ValueError(f"{name} must have shape {shape} (N Gaussians, C cameras), got {tuple(t.shape)}")
    if backgrounds is not None and tuple(backgrounds.shape) != (C, 3):
        raise ValueError(f"backgrounds must have shape ({C}, 3), got {tuple(backgrounds.shape)}")
    if width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive, got {width} x {height}")
    if near_plane <= 0:
        raise ValueError(f"near_plane must be > 0, got {near_plane}")
    if colors.ndim == 2:
        if tuple(colors.shape) != (N, 3):
            raise ValueError(f"RGB colors must have shape ({N}, 3), got {tuple(colors.shape)}")
        if sh_degree is not None:
            raise ValueError("sh_degree is set but colors is (N, 3) RGB; pass (N, K, 3) SH coefficients")
        return None
    if colors.ndim != 3 or colors.shape[0] != N or colors.shape[2] != 3:
        raise ValueError(f"colors must be (N, 3) RGB or (N, K, 3) SH coefficients, got {tuple(colors.shape)}")
    if sh_degree is None:
        sh_degree = math.isqrt(colors.shape[1]) - 1
    check_sh_degree(sh_degree, colors.shape[1])
    return sh_degree
