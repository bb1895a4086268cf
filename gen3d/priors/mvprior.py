"""The multi-view latent diffusion prior: prompt -> V posed views (RGB, alpha, depth) of one object.

Components, each swappable on its own (``MultiViewPrior(autoencoder, denoiser, text_encoder, rig)``):

* ``autoencoder``: maps the 5-channel views (RGB, alpha, depth; ``mvdata.to_network``) to latents
  and back (``gen3d.autoencoders.Autoencoder``, or a diffusers ``AutoencoderKL`` from a local
  folder through ``DiffusersAutoencoder``);
* ``denoiser``: a ``Precond`` around ``MultiViewNet`` (cross-view attention, camera and text
  conditioning), trained with any objective of ``gen3d.diffusion``;
* ``text_encoder``: prompts -> tokens (``gen3d.priors.text``);
* ``rig``: the V cameras the views are generated for (the training rig).

Sampling: x_T ~ N(0, sigma_max^2 I) for all V views of an object jointly, any sampler of
``gen3d.diffusion.samplers`` over the denoiser wrapped in classifier-free guidance (the null
condition is "no text"; the cameras are always given), then the decoder per view.

Saved as a folder: ``prior.json`` (rig, text encoder, sampling defaults, training summary),
``autoencoder/`` and ``denoiser/`` (config.json + safetensors each).
"""

from __future__ import annotations

import dataclasses
import math

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gen3d.diffusion.conditioning import Conditioning
from gen3d.diffusion.denoiser import Precond
from gen3d.errors import ConfigError, DataError
from gen3d.priors.mvdata import PriorRig, from_network
from gen3d.priors.text import TextEncoderConfig

PRIOR_FORMAT = 1


@dataclass(frozen=True)
class SamplingDefaults:
    sampler: str = "heun"
    steps: int = 20
    guidance: float = 3.0
    # Guide only while the noise level is above this (Kynkaanniemi et al. 2024): coarse shape and colour
    # are decided at high noise; at low noise guidance sharpens each view on its own. 0: guide throughout.
    guidance_min_sigma: float = 0.0
    # What guidance extrapolates away from: "text", the same denoiser without the prompt (classifier-free
    # guidance), or "weak", a weaker denoiser with the prompt (autoguidance, Karras et al. 2024); "weak"
    # needs the prior folder's weak_denoiser/.
    guide: str = "text"


