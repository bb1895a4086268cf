"""The ``gen3d`` command line.

Each subcommand lives in its own module under ``gen3d/cli/`` exposing ``register(subparsers)``;
heavy libraries are imported inside the handlers, so ``gen3d --help`` starts in well under a second.
Flags shared by every subcommand come from :func:`add_common_flags`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

from gen3d.errors import Gen3dError

# Modules that add subcommands (one line each; order = order in --help).
SUBCOMMAND_MODULES = [
    "gen3d.cli.generate",
    "gen3d.cli.data",
    "gen3d.cli.reconstruct",
    "gen3d.cli.view",
    "gen3d.cli.train",
    "gen3d.cli.eval",
    "gen3d.cli.toy",
]


def add_common_flags(p: argparse.ArgumentParser, *, config: bool = True, out: bool = True) -> None:
    """Flags every subcommand shares, so they read the same everywhere."""
    if config:
        p.add_argument("--config", metavar="FILE", help="YAML config or preset name (see configs/)")
    if out:
        p.add_argument("--out", metavar="DIR", help="output folder")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the config's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or chatter")
    if config:
        p.add_argument(
            "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. render.res=256"
        )


def build_parser() -> argparse.ArgumentParser:
    from gen3d import __version__

    parser = argparse.ArgumentParser(
        prog="gen3d", description="Generate 3D and 4D content from text prompts, offline."
    )
    parser.add_argument("--version", action="version", version=f"gen3d {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come after flags (`--out X a=1`), which argparse's positional matching
    # does not allow; collect the leftovers and accept them as overrides when they look like ones.
    args, extra = parser.parse_known_args(argv)
    if extra:
        bad = [e for e in extra if "=" not in e or e.startswith("-")]
        if bad or not hasattr(args, "overrides"):
            parser.error(f"unrecognized arguments: {' '.join(bad or extra)}")
        args.overrides = list(args.overrides or []) + extra
    handler: Callable[[argparse.Namespace], int | None] | None = getattr(args, "handler", None)
    if handler is None:
        # A group such as `gen3d data` without its subcommand: show that group's help.
        (getattr(args, "group_parser", None) or parser).print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except Gen3dError as e:
        print(f"gen3d: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gen3d: interrupted; finished outputs are kept, unfinished ones were not written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
