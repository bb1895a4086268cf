"""The image autoencoder of the latent diffusion prior: KL- or VQ-regularised (Rombach et al. 2022, Sec. 3).

Encoder: conv, then per resolution level a residual block and (between levels) a stride-2 conv, a
residual + self-attention block at the lowest resolution, and a 1x1 conv to the latent moments. The
decoder mirrors it with nearest-neighbour upsampling. ``len(channels) - 1`` downsamplings give the
factor f (f = 8 for four levels).

Regularisers (``regularizer``):

* ``"kl"``: the encoder outputs a diagonal Gaussian q(z|x) = N(mu, sigma^2); training samples z
  with the reparameterisation trick and adds ``kl_weight * KL(q || N(0, I))`` (Kingma & Welling
  2014, eq. 10; LDM's "KL-reg." with a small weight so the latent keeps detail).
* ``"vq"``: z is snapped to the nearest of ``codebook_size`` learned codes (van den Oord et al.
  2017, eq. 3): loss ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2 and a straight-through gradient.
  Codes are compared after L2 normalisation (Yu et al. 2022, "ViT-VQGAN", Sec. 3.2), which keeps
  codebook usage high with a small codebook.

Low-pass skip (``lowpass_skip``): the first ``in_channels`` latent channels are the image average-pooled
by f plus what the encoder adds, and the decoder adds those channels, upsampled bilinearly, to its
output. The networks then only learn the residual detail, and colour (the low frequencies) is in
the latent from the first step: without it, a CPU-sized training run learns shape long before hue
and decodes a purple object grey. It needs latent_channels >= in_channels.

``encode`` returns latents normalised per channel by ``latent_shift`` / ``latent_scale`` (the
dataset statistics measured after training, LDM's "scale factor"), so the diffusion prior sees
unit-variance latents; ``decode`` undoes it. Both statistics are buffers saved with the weights.

Why our own and not diffusers' ``AutoencoderKL``: it has no VQ variant with the same encoder, its
config has no place for the latent statistics, and it is 4x larger than this domain needs; a tiny
diffusers AutoencoderKL from a local folder can still be used through ``DiffusersVAE``
(``gen3d.priors.components``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gen3d.nets.attention import MultiHeadAttention
from gen3d.nets.base import ConfiguredModule


@dataclass(frozen=True)
class AutoencoderConfig:
    in_channels: int = 5  # RGB, alpha, depth (gen3d.priors.mvdata.to_network)
    latent_channels: int = 8
    channels: tuple[int, ...] = (32, 64, 128, 128)  # per level; f = 2^(levels - 1)
    blocks_per_level: int = 1
    regularizer: Literal["kl", "vq"] = "kl"
    codebook_size: int = 1024  # vq only
    groups: int = 8
    lowpass_skip: bool = True  # latents start as the f-times average-pooled image (see module docstring)

    def __post_init__(self) -> None:
        if len(self.channels) < 1 or self.latent_channels < 1 or self.in_channels < 1:
            raise ValueError("AutoencoderConfig: channels, latent_channels and in_channels must be non-empty / positive")
        if self.lowpass_skip and self.latent_channels < self.in_channels:
            raise ValueError("AutoencoderConfig.lowpass_skip needs latent_channels >= in_channels")
        if self.regularizer not in ("kl", "vq"):
            raise ValueError(f"AutoencoderConfig.regularizer must be 'kl' or 'vq', got {self.regularizer!r}")

    @property
    def factor(self) -> int:
        return 2 ** (len(self.channels) - 1)


def _norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, c), c)


class _Res(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.n1, self.c1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.n2, self.c2 = _norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.c1(F.silu(self.n1(x)))
        return self.skip(x) + self.c2(F.silu(self.n2(h)))


class _Attn(nn.Module):
    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm, self.attn = _norm(c, groups), MultiHeadAttention(c, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        y = self.attn(self.norm(x).flatten(2).transpose(1, 2))
        return x + y.transpose(1, 2).reshape(b, c, h, w)


class Encoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig, out_channels: int):
        super().__init__()
        ch, g = cfg.channels, cfg.groups
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)]
        c = ch[0]
        for lvl, cl in enumerate(ch):
            for _ in range(cfg.blocks_per_level):
                layers.append(_Res(c, cl, g))
                c = cl
            if lvl < len(ch) - 1:
                layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        layers += [_Res(c, c, g), _Attn(c, g), _Res(c, c, g), _norm(c, g), nn.SiLU(), nn.Conv2d(c, out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        ch, g = cfg.channels, cfg.groups
        c = ch[-1]
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, c, 3, padding=1), _Res(c, c, g), _Attn(c, g), _Res(c, c, g)]
        for lvl in reversed(range(len(ch))):
            for _ in range(cfg.blocks_per_level + 1):
                layers.append(_Res(c, ch[lvl], g))
                c = ch[lvl]
            if lvl > 0:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)]
        layers += [_norm(c, g), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        self.conv_out = nn.Conv2d(c, cfg.in_channels, 3, padding=1)  # the "last layer" of the adaptive GAN weight

    def forward(self, z: Tensor) -> Tensor:
        return self.conv_out(self.net(z))


@dataclass
class Encoded:
    """What the encoder gives: the latent ``z`` (sampled for KL, quantised for VQ, in raw units), the
    regularisation loss, and for VQ the code indices."""

    z: Tensor
    reg_loss: Tensor
    mean: Tensor | None = None
    codes: Tensor | None = None


class Autoencoder(ConfiguredModule):
    """x (B, in_channels, H, W) -> latents (B, latent_channels, H/f, W/f) -> x_hat."""

    config_class = AutoencoderConfig
    kind = "autoencoder"

    def __init__(self, config: AutoencoderConfig = AutoencoderConfig()):
        super().__init__()
        self.config = cfg = config
        zc = cfg.latent_channels
        self.encoder = Encoder(cfg, 2 * zc if cfg.regularizer == "kl" else zc)
        if cfg.regularizer == "kl":  # start with a small posterior std (e^-4 = 0.018): the decoder then
            with torch.no_grad():  # trains on informative latents from step 0, and the KL term lets std grow
                self.encoder.net[-1].bias[zc:].fill_(-8.0)
        self.decoder = Decoder(cfg)
        if cfg.regularizer == "vq":
            self.codebook = nn.Embedding(cfg.codebook_size, zc)
            nn.init.normal_(self.codebook.weight)
        self.register_buffer("latent_shift", torch.zeros(zc))
        self.register_buffer("latent_scale", torch.ones(zc))

    # ---- raw (unnormalised) latents, used in training ----
    def encode_raw(self, x: Tensor, sample: bool = True, generator: torch.Generator | None = None) -> Encoded:
        self._check(x)
        h = self.encoder(x)
        if self.config.lowpass_skip:  # the first in_channels latent channels start as the pooled image
            c = self.config.in_channels
            pooled = F.avg_pool2d(x, self.config.factor)
            h = torch.cat([h[:, :c] + pooled, h[:, c:]], dim=1)
        if self.config.regularizer == "kl":
            mean, logvar = h.chunk(2, dim=1)
            logvar = logvar.clamp(-30.0, 20.0)
            std = (0.5 * logvar).exp()
            z = mean + std * torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device) if sample else mean
            kl = 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar)  # KL(N(mu, s^2) || N(0, 1)) per element
            return Encoded(z=z, reg_loss=kl.mean(), mean=mean)
        return self._quantise(h)

    def _quantise(self, z_e: Tensor, beta: float = 0.25) -> Encoded:
        b, c, hh, ww = z_e.shape
        flat = F.normalize(z_e.permute(0, 2, 3, 1).reshape(-1, c), dim=1)
        book = F.normalize(self.codebook.weight, dim=1)
        codes = (flat @ book.T).argmax(dim=1)  # nearest code by cosine = by L2 on the unit sphere
        q = book[codes]
        loss = F.mse_loss(q, flat.detach()) + beta * F.mse_loss(flat, q.detach())
        q = flat + (q - flat).detach()  # straight-through estimator
        z = q.reshape(b, hh, ww, c).permute(0, 3, 1, 2)
        return Encoded(z=z, reg_loss=loss, mean=z, codes=codes.reshape(b, hh, ww))

    def decode_raw(self, z: Tensor) -> Tensor:
        if z.ndim != 4 or z.shape[1] != self.config.latent_channels:
            raise ValueError(f"decoder expects latents (B, {self.config.latent_channels}, h, w), got {tuple(z.shape)}")
        if self.config.regularizer == "vq":  # generated latents are snapped to the codebook too
            z = self._quantise(z).z
        return self._decode(z)

    def _decode(self, z: Tensor) -> Tensor:
        out = self.decoder(z)
        if self.config.lowpass_skip:
            c = self.config.in_channels
            out = out + F.interpolate(z[:, :c], scale_factor=self.config.factor, mode="bilinear", align_corners=False)
        return out

    # ---- normalised latents, what the prior sees ----
    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Deterministic latents (the posterior mean for KL), normalised to ~unit variance per channel."""
        z = self.encode_raw(x, sample=False).mean
        return (z - self.latent_shift[:, None, None]) / self.latent_scale[:, None, None]

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        return self.decode_raw(z * self.latent_scale[:, None, None] + self.latent_shift[:, None, None])

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Encoded]:
        enc = self.encode_raw(x, sample=True, generator=generator)
        return self.decode_raw(enc.z) if self.config.regularizer == "kl" else self._decode(enc.z), enc

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        f = self.config.factor
        return self.config.latent_channels, height // f, width // f

    def _check(self, x: Tensor) -> None:
        f = self.config.factor
        if x.ndim != 4 or x.shape[1] != self.config.in_channels or x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"autoencoder expects (B, {self.config.in_channels}, H, W) with H, W divisible by {f}; "
                             f"got {tuple(x.shape)}")