@dataclass(frozen=True)
class PriorSpec:
    """What ``prior.json`` holds besides the two networks."""

    rig: PriorRig = field(default_factory=PriorRig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    latent_channels: int = 8
    latent_res: int = 8


class ViewsDenoiser:
    """A Precond over objects x views seen as a plain Denoiser (binds ``views``)."""

    def __init__(self, precond: Precond, views: int):
        self.precond, self.views = precond, views

    def __call__(self, x: Tensor, sigma: Tensor, cond: Conditioning | None = None) -> Tensor:
        return self.precond(x, sigma, cond, views=self.views)


def rig_camera_vectors(rig: PriorRig) -> Tensor:
    """(V, 16) camera vectors of the rig's views (``gen3d.nets.multiview.camera_vector``)."""
    from gen3d.nets.multiview import camera_vector

    cams = rig.cameras()
    return camera_vector(cams.c2w, cams.K, cams.width, cams.height)


@dataclass
class GeneratedViews:
    """V views per prompt: rgb (N, V, 3, H, W) in [0, 1] on white, alpha (N, V, H, W), depth
    (N, V, H, W) camera z (0 off the object), the rig's cameras, and sampling facts. ``prior_depth``:
    the decoded depth, kept when ``depth`` has been replaced (``gen3d generate`` fuses it with the fit)."""

    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    cameras: Any
    latents: Tensor
    nfe: int
    info: dict[str, Any]
    prior_depth: Tensor | None = None

    def select(self, index: int) -> "GeneratedViews":
        """The views of one prompt (or candidate) as a set of its own (N = 1)."""
        V = self.rgb.shape[1]
        pd = None if self.prior_depth is None else self.prior_depth[index : index + 1]
        return dataclasses.replace(self, rgb=self.rgb[index : index + 1], alpha=self.alpha[index : index + 1],
                                   depth=self.depth[index : index + 1], latents=self.latents[index * V : (index + 1) * V],
                                   prior_depth=pd)


GUIDES = ("text", "weak")


class MultiViewPrior:
    """``weak_denoiser`` (optional): a weaker denoiser for the same latents, rig and condition (e.g. an
    earlier training stage), the negative of autoguidance (``guide="weak"``)."""

    def __init__(self, autoencoder, denoiser: Precond, spec: PriorSpec, text_encoder=None, meta: dict | None = None,
                 weak_denoiser: Precond | None = None):
        self.autoencoder, self.denoiser, self.spec = autoencoder, denoiser, spec
        self.weak_denoiser = weak_denoiser
        self._text = text_encoder
        self.meta = meta or {}
        if spec.sampling.guide not in GUIDES:
            raise ConfigError(f"sampling.guide must be one of {', '.join(GUIDES)}, got {spec.sampling.guide!r}")

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def to(self, device: str | torch.device) -> MultiViewPrior:
        self.autoencoder.to(device)
        self.denoiser.to(device)
        if self.weak_denoiser is not None:
            self.weak_denoiser.to(device)
        return self

    @property
    def text_encoder(self):
        if self._text is None:
            from gen3d.priors.text import load_text_encoder

            self._text = load_text_encoder(self.spec.text, "cpu")
        return self._text

    def encode_prompts(self, prompts: list[str]) -> Tensor:
        return self.text_encoder.encode(prompts)

    @torch.no_grad()
    def sample(
        self,
        prompts: list[str],
        seed: int = 0,
        guidance: float | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        progress: bool = False,
        tokens: Tensor | None = None,
        guidance_min_sigma: float | None = None,
        guide: str | None = None,
    ) -> GeneratedViews:
        from gen3d.diffusion.guidance import AutoGuidance, ClassifierFreeGuidance
        from gen3d.diffusion.samplers import sample, sampler_names

        d = self.spec.sampling
        guidance = d.guidance if guidance is None else float(guidance)
        steps = d.steps if steps is None else int(steps)
        sampler = sampler or d.sampler
        if sampler not in sampler_names():
            raise ConfigError(f"unknown sampler {sampler!r}; choose one of {', '.join(sampler_names())}")
        if steps < 1:
            raise ConfigError(f"steps must be >= 1, got {steps}")
        dev = self.device
        n, V = len(prompts), self.spec.rig.views
        if tokens is None:
            tokens = self.encode_prompts(prompts)
        tokens = tokens.to(dev).repeat_interleave(V, dim=0)
        cams = rig_camera_vectors(self.spec.rig).to(dev).repeat(n, 1)
        cond = Conditioning(tokens=tokens, embedding=cams)
        g = torch.Generator().manual_seed(int(seed))
        shape = (n * V, self.spec.latent_channels, self.spec.latent_res, self.spec.latent_res)
        noise = torch.randn(shape, generator=g).to(dev)
        den = ViewsDenoiser(self.denoiser.eval(), V)
        lo = d.guidance_min_sigma if guidance_min_sigma is None else float(guidance_min_sigma)
        if lo < 0:
            raise ConfigError(f"guidance_min_sigma must be >= 0, got {lo}")
        guide = guide or d.guide
        if guide not in GUIDES:
            raise ConfigError(f"guide must be one of {', '.join(GUIDES)}, got {guide!r}")
        if guidance == 1.0:
            guided = den
        elif guide == "weak":
            if self.weak_denoiser is None:
                raise ConfigError("guide='weak' (autoguidance) needs a weak denoiser: this prior folder has no "
                                  "weak_denoiser/; use guide='text' (classifier-free guidance)")
            weak = ViewsDenoiser(self.weak_denoiser.to(dev).eval(), V)
            guided = AutoGuidance(den, weak, guidance, interval=(lo, math.inf))
        else:
            guided = ClassifierFreeGuidance(den, guidance, interval=(lo, math.inf))
        res = sample(sampler, guided, noise, steps, cond=cond, generator=g, progress=progress)
        x = self.autoencoder.eval().decode(res.x).float().cpu()
        out = from_network(x, self.spec.rig.radius)
        H = x.shape[-1]
        return GeneratedViews(
            rgb=out["rgb"].reshape(n, V, 3, H, H), alpha=out["alpha"].reshape(n, V, H, H),
            depth=out["depth"].reshape(n, V, H, H), cameras=self.spec.rig.cameras(), latents=res.x.cpu(),
            nfe=res.nfe, info={"sampler": sampler, "steps": steps, "guidance": guidance, "seed": int(seed),
                               **({"guidance_min_sigma": lo} if lo > 0 else {}),
                               **({"guide": guide} if guidance != 1.0 else {})},
        )

    # ---- save / load ----
    def save_pretrained(self, path: str | Path, meta: dict | None = None, half: bool = False) -> None:
        """Write the folder (atomically). ``half``: store weights as float16 (they load back as float32)."""
        import copy

        from gen3d.config import to_dict
        from gen3d.utils.io import atomic_dir, write_json

        with atomic_dir(path) as tmp:
            write_json(tmp / "prior.json", {"format": PRIOR_FORMAT, "kind": "multiview_prior", "spec": to_dict(self.spec),
                                            "meta": meta if meta is not None else self.meta})
            ae, den, weak = self.autoencoder, self.denoiser, self.weak_denoiser
            if half:
                ae, den = copy.deepcopy(ae).half(), copy.deepcopy(den).half()
                weak = copy.deepcopy(weak).half() if weak is not None else None
            ae._write_to(tmp / "autoencoder")
            den.save_pretrained(tmp / "denoiser")
            if weak is not None:
                weak.save_pretrained(tmp / "weak_denoiser")

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> MultiViewPrior:
        from gen3d.autoencoders.autoencoder import Autoencoder
        from gen3d.config import from_dict
        from gen3d.utils.io import read_json

        path = Path(path)
        pj = path / "prior.json"
        if not pj.is_file():
            raise DataError(f"{path} is not a gen3d multi-view prior (no prior.json); train one with "
                            "`gen3d train prior` or point --model at the shipped assets/default")
        try:
            data = read_json(pj)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{pj} is not valid JSON ({e})") from None
        if data.get("format") != PRIOR_FORMAT:
            raise DataError(f"{pj}: prior format {data.get('format')!r}, this gen3d reads {PRIOR_FORMAT}")
        spec = from_dict(PriorSpec, data["spec"], str(pj))
        ae_dir = path / "autoencoder"
        if (ae_dir / "config.json").is_file() and read_json(ae_dir / "config.json").get("kind") == "autoencoder":
            ae = Autoencoder.from_pretrained(ae_dir, map_location=device)
        else:
            from gen3d.priors.components import DiffusersAutoencoder

            ae = DiffusersAutoencoder.from_pretrained(ae_dir, device=device)
        den = Precond.from_pretrained(path / "denoiser", map_location=device)
        weak = None
        if (path / "weak_denoiser").is_dir():
            weak = Precond.from_pretrained(path / "weak_denoiser", map_location=device)
        elif spec.sampling.guide == "weak":
            raise DataError(f"{pj} asks for guide='weak' (autoguidance) but {path / 'weak_denoiser'} is missing")
        for m in (ae, den) + ((weak,) if weak is not None else ()):
            m.float().eval()
            for p in m.parameters():
                p.requires_grad_(False)
        return cls(ae, den, spec, meta=data.get("meta", {}), weak_denoiser=weak)


def default_model_path() -> Path:
    """The shipped default prior (inside the installed package: gen3d/assets/default)."""
    import gen3d.assets

    return Path(gen3d.assets.__file__).resolve().parent / "default"


__all__ = ["GeneratedViews", "MultiViewPrior", "PriorSpec", "SamplingDefaults", "ViewsDenoiser", "default_model_path",
           "rig_camera_vectors"]
