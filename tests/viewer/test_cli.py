"""``gen3d view PATH``: prints its address first, serves, stops cleanly; user errors exit 2."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

from gen3d.cli import main


def test_view_serves_and_prints_its_address(results_root):
    p = subprocess.Popen(
        [sys.executable, "-m", "gen3d", "view", str(results_root), "--port", "0", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = p.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/"), url
        assert "8 result(s)" in p.stdout.readline()
        with urllib.request.urlopen(url + "api/results", timeout=10) as r:
            assert r.status == 200 and b"a red sphere" in r.read()
        with urllib.request.urlopen(url, timeout=10) as r:
            assert b'type="importmap"' in r.read()
    finally:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert "Traceback" not in err


def test_view_of_a_missing_folder_is_a_user_error(tmp_path, capsys):
    assert main(["view", str(tmp_path / "nope"), "--no-browser"]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_taken_port_is_a_user_error(results_root, capsys):
    from gen3d.viewer.server import ViewerServer

    with ViewerServer(results_root) as s:
        assert main(["view", str(results_root), "--port", str(s.port), "--no-browser"]) == 2
    assert "is in use" in capsys.readouterr().err
