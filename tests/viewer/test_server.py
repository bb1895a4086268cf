"""The viewer's server without a browser: routes, MIME types, and every way out of the root refused."""

from __future__ import annotations

import http.client
import json
import os
import socket

import pytest
from gen3d.viewer.server import DEFAULT_HOST, ViewerServer, resolve_under

SECRET = "top secret: outside the served folder"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """<tmp>/secret.txt outside the root, and links from inside the root pointing out (and in)."""
    from viewer_fixtures import make_results

    base = tmp_path_factory.mktemp("srv")
    (base / "secret.txt").write_text(SECRET)
    (base / "outside").mkdir()
    (base / "outside" / "secret.txt").write_text(SECRET)
    root = base / "root"
    make_results(root)
    os.symlink(base / "secret.txt", root / "red_sphere" / "leak.txt")
    os.symlink(base / "outside", root / "link_out")
    os.symlink(root / "green_cube" / "mesh.glb", root / "red_sphere" / "inside_link.glb")
    return root


@pytest.fixture(scope="module")
def srv(tree):
    with ViewerServer(tree) as s:
        yield s


def get(srv, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    """A raw request: the path goes on the wire exactly as given (no client-side normalisation)."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    c.putrequest(method, path, skip_host=headers is not None and "Host" in headers)
    for k, v in (headers or {}).items():
        c.putheader(k, v)
    c.endheaders()
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


@pytest.mark.parametrize(
    "path, ctype",
    [
        ("/", "text/html"),
        ("/static/js/main.js", "text/javascript"),
        ("/static/vendor/three/three.module.js", "text/javascript"),
        ("/static/vendor/spark/spark.module.min.js", "text/javascript"),
        ("/static/viewer.css", "text/css"),
        ("/api/results", "application/json"),
        ("/data/red_sphere/splats.ply", "application/octet-stream"),
        ("/data/green_cube/mesh.glb", "model/gltf-binary"),
        ("/data/all_kinds/views.png", "image/png"),
        ("/data/all_kinds/result.json", "application/json"),
        ("/data/all_kinds/views/transforms.json", "application/json"),
        ("/data/red_sphere/inside_link.glb", "model/gltf-binary"),  # a link that stays inside is fine
    ],
)
def test_serves_pages_and_files_with_their_types(srv, tree, path, ctype):
    status, headers, body = get(srv, path)
    assert status == 200, path
    assert headers["content-type"].startswith(ctype)
    assert int(headers["content-length"]) == len(body) > 0
    assert headers["x-content-type-options"] == "nosniff"
    if path.startswith("/data/") and "link" not in path:
        assert body == (tree / path[len("/data/") :]).read_bytes()


def test_mime_types_for_the_formats_the_viewer_loads():
    from pathlib import Path

    from gen3d.viewer.server import mime_type

    assert mime_type(Path("a.js")).startswith("text/javascript")
    assert mime_type(Path("a.wasm")) == "application/wasm"
    assert mime_type(Path("a.gif")) == "image/gif"
    assert mime_type(Path("a.splat")) == mime_type(Path("a.spz")) == "application/octet-stream"
    assert mime_type(Path("a.GLB")) == "model/gltf-binary"


def test_result_list_describes_each_result(srv):
    status, _, body = get(srv, "/api/results")
    assert status == 200
    data = json.loads(body)
    ids = [r["id"] for r in data["results"]]
    assert ids == [
        "all_kinds",
        "blue_points",
        "broken",
        "green_cube",
        "green_cube_no_material",
        "red_sphere",
        "red_splat_file",
        "sequence",
    ]
    r = next(r for r in data["results"] if r["id"] == "red_sphere")
    assert r["title"] == "a red sphere" and r["seed"] == 1
    assert r["assets"]["splats"]["url"] == "data/red_sphere/splats.ply"
    # The link pointing outside the root is not offered as a file.
    assert "leak.txt" not in [f["name"] for f in r["files"]]


@pytest.mark.parametrize(
    "path",
    [
        "/data/../secret.txt",
        "/data/%2e%2e/secret.txt",
        "/data/%2E%2E%2Fsecret.txt",
        "/data/..%2fsecret.txt",
        "/data/red_sphere/../../secret.txt",
        "/data/red_sphere/%2e%2e/%2e%2e/secret.txt",
        "/data/./red_sphere/splats.ply",
        "/data//etc/passwd",
        "/data/%2fetc%2fpasswd",
        "/data/red_sphere/..%5c..%5csecret.txt",
        "/data/red_sphere\\..\\..\\secret.txt",
        "/data/red_sphere/leak.txt",  # symlink to a file outside
        "/data/link_out/secret.txt",  # symlink to a folder outside
        "/data/red_sphere/splats.ply%00.png",
        "/data/red_sphere",  # a folder, not a file
        "/data/",
        "/static/../server.py",
        "/static/%2e%2e/server.py",
        "/static/../../viewer/server.py",
        "/static/..%2fserver.py",
        "/../secret.txt",
        "/etc/passwd",
        "/data/nonexistent.ply",
    ],
)
def test_paths_outside_the_roots_are_refused(srv, path):
    status, _, body = get(srv, path)
    assert status == 404, path
    assert SECRET.encode() not in body and b"import" not in body


def test_resolve_under_refuses_escapes_and_accepts_inside(tree):
    root = tree.resolve()
    assert resolve_under(root, "red_sphere/splats.ply") == root / "red_sphere" / "splats.ply"
    for rel in [
        "",
        "/etc/passwd",
        "../secret.txt",
        "a/../../secret.txt",
        "red_sphere/leak.txt",
        "link_out/secret.txt",
        "red_sphere\\..\\x",
        "x\x00y",
        "red_sphere",
    ]:
        assert resolve_under(root, rel) is None, rel


def test_binds_127_0_0_1_by_default(tree):
    assert DEFAULT_HOST == "127.0.0.1"
    with ViewerServer(tree) as s:
        assert s.httpd.socket.getsockname()[0] == "127.0.0.1"
        assert s.url.startswith("http://127.0.0.1:") and s.port > 0  # port 0 picked a free port
        # Not reachable on the machine's other addresses.
        other = _non_loopback_address()
        if other:
            with pytest.raises(OSError):
                socket.create_connection((other, s.port), timeout=2).close()


def test_cli_defaults_to_127_0_0_1():
    from gen3d.cli import build_parser

    args = build_parser().parse_args(["view", "somewhere"])
    assert args.host == "127.0.0.1" and args.port is None and not args.no_browser


def _non_loopback_address() -> str | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outgoing interface
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") else addr


def test_foreign_host_header_is_refused(srv):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not read results."""
    status, _, _ = get(srv, "/api/results", headers={"Host": f"evil.example:{srv.port}"})
    assert status == 403
    for host in (f"127.0.0.1:{srv.port}", f"localhost:{srv.port}"):
        assert get(srv, "/api/results", headers={"Host": host})[0] == 200


def test_head_and_unsupported_methods(srv):
    status, headers, body = get(srv, "/data/red_sphere/splats.ply", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    assert get(srv, "/data/red_sphere/splats.ply", method="POST")[0] == 501
    assert get(srv, "/data/red_sphere/splats.ply", method="PUT")[0] == 501


def test_results_appear_without_restarting(srv, tree):
    from viewer_fixtures import BLUE, sphere_points, write_points_ply

    d = tree / "late_arrival"
    write_points_ply(d / "points.ply", sphere_points(10), BLUE)
    try:
        ids = [r["id"] for r in json.loads(get(srv, "/api/results")[2])["results"]]
        assert "late_arrival" in ids
    finally:
        import shutil

        shutil.rmtree(d)
