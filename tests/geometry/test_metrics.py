"""Known-answer tests for the 3D metrics: cubes, shifted cubes and concentric spheres, whose Chamfer
distance, F-score and normal consistency have closed forms in the dense-sampling limit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from gen3d.geometry.metrics import mesh_metrics
from gen3d.geometry.sampling import PointCloud, sample_surface

UNIT_CUBE = trimesh.creation.box(extents=(1.0, 1.0, 1.0))


def shifted(mesh: trimesh.Trimesh, offset) -> trimesh.Trimesh:
    out = mesh.copy()
    out.apply_translation(offset)
    return out


def shifted_cube_expectations(d: float, t: float) -> tuple[float, float, float]:
    """Dense-limit (chamfer_l1, chamfer_l2, precision) of the unit cube shifted by d < 1/2 along x
    against the unit cube, F-score threshold t < d (absolute).

    Per face of the shifted cube B (the cube A is [-.5, .5]^3): the far x face lies at distance d;
    on each of the 4 side faces the part beyond A (width d) lies at distance x - 1/2, the rest at 0;
    the near x face is inside A at distance min(d, m), m = distance to the face's border, with
    P(m > s) = (1 - 2s)^2. Both directions are equal by symmetry.
    """
    mean = (d + (1 - (1 - 2 * d) ** 3) / 6 + 4 * d**2 / 2) / 6
    mean_sq = (d**2 + 4 * d**3 / 3 + (d**2 - 8 * d**3 / 3 + 2 * d**4)) / 6
    precision = ((1 - (1 - 2 * t) ** 2) + 4 * (1 - d + t)) / 6
    return mean, 2 * mean_sq, precision


def test_cube_vs_itself():
    m = mesh_metrics(UNIT_CUBE, UNIT_CUBE, n_points=20_000)
    # Two independent samplings of one surface: distances are at the sampling spacing only.
    assert m.chamfer_l1 < 0.01 and m.chamfer_l2 < 1e-4
    assert m.precision == m.recall == m.fscore == 1.0
    assert m.normal_consistency > 0.97  # < 1 only where a NN falls across a cube edge


def test_identical_point_clouds_are_exactly_zero():
    pc = sample_surface(UNIT_CUBE, 5_000, seed=3)
    m = mesh_metrics(pc, pc)
    assert m.chamfer_l1 == m.chamfer_l2 == 0.0
    assert m.fscore == 1.0 and m.normal_consistency == 1.0


@pytest.mark.parametrize("d", [0.2, 0.3])
def test_shifted_cube_matches_closed_form(d):
    t = 0.05
    tau = t / math.sqrt(3)  # as a fraction of the unit cube's diagonal
    m = mesh_metrics(shifted(UNIT_CUBE, (d, 0, 0)), UNIT_CUBE, n_points=50_000, normalization="none", tau=tau)
    l1, l2, precision = shifted_cube_expectations(d, t)
    assert m.tau == pytest.approx(t)
    # Finite sampling adds ~half the point spacing (~0.003) to the zero-distance regions (+2..4%).
    assert m.chamfer_l1 == pytest.approx(l1, rel=0.06)
    assert m.chamfer_l1 > l1  # the sampling bias is one-sided
    assert m.chamfer_l2 == pytest.approx(l2, rel=0.02)
    assert m.accuracy_l1 == pytest.approx(m.completeness_l1, rel=0.02)
    assert m.precision == pytest.approx(precision, abs=0.01)
    assert m.recall == pytest.approx(precision, abs=0.01)


def test_disjoint_cubes_score_zero():
    m = mesh_metrics(shifted(UNIT_CUBE, (2.0, 0, 0)), UNIT_CUBE, n_points=5_000)
    assert m.precision == m.recall == m.fscore == 0.0
    # Normalised by the reference diagonal sqrt(3): the nearest faces are 1 apart.
    assert m.chamfer_l1 > 1.0 / math.sqrt(3)


@pytest.mark.parametrize("r,d", [(1.0, 0.1), (0.5, 0.08)])
def test_concentric_spheres(r, d):
    inner = trimesh.creation.icosphere(subdivisions=5, radius=r)
    outer = trimesh.creation.icosphere(subdivisions=5, radius=r + d)
    m = mesh_metrics(outer, inner, n_points=30_000, normalization="none")
    # Every point of one sphere is exactly d from the other: Chamfer-L1 = d, CD-L2 = 2 d^2.
    assert m.chamfer_l1 == pytest.approx(d, rel=0.03)
    assert m.chamfer_l2 == pytest.approx(2 * d**2, rel=0.06)
    assert m.normal_consistency == pytest.approx(1.0, abs=1e-3)
    assert m.tau == pytest.approx(0.02 * 2 * r * math.sqrt(3), rel=1e-3)
    assert m.tau < d and m.fscore == 0.0


def test_fscore_threshold_straddles_the_offset():
    inner = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    outer = trimesh.creation.icosphere(subdivisions=5, radius=1.05)
    diag = 2 * math.sqrt(3)
    below = mesh_metrics(outer, inner, n_points=20_000, tau=0.03 / diag)
    above = mesh_metrics(outer, inner, n_points=20_000, tau=0.07 / diag)
    assert below.fscore == 0.0 and above.fscore == 1.0


def test_each_bbox_makes_a_scaled_moved_copy_match():
    copy = UNIT_CUBE.copy()
    copy.apply_scale(3.0)
    copy.apply_translation((5.0, -2.0, 1.0))
    per_shape = mesh_metrics(copy, UNIT_CUBE, n_points=20_000, normalization="each_bbox")
    by_ref = mesh_metrics(copy, UNIT_CUBE, n_points=20_000, normalization="bbox")
    assert per_shape.fscore == 1.0 and per_shape.chamfer_l1 < 0.01
    # Normalised by the reference alone, the wrong size and place still count.
    assert by_ref.fscore == 0.0 and by_ref.chamfer_l1 > 1.0


def test_bbox_normalisation_removes_the_common_scale():
    small = mesh_metrics(shifted(UNIT_CUBE, (0.1, 0, 0)), UNIT_CUBE, n_points=20_000)
    big_ref, big_pred = UNIT_CUBE.copy(), shifted(UNIT_CUBE, (0.1, 0, 0))
    big_ref.apply_scale(10.0)
    big_pred.apply_scale(10.0)
    big = mesh_metrics(big_pred, big_ref, n_points=20_000)
    raw_small = mesh_metrics(
        shifted(UNIT_CUBE, (0.1, 0, 0)), UNIT_CUBE, n_points=20_000, normalization="none"
    )
    raw_big = mesh_metrics(big_pred, big_ref, n_points=20_000, normalization="none")
    assert big.chamfer_l1 == pytest.approx(small.chamfer_l1, rel=1e-9)
    assert big.fscore == pytest.approx(small.fscore, rel=1e-9)
    assert raw_big.chamfer_l1 == pytest.approx(10 * raw_small.chamfer_l1, rel=1e-9)
    assert raw_big.chamfer_l2 == pytest.approx(100 * raw_small.chamfer_l2, rel=1e-9)
    # The F-score threshold is relative to the reference, so it ignores the normalisation mode.
    assert raw_small.fscore == small.fscore
    assert small.chamfer_l1 == pytest.approx(raw_small.chamfer_l1 / math.sqrt(3), rel=1e-9)


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 60.0, 90.0])
def test_normal_consistency_is_the_cosine_between_normals(angle_deg):
    g = np.linspace(0, 1, 20)
    pts = np.stack(np.meshgrid(g, g, [0.0]), -1).reshape(-1, 3)
    a = math.radians(angle_deg)
    up = np.tile([0.0, 0.0, 1.0], (len(pts), 1))
    tilted = np.tile([math.sin(a), 0.0, math.cos(a)], (len(pts), 1))
    m = mesh_metrics(PointCloud(pts, tilted), PointCloud(pts, up))
    assert m.normal_consistency == pytest.approx(abs(math.cos(a)), abs=1e-12)


def test_normal_consistency_ignores_orientation_and_length():
    pc = sample_surface(UNIT_CUBE, 2_000, seed=0)
    flipped = PointCloud(pc.points, -3.0 * pc.normals)
    assert mesh_metrics(flipped, pc).normal_consistency == pytest.approx(1.0)


def test_point_arrays_and_tensors_have_no_normal_consistency():
    pts = sample_surface(UNIT_CUBE, 2_000, seed=0).points
    m = mesh_metrics(torch.from_numpy(pts).float(), pts)
    assert m.normal_consistency is None
    assert m.fscore == 1.0 and m.chamfer_l1 < 1e-6  # float32 rounding only


def test_seeded_and_deterministic():
    pred = shifted(UNIT_CUBE, (0.05, 0, 0))
    a = mesh_metrics(pred, UNIT_CUBE, n_points=5_000, seed=1)
    b = mesh_metrics(pred, UNIT_CUBE, n_points=5_000, seed=1)
    c = mesh_metrics(pred, UNIT_CUBE, n_points=5_000, seed=2)
    assert a == b
    assert a.chamfer_l1 != c.chamfer_l1


def test_sampling_is_area_weighted_with_face_normals():
    # A 1 x 1 x 0.1 slab: the two big faces hold 1 / (1 + 0.2) of the area.
    slab = trimesh.creation.box(extents=(1.0, 1.0, 0.1))
    pc = sample_surface(slab, 20_000, seed=0)
    on_big_faces = np.abs(pc.normals[:, 2]) > 0.99
    assert on_big_faces.mean() == pytest.approx(1 / 1.2, abs=0.01)
    assert np.allclose(np.abs(pc.points[on_big_faces, 2]), 0.05)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="normalization"):
        mesh_metrics(UNIT_CUBE, UNIT_CUBE, normalization="unit")
    with pytest.raises(ValueError, match="tau"):
        mesh_metrics(UNIT_CUBE, UNIT_CUBE, tau=0.0)
    with pytest.raises(ValueError, match="zero diagonal"):
        mesh_metrics(UNIT_CUBE, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(P, 3\)"):
        mesh_metrics(UNIT_CUBE, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="empty"):
        mesh_metrics(UNIT_CUBE, np.zeros((0, 3)))
    with pytest.raises(TypeError, match="Trimesh"):
        mesh_metrics(UNIT_CUBE, [[0, 0, 0], [1, 1, 1]])
    with pytest.raises(ValueError, match="surface area"):
        sample_surface(trimesh.Trimesh(vertices=np.zeros((3, 3)), faces=[[0, 1, 2]]), 10)
