"""``gen3d generate "a red mug" --out out/mug``: prompt -> views -> reconstruction -> mesh."""

from __future__ import annotations

import argparse
from pathlib import Path

from gen3d.cli import add_common_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate an object from a text prompt: views, splats, mesh (offline, on the shipped model)",
        description="Sample V consistent views of the prompt with the multi-view prior (classifier-free guidance), "
        "fit them (Gaussians or NeRF), extract a mesh, and write OUT/{result.json, views/, views.png, splats.ply, "
        "mesh.glb, turntable.gif}. With --prompts FILE, one folder per prompt under OUT (split across processes "
        "when started with `accelerate launch -m gen3d generate --prompts FILE`).",
    )
    p.add_argument("prompt", nargs="?", help='what to make, e.g. "a red mug"')
    add_common_flags(p)
    p.add_argument("--prompts", metavar="FILE", help="many prompts: a text file (one per line) or JSON Lines")
    p.add_argument("--model", metavar="DIR", help="a prior folder (default: the shipped model)")
    p.add_argument("--guidance", type=float, help="guidance scale (1: none)")
    p.add_argument("--guide", choices=["text", "weak"],
                   help="guide away from the prompt-free prediction (text: classifier-free guidance) or from the "
                        "model's weak denoiser (weak: autoguidance); default: the model's")
    p.add_argument("--steps", type=int, help="sampler steps")
    p.add_argument("--sampler", help="sampler name (see gen3d.diffusion.samplers.sampler_names)")
    p.add_argument("--candidates", type=int, metavar="N",
                   help="sample N sets of views and keep the most 3D-consistent (default: the config's)")
    p.add_argument("--view-depth", choices=["fit", "prior"],
                   help="depth of the saved views: rendered from the fit to all views (fit, the default) or as the "
                        "prior decoded it (prior)")
    p.add_argument("--backend", choices=["gaussians", "nerf"], help="reconstruction backend (default: gaussians)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to run (default: auto)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from gen3d.config import load_config
    from gen3d.errors import ConfigError
    from gen3d.pipelines.generate import GenerateConfig, GeneratePipeline, read_prompts

    flags = {"out": args.out, "seed": args.seed, "model": args.model, "guidance": args.guidance, "guide": args.guide,
             "steps": args.steps, "sampler": args.sampler, "candidates": args.candidates, "device": args.device,
             "view_depth": args.view_depth, "recon.backend": args.backend}
    overrides = [f"{k}={v}" for k, v in flags.items() if v is not None]
    if args.prompt is not None:
        overrides.append(f"prompt={args.prompt}")
    cfg = load_config(GenerateConfig, args.config, overrides + list(args.overrides))
    if args.prompts:
        return _many(cfg, read_prompts(args.prompts), args.quiet)
    if args.prompt is None and not cfg.prompt:
        raise ConfigError('no prompt given: gen3d generate "a red mug" --out out/mug (or --prompts FILE)')
    pipe = GeneratePipeline.from_config(cfg)
    res = pipe(cfg.prompt, cfg.out, quiet=args.quiet)
    if not args.quiet:
        m = res.metrics
        print(f"wrote {res.out}: mesh.glb, splats.ply, views.png (fit PSNR {m.get('train_psnr', float('nan')):.1f} dB; "
              f"{res.timings['total']:.1f} s)")
    return 0


def _many(cfg, items: list[dict], quiet: bool) -> int:
    from gen3d.pipelines.generate import GeneratePipeline, slug

    try:
        from accelerate import PartialState

        state = PartialState()
        rank, world = state.process_index, state.num_processes
    except ImportError:  # pragma: no cover - accelerate is a dependency
        rank, world = 0, 1
    pipe = GeneratePipeline.from_config(cfg)
    out = Path(cfg.out)
    for i, item in enumerate(items):
        if i % world != rank:
            continue
        folder = out / f"{i:04d}_{slug(item['prompt'])}"
        if (folder / "result.json").is_file():
            continue  # finished earlier: a re-run resumes the list
        pipe(item["prompt"], folder, seed=int(item.get("seed", cfg.seed)), quiet=quiet)
        if not quiet:
            print(f"[{i + 1}/{len(items)}] wrote {folder}")
    return 0
