"""``gen3d train prior``: train the multi-view denoiser on the latents of a multi-view training set.

Steps (each resumable):

1. encode every object's V views with the trained autoencoder (and their mirror images: each view
   flipped left-right, views re-ordered to the mirrored azimuths, which is the mirrored object seen
   from the same rig) -> ``OUT/cache/latents.safetensors``;
2. encode every distinct caption with the frozen text encoder -> ``OUT/cache/text.safetensors``;
3. train: per step a batch of objects, one random caption each, one noise level per object shared by
   its views, the objective and preconditioning of ``gen3d.diffusion`` with condition dropout (for
   classifier-free guidance), AdamW, warm-up + cosine, and an EMA of the weights (Karras et al. 2024
   show EMA length matters; a fixed 0.999 with a short warm-up suits runs of a few thousand steps);
4. write ``OUT/prior/`` (the EMA weights, as a :class:`MultiViewPrior` folder), ``OUT/samples.png``,
   ``OUT/losses.png``, ``OUT/log.jsonl`` in the checkpoint.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gen3d.diffusion.conditioning import Conditioning
from gen3d.diffusion.denoiser import Precond, PrecondConfig
from gen3d.diffusion.objectives import ObjectiveConfig, diffusion_loss
from gen3d.errors import ConfigError, DataError
from gen3d.nets.multiview import MultiViewConfig, MultiViewNet
from gen3d.priors.mvprior import MultiViewPrior, PriorSpec, SamplingDefaults, rig_camera_vectors
from gen3d.priors.text import TextEncoderConfig


@dataclass(frozen=True)
class PriorTrainConfig:
    data: str = "out/mvdata"
    autoencoder: str = "out/train/autoencoder/autoencoder"
    out: str = "out/train/prior"
    net: MultiViewConfig = field(default_factory=MultiViewConfig)
    precond: PrecondConfig = field(default_factory=lambda: PrecondConfig(prediction="edm", sigma_data=1.0))
    objective: ObjectiveConfig = field(default_factory=lambda: ObjectiveConfig(p_mean=-0.8, p_std=1.4, cond_drop_prob=0.1))
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    steps: int = 6000
    batch_size: int = 16  # objects per step and process (x V views)
    lr: float = 4e-4
    warmup: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema: float = 0.999
    mirror: bool = True
    checkpoint_every: int = 250
    log_every: int = 25
    preview_prompts: tuple[str, ...] = ("a red mug", "a blue chair", "a green sphere", "a yellow table")
    max_objects: int = 0
    seed: int = 0
    device: str = "auto"
    # Fine-tune: start from this prior folder's denoiser (e.g. the shipped assets/default) instead of
    # random weights, when OUT holds no checkpoint yet. Its network config must match ``net``.
    init_from: str = ""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or not 0 <= self.ema < 1:
            raise ValueError("PriorTrainConfig: steps, batch_size, lr must be positive and 0 <= ema < 1")


def _file_ok(path: Path, want: dict) -> bool:
    from gen3d.utils.io import read_json

    j = path.with_suffix(".json")
    return path.is_file() and j.is_file() and read_json(j) == want


def encode_latents(cfg: PriorTrainConfig, data, ae, device, quiet: bool) -> torch.Tensor:
    """(N, M, V, C, h, w) latents, M = 2 with mirrored copies, cached in OUT/cache."""
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    from gen3d.utils.io import atomic_path, write_json

    cache = Path(cfg.out) / "cache" / "latents.safetensors"
    want = {"n": len(data), "mirror": cfg.mirror, "autoencoder": str(Path(cfg.autoencoder).resolve()),
            "ae_mtime": (Path(cfg.autoencoder) / "model.safetensors").stat().st_mtime}
    if _file_ok(cache, want):
        return load_file(str(cache))["latents"]
    V = data.views
    mirror_order = data.rig.mirror_order()
    if cfg.mirror and mirror_order is None:
        raise ConfigError(f"mirror=true needs a rig that is symmetric under a left-right mirror; azimuths "
                          f"{data.rig.azimuths()} are not (set mirror=false or azimuth_start_deg to a multiple of "
                          f"{180 / V:g} degrees)")
    out = []
    for lo in tqdm(range(0, len(data), 64), desc="encoding latents", disable=quiet):
        x = data.images(np.arange(lo, min(lo + 64, len(data))))  # n V 5 H W
        n = x.shape[0]
        zs = [ae.encode(x.flatten(0, 1).to(device)).cpu().reshape(n, V, *ae.latent_shape(x.shape[-2], x.shape[-1]))]
        if cfg.mirror:
            xm = x[:, mirror_order].flip(-1)
            zs.append(ae.encode(xm.flatten(0, 1).to(device)).cpu().reshape(n, V, *zs[0].shape[2:]))
        out.append(torch.stack(zs, dim=1))
    lat = torch.cat(out).contiguous()
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp:
        save_file({"latents": lat}, str(tmp))
    write_json(cache.with_suffix(".json"), want)
    return lat


def encode_captions(cfg: PriorTrainConfig, data, quiet: bool) -> tuple[torch.Tensor, list[list[int]]]:
    """Tokens of every distinct caption (U, L, D) float16, and each object's caption indices."""
    from safetensors.torch import load_file, save_file

    from gen3d.config import to_dict
    from gen3d.priors.text import load_text_encoder
    from gen3d.utils.io import atomic_path, write_json

    captions = sorted({c for m in data.meta for c in m["captions"]})
    pos = {c: i for i, c in enumerate(captions)}
    per_object = [[pos[c] for c in m["captions"]] for m in data.meta]
    cache = Path(cfg.out) / "cache" / "text.safetensors"
    want = {"captions": len(captions), "first": captions[:3], "text": to_dict(cfg.text)}
    if _file_ok(cache, want):
        return load_file(str(cache))["tokens"], per_object
    enc = load_text_encoder(cfg.text)
    tokens = enc.encode(captions).half().contiguous()
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp:
        save_file({"tokens": tokens}, str(tmp))
    write_json(cache.with_suffix(".json"), want)
    return tokens, per_object


