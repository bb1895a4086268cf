"""Fit 3D Gaussians to posed views: the splatting backend's optimisation loop.

Loss (Kerbl et al. 2023, Eq. 7, plus a silhouette term): ``(1 - w_ssim) * L1 + w_ssim * (1 - SSIM)``
on RGB composited on the background, ``+ w_mask * L1(alpha, mask)`` where masks exist,
``+ w_depth * L1(depth, target)`` where target depth exists (optional). Adam with one learning
rate per parameter group; the means' rate decays exponentially. Densification uses gsplat's
``DefaultStrategy`` (clone / split / prune, 3DGS Sec. 5.2), which is pure PyTorch and so runs on
the CPU rasterizer too; the MCMC strategy needs gsplat's CUDA relocation kernel and is GPU-only.

Checkpoints (parameters, Adam moments, strategy statistics, step) are written atomically as
safetensors + JSON every ``checkpoint_every`` steps; a run given the same checkpoint folder resumes
from the last one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch

from gen3d.cameras import Cameras
from gen3d.data.dataset import ViewSet
from gen3d.errors import DataError, DeviceError
from gen3d.recon.base import FitResult, Render, recomposite
from gen3d.recon.gaussians import Gaussians, knn_mean_distance
from gen3d.recon.init import grid_occupied, point_normals, visual_hull_points
from gen3d.recon.sh import SH_C1
from gen3d.utils.checkpoint import pack_adam, read_checkpoint, unpack_adam, write_checkpoint


@dataclass(frozen=True)
class GaussianFitConfig:
    iters: int = 600
    sh_degree: int = 1
    init: Literal["hull", "random"] = "hull"
    init_points: int = 8000
    init_opacity: float = 0.5
    init_view_lobe: float = 0.0  # > 0 (SH degree >= 1): start each colour brighter toward its normal by this fraction (a headlight)
    hull_resolution: int = 96
    hull_depth_margin: float = 0.0  # > 0: carve the hull with the views' depth where they have it (0: silhouettes only)
    hull_box_margin: float = 0.05  # with depth: clip the hull to the box of the seen surface plus this (< 0: off)
    hull_convex_margin: float = -1.0  # >= 0, with depth: clip the hull to the convex hull of the seen surface plus this
    bound: float = 1.0  # the object lies inside [-bound, bound]^3
    hull_extent: float = 0.0  # > 0 (hull init): keep each Gaussian's +-hull_extent sigma along its axes inside the hull
    hull_extent_dilate: int = 1  # ... grown by this many voxels
    hull_extent_every: int = 10  # enforce it every this many steps and after the last
    views_per_step: int = 2
    init_scale: float = 1.0  # initial Gaussian size as a multiple of the mean distance to the 3 nearest points
    flatten_weight: float = 0.0  # penalise each Gaussian's smallest scale: flat discs that hug the surface
    ssim_weight: float = 0.2
    mask_weight: float = 0.2
    depth_weight: float = 0.2  # used only where the views carry depth (rendered datasets and generated views do)
    lr_means: float = 1.5e-3
    lr_means_final: float = 1.5e-5
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 5e-3
    lr_shN: float = 2.5e-4
    sh_degree_every: int = 150  # raise the active SH degree every this many steps
    densify: Literal["none", "default", "mcmc"] = "default"
    refine_start: int = 100
    refine_stop_fraction: float = 0.7
    refine_every: int = 50
    grow_grad2d: float = 0.0002
    prune_opacity: float = 0.01
    max_gaussians: int = 60_000  # a cap: the initial points, MCMC's count, and default densification all stay under it
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    checkpoint_every: int = 200  # 0: never
    seed: int = 0
    backend: Literal["auto", "dense", "tiled", "gsplat"] = "auto"
    # Adam's kernels: "fused" (a few kernels per step; meant for CUDA), "unfused" (torch's default), "auto": fused on CUDA
    adam: Literal["auto", "fused", "unfused"] = "auto"


class GaussianSplats:
    """A fitted set of Gaussians as a :class:`gen3d.recon.base.Representation`."""

    def __init__(self, gaussians: Gaussians, backend: str = "auto"):
        self.gaussians = gaussians
        self.backend = backend

    def render(self, cams: Cameras, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Render:
        from gen3d.recon.rasterize import render_gaussians

        g = self.gaussians
        cams = cams.to(g.device)
        with torch.no_grad():
            out = render_gaussians(g, cams, background=torch.tensor(background, device=g.device), backend=self.backend)
        alpha = out.alphas[..., 0]
        depth = torch.where(alpha > 1e-3, out.depths[..., 0], torch.zeros_like(alpha))
        return Render(out.colors.clamp(0, 1), alpha, depth)

    def save(self, folder: Path) -> list[Path]:
        from gen3d.recon.splat_io import save_splat_ply

        path = Path(folder) / "splats.ply"
        save_splat_ply(self.gaussians, path)
        return [path]


# --------------------------------------------------------------------------------------------------


def resolve_device(device: str) -> torch.device:
    """``gen3d.training.loop.resolve_device`` (auto / cpu / cuda, with a clear error) as a torch.device."""
    from gen3d.training.loop import resolve_device as _resolve

    return torch.device(_resolve(device))


def hull_options(cfg: GaussianFitConfig, depths: torch.Tensor | None) -> dict:
    """Keyword arguments of the visual hull that ``cfg`` starts from (``gen3d.recon.init``): the depths
    (only if a carve or clip uses them), carving margin, clips and bound."""
    use = depths is not None and (cfg.hull_depth_margin > 0 or cfg.hull_convex_margin >= 0)
    return {
        "depths": depths if use else None,
        "depth_margin": cfg.hull_depth_margin if cfg.hull_depth_margin > 0 else float("inf"),
        "box_margin": cfg.hull_box_margin if cfg.hull_box_margin >= 0 else None,
        "convex_margin": cfg.hull_convex_margin if cfg.hull_convex_margin >= 0 else None,
        "bound": cfg.bound,
    }


def initial_gaussians(views: ViewSet, cfg: GaussianFitConfig) -> Gaussians:
    n_init = min(cfg.init_points, cfg.max_gaussians)
    if cfg.init == "hull" and views.masks is not None:
        pts, rgb = visual_hull_points(views.cameras, views.masks, views.images, n_init, cfg.hull_resolution,
                                      seed=cfg.seed, **hull_options(cfg, views.depths))
        if len(pts) < 16:
            raise DataError("the masks carve away the whole volume: are the cameras right, and is the object inside "
                            f"[-{cfg.bound}, {cfg.bound}]^3? (try init=random or a larger bound)")
    else:
        g = Gaussians.random_in_box(n_init, (-cfg.bound,) * 3, (cfg.bound,) * 3, seed=cfg.seed)
        pts, rgb = g.means, g.rgb
    scale = (cfg.init_scale * knn_mean_distance(pts, k=3)).clamp(1e-4, 0.1)
    g = Gaussians.from_points(pts, rgb, sh_degree=cfg.sh_degree, scale=scale, opacity=cfg.init_opacity)
    if cfg.init_view_lobe > 0 and cfg.sh_degree >= 1 and len(pts) >= 3:
        # colour(v) = rgb + lobe * rgb * (n . v), v toward the camera; the SH direction d = -v.
        # Degree-1 bases (-C1 y, C1 z, -C1 x) of d, so the coefficients are (n_y, -n_z, n_x) * lobe * rgb / C1.
        n = point_normals(pts)
        amp = cfg.init_view_lobe * rgb.float() / SH_C1
        g.sh[:, 1], g.sh[:, 2], g.sh[:, 3] = amp * n[:, 1:2], -amp * n[:, 2:3], amp * n[:, 0:1]
    return g


_EXTENT_FACTORS = (1.0, 0.7, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05)


def extent_occupancy(views: ViewSet, cfg: GaussianFitConfig) -> torch.Tensor | None:
    """The hull that ``cfg.hull_extent`` keeps the Gaussians in: the starting hull grown by
    ``cfg.hull_extent_dilate`` voxels (None when the constraint is off or there are no masks).

    Below the lowest voxel of a convex-clipped hull (plus one), the silhouettes' hull without that clip
    is allowed too: the clip flattens the bottom of a round object at the lowest point the views see,
    while the side views' silhouettes still show the part below it."""
    if cfg.hull_extent <= 0 or cfg.init != "hull" or views.masks is None:
        return None
    from gen3d.recon.init import visual_hull_occupancy

    occ = visual_hull_occupancy(views.cameras, views.masks, cfg.hull_resolution, **hull_options(cfg, views.depths))
    if cfg.hull_convex_margin >= 0 and views.depths is not None and occ.any():
        loose = visual_hull_occupancy(views.cameras, views.masks, cfg.hull_resolution,
                                      **hull_options(replace(cfg, hull_convex_margin=-1.0), views.depths))
        low = int(occ.any(dim=2).any(dim=0).nonzero().min())  # lowest occupied y index
        below = torch.zeros_like(occ)
        below[:, : low + 2] = True
        occ = occ | (loose & below)
    if cfg.hull_extent_dilate > 0:
        k = 2 * cfg.hull_extent_dilate + 1
        occ = torch.nn.functional.max_pool3d(occ.float()[None, None], k, 1, cfg.hull_extent_dilate)[0, 0] > 0
    return occ


