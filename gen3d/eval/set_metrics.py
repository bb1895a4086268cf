"""Distribution metrics between a set of generated point clouds and a reference set, by Chamfer
distance: MMD-CD, COV-CD and 1-NNA-CD, following the protocol of PointFlow (Yang et al. 2019,
Sec. 5.1, after Achlioptas et al. 2018) that LION (Zeng et al. 2022) also reports.

With S_g the generated set, S_r the reference set and the Chamfer distance of two clouds
``CD(X, Y) = mean_{x in X} min_{y in Y} |x - y|^2 + mean_{y in Y} min_{x in X} |x - y|^2``
(squared distances, the sum of both directions' means, exactly PointFlow's ``dl.mean(1) + dr.mean(1)``):

- ``MMD = mean_{Y in S_r} min_{X in S_g} CD(X, Y)``: how close the nearest sample comes to each
  reference (fidelity). Lower is better; papers report it x 10^3.
- ``COV = |{argmin_{Y in S_r} CD(X, Y) : X in S_g}| / |S_r|``: the fraction of references that
  are the nearest neighbour of some sample (diversity). Higher is better, at most min(1, |S_g|/|S_r|).
- ``1-NNA``: the leave-one-out accuracy of the 1-nearest-neighbour classifier on S_g u S_r labelled by
  set, ``(sum_{X in S_g} 1[N_X in S_g] + sum_{Y in S_r} 1[N_Y in S_r]) / (|S_g| + |S_r|)``. With
  equal set sizes 0.5 is ideal (the sets are indistinguishable), 1.0 means disjoint, and values
  well below 0.5 mean samples sit on top of references (memorisation).

All three are fractions in [0, 1] (papers print COV and 1-NNA in %). The clouds are compared as
given: normalise them first as the protocol you follow does (PointFlow: the dataset's global
normalisation; LION: each shape into [-1, 1]^3). Pairwise distances are computed in torch, on the
clouds' device, in chunks of pairs bounded by ``max_elements`` distance entries at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm


@dataclass(frozen=True)
class SetMetrics:
    """MMD-CD, COV-CD and 1-NNA-CD of a generated set against a reference set (module docstring)."""

    mmd_cd: float  # mean over references of the CD to the nearest sample (lower is better)
    cov_cd: float  # fraction of references that are some sample's nearest neighbour (higher is better)
    nna_cd: float  # 1-NN classifier accuracy on the union, 0.5 ideal for equal sizes
    n_generated: int
    n_reference: int


def _as_clouds(clouds: Tensor | np.ndarray, what: str) -> Float[Tensor, "N P 3"]:
    clouds = torch.as_tensor(clouds)
    if clouds.ndim != 3 or clouds.shape[-1] != 3 or clouds.shape[0] == 0 or clouds.shape[1] == 0:
        raise ValueError(f"{what} must have shape (N, P, 3) with N, P >= 1, got {tuple(clouds.shape)}")
    return clouds if clouds.is_floating_point() else clouds.float()


def pairwise_chamfer(
    x: Float[Tensor, "A P 3"],
    y: Float[Tensor, "B Q 3"],
    max_elements: int = 2**22,
    progress: bool = False,
) -> Float[Tensor, "A B"]:
    """``CD(x[i], y[j])`` for every pair (squared distances, both directions' means summed).

    Blocks of a clouds of x against b clouds of y go through one matmul into one reused buffer of
    a * b * P * Q <= ``max_elements`` distances (at least one pair): 2**22 float32 entries, 16 MiB.
    Reusing the buffer matters on CPU, where a fresh 64 MiB temporary per block costs more in page
    faults than the arithmetic.
    """
    x, y = _as_clouds(x, "x"), _as_clouds(y, "y")
    y = y.to(device=x.device, dtype=torch.promote_types(x.dtype, y.dtype))
    x = x.to(y.dtype)
    (A, P, _), (B, Q, _) = x.shape, y.shape
    b = min(B, max(1, max_elements // (P * Q)))
    a = min(A, max(1, max_elements // (b * P * Q)))
    # |x - y|^2 = [x, |x|^2, 1] . [-2 y, 1, |y|^2]: one matmul per block, no other temporaries.
    x_aug = torch.cat([x, (x * x).sum(-1, keepdim=True), torch.ones_like(x[..., :1])], dim=-1)
    y_aug = torch.cat([-2 * y, torch.ones_like(y[..., :1]), (y * y).sum(-1, keepdim=True)], dim=-1)
    buf = torch.empty(a * P * b * Q, dtype=x.dtype, device=x.device)
    out = torch.empty(A, B, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for i in tqdm(range(0, A, a), desc="Chamfer distances", disable=not progress):
            xa = x_aug[i : i + a].reshape(-1, 5)
            na = len(xa) // P
            for j in range(0, B, b):
                yb = y_aug[j : j + b].reshape(-1, 5)
                nb = len(yb) // Q
                d2 = torch.mm(xa, yb.T, out=buf[: na * P * nb * Q].view(na * P, nb * Q)).view(na, P, nb, Q)
                # Rounding can make a distance slightly negative: clamp the minima, not every entry.
                d_xy, d_yx = d2.amin(dim=3).clamp_min_(0), d2.amin(dim=1).clamp_min_(0)
                out[i : i + na, j : j + nb] = d_xy.mean(dim=1) + d_yx.mean(dim=2)
    return out


def mmd_cov(d_gr: Float[Tensor, "G R"]) -> tuple[float, float]:
    """MMD and COV from the generated-by-reference distance matrix (PointFlow's ``lgan_mmd_cov``)."""
    mmd = d_gr.min(dim=0).values.mean()
    covered = d_gr.argmin(dim=1).unique().numel()
    return float(mmd), covered / d_gr.shape[1]


def one_nna(d_gg: Float[Tensor, "G G"], d_gr: Float[Tensor, "G R"], d_rr: Float[Tensor, "R R"]) -> float:
    """Leave-one-out 1-NN accuracy on the union of both sets (PointFlow's ``knn`` with k = 1)."""
    G, R = d_gr.shape
    full = torch.cat([torch.cat([d_gg, d_gr], 1), torch.cat([d_gr.T, d_rr], 1)], 0)
    full = full + torch.diag(torch.full((G + R,), float("inf"), dtype=full.dtype, device=full.device))
    label = torch.cat([torch.zeros(G, dtype=torch.bool), torch.ones(R, dtype=torch.bool)]).to(full.device)
    return float((label[full.argmin(dim=1)] == label).float().mean())


def set_metrics(
    generated: Float[Tensor, "G P 3"] | np.ndarray,
    reference: Float[Tensor, "R Q 3"] | np.ndarray,
    max_elements: int = 2**22,
    progress: bool = False,
) -> SetMetrics:
    """MMD-CD, COV-CD and 1-NNA-CD of ``generated`` against ``reference`` (see the module docstring)."""
    g, r = _as_clouds(generated, "generated"), _as_clouds(reference, "reference")
    d_gr = pairwise_chamfer(g, r, max_elements, progress)
    d_gg = pairwise_chamfer(g, g, max_elements, progress)
    d_rr = pairwise_chamfer(r, r, max_elements, progress)
    mmd, cov = mmd_cov(d_gr)
    return SetMetrics(mmd, cov, one_nna(d_gg, d_gr, d_rr), len(g), len(r))
