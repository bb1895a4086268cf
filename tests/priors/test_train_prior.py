from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from gen3d.errors import ConfigError, DataError
from gen3d.priors.mvprior import MultiViewPrior


def test_prior_folder_loads_and_samples_posed_views(tiny_prior):
    prior = MultiViewPrior.from_pretrained(tiny_prior)
    g = prior.sample(["a red mug", "a blue chair"], seed=3, guidance=2.0, steps=3, sampler="euler")
    assert g.rgb.shape == (2, 4, 3, 32, 32) and g.alpha.shape == (2, 4, 32, 32) and g.depth.shape == (2, 4, 32, 32)
    assert float(g.rgb.min()) >= 0 and float(g.rgb.max()) <= 1
    assert g.nfe == 3 and g.info["guidance"] == 2.0 and len(g.cameras) == 4
    again = prior.sample(["a red mug", "a blue chair"], seed=3, guidance=2.0, steps=3, sampler="euler")
    assert torch.equal(g.latents, again.latents)  # seeded
    other = prior.sample(["a red mug", "a blue chair"], seed=4, guidance=2.0, steps=3, sampler="euler")
    assert not torch.equal(g.latents, other.latents)
    meta = prior.meta["training"]
    assert meta["steps"] == 4 and meta["objects"] == 8 and meta["mirrored"]
    with pytest.raises(ConfigError, match="unknown sampler"):
        prior.sample(["a mug"], sampler="nope")


def test_prior_training_resumes_exactly(tiny_data, tiny_ae, tmp_path, prior_config, monkeypatch):
    import gen3d.training.loop as loop
    from gen3d.priors.train import train_prior

    train_prior(prior_config(tiny_data, tiny_ae, tmp_path / "full", steps=4), quiet=True)
    real = loop.save_train_state

    def save_then_die(folder, modules, optimizers, meta):
        real(folder, modules, optimizers, meta)
        raise KeyboardInterrupt  # killed right after the step-2 checkpoint

    monkeypatch.setattr(loop, "save_train_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_prior(prior_config(tiny_data, tiny_ae, tmp_path / "part", steps=4), quiet=True)
    monkeypatch.undo()
    train_prior(prior_config(tiny_data, tiny_ae, tmp_path / "part", steps=4), quiet=True)
    a = MultiViewPrior.from_pretrained(tmp_path / "full" / "prior").denoiser.state_dict()
    b = MultiViewPrior.from_pretrained(tmp_path / "part" / "prior").denoiser.state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_mirrored_latents_are_the_mirrored_views(tiny_data, tiny_ae, tmp_path, prior_config):
    tiny_prior_config = prior_config
    from gen3d.autoencoders.autoencoder import Autoencoder
    from gen3d.priors.mvdata import MVDataset
    from gen3d.priors.train import encode_latents

    cfg = tiny_prior_config(tiny_data, tiny_ae, tmp_path)
    data, ae = MVDataset(tiny_data), Autoencoder.from_pretrained(tiny_ae)
    lat = encode_latents(cfg, data, ae, "cpu", True)
    assert lat.shape[:3] == (8, 2, 4)
    x = data.images([0])[0]  # V 5 H W
    mirrored_view1 = ae.encode(x[3:4].flip(-1))  # view 1 of the mirror world = view 3 flipped (azimuth -90)
    assert torch.allclose(lat[0, 1, 1], mirrored_view1[0], atol=1e-5)


def test_bad_autoencoder_path_and_channel_mismatch(tiny_data, tiny_ae, tmp_path, prior_config):
    tiny_prior_config = prior_config
    from gen3d.nets.multiview import MultiViewConfig
    from gen3d.priors.train import train_prior

    with pytest.raises(DataError, match="autoencoder folder"):
        train_prior(tiny_prior_config(tiny_data, tmp_path / "none", tmp_path / "a"), quiet=True)
    with pytest.raises(DataError, match="latent_channels"):
        train_prior(tiny_prior_config(tiny_data, tiny_ae, tmp_path / "b", net=MultiViewConfig(latent_channels=8)), quiet=True)


@pytest.mark.slow
def test_two_process_training_under_accelerate(tiny_data, tiny_ae, tmp_path, prior_config):
    tiny_prior_config = prior_config
    """`accelerate launch` with 2 CPU processes (DDP over gloo) runs the same trainer. accelerate's
    --cpu flag alone starts one process; --multi_gpu starts torchrun, and the trainer's
    Accelerator(cpu=True) then joins the processes over gloo."""
    from gen3d.config import dump_config

    cfg = tiny_prior_config(tiny_data, tiny_ae, tmp_path / "ddp", steps=3, checkpoint_every=3, device="cpu")
    dump_config(cfg, tmp_path / "prior.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "gen3d", "train", "prior", "--config",
           str(tmp_path / "prior.yaml"), "--quiet"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    prior = MultiViewPrior.from_pretrained(tmp_path / "ddp" / "prior")
    assert prior.meta["training"]["processes"] == 2