@torch.no_grad()
def keep_extents_in_hull(g: Gaussians, occ: torch.Tensor, k: float, bound: float) -> torch.Tensor:
    """Per Gaussian and axis, the largest factor (of ``_EXTENT_FACTORS``) by which its scale can be
    multiplied so that the points ``mean +- k sigma`` along that axis lie in ``occ``; (N, 3).

    A Gaussian's extent beyond the hull is what no fitted view constrains: on a face that the views
    see only edge-on, it can grow sideways unseen and bloat the silhouette from a new viewpoint."""
    from gen3d.recon.projection import quat_to_rotmat

    R = quat_to_rotmat(g.unit_quats)  # N 3 3, columns are the axes
    s = g.scales
    out = torch.full_like(s, _EXTENT_FACTORS[-1])
    for ax in range(3):
        done = torch.zeros(len(g), dtype=torch.bool, device=s.device)
        for f in _EXTENT_FACTORS:
            d = R[:, :, ax] * (k * f * s[:, ax : ax + 1])
            ok = grid_occupied(occ, g.means + d, bound) & grid_occupied(occ, g.means - d, bound) & ~done
            out[ok, ax] = f
            done |= ok
    return out


def _params(g: Gaussians) -> torch.nn.ParameterDict:
    return torch.nn.ParameterDict(
        {
            "means": torch.nn.Parameter(g.means.clone()),
            "scales": torch.nn.Parameter(g.log_scales.clone()),
            "quats": torch.nn.Parameter(g.quats.clone()),
            "opacities": torch.nn.Parameter(g.opacity_logits.clone()),
            "sh0": torch.nn.Parameter(g.sh[:, :1].clone()),
            "shN": torch.nn.Parameter(g.sh[:, 1:].clone()),
        }
    )


