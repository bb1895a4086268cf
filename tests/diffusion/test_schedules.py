"""Schedules: closed forms, the sigma convention, and element-wise parity with diffusers' tables."""

import math

import pytest
import torch

from gen3d.diffusion import schedules as S


def test_ddpm_linear_table_matches_diffusers_elementwise():
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(beta_schedule="linear").alphas_cumprod.double()  # float32 in diffusers
    ours = S.ddpm_linear_alpha_bar()
    assert ours.shape == ref.shape == (1000,)
    # diffusers builds betas in float32: relative error ~1e-6 is float32 rounding, not a formula change
    torch.testing.assert_close(ours, ref, rtol=2e-5, atol=0)


def test_cosine_table_matches_diffusers_elementwise():
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(beta_schedule="squaredcos_cap_v2").alphas_cumprod.double()
    torch.testing.assert_close(S.cosine_alpha_bar(), ref, rtol=2e-5, atol=1e-9)


def test_cosine_closed_form_eq17():
    # Nichol & Dhariwal eq. 17 evaluated by hand at t = T/2 (clipping is inactive there)
    t = 500
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    assert S.cosine_alpha_bar()[t - 1].item() == pytest.approx(f(t / 1000) / f(0), rel=1e-9)
    assert S.cosine_alpha_bar_continuous(torch.tensor(0.5, dtype=torch.float64)).item() == pytest.approx(f(0.5) / f(0))


def test_continuous_vp_is_limit_of_discrete_ddpm():
    # Song et al. 2021: beta_min = T * 1e-4, beta_max = T * 0.02; prod(1 - beta) = exp(-sum beta) + O(beta^2)
    table = S.ddpm_linear_alpha_bar()
    t = torch.tensor([100, 300, 600, 999], dtype=torch.float64)
    cont = S.vp_linear_alpha_bar_continuous((t + 1) / 1000)
    rel = (cont.log() - table[t.long()].log()).abs() / table[t.long()].log().abs()
    assert rel.max() < 0.02  # second-order terms sum of beta^2/2 are < 2% of -log abar


@pytest.mark.parametrize("sigma", [0.01, 0.5, 3.0, 80.0])
def test_vp_and_flow_are_rescalings_of_sigma_form(sigma):
    g = torch.Generator().manual_seed(0)
    x0, n = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    s = torch.full((5,), sigma, dtype=torch.float64)
    x = S.add_noise(x0, s, n)
    ab = S.sigma_to_alpha_bar(s)
    torch.testing.assert_close(S.vp_diffuse(x0, ab, n) * (1 + sigma**2) ** 0.5, x)  # EDM Table 1, VP
    t = S.sigma_to_flow_t(s)
    torch.testing.assert_close(S.flow_interpolate(x0, n, t) * (1 + sigma), x)
    torch.testing.assert_close(S.alpha_bar_to_sigma(ab), s)
    torch.testing.assert_close(S.flow_t_to_sigma(t), s)


def test_vp_kernel_moments_match_samples():
    g = torch.Generator().manual_seed(1)
    x0 = torch.tensor([[1.5, -2.0]], dtype=torch.float64).expand(200_000, 2)
    ab = torch.full((200_000,), 0.3, dtype=torch.float64)
    xt = S.vp_diffuse(x0, ab, torch.randn(200_000, 2, generator=g, dtype=torch.float64))
    mean, std = S.vp_kernel_moments(x0[:1], ab[:1])
    # standard error of the mean ~ std / sqrt(2e5) ~ 2e-3: allow 4 SE
    torch.testing.assert_close(xt.mean(0), mean[0], atol=8e-3, rtol=0)
    torch.testing.assert_close(xt.std(0), std[0], atol=8e-3, rtol=0)
    assert mean[0, 0].item() == pytest.approx(0.3**0.5 * 1.5)


def test_karras_grid_eq5():
    s = S.karras_sigmas(18)
    assert len(s) == 19 and s[-1] == 0
    assert s[0].item() == pytest.approx(80.0) and s[-2].item() == pytest.approx(0.002)
    assert bool((s[1:] < s[:-1]).all())
    lin = S.karras_sigmas(5, sigma_min=1.0, sigma_max=5.0, rho=1.0)  # rho = 1: evenly spaced
    torch.testing.assert_close(lin[:-1], torch.tensor([5.0, 4, 3, 2, 1], dtype=torch.float64))


def test_ddpm_and_flow_grids():
    s = S.ddpm_sigmas(10)
    table = S.ddpm_linear_alpha_bar()
    assert s[0].item() == pytest.approx(S.alpha_bar_to_sigma(table[999]).item())  # ~157
    assert s[-2].item() == pytest.approx(S.alpha_bar_to_sigma(table[0]).item())  # ~0.01
    f = S.flow_sigmas(4, t_max=0.8)
    torch.testing.assert_close(S.sigma_to_flow_t(f), torch.tensor([0.8, 0.6, 0.4, 0.2, 0.0], dtype=torch.float64))
    shifted = S.sigma_to_flow_t(S.flow_sigmas(4, t_max=0.8, shift=3.0))
    assert shifted[2].item() == pytest.approx(3 * 0.4 / (1 + 2 * 0.4))  # SD3 eq. 23
    with pytest.raises(ValueError):
        S.flow_sigmas(4, t_max=1.0)
    with pytest.raises(ValueError):
        S.karras_sigmas(0)


def test_timestep_sigma_roundtrip():
    table = S.ddpm_linear_alpha_bar()
    t = torch.tensor([0.0, 17.0, 500.0, 998.5, 999.0], dtype=torch.float64)
    sig = S.timestep_to_sigma(t, table)
    assert sig[2].item() == pytest.approx(S.alpha_bar_to_sigma(table[500]).item())  # integer t: exact entry
    torch.testing.assert_close(S.sigma_to_timestep(sig, table), t, atol=1e-6, rtol=0)
