"""What every reconstruction backend provides: a representation that renders, and a fitting result.

A backend (Gaussians, NeRF, later dynamic Gaussians) fits a :class:`gen3d.data.dataset.ViewSet`
and returns a :class:`Representation`; the pipeline then renders it (evaluation, turntable,
depth for mesh extraction) without knowing which backend made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from jaxtyping import Float
from torch import Tensor

from gen3d.cameras import Cameras


def recomposite(
    images: Float[Tensor, "V H W 3"], masks: Float[Tensor, "V H W"], background: tuple[float, float, float]
) -> Float[Tensor, "V H W 3"]:
    """Views read by ``load_views`` are composited on white (``c m + 1 - m``); move them onto ``background``."""
    if tuple(background) == (1.0, 1.0, 1.0):
        return images
    m = masks[..., None].to(images)
    return images - (1 - m) + (1 - m) * torch.tensor(background, dtype=images.dtype, device=images.device)


@dataclass(frozen=True)
class Render:
    """Per-view renders, float32 on the representation's device."""

    rgb: Float[Tensor, "V H W 3"]  # composited on the background
    alpha: Float[Tensor, "V H W"]
    depth: Float[Tensor, "V H W"]  # expected camera z where alpha > 0 (0 elsewhere)


@runtime_checkable
class Representation(Protocol):
    """A fitted 3D representation."""

    def render(self, cams: Cameras, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Render: ...

    def save(self, folder: Path) -> list[Path]:
        """Write the representation's standard files into ``folder``; return their paths."""
        ...


@dataclass(frozen=True)
class FitResult:
    representation: Representation
    seconds: float
    iterations: int
    losses: list[float] = field(default_factory=list)  # one per logged step
    train_psnr: float = float("nan")
