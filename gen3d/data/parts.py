"""The vocabulary of the procedural world: parameters, colour slots, parts, hinges, object classes.

An :class:`ObjectClass` turns a parameter dict into a list of :class:`Part` meshes, each painted
by one colour slot. Builders work in any units with y up; :mod:`gen3d.data.world` centres every
instance and scales its largest extent to a fixed size, so only proportions matter here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import trimesh


@dataclass(frozen=True)
class Param:
    """One shape parameter with its sampling range, its canonical value and the words for its ends.

    A sample whose value lies in the top quarter of the range may be captioned with ``word_hi``
    (e.g. "tall"), one in the bottom quarter with ``word_lo`` (e.g. "short").
    """

    name: str
    lo: float
    hi: float
    canonical: float
    word_hi: str | None = None
    word_lo: str | None = None

    def __post_init__(self) -> None:
        if not (self.lo <= self.canonical <= self.hi):
            raise ValueError(f"param {self.name}: canonical {self.canonical} outside [{self.lo}, {self.hi}]")

    def adjective(self, value: float) -> str | None:
        """The proportion word a caption may use for ``value`` (None in the middle half of the range)."""
        if self.hi <= self.lo:
            return None
        u = (value - self.lo) / (self.hi - self.lo)
        if u >= 0.75:
            return self.word_hi
        if u <= 0.25:
            return self.word_lo
        return None


@dataclass(frozen=True)
class Slot:
    """A colour slot: the parts painted with one colour. ``words`` name it in captions ("legs")."""

    name: str
    words: tuple[str, ...] = ()


@dataclass
class Part:
    """A watertight triangle mesh painted with the colour of ``slot``."""

    name: str
    mesh: trimesh.Trimesh
    slot: str


@dataclass(frozen=True)
class Hinge:
    """An articulated part for the open/close motion: ``parts`` rotate about ``axis`` through ``origin``.

    ``origin`` and ``axis`` are given as functions of the parameters (builder units, before the
    world normalises the object), and ``max_angle_deg`` is the fully open angle.
    """

    parts: tuple[str, ...]
    origin: Callable[[dict[str, float]], tuple[float, float, float]]
    axis: tuple[float, float, float]
    max_angle_deg: float


@dataclass(frozen=True)
class ObjectClass:
    """A class of procedural objects.

    - ``nouns``: the canonical noun first, then synonyms captions may use ("mug", "cup", "coffee cup").
    - ``slots``: colour slots, the primary one (the colour a caption names first) first.
    - ``build``: params -> parts; must give watertight part meshes for every value in the ranges.
    """

    name: str
    nouns: tuple[str, ...]
    kind: Literal["primitive", "composite"]
    params: tuple[Param, ...]
    slots: tuple[Slot, ...]
    build: Callable[[dict[str, float]], list[Part]]
    hinge: Hinge | None = None
    # Motions that make no sense for this class (e.g. "roll" for a table); see gen3d.data.motions.
    excluded_motions: tuple[str, ...] = field(default_factory=tuple)

    @property
    def canonical_params(self) -> dict[str, float]:
        return {p.name: p.canonical for p in self.params}

    def sample_params(self, rng: np.random.Generator) -> dict[str, float]:
        return {p.name: float(rng.uniform(p.lo, p.hi)) for p in self.params}

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"{self.name} has no parameter {name!r}")