# --------------------------------------------------------------------------------------------------
# The adversarial part: a patch discriminator (Isola et al. 2017, "pix2pix", Sec. 3.2.2)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscriminatorConfig:
    in_channels: int = 5
    channels: int = 32
    layers: int = 3  # stride-2 convs; each output logit sees a (~2^layers * 4)-pixel patch


class PatchDiscriminator(ConfiguredModule):
    """Real/fake logits on a grid of overlapping patches (PatchGAN: conv 4x4 stride 2, GroupNorm, LeakyReLU)."""

    config_class = DiscriminatorConfig
    kind = "patch_discriminator"

    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.config = cfg = config
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, cfg.channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = cfg.channels
        for i in range(1, cfg.layers):
            c2 = cfg.channels * 2 ** min(i, 3)
            layers += [nn.Conv2d(c, c2, 4, 2 if i < cfg.layers - 1 else 1, 1), _norm(c2, 8), nn.LeakyReLU(0.2)]
            c = c2
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator hinge loss (Lim & Ye 2017; used by VQGAN / LDM)."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def adaptive_gan_weight(rec_loss: Tensor, g_loss: Tensor, last_layer: Tensor, max_weight: float = 1e4) -> Tensor:
    """||grad rec|| / ||grad gan|| at the decoder's last layer (Esser et al. 2021, "VQGAN", eq. 7):
    balances the two losses without tuning their ratio by hand."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_gan.norm() + 1e-4)).clamp(0.0, max_weight).detach()


__all__ = [
    "Autoencoder",
    "AutoencoderConfig",
    "DiscriminatorConfig",
    "Encoded",
    "PatchDiscriminator",
    "adaptive_gan_weight",
    "hinge_d_loss",
]
