"""The analytic Gaussian mixture: its exact denoiser/score checked by independent computations."""

import math

import pytest
import torch

from gen3d.diffusion.conditioning import NULL_LABEL, Conditioning
from gen3d.diffusion.toy import GaussianMixture, sliced_wasserstein, toy_2d, toy_nd


def _log_prob_reference(gmm: GaussianMixture, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """log p_sigma via torch.distributions (Cholesky), independent of the mixture's eigen path."""
    from torch.distributions import MultivariateNormal

    eye = torch.eye(gmm.dim, dtype=torch.float64)
    comps = MultivariateNormal(gmm.means, covariance_matrix=gmm.covs + sigma**2 * eye)
    lp = comps.log_prob(x.reshape(x.shape[0], 1, -1).double())  # (B, K)
    return torch.logsumexp(lp + gmm.weights.log(), dim=1)


@pytest.mark.parametrize("gmm", [toy_2d(), toy_nd(5, k=4, seed=3)], ids=["2d", "5d"])
@pytest.mark.parametrize("sigma", [0.05, 0.6, 4.0])
def test_score_equals_autograd_of_reference_log_density(gmm, sigma):
    g = torch.Generator().manual_seed(0)
    x = (gmm.sample(64, g)[0].double() + sigma * torch.randn(64, gmm.dim, generator=g, dtype=torch.float64))
    x.requires_grad_(True)
    ref_score = torch.autograd.grad(_log_prob_reference(gmm, x, sigma).sum(), x)[0]
    torch.testing.assert_close(gmm.score(x.detach(), sigma), ref_score, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(gmm.log_prob(x.detach(), sigma), _log_prob_reference(gmm, x.detach(), sigma))


def test_denoiser_matches_monte_carlo_posterior_mean():
    # E[x0 | x] by self-normalised importance sampling over exact data samples (Tweedie-free check)
    gmm = toy_2d()
    g = torch.Generator().manual_seed(1)
    x0, _ = gmm.sample(400_000, g)
    x0 = x0.double()
    for sigma, x in [(0.3, [1.8, 0.4]), (1.0, [-0.5, 1.0]), (2.5, [3.0, -3.0])]:
        xq = torch.tensor([x], dtype=torch.float64)
        logw = -((xq - x0) ** 2).sum(1) / (2 * sigma**2)
        w = torch.softmax(logw, 0)
        mc = (w[:, None] * x0).sum(0)
        ess = 1 / (w**2).sum()
        # MC standard error ~ posterior std / sqrt(ESS); posterior std <= data std ~ 1.4
        tol = 4 * 1.4 / ess.sqrt()
        assert (gmm.denoise(xq, sigma)[0] - mc).abs().max() < tol, (sigma, ess)


def test_sampling_moments_and_class_conditionals():
    gmm = toy_nd(4, k=5, seed=2)
    g = torch.Generator().manual_seed(2)
    x, labels = gmm.sample(200_000, g)
    # SE of the mean ~ 1.5 / sqrt(2e5) ~ 3e-3; of a covariance entry ~ 2 / sqrt(2e5) ~ 5e-3
    torch.testing.assert_close(x.double().mean(0), gmm.mean(), atol=0.015, rtol=0)
    torch.testing.assert_close(torch.cov(x.double().T), gmm.cov(), atol=0.03, rtol=0)
    assert set(labels.tolist()) == {0, 1}
    _, lc = gmm.sample(1000, g, labels=torch.zeros(1000, dtype=torch.long))
    assert (lc == 0).all()


def test_class_conditional_denoiser_limits():
    gmm = toy_2d()
    x = torch.randn(6, 2, dtype=torch.float64)
    huge = 1e4  # at sigma -> inf, D -> the (class) mean of the data
    for c in (0, 1):
        d = gmm.denoise(x, huge, Conditioning(labels=torch.full((6,), c)))
        keep = gmm.labels == c
        class_mean = (gmm.weights[keep, None] * gmm.means[keep]).sum(0) / gmm.weights[keep].sum()
        torch.testing.assert_close(d, class_mean.expand(6, 2), atol=1e-6, rtol=0)
    null = gmm.denoise(x, 0.5, Conditioning(labels=torch.full((6,), NULL_LABEL)))
    torch.testing.assert_close(null, gmm.denoise(x, 0.5))
    # posterior over classes sums to one and is confident at a component mean
    post = gmm.class_posterior(gmm.means[:2].float())
    torch.testing.assert_close(post.sum(1), torch.ones(2, dtype=torch.float64))
    assert post[0, 0] > 0.99 and post[1, 1] > 0.99


def test_image_shaped_mixture_roundtrips_shape():
    gmm = toy_nd(16, k=3, shape=(1, 4, 4))
    x, _ = gmm.sample(8)
    assert x.shape == (8, 1, 4, 4)
    assert gmm.denoise(x, 0.3).shape == x.shape
    with pytest.raises(ValueError):
        toy_nd(16, shape=(2, 4, 4))


def test_sliced_wasserstein_closed_forms():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(2000, 3, generator=g)
    assert sliced_wasserstein(a, a) == 0.0
    m = torch.tensor([0.9, -1.2, 0.0])
    # a shift m moves every 1-D projection by theta.m: SW2^2 = E[(theta.m)^2] = |m|^2 / d
    expected = m.norm().item() / math.sqrt(3)
    assert sliced_wasserstein(a, a + m, num_projections=1000) == pytest.approx(expected, rel=0.05)  # ~3.5 MC SE
    # unequal sizes go through quantiles; two samples of one law are close (noise floor ~ 0.04 here)
    assert sliced_wasserstein(a, torch.randn(1500, 3, generator=g)) < 0.08
    with pytest.raises(ValueError):
        sliced_wasserstein(a, a[:, :2])
