from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gen3d.data.world import build_object, canonical_spec
from gen3d.eval.classify import ClassRule, class_meshes
from gen3d.geometry.metrics import mesh_metrics

CLASSES = ("cone", "rocket", "pyramid", "cylinder", "bottle", "sphere")


def _shape(cls: str, **params: float):
    s = canonical_spec(cls)
    return build_object(dataclasses.replace(s, params={**s.params, **params})).to_trimesh()


def test_distances_are_mesh_metrics_chamfer():
    meshes = class_meshes("canonical", ("cone", "mug"))
    rule = ClassRule.build("canonical", n_points=600, seed=3, meshes=meshes)
    query = _shape("cone", height=1.9)
    d = rule.distances(query)
    for name, (ref,) in meshes.items():
        want = mesh_metrics(query, ref, n_points=600, normalization="each_bbox", seed=3).chamfer_l1
        assert d[name] == pytest.approx(want, rel=1e-12)


def test_exemplars_span_each_parameter_range():
    ex = class_meshes("exemplars", ("cube", "sphere", "chair"))
    # canonical + both ends of every parameter (none of them equals its canonical value here)
    assert [len(v) for v in ex.values()] == [1 + 2 * 2, 1 + 2 * 1, 1 + 2 * 4]
    canon = class_meshes("canonical", ("cube",))["cube"][0]
    assert np.allclose(ex["cube"][0].bounds, canon.bounds)  # the canonical mesh comes first
    with pytest.raises(ValueError, match="canonical"):
        class_meshes("nearest")


def test_exemplar_rule_reads_proportions_as_shape_not_class():
    """A tall cone is a cone: the canonical rule calls it a rocket (its bbox-normalised shape lies nearer
    the canonical rocket), the exemplar rule a cone; the same for a tall cylinder and a tall pyramid.
    The values are inside the sampling ranges, not at the exemplars' ends."""
    can = ClassRule.build("canonical", 1000, meshes=class_meshes("canonical", CLASSES))
    ex = ClassRule.build("exemplars", 1000, meshes=class_meshes("exemplars", CLASSES))
    for cls, wrong, h in (("cone", "rocket", 2.2), ("cylinder", "bottle", 2.2), ("pyramid", "cone", 1.2)):
        m = _shape(cls, height=h)
        assert can(m)[0] == wrong
        pred, d = ex(m)
        assert pred == cls and d[cls] < min(v for k, v in d.items() if k != cls)
    # and the canonical shapes stay themselves
    for cls in CLASSES:
        assert ex(_shape(cls))[0] == cls


def test_rescore_class_reads_the_saved_mesh_with_both_rules(tmp_path):
    from gen3d.errors import DataError
    from gen3d.eval.generate import rescore_class

    rules = {r: ClassRule.build(r, 800, meshes=class_meshes(r, CLASSES)) for r in ("exemplars", "canonical")}
    (tmp_path / "0006_cone").mkdir()
    _shape("cone", height=2.2).export(tmp_path / "0006_cone" / "mesh.glb")
    old = {"index": 6, "prompt": "a tall cone", "class": "cone", "pred_class": "rocket", "class_ok": False,
           "folder": "0006_cone", "fscore": 0.1}
    row = rescore_class(old, tmp_path / "0006_cone", rules)
    assert (row["pred_class"], row["class_ok"]) == ("cone", True)  # the exemplar rule
    assert (row["pred_class_canonical"], row["class_ok_canonical"]) == ("rocket", False)
    assert row["fscore"] == 0.1 and next(iter(row["chamfer_to_class"])) == "cone"
    with pytest.raises(DataError, match="delete its per_prompt row"):
        rescore_class(old, tmp_path / "gone", rules)
