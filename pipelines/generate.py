"""Prompt -> multi-view prior (classifier-free guidance) -> reconstruction -> mesh: ``gen3d generate``.

``GeneratePipeline`` is built from components, each swappable in one line::

    pipe = GeneratePipeline.from_config(GenerateConfig())          # the shipped default
    pipe = GeneratePipeline(prior=MultiViewPrior.from_pretrained("my/prior"))    # another prior
    pipe = GeneratePipeline(sampler="dpmpp_2m", steps=12)                        # another sampler
    pipe = GeneratePipeline(reconstruct=ReconstructPipeline(ReconstructConfig(backend="nerf")))
    result = pipe("a red mug", out="out/mug", seed=0)

It writes the reconstruction output folder (``pipelines/reconstruct.py``) with the generated views
in ``OUT/views/`` (images, masks, depth, transforms.json) and ``result.json`` extended by the
prompt, the sampling settings and per-stage timings (load, text, sample, decode, fit, evaluate,
mesh, export).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gen3d.config import to_dict
from gen3d.errors import ConfigError
from gen3d.geometry.tsdf import MeshExtractConfig
from gen3d.pipelines.reconstruct import ReconstructConfig, ReconstructPipeline, Stopwatch, versions
from gen3d.recon.fit_gaussians import GaussianFitConfig
from gen3d.utils.io import write_json


def _default_recon() -> ReconstructConfig:
    """Reconstruction sized for 4 generated 64 px views: a short Gaussian fit, small previews."""
    return ReconstructConfig(
        # The generated depth clips the hull to the convex hull of the surface the views see: with 4
        # views looking down, silhouettes alone leave a wedge under the object and bulges on its sides
        # (docs/prior.md, "What limits it"). The prior's views are lit by a headlight (gen3d.data.render),
        # so each colour starts with a degree-1 lobe along its normal: a face that the other views see
        # only edge-on is rendered brighter, as the renderer would, when a view looks at it.
        gaussians=GaussianFitConfig(iters=300, init_points=4000, hull_resolution=64, views_per_step=4,
                                    refine_start=60, refine_every=40, checkpoint_every=0, hull_convex_margin=0.02,
                                    init_view_lobe=0.3),
        # The mesh views' depth is the median depth (the first surface): faces the 4 views see at a grazing
        # angle fit as half-transparent layers, and the expected depth through them sinks (a dented box
        # top); docs/reconstruction.md, docs/prior.md ("Meshing the median depth")
        mesh=MeshExtractConfig(), mesh_depth="median",
        mesh_views=18, mesh_res=96, preview_frames=24, preview_res=128, camera_fov_deg=30.0,
    )


@dataclass(frozen=True)
class GenerateConfig:
    prompt: str = ""
    out: str = "out/generate"
    model: str = ""  # a prior folder; empty: the shipped default (gen3d/assets/default)
    seed: int = 0
    guidance: float | None = None  # None: the model's default
    guidance_min_sigma: float | None = None  # guide only above this noise level (None: the model's default)
    guide: str = ""  # "text" (classifier-free) or "weak" (autoguidance by the model's weak denoiser); empty: the model's
    steps: int | None = None
    sampler: str = ""  # empty: the model's default
    device: str = "auto"  # where the prior runs (and the fit, unless recon.device says otherwise)
    # Sample this many sets of views and keep the one whose views agree best in 3D (each view's mask
    # against the silhouette of the hull of the others: gen3d.recon.consistency); 1: no choice.
    candidates: int = 1
    # The depth of the saved views (OUT/views/depth, GenerateResult.views): "fit" renders it from the
    # object fitted to all the views, inside each view's mask, so the views agree in 3D (the prior's own
    # depth is kept in OUT/views/depth_prior); "prior": the depth the prior decoded.
    view_depth: str = "fit"
    recon: ReconstructConfig = field(default_factory=_default_recon)


VIEW_DEPTHS = ("fit", "prior")


@dataclass
class GenerateResult:
    out: Path
    views: Any  # GeneratedViews
    metrics: dict[str, float]
    timings: dict[str, float]
    warnings: list[str]
    representation: Any = None  # the fitted Representation (render it from any camera)
    candidates: Any = None  # with candidates > 1: every sampled set (GeneratedViews, N sets); views is the chosen one
    chosen: int = 0


def check_prompt(prompt: str) -> list[str]:
    """Raise on an empty prompt; return warnings (e.g. no object the default model knows)."""
    from gen3d.priors.vocab import find_classes, known_objects_line

    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError('empty prompt: say what to make, e.g. gen3d generate "a red mug"')
    if len(prompt) > 500:
        raise ConfigError(f"prompt is {len(prompt)} characters long; keep it under 500")
    warnings = []
    if not find_classes(prompt):
        warnings.append(f"the prompt {prompt!r} names no object the default model knows; it will still generate "
                        f"something. Known objects: {known_objects_line()}")
    return warnings


_PRIOR_CACHE: dict[tuple[str, str], Any] = {}


def load_prior(model: str, device: str):
    from gen3d.priors.mvprior import MultiViewPrior, default_model_path

    path = Path(model) if model else default_model_path()
    key = (str(path.resolve()), device)
    if key not in _PRIOR_CACHE:
        _PRIOR_CACHE[key] = MultiViewPrior.from_pretrained(path, device=device)
    return _PRIOR_CACHE[key]


def views_to_viewset(g, index: int = 0):
    """One prompt's generated views as a ViewSet (what the reconstruction fits)."""
    from gen3d.data.dataset import ViewSet

    return ViewSet(
        images=g.rgb[index].permute(0, 2, 3, 1).contiguous().float(),
        cameras=g.cameras,
        masks=g.alpha[index].float(),
        depths=g.depth[index].float(),
        view_index=list(range(g.rgb.shape[1])),
        meta={"generated": True},
    )


