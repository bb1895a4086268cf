"""Training objectives: which noise levels to train on, how to weight them, and condition dropout.

An objective is (prediction type, noise-level distribution p(sigma), weighting lambda(sigma)). The
loss is always computed on the network's own target F* (``Precond.target``), and the weighting is
stated in x0 space, where all parameterisations can be compared (Kingma et al. 2021 "VDM";
Kingma & Gao 2023 "Understanding the Diffusion Objective"):

    L = E_{sigma, x0, n} [ lambda(sigma) ||D(x0 + sigma n, sigma) - x0||^2 ]
      = E [ lambda(sigma) c_out(sigma)^2 ||F - F*||^2 ]          (denoiser.py: ||F-F*|| = ||D-x0|| / |c_out|)

Weightings (lambda, in x0 space):

* ``uniform``: 1 / c_out^2, i.e. the plain MSE on the model's own target: SNR = 1/sigma^2 for eps,
  SNR + 1 for v, 1 for x0, ((1 + sigma) / sigma)^2 for flow, EDM's lambda for edm.
* ``min_snr``: min(SNR, gamma) (Hang et al. 2023, "Min-SNR Weighting Strategy", eq. 5-7; gamma = 5).
  It caps the huge weight eps-prediction puts on the lowest noise levels.
* ``edm``: (sigma^2 + sd^2) / (sigma sd)^2 (EDM eq. 8 / Sec. 5), the weight making the effective loss
  of the EDM parameterisation unit-variance at every sigma.

Why the weighting matters: noise at level sigma hides the image content finer than ~sigma, so weight
at small sigma trains fine detail (high frequencies) and weight at large sigma trains layout (low
frequencies) (Dieleman 2024, "Diffusion is spectral autoregression"); the weighting decides which
frequencies the model spends its capacity on.

Why our own: diffusers keeps these choices inside its training *examples* as loose scripts; here they
are one typed config and one small function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from gen3d.diffusion.conditioning import Conditioning
from gen3d.diffusion.denoiser import Precond, native_weight
from gen3d.diffusion.schedules import (
    alpha_bar_to_sigma,
    cosine_alpha_bar,
    ddpm_linear_alpha_bar,
    flow_t_to_sigma,
)

SigmaSampling = Literal["lognormal", "vp_linear", "vp_cosine", "flow_uniform", "flow_logit_normal"]
Weighting = Literal["uniform", "min_snr", "edm"]


@dataclass(frozen=True)
class ObjectiveConfig:
    """Noise-level distribution, loss weighting and condition dropout of one training run."""

    sigma_sampling: SigmaSampling = "lognormal"
    p_mean: float = -1.2  # lognormal: ln sigma ~ N(p_mean, p_std^2) (EDM Sec. 5); logit-normal: the mean
    p_std: float = 1.2
    weighting: Weighting = "uniform"
    min_snr_gamma: float = 5.0
    cond_drop_prob: float = 0.0  # probability of training a sample unconditionally (for CFG)
    flow_t_eps: float = 1e-4  # flow t is kept in [eps, 1 - eps] (t = 1 is sigma = infinity)

    def __post_init__(self) -> None:
        if not 0.0 <= self.cond_drop_prob <= 1.0:
            raise ValueError(f"cond_drop_prob must be in [0, 1], got {self.cond_drop_prob}")
        if self.p_std <= 0 or self.min_snr_gamma <= 0:
            raise ValueError("p_std and min_snr_gamma must be positive")


def sample_sigma(cfg: ObjectiveConfig, n: int, generator: torch.Generator | None = None) -> Float[Tensor, " B"]:
    """Draw training noise levels from p(sigma) (float32, CPU; move them to the data's device)."""
    kind = cfg.sigma_sampling
    if kind == "lognormal":  # EDM Sec. 5: ln sigma ~ N(P_mean, P_std^2)
        return (cfg.p_mean + cfg.p_std * torch.randn(n, generator=generator, dtype=torch.float64)).exp().float()
    if kind in ("vp_linear", "vp_cosine"):  # DDPM training: t ~ U{1..T} (Ho et al. 2020, Algorithm 1)
        table = ddpm_linear_alpha_bar() if kind == "vp_linear" else cosine_alpha_bar()
        t = torch.randint(0, len(table), (n,), generator=generator)
        return alpha_bar_to_sigma(table[t]).float()
    if kind == "flow_uniform":  # rectified flow: t ~ U(0, 1) (Liu et al. 2023, eq. 1)
        t = torch.rand(n, generator=generator, dtype=torch.float64)
    elif kind == "flow_logit_normal":  # SD3: t = sigmoid(N(m, s^2)) (Esser et al. 2024, eq. 19)
        t = torch.sigmoid(cfg.p_mean + cfg.p_std * torch.randn(n, generator=generator, dtype=torch.float64))
    else:
        raise ValueError(f"unknown sigma_sampling {kind!r}")
    return flow_t_to_sigma(t.clamp(cfg.flow_t_eps, 1 - cfg.flow_t_eps)).float()


def loss_weight(cfg: ObjectiveConfig, prediction: str, sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """lambda(sigma): the x0-space weight of the configured weighting (see module docstring)."""
    if cfg.weighting == "uniform":
        return native_weight(prediction, sigma, sigma_data)
    if cfg.weighting == "min_snr":  # Hang et al. 2023, eq. 5: min(SNR, gamma) on the x0 loss
        return (1.0 / sigma**2).clamp(max=cfg.min_snr_gamma)
    if cfg.weighting == "edm":  # EDM eq. 8: lambda = (sigma^2 + sd^2) / (sigma sd)^2
        return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    raise ValueError(f"unknown weighting {cfg.weighting!r}")


def drop_condition(
    cond: Conditioning | None, p: float, generator: torch.Generator | None = None, views: int = 1
) -> Conditioning | None:
    """Replace each sample's condition by the null condition with probability ``p``
    (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", Algorithm 1: p_uncond). With
    ``views`` > 1 the batch holds objects x views and all views of one object are dropped together."""
    if cond is None or p <= 0 or cond.batch_size is None:
        return cond
    mask = torch.rand(cond.batch_size // views, generator=generator) < p
    return cond.where_null(mask.repeat_interleave(views))


def diffusion_loss(
    model: Precond,
    x0: Tensor,
    cfg: ObjectiveConfig,
    cond: Conditioning | None = None,
    generator: torch.Generator | None = None,
    views: int = 1,
) -> Tensor:
    """One Monte-Carlo estimate of the weighted denoising loss (scalar), ready for ``backward``.

    Random numbers (sigma, noise, dropout) come from ``generator`` on the CPU, so a seeded run is
    reproducible on any device.
    """
    b = x0.shape[0]
    if b % views:
        raise ValueError(f"batch {b} is not a whole number of objects with views={views}")
    # one noise level per object: its views are denoised jointly, so they share sigma
    sigma = sample_sigma(cfg, b // views, generator).repeat_interleave(views).to(x0.device, x0.dtype)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    cond = drop_condition(cond, cfg.cond_drop_prob, generator, views)
    pc = model.config
    x = x0 + sigma.reshape(b, *([1] * (x0.ndim - 1))) * noise
    err = (model.raw(x, sigma, cond, views) - model.target(x0, noise, sigma)) ** 2
    per_sample = err.reshape(b, -1).mean(dim=1)
    c_out2 = 1.0 / native_weight(pc.prediction, sigma, pc.sigma_data)
    w = loss_weight(cfg, pc.prediction, sigma, pc.sigma_data) * c_out2
    return (w * per_sample).mean()


__all__ = [
    "ObjectiveConfig",
    "diffusion_loss",
    "drop_condition",
    "loss_weight",
    "sample_sigma",
]
