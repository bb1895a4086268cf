"""A diffusers AutoencoderKL from a local folder stands in for gen3d's autoencoder inside a prior."""

from __future__ import annotations

import shutil

import pytest
import torch

from gen3d.errors import DataError
from gen3d.priors.components import DiffusersAutoencoder
from gen3d.priors.mvprior import MultiViewPrior


def _tiny_vae(folder, channels=5, latent=6):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=channels, out_channels=channels, latent_channels=latent,
                        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
                        block_out_channels=(8, 8, 8), layers_per_block=1, norm_num_groups=4, scaling_factor=0.5)
    vae.save_pretrained(str(folder))
    return vae


def test_diffusers_vae_round_trip_and_normalisation(tmp_path):
    vae = _tiny_vae(tmp_path / "vae")
    ae = DiffusersAutoencoder.from_pretrained(tmp_path / "vae")
    assert ae.latent_shape(32, 32) == (6, 8, 8)
    x = torch.rand(2, 5, 32, 32) * 2 - 1
    z = ae.encode(x)
    assert torch.allclose(z, vae.encode(x).latent_dist.mean * 0.5, atol=1e-6)
    assert torch.allclose(ae.decode(z), vae.decode(z / 0.5).sample, atol=1e-6)


def test_rgb_only_vae_is_refused_with_the_reason(tmp_path):
    _tiny_vae(tmp_path / "rgb", channels=3)
    with pytest.raises(DataError, match="alpha, depth"):
        DiffusersAutoencoder.from_pretrained(tmp_path / "rgb")


def test_a_prior_with_a_diffusers_autoencoder_loads_and_samples(tiny_prior, tmp_path):
    folder = tmp_path / "prior"
    shutil.copytree(tiny_prior, folder)
    shutil.rmtree(folder / "autoencoder")
    _tiny_vae(folder / "autoencoder", latent=6)  # same latent channels as the tiny denoiser
    prior = MultiViewPrior.from_pretrained(folder)
    assert isinstance(prior.autoencoder, DiffusersAutoencoder)
    g = prior.sample(["a red mug"], steps=2, sampler="euler")
    assert g.rgb.shape == (1, 4, 3, 32, 32)
