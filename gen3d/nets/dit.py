"""A DiT denoiser backbone: patch tokens, transformer blocks with adaLN-Zero (Peebles & Xie 2023).

The image (B, C, H, W) is cut into p x p patches, each linearly embedded (their Sec. 3.2 "Patchify"),
plus fixed 2-D sine-cosine position embeddings (their App. / MAE). Each block is

    x = x + g1 * SelfAttn(LN(x) * (1 + s1) + b1)          (joined across views, see ``attention``)
    x = x + CrossAttn(LN(x), tokens)                        (only with text tokens; zero-initialised)
    x = x + g2 * MLP(LN(x) * (1 + s2) + b2)

with (b1, s1, g1, b2, s2, g2) regressed from the per-sample condition vector (noise level + class +
camera/time embedding) by a zero-initialised linear layer, so every block starts as the identity
(adaLN-Zero, their Sec. 3.2). A final adaLN + zero-initialised linear layer maps tokens back to patches.

Why our own: diffusers' ``DiTTransformer2DModel`` conditions only on class labels (no text tokens,
no extra per-sample embedding, no cross-view attention), which the multi-view prior needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from gen3d.nets.attention import MultiHeadAttention
from gen3d.nets.base import ConfiguredModule
from gen3d.nets.embeddings import ConditionEmbedding, TimeEmbeddingKind
from gen3d.nets.unet import _tokens_per_image


@dataclass(frozen=True)
class DiTConfig:
    in_channels: int = 4
    out_channels: int = 0  # 0: same as in_channels
    patch_size: int = 2
    hidden: int = 384
    depth: int = 6
    heads: int = 6
    mlp_ratio: float = 4.0
    time_embedding: TimeEmbeddingKind = "sinusoidal"
    time_scale: float | None = None
    token_dim: int = 0  # text-token width for cross-attention; 0: none
    extra_embedding_dim: int = 0
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.hidden % self.heads or self.hidden % 4:
            raise ValueError(f"DiTConfig.hidden={self.hidden} must be divisible by heads={self.heads} and by 4")


def sincos_2d(h: int, w: int, dim: int) -> Float[Tensor, "HW dim"]:
    """Fixed 2-D sine-cosine position embeddings: half the channels encode the row, half the column
    (Vaswani et al. 2017 eq. in Sec. 3.5, applied per axis as in MAE / DiT)."""
    def axis(pos: Tensor, d: int) -> Tensor:
        freqs = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d // 2))
        arg = pos.double()[:, None] * freqs[None]
        return torch.cat([arg.sin(), arg.cos()], dim=1)

    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.cat([axis(yy.reshape(-1), dim // 2), axis(xx.reshape(-1), dim // 2)], dim=1).float()


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float, token_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = MultiHeadAttention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        m = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, m), nn.GELU(approximate="tanh"), nn.Linear(m, hidden))
        self.cross_norm = nn.LayerNorm(hidden) if token_dim else None
        self.cross = MultiHeadAttention(hidden, heads, context_dim=token_dim, zero_out=True) if token_dim else None
        self.ada = nn.Linear(hidden, 6 * hidden)
        nn.init.zeros_(self.ada.weight)  # adaLN-Zero: gates start at 0, the block is the identity
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: Tensor, c: Tensor, tokens: Tensor | None, views: int) -> Tensor:
        b1, s1, g1, b2, s2, g2 = self.ada(F.silu(c)).chunk(6, dim=1)
        x = x + g1[:, None] * self.attn(_modulate(self.norm1(x), b1, s1), views=views)
        if self.cross is not None and tokens is not None:
            x = x + self.cross(self.cross_norm(x), context=tokens)
        return x + g2[:, None] * self.mlp(_modulate(self.norm2(x), b2, s2))


class DiT(ConfiguredModule):
    """F(x, c_noise, tokens, embedding, labels, views) -> (B, out_channels, H, W); H, W divisible by p."""

    config_class = DiTConfig
    kind = "dit"

    def __init__(self, config: DiTConfig = DiTConfig()):
        super().__init__()
        self.config = cfg = config
        p, hid = cfg.patch_size, cfg.hidden
        self.out_channels = cfg.out_channels or cfg.in_channels
        self.patch = nn.Conv2d(cfg.in_channels, hid, p, stride=p)
        self.cond = ConditionEmbedding(hid, cfg.time_embedding, 256 if hid >= 256 else 2 * (hid // 2), cfg.num_classes,
                                       cfg.extra_embedding_dim, cfg.time_scale)
        self.blocks = nn.ModuleList(DiTBlock(hid, cfg.heads, cfg.mlp_ratio, cfg.token_dim) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(hid, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(hid, 2 * hid)
        self.proj_out = nn.Linear(hid, p * p * self.out_channels)
        for layer in (self.ada_out, self.proj_out):  # DiT: zero-initialise the final layer
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(
        self,
        x: Float[Tensor, "B C H W"],
        c_noise: Float[Tensor, " B"],
        tokens: Float[Tensor, "B N D"] | None = None,
        embedding: Float[Tensor, "B E"] | None = None,
        labels: Int[Tensor, " B"] | None = None,
        views: int = 1,
    ) -> Float[Tensor, "B C_out H W"]:
        p = self.config.patch_size
        if x.ndim != 4 or x.shape[1] != self.config.in_channels or x.shape[2] % p or x.shape[3] % p:
            raise ValueError(f"DiT expects (B, {self.config.in_channels}, H, W) with H, W divisible by {p}; "
                             f"got {tuple(x.shape)}")
        b, _, h, w = x.shape
        gh, gw = h // p, w // p
        tokens = _tokens_per_image(tokens, b, views)
        c = self.cond(c_noise, labels, embedding)
        t = self.patch(x).flatten(2).transpose(1, 2) + sincos_2d(gh, gw, self.config.hidden).to(x)
        for block in self.blocks:
            t = block(t, c, tokens, views)
        shift, scale = self.ada_out(F.silu(c)).chunk(2, dim=1)
        t = self.proj_out(_modulate(self.norm_out(t), shift, scale))  # (B, gh*gw, p*p*C)
        t = t.reshape(b, gh, gw, p, p, self.out_channels).permute(0, 5, 1, 3, 2, 4)
        return t.reshape(b, self.out_channels, h, w)
