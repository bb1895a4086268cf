"""Noise schedules and forward processes, all expressed through one noise level sigma.

Convention used everywhere in ``gen3d.diffusion`` (Karras et al. 2022, "Elucidating the Design Space
of Diffusion-Based Generative Models", EDM, Sec. 2): a noisy sample is

    x = x0 + sigma * n,   n ~ N(0, I)                                         (EDM eq. 1 / Table 1)

Every other parameterisation is a rescaling of this one:

* variance preserving (DDPM, Ho et al. 2020): x_t = sqrt(abar) x0 + sqrt(1 - abar) n
  = x / sqrt(1 + sigma^2) with sigma^2 = (1 - abar) / abar;
* rectified flow / flow matching (Liu et al. 2023; Lipman et al. 2023): x_t = (1 - t) x0 + t n
  = x / (1 + sigma) with sigma = t / (1 - t).

So schedules here are functions returning ``sigma`` (or ``abar`` / ``t`` with converters), and the
samplers, objectives and the denoiser wrapper only ever see ``sigma``. Sampling grids are descending
and end with an appended 0 (N steps = N + 1 grid points), like ``edm_sampler`` in NVlabs/edm2.

Why our own code: diffusers' schedulers hold the same formulas, but each couples a schedule to one
sampler and to discrete training timesteps; here schedules are small pure functions that every
sampler and objective shares (diffusers' schedulers are still usable, see ``diffusers_interop``).
The DDPM tables are checked element-wise against diffusers' in the tests.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

# --------------------------------------------------------------------------------------------------
# Conversions between sigma and the other parameterisations
# --------------------------------------------------------------------------------------------------


def alpha_bar_to_sigma(alpha_bar: Tensor) -> Tensor:
    """sigma = sqrt((1 - abar) / abar): the VP kernel divided by sqrt(abar) (EDM Table 1, VP column)."""
    return ((1.0 - alpha_bar) / alpha_bar).sqrt()


def sigma_to_alpha_bar(sigma: Tensor) -> Tensor:
    """abar = 1 / (1 + sigma^2), the inverse of :func:`alpha_bar_to_sigma`."""
    return 1.0 / (1.0 + sigma**2)


def flow_t_to_sigma(t: Tensor) -> Tensor:
    """sigma = t / (1 - t) for the flow interpolation x_t = (1 - t) x0 + t n (t = 1 is pure noise)."""
    return t / (1.0 - t)


def sigma_to_flow_t(sigma: Tensor) -> Tensor:
    """t = sigma / (1 + sigma), the inverse of :func:`flow_t_to_sigma`."""
    return sigma / (1.0 + sigma)


# --------------------------------------------------------------------------------------------------
# Forward processes
# --------------------------------------------------------------------------------------------------


def add_noise(x0: Tensor, sigma: Float[Tensor, " B"], noise: Tensor) -> Tensor:
    """x = x0 + sigma n, the forward process in sigma form (EDM eq. 1)."""
    return x0 + _bcast(sigma, x0) * noise


def vp_diffuse(x0: Tensor, alpha_bar: Float[Tensor, " B"], noise: Tensor) -> Tensor:
    """A sample of the VP kernel q(x_t | x0) = N(sqrt(abar) x0, (1 - abar) I) (Ho et al. 2020, eq. 4)."""
    a = _bcast(alpha_bar, x0)
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise


def vp_kernel_moments(x0: Tensor, alpha_bar: Float[Tensor, " B"]) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of q(x_t | x0) (Ho et al. 2020, eq. 4)."""
    a = _bcast(alpha_bar, x0)
    return a.sqrt() * x0, (1.0 - a).sqrt().expand_as(x0)


def flow_interpolate(x0: Tensor, noise: Tensor, t: Float[Tensor, " B"]) -> Tensor:
    """x_t = (1 - t) x0 + t n: the straight path of rectified flow (Liu et al. 2023, eq. 1) whose
    velocity dx_t/dt = n - x0 is the flow-matching target (Lipman et al. 2023, eq. 23 with sigma_min=0)."""
    t = _bcast(t, x0)
    return (1.0 - t) * x0 + t * noise


# --------------------------------------------------------------------------------------------------
# Training-time tables (discrete DDPM) and their continuous twins
# --------------------------------------------------------------------------------------------------


