"""Find result folders under a path and describe each one for the viewer page (its "manifest").

A result folder is what ``pipelines/reconstruct.py`` (and ``gen3d generate``) write::

    OUT/result.json      kind, request (e.g. prompt), backend, seed, device, config, timings, metrics, ...
    OUT/config.yaml      the resolved config
    OUT/views/           images + transforms.json (nerfstudio layout, OpenGL camera-to-world)
    OUT/views.png        contact sheet;  OUT/turntable.gif  preview;  OUT/thumbnail.png  (optional)
    OUT/splats.ply       3DGS, INRIA layout (or splats.splat / splats.spz)
    OUT/mesh.glb         mesh with vertex colours
    OUT/points.ply       point cloud: x y z + red green blue (uchar)

Time sequences (4D results, fitting progress) add per-frame assets (the convention is ours,
documented in docs/viewer.md)::

    OUT/frames/index.json            optional: {"kind", "fps", "frames": [{"path", "time"|"step", "label"}]}
    OUT/frames/0000/splats.ply       any of the asset names above, per frame
    OUT/frames/0001/mesh.glb ...

Without index.json the numbered sub-folders of ``frames/`` are the frames, in numeric order, at
``DEFAULT_FPS``. Every path in a manifest is relative to the served root and never leaves it
(symlinks pointing outside are ignored), so the server and the exported page can trust them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

# File name -> (kind, format). The viewer shows the first kind present: splats, mesh, points.
ASSET_FILES: dict[str, tuple[str, str]] = {
    "splats.ply": ("splats", "ply"),
    "splats.splat": ("splats", "splat"),
    "splats.spz": ("splats", "spz"),
    "mesh.glb": ("mesh", "glb"),
    "points.ply": ("points", "ply"),
}
KINDS = ("splats", "mesh", "points")
THUMBNAILS = ("thumbnail.png", "views.png", "turntable.gif")
DEFAULT_FPS = 12.0
MAX_DEPTH = 4  # how deep below the root to look for result folders
MAX_VIEWS = 256  # views listed per result (a contact sheet covers the rest)
MAX_TEXT = 256 * 1024  # config.yaml larger than this is not inlined
SKIP_DIRS = {"views", "frames", "checkpoints", "node_modules", "__pycache__"}
DATA_PREFIX = "data/"  # URL prefix (relative to the page) under which the root is served


@dataclass
class Scan:
    """All results under one root, in the JSON form the page reads (``/api/results``)."""

    root: Path
    results: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"root": self.root.name or str(self.root), "results": self.results}


def inside(root: Path, path: Path) -> bool:
    """True if ``path`` (after resolving symlinks) is ``root`` or below it; ``root`` must be resolved."""
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # broken symlink loop, permission
        return False


def data_url(rel: str) -> str:
    """The page-relative URL of a file at ``rel`` (posix, relative to the root)."""
    return DATA_PREFIX + quote(rel)


def is_result_dir(d: Path) -> bool:
    if (d / "result.json").is_file() or any((d / n).is_file() for n in ASSET_FILES):
        return True
    return (d / "frames").is_dir() and bool(_frame_dirs(d / "frames"))


def scan(path: str | os.PathLike) -> Scan:
    """Describe ``path`` if it is a result folder, else every result folder below it (depth <= 4)."""
    root = Path(path).resolve()
    out = Scan(root)
    if not root.is_dir():
        return out
    if is_result_dir(root):
        out.results.append(describe(root, root))
        return out
    for dirpath, dirnames, _ in os.walk(root, followlinks=False):
        d = Path(dirpath)
        depth = len(d.relative_to(root).parts)
        dirnames[:] = sorted(n for n in dirnames if not n.startswith(".") and n not in SKIP_DIRS)
        if d != root and is_result_dir(d):
            out.results.append(describe(root, d))
            dirnames[:] = []  # a result's sub-folders are its own
        elif depth >= MAX_DEPTH:
            dirnames[:] = []
    out.results.sort(key=lambda r: r["id"])
    return out


def describe(root: Path, d: Path) -> dict[str, Any]:
    """The manifest of one result folder ``d`` below ``root`` (both resolved)."""
    rid = d.relative_to(root).as_posix()
    warnings: list[str] = []
    info: dict[str, Any] = {}
    error = None
    rj = d / "result.json"
    if rj.is_file() and inside(root, rj):
        try:
            info = json.loads(rj.read_text(encoding="utf-8"))
            if not isinstance(info, dict):
                raise TypeError("the top level is not an object")
        except (ValueError, TypeError, UnicodeDecodeError) as e:
            error = f"result.json could not be read ({e}); showing the files only"
            info = {}
    else:
        warnings.append("no result.json: the run may be unfinished")
    request = info.get("request") if isinstance(info.get("request"), dict) else {}
    meta = info.get("meta") if isinstance(info.get("meta"), dict) else {}
    title = request.get("prompt") or meta.get("caption") or (d.name if rid != "." else root.name)
    frames = _frames(root, d, warnings)
    views = _views(root, d, warnings)
    return {
        "id": rid,
        "name": d.name,
        "title": str(title),
        "finished": rj.is_file(),
        "error": error,
        "warnings": warnings,
        **{k: info.get(k) for k in ("kind", "backend", "seed", "device")},
        "request": request,
        "timings": _numbers(info.get("timings")),
        "metrics": _numbers(info.get("metrics")),
        "config": info.get("config") if isinstance(info.get("config"), dict) else None,
        "config_text": _text(root, d / "config.yaml"),
        "versions": info.get("versions") if isinstance(info.get("versions"), dict) else {},
        "meta": meta,
        "assets": _assets(root, d),
        "views": views,
        "frames": frames,
        "thumbnail": _thumbnail(root, d, views),
        "files": _files(root, d),
    }


def _rel(root: Path, p: Path) -> str:
    """``p``'s resolved path relative to ``root`` (no ``..``); call only after :func:`inside`."""
    return p.resolve().relative_to(root).as_posix()


