"""Adapters that let pretrained diffusers components stand in for gen3d's own, loaded from local folders.

``DiffusersAutoencoder`` wraps a diffusers ``AutoencoderKL`` saved with ``save_pretrained``: put its
folder at ``PRIOR/autoencoder`` (or pass it to ``MultiViewPrior``) and the prior encodes and decodes
through it. Latents are normalised as diffusers does, (z - shift_factor) * scaling_factor. The VAE
must take gen3d's 5-channel views (RGB, alpha, depth; ``gen3d.priors.mvdata.to_network``): an RGB-only
image VAE cannot give the masks and depth the reconstruction uses, and is refused with that reason.
Nothing is downloaded: the folder is read with ``local_files_only=True``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from gen3d.errors import DataError

GEN3D_CHANNELS = 5


class DiffusersAutoencoder(nn.Module):
    def __init__(self, vae):
        super().__init__()
        cfg = vae.config
        if cfg.in_channels != GEN3D_CHANNELS or cfg.out_channels != GEN3D_CHANNELS:
            raise DataError(f"the diffusers AutoencoderKL has {cfg.in_channels} input / {cfg.out_channels} output channels; "
                            f"gen3d's views have {GEN3D_CHANNELS} (RGB, alpha, depth), which the reconstruction needs")
        self.vae = vae
        self.scaling = float(getattr(cfg, "scaling_factor", 1.0) or 1.0)
        self.shift = float(getattr(cfg, "shift_factor", 0.0) or 0.0)
        self.factor = 2 ** (len(cfg.block_out_channels) - 1)
        self.latent_channels = int(cfg.latent_channels)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> DiffusersAutoencoder:
        path = Path(path)
        if not (path / "config.json").is_file():
            raise DataError(f"{path} has no config.json: not an autoencoder folder")
        try:
            from diffusers import AutoencoderKL

            vae = AutoencoderKL.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot load a diffusers AutoencoderKL from {path}: {e}") from None
        return cls(vae).to(device)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return self.latent_channels, height // self.factor, width // self.factor

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        z = self.vae.encode(x).latent_dist.mean
        return (z - self.shift) * self.scaling

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        return self.vae.decode(z / self.scaling + self.shift).sample

    def _write_to(self, folder: Path) -> None:
        self.vae.save_pretrained(str(folder))


__all__ = ["DiffusersAutoencoder"]
