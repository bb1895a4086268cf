"""``gen3d reconstruct DATA_DIR --backend gaussians|nerf --out OUT``."""

from __future__ import annotations

import argparse

from gen3d.cli import add_common_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="fit posed views (a transforms.json folder) with Gaussians or a NeRF; extract and export a mesh",
        description="Fit the views in DATA_DIR (a transforms.json folder, e.g. one object of `gen3d data render`) "
        "and write OUT/{result.json, config.yaml, views/, views.png, splats.ply, mesh.glb, turntable.gif}. "
        "Re-running the same command resumes from OUT/checkpoints.",
    )
    p.add_argument("data", metavar="DATA_DIR", nargs="?", help="folder holding transforms.json")
    add_common_flags(p)
    p.add_argument("--backend", choices=["gaussians", "nerf"], help="representation to fit (default: gaussians)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to fit (default: auto)")
    p.add_argument("--iters", type=int, help="fitting iterations")
    p.add_argument("--holdout-every", type=int, dest="holdout_every",
                   help="hold every k-th view out of fitting and report PSNR on them")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from gen3d.config import load_config
    from gen3d.errors import ConfigError
    from gen3d.pipelines.reconstruct import ReconstructConfig, ReconstructPipeline

    flags = {"data": args.data, "out": args.out, "backend": args.backend, "device": args.device,
             "seed": args.seed, "holdout_every": args.holdout_every}
    overrides = [f"{k}={v}" for k, v in flags.items() if v is not None]
    cfg = load_config(ReconstructConfig, args.config, overrides + list(args.overrides))
    if args.iters is not None:
        cfg = load_config(ReconstructConfig, None, [f"{cfg.backend}.iters={args.iters}"], base=cfg)
    if not cfg.data:
        raise ConfigError("no DATA_DIR given (a folder with transforms.json, e.g. from `gen3d data render`)")
    res = ReconstructPipeline(cfg)(cfg.data, cfg.out, quiet=args.quiet)
    if not args.quiet:
        m = res.metrics
        parts = [f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()]
        print(f"wrote {res.out} ({', '.join(parts)}; {sum(res.timings.values()):.1f} s)")
    return 0
