"""Attention layers shared by the U-Net and the DiT, built for multi-view reuse.

``MultiHeadAttention`` is plain scaled dot-product attention (Vaswani et al. 2017, eq. 1) over
tokens (B, N, C), optionally to a context (B, M, D) (cross-attention to text tokens, Rombach et al.
2022, Sec. 3.3). Self-attention takes ``views``: the batch then holds B = B_obj * V images, and the
V token sets of one object are joined into one sequence of V * N tokens before attending, so every
view sees every other view (MVDream's "3D self-attention", Shi et al. 2023, Sec. 3.1). With views = 1
this is ordinary per-image attention, so a single-image model's weights load unchanged into a
multi-view one; that is the whole multi-view extension.

Why our own: diffusers' ``Attention`` supports the same through custom processors, but a 40-line
layer with the view reshape written out is easier to read, test and extend (e.g. to epipolar masks).
"""

from __future__ import annotations

import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn


def join_views(x: Float[Tensor, "BV N C"], views: int) -> Float[Tensor, "B VN C"]:
    """(B*V, N, C) -> (B, V*N, C): the V views of one object as one token sequence."""
    if views == 1:
        return x
    bv, n, c = x.shape
    if bv % views:
        raise ValueError(f"batch {bv} is not a multiple of views={views}")
    return x.reshape(bv // views, views * n, c)


def split_views(x: Float[Tensor, "B VN C"], views: int) -> Float[Tensor, "BV N C"]:
    """Inverse of :func:`join_views`."""
    if views == 1:
        return x
    b, vn, c = x.shape
    return x.reshape(b * views, vn // views, c)


class MultiHeadAttention(nn.Module):
    """softmax(Q K^T / sqrt(d)) V with ``heads`` heads; K, V from ``context`` when given."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, zero_out: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        if zero_out:  # start as the identity residual (Peebles & Xie 2023, adaLN-Zero rationale)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(
        self, x: Float[Tensor, "B N C"], context: Float[Tensor, "B M D"] | None = None, views: int = 1
    ) -> Float[Tensor, "B N C"]:
        self_attn = context is None
        if self_attn:  # across the views of one object
            x = join_views(x, views)
            context = x
        b, n, c = x.shape
        h = self.heads
        q = self.q(x).reshape(b, n, h, c // h).transpose(1, 2)
        k, v = self.kv(context).reshape(b, context.shape[1], 2, h, c // h).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        y = self.out(y.transpose(1, 2).reshape(b, n, c))
        return split_views(y, views) if self_attn else y
