"""gen3d.nets: denoiser backbones (U-Net, DiT, a toy MLP) and their blocks.

Every backbone is called as ``net(x, c_noise, tokens=None, embedding=None, labels=None, views=1)``
(see :class:`Backbone`) and returns an output shaped like ``x``; ``gen3d.diffusion.denoiser.Precond``
turns it into a denoiser. Each is built from one frozen config dataclass, and
``save_pretrained(dir)`` / ``from_pretrained(dir)`` round-trip it through config.json + safetensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from jaxtyping import Float, Int
from torch import Tensor

from gen3d.errors import DataError
from gen3d.nets.base import ConfiguredModule, read_net_config
from gen3d.nets.dit import DiT, DiTConfig
from gen3d.nets.mlp import MLPConfig, ToyMLP
from gen3d.nets.multiview import MultiViewConfig, MultiViewNet
from gen3d.nets.unet import UNet, UNetConfig


class Backbone(Protocol):
    """What ``Precond`` calls: F(c_in x, c_noise, conditioning...) shaped like x (B = objects * views)."""

    def __call__(
        self,
        x: Float[Tensor, "B ..."],
        c_noise: Float[Tensor, " B"],
        tokens: Float[Tensor, "B N D"] | None = None,
        embedding: Float[Tensor, "B E"] | None = None,
        labels: Int[Tensor, " B"] | None = None,
        views: int = 1,
    ) -> Float[Tensor, "B ..."]: ...


NETS: dict[str, type[ConfiguredModule]] = {"mlp": ToyMLP, "unet": UNet, "dit": DiT, "multiview": MultiViewNet}


def load_net(path: str | Path, map_location: str | torch.device = "cpu") -> ConfiguredModule:
    """Load any backbone saved with ``save_pretrained``; the folder's config.json names its kind."""
    kind, _ = read_net_config(path)
    if kind not in NETS:
        raise DataError(f"{path}: unknown network kind '{kind}' (known: {', '.join(NETS)})")
    return NETS[kind].from_pretrained(path, map_location=map_location)


__all__ = ["NETS", "Backbone", "DiT", "DiTConfig", "MLPConfig", "MultiViewConfig", "MultiViewNet", "ToyMLP", "UNet", "UNetConfig", "load_net"]
