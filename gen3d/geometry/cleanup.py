"""Mesh post-processing after extraction: drop floating fragments, decimate, keep vertex colours.

Connected components come from trimesh (face adjacency over shared vertices); decimation is
open3d's quadric error metric simplification (Garland and Heckbert 1997), which carries vertex
colours through its vertex merges. Both are well-kept libraries; this module only chooses the
parameters and keeps colours and dtypes consistent.
"""

from __future__ import annotations

import numpy as np
import trimesh


def vertex_colors_of(mesh: trimesh.Trimesh) -> np.ndarray | None:
    """(P, 4) uint8 vertex colours when the mesh has them, else None."""
    if mesh.visual.kind != "vertex":
        return None
    vc = np.asarray(mesh.visual.vertex_colors)
    return vc if len(vc) == len(mesh.vertices) else None


def remove_small_components(
    mesh: trimesh.Trimesh, min_fraction: float = 0.05, keep_largest: bool = True
) -> trimesh.Trimesh:
    """Keep the connected components holding at least ``min_fraction`` of all faces.

    The largest component is always kept when ``keep_largest`` (a mesh never comes back empty).
    ``min_fraction=1.0`` keeps only the largest. Unused vertices are dropped; colours follow.
    """
    if len(mesh.faces) == 0:
        return mesh
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    sizes = np.bincount(labels)
    keep = sizes >= min_fraction * len(mesh.faces)
    if keep_largest:
        keep[int(np.argmax(sizes))] = True
    return keep_faces(mesh, keep[labels])


def keep_faces(mesh: trimesh.Trimesh, face_mask: np.ndarray) -> trimesh.Trimesh:
    """The faces where ``face_mask`` is True, without unused vertices; colours follow."""
    faces = mesh.faces[face_mask]
    used = np.unique(faces)
    remap = np.full(len(mesh.vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    vc = vertex_colors_of(mesh)
    return trimesh.Trimesh(
        mesh.vertices[used], remap[faces], vertex_colors=None if vc is None else vc[used], process=False
    )


def decimate(mesh: trimesh.Trimesh, target_faces: int) -> trimesh.Trimesh:
    """Quadric decimation to about ``target_faces`` faces (open3d); vertex colours are carried along.

    A mesh already at or below the target is returned unchanged.
    """
    if target_faces < 1:
        raise ValueError(f"target_faces must be >= 1, got {target_faces}")
    if len(mesh.faces) <= target_faces:
        return mesh
    import open3d as o3d  # heavy: imported only when decimating

    m = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(mesh.vertices, np.float64)),
        o3d.utility.Vector3iVector(np.asarray(mesh.faces, np.int32)),
    )
    vc = vertex_colors_of(mesh)
    if vc is not None:
        m.vertex_colors = o3d.utility.Vector3dVector(vc[:, :3].astype(np.float64) / 255.0)
    m = m.simplify_quadric_decimation(int(target_faces))
    m.remove_unreferenced_vertices()
    m.remove_degenerate_triangles()
    return from_open3d(m)


def from_open3d(m) -> trimesh.Trimesh:
    """A legacy ``open3d.geometry.TriangleMesh`` as a trimesh (float colours -> uint8 RGBA)."""
    v = np.asarray(m.vertices, np.float64)
    f = np.asarray(m.triangles, np.int64)
    colors = None
    if m.has_vertex_colors():
        rgb = np.round(np.clip(np.asarray(m.vertex_colors), 0.0, 1.0) * 255.0).astype(np.uint8)
        colors = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    return trimesh.Trimesh(v, f, vertex_colors=colors, process=False)


def canonical_order(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The same mesh with vertices sorted by (x, y, z) and faces sorted, windings kept.

    open3d's multi-threaded extraction emits vertices in a different order on every run; sorting
    makes the output (and everything computed from it) reproducible.
    """
    order = np.lexsort(mesh.vertices.T[::-1])  # by x, then y, then z
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    faces = rank[mesh.faces]
    first = faces.argmin(axis=1)  # rotate each face to start at its smallest index: same winding
    faces = np.take_along_axis(faces, (first[:, None] + np.arange(3)) % 3, axis=1)
    faces = faces[np.lexsort(faces.T[::-1])]
    vc = vertex_colors_of(mesh)
    return trimesh.Trimesh(
        mesh.vertices[order], faces, vertex_colors=None if vc is None else vc[order], process=False
    )


def clean_mesh(
    mesh: trimesh.Trimesh, min_component_fraction: float = 0.05, target_faces: int | None = None
) -> trimesh.Trimesh:
    """Merge duplicate vertices, drop degenerate faces and small fragments, then optionally decimate."""
    mesh = mesh.copy()
    mesh.merge_vertices()
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    if min_component_fraction > 0:
        mesh = remove_small_components(mesh, min_component_fraction)
    if target_faces is not None:
        mesh = decimate(mesh, target_faces)
    return mesh
