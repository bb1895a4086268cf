"""PSNR against closed forms; SSIM against scikit-image element-wise, and its gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from gen3d.eval.image_metrics import gaussian_window, psnr, silhouette_breakdown, ssim, ssim_map


def noisy_pair(shape, seed=0, noise=0.1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=dtype)
    y = (x + noise * torch.randn(shape, generator=g, dtype=dtype)).clamp(0, 1)
    return x, y


def skimage_ssim(x: torch.Tensor, y: torch.Tensor) -> tuple[float, np.ndarray]:
    """scikit-image's SSIM of one (C, H, W) pair with Wang et al.'s settings: (mean, full map)."""
    return structural_similarity(
        x.double().numpy(),
        y.double().numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=0,
        full=True,
    )


@pytest.mark.parametrize("shape", [(1, 1, 11, 11), (2, 3, 32, 40), (3, 1, 17, 23)])
def test_ssim_matches_skimage_elementwise(shape):
    x, y = noisy_pair(shape)
    ours_map, ours = ssim_map(x, y), ssim(x, y)
    assert ours_map.shape == (shape[0], shape[1], shape[2] - 10, shape[3] - 10)
    for b in range(shape[0]):
        mean, full = skimage_ssim(x[b], y[b])
        # scikit-image filters the reflect-padded image, then averages the map without a 5-pixel border.
        np.testing.assert_allclose(ours_map[b].numpy(), full[:, 5:-5, 5:-5], rtol=0, atol=1e-12)
        assert ours[b].item() == pytest.approx(mean, abs=1e-12)


def test_ssim_float32_close_to_float64():
    x, y = noisy_pair((2, 3, 24, 24), seed=1)
    np.testing.assert_allclose(ssim(x.float(), y.float()).numpy(), ssim(x, y).numpy(), atol=1e-5)


def test_ssim_identity_symmetry_and_ordering():
    x, y = noisy_pair((2, 3, 24, 24), seed=2, noise=0.05)
    _, z = noisy_pair((2, 3, 24, 24), seed=2, noise=0.2)
    torch.testing.assert_close(ssim(x, x), torch.ones(2, dtype=x.dtype))
    torch.testing.assert_close(ssim(x, y), ssim(y, x))
    assert (ssim(x, y) > ssim(x, z)).all()  # more noise, less similar


def test_ssim_gradient_is_exact_and_descends():
    x, y = noisy_pair((1, 2, 13, 14), seed=3)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: ssim(a, y), (x,))
    # A few gradient steps on 1 - SSIM must raise SSIM (the loss reconstruction uses).
    x0, target = noisy_pair((2, 3, 16, 16), seed=4, noise=0.3, dtype=torch.float32)
    x0.requires_grad_(True)
    opt = torch.optim.Adam([x0], lr=0.02)
    start = ssim(x0, target).detach()
    for _ in range(20):
        opt.zero_grad()
        (1 - ssim(x0, target)).sum().backward()
        opt.step()
    assert (ssim(x0, target).detach() > start + 0.05).all()


def test_gaussian_window():
    w = gaussian_window(11, 1.5, torch.float64)
    assert w.shape == (11,) and w.sum().item() == pytest.approx(1.0)
    assert w[5] / w[6] == pytest.approx(np.exp(1 / (2 * 1.5**2)))
    torch.testing.assert_close(w, w.flip(0))


def test_masked_ssim():
    x, y = noisy_pair((2, 3, 24, 30), seed=5)
    torch.testing.assert_close(ssim(x, y, mask=torch.ones(2, 24, 30)), ssim(x, y))
    mask = torch.zeros(2, 1, 24, 30)
    mask[:, :, 5:12, 5:15] = 1  # map rows 0:7, cols 0:10
    expected = ssim_map(x, y)[:, :, 0:7, 0:10].mean(dim=(1, 2, 3))
    torch.testing.assert_close(ssim(x, y, mask=mask), expected)


@pytest.mark.parametrize("offset,expected_db", [(0.1, 20.0), (0.01, 40.0), (0.5, 10 * np.log10(4))])
def test_psnr_of_a_constant_offset(offset, expected_db):
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64) * 0.4
    torch.testing.assert_close(psnr(x + offset, x), torch.full((2,), expected_db, dtype=torch.float64))


def test_psnr_is_per_image_and_respects_data_range():
    x = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    y = x.clone()
    y[0] += 0.1
    y[1] += 0.01
    torch.testing.assert_close(psnr(y, x), torch.tensor([20.0, 40.0], dtype=torch.float64))
    torch.testing.assert_close(
        psnr(255 * y, 255 * x, data_range=255.0), torch.tensor([20.0, 40.0], dtype=torch.float64)
    )
    assert torch.isinf(psnr(x, x)).all()


def test_psnr_with_a_mask():
    x = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    y = x.clone()
    y[..., :4] += 0.1  # error only in the left half
    y[..., 4:] += 0.5 * torch.rand(1, 3, 8, 4, dtype=torch.float64)
    left = torch.zeros(1, 8, 8, dtype=torch.bool)
    left[..., :4] = True
    torch.testing.assert_close(psnr(y, x, mask=left), torch.tensor([20.0], dtype=torch.float64))
    # Soft weights: half-weighting the error-free pixels changes the mean accordingly.
    z = x.clone()
    z[..., :4] += 0.1
    weights = torch.where(left, 1.0, 0.5)[:, None].double()
    mse = (0.01 * 32) / (32 + 0.5 * 32)
    torch.testing.assert_close(
        psnr(z, x, mask=weights), torch.tensor([10 * np.log10(1 / mse)], dtype=torch.float64)
    )


def test_bad_inputs_raise_clear_errors():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        psnr(x[0], x[0])
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(x, x[:, :2])
    with pytest.raises(ValueError, match="at least 11"):
        ssim(x[..., :10], x[..., :10])
    with pytest.raises(ValueError, match="no pixels"):
        psnr(x, x + 0.1, mask=torch.zeros(1, 16, 16))
    with pytest.raises(ValueError, match="mask must have shape"):
        psnr(x, x, mask=torch.ones(1, 2, 16, 16))


def test_silhouette_breakdown_splits_the_error():
    # A 10x10 white image; the target is a red 4x4 square, the render a red 4x6 block (2 columns of
    # excess) whose interior is 0.1 too dark in one channel on 4 pixels.
    target = torch.ones(10, 10, 3)
    mask = torch.zeros(10, 10)
    target[2:6, 2:6] = torch.tensor([1.0, 0.0, 0.0])
    mask[2:6, 2:6] = 1
    pred, alpha = target.clone(), mask.clone()
    pred[2:6, 6:8] = torch.tensor([1.0, 0.0, 0.0])
    alpha[2:6, 6:8] = 1
    pred[2:4, 2:4, 0] = 0.9
    b = silhouette_breakdown(pred, alpha, target, mask)
    sil_sq, in_sq = 8 * (2 / 3), 4 * (0.01 / 3)  # per-pixel squared error averaged over channels
    assert b["excess_px"] == 8 and b["missing_px"] == 0
    assert b["silhouette_share"] == pytest.approx(sil_sq / (sil_sq + in_sq))
    assert b["psnr"] == pytest.approx(-10 * np.log10((sil_sq + in_sq) / 100), rel=1e-5)
    assert b["psnr_perfect_silhouette"] == pytest.approx(-10 * np.log10(in_sq / 100), rel=1e-5)
    assert b["psnr_perfect_interior"] == pytest.approx(-10 * np.log10(sil_sq / 100), rel=1e-5)
    # the metric agrees with psnr() on the same pair
    assert b["psnr"] == pytest.approx(float(psnr(pred.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None])), rel=1e-5)
    assert silhouette_breakdown(target, mask, target, mask)["psnr"] == float("inf")
    with pytest.raises(ValueError, match="alpha and mask"):
        silhouette_breakdown(pred, alpha[:5], target, mask)
