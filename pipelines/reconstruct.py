"""Posed views -> fitted representation -> mesh -> the standard output folder.

``ReconstructPipeline(cfg)(data_dir, out)`` writes::

    OUT/result.json     what was asked, seed, resolved config, per-stage timings, metrics, versions
    OUT/config.yaml     the resolved config (``gen3d reconstruct --config OUT/config.yaml`` reproduces the run)
    OUT/views/          the input views + transforms.json
    OUT/views.png       contact sheet of the views
    OUT/splats.ply      3DGS .ply (Gaussians backend) / OUT/nerf.safetensors + nerf.json (NeRF backend)
    OUT/mesh.glb        the extracted mesh with vertex colours
    OUT/turntable.gif   preview
    OUT/checkpoints/    fitting checkpoints (a re-run resumes from them)

Every file is written atomically; ``result.json`` is written last, so its presence marks a
finished run. Later pipelines (``gen3d generate``) write the same folder with generated views.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from gen3d.config import dump_config, to_dict
from gen3d.data.dataset import ViewSet, load_views
from gen3d.errors import ConfigError
from gen3d.geometry.tsdf import MeshExtractConfig
from gen3d.recon.base import FitResult, Representation
from gen3d.recon.fit_gaussians import GaussianFitConfig
from gen3d.recon.fit_nerf import NerfFitConfig
from gen3d.utils.io import write_json


@dataclass(frozen=True)
class ReconstructConfig:
    data: str = ""  # a transforms.json folder
    out: str = "out/recon"
    backend: Literal["gaussians", "nerf"] = "gaussians"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    holdout_every: int = 0  # >0: every k-th view is held out of fitting and used for evaluation
    gaussians: GaussianFitConfig = GaussianFitConfig()
    nerf: NerfFitConfig = NerfFitConfig()
    mesh: MeshExtractConfig = MeshExtractConfig()
    mesh_views: int = 24  # orbit views rendered from the fit for TSDF fusion
    mesh_res: int = 128
    # > 0 (Gaussians): render the mesh views from a copy of the fit with every opacity logit raised by
    # this much, so each pixel's depth is that of the first surface rather than an average through the
    # Gaussians' shell, which lies inside the object off the fitted views (benchmarks/mesh_fidelity.py)
    mesh_opacity_boost: float = 0.0
    # The depth the mesh views are fused from: "expected" (gsplat's ED / nerfstudio's expected depth, a
    # weighted mean over the ray) or "median" (where the ray's accumulated opacity reaches 0.5: the first
    # surface, so a half-transparent top does not sink toward the bottom; docs/reconstruction.md)
    mesh_depth: Literal["expected", "median"] = "expected"
    preview_frames: int = 36
    preview_res: int = 192
    camera_radius: float = 2.6  # for the mesh/preview orbits (the procedural world's default)
    camera_fov_deg: float = 40.0


@dataclass(frozen=True)
class ReconstructResult:
    out: Path
    representation: Representation
    metrics: dict[str, float]
    timings: dict[str, float]
    files: list[str] = field(default_factory=list)


class Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def stage(self, name: str):
        sw = self

        class _Stage:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                sw.timings[name] = round(sw.timings.get(name, 0.0) + time.perf_counter() - self.t0, 3)

        return _Stage()


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": f"{platform.system()} {platform.machine()}"}
    for pkg in ("gen3d", "torch", "numpy", "open3d", "trimesh", "gsplat", "nerfstudio", "diffusers"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def split_views(views: ViewSet, holdout_every: int) -> tuple[ViewSet, ViewSet | None]:
    if holdout_every <= 0 or len(views) < 2:
        return views, None
    test = [i for i in range(len(views)) if i % holdout_every == holdout_every - 1]
    train = [i for i in range(len(views)) if i not in test]
    return views.subset(train), views.subset(test)


def fit(views: ViewSet, cfg: ReconstructConfig, checkpoint_dir: Path | None, quiet: bool) -> FitResult:
    """Fit the configured backend: the one line a researcher changes to swap backends."""
    if cfg.backend == "gaussians":
        from gen3d.recon.fit_gaussians import fit_gaussians

        gcfg = dataclasses.replace(cfg.gaussians, seed=cfg.seed)
        return fit_gaussians(views, gcfg, device=cfg.device, checkpoint_dir=checkpoint_dir, quiet=quiet)
    from gen3d.recon.fit_nerf import fit_nerf

    ncfg = dataclasses.replace(cfg.nerf, seed=cfg.seed)
    return fit_nerf(views, ncfg, device=cfg.device, checkpoint_dir=checkpoint_dir, quiet=quiet)


def evaluate_views(rep: Representation, views: ViewSet, prefix: str) -> dict[str, float]:
    from gen3d.eval.image_metrics import psnr, ssim

    r = rep.render(views.cameras)
    pred = r.rgb.detach().cpu().permute(0, 3, 1, 2).float()
    gt = views.images.permute(0, 3, 1, 2).float()
    out = {f"{prefix}_psnr": float(psnr(pred, gt).mean()), f"{prefix}_ssim": float(ssim(pred, gt).mean())}
    if views.masks is not None:
        out[f"{prefix}_mask_iou"] = float(_iou(r.alpha.detach().cpu() > 0.5, views.masks > 0.5))
    return out


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def mesh_cameras(cfg: ReconstructConfig):
    """The orbit views the mesh is fused from: 3 rings (elevations 25, -15 and 60 degrees)."""
    from gen3d.cameras import orbit_cameras

    n = cfg.mesh_views
    ring = max(n // 3, 1)
    el = [25.0] * ring + [-15.0] * ring + [60.0] * (n - 2 * ring)
    az = [i * 360.0 / ring for i in range(ring)] * 2 + [i * 360.0 / max(n - 2 * ring, 1) + 15 for i in range(n - 2 * ring)]
    return orbit_cameras(el, az, cfg.camera_radius, cfg.camera_fov_deg, cfg.mesh_res)


def extract_mesh(rep: Representation, cfg: ReconstructConfig):
    """Render depth and colour from orbit views of the fit and fuse them (TSDF)."""
    from gen3d.geometry.tsdf import tsdf_fusion
    from gen3d.recon.fit_gaussians import GaussianSplats

    cams = mesh_cameras(cfg)
    if isinstance(rep, GaussianSplats):
        r = _gaussian_mesh_views(rep, cams, cfg)
    else:
        if cfg.mesh_opacity_boost > 0:
            raise TypeError(f"mesh_opacity_boost applies to Gaussian fits only, not {type(rep).__name__}")
        # a NeRF: nerfstudio's expected or median depth (the depth keyword is only passed when asked for)
        r = rep.render(cams) if cfg.mesh_depth == "expected" else rep.render(cams, depth=cfg.mesh_depth)
    alpha = r.alpha.detach().cpu().numpy()
    return tsdf_fusion(
        r.depth.detach().cpu().numpy(), r.rgb.detach().cpu().numpy(), cams, masks=alpha > 0.5,
        bounds=np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]), cfg=cfg.mesh, device=r.depth.device,
    )


def _gaussian_mesh_views(rep, cams, cfg: ReconstructConfig):
    """The Gaussian fit's mesh views: colour as fitted; depth and mask after the opacity boost, if any,
    and as the median depth (mask: opacity >= 0.5) with ``mesh_depth="median"``."""
    from gen3d.recon.fit_gaussians import GaussianSplats

    r = rep.render(cams)
    geo = rep
    if cfg.mesh_opacity_boost > 0:
        g = rep.gaussians
        geo = GaussianSplats(dataclasses.replace(g, opacity_logits=g.opacity_logits + cfg.mesh_opacity_boost), rep.backend)
        r = dataclasses.replace(geo.render(cams), rgb=r.rgb)  # geometry from the sharpened copy, colour as fitted
    if cfg.mesh_depth == "median":
        from gen3d.recon.rasterize import render_median_depth

        depth = render_median_depth(geo.gaussians, cams, backend=geo.backend)
        r = dataclasses.replace(r, depth=depth, alpha=(depth > 0).to(r.alpha.dtype))
    return r


def copy_views(views: ViewSet, src: Path | None, dst: Path) -> None:
    """Copy the input frames and transforms.json into OUT/views (only the files its frames name)."""
    if src is None or not (src / "transforms.json").is_file():
        return
    tf = json.loads((src / "transforms.json").read_text())
    dst.mkdir(parents=True, exist_ok=True)
    for fr in tf["frames"]:
        for key in ("file_path", "mask_path", "depth_file_path", "normal_path"):
            if key in fr:
                s = (src / fr[key]).resolve()
                if s.is_file():
                    (dst / fr[key]).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(s, dst / fr[key])
    write_json(dst / "transforms.json", tf, indent=1)


class ReconstructPipeline:
    """Compose fitting, evaluation, mesh extraction and exports; swap the backend through the config."""

    def __init__(self, cfg: ReconstructConfig = ReconstructConfig()):
        if cfg.mesh_opacity_boost < 0:
            raise ConfigError(f"mesh_opacity_boost must be >= 0, got {cfg.mesh_opacity_boost}")
        if cfg.mesh_opacity_boost > 0 and cfg.backend != "gaussians":
            raise ConfigError("mesh_opacity_boost applies to the Gaussian backend only; set it to 0 with backend=nerf")
        if cfg.mesh_depth not in ("expected", "median"):
            raise ConfigError(f"mesh_depth must be 'expected' or 'median', got {cfg.mesh_depth!r}")
        self.cfg = cfg

    def __call__(
        self, data: str | Path | ViewSet | None = None, out: str | Path | None = None, *, quiet: bool = False,
        request: dict[str, Any] | None = None,
    ) -> ReconstructResult:
        from gen3d.geometry.mesh_io import export_mesh
        from gen3d.recon.preview import turntable, views_contact_sheet

        cfg = self.cfg
        out = Path(out or cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        sw = Stopwatch()
        with sw.stage("load"):
            views = data if isinstance(data, ViewSet) else load_views(data or cfg.data)
        dump_config(cfg, out / "config.yaml")
        train, test = split_views(views, cfg.holdout_every)
        torch.manual_seed(cfg.seed)

        with sw.stage("fit"):
            res = fit(train, cfg, out / "checkpoints", quiet)
        rep = res.representation
        metrics: dict[str, float] = {"iterations": res.iterations}
        with sw.stage("evaluate"):
            metrics.update(evaluate_views(rep, train, "train"))
            if test is not None:
                metrics.update(evaluate_views(rep, test, "heldout"))
        with sw.stage("mesh"):
            try:
                mesh = extract_mesh(rep, cfg)
            except ValueError as e:  # nothing solid was fitted (e.g. a failed generation): no mesh, say why
                mesh = None
                metrics["mesh_error"] = str(e)
                if not quiet:
                    print(f"gen3d: warning: no mesh extracted: {e}", file=sys.stderr)
            if mesh is not None:
                export_mesh(mesh, out / "mesh.glb")
            metrics["mesh_faces"] = int(len(mesh.faces)) if mesh is not None else 0
            gt = (views.root / "mesh.ply") if views.root is not None else None
            if mesh is not None and gt is not None and gt.is_file() and len(mesh.faces) > 0:
                import trimesh

                from gen3d.geometry.metrics import mesh_metrics

                mm = mesh_metrics(mesh, trimesh.load(gt, process=False))
                metrics.update({"mesh_fscore": mm.fscore, "mesh_chamfer_l1": mm.chamfer_l1, "mesh_fscore_tau": mm.tau})
        with sw.stage("export"):
            files = [str(p.relative_to(out)) for p in rep.save(out)]
            copy_views(views, views.root, out / "views")
            views_contact_sheet([im.numpy() for im in views.images], out / "views.png")

            def render_rgb(cams):
                return rep.render(cams).rgb.detach().cpu().numpy()

            turntable(render_rgb, out / "turntable.gif", frames=cfg.preview_frames, res=cfg.preview_res,
                      radius=cfg.camera_radius, fov_deg=cfg.camera_fov_deg)
        files += (["mesh.glb"] if mesh is not None else []) + ["views.png", "turntable.gif", "views/transforms.json", "config.yaml"]
        result = {
            "kind": "reconstruct",
            "request": request or {"data": str(data if not isinstance(data, ViewSet) else views.root)},
            "backend": cfg.backend,
            "seed": cfg.seed,
            "device": str(_device_name(cfg.device)),
            "config": to_dict(cfg),
            "timings": {**sw.timings, "total": round(sum(sw.timings.values()), 3)},
            "metrics": metrics,
            "versions": versions(),
            "files": files,
            "meta": views.meta,
        }
        write_json(out / "result.json", result)
        return ReconstructResult(out, rep, metrics, sw.timings, files)


def _device_name(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
