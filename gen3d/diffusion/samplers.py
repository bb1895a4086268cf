"""Samplers: each one small function from (denoiser, unit noise, sigma grid) to samples and an NFE count.

All of them integrate the same reverse process written in sigma form, x = x0 + sigma n, with the
denoiser D(x, sigma, cond) as the only model access (``denoiser.py`` converts eps / v / flow outputs).
The probability-flow ODE and the reverse SDE in this form are (Karras et al. 2022, "EDM", eq. 4 and 6
with sigma(t) = t, s(t) = 1):

    dx/dsigma = (x - D(x, sigma)) / sigma                                  (PF-ODE)
    dx = -2 sigma grad log p dsigma + sqrt(2 sigma) dw   (sigma decreasing), grad log p = (D - x) / sigma^2

A grid is a descending tensor of ``steps + 1`` sigmas ending in 0 (see ``schedules``); every sampler
starts from x = sigma_0 * noise and returns x at sigma = 0. NFE counts calls of the denoiser (with
classifier-free guidance one call costs two network evaluations, batched together).

Why our own: diffusers' schedulers are stateful objects tied to discrete training timesteps and to
one prediction type each; EDM-style functions over a sigma grid are shorter, compose with any
denoiser and are what the exact-score tests check. diffusers' schedulers (DPM-Solver++, UniPC, ...)
plug into the same interface through ``diffusers_interop``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import Tensor
from tqdm.auto import tqdm

from gen3d.diffusion.conditioning import Conditioning
from gen3d.diffusion.denoiser import Denoiser
from gen3d.diffusion.schedules import ddpm_sigmas, flow_sigmas, karras_sigmas, sigma_to_flow_t


@dataclass(frozen=True)
class SampleResult:
    """Samples at sigma = 0, the number of denoiser calls, and optionally the states at each grid sigma."""

    x: Tensor
    nfe: int
    sigmas: Tensor  # the grid (steps + 1,)
    trajectory: Tensor | None = None  # (steps + 1, B, *D) in sigma form, x at sigmas[i]


class _Counted:
    """Wraps a denoiser: counts calls, broadcasts scalar sigma to the batch, shows progress."""

    def __init__(self, denoiser: Denoiser, cond: Conditioning | None, total: int, progress: bool):
        self.denoiser, self.cond, self.calls = denoiser, cond, 0
        self.bar = tqdm(total=total, desc="sampling", unit="nfe", leave=False, disable=not progress)

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        self.calls += 1
        self.bar.update(1)
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0])
        return self.denoiser(x, s, self.cond)


def _setup(denoiser, noise, sigmas, cond, nfe_bound, progress):
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.ndim != 1 or len(sigmas) < 2 or sigmas[-1] != 0 or not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError("sigmas must be a strictly decreasing 1-D grid ending in 0 (see gen3d.diffusion.schedules)")
    return _Counted(denoiser, cond, nfe_bound, progress), sigmas, noise * float(sigmas[0])


def _result(D: _Counted, x: Tensor, sigmas: Tensor, traj: list[Tensor] | None) -> SampleResult:
    D.bar.close()
    return SampleResult(x=x, nfe=D.calls, sigmas=sigmas, trajectory=None if traj is None else torch.stack(traj))


def _randn(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Noise drawn on the CPU from ``generator`` so seeded runs match across devices."""
    return torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)


# --------------------------------------------------------------------------------------------------
# Discrete-time samplers (DDPM / DDIM), written in sigma form
# --------------------------------------------------------------------------------------------------


def ddpm(denoiser, noise, sigmas, cond=None, generator=None, trajectory=False, progress=False) -> SampleResult:
    """Ancestral sampling: draw x_{i+1} from the forward-process posterior q(x_{i+1} | x_i, x0 = D).

    Ho et al. 2020, eq. 6-7; in sigma form the posterior of x_s given x_t and x0 is
    N(x0 + (s^2 / t^2)(x_t - x0), s^2 (t^2 - s^2) / t^2) for noise levels t > s.
    """
    D, sigmas, x = _setup(denoiser, noise, sigmas, cond, len(sigmas) - 1, progress)
    traj = [x] if trajectory else None
    for t, s in pairwise(sigmas):
        x0 = D(x, t)
        mean = x0 + (s**2 / t**2) * (x - x0)  # eq. 7, posterior mean (VP scale divided out)
        std = s * (t**2 - s**2).sqrt() / t  # eq. 7, beta-tilde (sigma form)
        x = mean + std * _randn(x, generator) if s > 0 else mean
        if traj is not None:
            traj.append(x)
    return _result(D, x, sigmas, traj)


