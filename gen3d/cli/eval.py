"""``gen3d eval generate --prompts FILE --out DIR`` and ``gen3d eval prompts --out FILE``."""

from __future__ import annotations

import argparse

from gen3d.cli import add_common_flags


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="evaluate generation: colour, class, shape, multi-view consistency")
    e.set_defaults(group_parser=e)
    esub = e.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")
    g = esub.add_parser(
        "generate", help="generate every prompt of a JSON Lines file and score the results",
        description='FILE holds one {"prompt": ..., "class": ..., "color": ...} per line (names from '
        "`gen3d data catalogue`). Scores colour accuracy, class accuracy (nearest class by Chamfer distance to "
        "its canonical mesh and its parameter extremes; the canonical-mesh-only rule is reported too), F-score, fit PSNR and leave-one-view-out PSNR; prints a table, writes DIR/eval.json "
        "and DIR/eval.md. A re-run skips prompts already scored.")
    add_common_flags(g)
    g.add_argument("--prompts", metavar="FILE", help="JSON Lines prompts (see `gen3d eval prompts`)")
    g.add_argument("--model", metavar="DIR", help="a prior folder (default: the shipped model)")
    g.add_argument("--loo", choices=["one", "all", "none"], help="leave-one-view-out fits per prompt (default: one)")
    g.add_argument("--limit", type=int, help="only the first N prompts")
    g.add_argument("--guidance", type=float, help="guidance scale (1: none; default: the model's)")
    g.add_argument("--guide", choices=["text", "weak"],
                   help="guide away from the prompt-free prediction (text: classifier-free) or from the model's weak "
                        "denoiser (weak: autoguidance); default: the model's")
    g.add_argument("--guidance-min-sigma", type=float, metavar="SIGMA",
                   help="guide only while the noise level is above SIGMA (default: the model's)")
    g.add_argument("--candidates", type=int, metavar="N",
                   help="sets of views sampled per prompt, the most consistent kept (default: gen3d generate's)")
    g.add_argument("--view-depth", choices=["fit", "prior"],
                   help="depth of the views the leave-one-view-out fits use: as gen3d generate saves it (fit, the "
                        "default; then the prior's own depth is scored too) or as the prior decoded it (prior)")
    g.set_defaults(handler=_generate)
    p = esub.add_parser("prompts", help="write a prompts file of the held-out colour-class combinations",
                        description="One prompt per held-out colour-class combination (54; never seen in "
                        "training), worded with random synonyms and sentence forms.")
    p.add_argument("--out", metavar="FILE", required=True, help="the JSON Lines file to write")
    p.add_argument("--n", type=int, help="at most N prompts")
    p.add_argument("--seed", type=int, default=0, help="wording seed")
    p.set_defaults(handler=_prompts)


def _generate(args: argparse.Namespace) -> int:
    from gen3d.config import load_config
    from gen3d.eval.generate import EvalConfig, run_eval

    flags = {"prompts": args.prompts, "out": args.out, "seed": args.seed, "model": args.model, "loo": args.loo,
             "limit": args.limit, "candidates": args.candidates,
             "guidance": args.guidance, "guidance_min_sigma": args.guidance_min_sigma, "guide": args.guide,
             "view_depth": args.view_depth}
    cfg = load_config(EvalConfig, args.config, [f"{k}={v}" for k, v in flags.items() if v is not None] + list(args.overrides))
    run_eval(cfg, quiet=args.quiet)
    return 0


def _prompts(args: argparse.Namespace) -> int:
    from gen3d.eval.generate import write_prompts_file

    n = write_prompts_file(args.out, args.n, args.seed)
    print(f"wrote {n} prompts to {args.out}")
    return 0
