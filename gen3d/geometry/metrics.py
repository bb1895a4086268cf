"""3D reconstruction metrics between a predicted and a reference shape: Chamfer distance, F-score at
a distance threshold, normal consistency.

Conventions (``d(x, S)`` is the Euclidean distance from x to its nearest neighbour in the set S; P
is the predicted point set, R the reference one; both after normalisation):

- ``accuracy_l1 = mean_{p in P} d(p, R)`` and ``completeness_l1 = mean_{r in R} d(r, P)``
  (Mescheder et al. 2019, Occupancy Networks, Sec. 4).
- ``chamfer_l1 = (accuracy_l1 + completeness_l1) / 2``: the *mean* of the two directions, so a
  shape offset by d everywhere scores d (Occupancy Networks' "Chamfer-L1").
- ``chamfer_l2 = mean_p d(p, R)^2 + mean_r d(r, P)^2``: the *sum* of the two directions' mean
  squared distances, as PointFlow (Yang et al. 2019) and LION (Zeng et al. 2022) define CD.
- ``precision = |{p : d(p, R) < tau}| / |P|``, ``recall = |{r : d(r, P) < tau}| / |R|``,
  ``fscore = 2 precision recall / (precision + recall)`` (Knapitsch et al. 2017, Tanks and Temples;
  Tatarchenko et al. 2019). ``tau`` is given as a fraction of the reference's bounding-box
  diagonal (default 2%), so the F-score does not depend on the normalisation mode.
- ``normal_consistency = (mean_p |n_p . n_{NN_R(p)}| + mean_r |n_r . n_{NN_P(r)}|) / 2`` with unit
  normals (Occupancy Networks); the absolute value makes it blind to normal orientation. It is None
  when either side has no normals (a bare point array).

Normalisation (``normalization=``), a similarity transform applied before everything above:
- ``"bbox"`` (default): both shapes are translated by the *reference's* bounding-box centre and
  divided by the reference's bounding-box diagonal. Distances are then in units of the reference
  size, so numbers are comparable across objects, while a prediction of the wrong size or place
  is still penalised (the job of a reconstruction metric).
- ``"each_bbox"``: each shape by its own bounding box (centre 0, diagonal 1): blind to
  translation and uniform scale, for generators whose output frame is arbitrary.
- ``"none"``: raw coordinates.

Meshes are sampled by area (``sample_surface``, seeded: the prediction and the reference get two
independent streams spawned from ``seed``); point arrays are used as given. Nearest neighbours
come from scipy's cKDTree (exact). We write these few lines ourselves because no installed library
computes all of them under one stated convention (open3d has only point-to-point distances).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from jaxtyping import Float, Int
from scipy.spatial import cKDTree

from gen3d.geometry.sampling import Geometry, PointCloud, bounds, to_point_cloud

Normalization = Literal["none", "bbox", "each_bbox"]
NORMALIZATIONS: tuple[str, ...] = ("none", "bbox", "each_bbox")


@dataclass(frozen=True)
class MeshMetrics:
    """Metrics of a predicted shape against a reference; conventions in the module docstring."""

    chamfer_l1: float  # (accuracy_l1 + completeness_l1) / 2
    chamfer_l2: float  # mean squared NN distance pred->ref + ref->pred (PointFlow/LION CD)
    precision: float  # fraction of predicted points within tau of the reference
    recall: float  # fraction of reference points within tau of the prediction
    fscore: float  # harmonic mean of precision and recall
    normal_consistency: float | None  # mean |cos| between NN normals, both directions; None without normals
    accuracy_l1: float  # mean NN distance pred -> ref
    completeness_l1: float  # mean NN distance ref -> pred
    tau: float  # the absolute F-score threshold used, in the normalised frame


def _bbox_frame(geometry: Geometry) -> tuple[Float[np.ndarray, " 3"], float]:
    lo, hi = bounds(geometry)
    diag = float(np.linalg.norm(hi - lo))
    if not diag > 0:
        raise ValueError(
            "the shape's bounding box has zero diagonal (a single point): cannot normalise by it"
        )
    return (lo + hi) / 2, diag


def normalization_frames(
    pred: Geometry, ref: Geometry, normalization: Normalization
) -> tuple[tuple[Float[np.ndarray, " 3"], float], tuple[Float[np.ndarray, " 3"], float]]:
    """(centre, scale) for the prediction and for the reference; a point x maps to (x - centre) / scale."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if normalization == "none":
        identity = (np.zeros(3), 1.0)
        return identity, identity
    ref_frame = _bbox_frame(ref)
    if normalization == "bbox":
        return ref_frame, ref_frame
    return _bbox_frame(pred), ref_frame


