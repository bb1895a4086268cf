"""Typed, frozen configs filled from YAML presets and ``key=value`` overrides.

Each configurable class has a frozen dataclass beside it; YAML files in ``configs/`` only fill those
dataclasses. Unknown or mistyped keys and values of the wrong type are errors that name the key and
the file (or the command-line override) they came from. ``dump_config`` writes the fully resolved
config, and loading that file with ``load_config`` gives back an equal object.

We write this small loader ourselves (rather than depend on OmegaConf/tyro) because we need exact,
file-naming error messages and strict typing of nested frozen dataclasses, and it is ~200 lines.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar, Union

import yaml

from gen3d.errors import ConfigError

T = TypeVar("T")

_PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"


def preset_dir() -> Path:
    """The folder holding the shipped YAML presets (``configs/`` in a checkout, ``gen3d/configs`` installed)."""
    if _PRESET_DIR.is_dir():
        return _PRESET_DIR
    try:
        from gen3d import configs as _pkg  # installed non-editable: configs/ is mapped to gen3d.configs

        return Path(_pkg.__file__).parent
    except ImportError:  # pragma: no cover
        return _PRESET_DIR


def resolve_config_path(path: str | Path) -> Path:
    """Accept a file path or the bare name of a preset (``data_render`` -> ``configs/data_render.yaml``)."""
    p = Path(path)
    if p.is_file():
        return p
    for cand in (preset_dir() / p, preset_dir() / f"{p}.yaml"):
        if cand.is_file():
            return cand
    presets = sorted(x.stem for x in preset_dir().glob("*.yaml"))
    raise ConfigError(f"config file not found: {path} (shipped presets: {', '.join(presets) or 'none'})")


# --------------------------------------------------------------------------------------------------
# Type checking / coercion of one value
# --------------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Return ``value`` converted to ``tp`` or raise a ConfigError naming ``key`` and ``source``."""

    def fail(extra: str = "") -> ConfigError:
        return ConfigError(
            f"{source}: key '{key}' expects {_type_name(tp)}, got {value!r} ({type(value).__name__}){extra}"
        )

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: key '{key}' must be one of {list(args)}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, source)
            except ConfigError as e:
                errors.append(e)
        raise fail()
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise fail(" (expected a mapping of its fields)")
        return _from_dict(tp, value, source, prefix=f"{key}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail()
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail()
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise fail()
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise fail(" (expected a list)")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise fail(f" (expected {len(args)} items)")
            items = [_coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args))]
        else:
            inner = args[0] if args else Any
            items = [_coerce(v, inner, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise fail()
        return dict(value)
    raise ConfigError(f"{source}: key '{key}' has an unsupported type {_type_name(tp)}")  # pragma: no cover


def _check_known(cls: type, fields: Mapping[str, Any], key: Any, source: str, prefix: str) -> None:
    """Raise a ConfigError naming an unknown key, its source, the closest valid key and all valid keys."""
    if key in fields:
        return
    near = difflib.get_close_matches(str(key), list(fields), n=1)
    hint = f" (did you mean '{prefix}{near[0]}'?)" if near else ""
    raise ConfigError(
        f"{source}: unknown key '{prefix}{key}' for {cls.__name__}{hint}; "
        f"valid keys: {', '.join(prefix + f for f in fields)}"
    )


def _from_dict(cls: type[T], data: Mapping[str, Any], source: str, prefix: str = "") -> T:
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        _check_known(cls, fields, key, source, prefix)
        kwargs[key] = _coerce(value, hints[key], prefix + key, source)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: invalid {cls.__name__}: {e}") from e


def from_dict(cls: type[T], data: Mapping[str, Any], source: str = "<dict>") -> T:
    """Build ``cls`` (a dataclass) from a nested mapping, strictly typed."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys to values, got {type(data).__name__}")
    return _from_dict(cls, data, source)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain nested dict of a config (tuples become lists, Paths strings), ready for YAML/JSON."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(cfg)


# --------------------------------------------------------------------------------------------------
# Overrides, files
# --------------------------------------------------------------------------------------------------


def parse_overrides(overrides: Sequence[str]) -> list[tuple[list[str], Any, str]]:
    """Parse ``a.b=value`` strings into (key path, YAML-parsed value, the original text)."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-").replace("-", "_")
        if not key:
            raise ConfigError(f"override '{item}' has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() != "" else ""
        except yaml.YAMLError:
            value = raw
        out.append((key.split("."), value, item))
    return out


def _set_path(d: dict, path: list[str], value: Any) -> None:
    for k in path[:-1]:
        nxt = d.get(k)
        if not isinstance(nxt, dict):
            nxt = {}
            d[k] = nxt
        d = nxt
    d[path[-1]] = value


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    base: T | None = None,
) -> T:
    """Load ``cls`` from defaults (or ``base``), then the YAML file ``path``, then ``key=value`` overrides.

    Every layer is type-checked on its own so an error names the file or the override it came from.
    """
    cfg = base if base is not None else cls()
    if path is not None:
        p = resolve_config_path(path)
        merged = _deep_merge(to_dict(cfg), read_yaml(p))
        _check_keys(cls, read_yaml(p), str(p))
        cfg = from_dict(cls, merged, str(p))
    for keypath, value, text in parse_overrides(overrides):
        src = f"command-line override '{text}'"
        partial: dict[str, Any] = {}
        _set_path(partial, keypath, value)
        _check_keys(cls, partial, src)
        cfg = from_dict(cls, _deep_merge(to_dict(cfg), partial), src)
    return cfg


def _check_keys(cls: type, data: Mapping[str, Any], source: str) -> None:
    """Validate only the keys (and types) present in ``data`` so errors point at their source."""
    _from_partial(cls, data, source, "")


def _from_partial(cls: type, data: Mapping[str, Any], source: str, prefix: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        _check_known(cls, fields, key, source, prefix)
        tp = hints[key]
        if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
            _from_partial(tp, value, source, f"{prefix}{key}.")
        else:
            _coerce(value, tp, prefix + key, source)


def _deep_merge(a: dict, b: Mapping) -> dict:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def dump_config(cfg: Any, path: str | Path) -> None:
    """Write the fully resolved config as YAML (atomically); ``load_config(type(cfg), path)`` reproduces it."""
    from gen3d.utils.io import write_text

    header = f"# gen3d resolved config: {type(cfg).__module__}.{type(cfg).__name__}\n"
    write_text(path, header + yaml.safe_dump(to_dict(cfg), sort_keys=False))
