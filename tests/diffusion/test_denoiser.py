"""The prediction-type boundary: each parameterisation checked against its paper's formula."""

import pytest
import torch
from torch import nn

from gen3d.diffusion.denoiser import (
    PREDICTIONS,
    Precond,
    PrecondConfig,
    coefficients,
    denoised_from_prediction,
    native_weight,
    noise_input,
    prediction_from_denoised,
)
from gen3d.diffusion.schedules import alpha_bar_to_sigma, ddpm_linear_alpha_bar

SIGMAS = torch.tensor([0.002, 0.1, 0.7, 5.0, 80.0], dtype=torch.float64)


def _draw(seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(5, 2, 3, generator=g, dtype=torch.float64)
    n = torch.randn(5, 2, 3, generator=g, dtype=torch.float64)
    return x0, n


def _independent(prediction, x0, n, s, sd=0.5):
    """(expected network input, expected target) written from each paper, not from coefficients()."""
    s = s.reshape(-1, 1, 1)
    a, b = 1 / (1 + s**2).sqrt(), s / (1 + s**2).sqrt()  # VP: x_t = a x0 + b n
    x_vp = a * x0 + b * n
    if prediction == "eps":  # Ho et al. 2020: predict n from x_t
        return x_vp, n
    if prediction == "v":  # Salimans & Ho 2022: v = a n - b x0
        return x_vp, a * n - b * x0
    if prediction == "x0":
        return x_vp, x0
    if prediction == "flow":  # rectified flow: input (1 - t) x0 + t n, target n - x0
        t = s / (1 + s)
        return (1 - t) * x0 + t * n, n - x0
    # EDM eq. 7-8: input x / sqrt(s^2 + sd^2), target (x0 - c_skip x) / c_out
    x = x0 + s * n
    c_skip, c_out = sd**2 / (s**2 + sd**2), s * sd / (s**2 + sd**2).sqrt()
    return x / (s**2 + sd**2).sqrt(), (x0 - c_skip * x) / c_out


class _Oracle(nn.Module):
    """A 'network' that records its input and outputs a given target."""

    def __init__(self, target):
        super().__init__()
        self.target, self.seen = target, None

    def forward(self, x, c_noise, tokens=None, embedding=None, labels=None, views=1):
        self.seen = (x, c_noise)
        return self.target


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_precond_input_target_and_denoised_match_papers(prediction):
    x0, n = _draw()
    exp_in, exp_target = _independent(prediction, x0, n, SIGMAS)
    oracle = _Oracle(exp_target)
    pc = Precond(oracle, PrecondConfig(prediction=prediction))
    x = x0 + SIGMAS.reshape(-1, 1, 1) * n
    d = pc(x, SIGMAS)
    torch.testing.assert_close(oracle.seen[0], exp_in)  # the network sees what its paper feeds it
    torch.testing.assert_close(pc.target(x0, n, SIGMAS), exp_target)
    # the exact target must decode to the exact clean sample (float64: only rounding remains)
    torch.testing.assert_close(d, x0, atol=1e-9, rtol=1e-9)


def test_edm_target_has_unit_variance():
    # EDM's design rule (App. B.6): with x0 ~ N(0, sd^2), Var[F*] = 1 at every sigma
    g = torch.Generator().manual_seed(0)
    for s in SIGMAS:
        x0 = 0.5 * torch.randn(100_000, generator=g, dtype=torch.float64)
        n = torch.randn(100_000, generator=g, dtype=torch.float64)
        pc = Precond(nn.Identity(), PrecondConfig(prediction="edm", sigma_data=0.5))
        var = pc.target(x0[:, None], n[:, None], s.expand(100_000)).var().item()
        assert var == pytest.approx(1.0, abs=0.02)  # SE of a variance at 1e5 samples ~ 0.0045


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_prediction_conversions_roundtrip_and_weight_identity(prediction):
    x0, n = _draw(1)
    x = x0 + SIGMAS.reshape(-1, 1, 1) * n
    d = torch.randn_like(x)
    f = prediction_from_denoised(prediction, d, x, SIGMAS)
    torch.testing.assert_close(denoised_from_prediction(prediction, f, x, SIGMAS), d)
    # ||F - F*||^2 = ||D - x0||^2 * native_weight: the identity the objectives rely on
    target = prediction_from_denoised(prediction, x0, x, SIGMAS)
    lhs = ((f - target) ** 2).flatten(1).sum(1)
    rhs = ((d - x0) ** 2).flatten(1).sum(1) * native_weight(prediction, SIGMAS)
    torch.testing.assert_close(lhs, rhs)


def test_native_weights_are_the_known_ones():
    s = SIGMAS
    torch.testing.assert_close(native_weight("eps", s), 1 / s**2)  # SNR
    torch.testing.assert_close(native_weight("v", s), 1 / s**2 + 1)  # SNR + 1
    torch.testing.assert_close(native_weight("x0", s), torch.ones_like(s))
    torch.testing.assert_close(native_weight("flow", s), ((1 + s) / s) ** 2)
    torch.testing.assert_close(native_weight("edm", s, 0.5), (s**2 + 0.25) / (0.5 * s) ** 2)
    with pytest.raises(ValueError, match="unknown prediction"):
        coefficients("score", s, s)


def test_noise_inputs():
    s = torch.tensor([0.5, 2.0], dtype=torch.float64)
    torch.testing.assert_close(noise_input("log_sigma", s), s.log() / 4)
    torch.testing.assert_close(noise_input("flow_t", s), 1000 * s / (1 + s))
    at500 = alpha_bar_to_sigma(ddpm_linear_alpha_bar()[500]).reshape(1)
    assert noise_input("ddpm_t", at500).item() == pytest.approx(500.0, abs=1e-6)


def test_precond_rejects_bad_config_and_sigma_shape():
    with pytest.raises(ValueError):
        PrecondConfig(prediction="score")
    pc = Precond(_Oracle(torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="sigma"):
        pc(torch.zeros(2, 3), torch.ones(3))
