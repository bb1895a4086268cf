"""A minimal training loop for denoisers: AdamW, cosine learning-rate decay, the objective's loss.

Enough to train the tiny toy models the tests and docs use (seconds on a CPU) and to serve as the
reference loop the priors' trainers grow from. Data comes from a callable ``data(n, generator) ->
(x0, cond)``, so an exact sampler of a toy distribution or a dataset loader plug in alike.
All randomness comes from one seeded CPU generator: a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from gen3d.diffusion.conditioning import Conditioning
from gen3d.diffusion.denoiser import Precond
from gen3d.diffusion.objectives import ObjectiveConfig, diffusion_loss

DataFn = Callable[[int, torch.Generator], tuple[Tensor, Conditioning | None]]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup: int = 50  # linear warm-up steps, then cosine decay to 0
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("TrainConfig: steps, batch_size and lr must be positive")


@dataclass(frozen=True)
class TrainResult:
    losses: Tensor  # (steps,) loss of every step
    seconds: float


def train_denoiser(
    model: Precond,
    data: DataFn,
    objective: ObjectiveConfig | None = None,
    config: TrainConfig | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` in place; returns the per-step losses."""
    import math
    import time

    objective = objective or ObjectiveConfig()
    config = config or TrainConfig()
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:  # warm-up, then cosine to zero (Loshchilov & Hutter 2017)
        if step < config.warmup:
            return (step + 1) / config.warmup
        frac = (step - config.warmup) / max(config.steps - config.warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    losses = torch.empty(config.steps)
    model.train()
    start = time.perf_counter()
    for step in tqdm(range(config.steps), desc="training", leave=False, disable=not progress):
        x0, cond = data(config.batch_size, g)
        loss = diffusion_loss(model, x0, objective, cond, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        sched.step()
        losses[step] = loss.detach()
    model.eval()
    return TrainResult(losses=losses, seconds=time.perf_counter() - start)


__all__ = ["TrainConfig", "TrainResult", "train_denoiser"]
