from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from gen3d.config import ConfigError, dump_config, load_config, to_dict


@dataclass(frozen=True)
class Inner:
    res: int = 64
    scale: float = 1.0
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    steps: int = 10
    flag: bool = False
    sizes: tuple[int, ...] = (1, 2)
    maybe: float | None = None
    inner: Inner = field(default_factory=Inner)


def test_defaults_file_and_overrides_layer(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 20\ninner:\n  res: 128\n")
    cfg = load_config(Outer, f, ["inner.scale=2", "flag=true", "sizes=[3,4,5]", "maybe=0.5"])
    assert cfg == Outer(steps=20, flag=True, sizes=(3, 4, 5), maybe=0.5, inner=Inner(res=128, scale=2.0))
    assert isinstance(cfg.inner.scale, float)


def test_unknown_key_names_key_and_file_and_suggests(tmp_path: Path):
    f = tmp_path / "bad.yaml"
    f.write_text("stepz: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(Outer, f)
    msg = str(e.value)
    assert "stepz" in msg and str(f) in msg and "did you mean 'steps'" in msg


def test_unknown_nested_key_and_override_source():
    with pytest.raises(ConfigError) as e:
        load_config(Outer, None, ["inner.rez=3"])
    assert "inner.rez" in str(e.value) and "command-line override 'inner.rez=3'" in str(e.value)


@pytest.mark.parametrize(
    "override,key",
    [("steps=abc", "steps"), ("flag=3", "flag"), ("inner.mode=c", "inner.mode"), ("steps=1.5", "steps"),
     ("sizes=[1,x]", "sizes[1]")],
)
def test_wrong_types_are_errors_naming_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_config(Outer, None, [override])
    assert f"'{key}'" in str(e.value)


def test_wrong_type_in_file_names_file(tmp_path: Path):
    f = tmp_path / "t.yaml"
    f.write_text("inner:\n  res: high\n")
    with pytest.raises(ConfigError) as e:
        load_config(Outer, f)
    assert str(f) in str(e.value) and "inner.res" in str(e.value)


def test_dump_then_load_reproduces(tmp_path: Path):
    cfg = load_config(Outer, None, ["steps=7", "inner.mode=b", "sizes=[9]", "name=hello world"])
    dump_config(cfg, tmp_path / "config.yaml")
    assert load_config(Outer, tmp_path / "config.yaml") == cfg
    assert to_dict(cfg)["inner"]["mode"] == "b"


def test_missing_and_corrupt_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Outer, bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Outer, bad)


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(Outer, None, ["steps"])


def test_shipped_presets_load():
    from gen3d.config import preset_dir
    from gen3d.data.dataset import DataRenderConfig

    presets = {p.stem: p for p in preset_dir().glob("data_*.yaml")}
    assert presets, "expected data_* presets in configs/"
    for p in presets.values():
        load_config(DataRenderConfig, p)
    # A preset can be named without its path or suffix.
    assert load_config(DataRenderConfig, "data_render") == load_config(DataRenderConfig, presets["data_render"])