def train_prior(cfg: PriorTrainConfig, quiet: bool = False) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from gen3d.autoencoders.autoencoder import Autoencoder
    from gen3d.config import dump_config, to_dict
    from gen3d.priors.mvdata import MVDataset
    from gen3d.training.loop import (
        batch_generator,
        env_threads,
        load_train_state,
        make_accelerator,
        plot_losses,
        save_train_state,
        warmup_cosine,
    )

    env_threads()
    acc = make_accelerator(cfg.device)
    out = Path(cfg.out)
    if not (Path(cfg.autoencoder) / "config.json").is_file():
        raise DataError(f"autoencoder folder {cfg.autoencoder} not found; train one with `gen3d train autoencoder` "
                        "and pass its OUT/autoencoder as autoencoder=...")
    data = MVDataset(cfg.data, max_objects=cfg.max_objects or None)
    ae = Autoencoder.from_pretrained(cfg.autoencoder, map_location=acc.device).eval()
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "config.yaml")
        encode_latents(cfg, data, ae, acc.device, quiet)
        encode_captions(cfg, data, quiet)
    acc.wait_for_everyone()
    latents = encode_latents(cfg, data, ae, acc.device, True)  # from the cache now
    tokens, per_object = encode_captions(cfg, data, True)
    N, M, V = latents.shape[:3]
    c, h = latents.shape[3], latents.shape[4]
    if cfg.net.latent_channels != c:
        raise DataError(f"net.latent_channels={cfg.net.latent_channels} but the autoencoder gives {c}-channel latents")
    if cfg.net.token_dim not in (0, tokens.shape[-1]):
        raise DataError(f"net.token_dim={cfg.net.token_dim} but the text encoder gives {tokens.shape[-1]}-d tokens")
    cams = rig_camera_vectors(data.rig)  # V 16
    spec = PriorSpec(rig=data.rig, text=cfg.text, sampling=cfg.sampling, latent_channels=c, latent_res=h)

    torch.manual_seed(cfg.seed)
    model = Precond(MultiViewNet(cfg.net), cfg.precond)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    meta = load_train_state(out / "checkpoints", {"model": model, "ema": ema}, {"opt": opt})
    if not meta and cfg.init_from:
        init_from_prior(model, ema, cfg.init_from)
    start = int(meta["step"]) if meta else 0
    log: list[dict[str, float]] = list(meta.get("log", [])) if meta else []
    seconds0 = float(meta.get("seconds", 0.0)) if meta else 0.0
    wrapper, opt = acc.prepare(_LossModule(model, cfg.objective, V), opt)
    ema.to(acc.device)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s + start, cfg.warmup, cfg.steps))
    cams_dev = cams.to(acc.device)
    t0 = time.perf_counter()
    bar = tqdm(range(start, cfg.steps), desc="prior", unit="step", disable=quiet or not acc.is_main_process,
               initial=start, total=cfg.steps)
    wrapper.train()
    raw = acc.unwrap_model(wrapper).precond
    ema_params, raw_params = list(ema.parameters()), [p.detach() for p in raw.parameters()]
    for step in bar:
        g = batch_generator(cfg.seed, step, acc.process_index)
        obj = torch.randint(0, N, (cfg.batch_size,), generator=g)
        mir = torch.randint(0, M, (cfg.batch_size,), generator=g)
        cap = [per_object[int(o)][int(torch.randint(0, len(per_object[int(o)]), (), generator=g))] for o in obj]
        x0 = latents[obj, mir].flatten(0, 1).to(acc.device)  # (B V) C h w
        tok = tokens[cap].to(acc.device).float().repeat_interleave(V, dim=0)
        cond = Conditioning(tokens=tok, embedding=cams_dev.repeat(cfg.batch_size, 1))
        loss = wrapper(x0, cond.tokens, cond.embedding, g)
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        gn = acc.clip_grad_norm_(wrapper.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        with torch.no_grad():
            d = min(cfg.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(ema_params, raw_params, 1 - d)
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            log.append({"step": step, "loss": float(loss.detach()), "grad_norm": float(gn), "lr": float(sched.get_last_lr()[0])})
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        last = step == cfg.steps - 1
        if acc.is_main_process and ((step + 1) % cfg.checkpoint_every == 0 or last):
            save_train_state(out / "checkpoints", {"model": raw, "ema": ema}, {"opt": opt},
                             {"step": step + 1, "log": log, "seconds": seconds0 + time.perf_counter() - t0})
            plot_losses(log, out / "losses.png", "multi-view prior training")
    bar.close()
    acc.wait_for_everyone()
    result: dict[str, Any] = {}
    if acc.is_main_process:
        ae_cpu = Autoencoder.from_pretrained(cfg.autoencoder)
        prior = MultiViewPrior(ae_cpu, copy.deepcopy(ema).cpu(), spec)
        train_meta = {
            "training": {"objects": N, "views": V, "mirrored": cfg.mirror, "steps": cfg.steps, "batch_size": cfg.batch_size,
                         "processes": acc.num_processes, "seconds": round(seconds0 + time.perf_counter() - t0, 1),
                         "device": str(acc.device), "rig": to_dict(data.rig), "config": to_dict(cfg)},
        }
        if cfg.init_from and (Path(cfg.init_from) / "prior.json").is_file():  # the run this one fine-tuned
            from gen3d.utils.io import read_json

            train_meta["training"]["init_from_training"] = read_json(Path(cfg.init_from) / "prior.json").get(
                "meta", {}).get("training", {})
        prior.save_pretrained(out / "prior", meta=train_meta)
        if cfg.preview_prompts:
            write_samples_sheet(MultiViewPrior.from_pretrained(out / "prior"), list(cfg.preview_prompts), out / "samples.png")
        result = train_meta["training"]
    return result


def init_from_prior(model: Precond, ema: Precond, folder: str) -> None:
    """Copy a saved prior's denoiser weights into ``model`` and ``ema`` (fine-tuning)."""
    src = Precond.from_pretrained(Path(folder) / "denoiser", map_location="cpu")
    try:
        state = {k: v.float() for k, v in src.state_dict().items()}
        model.load_state_dict(state)
        ema.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(f"init_from={folder}: its denoiser does not match this config's net ({str(e).splitlines()[0]}); "
                          "use the same net settings as the prior you start from") from None


class _LossModule(torch.nn.Module):
    """The diffusion loss as a module's forward, so DDP (under ``accelerate launch``) sees the
    forward pass it needs to average gradients."""

    def __init__(self, precond: Precond, objective: ObjectiveConfig, views: int):
        super().__init__()
        self.precond, self.objective, self.views = precond, objective, views

    def forward(self, x0: torch.Tensor, tokens: torch.Tensor, embedding: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        cond = Conditioning(tokens=tokens, embedding=embedding)
        return diffusion_loss(self.precond, x0, self.objective, cond, g, views=self.views)


def write_samples_sheet(prior: MultiViewPrior, prompts: list[str], path: Path, seed: int = 0) -> None:
    """One row per prompt: its V generated views (a picture of what the prior learned)."""
    from gen3d.utils.images import save_png

    g = prior.sample(prompts, seed=seed)
    rows = [np.concatenate(list(g.rgb[i].permute(0, 2, 3, 1).numpy()), axis=1) for i in range(len(prompts))]
    save_png(path, np.concatenate(rows, axis=0))


__all__ = ["PriorTrainConfig", "encode_captions", "encode_latents", "train_prior", "write_samples_sheet"]
