"""The object classes of the procedural world (primitives and composites built from parts).

Builders use y-up, any units; the world normalises position and size. Every part mesh is watertight
(trimesh primitives, revolved closed profiles, convex hulls, capped tubes), so each object is
near-watertight as a union. The classes live in :mod:`gen3d.data.shapes_primitives` and
:mod:`gen3d.data.shapes_composites`; this module assembles them and looks them up by noun.
"""

from __future__ import annotations

from gen3d.data.parts import ObjectClass
from gen3d.data.shapes_composites import (
    BENCH, BOTTLE, BOWL, CAR, CHAIR, CHEST, COMPOSITES, DUMBBELL, HAMMER, HOUSE, LAMP, LAPTOP, MUG, MUSHROOM,
    ROCKET, SNOWMAN, TABLE, TREE, VASE,
)
from gen3d.data.shapes_primitives import (
    CAPSULE, CONE, CUBE, CYLINDER, ELLIPSOID, PRIMITIVES, PRISM, PYRAMID, SPHERE, TORUS, box, cylinder_y,
)

__all__ = [
    "BENCH", "BOTTLE", "BOWL", "CAPSULE", "CAR", "CHAIR", "CHEST", "CLASSES", "CLASS_BY_NAME", "CONE", "CUBE",
    "CYLINDER", "DUMBBELL", "ELLIPSOID", "HAMMER", "HOUSE", "LAMP", "LAPTOP", "MUG", "MUSHROOM",
    "NOUN_WORDS", "PRISM", "PYRAMID", "ROCKET", "SNOWMAN", "SPHERE", "TABLE", "TORUS", "TREE", "VASE", "box",
    "cylinder_y", "get_class",
]

CLASSES: tuple[ObjectClass, ...] = PRIMITIVES + COMPOSITES
CLASS_BY_NAME: dict[str, ObjectClass] = {c.name: c for c in CLASSES}
# Every noun (canonical or synonym) -> class name.
NOUN_WORDS: dict[str, str] = {n: c.name for c in CLASSES for n in c.nouns}

if len(NOUN_WORDS) != sum(len(c.nouns) for c in CLASSES):
    raise RuntimeError("a noun names two object classes; nouns must be unique across classes")


def get_class(name: str) -> ObjectClass:
    key = NOUN_WORDS.get(name.strip().lower())
    if key is None:
        raise KeyError(f"unknown object class {name!r}; known classes: {', '.join(CLASS_BY_NAME)}")
    return CLASS_BY_NAME[key]
