"""Save and load backbones as a folder: ``config.json`` (the constructor's config) + ``model.safetensors``.

The constructor argument *is* the saved config (as in diffusers' ``ConfigMixin``), so loading is
``cls(config)`` followed by a strict ``load_state_dict``: no pickled code, no dotted class names; the
``kind`` written into config.json picks the class from a fixed registry (``gen3d.nets.NETS``).
Folders are written atomically: a crash leaves the old folder (or none), never half of a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from gen3d.config import from_dict, to_dict
from gen3d.errors import DataError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _write_weights(module: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path))


def _write_folder(folder: Path, jsons: Mapping[str, Any], modules: Mapping[str, nn.Module]) -> None:
    from gen3d.utils.io import write_json

    folder.mkdir(parents=True, exist_ok=True)
    for name, obj in jsons.items():
        write_json(folder / name, obj)
    for sub, module in modules.items():
        if isinstance(module, ConfiguredModule):
            module._write_to(folder / sub)
        else:
            raise TypeError(f"cannot save {type(module).__name__}: only gen3d.nets modules save themselves")


def save_module_dir(path: str | Path, jsons: Mapping[str, Any], modules: Mapping[str, nn.Module]) -> None:
    """Atomically write a folder holding JSON files and sub-folders of saved modules."""
    from gen3d.utils.io import atomic_dir

    with atomic_dir(path) as tmp:
        _write_folder(tmp, jsons, modules)


class ConfiguredModule(nn.Module):
    """Base of every backbone: ``self.config`` is a frozen dataclass of type ``config_class``."""

    config_class: ClassVar[type]
    kind: ClassVar[str]

    def _write_to(self, folder: Path) -> None:
        from gen3d.utils.io import write_json

        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / CONFIG_NAME, {"kind": self.kind, "config": to_dict(self.config)})
        _write_weights(self, folder / WEIGHTS_NAME)

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``path/config.json`` and ``path/model.safetensors`` (atomically)."""
        from gen3d.utils.io import atomic_dir

        with atomic_dir(path) as tmp:
            self._write_to(tmp)

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu") -> ConfiguredModule:
        """Rebuild from ``save_pretrained``'s folder (safetensors only; never unpickles anything)."""
        kind, cfg = read_net_config(path)
        if kind != cls.kind:
            raise DataError(f"{path} holds a '{kind}' network, not a '{cls.kind}'; load it with gen3d.nets.load_net")
        model = cls(from_dict(cls.config_class, cfg, str(Path(path) / CONFIG_NAME)))
        load_weights(model, Path(path) / WEIGHTS_NAME, map_location)
        return model


def read_net_config(path: str | Path) -> tuple[str, dict]:
    from gen3d.utils.io import read_json

    path = Path(path)
    if not (path / CONFIG_NAME).is_file():
        raise DataError(f"{path} is not a saved network folder (no {CONFIG_NAME}); save one with save_pretrained")
    data = read_json(path / CONFIG_NAME)
    if not isinstance(data, dict) or "kind" not in data or "config" not in data:
        raise DataError(f"{path / CONFIG_NAME} lacks 'kind' and 'config'; it was not written by gen3d")
    return data["kind"], data["config"]


def load_weights(model: nn.Module, path: Path, map_location: str | torch.device = "cpu") -> None:
    from safetensors.torch import load_file

    if not path.is_file():
        raise DataError(f"weights file not found: {path}")
    state = load_file(str(path), device="cpu")  # then moved with the model (safetensors rejects names like "cpu:0")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise DataError(f"{path} does not match the config next to it ({first} ...)") from None
    if missing or unexpected:
        raise DataError(
            f"{path} does not match the config next to it (missing: {missing[:5]}, unexpected: {unexpected[:5]})"
        )
    model.to(map_location)