def write_generated_views(g, index: int, folder: Path, meta: dict) -> None:
    """OUT/views: images, masks, depth PNGs + transforms.json (the layout of ``gen3d data render``);
    with ``g.prior_depth``, the prior's own depth too, as depth_prior/ PNGs in the same units."""
    from gen3d.data.dataset import write_depth_png, write_views
    from gen3d.data.render import RenderOutput
    from gen3d.utils.io import atomic_dir

    rgb = g.rgb[index].permute(0, 2, 3, 1).numpy()
    ro = RenderOutput(rgb=rgb, alpha=g.alpha[index].numpy(), depth=g.depth[index].numpy(),
                      normals=np.zeros_like(rgb))
    with atomic_dir(folder) as tmp:
        write_views(tmp, g.cameras, [ro], None, meta, write_depth=True, write_normals=False)
        if g.prior_depth is not None:
            (tmp / "depth_prior").mkdir()
            for v, d in enumerate(g.prior_depth[index].numpy()):
                write_depth_png(tmp / "depth_prior" / f"v{v:03d}.png", d)


class GeneratePipeline:
    """Compose a prior, a sampler and a reconstruction backend; call with a prompt."""

    def __init__(
        self,
        prior=None,
        reconstruct: ReconstructPipeline | None = None,
        *,
        sampler: str = "",
        steps: int | None = None,
        guidance: float | None = None,
        candidates: int | None = None,
        config: GenerateConfig | None = None,
    ):
        self.config = cfg = config or GenerateConfig()
        from gen3d.training.loop import resolve_device

        self.device = resolve_device(cfg.device)
        self.prior = prior
        self.reconstruct = reconstruct or ReconstructPipeline(dataclasses.replace(cfg.recon, device=self.device)
                                                              if cfg.recon.device == "auto" else cfg.recon)
        self.sampler = sampler or cfg.sampler
        self.steps = steps if steps is not None else cfg.steps
        self.guidance = guidance if guidance is not None else cfg.guidance
        self.candidates = int(candidates if candidates is not None else cfg.candidates)
        if self.candidates < 1:
            raise ConfigError(f"candidates must be >= 1, got {self.candidates}")
        if cfg.view_depth not in VIEW_DEPTHS:
            raise ConfigError(f"view_depth must be one of {', '.join(VIEW_DEPTHS)}, got {cfg.view_depth!r}")

    @classmethod
    def from_config(cls, cfg: GenerateConfig) -> GeneratePipeline:
        return cls(config=cfg)

    def load(self):
        if self.prior is None:
            self.prior = load_prior(self.config.model, self.device)
        return self.prior

    def sample_views(self, prompts: list[str], seed: int, progress: bool = False, tokens=None):
        """Sample views for ``prompts`` with this pipeline's sampling settings (``tokens``: already encoded)."""
        prior = self.load()
        return prior.sample(prompts, seed=seed, guidance=self.guidance, steps=self.steps, sampler=self.sampler or None,
                            progress=progress, tokens=tokens, guidance_min_sigma=self.config.guidance_min_sigma,
                            guide=self.config.guide or None)

    def choose(self, g) -> tuple[int, list[float]]:
        """The most 3D-consistent of the sampled candidates in ``g``, and every candidate's score.

        The score is the mean leave-one-out hull IoU of :mod:`gen3d.recon.consistency`, with the hull
        clipped as the Gaussian fit clips its initialisation."""
        from gen3d.recon.consistency import leave_one_out_hull_iou
        from gen3d.recon.fit_gaussians import GaussianFitConfig, hull_options

        gc = getattr(getattr(self.reconstruct, "cfg", None), "gaussians", None) or GaussianFitConfig()
        scores = [float(leave_one_out_hull_iou(g.cameras, g.alpha[c].float(), **hull_options(gc, g.depth[c].float())).mean())
                  for c in range(g.rgb.shape[0])]
        return int(np.argmax(scores)), scores

    @staticmethod
    def fuse_depth(g, index: int, representation):
        """``g`` with view set ``index``'s depth rendered from ``representation`` (fitted to those views)
        inside their masks (:func:`gen3d.recon.consistency.depth_from_fit`); the decoded depth is kept
        as ``g.prior_depth``."""
        from gen3d.recon.consistency import rendered_depth_from_fit

        depth = g.depth.clone()
        depth[index] = rendered_depth_from_fit(representation, g.cameras, g.depth[index], g.alpha[index]).to(depth.dtype)
        return dataclasses.replace(g, depth=depth, prior_depth=g.depth if g.prior_depth is None else g.prior_depth)

    def __call__(self, prompt: str, out: str | Path | None = None, seed: int | None = None, quiet: bool = False) -> GenerateResult:
        from gen3d.recon.preview import views_contact_sheet

        warnings = check_prompt(prompt)
        if not quiet:
            for w in warnings:
                print(f"gen3d: warning: {w}", file=sys.stderr)
        seed = self.config.seed if seed is None else int(seed)
        out = Path(out or self.config.out)
        out.mkdir(parents=True, exist_ok=True)
        sw = Stopwatch()
        stage = _Stages(quiet)
        with sw.stage("load_model"), stage("loading the prior"):
            prior = self.load()
            _ = prior.text_encoder
        with sw.stage("text"):
            tokens = prior.encode_prompts([prompt])
        with sw.stage("sample"), stage("sampling views"):
            N = self.candidates
            g = self.sample_views([prompt] * N, seed, progress=not quiet, tokens=tokens.expand(N, *tokens.shape[1:]))
        pick, scores = 0, []
        if N > 1:
            with sw.stage("choose"), stage(f"choosing the most consistent of {N} candidates"):
                pick, scores = self.choose(g)
        meta = {"prompt": prompt, "seed": seed, **g.info, "nfe": g.nfe, "generated": True}
        if N > 1:
            meta["candidates"] = {"n": N, "chosen": pick, "hull_iou": [round(x, 4) for x in scores]}
        with sw.stage("write_views"):
            write_generated_views(g, pick, out / "views", meta)
            views_contact_sheet([im.permute(1, 2, 0).numpy() for im in g.rgb[pick]], out / "views.png")
        with stage("reconstructing"):
            rec = self.reconstruct(views_to_viewset(g, pick), out, quiet=quiet, request={"prompt": prompt})
        if self.config.view_depth == "fit":
            with sw.stage("view_depth"):
                g = self.fuse_depth(g, pick, rec.representation)
                write_generated_views(g, pick, out / "views", {**meta, "view_depth": "fit"})
        timings = {**sw.timings, **rec.timings}
        timings["total"] = round(sum(timings.values()), 3)
        result_path = out / "result.json"
        from gen3d.utils.io import read_json

        result = read_json(result_path)
        result.update({
            "kind": "generate",
            "request": {"prompt": prompt, "seed": seed, "guidance": g.info["guidance"], "steps": g.info["steps"],
                        "sampler": g.info["sampler"], "candidates": N, "model": str(self.config.model or "default"),
                        **({"guidance_min_sigma": g.info["guidance_min_sigma"]} if "guidance_min_sigma" in g.info else {}),
                        **({"guide": g.info["guide"]} if "guide" in g.info else {})},
            "prior": {"nfe": g.nfe, **{k: v for k, v in prior.meta.get("training", {}).items() if k != "config"}},
            "timings": timings,
            "warnings": warnings,
            "versions": versions(),
            "generate_config": to_dict(self.config),
        })
        files = list(result.get("files", []))
        for f in ("views.png", "views/transforms.json"):
            if f not in files:
                files.append(f)
        result["files"] = files
        if N > 1:
            result["candidates"] = meta["candidates"]
        write_json(result_path, result)
        return GenerateResult(out, g.select(pick), rec.metrics, timings, warnings, rec.representation,
                              candidates=g if N > 1 else None, chosen=pick)


