"""The viewer's HTTP server: the page, its static files, a JSON list of results, and their files.

Standard library only (``http.server``): the viewer needs GET/HEAD on local files and nothing else.

Routes (all relative to the page, so the page also works behind a path prefix)::

    /                   static/index.html
    /static/<path>      the viewer's own files (JS, CSS, vendored three.js and Spark)
    /api/results        JSON: every result under the served folder (see viewer/results.py)
    /data/<path>        a file inside the served folder

Safety: binds 127.0.0.1 unless told otherwise; a path is served only if, after URL-decoding and
resolving symlinks, it is a file inside its allowed root (``Path.resolve`` + ``is_relative_to``),
so ``..``, absolute paths, encoded slashes and symlinks pointing outside are all refused (404).
While bound to a loopback address, requests whose Host header names another host are refused
(403), which stops DNS-rebinding pages from reading results through the browser.
"""

from __future__ import annotations

import json
import posixpath
import shutil
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gen3d.viewer.results import scan

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

# Explicit types: mimetypes' answers depend on the machine (/etc/mime.types), and module scripts
# must be served as JavaScript or the browser refuses them.
MIME = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".ply": "application/octet-stream",
    ".splat": "application/octet-stream",
    ".spz": "application/octet-stream",
    ".obj": "text/plain; charset=utf-8",
    ".yaml": "text/plain; charset=utf-8",
    ".yml": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".safetensors": "application/octet-stream",
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def mime_type(path: Path) -> str:
    return MIME.get(path.suffix.lower(), "application/octet-stream")


def resolve_under(base: Path, rel: str) -> Path | None:
    """The file that URL path ``rel`` (already percent-decoded) names inside ``base``, or None.

    ``base`` must be resolved. Refuses empty, absolute, backslash, NUL and ``..`` paths outright,
    then resolves symlinks and refuses anything that lands outside ``base`` or is not a file.
    """
    if not rel or "\x00" in rel or "\\" in rel or rel.startswith("/"):
        return None
    parts = rel.split("/")
    if any(p in ("..", ".") for p in parts) or posixpath.isabs(rel):
        return None
    try:
        p = (base / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return p if p.is_relative_to(base) and p.is_file() else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "unexpected Host header")
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            return self._file(STATIC / "index.html", head)
        if path == "/api/results":
            body = json.dumps(scan(self.server.root).to_json()).encode()
            return self._bytes(body, "application/json", head)
        for prefix, base in (("/static/", STATIC), ("/data/", self.server.root)):
            if path.startswith(prefix):
                f = resolve_under(base, unquote(path[len(prefix) :]))
                if f is None:
                    return self._error(HTTPStatus.NOT_FOUND, "not found")
                return self._file(f, head, cache=prefix == "/static/")
        return self._error(HTTPStatus.NOT_FOUND, "not found")

    def _host_ok(self) -> bool:
        if self.server.server_address[0] not in ("127.0.0.1", "::1"):
            return True
        host = (self.headers.get("Host") or "").strip()
        if host.startswith("["):
            name = host[1:].split("]")[0]
        else:
            name = host.rsplit(":", 1)[0] if ":" in host else host
        return name in LOOPBACK

    def _headers(self, status: HTTPStatus, ctype: str, length: int, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.end_headers()

    def _bytes(self, body: bytes, ctype: str, head: bool) -> None:
        self._headers(HTTPStatus.OK, ctype, len(body))
        if not head:
            self.wfile.write(body)

    def _file(self, f: Path, head: bool, cache: bool = False) -> None:
        try:
            fh = f.open("rb")
        except OSError:
            return self._error(HTTPStatus.NOT_FOUND, "not found")
        with fh:
            self._headers(HTTPStatus.OK, mime_type(f), f.stat().st_size, cache)
            if not head:
                shutil.copyfileobj(fh, self.wfile, 1 << 20)

    def _error(self, status: HTTPStatus, msg: str) -> None:
        body = f"{status.value} {msg}\n".encode()
        self._headers(status, "text/plain; charset=utf-8", len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    root: Path
    verbose: bool

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class ViewerServer:
    """Serve the viewer for the results under ``root``; ``port=0`` picks a free port.

    >>> srv = ViewerServer("out/")          # doctest: +SKIP
    >>> srv.start(); print(srv.url); ...; srv.stop()
    """

    def __init__(self, root: str | Path, host: str = DEFAULT_HOST, port: int = 0, verbose: bool = False):
        self.root = Path(root).resolve()
        self.httpd = (_Server6 if ":" in host else _Server)((host, port), _Handler)
        self.httpd.root = self.root
        self.httpd.verbose = verbose
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self.httpd.server_address[0]

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        """The page's address; 127.0.0.1 when bound to all interfaces (the address that works here)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> ViewerServer:
        """Serve from a background thread (tests, notebooks)."""
        self._thread = threading.Thread(target=self.serve_forever, name="gen3d-viewer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> ViewerServer:  # noqa: PYI034 (start() returns self)
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
