"""Which class of the procedural world a mesh depicts: the class rule of ``gen3d eval generate``.

Both rules are nearest-neighbour by symmetric Chamfer-L1 (``gen3d.geometry.metrics``: the mean of
the two directions' mean nearest-neighbour distances) after normalising each shape by its own
bounding box (centre 0, diagonal 1; ``normalization="each_bbox"``), so the output's size and place
do not matter:

- ``"canonical"``: one mesh per class, at the class's canonical proportions.
- ``"exemplars"`` (what the class-accuracy target uses): per class, the canonical mesh and, for each
  shape parameter, the class at that parameter's two ends of its sampling range with the others
  canonical: 1 + 2k meshes for k parameters, 163 for the 27 classes. A class's distance is that of
  its nearest exemplar.

Why two: shapes vary within a class, and the canonical rule takes proportions for identity. After
bounding-box normalisation a tall cone lies nearer the canonical rocket than the canonical cone, a
tall cylinder nearer the bottle, a tall pyramid nearer the cone. Measured on ground-truth meshes
drawn from the training distribution (8 per class, 216 draws, seed 777, 2,000 points per shape;
``python benchmarks/class_rule.py --source mesh --per-class 8 --points 2000``): the canonical rule
names 88.9 % of them correctly, the exemplar rule 99.5 % (its one miss: a short cylinder read as a
cube). A generator that draws its shapes from the world's own distribution would lose about 1
prompt in 9 to the canonical rule whatever its quality; the exemplar rule asks whether the output
is the prompted kind of object. docs/prior.md (Evaluation) has the same comparison on meshes
reconstructed from ground-truth renders, as the evaluation's meshes are.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.spatial import cKDTree

from gen3d.geometry.metrics import _bbox_frame
from gen3d.geometry.sampling import Geometry, to_point_cloud

Rule = Literal["canonical", "exemplars"]
RULES: tuple[str, ...] = ("canonical", "exemplars")


def class_meshes(rule: Rule = "exemplars", classes: tuple[str, ...] | None = None) -> dict[str, list[Any]]:
    """The reference meshes of each class under ``rule`` (the canonical mesh first), in world units."""
    from gen3d.data.objects import CLASS_BY_NAME, CLASSES
    from gen3d.data.world import build_object, canonical_spec

    if rule not in RULES:
        raise ValueError(f"class rule must be one of {RULES}, got {rule!r}")
    names = classes or tuple(c.name for c in CLASSES)
    out: dict[str, list[Any]] = {}
    for name in names:
        c = CLASS_BY_NAME[name]
        base = canonical_spec(name)
        specs = [base]
        if rule == "exemplars":
            for p in c.params:
                for v in (p.lo, p.hi):
                    if v != p.canonical:
                        specs.append(dataclasses.replace(base, params={**base.params, p.name: v}))
        out[name] = [build_object(s).to_trimesh() for s in specs]
    return out


def _normalised(geometry: Geometry, n_points: int, rng: np.random.Generator) -> np.ndarray:
    centre, diag = _bbox_frame(geometry)
    return (to_point_cloud(geometry, n_points, rng).points - centre) / diag


@dataclass
class ClassRule:
    """A nearest-class classifier; build once (``ClassRule.build``), call on many meshes.

    Distances equal ``mesh_metrics(mesh, ref, n_points=n_points, normalization="each_bbox",
    seed=seed).chamfer_l1`` for every reference mesh: the same sampling streams are used.
    """

    names: list[str]
    owners: list[int]  # index into names of each reference
    points: list[np.ndarray]
    trees: list[cKDTree]
    n_points: int
    seed: int
    rule: str

    @classmethod
    def build(cls, rule: Rule = "exemplars", n_points: int = 4000, seed: int = 0,
              meshes: dict[str, list[Any]] | None = None) -> ClassRule:
        """``meshes``: class name -> reference meshes (default: :func:`class_meshes` of ``rule``)."""
        meshes = meshes if meshes is not None else class_meshes(rule)
        _, seed_ref = np.random.SeedSequence(seed).spawn(2)
        names, owners, points = list(meshes), [], []
        for k, name in enumerate(names):
            for m in meshes[name]:
                owners.append(k)
                points.append(_normalised(m, n_points, np.random.default_rng(seed_ref)))
        return cls(names, owners, points, [cKDTree(p) for p in points], n_points, seed, rule)

    def distances(self, geometry: Geometry) -> dict[str, float]:
        """Each class's Chamfer-L1 distance to ``geometry`` (its nearest reference's)."""
        seed_pred, _ = np.random.SeedSequence(self.seed).spawn(2)
        p = _normalised(geometry, self.n_points, np.random.default_rng(seed_pred))
        tree = cKDTree(p)
        best = dict.fromkeys(self.names, float("inf"))
        for k, q, tq in zip(self.owners, self.points, self.trees):
            d = (float(tq.query(p, k=1, workers=-1)[0].mean()) + float(tree.query(q, k=1, workers=-1)[0].mean())) / 2
            name = self.names[k]
            best[name] = min(best[name], d)
        return best

    def __call__(self, geometry: Geometry) -> tuple[str, dict[str, float]]:
        """(predicted class, every class's distance)."""
        d = self.distances(geometry)
        return min(d, key=d.get), d


__all__ = ["RULES", "ClassRule", "class_meshes"]
