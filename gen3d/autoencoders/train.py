"""``gen3d train autoencoder``: the LDM recipe on procedural multi-view renders.

Loss (Rombach et al. 2022, App. G; Esser et al. 2021, eq. 4-7):

    L = |x - x_hat|_1 + ssim_weight (1 - SSIM(rgb, rgb_hat)) + reg_weight * (KL or VQ loss)
        + [step >= disc_start] disc_weight * lambda_adapt * (-D(x_hat))

with D a patch discriminator trained by the hinge loss from ``disc_start`` on, and lambda_adapt the
VQGAN adaptive weight. At the end the latent statistics (per-channel mean and std of the posterior
means over the training set) are measured and stored in the model, and reconstruction PSNR is
measured on renders of held-out combinations (never in training).

Output folder: ``OUT/autoencoder/`` (config.json + model.safetensors), ``OUT/checkpoints/``,
``OUT/log.jsonl``, ``OUT/losses.png``, ``OUT/recon.png`` (inputs above, reconstructions below),
``OUT/eval.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gen3d.autoencoders.autoencoder import (
    Autoencoder,
    AutoencoderConfig,
    DiscriminatorConfig,
    PatchDiscriminator,
    adaptive_gan_weight,
    hinge_d_loss,
)


@dataclass(frozen=True)
class AETrainConfig:
    data: str = "out/mvdata"
    out: str = "out/train/autoencoder"
    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    disc: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    steps: int = 4000
    batch_size: int = 32  # images (single views) per step and process
    lr: float = 5e-4
    warmup: int = 100
    grad_clip: float = 1.0
    ssim_weight: float = 0.2
    fg_rgb_weight: float = 4.0  # extra L1 weight on RGB where the object is (it covers ~15% of a view)
    betas: tuple[float, float] = (0.9, 0.99)
    kl_weight: float = 1e-5  # per latent element, against the per-pixel L1 (see module docstring)
    vq_weight: float = 1.0
    disc_start: int = 2500
    disc_weight: float = 0.5
    disc_lr: float = 2e-4
    checkpoint_every: int = 250
    log_every: int = 25
    eval_objects: int = 64  # held-out renders for the PSNR report
    stats_objects: int = 1000  # objects used to measure the latent statistics
    max_objects: int = 0  # 0: the whole training set
    color_augment: bool = True  # permute each image's RGB channels at random (see augment_colors)
    seed: int = 0
    device: str = "auto"
    # Fine-tuning: start from a saved autoencoder folder (its model config replaces ``model``).
    init_from: str = ""
    # "all", or "decoder": the encoder and its latent statistics stay fixed, so a prior trained on this
    # autoencoder's latents stays valid and only the decoding improves (needs init_from)
    train_parts: str = "all"
    alpha_weight: float = 0.0  # extra L1 weight on the alpha (mask) channel: silhouettes make the visual hull

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("AETrainConfig: steps, batch_size and lr must be positive")
        if self.train_parts not in ("all", "decoder"):
            raise ValueError(f"AETrainConfig.train_parts must be 'all' or 'decoder', got {self.train_parts!r}")
        if self.train_parts == "decoder" and not self.init_from:
            raise ValueError("AETrainConfig.train_parts='decoder' fine-tunes a trained autoencoder: set init_from")


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, ssim_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    from gen3d.eval.image_metrics import ssim

    l1 = (x - x_hat).abs().mean()  # noqa: the RGB, alpha and depth channels alike
    if ssim_weight > 0:
        s = ssim(((x_hat[:, :3] + 1) / 2).clamp(0, 1), (x[:, :3] + 1) / 2).mean()
        loss = l1 + ssim_weight * (1 - s)
    else:
        s = torch.tensor(float("nan"))
        loss = l1
    return loss, {"l1": float(l1.detach()), "ssim": float(s.detach())}


def train_autoencoder(cfg: AETrainConfig, quiet: bool = False) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from gen3d.config import dump_config
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
    from gen3d.utils.io import write_json

    env_threads()
    acc = make_accelerator(cfg.device)
    out = Path(cfg.out)
    ckpt = out / "checkpoints"
    data = MVDataset(cfg.data, max_objects=cfg.max_objects or None)
    torch.manual_seed(cfg.seed)
    if cfg.init_from:
        from dataclasses import replace

        model = Autoencoder.from_pretrained(cfg.init_from).float()
        cfg = replace(cfg, model=model.config)  # the folder's architecture, recorded in OUT/config.yaml
    else:
        model = Autoencoder(cfg.model)
    decoder_only = cfg.train_parts == "decoder"
    if decoder_only:
        model.encoder.requires_grad_(False)
        if getattr(model, "codebook", None) is not None:
            model.codebook.requires_grad_(False)
    disc = PatchDiscriminator(cfg.disc)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=tuple(cfg.betas),
                            weight_decay=0.0)
    dopt = torch.optim.AdamW(disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.9), weight_decay=0.0)
    meta = load_train_state(ckpt, {"autoencoder": model, "discriminator": disc}, {"ae": opt, "disc": dopt})
    start_step = int(meta["step"]) if meta else 0
    log: list[dict[str, float]] = list(meta.get("log", [])) if meta else []
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "config.yaml")
    model, disc, opt, dopt = acc.prepare(model, disc, opt, dopt)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s + start_step, cfg.warmup, cfg.steps))
    raw_model = acc.unwrap_model(model)
    last_layer = raw_model.decoder.conv_out.weight
    n_views = len(data) * data.views
    t0 = time.perf_counter()
    bar = tqdm(range(start_step, cfg.steps), desc="autoencoder", unit="step", disable=quiet or not acc.is_main_process,
               initial=start_step, total=cfg.steps)
    model.train()
    for step in bar:
        g = batch_generator(cfg.seed, step, acc.process_index)
        pick = torch.randint(0, n_views, (cfg.batch_size,), generator=g).numpy()
        x = data.images(pick // data.views)[np.arange(len(pick)), pick % data.views].to(acc.device)
        if bool(torch.rand((), generator=g) < 0.5):  # horizontal flips: the world has no handedness
            x = x.flip(-1)
        if cfg.color_augment:
            x = augment_colors(x, g)
        x_hat, enc = model(x, generator=g)
        rec, parts = reconstruction_loss(x, x_hat, cfg.ssim_weight)
        if cfg.fg_rgb_weight > 0:
            rec = rec + cfg.fg_rgb_weight * ((x_hat[:, :3] - x[:, :3]).abs() * (x[:, 3:4] > -1)).mean()
        if cfg.alpha_weight > 0:
            rec = rec + cfg.alpha_weight * (x_hat[:, 3] - x[:, 3]).abs().mean()
        reg_w = cfg.kl_weight if cfg.model.regularizer == "kl" else cfg.vq_weight
        loss = rec + reg_w * enc.reg_loss
        gan_on = step >= cfg.disc_start
        if gan_on:
            g_loss = -disc(x_hat).mean()
            w = adaptive_gan_weight(rec, g_loss, last_layer) if acc.num_processes == 1 else torch.tensor(1.0)
            loss = loss + cfg.disc_weight * w * g_loss
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        entry = {"step": step, "loss": float(loss), "l1": parts["l1"], "ssim": parts["ssim"], "reg": float(enc.reg_loss)}
        if gan_on:
            d_loss = hinge_d_loss(disc(x.detach()), disc(x_hat.detach()))
            dopt.zero_grad(set_to_none=True)
            acc.backward(d_loss)
            dopt.step()
            entry["d_loss"] = float(d_loss)
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            log.append(entry)
            bar.set_postfix(l1=f"{parts['l1']:.4f}", ssim=f"{parts['ssim']:.3f}")
        last = step == cfg.steps - 1
        if acc.is_main_process and ((step + 1) % cfg.checkpoint_every == 0 or last):
            save_train_state(ckpt, {"autoencoder": model, "discriminator": disc}, {"ae": opt, "disc": dopt},
                             {"step": step + 1, "log": log, "seconds": time.perf_counter() - t0 + (meta or {}).get("seconds", 0.0)})
            plot_losses(log, out / "losses.png", "autoencoder training")
    bar.close()
    acc.wait_for_everyone()
    result: dict[str, Any] = {}
    if acc.is_main_process:
        raw_model.eval()
        if not decoder_only:  # a frozen encoder keeps the statistics the prior's latents are normalised by
            measure_latent_stats(raw_model, data, cfg.stats_objects, acc.device)
        raw_model.to("cpu").save_pretrained(out / "autoencoder")
        result = evaluate_autoencoder(raw_model, data.rig, cfg.eval_objects, out)
        result.update({"steps": cfg.steps, "train_seconds": load_meta_seconds(ckpt)})
        if cfg.init_from:
            result.update({"init_from": str(cfg.init_from), "train_parts": cfg.train_parts})
        write_json(out / "eval.json", result)
    return result


_PERMS = torch.tensor([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])


def augment_colors(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Permute the RGB channels of each image at random (alpha and depth untouched).

    The training set never shows a held-out colour on its class (e.g. no blue hammer), and an
    autoencoder trained on it learns that association and decodes a blue hammer brown. Channel
    permutations show every hue on every shape, so colour and shape are encoded independently;
    the prior (not the autoencoder) is what must stay on the real data distribution."""
    idx = _PERMS[torch.randint(0, 6, (x.shape[0],), generator=g)].to(x.device)
    rgb = torch.gather(x[:, :3], 1, idx[:, :, None, None].expand(-1, -1, *x.shape[-2:]))
    return torch.cat([rgb, x[:, 3:]], dim=1)


