"""A residual MLP denoiser backbone for vector data (the 2-D and n-D toy mixtures).

Blocks are x + W2 SiLU(W1 (LN(x) (1 + s) + b)), with (s, b) from the per-sample condition vector
(noise level + class + extra embedding), i.e. the adaptive-norm conditioning of the U-Net / DiT on
vectors (Perez et al. 2018, "FiLM"). It exists so objectives, guidance and samplers can be trained
and checked in seconds on a CPU; image backbones are ``unet`` and ``dit``. Any (B, *shape) input is
flattened and the output reshaped back. It has no cross-attention: passing text tokens is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from gen3d.nets.base import ConfiguredModule
from gen3d.nets.embeddings import ConditionEmbedding, TimeEmbeddingKind


@dataclass(frozen=True)
class MLPConfig:
    shape: tuple[int, ...] = (2,)  # per-sample data shape
    hidden: int = 128
    depth: int = 3
    time_embedding: TimeEmbeddingKind = "sinusoidal"
    time_scale: float | None = None
    num_classes: int = 0
    extra_embedding_dim: int = 0


class _Block(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.ada = nn.Linear(hidden, 2 * hidden)
        self.fc1, self.fc2 = nn.Linear(hidden, 2 * hidden), nn.Linear(2 * hidden, hidden)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        scale, shift = self.ada(F.silu(emb)).chunk(2, dim=1)
        return h + self.fc2(F.silu(self.fc1(self.norm(h) * (1 + scale) + shift)))


class ToyMLP(ConfiguredModule):
    """F(x, c_noise, embedding, labels) for vectors; same call signature as the image backbones."""

    config_class = MLPConfig
    kind = "mlp"

    def __init__(self, config: MLPConfig = MLPConfig()):
        super().__init__()
        self.config = cfg = config
        d = math.prod(cfg.shape)
        self.cond = ConditionEmbedding(cfg.hidden, cfg.time_embedding, 64, cfg.num_classes, cfg.extra_embedding_dim,
                                       cfg.time_scale)
        self.inp = nn.Linear(d, cfg.hidden)
        self.blocks = nn.ModuleList(_Block(cfg.hidden) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(cfg.hidden)
        self.out = nn.Linear(cfg.hidden, d)

    def forward(
        self,
        x: Float[Tensor, "B ..."],
        c_noise: Float[Tensor, " B"],
        tokens: Float[Tensor, "B N D"] | None = None,
        embedding: Float[Tensor, "B E"] | None = None,
        labels: Int[Tensor, " B"] | None = None,
        views: int = 1,
    ) -> Float[Tensor, "B ..."]:
        if tokens is not None:
            raise ValueError("ToyMLP has no cross-attention; use the UNet or DiT backbone for text tokens")
        if tuple(x.shape[1:]) != tuple(self.config.shape):
            raise ValueError(f"ToyMLP expects samples shaped {tuple(self.config.shape)}, got {tuple(x.shape[1:])}")
        emb = self.cond(c_noise, labels, embedding)
        h = self.inp(x.reshape(x.shape[0], -1))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(F.silu(self.norm_out(h))).reshape(x.shape)
