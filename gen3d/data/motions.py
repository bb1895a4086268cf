"""Motions for 4D: time-parameterised rigid transforms of a whole object or of its hinged parts.

Every motion is a function of normalised time ``t`` in [0, 1] (one clip) and of the object's
normalised size, so it can be sampled at any frame count. Objects live in the world's normalised
frame (y up, bounding box centred at the origin, largest extent ``extent``). Most motions are
cyclic (t=0 and t=1 give the same pose) so clips loop; ``roll`` and ``hop`` travel and are not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])


def rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1.0]])


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])


def translate(x: float, y: float, z: float) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def scale(sx: float, sy: float, sz: float) -> np.ndarray:
    return np.diag([sx, sy, sz, 1.0])


def about(pivot: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply ``m`` about ``pivot`` instead of the origin."""
    return translate(*pivot) @ m @ translate(*(-np.asarray(pivot)))


def rotation_about_axis(axis: np.ndarray, angle: float) -> np.ndarray:
    """4x4 rotation by ``angle`` about a unit ``axis`` through the origin (Rodrigues' formula)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    r = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)
    m = np.eye(4)
    m[:3, :3] = r
    return m


@dataclass(frozen=True)
class ObjectFrame:
    """What a motion needs to know about the object: its half-extents in the normalised frame."""

    half: tuple[float, float, float]  # half bounding-box size along x, y, z

    @property
    def bottom(self) -> float:
        return -self.half[1]


@dataclass(frozen=True)
class Motion:
    """A named motion. ``transform(t, frame)`` is the whole-object 4x4 at time t; ``hinge_angle(t)``
    is the open fraction in [0, 1] for articulated motions (None for rigid ones)."""

    name: str
    words: tuple[str, ...]  # caption forms: ("spinning", "turning around") ...
    transform: Callable[[float, ObjectFrame], np.ndarray]
    hinge_fraction: Callable[[float], float] | None = None
    cyclic: bool = True


def _spin(t: float, f: ObjectFrame) -> np.ndarray:
    return rot_y(2 * math.pi * t)  # one full turn per clip


def _bounce(t: float, f: ObjectFrame) -> np.ndarray:
    # Two bounces: height |sin| (a ball's parabola-like arcs meeting the ground at t=0, 0.5, 1).
    return translate(0.0, 0.35 * f.half[1] * 2 * abs(math.sin(2 * math.pi * t)), 0.0)


def _swing(t: float, f: ObjectFrame) -> np.ndarray:
    # Pendulum about a pivot above the object, swinging in the x-y plane, amplitude 25 degrees.
    pivot = np.array([0.0, f.half[1] + 0.5, 0.0])
    return about(pivot, rot_z(math.radians(25.0) * math.sin(2 * math.pi * t)))


def _pulse(t: float, f: ObjectFrame) -> np.ndarray:
    s = 1.0 + 0.15 * math.sin(2 * math.pi * t)
    return scale(s, s, s)


def _hop(t: float, f: ObjectFrame) -> np.ndarray:
    # Two hops travelling along +x with squash on landing and stretch in the air.
    phase = (2 * t) % 1.0
    h = math.sin(math.pi * phase)
    x = -0.3 + 0.6 * t
    sy = 1.0 + 0.15 * h - 0.15 * (1 - h) ** 4
    sxz = 1.0 / math.sqrt(sy)
    squash = about(np.array([0.0, f.bottom, 0.0]), scale(sxz, sy, sxz))
    return translate(x, 0.4 * f.half[1] * h, 0.0) @ squash


def _roll(t: float, f: ObjectFrame) -> np.ndarray:
    # Rolls along +x without slipping about its vertical middle: x = r * theta, rotation -theta about z.
    r = max(f.half[1], 1e-3)
    theta = math.pi * (t - 0.5)
    return translate(r * theta, 0.0, 0.0) @ rot_z(-theta)


def _wobble(t: float, f: ObjectFrame) -> np.ndarray:
    # A tilt of 12 degrees whose direction precesses once per clip, pivoting on the base.
    a = 2 * math.pi * t
    tilt = math.radians(12.0)
    m = rot_x(tilt * math.sin(a)) @ rot_z(tilt * math.cos(a))
    return about(np.array([0.0, f.bottom, 0.0]), m)


def _identity(t: float, f: ObjectFrame) -> np.ndarray:
    return np.eye(4)


def _open_close(t: float) -> float:
    return 0.5 - 0.5 * math.cos(2 * math.pi * t)  # closed -> open -> closed


MOTIONS: tuple[Motion, ...] = (
    Motion("spin", ("spinning", "turning around", "rotating"), _spin),
    Motion("bounce", ("bouncing", "bouncing up and down"), _bounce),
    Motion("swing", ("swinging", "swinging like a pendulum"), _swing),
    Motion("pulse", ("pulsing", "growing and shrinking"), _pulse),
    Motion("hop", ("hopping", "jumping forward"), _hop, cyclic=False),
    Motion("roll", ("rolling", "rolling along"), _roll, cyclic=False),
    Motion("wobble", ("wobbling", "wobbling in place"), _wobble),
    Motion("open", ("opening and closing",), _identity, hinge_fraction=_open_close),
)
MOTION_BY_NAME: dict[str, Motion] = {m.name: m for m in MOTIONS}


def get_motion(name: str) -> Motion:
    if name not in MOTION_BY_NAME:
        raise KeyError(f"unknown motion {name!r}; known motions: {', '.join(MOTION_BY_NAME)}")
    return MOTION_BY_NAME[name]