def ddim(denoiser, noise, sigmas, cond=None, generator=None, eta=0.0, trajectory=False, progress=False) -> SampleResult:
    """DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12 with sigma_t(eta) of eq. 16).

    In sigma form: x_s = D + sqrt(s^2 - c^2) eps_hat + c z, eps_hat = (x_t - D) / t, and
    c = eta * s sqrt(t^2 - s^2) / t. eta = 0 is deterministic (and equals Euler on the PF-ODE),
    eta = 1 is the DDPM posterior.
    """
    D, sigmas, x = _setup(denoiser, noise, sigmas, cond, len(sigmas) - 1, progress)
    traj = [x] if trajectory else None
    for t, s in pairwise(sigmas):
        x0 = D(x, t)
        eps = (x - x0) / t  # eq. 12, predicted noise
        c = eta * s * (t**2 - s**2).sqrt() / t  # eq. 16 divided by sqrt(abar_s)
        x = x0 + (s**2 - c**2).clamp(min=0).sqrt() * eps
        if c > 0:
            x = x + c * _randn(x, generator)
        if traj is not None:
            traj.append(x)
    return _result(D, x, sigmas, traj)


# --------------------------------------------------------------------------------------------------
# Probability-flow ODE
# --------------------------------------------------------------------------------------------------


def euler(denoiser, noise, sigmas, cond=None, generator=None, trajectory=False, progress=False) -> SampleResult:
    """First-order Euler on the PF-ODE dx/dsigma = (x - D) / sigma (EDM eq. 4, Algorithm 1 without line 9-11)."""
    D, sigmas, x = _setup(denoiser, noise, sigmas, cond, len(sigmas) - 1, progress)
    traj = [x] if trajectory else None
    for t, s in pairwise(sigmas):
        d = (x - D(x, t)) / t  # EDM Alg. 1 line 4
        x = x + (s - t) * d  # line 5
        if traj is not None:
            traj.append(x)
    return _result(D, x, sigmas, traj)


def heun(denoiser, noise, sigmas, cond=None, generator=None, trajectory=False, progress=False) -> SampleResult:
    """EDM's deterministic 2nd-order sampler (Karras et al. 2022, Algorithm 1): Heun's method, with an
    Euler last step to sigma = 0. NFE = 2 * steps - 1."""
    return edm_stochastic(denoiser, noise, sigmas, cond, generator, s_churn=0.0, trajectory=trajectory, progress=progress)