def _to_gaussians(p: torch.nn.ParameterDict) -> Gaussians:
    return Gaussians(p["means"], p["quats"], p["scales"], p["opacities"], torch.cat([p["sh0"], p["shN"]], dim=1))


def _optimizers(p: torch.nn.ParameterDict, cfg: GaussianFitConfig) -> dict[str, torch.optim.Optimizer]:
    lrs = {"means": cfg.lr_means, "scales": cfg.lr_scales, "quats": cfg.lr_quats,
           "opacities": cfg.lr_opacities, "sh0": cfg.lr_sh0, "shN": cfg.lr_shN}
    # One Adam per group (gsplat's strategies expect this layout); eps small as 3DGS does.
    fused = cfg.adam == "fused" or (cfg.adam == "auto" and next(iter(p.values())).is_cuda)
    return {k: torch.optim.Adam([{"params": p[k], "lr": lrs[k], "name": k}], eps=1e-15, **({"fused": True} if fused else {}))
            for k in p}


def _prune_to_cap(params, optimizers, state, cap: int) -> None:
    """Remove the least opaque Gaussians beyond ``cap`` (the default strategy grows without a limit)."""
    from gsplat.strategy.ops import remove

    n = len(params["means"])
    drop = torch.zeros(n, dtype=torch.bool, device=params["means"].device)
    drop[params["opacities"].detach().topk(n - cap, largest=False).indices] = True
    remove(params=params, optimizers=optimizers, state=state, mask=drop)


