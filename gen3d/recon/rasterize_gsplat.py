"""The CUDA rasterizer: ``gsplat.rasterization`` behind our API.

gsplat (Ye et al. 2024, "gsplat: An Open-Source Library for Gaussian Splatting") is called with
render_mode "RGB+ED", rasterize_mode "classic" (eps2d dilation, no opacity compensation) and
packed=False, which are the conventions documented in ``gen3d.recon.rasterize``. Its outputs and
``meta`` dict are converted into the tuple every backend returns.

Versions: gsplat 1.4 (nerfstudio's pin) returns radii (C, N) from the 3-sigma rule, exactly ours;
gsplat 1.5 returns opacity-aware per-axis radii (C, N, 2) (Radl et al. 2024, "StopThePop", Sec. B.2),
reduced here to (C, N) by their max. With 1.5 a Gaussian is evaluated wherever alpha >= 1/255
rather than in the tiles its 3-sigma square touches, so images differ from 1.4 (and from our CPU
backends) at the edges of opaque footprints.

Only import this module after checking ``torch.cuda.is_available()``: gsplat compiles its CUDA
kernels on first use and, without a GPU, fails with a misleading "gsplat_cuda.so" error.
"""

from __future__ import annotations

from torch import Tensor

from gen3d.errors import DeviceError


def _import_gsplat():
    try:
        import gsplat
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise DeviceError(
            "backend='gsplat' needs the gsplat package (pip install 'gsplat>=1.4'); "
            "or use backend='tiled' on CPU tensors"
        ) from e
    return gsplat


def rasterize_gsplat(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    backgrounds: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Colours (C,H,W,3), alphas (C,H,W,1), expected depths (C,H,W,1), means2d (C,N,2), radii (C,N)."""
    gsplat = _import_gsplat()
    renders, alphas, meta = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, sh_degree=sh_degree,
        backgrounds=backgrounds, render_mode="RGB+ED", rasterize_mode="classic", packed=False,
    )  # fmt: skip
    means2d = meta["means2d"]
    if means2d.requires_grad:
        means2d.retain_grad()  # what gsplat's densification strategies read after backward
    radii = meta["radii"]
    if radii.ndim == 3:  # gsplat >= 1.5: per-axis radii
        radii = radii.max(dim=-1).values
    return renders[..., :3], alphas, renders[..., 3:4], means2d, radii.int()
