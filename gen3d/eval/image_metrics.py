"""Image metrics in torch: PSNR and SSIM, batched over (B, C, H, W) and differentiable.

SSIM follows Wang, Bovik, Sheikh and Simoncelli 2004, "Image quality assessment: from error
visibility to structural similarity", with their defaults: an 11x11 Gaussian window of sigma 1.5
(normalised to sum 1), K1 = 0.01, K2 = 0.03, population (not sample) statistics. Only the pixels
whose whole window lies inside the image are kept ("valid" filtering), which is what
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)`` averages over, so the two agree. We write it in torch (rather than
call scikit-image) because reconstruction uses ``1 - ssim`` as a loss and needs its gradient.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(pred.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")


def _mask_like(mask: Tensor, image: Tensor) -> Float[Tensor, "B C H W"]:
    """A (B, H, W), (B, 1, H, W) or (B, C, H, W) mask as float weights broadcast to the image."""
    if mask.ndim == 3:
        mask = mask[:, None]
    B, C, H, W = image.shape
    if mask.ndim != 4 or mask.shape[0] != B or mask.shape[-2:] != (H, W) or mask.shape[1] not in (1, C):
        raise ValueError(
            f"mask must have shape ({B}, H, W), ({B}, 1, H, W) or ({B}, {C}, H, W) with H, W = {H}, {W};"
            f" got {tuple(mask.shape)}"
        )
    return mask.to(image.dtype).expand(B, C, H, W)


def _masked_mean(values: Float[Tensor, "B C H W"], mask: Tensor | None) -> Float[Tensor, " B"]:
    if mask is None:
        return values.mean(dim=(1, 2, 3))
    weights = _mask_like(mask, values)
    total = weights.sum(dim=(1, 2, 3))
    if bool((total <= 0).any()):
        empty = torch.nonzero(total <= 0).flatten().tolist()
        raise ValueError(f"the mask selects no pixels in image(s) {empty}")
    return (values * weights).sum(dim=(1, 2, 3)) / total


def psnr(
    pred: Float[Tensor, "B C H W"],
    target: Float[Tensor, "B C H W"],
    mask: Tensor | None = None,
    data_range: float = 1.0,
) -> Float[Tensor, " B"]:
    """Peak signal-to-noise ratio per image, ``10 log10(data_range^2 / MSE)`` in dB.

    The MSE is taken over all channels of the pixels the mask selects (weights in [0, 1]; a
    boolean mask works); identical images give +inf.
    """
    _check_pair(pred, target)
    mse = _masked_mean((pred - target) ** 2, mask)
    return 10 * torch.log10(data_range**2 / mse)


def gaussian_window(
    size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32, device=None
) -> Float[Tensor, " size"]:
    """1D Gaussian weights ``exp(-x^2 / (2 sigma^2))`` at integer offsets, normalised to sum 1."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def _filter(x: Float[Tensor, "B C H W"], window: Float[Tensor, " K"]) -> Tensor:
    """Separable 'valid' Gaussian filtering of every channel (output H-K+1 x W-K+1).

    A weighted sum of K shifted views per axis, accumulated in place (autograd-safe: the sum is a
    fresh tensor and addition saves nothing for backward). On CPU this beats conv2d, whose oneDNN
    backward for single-channel 1D kernels is slow: SSIM on 8x3x256x256, 2 busy cores, forward /
    forward+backward: 0.23 / 1.0 s this way, 1.2 / 6.8 s with conv2d.
    """
    K = window.shape[0]
    H, W = x.shape[-2:]
    w = window.tolist()
    rows = x[..., :, 0 : W - K + 1] * w[0]
    for k in range(1, K):
        rows = rows.add_(x[..., :, k : W - K + 1 + k], alpha=w[k])
    out = rows[..., 0 : H - K + 1, :] * w[0]
    for k in range(1, K):
        out = out.add_(rows[..., k : H - K + 1 + k, :], alpha=w[k])
    return out


