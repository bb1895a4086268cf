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


def test_guidance_interval_reaches_the_guided_denoiser(tiny_prior, monkeypatch):
    """The interval logic itself is tested on exact denoisers (tests/diffusion); here: the plumbing."""
    import math

    import gen3d.diffusion.guidance as guidance

    seen = []

    class Spy(guidance.ClassifierFreeGuidance):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            seen.append(self.interval)

    monkeypatch.setattr(guidance, "ClassifierFreeGuidance", Spy)
    prior = MultiViewPrior.from_pretrained(tiny_prior)
    kw = dict(seed=3, steps=2, sampler="euler", guidance=3.0)
    full = prior.sample(["a red mug"], **kw)
    assert seen[-1] == (0.0, math.inf) and "guidance_min_sigma" not in full.info  # the default: guide throughout
    mid = prior.sample(["a red mug"], guidance_min_sigma=1.5, **kw)
    assert seen[-1] == (1.5, math.inf) and mid.info["guidance_min_sigma"] == 1.5
    with pytest.raises(ConfigError, match="guidance_min_sigma"):
        prior.sample(["a red mug"], guidance_min_sigma=-1.0, **kw)


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


def test_fine_tuning_starts_from_a_saved_prior(tiny_data, tiny_ae, tiny_prior, tmp_path, prior_config, monkeypatch):
    import gen3d.priors.train as train
    from gen3d.nets.multiview import MultiViewConfig
    from gen3d.nets.unet import UNetConfig

    seen = {}
    real = train.init_from_prior

    def spy(model, ema, folder):
        real(model, ema, folder)
        seen["model"] = {k: v.clone() for k, v in model.state_dict().items()}

    monkeypatch.setattr(train, "init_from_prior", spy)
    train.train_prior(prior_config(tiny_data, tiny_ae, tmp_path / "ft", steps=1, init_from=str(tiny_prior)), quiet=True)
    src = MultiViewPrior.from_pretrained(tiny_prior).denoiser.state_dict()
    assert seen["model"].keys() == src.keys()
    for k in src:  # the fine-tune started from the saved weights, not from a fresh initialisation
        assert torch.equal(seen["model"][k], src[k].float()), k
    # A net that does not match the saved one is refused with the reason.
    with pytest.raises(ConfigError, match="init_from.*does not match"):
        train.train_prior(prior_config(tiny_data, tiny_ae, tmp_path / "bad", steps=1, init_from=str(tiny_prior),
                                       net=MultiViewConfig(latent_channels=6, unet=UNetConfig(channels=(24, 32), attention_levels=(1,), heads=2))),
                          quiet=True)


def test_prior_configs_load_and_fine_tuned_cards_name_both_stages():
    from pathlib import Path

    from gen3d.config import load_config
    from gen3d.priors.ship import model_card
    from gen3d.priors.train import PriorTrainConfig

    configs = sorted((Path(__file__).parents[2] / "configs").glob("prior*.yaml"))
    assert len(configs) >= 2
    for f in configs:
        load_config(PriorTrainConfig, f)  # every shipped prior config parses (no stale keys)
    stage1 = {"steps": 3250, "batch_size": 16, "views": 4, "seconds": 2970.0, "objects": 12000, "device": "cpu",
              "config": {"lr": 4e-4, "ema": 0.999}}
    stage2 = {"steps": 5500, "batch_size": 256, "views": 4, "seconds": 477.0, "objects": 36000, "device": "cuda",
              "config": {"lr": 4e-4, "ema": 0.999}, "init_from_training": stage1}
    meta = {"training": {"steps": 1500, "batch_size": 16, "views": 4, "seconds": 1278.0, "objects": 10, "device": "cpu",
                         "config": {"lr": 2e-4, "ema": 0.998, "init_from": "x"}, "init_from_training": stage2}}
    data = {"n": 10, "views": 4, "res": 64, "config": {"captions": 4, "rig": {"elevation_deg": 20.0, "radius": 2.6, "fov_deg": 40.0}}}
    card = model_card(meta, {"steps": 1, "train_seconds": 60}, data, None, 1.0, "cpu", "", ["configs/prior_gpu.yaml"])
    assert "stage 1: 3250 steps from random weights" in card and "stage 2: 5500 steps fine-tuned from stage 1" in card
    assert "stage 3: 1500 steps fine-tuned from stage 2" in card and "40.0 degree field of view" in card
    # how to reproduce every stage: its data (only the rig values that differ from the default), config and steps
    assert "gen3d train prior --config configs/prior.yaml steps=3250" in card
    assert "--config configs/prior_gpu.yaml data=out/mvdata_s2 init_from=out/train/prior/prior out=out/train/prior_s2 steps=5500" in card
    assert "gen3d train data --out out/mvdata_s3 --n 10 rig.fov_deg=40.0\n" in card and "rig.elevation_deg" not in card
    assert "--config STAGE3.yaml data=out/mvdata_s3 init_from=out/train/prior_s2/prior out=out/train/prior_s3 steps=1500" in card
    plain = model_card({"training": stage1}, {}, data, None, 1.0, "cpu", "")
    assert "stage 1" not in plain and "init_from" not in plain


