"""The procedural object classes: valid watertight parts over the whole parameter box, a clean
vocabulary (unique nouns, no noun hidden in another class's words), working hinges, sane motions."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from gen3d.data.motions import MOTIONS, rotation_about_axis
from gen3d.data.objects import CLASS_BY_NAME, CLASSES, NOUN_WORDS, get_class
from gen3d.data.parts import ObjectClass

NAMED = (
    "cube sphere cylinder cone torus capsule pyramid prism ellipsoid mug chair table lamp snowman tree house "
    "mushroom rocket dumbbell bottle bench car chest laptop vase bowl hammer"
).split()
HINGED = {"chest", "laptop", "house"}
MOTION_NAMES = {m.name for m in MOTIONS}
MAX_FACES = 8000


def _param_sets(c: ObjectClass) -> list[dict[str, float]]:
    """Canonical, every corner of the parameter box, and three seeded random draws."""
    sets = [c.canonical_params]
    for corner in itertools.product(*[(p.lo, p.hi) for p in c.params]):
        sets.append({p.name: v for p, v in zip(c.params, corner)})
    rng = np.random.default_rng(1234)
    sets += [c.sample_params(rng) for _ in range(3)]
    return sets


def test_class_roster():
    assert len(CLASSES) >= 24
    assert set(NAMED) <= set(CLASS_BY_NAME)
    assert len(CLASS_BY_NAME) == len(CLASSES)
    assert sum(c.kind == "primitive" for c in CLASSES) >= 9
    assert sum(c.kind == "composite" for c in CLASSES) >= 17


@pytest.mark.parametrize("c", CLASSES, ids=lambda c: c.name)
def test_parts_valid_over_the_parameter_box(c: ObjectClass):
    slots = {s.name for s in c.slots}
    for params in _param_sets(c):
        parts = c.build(params)
        assert parts, (c.name, params)
        assert len({p.name for p in parts}) == len(parts), f"{c.name}: duplicate part names"
        faces = 0
        for p in parts:
            m = p.mesh
            assert len(m.faces) > 0 and np.isfinite(m.vertices).all(), (c.name, p.name)
            assert m.is_watertight, (c.name, p.name, params)
            assert m.volume > 0, f"{c.name}.{p.name}: inward-facing normals at {params}"
            assert p.slot in slots, (c.name, p.name, p.slot)
            faces += len(m.faces)
        assert faces < MAX_FACES, (c.name, faces)
        assert {p.slot for p in parts} == slots, f"{c.name}: a slot is never painted at {params}"


@pytest.mark.parametrize("c", CLASSES, ids=lambda c: c.name)
def test_parts_touch_each_other(c: ObjectClass):
    """No floating part: the graph 'bounding boxes overlap' over the parts is connected."""
    for params in (c.canonical_params, *_param_sets(c)[1:3]):
        boxes = [p.mesh.bounds for p in c.build(params)]
        reached, frontier = {0}, [0]
        while frontier:
            i = frontier.pop()
            for j, b in enumerate(boxes):
                if j not in reached and np.all(boxes[i][0] <= b[1] + 1e-6) and np.all(b[0] <= boxes[i][1] + 1e-6):
                    reached.add(j)
                    frontier.append(j)
        assert len(reached) == len(boxes), f"{c.name}: floating parts at {params}"


@pytest.mark.parametrize("c", CLASSES, ids=lambda c: c.name)
def test_builds_are_deterministic(c: ObjectClass):
    params = c.sample_params(np.random.default_rng(7))
    a, b = c.build(dict(params)), c.build(dict(params))
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b):
        assert np.array_equal(pa.mesh.vertices, pb.mesh.vertices)
        assert np.array_equal(pa.mesh.faces, pb.mesh.faces)


@pytest.mark.parametrize("c", CLASSES, ids=lambda c: c.name)
def test_params_and_slots_declared_sensibly(c: ObjectClass):
    lo, hi = (1, 5) if c.kind == "primitive" else (2, 5)
    assert lo <= len(c.params) <= hi, c.name
    assert len({p.name for p in c.params}) == len(c.params)
    for p in c.params:
        assert p.lo < p.hi and p.lo <= p.canonical <= p.hi, (c.name, p.name)
        assert p.word_hi is None or p.word_hi != p.word_lo
    assert (len(c.slots) == 1) if c.kind == "primitive" else (2 <= len(c.slots) <= 4), c.name
    assert len({s.name for s in c.slots}) == len(c.slots)
    for s in c.slots[1:]:
        assert s.words, f"{c.name}: secondary slot {s.name} needs caption words"


def test_nouns_unique_and_resolvable():
    nouns = [n for c in CLASSES for n in c.nouns]
    assert len(nouns) == len(set(nouns)) == len(NOUN_WORDS)
    for c in CLASSES:
        assert c.nouns[0] == c.name
        for n in c.nouns:
            assert n == n.lower().strip()
            assert get_class(n.upper()) is c
    with pytest.raises(KeyError, match="unknown object class"):
        get_class("spaceship cup")


def test_no_noun_hides_inside_another_class_words():
    """Captions are parsed by whole-word noun matching: "table lamp" would also name the table."""
    for c in CLASSES:
        words = list(c.nouns) + [w for s in c.slots for w in s.words]
        words += [w for p in c.params for w in (p.word_hi, p.word_lo) if w]
        for other, cls in NOUN_WORDS.items():
            if cls == c.name:
                continue
            rx = re.compile(rf"(?<![\w-]){re.escape(other)}(?![\w-])")
            clash = [w for w in words if rx.search(w)]
            assert not clash, f"{c.name}: {clash} contain {cls}'s noun {other!r}"


@pytest.mark.parametrize("c", CLASSES, ids=lambda c: c.name)
def test_motions(c: ObjectClass):
    assert set(c.excluded_motions) <= MOTION_NAMES, c.excluded_motions
    allowed = MOTION_NAMES - set(c.excluded_motions) - (set() if c.hinge else {"open"})
    assert len(allowed) >= 5, (c.name, allowed)
    assert ("open" in allowed) == (c.hinge is not None)


def test_hinged_classes():
    assert {c.name for c in CLASSES if c.hinge is not None} == HINGED


@pytest.mark.parametrize("name", sorted(HINGED))
def test_hinge_opens_outward_and_moves_only_its_parts(name: str):
    c = CLASS_BY_NAME[name]
    h = c.hinge
    for params in _param_sets(c)[:6]:
        parts = {p.name: p.mesh for p in c.build(params)}
        assert set(h.parts) <= set(parts), (name, h.parts)
        origin = np.asarray(h.origin(params), float)
        assert origin.shape == (3,) and np.isfinite(origin).all()
        assert 30 <= h.max_angle_deg <= 180
        rot = rotation_about_axis(np.asarray(h.axis), np.radians(h.max_angle_deg))
        fixed = [m for n, m in parts.items() if n not in h.parts]
        fixed_hi = np.max([m.bounds[1] for m in fixed], axis=0)
        for n in h.parts:
            v = parts[n].vertices - origin
            opened = v @ rot[:3, :3].T + origin
            assert not np.allclose(opened, parts[n].vertices)
            if name == "house":  # the door swings out of the front wall (+z), not into the house
                assert opened[:, 2].max() > parts[n].vertices[:, 2].max() + 0.1
            else:  # lids and screens rise above the body instead of swinging through it
                assert opened[:, 1].max() > fixed_hi[1] + 0.3, (name, n)
        # The closed pose is what build returns: the hinge line lies on the object's closed bounds.
        lo = np.min([m.bounds[0] for m in parts.values()], axis=0)
        hi = np.max([m.bounds[1] for m in parts.values()], axis=0)
        assert np.all(origin >= lo - 0.05) and np.all(origin <= hi + 0.05), (name, origin)
