from __future__ import annotations

import re

import numpy as np
import pytest

from gen3d.data.captions import SIZE_WORDS, canonical_caption, captions_for, size_word
from gen3d.data.colors import COLOR_WORDS, COLORS
from gen3d.data.motions import MOTIONS, ObjectFrame
from gen3d.data.objects import CLASSES, NOUN_WORDS
from gen3d.data.world import (
    BASE_EXTENT,
    ObjectSpec,
    allowed_motions,
    build_object,
    heldout_colors,
    heldout_combinations,
    heldout_motion,
    is_heldout,
    pose_object,
    sample_spec,
)


def test_sampling_is_deterministic_and_varied():
    a = [sample_spec(7, i, motion=True) for i in range(20)]
    b = [sample_spec(7, i, motion=True) for i in range(20)]
    assert a == b
    assert len({(s.cls, s.primary_color, s.motion) for s in a}) > 10
    assert sample_spec(8, 0) != sample_spec(7, 0)


def test_spec_json_round_trip():
    s = sample_spec(1, 3, motion=True)
    assert ObjectSpec.from_json(s.to_json()) == s


@pytest.mark.parametrize("motion", [False, True])
def test_train_split_never_contains_heldout_combinations(motion):
    specs = [sample_spec(0, i, "train", motion) for i in range(600)]
    assert not any(is_heldout(s) for s in specs)
    # Held-out colours are absent from every slot of that class in training.
    for s in specs:
        assert not set(s.colors.values()) & set(heldout_colors(s.object_class))
        if motion:
            assert s.motion != heldout_motion(s.object_class)
    # Training still covers every class and every colour.
    assert {s.cls for s in specs} == {c.name for c in CLASSES}
    assert {s.primary_color for s in specs} == {c.name for c in COLORS}


@pytest.mark.parametrize("motion", [False, True])
def test_heldout_split_always_heldout(motion):
    specs = [sample_spec(0, i, "heldout", motion) for i in range(300)]
    assert all(is_heldout(s) for s in specs)
    combos = heldout_combinations()
    cc = set(combos["color_class"])
    cm = set(combos["class_motion"])
    for s in specs:
        assert (s.primary_color, s.cls) in cc or (s.cls, s.motion) in cm


def test_heldout_table_shape():
    combos = heldout_combinations()
    assert len(combos["color_class"]) == 2 * len(CLASSES)
    assert len(set(combos["color_class"])) == 2 * len(CLASSES)
    for c in CLASSES:
        assert heldout_motion(c) in allowed_motions(c)
        assert len(allowed_motions(c)) >= 5


def test_build_object_is_centred_and_scaled():
    for i in range(10):
        spec = sample_spec(3, i)
        obj = build_object(spec)
        v, f, col = obj.arrays()
        lo, hi = v.min(0), v.max(0)
        np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-5)
        assert (hi - lo).max() == pytest.approx(BASE_EXTENT * spec.scale, rel=1e-5)
        assert col.shape == (len(f), 3)
        mesh = obj.to_trimesh()
        assert len(mesh.faces) == len(f)


_COLOR_RE = {w: re.compile(rf"(?<![\w-]){re.escape(w)}(?![\w-])") for w in COLOR_WORDS}


def _color_words_in(text: str) -> set[str]:
    return {COLOR_WORDS[w] for w, rx in _COLOR_RE.items() if rx.search(text)}


def test_captions_are_true_of_their_specs():
    for i in range(300):
        spec = sample_spec(11, i, "all", motion=bool(i % 2))
        caps = captions_for(spec, 4)
        assert caps[0] == canonical_caption(spec)
        secondary = {spec.colors[s.name] for s in spec.object_class.slots[1:]}
        for cap in caps:
            # The class is named by one of its own nouns and by no other class's noun.
            named = {NOUN_WORDS[n] for n in NOUN_WORDS if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", cap)}
            assert spec.cls in named, cap
            assert named <= {spec.cls}, (cap, named)
            # Colours mentioned are the primary colour and secondary-slot colours only.
            cols = _color_words_in(cap)
            assert spec.primary_color in cols, cap
            assert cols <= {spec.primary_color} | secondary, (cap, spec.colors)
            # Size words only when the scale says so.
            sw = size_word(spec)
            for kind, words in SIZE_WORDS.items():
                if any(re.search(rf"(?<![\w-]){w}(?![\w-])", cap) for w in words):
                    assert sw == kind, (cap, spec.scale)
            if spec.motion is not None:
                assert any(w in cap for m in MOTIONS if m.name == spec.motion for w in m.words), cap


def test_motions_sampled_at_any_frame_count_and_cyclic():
    spec = sample_spec(0, 0)
    frame = ObjectFrame((0.4, 0.5, 0.3))
    for m in MOTIONS:
        for t in np.linspace(0, 1, 7):
            T = m.transform(float(t), frame)
            assert T.shape == (4, 4) and np.isfinite(T).all()
        if m.cyclic:
            np.testing.assert_allclose(m.transform(0.0, frame), m.transform(1.0, frame), atol=1e-9)
            if m.hinge_fraction:
                assert m.hinge_fraction(0.0) == pytest.approx(m.hinge_fraction(1.0))


def test_rigid_motions_preserve_shape_and_move_it():
    for name in ("spin", "bounce", "swing", "roll", "wobble"):
        spec = next(s for i in range(500) if (s := sample_spec(2, i, "all", True)).motion == name)
        obj = build_object(spec)
        v0 = obj.arrays()[0]
        v1 = pose_object(obj, 0.3).arrays()[0]
        assert not np.allclose(v0, v1, atol=1e-4), name
        d0 = np.linalg.norm(v0[:50, None] - v0[None, :50], axis=-1)
        d1 = np.linalg.norm(v1[:50, None] - v1[None, :50], axis=-1)
        np.testing.assert_allclose(d0, d1, atol=1e-5, err_msg=name)


def test_pulse_scales_about_centre():
    spec = next(s for i in range(500) if (s := sample_spec(2, i, "all", True)).motion == "pulse")
    obj = build_object(spec)
    v0 = obj.arrays()[0]
    v1 = pose_object(obj, 0.25).arrays()[0]  # sin peak: scale 1.15
    np.testing.assert_allclose(v1, v0 * 1.15, atol=1e-5)


def test_open_moves_only_hinged_parts():
    hinged = [c for c in CLASSES if c.hinge is not None]
    assert {c.name for c in hinged} >= {"chest", "laptop", "house"}
    for c in hinged:
        _check_open(c)


def _check_open(c) -> None:
    spec = ObjectSpec(c.name, c.canonical_params, {s.name: "red" for s in c.slots}, 1.0, "open")
    obj = build_object(spec)
    posed = pose_object(obj, 0.5)  # fully open
    moved = {p.name for p, q in zip(obj.parts, posed.parts) if not np.allclose(p.vertices, q.vertices)}
    assert moved == set(c.hinge.parts)