def ssim_map(
    pred: Float[Tensor, "B C H W"],
    target: Float[Tensor, "B C H W"],
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Float[Tensor, "B C h w"]:
    """Local SSIM at every pixel whose window fits inside the image (h = H - window_size + 1)."""
    _check_pair(pred, target)
    if min(pred.shape[-2:]) < window_size:
        raise ValueError(
            f"images must be at least {window_size} pixels on each side, got {tuple(pred.shape[-2:])}"
        )
    C = pred.shape[1]
    window = gaussian_window(window_size, sigma, pred.dtype, pred.device)
    # One filtering pass over the five local moments: E[x], E[y], E[x^2], E[y^2], E[xy].
    moments = _filter(torch.cat([pred, target, pred * pred, target * target, pred * target], dim=1), window)
    mu_x, mu_y, e_xx, e_yy, e_xy = moments.split(C, dim=1)
    var_x = e_xx - mu_x**2
    var_y = e_yy - mu_y**2
    cov_xy = e_xy - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2  # Wang et al. 2004, Eq. (7) and (9)
    # Wang et al. 2004, Eq. (13): luminance x contrast-structure with C3 = C2 / 2.
    return ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def ssim(
    pred: Float[Tensor, "B C H W"],
    target: Float[Tensor, "B C H W"],
    mask: Tensor | None = None,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Float[Tensor, " B"]:
    """Mean SSIM per image (Wang et al. 2004 MSSIM, Eq. (17)), averaged over channels too.

    With a mask (shape (B, H, W), (B, 1, H, W) or (B, C, H, W)), the SSIM map is averaged with the
    mask's weights, cropped like the map to the pixels whose window fits inside the image.
    """
    s = ssim_map(pred, target, data_range, window_size, sigma, k1, k2)
    if mask is not None:
        r = (window_size - 1) // 2
        mask = _mask_like(mask, pred)[..., r : r + s.shape[-2], r : r + s.shape[-1]]
    return _masked_mean(s, mask)


def silhouette_breakdown(
    pred: Float[Tensor, "H W 3"],
    pred_alpha: Float[Tensor, "H W"],
    target: Float[Tensor, "H W 3"],
    target_mask: Float[Tensor, "H W"],
    threshold: float = 0.5,
) -> dict[str, float]:
    """Where a rendered view's error comes from: the silhouette, or the colour inside it.

    Pixels where exactly one of ``pred_alpha`` and ``target_mask`` is at least ``threshold`` are
    silhouette pixels (``excess``: rendered but not in the target; ``missing``: the reverse); pixels
    inside both are interior. Returns the PSNR, the PSNR with the silhouette pixels' error removed
    (``psnr_perfect_silhouette``: what a perfect silhouette would reach with the same colours), the
    PSNR with the interior error removed (``psnr_perfect_interior``), the silhouette share of the
    squared error, and the excess and missing pixel counts.
    """
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and target must both be (H, W, 3); got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred_alpha.shape != pred.shape[:2] or target_mask.shape != pred.shape[:2]:
        raise ValueError(f"alpha and mask must be (H, W) = {tuple(pred.shape[:2])}; got "
                         f"{tuple(pred_alpha.shape)} and {tuple(target_mask.shape)}")
    se = ((pred.float() - target.float()) ** 2).mean(-1)
    a, m = pred_alpha >= threshold, target_mask >= threshold
    sil, inner = a ^ m, a & m
    n, total = se.numel(), se.sum()

    def db(sq: Tensor) -> float:
        return float("inf") if float(sq) <= 0 else float(-10 * torch.log10(sq / n))

    return {
        "psnr": db(total),
        "psnr_perfect_silhouette": db(total - se[sil].sum()),
        "psnr_perfect_interior": db(total - se[inner].sum()),
        "silhouette_share": float(se[sil].sum() / total) if float(total) > 0 else 0.0,
        "excess_px": int((a & ~m).sum()),
        "missing_px": int((m & ~a).sum()),
    }
