"""Figures for people: samplers on the 2-D toy mixture, and sample quality against NFE.

``sampler_runs`` draws samples (and a few trajectories) with each sampler driven by the exact
denoiser; ``toy_figure`` puts the true density beside them; ``quality_plot`` draws the benchmark's
quality-vs-NFE curves. matplotlib is imported inside the functions (Agg backend, no display needed)
and PNGs are written atomically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gen3d.diffusion.samplers import sample
from gen3d.diffusion.toy import GaussianMixture, sliced_wasserstein


@dataclass(frozen=True)
class SamplerRun:
    name: str
    x: Tensor  # (N, 2) samples
    trajectory: Tensor  # (S+1, M, 2) a few trajectories, VP-scaled: x / sqrt(1 + sigma^2)
    nfe: int
    sw2: float  # sliced W2 to an exact sample of the same size
    logp_gap: float  # E_q log p - E_p log p (0 for the truth; < 0 too broad, > 0 too sharp)


def sampler_runs(
    gmm: GaussianMixture,
    names: Sequence[str],
    steps: int,
    samples: int = 2000,
    trajectories: int = 12,
    seed: int = 0,
    progress: bool = False,
) -> list[SamplerRun]:
    """Run each sampler on the same noise (exact denoiser); trajectories are kept for the first few samples."""
    g = torch.Generator().manual_seed(seed)
    ref, _ = gmm.sample(samples, g)
    ref_logp = gmm.log_prob(ref).mean().item()
    noise = torch.randn(samples, *gmm.shape, generator=g)
    from tqdm.auto import tqdm

    runs = []
    for name in tqdm(names, desc="samplers", unit="sampler", disable=not progress):
        res = sample(name, gmm.denoiser(), noise, steps, generator=torch.Generator().manual_seed(seed + 1),
                     trajectory=True)
        scale = (1 + res.sigmas.float() ** 2).sqrt().reshape(-1, 1, 1)
        traj = res.trajectory[:, :trajectories].float() / scale
        runs.append(SamplerRun(name, res.x, traj, res.nfe, sliced_wasserstein(res.x, ref),
                               gmm.log_prob(res.x).mean().item() - ref_logp))
    return runs


def _density_grid(gmm: GaussianMixture, lim: float, n: int = 200):
    u = torch.linspace(-lim, lim, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(u, u, indexing="xy")
    lp = gmm.log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).reshape(n, n)
    return xx.numpy(), yy.numpy(), lp.numpy()


def toy_figure(gmm: GaussianMixture, runs: Sequence[SamplerRun], out: str | Path, steps: int,
               highlight: str | None = None, lim: float = 3.5) -> Path:
    """True density + one panel per sampler (samples, trajectories, NFE, SW2); ``highlight`` framed in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from gen3d.utils.io import atomic_path

    if gmm.dim != 2:
        raise ValueError("toy_figure draws 2-D data only")
    runs = sorted(runs, key=lambda r: r.name != highlight)  # the highlighted sampler first
    panels = 1 + len(runs)
    cols = min(4, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.5 * rows), squeeze=False)
    xx, yy, lp = _density_grid(gmm, lim)
    # contours through the log-density quantiles of true samples: they enclose ~90 %, 50 %, 10 % of the mass
    lp_true = gmm.log_prob(gmm.sample(20000, torch.Generator().manual_seed(0))[0]).numpy()
    levels = np.quantile(lp_true, [0.1, 0.5, 0.9])
    ax = axes[0, 0]
    ax.imshow(np.exp(lp), extent=(-lim, lim, -lim, lim), origin="lower", cmap="Greys")
    ax.set_title("true density p(x)", fontsize=10)
    for ax, run in zip(axes.flat[1:], runs):
        ax.contour(xx, yy, lp, levels=levels, colors="0.6", linewidths=0.6, linestyles="solid")
        x = run.x.numpy()
        ax.scatter(x[:, 0], x[:, 1], s=1.5, c="tab:blue", alpha=0.35, linewidths=0)
        t = run.trajectory.numpy()
        for j in range(t.shape[1]):
            ax.plot(t[:, j, 0], t[:, j, 1], "-", color="tab:orange", lw=0.6, alpha=0.8)
            ax.plot(t[0, j, 0], t[0, j, 1], "o", color="tab:orange", ms=2)
            ax.plot(t[-1, j, 0], t[-1, j, 1], "o", color="tab:red", ms=2.5)
        ax.set_title(f"{run.name}  NFE {run.nfe}\nSW2 {run.sw2:.3f}  dlogp {run.logp_gap:+.2f}", fontsize=9)
        if run.name == highlight:
            for side in ax.spines.values():
                side.set_edgecolor("red")
                side.set_linewidth(2.5)
    for ax in axes.flat:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[panels:]:
        ax.axis("off")
    fig.suptitle(f"exact-denoiser samples, {steps} steps each (orange: trajectories in x/sqrt(1+sigma^2))", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out


def quality_plot(rows: Sequence[dict], out: str | Path, floors: dict[str, float]) -> Path:
    """Sliced W2 against NFE, one line per sampler, one panel per data set; dashed: the noise floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gen3d.utils.io import atomic_path

    datasets = list(dict.fromkeys(r["data"] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.2 * len(datasets), 4.6), squeeze=False)
    for ax, data in zip(axes[0], datasets):
        colors = plt.get_cmap("tab20").colors  # 11+ samplers: the default 10-colour cycle repeats
        for i, name in enumerate(dict.fromkeys(r["sampler"] for r in rows)):
            pts = sorted((r["nfe"], r["sw2"]) for r in rows if r["data"] == data and r["sampler"] == name)
            style = "--" if name in ("ddpm", "euler_maruyama", "edm_sde") else "-"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", ms=3, label=name,
                    color=colors[(2 * i) % 20 + (2 * i) // 20])
        ax.axhline(floors[data], color="k", ls=":", lw=1, label="exact samples (noise floor)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("NFE (denoiser calls)")
        ax.set_ylabel("sliced W2 to the true mixture")
        ax.set_title(f"toy mixture {data}")
        ax.grid(alpha=0.3, which="both")
    axes[0, -1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out
