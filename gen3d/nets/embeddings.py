"""Noise-level embeddings and the per-sample condition vector every backbone is modulated by.

* Sinusoidal (Vaswani et al. 2017, Sec. 3.5; used for the timestep in DDPM, Ho et al. 2020, App. B):
  [cos(c f_j), sin(c f_j)] with f_j = max_period^(-j / half) (half = dim / 2).
* Random Fourier features (Tancik et al. 2020; Song et al. 2021 for the noise level):
  [cos(2 pi c w_j), sin(2 pi c w_j)], w_j ~ N(0, scale^2), fixed at construction (stored as a buffer,
  so they are saved with the weights).

``ConditionEmbedding`` sums the noise-level embedding, an optional class-label embedding (with a
learned null class for classifier-free guidance) and an optional per-sample embedding (camera pose,
frame time: the hook the multi-view and video priors use), then an MLP, giving one (B, E) vector.

Why our own: diffusers has both embeddings (``Timesteps``, ``GaussianFourierProjection``) but not the
label + extra-embedding combination with a null class; these are ~20 lines each.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

TimeEmbeddingKind = Literal["sinusoidal", "fourier"]


class SinusoidalEmbedding(nn.Module):
    """[cos(c f_j), sin(c f_j)], f_j = max_period^(-j/half), j = 0..half-1 (Vaswani et al. 2017)."""

    def __init__(self, dim: int, max_period: float = 10000.0, scale: float = 1.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"embedding dim must be even, got {dim}")
        self.dim, self.scale = dim, scale
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(max_period) * torch.arange(half) / half), persistent=False)

    def forward(self, c: Float[Tensor, " B"]) -> Float[Tensor, "B dim"]:
        arg = self.scale * c.float()[:, None] * self.freqs[None]
        return torch.cat([arg.cos(), arg.sin()], dim=1)


class FourierEmbedding(nn.Module):
    """[cos(2 pi c w_j), sin(2 pi c w_j)], w ~ N(0, scale^2) fixed (Tancik et al. 2020, eq. 5)."""

    def __init__(self, dim: int, scale: float = 16.0, seed: int = 0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"embedding dim must be even, got {dim}")
        self.dim = dim
        g = torch.Generator().manual_seed(seed)  # deterministic, and saved as a buffer anyway
        self.register_buffer("freqs", torch.randn(dim // 2, generator=g) * scale)

    def forward(self, c: Float[Tensor, " B"]) -> Float[Tensor, "B dim"]:
        arg = 2 * math.pi * c.float()[:, None] * self.freqs[None]
        return torch.cat([arg.cos(), arg.sin()], dim=1)


DEFAULT_TIME_SCALE = {"sinusoidal": 100.0, "fourier": 16.0}


def make_noise_embedding(kind: str, dim: int, scale: float | None = None) -> nn.Module:
    """``scale`` multiplies c_noise for the sinusoidal embedding (default 100: EDM's c_noise = ln(sigma)/4
    spans ~3 units, x100 gives the few-hundred-unit range DDPM timesteps span) and is the std of the
    random frequencies for the Fourier one (default 16, Song et al. 2021's NCSN++)."""
    scale = DEFAULT_TIME_SCALE.get(kind, 1.0) if scale is None else scale
    if kind == "sinusoidal":
        return SinusoidalEmbedding(dim, scale=scale)
    if kind == "fourier":
        return FourierEmbedding(dim, scale=scale)
    raise ValueError(f"unknown time embedding {kind!r}; choose 'sinusoidal' or 'fourier'")


class ConditionEmbedding(nn.Module):
    """(c_noise, labels, extra embedding) -> one (B, out_dim) vector: MLP(emb(c_noise)) + label + extra.

    labels < 0 (``NULL_LABEL``) select the learned null class at index ``num_classes``.
    """

    def __init__(
        self,
        out_dim: int,
        kind: str = "sinusoidal",
        freq_dim: int = 128,
        num_classes: int = 0,
        extra_dim: int = 0,
        time_scale: float | None = None,
    ):
        super().__init__()
        self.noise = make_noise_embedding(kind, freq_dim, time_scale)
        self.mlp = nn.Sequential(nn.Linear(freq_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))
        self.num_classes, self.extra_dim = num_classes, extra_dim
        self.label = nn.Embedding(num_classes + 1, out_dim) if num_classes > 0 else None
        self.extra = nn.Linear(extra_dim, out_dim) if extra_dim > 0 else None

    def forward(
        self,
        c_noise: Float[Tensor, " B"],
        labels: Int[Tensor, " B"] | None = None,
        embedding: Float[Tensor, "B E"] | None = None,
    ) -> Float[Tensor, "B out"]:
        e = self.mlp(self.noise(c_noise))
        if labels is not None:
            if self.label is None:
                raise ValueError("class labels were given but this network has num_classes = 0")
            idx = torch.where(labels < 0, torch.full_like(labels, self.num_classes), labels)
            e = e + self.label(idx)
        elif self.label is not None:  # no labels at all: the unconditional (null) class
            e = e + self.label.weight[self.num_classes][None]
        if embedding is not None:
            if self.extra is None:
                raise ValueError("a per-sample embedding was given but this network has extra_embedding_dim = 0")
            if embedding.shape[-1] != self.extra_dim:
                raise ValueError(f"per-sample embedding has {embedding.shape[-1]} features, the network expects {self.extra_dim}")
            e = e + self.extra(embedding.to(e.dtype))
        return e
