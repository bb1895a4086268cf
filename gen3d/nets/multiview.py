"""The multi-view denoiser backbone: a U-Net or DiT over the latents of V posed views of one object.

What makes it multi-view (MVDream, Shi et al. 2023, Sec. 3.1; Zero123++ / CAT3D for the ray maps):

* **cross-view self-attention**: the batch holds objects x views, and every attention layer joins
  the V token sets of one object (``views=V``; see ``attention.join_views``);
* **camera conditioning, twice**: each view's camera vector (``camera_vector``: the camera-to-world
  rotation and centre + normalised intrinsics, 16 numbers) is embedded and added to the noise-level
  embedding, and a per-pixel Plucker ray map (d, o x d) at latent resolution (Sitzmann et al. 2021,
  "Light Field Networks", Sec. 3.1) is concatenated to the latent input, so every latent pixel knows
  its ray;
* **text**: cross-attention to text tokens (``gen3d.priors.text``).

Conditioning arrives as ``gen3d.diffusion.Conditioning``: ``tokens`` (B, N, D) per image,
``embedding`` (B, 16 [+ extra]) the camera vector of each image (never dropped for guidance).

Extending to time (4D): a clip of F frames x V views is a batch of F*V images joined in attention
(``views=F*V``), with the frame time appended to ``embedding`` (``extra_embedding_dim``); the camera
and text conditioning are unchanged and reusable by any prior whose input has pixels (or points:
the ray map is the only image-specific part, and ``plucker=False`` turns it off).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from gen3d.nets.base import ConfiguredModule
from gen3d.nets.dit import DiT, DiTConfig
from gen3d.nets.unet import UNet, UNetConfig

CAMERA_DIM = 16


@dataclass(frozen=True)
class MultiViewConfig:
    latent_channels: int = 8
    backbone: Literal["unet", "dit"] = "unet"
    plucker: bool = True  # concatenate a 6-channel Plucker ray map to the input
    extra_embedding_dim: int = 0  # beyond the camera vector (e.g. frame time for 4D)
    token_dim: int = 384  # text-token width (0: no text)
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(channels=(128, 256), attention_levels=(0, 1), heads=4))
    dit: DiTConfig = field(default_factory=lambda: DiTConfig(patch_size=1, hidden=256, depth=6, heads=4))

    def __post_init__(self) -> None:
        if self.backbone not in ("unet", "dit"):
            raise ValueError(f"MultiViewConfig.backbone must be 'unet' or 'dit', got {self.backbone!r}")


def camera_vector(c2w: Float[Tensor, "V 4 4"], K: Float[Tensor, "V 3 3"], width: int, height: int) -> Float[Tensor, "V 16"]:
    """[R (9, row-major), camera centre (3), fx/W, fy/H, cx/W, cy/H] of OpenCV camera-to-world matrices."""
    k = torch.stack([K[:, 0, 0] / width, K[:, 1, 1] / height, K[:, 0, 2] / width, K[:, 1, 2] / height], dim=1)
    return torch.cat([c2w[:, :3, :3].reshape(-1, 9), c2w[:, :3, 3], k], dim=1).float()


def plucker_from_vector(cam: Float[Tensor, "B 16"], h: int, w: int) -> Float[Tensor, "B 6 h w"]:
    """Plucker coordinates (d, o x d) of the ray through each pixel centre of an h x w grid, from
    :func:`camera_vector` (intrinsics are stored normalised, so any grid size works)."""
    b = cam.shape[0]
    R = cam[:, :9].reshape(b, 3, 3)
    o = cam[:, 9:12]
    fx, fy, cx, cy = (cam[:, 12] * w, cam[:, 13] * h, cam[:, 14] * w, cam[:, 15] * h)
    ys, xs = torch.meshgrid(torch.arange(h, device=cam.device, dtype=cam.dtype) + 0.5,
                            torch.arange(w, device=cam.device, dtype=cam.dtype) + 0.5, indexing="ij")
    d_cam = torch.stack([(xs[None] - cx[:, None, None]) / fx[:, None, None],
                         (ys[None] - cy[:, None, None]) / fy[:, None, None],
                         torch.ones(b, h, w, device=cam.device, dtype=cam.dtype)], dim=-1)  # B h w 3
    d = torch.einsum("bij,bhwj->bhwi", R, d_cam)
    d = d / d.norm(dim=-1, keepdim=True)
    m = torch.cross(o[:, None, None, :].expand_as(d), d, dim=-1)
    return torch.cat([d, m], dim=-1).permute(0, 3, 1, 2)


class MultiViewNet(ConfiguredModule):
    """F(x, c_noise, tokens, embedding=camera vectors, views=V) -> (B, latent_channels, h, w)."""

    config_class = MultiViewConfig
    kind = "multiview"

    def __init__(self, config: MultiViewConfig = MultiViewConfig()):
        super().__init__()
        self.config = cfg = config
        cin = cfg.latent_channels + (6 if cfg.plucker else 0)
        common = dict(in_channels=cin, out_channels=cfg.latent_channels, token_dim=cfg.token_dim,
                      extra_embedding_dim=CAMERA_DIM + cfg.extra_embedding_dim, num_classes=0)
        if cfg.backbone == "unet":
            self.net = UNet(dataclasses.replace(cfg.unet, **common))
        else:
            self.net = DiT(dataclasses.replace(cfg.dit, **common))

    def forward(
        self,
        x: Float[Tensor, "B C h w"],
        c_noise: Float[Tensor, " B"],
        tokens: Float[Tensor, "B N D"] | None = None,
        embedding: Float[Tensor, "B E"] | None = None,
        labels: Int[Tensor, " B"] | None = None,
        views: int = 1,
    ) -> Float[Tensor, "B C h w"]:
        cfg = self.config
        if embedding is None or embedding.shape[-1] != CAMERA_DIM + cfg.extra_embedding_dim:
            got = None if embedding is None else tuple(embedding.shape)
            raise ValueError(f"the multi-view net needs each view's camera vector as Conditioning.embedding "
                             f"(B, {CAMERA_DIM + cfg.extra_embedding_dim}); got {got}")
        if x.shape[0] % views:
            raise ValueError(f"batch {x.shape[0]} is not a whole number of objects with views={views}")
        if cfg.plucker:
            rays = plucker_from_vector(embedding[:, :CAMERA_DIM].to(x.dtype), x.shape[-2], x.shape[-1])
            x = torch.cat([x, rays], dim=1)
        return self.net(x, c_noise, tokens=tokens, embedding=embedding, labels=labels, views=views)


__all__ = ["CAMERA_DIM", "MultiViewConfig", "MultiViewNet", "camera_vector", "plucker_from_vector"]
