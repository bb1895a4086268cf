"""The object classes of the procedural world (primitives and composites built from parts).

Builders use y-up, any units; the world normalises position and size. Every part mesh is watertight
(trimesh primitives, revolved closed profiles), so each object is near-watertight as a union.
"""

from __future__ import annotations

import numpy as np
import trimesh
from trimesh import creation

from gen3d.data.parts import Hinge, ObjectClass, Param, Part, Slot

# --------------------------------------------------------------------------------------------------
# Mesh helpers
# --------------------------------------------------------------------------------------------------


def box(size: tuple[float, float, float], center: tuple[float, float, float] = (0, 0, 0)) -> trimesh.Trimesh:
    m = creation.box(extents=size)
    m.apply_translation(center)
    return m


def cylinder_y(radius: float, height: float, center=(0.0, 0.0, 0.0), sections: int = 32) -> trimesh.Trimesh:
    """A cylinder along y (trimesh builds along z)."""
    m = creation.cylinder(radius=radius, height=height, sections=sections)
    m.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    m.apply_translation(center)
    return m


# --------------------------------------------------------------------------------------------------
# Classes
# --------------------------------------------------------------------------------------------------


def _cube(p: dict[str, float]) -> list[Part]:
    return [Part("body", box((p["width"], p["height"], p["depth"])), "body")]


CUBE = ObjectClass(
    name="cube",
    nouns=("cube", "box shape", "block"),
    kind="primitive",
    params=(
        Param("width", 0.7, 1.3, 1.0, "wide", "narrow"),
        Param("height", 0.7, 1.3, 1.0, "tall", "flat"),
        Param("depth", 0.7, 1.3, 1.0),
    ),
    slots=(Slot("body"),),
    build=_cube,
)


def _mug(p: dict[str, float]) -> list[Part]:
    r, h, t = p["radius"], p["height"], 0.08 * p["radius"]
    # Body: a closed revolved profile (outer wall, rim, inner wall, floor) so the cup is hollow and watertight.
    profile = np.array(
        [[0.0, 0.0], [r, 0.0], [r, h], [r - t, h], [r - t, 0.12 * h], [0.0, 0.12 * h]]
    )
    body = creation.revolve(profile, sections=40)  # revolves about z: rotate to y-up
    body.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    # Handle: a half torus on the +x side.
    hr = p["handle"] * h * 0.3
    handle = creation.torus(major_radius=hr, minor_radius=0.22 * hr, major_sections=24, minor_sections=12)
    # trimesh's torus lies in the xy plane already: a vertical loop beside the body.
    handle.apply_translation([r + 0.2 * hr, 0.5 * h, 0.0])
    return [Part("body", body, "body"), Part("handle", handle, "handle")]


MUG = ObjectClass(
    name="mug",
    nouns=("mug", "cup", "coffee cup", "coffee mug"),
    kind="composite",
    params=(
        Param("radius", 0.35, 0.6, 0.45, "wide", "narrow"),
        Param("height", 0.6, 1.3, 0.9, "tall", "short"),
        Param("handle", 0.8, 1.2, 1.0),
    ),
    slots=(Slot("body"), Slot("handle", ("handle",))),
    build=_mug,
    excluded_motions=("open",),
)


CLASSES: tuple[ObjectClass, ...] = (CUBE, MUG)
CLASS_BY_NAME: dict[str, ObjectClass] = {c.name: c for c in CLASSES}
# Every noun (canonical or synonym) -> class name.
NOUN_WORDS: dict[str, str] = {n: c.name for c in CLASSES for n in c.nouns}


def get_class(name: str) -> ObjectClass:
    key = NOUN_WORDS.get(name.strip().lower())
    if key is None:
        raise KeyError(f"unknown object class {name!r}; known classes: {', '.join(CLASS_BY_NAME)}")
    return CLASS_BY_NAME[key]
