"""Guidance as denoiser wrappers: classifier-free guidance (with interval and rescale) and autoguidance.

Both extrapolate from a "worse" prediction towards a "better" one,

    D_guided = D_neg + w (D_pos - D_neg),

which is the same formula in epsilon, v or x0 space because all are affine in D at fixed x and
sigma (``denoiser.py``); w = 1 is no guidance. Each wrapper is itself a Denoiser, so every sampler
takes it unchanged.

* Classifier-free guidance (Ho & Salimans 2022, eq. 6): D_pos conditional, D_neg unconditional (the
  null condition, see ``conditioning``), both from one batched call. Optional guidance interval
  (Kynkaanniemi et al. 2024, "Applying Guidance in a Limited Interval ...", eq. 2): guide only for
  sigma in (sigma_lo, sigma_hi]; elsewhere return D_pos (one evaluation only). Optional rescale
  (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed", eq. 15-16):
  rescale the guided prediction to the per-sample std of D_pos, blended with factor phi.
* Autoguidance (Karras et al. 2024, "Guiding a Diffusion Model with a Bad Version of Itself", eq. 2):
  D_pos = the main model, D_neg = a weaker model (smaller / less trained) with the same condition.

Why our own: diffusers implements guidance inside each pipeline's loop, on epsilon; as wrappers
around D it composes with every sampler and is testable against exact mixture denoisers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gen3d.diffusion.conditioning import Conditioning
from gen3d.diffusion.denoiser import Denoiser


def guide(d_pos: Tensor, d_neg: Tensor, scale: float) -> Tensor:
    """D_neg + w (D_pos - D_neg) (Ho & Salimans 2022, eq. 6, in x0 space)."""
    return d_neg + scale * (d_pos - d_neg)


def rescale_to(guided: Tensor, reference: Tensor, phi: float) -> Tensor:
    """phi * guided * std(reference) / std(guided) + (1 - phi) * guided, std per sample over all
    non-batch axes (Lin et al. 2024, eq. 15-16)."""
    if phi == 0:
        return guided
    dims = tuple(range(1, guided.ndim))
    ratio = reference.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True).clamp(min=1e-12)
    return phi * guided * ratio + (1 - phi) * guided


class ClassifierFreeGuidance:
    """A Denoiser: classifier-free guidance of ``denoiser`` with weight ``scale``.

    ``interval=(lo, hi)``: guide only where lo < sigma <= hi. ``rescale`` in [0, 1]: phi above.
    ``calls`` counts network evaluations (2 per guided call, 1 outside the interval).
    """

    def __init__(
        self,
        denoiser: Denoiser,
        scale: float,
        interval: tuple[float, float] = (0.0, math.inf),
        rescale: float = 0.0,
    ):
        if not 0.0 <= rescale <= 1.0:
            raise ValueError(f"rescale must be in [0, 1], got {rescale}")
        if not interval[0] < interval[1]:
            raise ValueError(f"guidance interval must have lo < hi, got {interval}")
        self.denoiser, self.scale, self.interval, self.rescale = denoiser, scale, interval, rescale
        self.calls = 0

    def __call__(self, x: Tensor, sigma: Tensor, cond: Conditioning | None = None) -> Tensor:
        if cond is None:
            raise ValueError("classifier-free guidance needs a condition (got cond=None)")
        lo, hi = self.interval
        inside = (sigma > lo) & (sigma <= hi)
        if self.scale == 1.0 or not bool(inside.any()):
            self.calls += 1
            return self.denoiser(x, sigma, cond)
        self.calls += 2
        both = self.denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), cond.cat(cond.null()))
        d_pos, d_neg = both.chunk(2)
        d = rescale_to(guide(d_pos, d_neg, self.scale), d_pos, self.rescale)
        return torch.where(inside.reshape(-1, *([1] * (x.ndim - 1))), d, d_pos)


class AutoGuidance:
    """A Denoiser: autoguidance, D_weak + w (D_main - D_weak) (Karras et al. 2024, eq. 2).

    Both models get the same (x, sigma, cond); optional interval as for CFG."""

    def __init__(self, main: Denoiser, weak: Denoiser, scale: float, interval: tuple[float, float] = (0.0, math.inf)):
        self.main, self.weak, self.scale, self.interval = main, weak, scale, interval
        self.calls = 0

    def __call__(self, x: Tensor, sigma: Tensor, cond: Conditioning | None = None) -> Tensor:
        lo, hi = self.interval
        inside = (sigma > lo) & (sigma <= hi)
        d_main = self.main(x, sigma, cond)
        self.calls += 1
        if self.scale == 1.0 or not bool(inside.any()):
            return d_main
        self.calls += 1
        d = guide(d_main, self.weak(x, sigma, cond), self.scale)
        return torch.where(inside.reshape(-1, *([1] * (x.ndim - 1))), d, d_main)


__all__ = ["AutoGuidance", "ClassifierFreeGuidance", "guide", "rescale_to"]
