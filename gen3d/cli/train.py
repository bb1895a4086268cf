"""``gen3d train data|autoencoder|prior``: build the multi-view training set and train the two models."""

from __future__ import annotations

import argparse
import json

from gen3d.cli import add_common_flags


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train the latent autoencoder and the multi-view prior (resumable)")
    t.set_defaults(group_parser=t)
    tsub = t.add_subparsers(dest="train_command", metavar="SUBCOMMAND")

    d = tsub.add_parser("data", help="render the multi-view training set (tensor shards; resumable)",
                        description="Render N procedural objects (never a held-out combination) from the prior's "
                        "camera rig into tensor shards. Re-running resumes at the first missing shard.")
    add_common_flags(d)
    d.add_argument("--n", type=int, help="number of objects")
    d.add_argument("--workers", type=int, help="rendering processes")
    d.set_defaults(handler=_data)

    for name, helptext in (("autoencoder", "train the KL/VQ image autoencoder (L1 + SSIM + patch GAN)"),
                           ("prior", "train the multi-view denoiser on the autoencoder's latents")):
        p = tsub.add_parser(name, help=helptext,
                            description=f"{helptext}. Seeded and resumable: re-running the same command continues "
                            "from OUT/checkpoints. Runs on CPU or CUDA, and on several processes or machines under "
                            "`accelerate launch -m gen3d train ...`.")
        add_common_flags(p)
        p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (default: auto)")
        p.add_argument("--steps", type=int, help="total training steps")
        p.set_defaults(handler=_autoencoder if name == "autoencoder" else _prior)


def _overrides(args: argparse.Namespace, **flags) -> list[str]:
    base = {"out": getattr(args, "out", None), "seed": args.seed, **flags}
    return [f"{k}={v}" for k, v in base.items() if v is not None] + list(args.overrides)


def _data(args: argparse.Namespace) -> int:
    from gen3d.config import load_config
    from gen3d.priors.mvdata import MVDataConfig, build_dataset

    cfg = load_config(MVDataConfig, args.config, _overrides(args, n=args.n, workers=args.workers))
    index = build_dataset(cfg, quiet=args.quiet)
    if not args.quiet:
        print(f"wrote {cfg.out}: {index['n']} objects x {index['views']} views at {index['res']} px "
              f"({index['render_seconds']:.1f} s)")
    return 0


def _autoencoder(args: argparse.Namespace) -> int:
    from gen3d.autoencoders.train import AETrainConfig, train_autoencoder
    from gen3d.config import load_config

    cfg = load_config(AETrainConfig, args.config, _overrides(args, device=args.device, steps=args.steps))
    result = train_autoencoder(cfg, quiet=args.quiet)
    if not args.quiet and result:
        print(json.dumps(result, indent=1))
    return 0


def _prior(args: argparse.Namespace) -> int:
    from gen3d.config import load_config
    from gen3d.priors.train import PriorTrainConfig, train_prior

    cfg = load_config(PriorTrainConfig, args.config, _overrides(args, device=args.device, steps=args.steps))
    result = train_prior(cfg, quiet=args.quiet)
    if not args.quiet and result:
        print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=1))
    return 0
