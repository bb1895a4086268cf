"""The package installs under one import name and its CLI answers --help everywhere."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gen3d.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = cfg["package-dir"]
    found = set()
    for pkg, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            name = ".".join([pkg, *rel.parts]) if rel.parts else pkg
            # A sub-folder that is itself mapped elsewhere is counted under its own mapping.
            found.add(name)
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert all(p == "gen3d" or p.startswith("gen3d.") for p in listed)


def test_no_generic_top_level_modules_installed():
    code = "import importlib.util as u; print(u.find_spec('pipelines'), u.find_spec('viewer'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.strip() == "None None"
    import gen3d.pipelines
    import gen3d.viewer

    assert Path(gen3d.pipelines.__file__).parent.name == "pipelines"
    assert Path(gen3d.viewer.__file__).parent.name == "viewer"


def _subcommand_paths(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _subcommand_paths(sub, (*prefix, name))


def test_help_on_every_subcommand(capsys):
    paths = list(_subcommand_paths(build_parser()))
    assert ("data", "render") in paths and ("data", "catalogue") in paths
    for path in [(), *paths]:
        with pytest.raises(SystemExit) as e:
            main([*path, "--help"])
        assert e.value.code == 0
        assert "usage: gen3d" in capsys.readouterr().out


def test_group_without_subcommand_prints_its_help(capsys):
    assert main(["data"]) == 2
    assert "render" in capsys.readouterr().out


def test_console_script_starts_fast_and_lazily():
    """`gen3d --help` must not import torch/open3d (start-up time is a user-facing cost)."""
    code = (
        "import sys; from gen3d.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'open3d', 'trimesh', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_user_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["data", "render", "--out", str(tmp_path / "x"), "--n", "1", "nosuchkey=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'nosuchkey'" in err and "Traceback" not in err
    assert main(["data", "render", "--out", str(tmp_path / "x"), "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_catalogue_lists_the_world(capsys):
    import json

    assert main(["data", "catalogue", "--json"]) == 0
    cat = json.loads(capsys.readouterr().out)
    assert len(cat["classes"]) >= 24 and len(cat["colors"]) >= 12 and len(cat["motions"]) >= 8
    assert main(["data", "catalogue"]) == 0
    text = capsys.readouterr().out
    assert "held out" in text and "crimson" in text