class _Stages:
    """Stage messages on stderr ('[gen3d] sampling views ... 2.1 s')."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, name: str):
        outer = self

        class _S:
            def __enter__(self):
                self.t = time.perf_counter()
                if not outer.quiet:
                    print(f"[gen3d] {name} ...", file=sys.stderr, flush=True)

            def __exit__(self, *exc):
                if not outer.quiet and exc[0] is None:
                    print(f"[gen3d] {name}: {time.perf_counter() - self.t:.1f} s", file=sys.stderr, flush=True)

        return _S()


def read_prompts(path: str | Path) -> list[dict[str, Any]]:
    """Prompts from a text file (one per line, '#' comments) or JSON Lines ({"prompt": ...} per line)."""
    import json

    from gen3d.errors import DataError

    p = Path(path)
    if not p.is_file():
        raise DataError(f"prompts file not found: {p}")
    items = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("{"):
            try:
                d = json.loads(s)
            except json.JSONDecodeError as e:
                raise DataError(f"{p}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(d, dict) or not isinstance(d.get("prompt"), str):
                raise DataError(f'{p}:{n}: each JSON line needs a "prompt" string')
            items.append(d)
        else:
            items.append({"prompt": s})
    if not items:
        raise DataError(f"{p} holds no prompts")
    return items


def slug(text: str, n: int = 40) -> str:
    import re

    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return s[:n] or "prompt"


__all__ = ["GenerateConfig", "GeneratePipeline", "GenerateResult", "check_prompt", "load_prior", "read_prompts", "slug",
           "views_to_viewset", "write_generated_views"]
