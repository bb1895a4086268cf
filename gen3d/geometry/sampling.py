"""Point clouds with optional normals, and seeded area-weighted surface sampling of meshes.

The 3D metrics (``gen3d.geometry.metrics``) compare point sets; a mesh enters them through
``sample_surface``, which picks faces with probability proportional to their area and points
uniformly inside each picked triangle (trimesh's sampler), and gives every point its face normal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from jaxtyping import Float

Seed = int | np.random.Generator | np.random.SeedSequence


@dataclass(frozen=True)
class PointCloud:
    """P points in 3D, with unit normals where known (None otherwise)."""

    points: Float[np.ndarray, "P 3"]
    normals: Float[np.ndarray, "P 3"] | None = None

    def __post_init__(self) -> None:
        if self.points.ndim != 2 or self.points.shape[1] != 3:
            raise ValueError(f"points must have shape (P, 3), got {self.points.shape}")
        if len(self.points) == 0:
            raise ValueError("the point cloud is empty: a metric needs at least one point")
        if not np.isfinite(self.points).all():
            raise ValueError("the point cloud has NaN or infinite coordinates")
        if self.normals is not None and self.normals.shape != self.points.shape:
            raise ValueError(
                f"normals must have the points' shape {self.points.shape}, got {self.normals.shape}"
            )

    def __len__(self) -> int:
        return len(self.points)


def sample_surface(mesh: trimesh.Trimesh, n: int, seed: Seed = 0) -> PointCloud:
    """``n`` points drawn uniformly by area from the mesh surface, each with its face's unit normal.

    The same mesh, ``n`` and ``seed`` always give the same points.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(mesh.faces) == 0 or not mesh.area > 0:
        raise ValueError(
            "the mesh has no surface area (no faces, or only degenerate ones): nothing to sample"
        )
    points, face_idx = trimesh.sample.sample_surface(mesh, n, seed=seed)
    normals = mesh.face_normals[face_idx]
    return PointCloud(np.asarray(points, np.float64), np.asarray(normals, np.float64))


Geometry = trimesh.Trimesh | PointCloud | np.ndarray | torch.Tensor


def to_point_cloud(geometry: Geometry, n: int, seed: Seed = 0) -> PointCloud:
    """A mesh is sampled (``n`` points, face normals); a point set is used as it is (no normals
    unless it is a ``PointCloud`` that has them)."""
    if isinstance(geometry, trimesh.Trimesh):
        return sample_surface(geometry, n, seed)
    if isinstance(geometry, PointCloud):
        return geometry
    if isinstance(geometry, torch.Tensor):
        geometry = geometry.detach().cpu().numpy()
    if isinstance(geometry, np.ndarray):
        return PointCloud(np.asarray(geometry, np.float64))
    raise TypeError(
        f"expected a trimesh.Trimesh, a PointCloud or a (P, 3) array, got {type(geometry).__name__}"
        " (for a trimesh.Scene, pass scene.dump(concatenate=True))"
    )


def bounds(geometry: Geometry) -> Float[np.ndarray, "2 3"]:
    """Axis-aligned bounding box ``[min, max]`` of a mesh's vertices or of a point set."""
    if isinstance(geometry, trimesh.Trimesh):
        if len(geometry.vertices) == 0:
            raise ValueError("the mesh has no vertices")
        return np.asarray(geometry.bounds, np.float64)
    pts = to_point_cloud(geometry, 1).points
    return np.stack([pts.min(0), pts.max(0)])