def _asset(root: Path, p: Path) -> dict[str, Any] | None:
    if not p.is_file() or not inside(root, p):
        return None
    kind, fmt = ASSET_FILES[p.name]
    return {
        "kind": kind,
        "format": fmt,
        "file": p.name,
        "url": data_url(_rel(root, p)),
        "bytes": p.stat().st_size,
    }


def _assets(root: Path, d: Path) -> dict[str, dict[str, Any]]:
    """The first file of each kind in ``d`` (splats.ply before splats.splat before splats.spz)."""
    out: dict[str, dict[str, Any]] = {}
    for name, (kind, _) in ASSET_FILES.items():
        if kind not in out and (a := _asset(root, d / name)):
            out[kind] = a
    return out


def _numbers(d: Any) -> dict[str, float]:
    if not isinstance(d, dict):
        return {}
    return {str(k): v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _text(root: Path, p: Path) -> str | None:
    if not p.is_file() or not inside(root, p) or p.stat().st_size > MAX_TEXT:
        return None
    return p.read_text(encoding="utf-8", errors="replace")


def _thumbnail(root: Path, d: Path, views: dict[str, Any] | None) -> str | None:
    for name in THUMBNAILS:
        if (d / name).is_file() and inside(root, d / name):
            return data_url(_rel(root, d / name))
    if views and views["images"]:
        return views["images"][0]["url"]
    return None


def _files(root: Path, d: Path) -> list[dict[str, Any]]:
    """Top-level files of the result, for download links."""
    out = []
    for p in sorted(d.iterdir()):
        if p.is_file() and not p.name.startswith(".") and inside(root, p):
            out.append({"name": p.name, "url": data_url(_rel(root, p)), "bytes": p.stat().st_size})
    return out


def _views(root: Path, d: Path, warnings: list[str]) -> dict[str, Any] | None:
    """The generated/input views: images with their OpenGL camera-to-world, and the contact sheet."""
    sheet = d / "views.png"
    out: dict[str, Any] = {
        "sheet": data_url(_rel(root, sheet)) if sheet.is_file() and inside(root, sheet) else None,
        "images": [],
        "camera": None,
    }
    tf = d / "views" / "transforms.json"
    if tf.is_file() and inside(root, tf):
        try:
            t = json.loads(tf.read_text(encoding="utf-8"))
            frames = t.get("frames", [])
            out["camera"] = {
                k: t[k] for k in ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x") if k in t
            }
            for fr in frames[:MAX_VIEWS]:
                p = d / "views" / str(fr.get("file_path", ""))
                if fr.get("file_path") and p.is_file() and inside(root, p):
                    item: dict[str, Any] = {"url": data_url(_rel(root, p)), "name": p.name}
                    if _is_matrix(fr.get("transform_matrix")):
                        item["c2w"] = fr["transform_matrix"]
                    out["images"].append(item)
        except (ValueError, AttributeError, TypeError) as e:
            warnings.append(f"views/transforms.json could not be read ({e})")
    elif (d / "views").is_dir():
        imgs = sorted(p for p in (d / "views").iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        out["images"] = [
            {"url": data_url(_rel(root, p)), "name": p.name} for p in imgs[:MAX_VIEWS] if inside(root, p)
        ]
    return out if out["sheet"] or out["images"] else None


def _is_matrix(m: Any) -> bool:
    return isinstance(m, list) and len(m) >= 3 and all(isinstance(r, list) and len(r) == 4 for r in m)


def _frame_dirs(fdir: Path) -> list[Path]:
    return sorted((p for p in fdir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def _frames(root: Path, d: Path, warnings: list[str]) -> dict[str, Any] | None:
    """``frames/`` as a timeline: one entry per frame with its assets, time and label."""
    fdir = d / "frames"
    if not fdir.is_dir() or not inside(root, fdir):
        return None
    index: dict[str, Any] = {}
    ij = fdir / "index.json"
    if ij.is_file():
        try:
            index = json.loads(ij.read_text(encoding="utf-8"))
            if not isinstance(index, dict) or not isinstance(index.get("frames", []), list):
                raise TypeError('expected {"fps": ..., "frames": [...]}')
        except (ValueError, TypeError, UnicodeDecodeError) as e:
            warnings.append(f"frames/index.json could not be read ({e}); using the numbered folders")
            index = {}
    fps = index.get("fps", DEFAULT_FPS)
    fps = float(fps) if isinstance(fps, (int, float)) and fps > 0 else DEFAULT_FPS
    entries = index.get("frames") or [{"path": p.name} for p in _frame_dirs(fdir)]
    frames = []
    for i, e in enumerate(entries):
        e = e if isinstance(e, dict) else {"path": str(e)}
        name = str(e.get("path", f"{i:04d}"))
        sub = fdir / name
        if (
            "/" in name
            or "\\" in name
            or name in ("", ".", "..")
            or not sub.is_dir()
            or not inside(root, sub)
        ):
            warnings.append(f"frame {i}: folder frames/{e.get('path')} is missing")
            continue
        t = e.get("time", i / fps)
        label = e.get("label") or (f"step {e['step']}" if "step" in e else f"t = {float(t):.3g}")
        frames.append({"path": sub.name, "time": float(t), "label": str(label), "assets": _assets(root, sub)})
    if not frames:
        return None
    return {"kind": str(index.get("kind", "sequence")), "fps": fps, "frames": frames}