def _strategy(cfg: GaussianFitConfig, device: torch.device):
    if cfg.densify == "none":
        return None
    if cfg.densify == "mcmc":
        if device.type != "cuda":
            raise DeviceError("densify=mcmc uses gsplat's CUDA relocation kernel; on the CPU use densify=default")
        from gsplat.strategy import MCMCStrategy

        return MCMCStrategy(cap_max=cfg.max_gaussians, refine_start_iter=cfg.refine_start,
                            refine_stop_iter=int(cfg.iters * cfg.refine_stop_fraction), refine_every=cfg.refine_every)
    from gsplat.strategy import DefaultStrategy

    return DefaultStrategy(
        prune_opa=cfg.prune_opacity,
        grow_grad2d=cfg.grow_grad2d,
        refine_start_iter=cfg.refine_start,
        refine_stop_iter=int(cfg.iters * cfg.refine_stop_fraction),
        refine_every=cfg.refine_every,
        reset_every=10**9,  # short fits: an opacity reset would cost more steps than it repays
        verbose=False,
    )


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


def save_checkpoint(folder: Path, step: int, params, optimizers, strategy_state: dict | None, losses: list[float]) -> None:
    tensors = {f"param.{k}": v.detach().contiguous().cpu() for k, v in params.items()}
    adam, steps = pack_adam((k, params[k], opt) for k, opt in optimizers.items())
    tensors.update(adam)
    meta: dict = {"step": step, "losses": losses, "adam_steps": steps}
    for k, v in (strategy_state or {}).items():
        if isinstance(v, torch.Tensor):
            tensors[f"strategy.{k}"] = v.contiguous().cpu()
        else:
            meta.setdefault("strategy", {})[k] = v
    write_checkpoint(folder, tensors, meta)


def load_checkpoint(folder: Path, device: torch.device):
    return read_checkpoint(folder, device)


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