def test_mirror_augmentation_refuses_a_rig_without_mirror_symmetry(tiny_data, tiny_ae, tmp_path, prior_config):
    from dataclasses import replace

    from gen3d.errors import ConfigError
    from gen3d.priors.mvdata import MVDataset
    from gen3d.priors.train import encode_latents

    data = MVDataset(tiny_data)
    data.rig = replace(data.rig, azimuth_start_deg=30.0)  # azimuths 30, 120, 210, 300: -30 is not one of them
    cfg = prior_config(tiny_data, tiny_ae, tmp_path)
    with pytest.raises(ConfigError, match="mirror=true needs a rig"):
        encode_latents(cfg, data, None, "cpu", quiet=True)


def test_ship_can_set_the_default_guidance(tiny_prior, tiny_data, tmp_path):
    import json

    from gen3d.priors.ship import ship

    ae_eval = tmp_path / "ae.json"
    ae_eval.write_text(json.dumps({"psnr_rgb_mean": 30.0, "heldout_views": 4, "heldout_objects": 1}))
    ship(tiny_prior, ae_eval, tiny_data, tmp_path / "shipped", None, "cpu", "", guidance=1.7)
    shipped = MultiViewPrior.from_pretrained(tmp_path / "shipped")
    assert shipped.spec.sampling.guidance == 1.7
    assert MultiViewPrior.from_pretrained(tiny_prior).spec.sampling.guidance != 1.7  # the source is untouched
    assert shipped.sample(["a red mug"], steps=1, sampler="euler").info["guidance"] == 1.7
    ship(tiny_prior, ae_eval, tiny_data, tmp_path / "sde", None, "cpu", "", sampler="edm_sde")
    sde = MultiViewPrior.from_pretrained(tmp_path / "sde")
    assert sde.spec.sampling.sampler == "edm_sde" and sde.sample(["a red mug"], steps=2).info["sampler"] == "edm_sde"
    assert "edm_sde" in (tmp_path / "sde" / "MODEL_CARD.md").read_text()
    ship(tiny_prior, ae_eval, tiny_data, tmp_path / "s30", None, "cpu", "", sampler="edm_sde", steps=30)
    s30 = MultiViewPrior.from_pretrained(tmp_path / "s30")
    assert (s30.spec.sampling.steps, s30.spec.sampling.sampler) == (30, "edm_sde")
    assert s30.spec.sampling.steps != MultiViewPrior.from_pretrained(tiny_prior).spec.sampling.steps
    assert "30 steps" in (tmp_path / "s30" / "MODEL_CARD.md").read_text()
    with pytest.raises(ConfigError, match="steps must be"):
        ship(tiny_prior, ae_eval, tiny_data, tmp_path / "bad0", None, "cpu", "", steps=0)
    assert not (tmp_path / "bad0").exists()
    with pytest.raises(ConfigError, match="unknown sampler"):
        ship(tiny_prior, ae_eval, tiny_data, tmp_path / "bad", None, "cpu", "", sampler="nope")
    assert not (tmp_path / "bad").exists()


def test_autoguidance_with_a_weak_denoiser_saves_loads_and_guides(tiny_prior, tmp_path, monkeypatch):
    """guide="weak": D_weak + w (D_main - D_weak) with the folder's weak_denoiser/ (Karras et al. 2024)."""
    import copy
    import dataclasses

    from gen3d.diffusion import guidance

    prior = MultiViewPrior.from_pretrained(tiny_prior)
    assert prior.weak_denoiser is None
    kw = {"seed": 3, "steps": 2, "sampler": "euler", "guidance": 2.0}
    with pytest.raises(ConfigError, match="weak_denoiser"):
        prior.sample(["a red mug"], guide="weak", **kw)
    with pytest.raises(ConfigError, match="guide must be one of"):
        prior.sample(["a red mug"], guide="nope", **kw)

    weak = copy.deepcopy(prior.denoiser)
    with torch.no_grad():
        for p in weak.parameters():
            p.mul_(0.5)  # a different (worse) denoiser
    prior.weak_denoiser = weak
    prior.spec = dataclasses.replace(prior.spec, sampling=dataclasses.replace(prior.spec.sampling, guide="weak"))
    prior.save_pretrained(tmp_path / "auto", half=True)
    loaded = MultiViewPrior.from_pretrained(tmp_path / "auto")
    assert loaded.spec.sampling.guide == "weak" and loaded.weak_denoiser is not None
    for a, b in zip(loaded.weak_denoiser.parameters(), weak.parameters()):
        assert torch.allclose(a, b, atol=1e-2, rtol=1e-2)  # float16 on disk

    seen = []

    class Spy(guidance.AutoGuidance):
        def __call__(self, x, sigma, cond=None):
            out = super().__call__(x, sigma, cond)
            d_main, d_weak = self.main(x, sigma, cond), self.weak(x, sigma, cond)
            seen.append(torch.allclose(out, d_weak + self.scale * (d_main - d_weak), atol=1e-5))
            return out

    monkeypatch.setattr(guidance, "AutoGuidance", Spy)
    auto = loaded.sample(["a red mug"], **kw)
    assert seen and all(seen) and auto.info["guide"] == "weak"
    cfg = loaded.sample(["a red mug"], guide="text", **kw)  # classifier-free guidance is still one argument away
    assert cfg.info["guide"] == "text" and not torch.equal(auto.latents, cfg.latents)
    assert "guide" not in loaded.sample(["a red mug"], **{**kw, "guidance": 1.0}).info  # w = 1: no guidance at all

    (tmp_path / "broken").mkdir()
    for name in ("prior.json", "autoencoder", "denoiser"):
        src = tmp_path / "auto" / name
        (tmp_path / "broken" / name).symlink_to(src, target_is_directory=src.is_dir())
    with pytest.raises(DataError, match="weak_denoiser"):
        MultiViewPrior.from_pretrained(tmp_path / "broken")


