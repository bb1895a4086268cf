"""``gen3d view --export``: one self-contained page (its opening in Chromium is in test_browser.py)."""

from __future__ import annotations

import base64
import json
import re

import pytest
from gen3d.viewer.export import bundle_modules, export_page

from gen3d.cli import main


def _embedded(html: str, element_id: str) -> dict:
    m = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.DOTALL)
    return json.loads(m.group(1))


def test_page_embeds_every_file_it_shows_and_no_server_path(results_root, tmp_path):
    info = export_page(results_root, tmp_path / "all.html")
    html = (tmp_path / "all.html").read_text()
    assert info.results == 8 and info.bytes == len(html.encode()) and info.warnings == []
    data = _embedded(html, "gen3d-data")
    urls = set()
    for r in data["index"]["results"]:
        urls |= {a["url"] for a in r["assets"].values()}
        urls |= {a["url"] for f in (r["frames"] or {"frames": []})["frames"] for a in f["assets"].values()}
        urls |= {f["url"] for f in r["files"]}
    assert urls <= set(data["assets"]), urls - set(data["assets"])
    splats = data["assets"]["data/red_sphere/splats.ply"]
    assert base64.b64decode(splats["b64"]) == (results_root / "red_sphere" / "splats.ply").read_bytes()
    assert data["assets"]["data/green_cube/mesh.glb"]["mime"] == "model/gltf-binary"
    # Nothing points at a server or the internet (the vendored libraries mention URLs only in
    # comments); the page's CSP forbids any request anyway.
    ours = [
        src
        for key, src in _embedded(html, "gen3d-modules")["sources"].items()
        if key.startswith("@gen3d/js/")
    ]
    assert len(ours) >= 5 and not any(re.search(r"https?://", src) for src in ours)
    assert not re.search(r"https?://", json.dumps(data["index"])) and "127.0.0.1" not in html
    assert "connect-src blob: data:" in html and "default-src 'none'" in html


def test_module_imports_are_rewritten_to_embedded_keys():
    sources = bundle_modules()
    assert set(sources) >= {
        "@gen3d/js/main.js",
        "@gen3d/js/scene.js",
        "@gen3d/vendor/three/three.module.js",
        "@gen3d/vendor/three/three.core.js",
        "@gen3d/vendor/three/addons/loaders/GLTFLoader.js",
        "@gen3d/vendor/three/addons/utils/BufferGeometryUtils.js",
        "@gen3d/vendor/spark/spark.module.min.js",
        "@gen3d/vendor/three/addons/postprocessing/Pass.js",
    }
    spec = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(\s*|^import\s*)["']([^"']+)["']""", re.MULTILINE)
    for key, src in sources.items():
        for target in spec.findall(src):
            if target.startswith(("./", "../", "three", "@sparkjsdev")):
                pytest.fail(f"{key} still imports {target!r}, which a blob: module cannot resolve")
            if target.startswith("@gen3d/"):
                assert target in sources, f"{key} imports {target}, which is not embedded"
    assert 'import("@gen3d/vendor/spark/spark.module.min.js")' in sources["@gen3d/js/scene.js"]


def test_spark_is_embedded_only_when_a_result_has_splats(results_root, tmp_path):
    export_page(results_root / "green_cube", tmp_path / "mesh.html")
    export_page(results_root / "red_sphere", tmp_path / "splats.html")
    key = "@gen3d/vendor/spark/spark.module.min.js"
    assert key not in _embedded((tmp_path / "mesh.html").read_text(), "gen3d-modules")["sources"]
    assert key in _embedded((tmp_path / "splats.html").read_text(), "gen3d-modules")["sources"]
    assert (tmp_path / "mesh.html").stat().st_size < 3e6


def test_script_end_tags_in_data_cannot_break_the_page(tmp_path):
    from viewer_fixtures import RED, sphere_points, write_points_ply, write_result_json

    d = tmp_path / "r"
    write_result_json(d, "</script><script>alert(1)</script>")
    write_points_ply(d / "points.ply", sphere_points(5), RED)
    export_page(d, tmp_path / "p.html")
    html = (tmp_path / "p.html").read_text()
    assert html.count("</script>") == 3  # the two JSON blocks and the bootstrap
    assert (
        _embedded(html, "gen3d-data")["index"]["results"][0]["title"] == "</script><script>alert(1)</script>"
    )


def test_large_pages_warn(results_root, tmp_path):
    info = export_page(results_root / "red_sphere", tmp_path / "p.html", warn_mb=0.001)
    assert info.warnings and "MB" in info.warnings[0]


def test_cli_export(results_root, tmp_path, capsys):
    out = tmp_path / "share.html"
    assert main(["view", "--export", str(out), str(results_root / "green_cube")]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    assert main(["view", "--export", str(out), str(tmp_path / "empty_missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["view", "--export", str(out), str(tmp_path / "empty")]) == 2
    assert "no results under" in capsys.readouterr().err
