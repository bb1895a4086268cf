"""``gen3d view``: browse results in a web page, or export one self-contained page to share."""

from __future__ import annotations

import argparse
import sys

from gen3d.cli import add_common_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "view",
        help="browse results (splats, meshes, point clouds, views, time sequences) in a web page",
        description="Serve a web page for PATH (one result folder, or a folder of many) and print its "
        "address. The page works offline; the server binds 127.0.0.1 and serves only PATH and the "
        "viewer's own files. With --export, write one self-contained HTML file instead.",
    )
    add_common_flags(p, config=False, out=False)
    p.add_argument("path", metavar="PATH", help="a result folder or a folder of result folders")
    p.add_argument(
        "--port", type=int, default=None, help="port (default 8765, or a free one if taken; 0: any free port)"
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument(
        "--export", metavar="PAGE.html", help="write a self-contained page for PATH instead of serving"
    )
    p.set_defaults(handler=_view)


def _view(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gen3d.errors import DataError

    path = Path(args.path)
    if not path.is_dir():
        raise DataError(
            f"{path} is not a folder: give a result folder (with result.json) or a folder of them"
        )
    if args.export:
        return _export(path, Path(args.export), args.quiet)
    return _serve(path, args)


def _export(path, page, quiet: bool) -> int:
    from gen3d.viewer.export import export_page

    info = export_page(path, page)
    if not quiet:
        print(
            f"wrote {info.path} ({info.results} result(s), {info.bytes / 1e6:.1f} MB); open it in a browser"
        )
    for w in info.warnings:
        print(f"gen3d: warning: {w}", file=sys.stderr)
    return 0


def _serve(path, args: argparse.Namespace) -> int:
    import signal

    # Ctrl-C stops the server even when gen3d was started from a background shell job, which
    # starts with SIGINT ignored (and Python then keeps ignoring it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import errno
    import webbrowser

    from gen3d.errors import Gen3dError
    from gen3d.viewer.results import scan
    from gen3d.viewer.server import DEFAULT_PORT, ViewerServer

    n = len(scan(path).results)
    if n == 0 and not args.quiet:
        print(
            f"gen3d: warning: no results found under {path} (a result folder holds result.json, "
            "splats.ply, mesh.glb, points.ply or frames/); serving it anyway",
            file=sys.stderr,
        )
    port = DEFAULT_PORT if args.port is None else args.port
    try:
        srv = ViewerServer(path, host=args.host, port=port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE and args.port is None:
            srv = ViewerServer(path, host=args.host, port=0)  # the default port is taken: any free one
        elif e.errno == errno.EADDRINUSE:
            raise Gen3dError(f"port {port} is in use: pick another with --port, or --port 0 for any free one")
        else:
            raise Gen3dError(f"cannot listen on {args.host}:{port} ({e.strerror}); check --host/--port")
    if srv.host not in ("127.0.0.1", "::1"):
        print(
            f"gen3d: warning: serving on {args.host}: other machines on the network can read {path}",
            file=sys.stderr,
        )
    # The address comes first and alone on its line, so scripts can read it.
    print(srv.url, flush=True)
    if not args.quiet:
        print(f"serving {n} result(s) from {path.resolve()}; Ctrl-C stops", flush=True)
    if not args.no_browser:
        webbrowser.open(srv.url)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0
