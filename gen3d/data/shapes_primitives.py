"""Mesh helpers and the nine primitive classes of the procedural world.

Every helper returns a watertight, outward-facing y-up mesh. trimesh builds its primitives along z
and needs shapely for capped extrusions, so the few shapes it lacks without shapely (a tube along a
curved path, a solid from a convex point set) are written here in a few lines each.

Primitive parameters are *proportions relative to one fixed dimension*: the world rescales every
object to a fixed size, so two parameters that both scale the same shape would cancel out and the
words they carry ("tall", "wide") could contradict what the picture shows.
"""

from __future__ import annotations

import numpy as np
import trimesh
from trimesh import creation

from gen3d.data.parts import ObjectClass, Param, Part, Slot

# trimesh builds along +z; this rotation takes +z to +y (and +y to -z).
Z_TO_Y = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])

# Facet counts: round at 256 px, cheap enough for >= 50 views/s at 128 px.
ROUND = 32
SMALL_ROUND = 16

# --------------------------------------------------------------------------------------------------
# Mesh helpers
# --------------------------------------------------------------------------------------------------


def _outward(m: trimesh.Trimesh) -> trimesh.Trimesh:
    """Flip the winding if the mesh encloses negative volume (normals pointing in)."""
    if m.volume < 0:
        m.invert()
    return m


def box(size: tuple[float, float, float], center: tuple[float, float, float] = (0, 0, 0)) -> trimesh.Trimesh:
    m = creation.box(extents=size)
    m.apply_translation(center)
    return m


def cylinder_y(radius: float, height: float, center=(0.0, 0.0, 0.0), sections: int = ROUND):
    """A cylinder along y (trimesh builds along z)."""
    m = creation.cylinder(radius=radius, height=height, sections=sections)
    m.apply_transform(Z_TO_Y)
    m.apply_translation(center)
    return m


def rod(radius: float, start, end, sections: int = SMALL_ROUND) -> trimesh.Trimesh:
    """A cylinder from ``start`` to ``end`` (any direction)."""
    return creation.cylinder(radius=radius, segment=np.array([start, end], dtype=float), sections=sections)


def sphere(radius: float, center=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0), subdivisions: int = 3):
    """An icosphere, optionally stretched per axis into an ellipsoid."""
    m = creation.icosphere(subdivisions=subdivisions, radius=radius)
    m.apply_transform(np.diag([*np.broadcast_to(scale, 3), 1.0]))
    m.apply_translation(center)
    return m


def cone_y(radius: float, height: float, base=(0.0, 0.0, 0.0), sections: int = ROUND) -> trimesh.Trimesh:
    """A cone with its base disc centred at ``base`` and its apex ``height`` above it."""
    m = creation.cone(radius=radius, height=height, sections=sections)
    m.apply_transform(Z_TO_Y)
    m.apply_translation(base)
    return m


def cone_z(radius: float, length: float, base=(0.0, 0.0, 0.0), sections: int = SMALL_ROUND):
    """A cone pointing along +z (noses, spikes) with its base disc centred at ``base``."""
    m = creation.cone(radius=radius, height=length, sections=sections)
    m.apply_translation(base)
    return m