def edm_stochastic(
    denoiser,
    noise,
    sigmas,
    cond=None,
    generator=None,
    s_churn: float = 40.0,
    s_tmin: float = 0.05,
    s_tmax: float = 50.0,
    s_noise: float = 1.0,
    trajectory=False,
    progress=False,
) -> SampleResult:
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2): add noise to raise sigma_i to
    sigma_hat = (1 + gamma) sigma_i ("churn"), then one Heun step down to sigma_{i+1}. s_churn = 0 is
    Algorithm 1. s_churn, s_tmin, s_tmax: EDM Table 5 (ImageNet-64); s_noise defaults to 1, the exact
    reverse process, not EDM's 1.003, which inflates the added noise to offset trained networks'
    over-smoothing (with an exact denoiser the two differ by less than our measurement noise)."""
    steps = len(sigmas) - 1
    D, sigmas, x = _setup(denoiser, noise, sigmas, cond, 2 * steps - 1, progress)
    traj = [x] if trajectory else None
    for i, (t, s) in enumerate(pairwise(sigmas)):
        gamma = min(s_churn / steps, 2**0.5 - 1) if s_tmin <= t <= s_tmax else 0.0  # Alg. 2 line 4
        t_hat = t * (1 + gamma)  # line 5
        if gamma > 0:
            x = x + (t_hat**2 - t**2).sqrt() * s_noise * _randn(x, generator)  # line 6
        d = (x - D(x, t_hat)) / t_hat  # line 7
        x_next = x + (s - t_hat) * d  # line 8
        if s > 0:  # line 9-11: 2nd-order correction
            d2 = (x_next - D(x_next, s)) / s
            x_next = x + (s - t_hat) * (0.5 * d + 0.5 * d2)
        x = x_next
        if traj is not None:
            traj.append(x)
    return _result(D, x, sigmas, traj)


# --------------------------------------------------------------------------------------------------
# Reverse-time SDE
# --------------------------------------------------------------------------------------------------


def euler_maruyama(denoiser, noise, sigmas, cond=None, generator=None, trajectory=False, progress=False) -> SampleResult:
    """Euler-Maruyama on the reverse-time SDE (Song et al. 2021, "Score-Based Generative Modeling
    through SDEs", eq. 6 with the VE SDE g^2 = d sigma^2 / dt; their "reverse diffusion" predictor, eq. 47):

        x_s = x_t + (t^2 - s^2) grad log p_t(x_t) + sqrt(t^2 - s^2) z,   grad log p_t = (D - x_t) / t^2.

    The last step (to sigma = 0) adds no noise."""
    D, sigmas, x = _setup(denoiser, noise, sigmas, cond, len(sigmas) - 1, progress)
    traj = [x] if trajectory else None
    for t, s in pairwise(sigmas):
        score = (D(x, t) - x) / t**2
        x = x + (t**2 - s**2) * score
        if s > 0:
            x = x + (t**2 - s**2).sqrt() * _randn(x, generator)
        if traj is not None:
            traj.append(x)
    return _result(D, x, sigmas, traj)


# --------------------------------------------------------------------------------------------------
# Flow-matching ODE (in flow time t, x_t = (1 - t) x0 + t n)
# --------------------------------------------------------------------------------------------------


def _velocity(D: _Counted, xf: Tensor, t: Tensor) -> Tensor:
    """u(x_t, t) = (x_t - D) / t, D evaluated at sigma = t / (1 - t), x = x_t / (1 - t)
    (Liu et al. 2023, eq. 1: u = n - x0, and x_t - (1 - t) x0 = t n)."""
    return (xf - D(xf / (1 - t), t / (1 - t))) / t


def flow_euler(denoiser, noise, sigmas, cond=None, generator=None, trajectory=False, progress=False) -> SampleResult:
    """Euler on the flow ODE dx_t/dt = u(x_t, t) from t_0 to 0 (Lipman et al. 2023, eq. 1 / Sec. 6;
    the rectified-flow sampler of Liu et al. 2023). Same ODE as the PF-ODE, uniform in t."""
    D, sigmas, x = _setup(denoiser, noise, sigmas, cond, len(sigmas) - 1, progress)
    ts = sigma_to_flow_t(sigmas)
    xf = x / (1 + sigmas[0])
    traj = [x] if trajectory else None
    for t, s in pairwise(ts):
        xf = xf + (s - t) * _velocity(D, xf, t)
        if traj is not None:
            traj.append(xf / (1 - s))
    return _result(D, xf, sigmas, traj)


def flow_heun(denoiser, noise, sigmas, cond=None, generator=None, trajectory=False, progress=False) -> SampleResult:
    """Heun (explicit trapezoid) on the flow ODE, Euler for the last step to t = 0 (as EDM Algorithm 1).
    NFE = 2 * steps - 1."""
    steps = len(sigmas) - 1
    D, sigmas, x = _setup(denoiser, noise, sigmas, cond, 2 * steps - 1, progress)
    ts = sigma_to_flow_t(sigmas)
    xf = x / (1 + sigmas[0])
    traj = [x] if trajectory else None
    for t, s in pairwise(ts):
        u = _velocity(D, xf, t)
        x_next = xf + (s - t) * u
        if s > 0:
            x_next = xf + (s - t) * 0.5 * (u + _velocity(D, x_next, s))
        xf = x_next
        if traj is not None:
            traj.append(xf / (1 - s))
    return _result(D, xf, sigmas, traj)


# --------------------------------------------------------------------------------------------------
# Registry: name -> (function, default grid, deterministic?)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplerSpec:
    fn: Callable[..., SampleResult]
    grid: Callable[[int], Tensor]  # steps -> sigmas
    deterministic: bool
    description: str


SAMPLERS: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec(ddpm, ddpm_sigmas, False, "DDPM ancestral (Ho et al. 2020)"),
    "ddim": SamplerSpec(ddim, ddpm_sigmas, True, "DDIM, eta = 0 (Song et al. 2021)"),
    "euler": SamplerSpec(euler, karras_sigmas, True, "PF-ODE, Euler (EDM grid)"),
    "heun": SamplerSpec(heun, karras_sigmas, True, "PF-ODE, Heun (EDM Alg. 1)"),
    "euler_maruyama": SamplerSpec(euler_maruyama, karras_sigmas, False, "reverse SDE, Euler-Maruyama"),
    "edm_sde": SamplerSpec(edm_stochastic, karras_sigmas, False, "EDM stochastic churn (Alg. 2)"),
    "flow_euler": SamplerSpec(flow_euler, flow_sigmas, True, "flow-matching ODE, Euler"),
    "flow_heun": SamplerSpec(flow_heun, flow_sigmas, True, "flow-matching ODE, Heun"),
}
# diffusers schedulers behind the same interface (imported lazily: see diffusers_interop.SCHEDULERS)
DIFFUSERS_SAMPLERS = ("dpmpp_2m", "unipc", "diffusers_flow_euler")


def sampler_names() -> list[str]:
    return list(SAMPLERS) + list(DIFFUSERS_SAMPLERS)


def sample(
    name: str,
    denoiser: Denoiser,
    noise: Tensor,
    steps: int,
    cond: Conditioning | None = None,
    generator: torch.Generator | None = None,
    trajectory: bool = False,
    progress: bool = False,
) -> SampleResult:
    """Run sampler ``name`` for ``steps`` steps on its default grid (what the CLI and benchmark call)."""
    if name in SAMPLERS:
        spec = SAMPLERS[name]
        return spec.fn(denoiser, noise, spec.grid(steps), cond=cond, generator=generator, trajectory=trajectory, progress=progress)
    if name in DIFFUSERS_SAMPLERS:
        from gen3d.diffusion.diffusers_interop import diffusers_sample, make_scheduler

        return diffusers_sample(
            make_scheduler(name), denoiser, noise, steps, cond=cond, generator=generator, trajectory=trajectory, progress=progress
        )
    raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(sampler_names())}")


__all__ = [
    "SAMPLERS",
    "SampleResult",
    "SamplerSpec",
    "ddim",
    "ddpm",
    "edm_stochastic",
    "euler",
    "euler_maruyama",
    "flow_euler",
    "flow_heun",
    "heun",
    "sample",
    "sampler_names",
]
