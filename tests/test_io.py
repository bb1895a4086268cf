from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gen3d.errors import DataError
from gen3d.utils.io import atomic_dir, atomic_path, read_json, write_json, write_text


def test_atomic_path_leaves_old_file_on_error(tmp_path: Path):
    p = tmp_path / "a.txt"
    write_text(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_files_and_dirs_get_normal_permissions(tmp_path: Path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "inner").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_atomic_dir_replaces_and_cleans_up(tmp_path: Path):
    target = tmp_path / "out"
    with atomic_dir(target) as d:
        (d / "a").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target) as d:
            (d / "b").write_text("2")
            raise KeyboardInterrupt
    assert sorted(x.name for x in target.iterdir()) == ["a"]
    with atomic_dir(target) as d:
        (d / "c").write_text("3")
    assert sorted(x.name for x in target.iterdir()) == ["c"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out"]


def test_read_json_errors_name_the_file(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        read_json(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(DataError, match="bad.json is not valid JSON"):
        read_json(bad)
    write_json(tmp_path / "ok.json", {"a": [1, 2]})
    assert read_json(tmp_path / "ok.json") == {"a": [1, 2]}