def revolve_y(profile, sections: int = ROUND, base=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    """Revolve a closed (radius, y) profile about the y axis.

    The profile either starts and ends on the axis (a solid) or is a closed loop off the axis (a
    ring); both give watertight solids. Winding is fixed to face outward whatever the profile order.
    """
    m = creation.revolve(np.asarray(profile, dtype=float), sections=sections)
    m.apply_transform(Z_TO_Y)
    m.apply_translation(base)
    return _outward(m)


def hull(points) -> trimesh.Trimesh:
    """The convex solid spanned by ``points`` (pyramids, prisms, wedges, tapered boxes)."""
    return trimesh.convex.convex_hull(np.asarray(points, dtype=float))


def torus_y(major: float, minor: float, center=(0.0, 0.0, 0.0), sections: int = ROUND,
            tube_sections: int = 12) -> trimesh.Trimesh:
    """A torus lying flat (its ring in the xz plane, its axis along y)."""
    m = creation.torus(major_radius=major, minor_radius=minor, major_sections=sections,
                       minor_sections=tube_sections)
    m.apply_transform(Z_TO_Y)
    m.apply_translation(center)
    return m


def tube(path, radius: float, sections: int = 12) -> trimesh.Trimesh:
    """A round tube along a polyline with flat end caps (handles, arcs): rings joined by quads.

    Frames follow the path by parallel transport so the tube does not twist.
    """
    path = np.asarray(path, dtype=float)
    n = len(path)
    tangents = np.gradient(path, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    ref = np.array([0.0, 0.0, 1.0]) if abs(tangents[0, 2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    normal = np.cross(tangents[0], ref)
    normal /= np.linalg.norm(normal)
    angles = np.linspace(0, 2 * np.pi, sections, endpoint=False)
    verts = []
    for i in range(n):
        if i > 0:  # parallel transport: remove the component along the new tangent
            normal = normal - tangents[i] * (normal @ tangents[i])
            normal /= np.linalg.norm(normal)
        binormal = np.cross(tangents[i], normal)
        ring = path[i] + radius * (np.outer(np.cos(angles), normal) + np.outer(np.sin(angles), binormal))
        verts.append(ring)
    verts = np.concatenate([*verts, path[:1], path[-1:]])
    faces = []
    for i in range(n - 1):
        for j in range(sections):
            a, b = i * sections + j, i * sections + (j + 1) % sections
            c, d = a + sections, b + sections
            faces += [[a, b, d], [a, d, c]]
    start, end = n * sections, n * sections + 1
    for j in range(sections):
        faces.append([start, (j + 1) % sections, j])
        faces.append([end, (n - 1) * sections + j, (n - 1) * sections + (j + 1) % sections])
    return _outward(trimesh.Trimesh(verts, np.array(faces), process=True))


def arc(radius: float, angle0: float, angle1: float, center=(0.0, 0.0, 0.0), plane: str = "xy", n: int = 16):
    """Points on a circular arc in the given plane (angles in radians, from the plane's first axis)."""
    t = np.linspace(angle0, angle1, n)
    u, v = radius * np.cos(t), radius * np.sin(t)
    pts = np.zeros((n, 3))
    axes = {"xy": (0, 1), "xz": (0, 2), "zy": (2, 1)}[plane]
    pts[:, axes[0]], pts[:, axes[1]] = u, v
    return pts + np.asarray(center, dtype=float)


# --------------------------------------------------------------------------------------------------
# Primitive classes: one slot "body"; proportions relative to one fixed dimension
# --------------------------------------------------------------------------------------------------

BODY = (Slot("body"),)


def _primitive(name, nouns, params, build, excluded=("open",)) -> ObjectClass:
    return ObjectClass(name=name, nouns=nouns, kind="primitive", params=params, slots=BODY, build=build,
                       excluded_motions=excluded)


def _cube(p: dict[str, float]) -> list[Part]:
    # Depth is the fixed unit: a third free size would only rescale the block.
    return [Part("body", box((p["width"], p["height"], 1.0)), "body")]


CUBE = _primitive(
    "cube", ("cube", "box shape", "block"),
    (Param("width", 0.7, 1.3, 1.0, "wide", "narrow"), Param("height", 0.7, 1.3, 1.0, "tall", "flat")),
    _cube,
)


def _sphere(p: dict[str, float]) -> list[Part]:
    return [Part("body", sphere(p["radius"]), "body")]


# A sphere has no proportion to vary; its radius is kept so every class has a parameter to sample.
SPHERE = _primitive("sphere", ("sphere", "ball", "orb"), (Param("radius", 0.8, 1.2, 1.0),), _sphere)


def _cylinder(p: dict[str, float]) -> list[Part]:
    return [Part("body", cylinder_y(0.5, p["height"], (0, p["height"] / 2, 0)), "body")]


CYLINDER = _primitive(
    "cylinder", ("cylinder", "column shape"),
    (Param("height", 0.4, 2.5, 1.2, "tall", "short"),),  # height in units of the diameter
    _cylinder,
)


def _cone(p: dict[str, float]) -> list[Part]:
    return [Part("body", cone_y(0.5, p["height"]), "body")]


CONE = _primitive("cone", ("cone",), (Param("height", 0.6, 2.5, 1.3, "tall", "short"),), _cone)


def _torus(p: dict[str, float]) -> list[Part]:
    return [Part("body", torus_y(1.0, p["thickness"], sections=40, tube_sections=16), "body")]


TORUS = _primitive(
    "torus", ("torus", "ring", "donut", "doughnut"),
    (Param("thickness", 0.15, 0.5, 0.3, "thick", "thin"),),  # tube radius / ring radius
    _torus,
)


def _capsule(p: dict[str, float]) -> list[Part]:
    # Lying along x like a pill, resting on y = 0.
    m = creation.capsule(height=p["length"], radius=0.5, count=[24, 24])
    m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]))
    m.apply_translation([0, 0.5, 0])
    return [Part("body", m, "body")]


CAPSULE = _primitive(
    "capsule", ("capsule", "pill"),
    (Param("length", 0.5, 2.5, 1.2, "long", "short"),),  # straight length in units of the diameter
    _capsule,
)


def _pyramid(p: dict[str, float]) -> list[Part]:
    h = p["height"]
    pts = [[-0.5, 0, -0.5], [0.5, 0, -0.5], [0.5, 0, 0.5], [-0.5, 0, 0.5], [0, h, 0]]
    return [Part("body", hull(pts), "body")]


PYRAMID = _primitive("pyramid", ("pyramid",), (Param("height", 0.45, 1.4, 0.8, "tall", "flat"),), _pyramid)


def _prism(p: dict[str, float]) -> list[Part]:
    # A triangular cross-section (base 1, apex height h) in xy, extruded along z.
    h, L = p["height"], p["length"]
    tri = [[-0.5, 0.0], [0.5, 0.0], [0.0, h]]
    pts = [[x, y, z] for x, y in tri for z in (-L / 2, L / 2)]
    return [Part("body", hull(pts), "body")]


PRISM = _primitive(
    "prism", ("prism", "triangular prism"),
    (Param("length", 0.7, 2.5, 1.4, "long", "short"), Param("height", 0.5, 1.3, 0.87, "tall", "flat")),
    _prism,
)


def _ellipsoid(p: dict[str, float]) -> list[Part]:
    # Always longest along x (radius 1) so it never reads as a sphere.
    return [Part("body", sphere(1.0, scale=(1.0, p["height"], p["depth"])), "body")]


ELLIPSOID = _primitive(
    "ellipsoid", ("ellipsoid", "oval solid"),
    (Param("height", 0.35, 0.7, 0.55, "tall", "flat"), Param("depth", 0.35, 0.7, 0.55, "thick", "thin")),
    _ellipsoid,
)

PRIMITIVES: tuple[ObjectClass, ...] = (
    CUBE, SPHERE, CYLINDER, CONE, TORUS, CAPSULE, PYRAMID, PRISM, ELLIPSOID,
)
