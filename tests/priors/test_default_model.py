"""The shipped default model: loads offline from the installed package and draws what it is asked for."""

from __future__ import annotations

import socket

import pytest
import torch

from gen3d.eval.color import color_votes
from gen3d.priors.mvprior import MultiViewPrior, default_model_path


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during a test that must run offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


def test_default_model_is_shipped_small_and_documented():
    path = default_model_path()
    for f in ("prior.json", "MODEL_CARD.md", "autoencoder/config.json", "autoencoder/model.safetensors",
              "denoiser/precond.json", "denoiser/net/config.json", "denoiser/net/model.safetensors"):
        assert (path / f).is_file(), f
    size = sum(p.stat().st_size for p in path.rglob("*.safetensors"))
    assert size <= 60e6, f"shipped weights are {size / 1e6:.1f} MB (limit 60)"
    card = (path / "MODEL_CARD.md").read_text()
    for needle in ("## Data", "## Training", "## Evaluation", "Hardware", "gen3d train prior"):
        assert needle in card, needle


def test_default_model_generates_the_asked_colours_offline(no_network):
    torch.set_num_threads(2)
    prior = MultiViewPrior.from_pretrained(default_model_path())
    prompts = ["a red cube", "a blue chair", "a yellow sphere"]
    g = prior.sample(prompts, seed=0)
    assert g.rgb.shape == (3, 4, 3, 64, 64)
    for i, want in enumerate(["red", "blue", "yellow"]):
        rgb = g.rgb[i].permute(0, 2, 3, 1).reshape(-1, 64, 3)
        alpha = g.alpha[i].reshape(-1, 64)
        assert float(alpha.mean()) > 0.03, "nothing was drawn"
        assert color_votes(rgb, alpha > 0.5).name == want, prompts[i]
