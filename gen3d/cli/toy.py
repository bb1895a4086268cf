"""gen3d toy: draw samples and trajectories of the samplers on the 2-D toy mixture.

Every sampler is driven by the mixture's exact denoiser, so the figure shows the samplers' own
errors (discretisation, stochasticity), not a model's.
"""

from __future__ import annotations

import argparse

from gen3d.cli import add_common_flags

# Kept here (not imported from gen3d.diffusion.samplers) so `gen3d --help` does not import torch;
# tests/diffusion/test_cli_toy.py checks it equals samplers.sampler_names().
SAMPLER_NAMES = ("ddpm", "ddim", "euler", "heun", "euler_maruyama", "edm_sde", "flow_euler", "flow_heun",
                 "dpmpp_2m", "unipc", "diffusers_flow_euler")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "toy",
        help="draw each sampler's samples and trajectories next to the true 2-D density",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sampler", default="heun", choices=list(SAMPLER_NAMES) + ["all"],
                   help="sampler to highlight (drawn first, framed in red); 'all' highlights none (default: heun)")
    p.add_argument("--only", action="store_true", help="draw only the chosen sampler, not all of them")
    p.add_argument("--steps", type=int, default=18, help="sampling steps for every sampler (default: 18)")
    p.add_argument("--samples", type=int, default=2000, help="samples per sampler (default: 2000)")
    p.add_argument("--trajectories", type=int, default=12, help="trajectories drawn per sampler (default: 12)")
    p.add_argument("--out", metavar="FILE", default="toy.png", help="output PNG (default: toy.png)")
    add_common_flags(p, config=False, out=False)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gen3d.diffusion.plots import sampler_runs, toy_figure
    from gen3d.diffusion.samplers import sampler_names
    from gen3d.diffusion.toy import toy_2d
    from gen3d.errors import Gen3dError

    if args.steps < 1 or args.samples < 2 or args.trajectories < 0:
        raise Gen3dError("--steps must be >= 1, --samples >= 2 and --trajectories >= 0")
    if args.only and args.sampler == "all":
        raise Gen3dError("--only needs a sampler name, not 'all'")
    if not str(args.out).lower().endswith(".png"):
        raise Gen3dError(f"--out must name a .png file, got {args.out}")
    names = [args.sampler] if args.only else sampler_names()
    gmm = toy_2d()
    runs = sampler_runs(gmm, names, args.steps, args.samples, args.trajectories,
                        seed=0 if args.seed is None else args.seed, progress=not args.quiet)
    out = toy_figure(gmm, runs, args.out, args.steps, highlight=None if args.sampler == "all" else args.sampler)
    if not args.quiet:
        for r in runs:
            print(f"{r.name:22s} NFE {r.nfe:4d}  sliced W2 {r.sw2:.4f}  log-density gap {r.logp_gap:+.3f}")
        print(f"wrote {out}")
    return 0
