"""The viewer's static files: offline (no external URL in our files), vendored libraries present,
tracked by git, licensed, and at the versions VERSIONS.json and package.json record."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from gen3d.viewer.server import STATIC

ROOT = Path(__file__).resolve().parents[2]
OURS = [STATIC / "index.html", STATIC / "viewer.css", *sorted((STATIC / "js").glob("*.js"))]


def test_our_files_reference_nothing_outside():
    for f in OURS:
        text = f.read_text()
        assert not re.search(r"https?://|//cdn|unpkg|jsdelivr", text), f"{f.name} references an external URL"
        # Page-relative URLs only, so the viewer also works behind a path prefix.
        assert not re.search(r"""fetch\(\s*["'`]/""", text), f"{f.name} fetches an absolute path"


def test_import_map_targets_exist():
    html = (STATIC / "index.html").read_text()
    imports = json.loads(re.search(r'<script type="importmap">(.*?)</script>', html, re.DOTALL).group(1))[
        "imports"
    ]
    assert set(imports) == {"three", "three/addons/", "@sparkjsdev/spark"}
    for target in imports.values():
        assert target.startswith("./static/vendor/")
        assert (STATIC.parent / target.removeprefix("./")).exists(), target


def test_vendored_libraries_have_licences_and_pinned_versions():
    versions = json.loads((STATIC / "vendor" / "VERSIONS.json").read_text())
    pinned = json.loads((STATIC.parent / "package.json").read_text())["dependencies"]
    assert (
        {k: v["version"] for k, v in versions.items()}
        == pinned
        == {"three": "0.187.0", "@sparkjsdev/spark": "2.2.0"}
    )
    for lib in ("three", "spark"):
        lic = (STATIC / "vendor" / lib / "LICENSE").read_text()
        assert "MIT" in lic or "Permission is hereby granted" in lic
    size = sum(f.stat().st_size for f in (STATIC / "vendor").rglob("*") if f.is_file())
    assert size < 8e6, f"vendored files total {size / 1e6:.1f} MB"


def test_every_static_file_is_tracked_by_git():
    """A .gitignore pattern (e.g. build/) must not silently drop a vendored file from commits."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(f.relative_to(ROOT)) for f in STATIC.rglob("*") if f.is_file()]
    r = subprocess.run(
        ["git", "check-ignore", "--no-index", *files], check=False, cwd=ROOT, capture_output=True, text=True
    )
    assert r.stdout.strip() == "", f"ignored by git: {r.stdout}"
