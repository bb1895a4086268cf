"""Resumable-run checkpoints: tensors in safetensors, everything else in JSON, both written atomically.

A checkpoint is ``FOLDER/last.safetensors`` + ``FOLDER/last.json``. Adam moments are stored per
named parameter (``adam.NAME.exp_avg``, ``adam.NAME.exp_avg_sq``; step counts in the JSON under
``adam_steps``), so any fitting loop can save and restore its optimiser state the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import torch
from safetensors.torch import load_file, save_file

from gen3d.errors import DataError
from gen3d.utils.io import atomic_path, write_json

# (name, parameter, the Adam optimiser that holds its state)
AdamEntry = tuple[str, torch.Tensor, torch.optim.Optimizer]


def pack_adam(entries: Iterable[AdamEntry]) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Adam moments as named CPU tensors, and the step count of each parameter."""
    tensors, steps = {}, {}
    for name, p, opt in entries:
        st = opt.state.get(p)
        if st:
            tensors[f"adam.{name}.exp_avg"] = st["exp_avg"].detach().cpu().contiguous()
            tensors[f"adam.{name}.exp_avg_sq"] = st["exp_avg_sq"].detach().cpu().contiguous()
            steps[name] = float(st["step"])
    return tensors, steps


def unpack_adam(entries: Iterable[AdamEntry], tensors: dict[str, torch.Tensor], steps: dict[str, float]) -> None:
    """Put saved Adam moments back into each optimiser's state for its parameter."""
    for name, p, opt in entries:
        if f"adam.{name}.exp_avg" in tensors:
            fused = any(g.get("fused") for g in opt.param_groups)  # fused Adam keeps its step on the device
            opt.state[p] = {
                "step": torch.tensor(steps[name], dtype=torch.float32, device=p.device) if fused else torch.tensor(steps[name]),
                "exp_avg": tensors[f"adam.{name}.exp_avg"].to(p.device),
                "exp_avg_sq": tensors[f"adam.{name}.exp_avg_sq"].to(p.device),
            }


def write_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "last.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_json(folder / "last.json", meta)


def read_checkpoint(folder: Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict] | None:
    """The last checkpoint in ``folder`` (None if there is none); a corrupt one is a DataError naming it."""
    folder = Path(folder)
    st_path, js_path = folder / "last.safetensors", folder / "last.json"
    if not (st_path.is_file() and js_path.is_file()):
        return None
    try:
        return load_file(str(st_path), device=str(device)), json.loads(js_path.read_text())
    except Exception as e:  # noqa: BLE001 - a corrupt checkpoint must name itself
        raise DataError(f"checkpoint {st_path} is corrupt ({e}); delete {folder} to start over") from e
