"""What a denoiser is conditioned on, and its "null" (unconditional) twin for classifier-free guidance.

One frozen dataclass instead of a free dict: text tokens for cross-attention, a per-sample embedding
(camera, frame time; never dropped, because a multi-view prior must always know where its views
are), and integer class labels (toy data). The null condition is what condition dropout trains
and what classifier-free guidance subtracts: tokens set to zero and labels set to ``NULL_LABEL``
(nets map it to a learned "no class" embedding).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

NULL_LABEL = -1


@dataclass(frozen=True)
class Conditioning:
    """Per-sample conditioning; every field is optional and batched along its first axis."""

    tokens: Float[Tensor, "B N D"] | None = None  # text tokens, attended to by cross-attention
    embedding: Float[Tensor, "B E"] | None = None  # camera / time, added to the noise-level embedding
    labels: Int[Tensor, " B"] | None = None  # class index, NULL_LABEL = unconditional

    def __post_init__(self) -> None:
        sizes = {name: t.shape[0] for name, t in self._items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"Conditioning fields disagree on the batch size: {sizes}")
        if self.tokens is not None and self.tokens.ndim != 3:
            raise ValueError(f"Conditioning.tokens must be (B, N, D), got shape {tuple(self.tokens.shape)}")
        if self.embedding is not None and self.embedding.ndim != 2:
            raise ValueError(f"Conditioning.embedding must be (B, E), got shape {tuple(self.embedding.shape)}")
        if self.labels is not None and self.labels.ndim != 1:
            raise ValueError(f"Conditioning.labels must be (B,), got shape {tuple(self.labels.shape)}")

    def _items(self) -> list[tuple[str, Tensor]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    @property
    def batch_size(self) -> int | None:
        items = self._items()
        return items[0][1].shape[0] if items else None

    def null(self) -> Conditioning:
        """The unconditional twin: no text (zero tokens), no class; the per-sample embedding is kept."""
        return self.where_null(torch.ones(self.batch_size or 0, dtype=torch.bool))

    def where_null(self, mask: Tensor) -> Conditioning:
        """Replace the samples where ``mask`` (B,) is true by the null condition (condition dropout)."""
        tokens, labels = self.tokens, self.labels
        if tokens is not None:
            tokens = torch.where(mask.to(tokens.device)[:, None, None], torch.zeros_like(tokens), tokens)
        if labels is not None:
            labels = torch.where(mask.to(labels.device), torch.full_like(labels, NULL_LABEL), labels)
        return Conditioning(tokens=tokens, embedding=self.embedding, labels=labels)

    def cat(self, other: Conditioning) -> Conditioning:
        """Both conditions stacked along the batch (to evaluate conditional and unconditional at once)."""
        out = {}
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if (a is None) != (b is None):
                raise ValueError(f"cannot concatenate conditionings: '{f.name}' is set in only one")
            out[f.name] = None if a is None else torch.cat([a, b])
        return Conditioning(**out)

    def repeat(self, n: int) -> Conditioning:
        """Each sample repeated ``n`` times in place (e.g. one condition for n samples or n views)."""
        return Conditioning(**{f.name: (None if v is None else v.repeat_interleave(n, dim=0)) for f, v in self._fields()})

    def _fields(self):
        return [(f, getattr(self, f.name)) for f in dataclasses.fields(self)]
