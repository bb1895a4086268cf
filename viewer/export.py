"""``gen3d view --export page.html PATH``: one self-contained HTML file to share.

The page holds everything the viewer needs: its CSS, its JavaScript modules and the vendored
libraries (as module sources), the result list, and each result's shown files (base64). A small
bootstrap script turns the modules into ``blob:`` URLs behind a generated import map and the
files into ``blob:`` URLs the viewer fetches as usual, so the page opens from ``file://`` without
a server. Module imports are rewritten to import-map keys because a ``blob:`` module cannot
resolve relative paths. Blob rather than ``data:`` URLs because Chromium caps URLs at 2 MB and
Spark alone is 2.7 MB. A Content-Security-Policy in the page forbids any network request.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from gen3d.viewer.results import DATA_PREFIX, scan
from gen3d.viewer.server import STATIC, mime_type, resolve_under

from gen3d.errors import DataError

WARN_MB = 50.0
ENTRY = "js/main.js"
SPARK = "vendor/spark/spark.module.min.js"  # 2.7 MB: embedded only when a result has splats
MODULE_KEY = "@gen3d/"  # import-map key prefix of every inlined module
TEXT_FILE_MAX = 256 * 1024  # small files (result.json, config.yaml) are embedded for download too

# from "x" | import("x") | import "x"  (also minified: from"x"). Specifiers that do not name a
# viewer file are left alone, so a match inside a string or comment changes nothing.
_SPECIFIER = re.compile(r"""(\bfrom\s*|\bimport\s*\(\s*|\bimport\s*)(["'])([^"'\n]+)\2""")

CSP = (
    "default-src 'none'; script-src 'unsafe-inline' blob: 'wasm-unsafe-eval'; worker-src blob:; "
    "connect-src blob: data:; img-src blob: data:; style-src 'unsafe-inline'; media-src blob:"
)

BOOTSTRAP = """
(() => {
  const read = (id) => JSON.parse(document.getElementById(id).textContent);
  const blob = (parts, type) => URL.createObjectURL(new Blob(parts, { type }));
  const modules = read("gen3d-modules");
  const data = read("gen3d-data");
  const imports = {};
  for (const [key, src] of Object.entries(modules.sources)) imports[key] = blob([src], "text/javascript");
  const assets = {};
  for (const [url, a] of Object.entries(data.assets)) {
    const bin = atob(a.b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    assets[url] = blob([bytes], a.mime);
  }
  window.__GEN3D_EMBED__ = { index: data.index, assets };
  const map = document.createElement("script");
  map.type = "importmap";
  map.textContent = JSON.stringify({ imports });
  document.head.append(map);
  const entry = document.createElement("script");
  entry.type = "module";
  entry.textContent = `import ${JSON.stringify(modules.entry)};`;
  document.head.append(entry);
})();
"""


@dataclass(frozen=True)
class ExportInfo:
    path: Path
    bytes: int
    results: int
    warnings: list[str] = field(default_factory=list)


def export_page(src: str | Path, out: str | Path, *, warn_mb: float = WARN_MB) -> ExportInfo:
    """Write a self-contained viewer page for the result(s) at ``src`` to ``out``."""
    from gen3d.utils.io import write_text

    src, out = Path(src), Path(out)
    found = scan(src)
    if not found.results:
        raise DataError(
            f"no results under {src}: a result folder holds result.json and any of "
            "splats.ply, mesh.glb, points.ply, views/ or frames/"
        )
    index = found.to_json()
    assets: dict[str, dict[str, str]] = {}
    for r in index["results"]:
        for url in _shown_urls(r):
            _embed(found.root, url, assets)
        for f in r["files"]:
            if f["bytes"] <= TEXT_FILE_MAX:
                _embed(found.root, f["url"], assets)
        r["files"] = [f for f in r["files"] if f["url"] in assets]
    has_splats = any(
        "splats" in r["assets"] or any("splats" in f["assets"] for f in (r["frames"] or {}).get("frames", []))
        for r in index["results"]
    )
    skip = frozenset() if has_splats else frozenset({SPARK})
    modules = {"entry": MODULE_KEY + ENTRY, "sources": bundle_modules(skip=skip)}
    title = index["results"][0]["title"] if len(index["results"]) == 1 else index["root"]
    page = _PAGE.format(
        csp=CSP,
        title=_html_escape(f"{title} · gen3d"),
        css=(STATIC / "viewer.css").read_text(encoding="utf-8"),
        modules=_script_json(modules),
        data=_script_json({"index": index, "assets": assets}),
        bootstrap=BOOTSTRAP,
    )
    write_text(out, page)
    size = out.stat().st_size
    warnings = []
    if size > warn_mb * 1e6:
        warnings.append(
            f"{out} is {size / 1e6:.0f} MB; browsers open pages above ~{warn_mb:.0f} MB slowly. "
            "Export fewer results (one folder) or smaller assets to share it."
        )
    return ExportInfo(out, size, len(index["results"]), warnings)


def _shown_urls(r: dict[str, Any]) -> Iterator[str]:
    """Every URL the page may load for result ``r``."""
    for a in r["assets"].values():
        yield a["url"]
    for f in (r["frames"] or {}).get("frames", []):
        for a in f["assets"].values():
            yield a["url"]
    if r["views"]:
        if r["views"]["sheet"]:
            yield r["views"]["sheet"]
        for im in r["views"]["images"]:
            yield im["url"]
    if r["thumbnail"]:
        yield r["thumbnail"]


def _embed(root: Path, url: str, assets: dict[str, dict[str, str]]) -> None:
    if url in assets:
        return
    path = resolve_under(root, unquote(url[len(DATA_PREFIX) :])) if url.startswith(DATA_PREFIX) else None
    if path is None:
        raise DataError(f"{url} is not a file under {root}")  # scan() only lists files that are
    assets[url] = {"mime": mime_type(path), "b64": base64.b64encode(path.read_bytes()).decode("ascii")}


def _import_map() -> dict[str, str]:
    """The static page's import map, as paths relative to static/."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    m = re.search(r'<script type="importmap">(.*?)</script>', html, re.DOTALL)
    imports = json.loads(m.group(1))["imports"]
    return {k: v.removeprefix("./static/") for k, v in imports.items()}


def _resolve(spec: str, module: str, imap: dict[str, str]) -> str | None:
    """The static/-relative file that ``spec`` imported from ``module`` names, or None."""
    if spec.startswith(("./", "../")):
        path = posixpath.normpath(posixpath.join(posixpath.dirname(module), spec))
    elif spec in imap:
        path = imap[spec]
    else:
        prefixes = [k for k in imap if k.endswith("/") and spec.startswith(k)]
        if not prefixes:
            return None
        k = max(prefixes, key=len)
        path = imap[k] + spec[len(k) :]
    if path.startswith("../") or not (STATIC / path).is_file():
        return None
    return path


def bundle_modules(entry: str = ENTRY, skip: frozenset[str] = frozenset()) -> dict[str, str]:
    """Every module reachable from ``entry``, keyed ``@gen3d/<path>``, imports rewritten to such keys.

    Modules in ``skip`` (static/-relative paths) are left out; imports of them are still rewritten,
    so only code that would load them fails (e.g. Spark, when no exported result has splats).
    """
    imap = _import_map()
    sources: dict[str, str] = {}
    todo = [entry]
    while todo:
        module = todo.pop()
        if MODULE_KEY + module in sources:
            continue

        def rewrite(m: re.Match, module: str = module) -> str:
            target = _resolve(m.group(3), module, imap)
            if target is None:
                return m.group(0)
            if target not in skip:
                todo.append(target)
            return f"{m.group(1)}{m.group(2)}{MODULE_KEY}{target}{m.group(2)}"

        text = (STATIC / module).read_text(encoding="utf-8")
        text = re.sub(r"^//# sourceMappingURL=.*$", "", text, flags=re.MULTILINE)  # no .map next to a blob
        sources[MODULE_KEY + module] = _SPECIFIER.sub(rewrite, text)
    return sources


def _script_json(obj: Any) -> str:
    """JSON safe inside <script>: '<' escaped so no '</script>' can end the element early."""
    return json.dumps(obj, separators=(",", ":")).replace("<", "\\u003c")


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>
{css}
</style>
</head>
<body>
<div id="app"></div>
<noscript>The gen3d viewer needs JavaScript.</noscript>
<script id="gen3d-modules" type="application/json">{modules}</script>
<script id="gen3d-data" type="application/json">{data}</script>
<script>{bootstrap}</script>
</body>
</html>
"""
