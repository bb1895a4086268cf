"""A tiny multi-view training set, autoencoder and prior, built once per test session (~20 s)."""

from __future__ import annotations

import pytest

from gen3d.autoencoders.autoencoder import AutoencoderConfig
from gen3d.nets.multiview import MultiViewConfig
from gen3d.nets.unet import UNetConfig
from gen3d.priors.mvdata import MVDataConfig, PriorRig
from gen3d.priors.mvprior import SamplingDefaults

TINY_RIG = PriorRig(views=4, res=32)
TINY_AE = AutoencoderConfig(latent_channels=6, channels=(8, 16, 16))
TINY_NET = MultiViewConfig(latent_channels=6, unet=UNetConfig(channels=(16, 32), attention_levels=(1,), heads=2))


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs torch on one thread (tests/conftest.py)."""


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    from gen3d.priors.mvdata import build_dataset

    out = tmp_path_factory.mktemp("mvdata")
    build_dataset(MVDataConfig(out=str(out), n=8, shard_size=4, captions=2, rig=TINY_RIG, supersample=1, workers=1), quiet=True)
    return out


@pytest.fixture(scope="session")
def tiny_ae(tiny_data, tmp_path_factory):
    from gen3d.autoencoders.train import AETrainConfig, train_autoencoder

    out = tmp_path_factory.mktemp("ae")
    train_autoencoder(AETrainConfig(data=str(tiny_data), out=str(out), model=TINY_AE, steps=4, batch_size=4, disc_start=2,
                                    checkpoint_every=2, eval_objects=2, stats_objects=8, device="cpu"), quiet=True)
    return out / "autoencoder"


def tiny_prior_config(data, ae, out, **kw):
    from gen3d.priors.train import PriorTrainConfig

    base = dict(data=str(data), autoencoder=str(ae), out=str(out), net=TINY_NET, steps=4, batch_size=2,
                checkpoint_every=2, warmup=1, device="cpu", preview_prompts=(), sampling=SamplingDefaults(steps=3))
    base.update(kw)
    return PriorTrainConfig(**base)


@pytest.fixture
def prior_config():
    """A function (data, ae, out, **overrides) -> a tiny PriorTrainConfig."""
    return tiny_prior_config


@pytest.fixture(scope="session")
def tiny_prior(tiny_data, tiny_ae, tmp_path_factory):
    from gen3d.priors.train import train_prior

    out = tmp_path_factory.mktemp("prior")
    train_prior(tiny_prior_config(tiny_data, tiny_ae, out), quiet=True)
    return out / "prior"