def fit_gaussians(
    views: ViewSet,
    cfg: GaussianFitConfig = GaussianFitConfig(),
    *,
    device: str = "auto",
    checkpoint_dir: Path | None = None,
    quiet: bool = False,
) -> FitResult:
    """Fit Gaussians to ``views`` (composited on ``cfg.background``); resumable through ``checkpoint_dir``."""
    from tqdm import tqdm

    from gen3d.eval.image_metrics import ssim
    from gen3d.recon.rasterize import rasterize

    dev = resolve_device(device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    bg = torch.tensor(cfg.background, dtype=torch.float32)
    images = views.images.to(dev)
    if views.masks is not None:  # colour and alpha targets must agree on the fitting background
        images = recomposite(images, views.masks.to(dev), cfg.background)
    masks = views.masks.to(dev) if views.masks is not None else None
    depths = views.depths.to(dev) if (views.depths is not None and cfg.depth_weight > 0) else None
    cams = views.cameras.to(dev)
    V = len(views)

    params = _params(initial_gaussians(views, cfg)).to(dev)
    optimizers = _optimizers(params, cfg)
    strategy = _strategy(cfg, dev)
    mcmc = cfg.densify == "mcmc"
    if strategy is None:
        state = None
    else:  # gsplat's MCMC strategy takes no scene scale
        state = strategy.initialize_state() if mcmc else strategy.initialize_state(scene_scale=cfg.bound)
    occ = extent_occupancy(views, cfg)
    occ = occ.to(dev) if occ is not None else None
    start, losses = 0, []
    if checkpoint_dir is not None and (ck := load_checkpoint(Path(checkpoint_dir), dev)) is not None:
        start, losses = _restore(ck, params, optimizers, state, cfg)

    gamma = (cfg.lr_means_final / cfg.lr_means) ** (1.0 / max(cfg.iters, 1))
    for g_ in optimizers["means"].param_groups:
        g_["lr"] = cfg.lr_means * gamma**start
    t0 = time.perf_counter()
    order = torch.randperm(V, generator=gen)
    pos = 0
    bar = tqdm(range(start, cfg.iters), desc="fit gaussians", unit="it", disable=quiet, initial=start, total=cfg.iters)
    for step in bar:
        k = min(cfg.views_per_step, V)
        if pos + k > V:
            order, pos = torch.randperm(V, generator=gen), 0
        idx = order[pos : pos + k].tolist()
        pos += k
        sh_deg = min(cfg.sh_degree, step // cfg.sh_degree_every)
        g = _to_gaussians(params)
        out = rasterize(
            g.means, g.unit_quats, g.scales, g.opacities, g.sh, cams.w2c[idx], cams.K[idx], cams.width, cams.height,
            sh_degree=sh_deg, backgrounds=bg.to(dev).expand(k, 3), backend=cfg.backend,
        )
        info = {"means2d": out.means2d, "radii": out.radii, "width": cams.width, "height": cams.height,
                "n_cameras": k, "gaussian_ids": None}
        if strategy is not None:
            strategy.step_pre_backward(params, optimizers, state, step, info)
        pred = out.colors.permute(0, 3, 1, 2)
        target = images[idx].permute(0, 3, 1, 2)
        loss = (1 - cfg.ssim_weight) * (pred - target).abs().mean()
        if cfg.ssim_weight > 0:
            loss = loss + cfg.ssim_weight * (1 - ssim(pred, target).mean())
        if masks is not None and cfg.mask_weight > 0:
            loss = loss + cfg.mask_weight * (out.alphas[..., 0] - masks[idx]).abs().mean()
        if depths is not None:
            valid = depths[idx] > 0
            if valid.any():
                loss = loss + cfg.depth_weight * (out.depths[..., 0] - depths[idx])[valid].abs().mean()
        if cfg.flatten_weight > 0:
            loss = loss + cfg.flatten_weight * params["scales"].exp().min(dim=-1).values.mean()
        loss.backward()
        if strategy is not None and mcmc:  # MCMC scales its position noise by the current means' rate
            lr = optimizers["means"].param_groups[0]["lr"]
            strategy.step_post_backward(params, optimizers, state, step, info, lr=lr)
        elif strategy is not None:
            strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
            if len(params["means"]) > cfg.max_gaussians:
                _prune_to_cap(params, optimizers, state, cfg.max_gaussians)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        for g_ in optimizers["means"].param_groups:
            g_["lr"] *= gamma
        if occ is not None and ((step + 1) % max(cfg.hull_extent_every, 1) == 0 or step + 1 == cfg.iters):
            f = keep_extents_in_hull(_to_gaussians(params), occ, cfg.hull_extent, cfg.bound)
            with torch.no_grad():
                params["scales"].add_(torch.log(f))
        losses.append(loss.item())
        if not quiet and step % 20 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.4f}", n=len(params["means"]))
        if checkpoint_dir is not None and cfg.checkpoint_every > 0 and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.iters:
            save_checkpoint(Path(checkpoint_dir), step + 1, params, optimizers, state, losses)
    bar.close()
    seconds = time.perf_counter() - t0
    final = _to_gaussians(params).detach()
    return FitResult(GaussianSplats(final, cfg.backend), seconds, cfg.iters, losses)


def _restore(ck, params, optimizers, state, cfg: GaussianFitConfig) -> tuple[int, list[float]]:
    tensors, meta = ck
    for k in list(params.keys()):
        params[k] = torch.nn.Parameter(tensors[f"param.{k}"])
    new_opts = _optimizers(params, cfg)
    unpack_adam(((k, params[k], opt) for k, opt in new_opts.items()), tensors, meta["adam_steps"])
    optimizers.update(new_opts)
    if state is not None:
        for key in list(state.keys()):
            if f"strategy.{key}" in tensors:
                state[key] = tensors[f"strategy.{key}"]
            elif key in meta.get("strategy", {}):
                state[key] = meta["strategy"][key]
    return int(meta["step"]), list(meta.get("losses", []))
