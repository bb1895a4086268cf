"""What every gen3d trainer shares: the device / accelerate setup, resumable state, the loss log.

Trainers run unchanged as one process (``gen3d train ...``, CPU or CUDA) or as several under
``accelerate launch`` (DDP over gloo on CPUs, NCCL on GPUs, one or several machines): the
``Accelerator`` wraps models, optimisers and gradient averaging, and only the main process writes
files. Batches are drawn from a generator seeded with (seed, step, process), so a resumed run draws
the same batches it would have drawn without the interruption, and each process draws its own.

Train state = ``CKPT/last.safetensors`` (every module's weights and every optimiser's tensors) +
``CKPT/last.json`` (step, optimiser scalars and param groups, the loss log); both atomic, loaded
with safetensors and JSON only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gen3d.errors import DataError, DeviceError
from gen3d.utils.checkpoint import read_checkpoint, write_checkpoint


def resolve_device(device: str) -> str:
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU is a clear DeviceError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but torch sees no CUDA GPU on this machine; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise DeviceError(f"unknown device {device!r}; use cpu, cuda or auto")
    return device


def make_accelerator(device: str):
    """An ``accelerate.Accelerator`` on ``device`` (multi-process when started by ``accelerate launch``)."""
    from accelerate import Accelerator

    dev = resolve_device(device)
    return Accelerator(cpu=(dev == "cpu"))


def batch_generator(seed: int, step: int, process: int = 0) -> torch.Generator:
    """The CPU generator of one step of one process: reproducible and resume-safe."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step) * 7919 + int(process) * 104_729 + 17)


def warmup_cosine(step: int, warmup: int, total: int, floor: float = 0.05) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to ``floor`` (Loshchilov & Hutter 2017)."""
    if step < warmup:
        return (step + 1) / max(warmup, 1)
    frac = min((step - warmup) / max(total - warmup, 1), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac))


def _unwrap(m: nn.Module) -> nn.Module:
    return getattr(m, "module", m)


def save_train_state(folder: str | Path, modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                     meta: dict[str, Any]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    opt_meta: dict[str, Any] = {}
    for name, m in modules.items():
        for k, v in _unwrap(m).state_dict().items():
            tensors[f"model.{name}.{k}"] = v.detach().cpu().contiguous()
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, st in sd["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v) and v.ndim > 0:
                    tensors[f"opt.{name}.{pid}.{k}"] = v.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(pid), {})[k] = float(v)
        opt_meta[name] = {"param_groups": sd["param_groups"], "scalars": scalars}
    write_checkpoint(Path(folder), tensors, {**meta, "optimizers": opt_meta})


def load_train_state(folder: str | Path, modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                     device: str | torch.device = "cpu") -> dict[str, Any] | None:
    """Restore modules and optimisers from ``folder``; returns the saved meta (None: nothing to resume)."""
    got = read_checkpoint(Path(folder))
    if got is None:
        return None
    tensors, meta = got
    for name, m in modules.items():
        prefix = f"model.{name}."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            _unwrap(m).load_state_dict(state)
        except RuntimeError as e:
            raise DataError(f"checkpoint {folder} does not match this model config ({str(e).splitlines()[0]}); "
                            "resume with the config it was trained with, or delete the checkpoint") from None
    for name, opt in optimizers.items():
        om = meta["optimizers"][name]
        state: dict[int, dict[str, Any]] = {}
        prefix = f"opt.{name}."
        for k, v in tensors.items():
            if k.startswith(prefix):
                pid, key = k[len(prefix):].split(".", 1)
                state.setdefault(int(pid), {})[key] = v.to(device)
        for pid, sc in om["scalars"].items():
            for key, v in sc.items():
                state.setdefault(int(pid), {})[key] = torch.tensor(v)
        opt.load_state_dict({"state": state, "param_groups": om["param_groups"]})
    return meta


def plot_losses(log: list[dict[str, float]], path: str | Path, title: str) -> None:
    """A loss-curve PNG (every numeric key of the log entries, smoothed, log-scale y where positive)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from gen3d.utils.io import atomic_path

    if not log:
        return
    keys = [k for k in log[0] if k != "step" and isinstance(log[0][k], (int, float))]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    steps = np.array([e["step"] for e in log])
    for ax, k in zip(axes[0], keys):
        y = np.array([e.get(k, np.nan) for e in log], dtype=float)
        ax.plot(steps, y, lw=0.6, alpha=0.4)
        if len(y) >= 10:
            w = max(len(y) // 20, 2)
            sm = np.convolve(np.nan_to_num(y), np.ones(w) / w, mode="valid")
            ax.plot(steps[w - 1:], sm, lw=1.2)
        if np.all(y[np.isfinite(y)] > 0):
            ax.set_yscale("log")
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def env_threads() -> None:
    """Respect OMP_NUM_THREADS if set (torch's own default oversubscribes under several processes)."""
    n = os.environ.get("OMP_NUM_THREADS")
    if n and n.isdigit():
        torch.set_num_threads(int(n))
