"""The procedural world: sampling object specifications, the held-out split, building posed meshes.

An :class:`ObjectSpec` is the exact ground truth of one sample (class, shape parameters, colour of
every slot, overall scale, motion); it is stored with every rendered sample. :func:`build_object`
turns a spec into coloured part meshes in the normalised frame (y up, bounding box centred at the
origin, largest extent ``BASE_EXTENT * scale``), and :func:`pose_object` applies a motion at time t.

Held-out split (never in training; see ``gen3d data catalogue`` and docs/world.md):
- colour-class: class number i (in catalogue order) holds out the primary colours
  ``COLORS[(5 i + 1) % 12]`` and ``COLORS[(5 i + 7) % 12]`` (5 is coprime to 12, so every colour is held out for some classes); a training sample of that class
  uses neither colour on any of its slots.
- class-motion: class i holds out ``allowed_motions(cls)[i % len(allowed)]``.
Everything is deterministic from (seed, index).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import trimesh

from gen3d.data.colors import COLOR_BY_NAME, COLORS
from gen3d.data.motions import MOTIONS, ObjectFrame, get_motion, rotation_about_axis, about
from gen3d.data.objects import CLASS_BY_NAME, CLASSES
from gen3d.data.parts import ObjectClass

BASE_EXTENT = 0.9  # largest bounding-box extent of an object at scale 1 (world units)
SCALE_RANGE = (0.75, 1.15)
SMALL_BELOW, LARGE_ABOVE = 0.85, 1.05  # scale thresholds for the words "small" / "large"
P_MONOCHROME = 0.6  # probability that every slot takes the primary colour

Split = Literal["train", "heldout", "all"]


@dataclass(frozen=True)
class ObjectSpec:
    """Exact ground truth of one procedural sample."""

    cls: str
    params: dict[str, float]
    colors: dict[str, str]  # slot name -> colour name; the class's first slot is the primary colour
    scale: float = 1.0
    motion: str | None = None
    seed: int = 0

    @property
    def object_class(self) -> ObjectClass:
        return CLASS_BY_NAME[self.cls]

    @property
    def primary_color(self) -> str:
        return self.colors[self.object_class.slots[0].name]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "ObjectSpec":
        return cls(
            cls=d["cls"],
            params={k: float(v) for k, v in d["params"].items()},
            colors=dict(d["colors"]),
            scale=float(d.get("scale", 1.0)),
            motion=d.get("motion"),
            seed=int(d.get("seed", 0)),
        )


# --------------------------------------------------------------------------------------------------
# Held-out split
# --------------------------------------------------------------------------------------------------


def allowed_motions(c: ObjectClass) -> tuple[str, ...]:
    motions = [m.name for m in MOTIONS if m.name not in c.excluded_motions]
    if c.hinge is None:
        motions = [m for m in motions if m != "open"]
    return tuple(motions)


def heldout_colors(c: ObjectClass) -> tuple[str, str]:
    i = [k.name for k in CLASSES].index(c.name)
    return COLORS[(5 * i + 1) % len(COLORS)].name, COLORS[(5 * i + 7) % len(COLORS)].name


def heldout_motion(c: ObjectClass) -> str:
    i = [k.name for k in CLASSES].index(c.name)
    allowed = allowed_motions(c)
    return allowed[i % len(allowed)]


def heldout_combinations() -> dict[str, list[tuple[str, str]]]:
    """{"color_class": [(colour, class), ...], "class_motion": [(class, motion), ...]}."""
    return {
        "color_class": [(col, c.name) for c in CLASSES for col in heldout_colors(c)],
        "class_motion": [(c.name, heldout_motion(c)) for c in CLASSES],
    }


def is_heldout(spec: ObjectSpec) -> bool:
    """True if the spec contains a held-out colour-class or class-motion combination."""
    c = spec.object_class
    hc = heldout_colors(c)
    if any(col in hc for col in spec.colors.values()):
        return True
    return spec.motion is not None and spec.motion == heldout_motion(c)


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------


def sample_spec(
    seed: int,
    index: int = 0,
    split: Split = "train",
    motion: bool = False,
    classes: tuple[str, ...] | None = None,
) -> ObjectSpec:
    """Sample sample ``index`` of the stream with ``seed``: deterministic, independent per index.

    ``split="train"`` never yields a held-out combination; ``"heldout"`` always yields one (its
    primary colour is held out for the class, or, with ``motion``, its motion is); ``"all"`` either.
    """
    rng = np.random.default_rng([seed, index, 0x6E3D])
    names = classes or tuple(c.name for c in CLASSES)
    for name in names:
        if name not in CLASS_BY_NAME:
            raise KeyError(f"unknown class {name!r}; known classes: {', '.join(CLASS_BY_NAME)}")
    c = CLASS_BY_NAME[names[int(rng.integers(len(names)))]]
    params = c.sample_params(rng)
    scale = float(rng.uniform(*SCALE_RANGE))
    held_cols = heldout_colors(c)
    all_cols = [k.name for k in COLORS]

    heldout_by_motion = motion and split == "heldout" and bool(rng.random() < 0.5)
    if split == "train":
        palette = [k for k in all_cols if k not in held_cols]
        primary = palette[int(rng.integers(len(palette)))]
    elif split == "heldout" and not heldout_by_motion:
        primary = held_cols[int(rng.integers(2))]
        palette = [k for k in all_cols if k not in held_cols]
    else:
        palette = all_cols if split == "all" else [k for k in all_cols if k not in held_cols]
        primary = palette[int(rng.integers(len(palette)))]

    colors = {s.name: primary for s in c.slots}
    if len(c.slots) > 1 and rng.random() >= P_MONOCHROME:
        # One secondary slot gets its own colour (captions then mention it).
        slot = c.slots[1 + int(rng.integers(len(c.slots) - 1))].name
        others = [k for k in palette if k != primary]
        colors[slot] = others[int(rng.integers(len(others)))]

    mname = None
    if motion:
        allowed = list(allowed_motions(c))
        hm = heldout_motion(c)
        if split == "train":
            allowed.remove(hm)
        elif heldout_by_motion:
            allowed = [hm]
        mname = allowed[int(rng.integers(len(allowed)))]
    return ObjectSpec(c.name, params, colors, scale, mname, seed=int(seed) * 1_000_003 + int(index))


def canonical_spec(cls: str, color: str = "gray", motion: str | None = None) -> ObjectSpec:
    """The class at its canonical parameters, one colour, scale 1."""
    c = CLASS_BY_NAME[cls]
    return ObjectSpec(c.name, c.canonical_params, {s.name: color for s in c.slots}, 1.0, motion)


# --------------------------------------------------------------------------------------------------
# Building meshes
# --------------------------------------------------------------------------------------------------


@dataclass
class PosedPart:
    name: str
    slot: str
    vertices: np.ndarray  # (P, 3) float64
    faces: np.ndarray  # (F, 3) int64
    rgb: tuple[float, float, float]
    hinged: bool = False


@dataclass
class SceneObject:
    """An object's coloured parts in the normalised frame, plus what motions need."""

    spec: ObjectSpec
    parts: list[PosedPart]
    frame: ObjectFrame
    hinge_origin: np.ndarray | None = None
    hinge_axis: np.ndarray | None = None
    hinge_max_rad: float = 0.0
    _cache: dict = field(default_factory=dict, repr=False)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Concatenated vertices (P,3) float32, faces (F,3) int32, per-face colours (F,3) float32."""
        vs, fs, cs, off = [], [], [], 0
        for p in self.parts:
            vs.append(p.vertices)
            fs.append(p.faces + off)
            cs.append(np.broadcast_to(np.asarray(p.rgb, np.float32), (len(p.faces), 3)))
            off += len(p.vertices)
        return (
            np.concatenate(vs).astype(np.float32),
            np.concatenate(fs).astype(np.int32),
            np.concatenate(cs).astype(np.float32),
        )

    def to_trimesh(self) -> trimesh.Trimesh:
        """One mesh with per-vertex colours (parts keep their own vertices, so colours stay crisp)."""
        v, f, _ = self.arrays()
        vc = np.concatenate(
            [np.tile(np.round(np.clip(p.rgb, 0, 1) * 255), (len(p.vertices), 1)) for p in self.parts]
        ).astype(np.uint8)
        vc = np.concatenate([vc, np.full((len(vc), 1), 255, np.uint8)], axis=1)
        return trimesh.Trimesh(v, f, vertex_colors=vc, process=False)


def build_object(spec: ObjectSpec) -> SceneObject:
    """Build, centre and scale the object of ``spec`` (rest pose, t = 0)."""
    c = spec.object_class
    parts = c.build(dict(spec.params))
    lo = np.min([p.mesh.bounds[0] for p in parts], axis=0)
    hi = np.max([p.mesh.bounds[1] for p in parts], axis=0)
    center = (lo + hi) / 2
    s = BASE_EXTENT * spec.scale / float(np.max(hi - lo))
    hinged = set(c.hinge.parts) if c.hinge is not None else set()
    posed = []
    for p in parts:
        v = (np.asarray(p.mesh.vertices, np.float64) - center) * s
        rgb = COLOR_BY_NAME[spec.colors[p.slot]].rgb
        posed.append(PosedPart(p.name, p.slot, v, np.asarray(p.mesh.faces, np.int64), rgb, p.name in hinged))
    obj = SceneObject(spec, posed, ObjectFrame(tuple(float(x) for x in (hi - lo) * s / 2)))
    if c.hinge is not None:
        obj.hinge_origin = (np.asarray(c.hinge.origin(dict(spec.params)), np.float64) - center) * s
        obj.hinge_axis = np.asarray(c.hinge.axis, np.float64)
        obj.hinge_max_rad = float(np.radians(c.hinge.max_angle_deg))
    return obj


def pose_object(obj: SceneObject, t: float) -> SceneObject:
    """The object at time ``t`` in [0, 1] of its motion (the rest pose if it has none)."""
    if obj.spec.motion is None:
        return obj
    m = get_motion(obj.spec.motion)
    whole = m.transform(float(t), obj.frame)
    hinge = np.eye(4)
    if m.hinge_fraction is not None and obj.hinge_origin is not None:
        angle = obj.hinge_max_rad * m.hinge_fraction(float(t))
        hinge = about(obj.hinge_origin, rotation_about_axis(obj.hinge_axis, angle))
    parts = []
    for p in obj.parts:
        mat = whole @ hinge if p.hinged else whole
        v = p.vertices @ mat[:3, :3].T + mat[:3, 3]
        parts.append(dataclasses.replace(p, vertices=v))
    return dataclasses.replace(obj, parts=parts, _cache={})
