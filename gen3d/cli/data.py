"""``gen3d data render`` and ``gen3d data catalogue``."""

from __future__ import annotations

import argparse
import json
import sys

from gen3d.cli import add_common_flags


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="the procedural 3D world: render datasets, list its catalogue")
    data.set_defaults(group_parser=data)
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    r = dsub.add_parser(
        "render",
        help="render procedural objects into transforms.json folders",
        description="Sample procedural objects and render each into its own transforms.json folder "
        "(images, masks, depth, normals, ground-truth mesh), with an index.json of captions and parameters. "
        "Re-running the same command resumes an interrupted run.",
    )
    add_common_flags(r)
    r.add_argument("--n", type=int, help="number of objects")
    r.add_argument("--views", type=int, help="views per object (cameras evenly spaced in azimuth)")
    r.add_argument("--res", type=int, help="image width and height in pixels")
    r.add_argument("--motion", action="store_true", default=None, help="animate each object (4D)")
    r.add_argument("--frames", type=int, help="frames per clip with --motion")
    r.add_argument("--split", choices=["train", "heldout", "all"], help="which combinations to sample")
    r.set_defaults(handler=_render)

    c = dsub.add_parser("catalogue", help="list classes, colours, motions and the held-out combinations")
    c.add_argument("--json", action="store_true", help="print JSON instead of text")
    c.set_defaults(handler=_catalogue)


def _render(args: argparse.Namespace) -> int:
    from gen3d.config import load_config
    from gen3d.data.dataset import DataRenderConfig
    from gen3d.data.render_dataset import render_dataset

    flags = {"out": args.out, "n": args.n, "res": args.res, "seed": args.seed, "motion": args.motion,
             "frames": args.frames, "split": args.split, "camera.views": args.views}
    overrides = [f"{k}={v}" for k, v in flags.items() if v is not None] + list(args.overrides)
    cfg = load_config(DataRenderConfig, args.config, overrides)
    index = render_dataset(cfg, quiet=args.quiet)
    st = index["_stats"]
    if not args.quiet:
        rate = st["views"] / st["seconds"] if st["seconds"] > 0 and st["views"] else 0.0
        print(
            f"wrote {cfg.n} objects to {cfg.out} ({st['rendered']} rendered, {st['skipped']} already there; "
            f"{st['views']} views in {st['seconds']:.1f} s, {rate:.0f} views/s incl. PNG writing)"
        )
    return 0


def _catalogue(args: argparse.Namespace) -> int:
    from gen3d.data.catalogue import catalogue, format_catalogue

    cat = catalogue()
    sys.stdout.write(json.dumps(cat, indent=2) + "\n" if args.json else format_catalogue(cat))
    return 0
