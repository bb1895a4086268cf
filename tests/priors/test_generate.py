"""gen3d generate on a tiny prior: the output folder, the Python API, and every user-facing failure."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from gen3d.cli import main
from gen3d.errors import ConfigError, DataError, DeviceError
from gen3d.pipelines.generate import GenerateConfig, GeneratePipeline, check_prompt, read_prompts
from gen3d.pipelines.reconstruct import ReconstructConfig, ReconstructPipeline
from gen3d.priors.mvprior import MultiViewPrior
from gen3d.recon.fit_gaussians import GaussianFitConfig

FAST = ["steps=2", "recon.gaussians.iters=20", "recon.gaussians.init_points=500", "recon.mesh_views=6",
        "recon.mesh_res=48", "recon.preview_frames=4", "recon.preview_res=48", "candidates=2", "device=cpu"]


def test_cli_writes_the_result_folder(tiny_prior, tmp_path, capsys):
    out = tmp_path / "mug"
    rc = main(["generate", "a red mug", "--out", str(out), "--model", str(tiny_prior), "--seed", "5", "--quiet", *FAST])
    assert rc == 0
    for f in ("mesh.glb", "splats.ply", "views.png", "turntable.gif", "views/transforms.json", "views/images/v000.png",
              "views/masks/v000.png", "views/depth/v000.png", "result.json"):
        assert (out / f).is_file(), f
    r = json.loads((out / "result.json").read_text())
    assert r["kind"] == "generate" and r["request"]["prompt"] == "a red mug" and r["request"]["seed"] == 5
    for stage in ("load_model", "text", "sample", "fit", "mesh", "export", "total"):
        assert stage in r["timings"], stage
    tf = json.loads((out / "views" / "transforms.json").read_text())
    assert len(tf["frames"]) == 4 and tf["gen3d"]["prompt"] == "a red mug"


def test_python_api_swaps_one_component_per_line(tiny_prior, tmp_path):
    prior = MultiViewPrior.from_pretrained(tiny_prior)
    recon = ReconstructPipeline(ReconstructConfig(gaussians=GaussianFitConfig(iters=10, init_points=300, checkpoint_every=0),
                                                  mesh_views=6, mesh_res=32, preview_frames=2, preview_res=32, device="cpu"))
    pipe = GeneratePipeline(prior=prior, reconstruct=recon, sampler="dpmpp_2m", steps=3, guidance=1.5, candidates=1)
    res = pipe("a blue chair", out=tmp_path / "a", seed=1, quiet=True)
    assert res.views.info == {"sampler": "dpmpp_2m", "steps": 3, "guidance": 1.5, "seed": 1, "guide": "text"}
    # an untrained prior may draw nothing solid: then there is no mesh, and result.json says why
    assert (tmp_path / "a" / "mesh.glb").is_file() or "mesh_error" in res.metrics
    assert "train_psnr" in res.metrics
    g1 = pipe.sample_views(["a blue chair"], seed=1)
    assert torch.equal(g1.latents, res.views.latents)  # same seed, same views


def test_prompt_errors_and_warnings(tiny_prior, tmp_path, capsys):
    with pytest.raises(ConfigError, match="empty prompt"):
        check_prompt("   ")
    assert check_prompt("a scarlet coffee cup") == []
    w = check_prompt("a dragon")
    assert len(w) == 1 and "mug" in w[0] and "still generate" in w[0]
    rc = main(["generate", "", "--out", str(tmp_path / "e"), "--model", str(tiny_prior), *FAST])
    assert rc == 2 and "empty prompt" in capsys.readouterr().err
    rc = main(["generate", "a dragon", "--out", str(tmp_path / "d"), "--model", str(tiny_prior), *FAST])
    assert rc == 0 and "names no object the default model knows" in capsys.readouterr().err
    assert (tmp_path / "d" / "mesh.glb").is_file()  # and it still generated


def test_missing_or_corrupt_weights_name_the_file(tiny_prior, tmp_path, capsys):
    rc = main(["generate", "a red mug", "--out", str(tmp_path / "x"), "--model", str(tmp_path / "nowhere"), *FAST])
    assert rc == 2 and "no prior.json" in capsys.readouterr().err
    bad = tmp_path / "bad"
    shutil.copytree(tiny_prior, bad)
    (bad / "denoiser" / "net" / "model.safetensors").unlink()
    with pytest.raises(DataError, match="model.safetensors"):
        MultiViewPrior.from_pretrained(bad)
    shutil.rmtree(bad)
    shutil.copytree(tiny_prior, bad)
    (bad / "autoencoder" / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(Exception, match="model.safetensors|header|deserializ"):
        MultiViewPrior.from_pretrained(bad)
    (bad / "prior.json").write_text("{not json")
    with pytest.raises(DataError, match="prior.json"):
        MultiViewPrior.from_pretrained(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_a_clear_error(tiny_prior, tmp_path, capsys):
    rc = main(["generate", "a red mug", "--out", str(tmp_path / "c"), "--model", str(tiny_prior), *FAST[:-1], "--device", "cuda"])
    assert rc == 2 and "no CUDA GPU" in capsys.readouterr().err
    with pytest.raises(DeviceError):
        GeneratePipeline(config=GenerateConfig(device="cuda"))


def test_prompts_file_one_folder_each_and_resume(tiny_prior, tmp_path):
    f = tmp_path / "prompts.txt"
    f.write_text("# two objects\na red mug\n\na green sphere\n")
    assert [d["prompt"] for d in read_prompts(f)] == ["a red mug", "a green sphere"]
    out = tmp_path / "many"
    assert main(["generate", "--prompts", str(f), "--out", str(out), "--model", str(tiny_prior), "--quiet", *FAST]) == 0
    folders = sorted(p.name for p in out.iterdir())
    assert folders == ["0000_a_red_mug", "0001_a_green_sphere"]
    stamp = (out / folders[0] / "result.json").stat().st_mtime
    assert main(["generate", "--prompts", str(f), "--out", str(out), "--model", str(tiny_prior), "--quiet", *FAST]) == 0
    assert (out / folders[0] / "result.json").stat().st_mtime == stamp  # finished prompts are skipped
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no prompt key"}\n')
    with pytest.raises(DataError, match='"prompt"'):
        read_prompts(bad)


def test_candidates_keep_the_most_consistent_views(tiny_prior, tmp_path):
    import numpy as np

    from gen3d.data.dataset import load_views

    cfg = GenerateConfig(model=str(tiny_prior), steps=2, device="cpu", candidates=3)
    cfg = dataclasses.replace(cfg, recon=dataclasses.replace(cfg.recon, gaussians=dataclasses.replace(
        cfg.recon.gaussians, iters=10, init_points=300), mesh_views=6, mesh_res=32, preview_frames=2, preview_res=32))
    pipe = GeneratePipeline.from_config(cfg)
    res = pipe("a red mug", out=tmp_path / "m", seed=3, quiet=True)
    r = json.loads((tmp_path / "m" / "result.json").read_text())
    c = r["candidates"]
    assert c["n"] == 3 and r["request"]["candidates"] == 3 and len(c["hull_iou"]) == 3
    assert c["chosen"] == int(np.argmax(c["hull_iou"]))
    # the result's views and the written views are the chosen candidate's; every candidate is kept for inspection
    assert res.candidates.rgb.shape[0] == 3 and res.chosen == c["chosen"] and res.views.rgb.shape[0] == 1
    assert torch.equal(res.views.alpha[0], res.candidates.alpha[res.chosen])
    masks = load_views(tmp_path / "m" / "views").masks
    err = [float((masks - res.candidates.alpha[k]).abs().max()) for k in range(3)]
    assert err[c["chosen"]] <= 1 / 255 + 1e-6 and min(err[k] for k in range(3) if k != c["chosen"]) > 0.02
    # candidate 0 is what a single sample with the same seed gives
    one = GeneratePipeline.from_config(dataclasses.replace(cfg, candidates=1)).sample_views(["a red mug"], seed=3)
    assert torch.allclose(one.latents, res.candidates.latents[:4], rtol=1e-3, atol=1e-3)  # batch size only changes rounding
    with pytest.raises(ConfigError, match="candidates"):
        GeneratePipeline.from_config(dataclasses.replace(cfg, candidates=0))


def test_guide_flag_chooses_autoguidance_and_says_what_is_missing(tiny_prior, tmp_path, capsys):
    rc = main(["generate", "a red mug", "--out", str(tmp_path / "w"), "--model", str(tiny_prior), "--guide", "weak",
               "--quiet", *FAST])
    assert rc == 2 and "weak_denoiser" in capsys.readouterr().err
    assert not (tmp_path / "w" / "mesh.glb").exists()

    auto = tmp_path / "auto"
    shutil.copytree(tiny_prior, auto)
    shutil.copytree(tiny_prior / "denoiser", auto / "weak_denoiser")  # any denoiser of the same latents serves
    rc = main(["generate", "a red mug", "--out", str(tmp_path / "a"), "--model", str(auto), "--guide", "weak",
               "--guidance", "2", "--quiet", *FAST])
    assert rc == 0
    r = json.loads((tmp_path / "a" / "result.json").read_text())
    assert r["request"]["guide"] == "weak" and (tmp_path / "a" / "mesh.glb").is_file()


def test_view_depth_fit_saves_the_fitted_depth_and_keeps_the_priors(tiny_prior, tmp_path):
    from gen3d.data.dataset import DEPTH_SCALE, load_views
    from gen3d.recon.consistency import depth_from_fit

    out = tmp_path / "fit"
    assert main(["generate", "a red mug", "--out", str(out), "--model", str(tiny_prior), "--seed", "2", "--quiet", *FAST]) == 0
    tf = json.loads((out / "views" / "transforms.json").read_text())
    assert tf["gen3d"]["view_depth"] == "fit"
    assert sorted(p.name for p in (out / "views" / "depth_prior").iterdir()) == [f"v00{i}.png" for i in range(4)]
    r = json.loads((out / "result.json").read_text())
    assert "view_depth" in r["timings"] and r["generate_config"]["view_depth"] == "fit"

    cfg = GenerateConfig(model=str(tiny_prior), steps=2, device="cpu", candidates=2)
    cfg = dataclasses.replace(cfg, recon=dataclasses.replace(cfg.recon, gaussians=dataclasses.replace(
        cfg.recon.gaussians, iters=20, init_points=500), mesh_views=6, mesh_res=32, preview_frames=2, preview_res=32))
    res = GeneratePipeline.from_config(cfg)("a red mug", out=tmp_path / "api", seed=2, quiet=True)
    g = res.views
    # the prior's decoded depth is kept; the views' depth is the fit's inside the masks, the prior's elsewhere
    sampled = GeneratePipeline.from_config(cfg).sample_views(["a red mug"] * 2, seed=2).select(res.chosen)
    assert torch.allclose(g.prior_depth, sampled.depth, atol=1e-4)
    with torch.no_grad():
        rr = res.representation.render(g.cameras)
    expect = depth_from_fit(g.prior_depth[0], g.alpha[0], rr.depth.cpu(), rr.alpha.cpu())
    assert torch.allclose(g.depth[0], expect, atol=1e-5)
    changed = (g.depth[0] - g.prior_depth[0]).abs() > 1e-3
    assert changed.any() and not changed[g.alpha[0] < 0.5].any()
    saved = load_views(tmp_path / "api" / "views")
    assert torch.allclose(saved.depths, g.depth[0], atol=DEPTH_SCALE)
    # "prior" saves the decoded depth as it is, and nothing else
    res_p = GeneratePipeline.from_config(dataclasses.replace(cfg, view_depth="prior"))("a red mug", out=tmp_path / "p", seed=2,
                                                                                       quiet=True)
    assert res_p.views.prior_depth is None and torch.allclose(res_p.views.depth, g.prior_depth, atol=1e-4)
    assert not (tmp_path / "p" / "views" / "depth_prior").exists()
    with pytest.raises(ConfigError, match="view_depth"):
        GeneratePipeline.from_config(dataclasses.replace(cfg, view_depth="mesh"))