def ddpm_linear_alpha_bar(
    num_train_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> Float[Tensor, " T"]:
    """abar_t = prod_{s<=t} (1 - beta_s), betas linear from 1e-4 to 0.02 (Ho et al. 2020, Sec. 4), float64."""
    betas = torch.linspace(beta_start, beta_end, num_train_steps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def cosine_alpha_bar(num_train_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Float[Tensor, " T"]:
    """The cosine schedule of Nichol & Dhariwal 2021, eq. 17, with betas clipped at 0.999 (their Sec. 3.2).

    abar(t) = f(t) / f(0), f(t) = cos^2(((t / T + s) / (1 + s)) * pi / 2); entry i is step t = i + 1.
    """
    t = torch.arange(num_train_steps + 1, dtype=torch.float64) / num_train_steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1.0 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1.0 - betas, dim=0)


def cosine_alpha_bar_continuous(t: Tensor, s: float = 0.008) -> Tensor:
    """abar(t) for continuous t in [0, 1] (Nichol & Dhariwal 2021, eq. 17, unclipped)."""
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return f / math.cos(s / (1 + s) * math.pi / 2) ** 2


def vp_linear_alpha_bar_continuous(t: Tensor, beta_min: float = 0.1, beta_max: float = 20.0) -> Tensor:
    """abar(t) = exp(-beta_min t - (beta_max - beta_min) t^2 / 2): the VP SDE, the continuous limit of
    DDPM's linear betas (Song et al. 2021, eq. 33; EDM Table 1)."""
    return torch.exp(-beta_min * t - 0.5 * (beta_max - beta_min) * t**2)


def timestep_to_sigma(t: Tensor, alpha_bar: Float[Tensor, " T"]) -> Tensor:
    """sigma at a (possibly fractional) training timestep, log-sigma interpolated between table entries.

    Used to talk to models trained on discrete timesteps (diffusers UNets) and to diffusers' schedulers.
    """
    log_sigmas = alpha_bar_to_sigma(alpha_bar.double()).log()
    t = t.double().clamp(0, len(alpha_bar) - 1)
    lo = t.floor().long()
    hi = (lo + 1).clamp(max=len(alpha_bar) - 1)
    w = t - lo.double()
    return ((1 - w) * log_sigmas[lo] + w * log_sigmas[hi]).exp()


def sigma_to_timestep(sigma: Tensor, alpha_bar: Float[Tensor, " T"]) -> Tensor:
    """Fractional training timestep whose sigma is ``sigma`` (inverse of :func:`timestep_to_sigma`)."""
    log_sigmas = alpha_bar_to_sigma(alpha_bar.double()).log()  # increasing in t
    ls = sigma.double().clamp(min=1e-30).log().clamp(log_sigmas[0], log_sigmas[-1])
    hi = torch.searchsorted(log_sigmas, ls.reshape(-1)).clamp(1, len(log_sigmas) - 1).reshape(ls.shape)
    lo = hi - 1
    w = (ls - log_sigmas[lo]) / (log_sigmas[hi] - log_sigmas[lo])
    return lo.double() + w


# --------------------------------------------------------------------------------------------------
# Sampling grids: descending sigmas of length steps + 1, the last one 0
# --------------------------------------------------------------------------------------------------


def karras_sigmas(
    steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> Float[Tensor, " S"]:
    """sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, then 0 (EDM eq. 5)."""
    _check_steps(steps)
    i = torch.arange(steps, dtype=torch.float64)
    denom = max(steps - 1, 1)
    s = (sigma_max ** (1 / rho) + i / denom * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([s, s.new_zeros(1)])


def ddpm_sigmas(steps: int, alpha_bar: Float[Tensor, " T"] | None = None) -> Float[Tensor, " S"]:
    """sigmas at ``steps`` training timesteps evenly spaced from T - 1 down to 0, then 0.

    The discrete-time grid DDPM / DDIM sample on (Ho et al. 2020; Song et al. 2021 "DDIM", Sec. 4.2,
    'linear' sub-sequence tau). Default table: DDPM's linear betas, T = 1000 (sigma_max ~ 157).
    """
    _check_steps(steps)
    alpha_bar = ddpm_linear_alpha_bar() if alpha_bar is None else alpha_bar.double()
    t = torch.linspace(len(alpha_bar) - 1, 0, steps, dtype=torch.float64).round().long()
    return torch.cat([alpha_bar_to_sigma(alpha_bar[t]), torch.zeros(1, dtype=torch.float64)])


def flow_sigmas(steps: int, t_max: float = 0.999, shift: float = 1.0) -> Float[Tensor, " S"]:
    """sigmas of a uniform grid in flow time t from ``t_max`` to 0, optionally shifted
    t' = shift t / (1 + (shift - 1) t) (Esser et al. 2024, "SD3", eq. 23).

    t = 1 is sigma = infinity, so the grid starts at t_max < 1; at 0.999 the neglected data fraction
    (1 - t_max) is below the statistical error of every test here.
    """
    _check_steps(steps)
    if not 0.0 < t_max < 1.0:
        raise ValueError(f"t_max must be in (0, 1), got {t_max}")
    t = torch.linspace(t_max, 0.0, steps + 1, dtype=torch.float64)
    t = shift * t / (1 + (shift - 1) * t)
    return flow_t_to_sigma(t)


# --------------------------------------------------------------------------------------------------


def _bcast(v: Tensor | float, like: Tensor) -> Tensor:
    """Per-sample values (B,) reshaped to (B, 1, ..., 1) to broadcast against ``like``."""
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    if v.ndim == 0:
        return v
    return v.reshape(v.shape[0], *([1] * (like.ndim - 1)))


def _check_steps(steps: int) -> None:
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
