"""MMD-CD, COV-CD and 1-NNA-CD on point-cloud sets with known answers, and the chunked pairwise
Chamfer matrix against a slow, obviously-correct twin."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from gen3d.eval.set_metrics import mmd_cov, one_nna, pairwise_chamfer, set_metrics
from gen3d.geometry.metrics import mesh_metrics


def ellipsoids(n: int, points: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    """n clouds of points on ellipsoid surfaces with semi-axes drawn uniformly from [lo, hi]^3."""
    axes = lo + (hi - lo) * torch.rand(n, 1, 3, generator=g)
    d = torch.randn(n, points, 3, generator=g)
    return d / d.norm(dim=-1, keepdim=True) * axes


def chamfer_slow(x: np.ndarray, y: np.ndarray) -> float:
    """PointFlow's CD of one pair with exact nearest neighbours."""
    return float((cKDTree(y).query(x)[0] ** 2).mean() + (cKDTree(x).query(y)[0] ** 2).mean())


@pytest.mark.parametrize("A,B,P,Q", [(1, 1, 5, 7), (3, 4, 16, 9), (6, 2, 33, 40)])
@pytest.mark.parametrize("max_elements", [1, 500, 2**24])  # one pair per block ... everything at once
def test_pairwise_chamfer_matches_slow_twin(A, B, P, Q, max_elements):
    g = torch.Generator().manual_seed(A * 100 + P)
    x = torch.randn(A, P, 3, generator=g, dtype=torch.float64)
    y = torch.randn(B, Q, 3, generator=g, dtype=torch.float64) + 0.3
    expected = np.array([[chamfer_slow(x[i].numpy(), y[j].numpy()) for j in range(B)] for i in range(A)])
    np.testing.assert_allclose(pairwise_chamfer(x, y, max_elements).numpy(), expected, rtol=1e-9, atol=1e-12)


def test_pairwise_chamfer_float32_and_numpy_inputs():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 64, 3, generator=g), torch.rand(5, 64, 3, generator=g)
    d64 = pairwise_chamfer(x.double(), y.double())
    np.testing.assert_allclose(pairwise_chamfer(x, y).double().numpy(), d64.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pairwise_chamfer(x.numpy(), y.numpy()).numpy(), pairwise_chamfer(x, y).numpy())


def test_same_convention_as_the_mesh_metrics_cd():
    g = torch.Generator().manual_seed(1)
    x, y = (
        torch.rand(1, 200, 3, generator=g, dtype=torch.float64),
        torch.rand(1, 300, 3, generator=g, dtype=torch.float64),
    )
    m = mesh_metrics(x[0].numpy(), y[0].numpy(), normalization="none")
    assert pairwise_chamfer(x, y).item() == pytest.approx(m.chamfer_l2, rel=1e-9)


def test_identical_sets():
    g = torch.Generator().manual_seed(2)
    clouds = ellipsoids(32, 64, 0.5, 1.0, g).double()
    m = set_metrics(clouds, clouds)
    assert m.mmd_cd == pytest.approx(0.0, abs=1e-12)
    assert m.cov_cd == 1.0
    # Every cloud's nearest neighbour is its twin in the other set: the classifier is always wrong.
    assert m.nna_cd == 0.0
    assert (m.n_generated, m.n_reference) == (32, 32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_distribution_gives_1nna_near_half(seed):
    # Over 30 seeds this setup gives 1-NNA 0.499 +- 0.040 (min 0.39, max 0.56); 0.15 is > 3 sigma.
    g = torch.Generator().manual_seed(seed)
    generated, reference = ellipsoids(64, 64, 0.5, 1.0, g), ellipsoids(64, 64, 0.5, 1.0, g)
    m = set_metrics(generated, reference)
    assert abs(m.nna_cd - 0.5) <= 0.15
    assert m.cov_cd > 0.35  # a faithful sampler covers a good part of the references (0.48-0.59 here)


def test_disjoint_distributions_give_1nna_one():
    g = torch.Generator().manual_seed(3)
    small, large = ellipsoids(32, 64, 0.5, 1.0, g), ellipsoids(32, 64, 1.5, 2.0, g)
    m = set_metrics(large, small)
    assert m.nna_cd == 1.0
    # Each reference's nearest sample is at least 0.5 further out along every direction.
    assert m.mmd_cd > 2 * 0.5**2


def modes(n_per_mode: int, mode_ids: list[int], g: torch.Generator) -> torch.Tensor:
    """Small spheres (radius ~0.3, jittered) centred on corners of a cube of side 2: one mode per corner."""
    corners = torch.tensor(
        [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=torch.float32
    )
    clouds = [ellipsoids(n_per_mode, 32, 0.25, 0.35, g) + corners[k] for k in mode_ids]
    return torch.cat(clouds)


def test_coverage_counts_the_reference_modes_hit():
    g = torch.Generator().manual_seed(4)
    reference = modes(4, list(range(8)), g)  # 8 modes x 4 clouds
    half = set_metrics(modes(16, [0, 1, 2, 3], g), reference)
    full = set_metrics(modes(16, list(range(8)), g), reference)
    # Samples only reach references of their own mode, so COV is at most the covered modes' share;
    # within a mode some references are nobody's nearest (hubness), hence the slack below 1.
    assert 0.45 <= half.cov_cd <= 0.5
    assert full.cov_cd >= 0.8
    assert half.mmd_cd > 10 * full.mmd_cd  # half the references are a mode away from any sample
    assert half.nna_cd > full.nna_cd


def test_mmd_cov_and_1nna_on_a_hand_made_matrix():
    # 3 samples x 4 references. Every sample's nearest reference is r2, so COV = 1/4 (counting
    # the references' nearest samples instead would give 2/4).
    d_gr = torch.tensor([[5.0, 4.0, 1.0, 3.0], [6.0, 2.5, 1.5, 2.0], [0.9, 7.0, 0.8, 9.0]])
    mmd, cov = mmd_cov(d_gr)
    assert mmd == pytest.approx((0.9 + 2.5 + 0.8 + 2.0) / 4)  # column minima
    assert cov == pytest.approx(1 / 4)
    d_gg = torch.tensor([[0.0, 0.1, 9.0], [0.1, 0.0, 9.0], [9.0, 9.0, 0.0]])
    d_rr = torch.full((4, 4), 0.2).fill_diagonal_(0.0)
    # NN: s0 <-> s1 (right); s2 -> r2 at 0.8 (wrong); every r -> another r at 0.2 (right).
    assert one_nna(d_gg, d_gr, d_rr) == pytest.approx(6 / 7)


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\(N, P, 3\)"):
        set_metrics(torch.zeros(4, 3), torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match=r"\(N, P, 3\)"):
        pairwise_chamfer(torch.zeros(0, 5, 3), torch.zeros(2, 5, 3))
