from __future__ import annotations

import numpy as np
import pytest
import torch

from gen3d.errors import ConfigError, DataError
from gen3d.priors.mvdata import MVDataConfig, MVDataset, PriorRig, build_dataset, from_network, to_network


def test_dataset_shapes_captions_and_training_split(tiny_data):
    ds = MVDataset(tiny_data)
    assert len(ds) == 8 and ds.views == 4
    assert ds.rgb.shape == (8, 4, 3, 32, 32) and ds.rgb.dtype == np.uint8
    assert ds.alpha.shape == (8, 4, 32, 32) and ds.depth.shape == (8, 4, 32, 32)
    assert not any(m["heldout"] for m in ds.meta)  # never a held-out combination
    assert all(len(m["captions"]) == 3 for m in ds.meta)
    # every object is visible in every view, and depth sits around the rig radius where alpha is set
    assert (ds.alpha.reshape(8, 4, -1).max(-1) == 255).all()
    d = ds.depth.astype(np.float32)[ds.alpha == 255]
    assert abs(float(np.median(d)) - ds.rig.radius) < 0.6


def test_build_resumes_and_refuses_a_different_config(tiny_data, tmp_path):
    cfg = MVDataConfig(out=str(tiny_data), n=8, shard_size=4, captions=2, rig=PriorRig(views=4, res=32), supersample=1, workers=1)
    index = build_dataset(cfg, quiet=True)
    assert index["rendered_shards_this_run"] == 0  # all shards were there
    with pytest.raises(ConfigError, match="another config"):
        build_dataset(MVDataConfig(out=str(tiny_data), n=9, shard_size=4, rig=PriorRig(views=4, res=32), workers=1), quiet=True)


def test_corrupt_or_missing_dataset_is_named(tmp_path, tiny_data):
    with pytest.raises(DataError, match="no dataset.json"):
        MVDataset(tmp_path)
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_data, bad)
    (bad / "shard_00000.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="shard_00000.safetensors"):
        MVDataset(bad)


def test_network_encoding_round_trips():
    rgb = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    alpha = torch.zeros(2, 8, 8, dtype=torch.uint8)
    alpha[:, 2:6, 2:6] = 255
    depth = torch.where(alpha > 0, torch.full((2, 8, 8), 2.3), torch.zeros(2, 8, 8))
    x = to_network(rgb, alpha, depth, radius=2.6)
    assert x.shape == (2, 5, 8, 8) and float(x.abs().max()) <= 1.0
    back = from_network(x, radius=2.6)
    assert torch.allclose(back["rgb"] * 255, rgb.float(), atol=1e-3)
    assert torch.allclose(back["alpha"], alpha.float() / 255)
    assert torch.allclose(back["depth"], depth, atol=1e-5)


@pytest.mark.parametrize("start", [0.0, 45.0])
def test_mirror_order_maps_the_mirrored_object_onto_flipped_views(start):
    """Training on mirror images relies on this: the mirror image (x -> -x) of an object, seen from
    the rig, is the rig's views re-ordered by ``mirror_order`` and flipped left-right."""
    from gen3d.data.render import MeshRenderer, RenderConfig
    from gen3d.data.world import build_object, sample_spec

    rig = PriorRig(azimuth_start_deg=start, res=32)
    v, f, c = build_object(sample_spec(0, 3, "train")).arrays()  # an asymmetric object
    v = v + np.array([0.15, 0.0, 0.05], np.float32)  # off-centre, so a wrong order cannot match by symmetry
    cfg = RenderConfig(light_dir=(0.0, 0.8, 0.4), supersample=1)  # a key light in the mirror plane
    views = MeshRenderer(v, f, c, cfg).render(rig.cameras()).alpha
    mirrored = MeshRenderer(v * np.array([-1, 1, 1], np.float32), f, c, cfg).render(rig.cameras()).alpha
    order = rig.mirror_order()
    assert order is not None
    for i, j in enumerate(order):
        assert np.abs(mirrored[i] - views[j][:, ::-1]).mean() < 0.01
    assert PriorRig(azimuth_start_deg=30.0).mirror_order() is None
