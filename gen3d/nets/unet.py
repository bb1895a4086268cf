"""A U-Net denoiser backbone: ResNet blocks, self- and cross-attention, skip connections.

The architecture of DDPM (Ho et al. 2020, App. B) as refined by ADM (Dhariwal & Nichol 2021,
Sec. 3): per resolution level ``blocks_per_level`` residual blocks (GroupNorm, SiLU, 3x3 conv), with
attention at the levels listed in ``attention_levels``, strided-conv downsampling, nearest-neighbour
upsampling, and skip connections concatenated on the way up. The per-sample condition vector
(noise level + class + camera/time embedding, ``embeddings.ConditionEmbedding``) enters every
residual block either by addition after the first conv (``time_feed="add"``, DDPM) or as adaptive
group norm, GroupNorm(h) * (1 + s) + b (``"adagn"``, ADM Sec. 3 "AdaGN").

Input (B, C, H, W) latents or images with H and W divisible by 2^(levels - 1); optional text tokens
(B, N, D) for cross-attention, per-sample embedding (B, E), class labels (B,); ``views`` joins the
views of one object in self-attention (see ``attention``), the hook of the multi-view prior.

Why our own and not diffusers' ``UNet2DConditionModel``: that model fits large pretrained latent
models (a few-line adapter from ``(x, c_noise, tokens)`` to its ``(sample, timestep,
encoder_hidden_states)`` plus ``PrecondConfig(noise_input="ddpm_t")`` lets ``Precond`` drive one),
but it cannot join views inside self-attention without swapping attention processors, has no adaptive
group norm together with cross-attention, and its config has ~60 fields; this one is ~200 lines
and every line is exercised on toy data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from gen3d.nets.attention import MultiHeadAttention
from gen3d.nets.base import ConfiguredModule
from gen3d.nets.embeddings import ConditionEmbedding, TimeEmbeddingKind


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 4
    out_channels: int = 0  # 0: same as in_channels
    channels: tuple[int, ...] = (64, 128, 128)  # per resolution level
    blocks_per_level: int = 1
    attention_levels: tuple[int, ...] = (1, 2)  # which levels have attention (the middle always has)
    heads: int = 4
    time_embedding: TimeEmbeddingKind = "sinusoidal"
    time_scale: float | None = None  # see embeddings.make_noise_embedding
    time_feed: Literal["add", "adagn"] = "adagn"
    emb_dim: int = 0  # 0: 4 * channels[0]
    token_dim: int = 0  # text-token width for cross-attention; 0: no cross-attention
    extra_embedding_dim: int = 0  # per-sample embedding (camera, time); 0: none
    num_classes: int = 0
    groups: int = 8  # GroupNorm groups (reduced to divide the channel count)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("UNetConfig.channels must list at least one level")
        bad = [i for i in self.attention_levels if not 0 <= i < len(self.channels)]
        if bad:
            raise ValueError(f"UNetConfig.attention_levels {bad} out of range for {len(self.channels)} levels")


def _norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, c), c)


class ResBlock(nn.Module):
    """x + conv(SiLU(norm(conv(SiLU(norm(x))) [+ emb]))) with the condition by addition or AdaGN."""

    def __init__(self, cin: int, cout: int, emb_dim: int, feed: str, groups: int, dropout: float):
        super().__init__()
        self.feed = feed
        self.norm1, self.conv1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout if feed == "adagn" else cout)
        self.norm2, self.drop = _norm(cout, groups), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # start as the identity (ADM: zero_module on the last conv)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb(F.silu(emb))[:, :, None, None]
        if self.feed == "adagn":  # ADM Sec. 3: AdaGN(h, y) = y_s GroupNorm(h) + y_b
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:  # DDPM: add the projected embedding
            h = self.norm2(h + e)
        return self.skip(x) + self.conv2(self.drop(F.silu(h)))


class AttentionBlock(nn.Module):
    """Self-attention over pixels (joined across ``views``), then cross-attention to text tokens."""

    def __init__(self, c: int, heads: int, groups: int, token_dim: int):
        super().__init__()
        self.norm = _norm(c, groups)
        self.attn = MultiHeadAttention(c, heads, zero_out=True)
        self.cross = MultiHeadAttention(c, heads, context_dim=token_dim, zero_out=True) if token_dim else None
        self.cross_norm = nn.LayerNorm(c) if token_dim else None

    def forward(self, x: Tensor, tokens: Tensor | None, views: int) -> Tensor:
        b, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        out = x.flatten(2).transpose(1, 2) + self.attn(seq, views=views)
        if self.cross is not None and tokens is not None:
            out = out + self.cross(self.cross_norm(out), context=tokens)
        return out.transpose(1, 2).reshape(b, c, h, w)


class UNet(ConfiguredModule):
    """F(x, c_noise, tokens, embedding, labels, views) -> (B, out_channels, H, W)."""

    config_class = UNetConfig
    kind = "unet"

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = cfg = config
        ch = cfg.channels
        emb = cfg.emb_dim or 4 * ch[0]
        self.cond = ConditionEmbedding(emb, cfg.time_embedding, max(ch[0], 32) // 2 * 2, cfg.num_classes,
                                       cfg.extra_embedding_dim, cfg.time_scale)

        def res(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, emb, cfg.time_feed, cfg.groups, cfg.dropout)

        def attn(c: int) -> AttentionBlock:
            return AttentionBlock(c, cfg.heads, cfg.groups, cfg.token_dim)

        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down, skip_ch, c = nn.ModuleList(), [ch[0]], ch[0]
        for lvl, cl in enumerate(ch):
            for _ in range(cfg.blocks_per_level):
                self.down.append(nn.ModuleList([res(c, cl), attn(cl) if lvl in cfg.attention_levels else nn.Identity()]))
                c = cl
                skip_ch.append(c)
            if lvl < len(ch) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skip_ch.append(c)
        self.mid = nn.ModuleList([res(c, c), attn(c), res(c, c)])
        self.up = nn.ModuleList()
        for lvl in reversed(range(len(ch))):
            for _ in range(cfg.blocks_per_level + 1):
                self.up.append(nn.ModuleList([res(c + skip_ch.pop(), ch[lvl]),
                                              attn(ch[lvl]) if lvl in cfg.attention_levels else nn.Identity()]))
                c = ch[lvl]
            if lvl > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)))
        self.norm_out = _norm(c, cfg.groups)
        self.conv_out = nn.Conv2d(c, cfg.out_channels or cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(
        self,
        x: Float[Tensor, "B C H W"],
        c_noise: Float[Tensor, " B"],
        tokens: Float[Tensor, "B N D"] | None = None,
        embedding: Float[Tensor, "B E"] | None = None,
        labels: Int[Tensor, " B"] | None = None,
        views: int = 1,
    ) -> Float[Tensor, "B C_out H W"]:
        factor = 2 ** (len(self.config.channels) - 1)
        if x.ndim != 4 or x.shape[1] != self.config.in_channels or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"UNet expects (B, {self.config.in_channels}, H, W) with H, W divisible by {factor}; "
                             f"got {tuple(x.shape)}")
        tokens = _tokens_per_image(tokens, x.shape[0], views)
        emb = self.cond(c_noise, labels, embedding)
        h = self.conv_in(x)
        skips = [h]
        for layer in self.down:
            h = _apply(layer, h, emb, tokens, views)
            skips.append(h)
        h = self.mid[0](h, emb)
        h = self.mid[1](h, tokens, views)
        h = self.mid[2](h, emb)
        for layer in self.up:
            if isinstance(layer, nn.ModuleList):
                h = torch.cat([h, skips.pop()], dim=1)
            h = _apply(layer, h, emb, tokens, views)
        return self.conv_out(F.silu(self.norm_out(h)))


def _apply(layer: nn.Module, h: Tensor, emb: Tensor, tokens: Tensor | None, views: int) -> Tensor:
    """Run a (ResBlock, attention) pair, a down/up-sampler, or a single ResBlock list."""
    if isinstance(layer, nn.ModuleList):
        for m in layer:
            if isinstance(m, ResBlock):
                h = m(h, emb)
            elif isinstance(m, AttentionBlock):
                h = m(h, tokens, views)
        return h
    return layer(h)


def _tokens_per_image(tokens: Tensor | None, batch: int, views: int) -> Tensor | None:
    """Text tokens given once per object (B_obj, N, D) are repeated for each of its ``views`` images."""
    if tokens is None or tokens.shape[0] == batch:
        return tokens
    if tokens.shape[0] * views == batch:
        return tokens.repeat_interleave(views, dim=0)
    raise ValueError(f"tokens batch {tokens.shape[0]} matches neither the image batch {batch} nor batch / views")