def load_meta_seconds(ckpt: Path) -> float:
    from gen3d.utils.io import read_json

    p = ckpt / "last.json"
    return float(read_json(p).get("seconds", 0.0)) if p.is_file() else 0.0


@torch.no_grad()
def measure_latent_stats(model: Autoencoder, data, n_objects: int, device) -> None:
    """Set latent_shift / latent_scale to the per-channel mean / std of the posterior means."""
    model.latent_shift.zero_()
    model.latent_scale.fill_(1.0)
    idx = np.linspace(0, len(data) - 1, min(n_objects, len(data))).astype(int)
    zs = []
    for chunk in np.array_split(idx, max(len(idx) // 32, 1)):
        x = data.images(chunk).flatten(0, 1).to(device)
        zs.append(model.encode(x).float().cpu())
    z = torch.cat(zs)
    model.latent_shift.copy_(z.mean(dim=(0, 2, 3)))
    model.latent_scale.copy_(z.std(dim=(0, 2, 3)).clamp(min=1e-4))


@torch.no_grad()
def evaluate_autoencoder(model: Autoencoder, rig, n_objects: int, out: Path | None = None, seed: int = 12345) -> dict[str, Any]:
    """Reconstruction PSNR (RGB on white, alpha, depth error) on renders of held-out combinations."""
    from gen3d.data.world import sample_spec
    from gen3d.eval.image_metrics import psnr
    from gen3d.priors.mvdata import from_network, render_views, to_network

    dev = next(model.parameters()).device
    xs = []
    for i in range(n_objects):
        r = render_views(sample_spec(seed, i, "heldout"), rig)
        xs.append(to_network(torch.from_numpy(r["rgb"]), torch.from_numpy(r["alpha"]), torch.from_numpy(r["depth"].astype(np.float32)),
                             rig.radius))
    x = torch.stack(xs).flatten(0, 1)
    recs = []
    for chunk in x.split(64):
        recs.append(model.decode(model.encode(chunk.to(dev))).cpu())
    x_hat = torch.cat(recs)
    a, b = from_network(x, rig.radius), from_network(x_hat, rig.radius)
    p = psnr(b["rgb"], a["rgb"])
    mask = (a["alpha"] > 0.5) & (b["alpha"] > 0.5)
    depth_err = ((a["depth"] - b["depth"]).abs()[mask]).mean() if bool(mask.any()) else torch.tensor(float("nan"))
    iou = ((a["alpha"] > 0.5) & (b["alpha"] > 0.5)).flatten(1).sum(1) / ((a["alpha"] > 0.5) | (b["alpha"] > 0.5)).flatten(1).sum(1).clamp(min=1)
    result = {
        "heldout_objects": n_objects,
        "heldout_views": int(x.shape[0]),
        "psnr_rgb_mean": float(p.mean()),
        "psnr_rgb_min": float(p.min()),
        "mask_iou_mean": float(iou.mean()),
        "depth_abs_err_mean": float(depth_err),
        "latent_shape": list(model.latent_shape(x.shape[-2], x.shape[-1])),
    }
    if out is not None:
        from gen3d.utils.images import save_png

        k = min(16, x.shape[0])
        top = np.concatenate(list(a["rgb"][:k].permute(0, 2, 3, 1).numpy()), axis=1)
        bot = np.concatenate(list(b["rgb"][:k].permute(0, 2, 3, 1).numpy()), axis=1)
        save_png(Path(out) / "recon.png", np.concatenate([top, bot], axis=0))
    return result


__all__ = ["AETrainConfig", "evaluate_autoencoder", "measure_latent_stats", "reconstruction_loss", "train_autoencoder"]