def nearest_neighbors(
    query: Float[np.ndarray, "P 3"], points: Float[np.ndarray, "Q 3"]
) -> tuple[Float[np.ndarray, " P"], Int[np.ndarray, " P"]]:
    """Euclidean distance from every query point to its nearest neighbour in ``points``, and its index."""
    dist, idx = cKDTree(points).query(query, k=1, workers=-1)
    return dist, idx


def _unit(v: Float[np.ndarray, "P 3"]) -> Float[np.ndarray, "P 3"]:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def mesh_metrics(
    pred: Geometry,
    ref: Geometry,
    *,
    n_points: int = 100_000,
    normalization: Normalization = "bbox",
    tau: float = 0.02,
    seed: int = 0,
) -> MeshMetrics:
    """Compare a predicted shape with a reference (meshes, ``PointCloud``s or (P, 3) arrays).

    n_points: points sampled from each *mesh* (point sets are used as given).
    normalization: "bbox" (default), "each_bbox" or "none"; see the module docstring.
    tau: F-score threshold as a fraction of the reference's bounding-box diagonal (0.02 = 2%).
    seed: sampling seed; the same inputs and seed give the same numbers.
    """
    if not tau > 0:
        raise ValueError(f"tau must be > 0 (a fraction of the reference's bbox diagonal), got {tau}")
    (c_p, s_p), (c_r, s_r) = normalization_frames(pred, ref, normalization)
    _, ref_diag = _bbox_frame(ref)
    tau_abs = tau * ref_diag / s_r

    seed_pred, seed_ref = np.random.SeedSequence(seed).spawn(2)
    p = to_point_cloud(pred, n_points, np.random.default_rng(seed_pred))
    r = to_point_cloud(ref, n_points, np.random.default_rng(seed_ref))
    p_pts = (p.points - c_p) / s_p  # a similarity transform leaves normals unchanged
    r_pts = (r.points - c_r) / s_r

    d_pr, i_pr = nearest_neighbors(p_pts, r_pts)
    d_rp, i_rp = nearest_neighbors(r_pts, p_pts)
    accuracy, completeness = float(d_pr.mean()), float(d_rp.mean())
    precision, recall = float((d_pr < tau_abs).mean()), float((d_rp < tau_abs).mean())
    fscore = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return MeshMetrics(
        chamfer_l1=(accuracy + completeness) / 2,
        chamfer_l2=float((d_pr**2).mean() + (d_rp**2).mean()),
        precision=precision,
        recall=recall,
        fscore=fscore,
        normal_consistency=_normal_consistency(p, r, i_pr, i_rp),
        accuracy_l1=accuracy,
        completeness_l1=completeness,
        tau=float(tau_abs),
    )


def _normal_consistency(
    p: PointCloud, r: PointCloud, i_pr: Int[np.ndarray, " P"], i_rp: Int[np.ndarray, " Q"]
) -> float | None:
    if p.normals is None or r.normals is None:
        return None
    n_p, n_r = _unit(p.normals), _unit(r.normals)
    cos_pr = np.abs((n_p * n_r[i_pr]).sum(1))
    cos_rp = np.abs((n_r * n_p[i_rp]).sum(1))
    return float((cos_pr.mean() + cos_rp.mean()) / 2)
