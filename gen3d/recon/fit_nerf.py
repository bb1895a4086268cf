"""Fit a NeRF to posed views: the neural-field backend, built from nerfstudio's components.

The parts are nerfacto's (Tancik et al. 2023, "Nerfstudio", Sec. 4), wired here without nerfstudio's
``Model``/``Trainer`` (``NerfactoModel`` builds an LPIPS network whose weights it downloads, which
fails offline, and its trainer brings viewers and loggers we do not need):

- ``NerfactoField`` (hash-grid density MLP + view-dependent colour MLP; Mueller et al. 2022) with
  ``implementation="torch"`` and a CPU-sized grid, no appearance embedding (synthetic captures have
  no per-image exposure changes, and a held-out view has no embedding of its own);
- ``HashMLPDensityField`` proposal networks with ``ProposalNetworkSampler`` (Barron et al. 2022,
  mip-NeRF 360, Sec. 3), starting from a ``UniformSampler`` between the near and far points where
  each ray crosses the object box (``AABBBoxCollider``): our objects lie inside [-bound, bound]^3,
  so no scene contraction;
- ``RGBRenderer`` / ``AccumulationRenderer`` / ``DepthRenderer("expected")``.

Loss: ``MSE(rgb, target)`` on the background-composited colour, ``+ mask_weight * MSE(acc, mask)``
where masks exist, ``+ interlevel_weight * L_prop`` (mip-NeRF 360 Eq. 13) ``+ distortion_weight *
L_dist`` (Eq. 15). Adam over random ray batches drawn across all views, learning rate decayed
exponentially from ``lr`` to ``lr_final``; proposal weights annealed as nerfacto does (Zip-NeRF's
Eq. 18 bias schedule over ``anneal_iters`` steps).

Checkpoints (weights, Adam moments, both random generators, step) are written atomically as
safetensors + JSON every ``checkpoint_every`` steps; a run given the same checkpoint folder resumes
from the last one and, on the same machine, continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file

from gen3d.cameras import Cameras
from gen3d.config import from_dict, to_dict
from gen3d.data.dataset import ViewSet
from gen3d.errors import ConfigError, DataError
from gen3d.recon.base import FitResult, Render, recomposite
from gen3d.recon.fit_gaussians import resolve_device
from gen3d.recon.nerf_cameras import all_rays, camera_z_from_ray_depth, to_nerfstudio, view_rays
from gen3d.utils.checkpoint import pack_adam, unpack_adam, write_checkpoint
from gen3d.utils.io import atomic_path, write_json

if TYPE_CHECKING:  # pragma: no cover
    from nerfstudio.cameras.rays import RayBundle

FORMAT = "gen3d-nerf"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class NerfFitConfig:
    iters: int = 2000
    rays_per_step: int = 512  # nerfacto: 4096 (docs/nerf.md has the CPU measurements behind these sizes)
    bound: float = 1.0  # the object lies inside [-bound, bound]^3
    # NerfactoField, sized for a CPU (nerfacto: 16 levels, 2^19 table, max_res 2048, hidden 64).
    num_levels: int = 8
    base_res: int = 16
    max_res: int = 256
    log2_hashmap_size: int = 15
    features_per_level: int = 2
    num_layers: int = 2
    hidden_dim: int = 32
    geo_feat_dim: int = 15
    num_layers_color: int = 2
    hidden_dim_color: int = 32
    average_init_density: float = 1.0
    fast_hash_grid: bool = True  # our vectorised forward for nerfstudio's torch hash grid (same weights)
    # Proposal sampling: one HashMLPDensityField per entry of proposal_samples.
    proposal_samples: tuple[int, ...] = (32,)  # nerfacto: (256, 96) with 2 networks
    proposal_max_res: tuple[int, ...] = (64,)
    proposal_num_levels: int = 5
    proposal_log2_hashmap_size: int = 14
    proposal_hidden_dim: int = 16
    nerf_samples: int = 24  # nerfacto: 48
    single_jitter: bool = True
    anneal_iters: int = 300  # nerfacto: 1000 of its 30k steps
    anneal_slope: float = 10.0
    # Losses
    mask_weight: float = 0.1
    interlevel_weight: float = 1.0
    distortion_weight: float = 0.002
    # Adam (nerfacto: lr 1e-2, eps 1e-15, exponential decay to 1e-4 over 200k steps)
    lr: float = 1e-2
    lr_final: float = 1e-3
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    checkpoint_every: int = 500
    render_chunk: int = 4096  # rays per forward pass when rendering images
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.proposal_samples) != len(self.proposal_max_res) or not self.proposal_samples:
            raise ConfigError(
                "proposal_samples and proposal_max_res need one entry per proposal network (at least one); "
                f"got {self.proposal_samples} and {self.proposal_max_res}"
            )
        if self.iters < 0 or self.rays_per_step < 1 or self.render_chunk < 1 or self.checkpoint_every < 1:
            raise ConfigError("iters must be >= 0; rays_per_step, render_chunk, checkpoint_every >= 1")


# --------------------------------------------------------------------------------------------------
# A faster forward for nerfstudio's torch hash grid
# --------------------------------------------------------------------------------------------------

_PRIMES = (1, 2654435761, 805459861)  # Instant-NGP's spatial hash (Mueller et al. 2022, Eq. 4)


def hash_grid_forward(enc, x: torch.Tensor) -> torch.Tensor:
    """nerfstudio ``HashEncoding.pytorch_fwd``, laid out for a CPU: ~3x faster forward + backward.

    Same table, hash and trilinear weights as nerfstudio's version (the tests compare values and
    gradients with it; only the order of the 8-corner sum differs). nerfstudio hashes each corner
    with its own ``cat`` and blends (..., L, F) tensors whose innermost axis has F = 2 entries,
    which CPU kernels cannot vectorise. Here every pass runs over contiguous (..., L) tensors: the
    per-axis hash terms and weights are computed once for the floor and ceil corner, combined into
    the 8 corners on a leading axis, and each feature column is gathered with ``index_select``
    (whose backward, an index_add, is also ~2x faster than the index_put behind ``table[idx]``).
    """
    scaled = x[..., None, :] * enc.scalings.view(-1, 1).to(x)  # (..., L, 3)
    lo = torch.floor(scaled)
    frac = scaled - lo
    lo_i, hi_i = lo.long(), torch.ceil(scaled).long()
    # Per axis: (floor corner, ceil corner) hash terms and trilinear weights, each (..., L).
    hx = (lo_i[..., 0] * _PRIMES[0], hi_i[..., 0] * _PRIMES[0])
    hy = (lo_i[..., 1] * _PRIMES[1], hi_i[..., 1] * _PRIMES[1])
    hz = (lo_i[..., 2] * _PRIMES[2], hi_i[..., 2] * _PRIMES[2])
    wx, wy, wz = ((1 - frac[..., a], frac[..., a]) for a in range(3))
    hashes, weights = [], []
    for i in (0, 1):
        for j in (0, 1):
            hxy, wxy = hx[i] ^ hy[j], wx[i] * wy[j]
            for k in (0, 1):
                hashes.append(hxy ^ hz[k])
                weights.append(wxy * wz[k])
    # x mod 2^k == x & (2^k - 1) for two's-complement int64, as nerfstudio's `%` on a power of two.
    idx = ((torch.stack(hashes) & (enc.hash_table_size - 1)) + enc.hash_offset.to(x.device)).reshape(-1)
    w = torch.stack(weights)  # (8, ..., L)
    table = enc.hash_table
    feats = [(table[:, f].index_select(0, idx).view_as(w) * w).sum(dim=0) for f in range(table.shape[1])]
    return torch.stack(feats, dim=-1).flatten(-2)  # (..., L * F), level-major as nerfstudio


def use_fast_hash_grids(module: torch.nn.Module) -> torch.nn.Module:
    """Point every torch ``HashEncoding`` inside ``module`` at :func:`hash_grid_forward` (weights unchanged)."""
    import types

    from nerfstudio.field_components.encodings import HashEncoding

    for m in module.modules():
        if isinstance(m, HashEncoding) and m.tcnn_encoding is None:
            if m.hash_table_size & (m.hash_table_size - 1):
                continue  # not a power of two: keep nerfstudio's `%`
            m.pytorch_fwd = types.MethodType(hash_grid_forward, m)
    return module


# --------------------------------------------------------------------------------------------------
# The model: nerfstudio's parts, wired as nerfacto wires them
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RayOutputs:
    rgb: torch.Tensor  # (R, 3) composited on the background
    accumulation: torch.Tensor  # (R,)
    depth: torch.Tensor  # (R,) expected distance along the unit ray
    weights_list: list  # per sampling level, for the proposal losses
    ray_samples_list: list


class NerfModel(torch.nn.Module):
    """Field, proposal networks, sampler and renderers. Its ``state_dict`` is the saved weights."""

    def __init__(self, cfg: NerfFitConfig):
        super().__init__()
        from nerfstudio.fields.density_fields import HashMLPDensityField
        from nerfstudio.fields.nerfacto_field import NerfactoField
        from nerfstudio.model_components.ray_samplers import ProposalNetworkSampler, UniformSampler
        from nerfstudio.model_components.renderers import AccumulationRenderer, DepthRenderer, RGBRenderer

        self.cfg = cfg
        b = cfg.bound
        aabb = torch.tensor([[-b, -b, -b], [b, b, b]], dtype=torch.float32)
        self.register_buffer("aabb", aabb)
        self.field = NerfactoField(
            aabb,
            num_images=1,
            num_layers=cfg.num_layers,
            hidden_dim=cfg.hidden_dim,
            geo_feat_dim=cfg.geo_feat_dim,
            num_levels=cfg.num_levels,
            base_res=cfg.base_res,
            max_res=cfg.max_res,
            log2_hashmap_size=cfg.log2_hashmap_size,
            num_layers_color=cfg.num_layers_color,
            features_per_level=cfg.features_per_level,
            hidden_dim_color=cfg.hidden_dim_color,
            appearance_embedding_dim=0,
            spatial_distortion=None,
            average_init_density=cfg.average_init_density,
            implementation="torch",
        )
        self.proposal_networks = torch.nn.ModuleList(
            HashMLPDensityField(
                aabb,
                hidden_dim=cfg.proposal_hidden_dim,
                num_levels=cfg.proposal_num_levels,
                max_res=res,
                log2_hashmap_size=cfg.proposal_log2_hashmap_size,
                average_init_density=cfg.average_init_density,
                implementation="torch",
            )
            for res in cfg.proposal_max_res
        )
        # update_sched 0: the proposal networks get gradients every step (nerfacto skips some after
        # 5k warm-up steps to save time; our fits are shorter than its warm-up).
        self.sampler = ProposalNetworkSampler(
            num_proposal_samples_per_ray=tuple(cfg.proposal_samples),
            num_nerf_samples_per_ray=cfg.nerf_samples,
            num_proposal_network_iterations=len(cfg.proposal_samples),
            single_jitter=cfg.single_jitter,
            update_sched=lambda step: 0,
            initial_sampler=UniformSampler(single_jitter=cfg.single_jitter),
        )
        self.renderer_rgb = RGBRenderer(background_color="white")
        self.renderer_accumulation = AccumulationRenderer()
        self.renderer_depth = DepthRenderer(method="expected")
        if cfg.fast_hash_grid:
            use_fast_hash_grids(self)

    def set_step(self, step: int) -> None:
        """Anneal the proposal weights before PDF sampling (Zip-NeRF Eq. 18, as nerfacto)."""
        frac = min(max(step / max(self.cfg.anneal_iters, 1), 0.0), 1.0)
        b = self.cfg.anneal_slope
        self.sampler.set_anneal(b * frac / ((b - 1) * frac + 1))
        self.sampler.step_cb(step)

    def forward(self, bundle: RayBundle, background: torch.Tensor) -> RayOutputs:
        from nerfstudio.data.scene_box import SceneBox
        from nerfstudio.field_components.field_heads import FieldHeadNames
        from nerfstudio.model_components.scene_colliders import AABBBoxCollider

        bundle = AABBBoxCollider(SceneBox(self.aabb)).set_nears_and_fars(bundle)
        density_fns = [p.density_fn for p in self.proposal_networks]
        samples, weights_list, samples_list = self.sampler(bundle, density_fns=density_fns)
        out = self.field.forward(samples)
        weights = samples.get_weights(out[FieldHeadNames.DENSITY])
        weights_list.append(weights)
        samples_list.append(samples)
        rgb = self.renderer_rgb(rgb=out[FieldHeadNames.RGB], weights=weights, background_color=background)
        acc = self.renderer_accumulation(weights=weights)
        depth = self.renderer_depth(weights=weights, ray_samples=samples)
        return RayOutputs(rgb, acc[..., 0], depth[..., 0], weights_list, samples_list)


def _bundle(origins, directions, directions_norm, pixel_area, camera_indices) -> RayBundle:
    from nerfstudio.cameras.rays import RayBundle

    return RayBundle(
        origins=origins,
        directions=directions,
        pixel_area=pixel_area,
        camera_indices=camera_indices,
        metadata={"directions_norm": directions_norm},
    )


# --------------------------------------------------------------------------------------------------
# The representation
# --------------------------------------------------------------------------------------------------


class NerfRepresentation:
    """A fitted NeRF as a :class:`gen3d.recon.base.Representation`."""

    def __init__(self, model: NerfModel, chunk: int | None = None):
        self.model = model
        self.cfg = model.cfg
        self.chunk = chunk or model.cfg.render_chunk  # rays per forward pass: bounds render memory

    @property
    def device(self) -> torch.device:
        return self.model.aabb.device

    def render(self, cams: Cameras, background: tuple[float, float, float] = (1.0, 1.0, 1.0),
               depth: str = "expected") -> Render:
        """Render every view in chunks of ``self.chunk`` rays (memory bounded by the chunk).

        ``depth``: "expected" (the weights' mean distance) or "median" (nerfstudio's: the sample where
        the accumulated weight reaches 0.5, the first surface; mesh extraction uses it)."""
        from nerfstudio.model_components.renderers import DepthRenderer

        if depth not in ("expected", "median"):
            raise ValueError(f"depth must be 'expected' or 'median', got {depth!r}")
        model, dev = self.model, self.device
        cams = cams.to(dev)
        bg = torch.tensor(background, dtype=torch.float32, device=dev)
        was_training = model.training
        renderer = model.renderer_depth
        model.renderer_depth = DepthRenderer(method=depth)
        model.eval()
        model.sampler.set_anneal(1.0)
        ns = to_nerfstudio(cams)
        H, W = cams.height, cams.width
        rgbs, alphas, depths = [], [], []
        try:
            with torch.no_grad():
                for v in range(len(cams)):
                    rgb, acc, z = self._render_rays(view_rays(ns, v).flatten(), bg)
                    rgbs.append(rgb.view(H, W, 3))
                    alphas.append(acc.view(H, W))
                    depths.append(z.view(H, W))
        finally:
            model.train(was_training)
            model.renderer_depth = renderer
        alpha = torch.stack(alphas).clamp(0, 1)
        # Same rule as the Gaussian backend: no depth where (almost) nothing was hit.
        depth = torch.where(alpha > 1e-3, torch.stack(depths), torch.zeros_like(alpha))
        return Render(torch.stack(rgbs).clamp(0, 1), alpha, depth)

    def _render_rays(
        self, rays: RayBundle, bg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Colour, accumulation and camera z of a flat ray bundle, ``self.chunk`` rays at a time."""
        rgb, acc, z = [], [], []
        for s in range(0, len(rays), self.chunk):
            chunk = rays[s : s + self.chunk]
            out = self.model(chunk, bg)
            rgb.append(out.rgb)
            acc.append(out.accumulation)
            z.append(camera_z_from_ray_depth(out.depth[:, None], chunk.metadata["directions_norm"])[:, 0])
        return torch.cat(rgb), torch.cat(acc), torch.cat(z)

    def save(self, folder: Path) -> list[Path]:
        """``nerf.safetensors`` (the weights) and ``nerf.json`` (the config that rebuilds the modules)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        weights, meta = folder / "nerf.safetensors", folder / "nerf.json"
        tensors = {k: v.detach().cpu().clone().contiguous() for k, v in self.model.state_dict().items()}
        with atomic_path(weights) as tmp:
            save_file(tensors, str(tmp))
        write_json(meta, {"format": FORMAT, "version": FORMAT_VERSION, "config": to_dict(self.cfg)})
        return [weights, meta]


def load_nerf(folder: str | Path, device: str = "cpu") -> NerfRepresentation:
    """Rebuild a :class:`NerfRepresentation` from the ``nerf.safetensors`` + ``nerf.json`` in ``folder``."""
    from gen3d.utils.io import read_json

    folder = Path(folder)
    meta_path, weights_path = folder / "nerf.json", folder / "nerf.safetensors"
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f'{meta_path} is not a gen3d NeRF file (expected "format": "{FORMAT}")')
    if meta.get("version") != FORMAT_VERSION:
        raise DataError(f"{meta_path}: format version {meta.get('version')} is not {FORMAT_VERSION}; refit")
    cfg = from_dict(NerfFitConfig, meta.get("config", {}), source=str(meta_path))
    if not weights_path.is_file():
        raise DataError(f"file not found: {weights_path} (save the NeRF again)")
    dev = resolve_device(device)
    model = NerfModel(cfg)
    try:
        model.load_state_dict(load_file(str(weights_path)))
    except Exception as e:
        raise DataError(f"{weights_path} does not match {meta_path} ({e}); save the NeRF again") from e
    return NerfRepresentation(model.to(dev))


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


def save_checkpoint(
    folder: Path,
    step: int,
    model: NerfModel,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    losses: list[float],
    mses: list[float],
) -> None:
    tensors = {f"param.{k}": v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    adam, steps = pack_adam((name, p, opt) for name, p in model.named_parameters())
    tensors.update(adam)
    meta = {"step": step, "losses": losses, "mses": mses, "adam_steps": steps, "config": to_dict(model.cfg)}
    tensors["rng.batch"] = gen.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    write_checkpoint(folder, tensors, meta)


def load_checkpoint(folder: Path, model: NerfModel, opt: torch.optim.Optimizer, gen: torch.Generator):
    """Restore ``model``, ``opt`` and the generators in place; return (step, losses, mses) or None."""
    st_path, js_path = folder / "last.safetensors", folder / "last.json"
    if not (st_path.is_file() and js_path.is_file()):
        return None
    try:
        tensors = load_file(str(st_path))
        meta = json.loads(js_path.read_text())
        model.load_state_dict({k[len("param.") :]: v for k, v in tensors.items() if k.startswith("param.")})
        unpack_adam(((name, p, opt) for name, p in model.named_parameters()), tensors, meta["adam_steps"])
        gen.set_state(tensors["rng.batch"])
        torch.set_rng_state(tensors["rng.torch"])
        step = int(meta["step"])
    except Exception as e:
        raise DataError(
            f"checkpoint {st_path} is corrupt or from another config ({e}); delete {folder} to start over"
        ) from e
    return step, list(meta.get("losses", [])), list(meta.get("mses", []))


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


def _training_rays(views: ViewSet, cfg: NerfFitConfig, dev: torch.device) -> dict[str, torch.Tensor]:
    """Every pixel of every view as a ray with its target colour and mask, flattened, on ``dev``."""
    b = all_rays(views.cameras)
    images = views.images if views.masks is None else recomposite(views.images, views.masks, cfg.background)
    rays = {
        "origins": b.origins,
        "directions": b.directions,
        "directions_norm": b.metadata["directions_norm"],
        "pixel_area": b.pixel_area,
        "camera_indices": b.camera_indices,
        "rgb": images.reshape(-1, 3),
    }
    if views.masks is not None:
        rays["mask"] = views.masks.reshape(-1)
    return {k: v.to(dev) for k, v in rays.items()}


def _lr(cfg: NerfFitConfig, step: int) -> float:
    """Exponential decay from ``lr`` at step 0 to ``lr_final`` at ``iters``."""
    return cfg.lr * (cfg.lr_final / cfg.lr) ** (step / max(cfg.iters, 1))


def fit_nerf(
    views: ViewSet,
    cfg: NerfFitConfig = NerfFitConfig(),
    *,
    device: str = "auto",
    checkpoint_dir: Path | None = None,
    quiet: bool = False,
) -> FitResult:
    """Fit a NeRF to ``views`` (composited on ``cfg.background``); resumable through ``checkpoint_dir``.

    ``FitResult.train_psnr`` is the PSNR of the mean colour MSE over the ray batches of the last
    10% of steps (no extra rendering pass).
    """
    from nerfstudio.model_components.losses import distortion_loss, interlevel_loss
    from tqdm import tqdm

    dev = resolve_device(device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rays = _training_rays(views, cfg, dev)
    n_rays = rays["rgb"].shape[0]
    bg = torch.tensor(cfg.background, dtype=torch.float32, device=dev)

    model = NerfModel(cfg).to(dev)
    model.train()
    opt = torch.optim.Adam(
        [
            {"params": list(model.field.parameters()), "name": "fields"},
            {"params": list(model.proposal_networks.parameters()), "name": "proposal_networks"},
        ],
        lr=cfg.lr,
        eps=1e-15,
    )
    start, losses, mses = 0, [], []
    if (
        checkpoint_dir is not None
        and (ck := load_checkpoint(Path(checkpoint_dir), model, opt, gen)) is not None
    ):
        start, losses, mses = ck

    t0 = time.perf_counter()
    bar = tqdm(
        range(start, cfg.iters), desc="fit nerf", unit="it", disable=quiet, initial=start, total=cfg.iters
    )
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = _lr(cfg, step)
        model.set_step(step)
        idx = torch.randint(n_rays, (cfg.rays_per_step,), generator=gen).to(dev)
        bundle = _bundle(
            rays["origins"][idx],
            rays["directions"][idx],
            rays["directions_norm"][idx],
            rays["pixel_area"][idx],
            rays["camera_indices"][idx],
        )
        out = model(bundle, bg)
        mse = torch.mean((out.rgb - rays["rgb"][idx]) ** 2)
        loss = mse
        if "mask" in rays and cfg.mask_weight > 0:
            loss = loss + cfg.mask_weight * torch.mean((out.accumulation - rays["mask"][idx]) ** 2)
        if cfg.interlevel_weight > 0:
            loss = loss + cfg.interlevel_weight * interlevel_loss(out.weights_list, out.ray_samples_list)
        if cfg.distortion_weight > 0:
            loss = loss + cfg.distortion_weight * distortion_loss(out.weights_list, out.ray_samples_list)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        mses.append(mse.item())
        if not quiet and step % 20 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.4f}", psnr=f"{-10 * math.log10(max(mses[-1], 1e-10)):.1f}")
        if checkpoint_dir is not None and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.iters:
            save_checkpoint(Path(checkpoint_dir), step + 1, model, opt, gen, losses, mses)
    bar.close()
    seconds = time.perf_counter() - t0
    tail = mses[-max(1, len(mses) // 10) :]
    train_psnr = -10 * math.log10(max(sum(tail) / len(tail), 1e-10)) if tail else float("nan")
    model.eval()
    return FitResult(NerfRepresentation(model), seconds, cfg.iters, losses, train_psnr)