def test_model_card_names_which_depth_the_consistency_figure_used():
    from gen3d.priors.ship import model_card

    data = {"n": 10, "views": 4, "res": 64, "config": {"captions": 4, "rig": {}}}
    summary = {"prompts": 54, "color_accuracy": 0.95, "class_accuracy": 0.85, "fscore_mean": 0.5, "fit_psnr_mean": 40.0,
               "loo_psnr_mean": 22.5, "reference_loo_psnr": 22.1, "reference_loo_prompts": 12, "targets": {}}
    stage = {"training": {"steps": 1, "batch_size": 1, "views": 4, "seconds": 1.0, "objects": 10, "device": "cpu", "config": {}}}
    fused = model_card(stage, {}, data, {"summary": {**summary, "loo_psnr_prior_depth_mean": 21.7}}, 1.0, "cpu", "")
    assert "leave-one-view-out PSNR 22.50 dB (target 22) on the views as `gen3d generate` saves them" in fused
    assert "with the depth the prior decoded: 21.70 dB" in fused and "first 12 combinations: 22.10 dB" in fused
    plain = model_card(stage, {}, data, {"summary": summary}, 1.0, "cpu", "")
    assert "leave-one-view-out PSNR 22.50 dB (target 22); the same protocol" in plain and "decoded" not in plain
    # another seed's run is listed, and the targets line says at which seed each target held
    met = {"class_accuracy": {"target": 0.8, "value": 0.85, "met": True}}
    seed1 = {**summary, "class_accuracy": 0.72, "loo_psnr_mean": 24.0, "loo_psnr_prior_depth_mean": 21.9,
             "targets": {"class_accuracy": {"target": 0.8, "value": 0.72, "met": False}}}
    both = model_card(stage, {}, data, {"summary": {**summary, "targets": met}, "config": {"seed": 0}}, 1.0, "cpu", "",
                      other_seeds=[{"summary": seed1, "config": {"seed": 1}}])
    assert "the same at seed 1: colour 0.950, class 0.720, leave-one-view-out 24.00 dB (21.90 dB with the prior's depth)" in both
    assert "- All evaluation targets met at seed 0." in both and "- Targets not met at seed 1: class_accuracy." in both
    assert "- All evaluation targets met." in plain
    # a seed run without leave-one-view-out fits (--loo none) says so instead of failing or reporting a miss,
    # and the canonical-mesh class rule is quoted where the run has it
    seed2 = {**summary, "loo_psnr_mean": None, "class_accuracy_canonical": 0.7,
             "targets": {"class_accuracy": {"target": 0.8, "value": 0.85, "met": True},
                         "loo_psnr": {"target": 22.0, "value": None, "met": False}}}
    three = model_card(stage, {}, data, {"summary": {**summary, "targets": met, "class_accuracy_canonical": 0.8,
                                                     "reference_class_accuracy_canonical": 0.9}, "config": {"seed": 0}},
                       1.0, "cpu", "", other_seeds=[{"summary": seed2, "config": {"seed": 2}}])
    assert "class 0.850 (canonical-mesh rule 0.700), leave-one-view-out not run" in three
    assert "- Evaluation targets run met at seed 2. Not run: loo_psnr." in three
    assert "with the canonical-mesh rule: 0.800 (ground truth 0.900)" in three
    assert "class accuracy over the 2 seeds: 0.850 (canonical-mesh rule 0.750)" in three
    assert "over the" not in plain  # one run: no pooled line
