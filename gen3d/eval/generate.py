"""``gen3d eval generate``: how well prompts turn into the right, consistent objects.

For each prompt of a JSON Lines file (``{"prompt": "a scarlet coffee cup", "class": "mug",
"color": "red"}``; names from ``gen3d data catalogue``) the full ``gen3d generate`` pipeline runs,
then:

* **colour**: the dominant named colour (``gen3d.eval.color``) of the fitted object's foreground,
  rendered from the generation rig, against the prompt's colour;
* **class**: the reconstructed mesh and reference meshes of every class are each normalised
  (centred, scaled to unit bounding-box diagonal) and the class with the smallest Chamfer distance
  wins; correct if it is the prompt's class. The target uses the exemplar rule (each class's
  canonical mesh and its parameter extremes); the canonical-mesh rule is reported beside it
  (``class_accuracy_canonical``); ``gen3d.eval.classify`` says why;
* **F-score** of the mesh against the prompt's canonical class mesh (same normalisation, tau 2%);
  the canonical mesh has the class's canonical proportions, so this also measures shape variation;
* **consistency**: PSNR of the fit against all generated views (``fit_psnr``), and leave-one-view-out
  PSNR (``loo_psnr``): fit on V - 1 views, render the held-out one and compare with the generated
  view. ``loo="one"`` holds out view (i mod V) for prompt i; ``"all"`` every view (V fits). Each
  held-out view's error is split into silhouette and interior (``loo_breakdown``), and
  ``loo.png`` in the prompt's folder shows the view, the render and the two silhouettes.

Reference rows report what a perfect generator would score: the class rule on ground-truth meshes
of the same combinations (the rule is not perfect because shapes vary within a class), and the
leave-one-view-out PSNR of ground-truth renders from the prior's rig (``reference_loo`` prompts;
the held-out view sees surface the other V - 1 views do not, so even exact views stay below the
fit PSNR).

Writes DIR/eval.json (summary + per prompt), DIR/eval.md (the table), one generation folder per
prompt; a re-run skips prompts already evaluated.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gen3d.errors import DataError

if TYPE_CHECKING:
    from torch import Tensor

TARGETS = {"color_accuracy": 0.90, "class_accuracy": 0.80, "loo_psnr": 22.0}


@dataclass(frozen=True)
class EvalConfig:
    prompts: str = ""
    out: str = "out/eval_generate"
    model: str = ""
    seed: int = 0
    loo: str = "one"  # "one" | "all" | "none"
    chamfer_points: int = 4000
    limit: int = 0  # evaluate only the first N prompts (0: all)
    reference_loo: int = 12  # leave-one-view-out PSNR of ground-truth renders for the first N prompts (0: off)
    candidates: int = 0  # sets of views sampled per prompt, the most consistent kept (0: what gen3d generate uses)
    guidance: float | None = None  # classifier-free guidance scale (None: the model's default)
    guidance_min_sigma: float | None = None  # guide only above this noise level (None: the model's default)
    guide: str = ""  # "text" (classifier-free) or "weak" (autoguidance); empty: the model's default
    # The depth of the views the leave-one-view-out fits use: "fit" (what gen3d generate saves: rendered
    # from the fit to all views, inside each mask) or "prior" (as decoded). With "fit", the same
    # protocol also runs on the prior's depth (loo_psnr_prior_depth), and the ground-truth reference
    # views go through the same fusion.
    view_depth: str = "fit"


def canonical_meshes() -> dict[str, Any]:
    from gen3d.data.objects import CLASSES
    from gen3d.data.world import build_object, canonical_spec

    return {c.name: build_object(canonical_spec(c.name)).to_trimesh() for c in CLASSES}


def classify_mesh(mesh, refs: dict[str, Any], n_points: int = 4000, seed: int = 0) -> tuple[str, dict[str, float]]:
    """Nearest of ``refs`` (class name -> one mesh) by symmetric Chamfer distance after per-shape bbox
    normalisation: the canonical-mesh rule when ``refs`` is :func:`canonical_meshes`."""
    from gen3d.eval.classify import ClassRule

    return ClassRule.build("canonical", n_points, seed, meshes={k: [m] for k, m in refs.items()})(mesh)


def class_rules(n_points: int) -> dict[str, Any]:
    """The two class rules the evaluation reports (``gen3d.eval.classify``), built once."""
    from gen3d.eval.classify import ClassRule

    return {rule: ClassRule.build(rule, n_points) for rule in ("exemplars", "canonical")}


def heldout_prompt_items(n: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """One prompt per held-out colour-class combination (never in training), worded with random
    synonyms and sentence forms (``captions.random_caption``)."""
    from gen3d.data.captions import random_caption
    from gen3d.data.objects import CLASS_BY_NAME
    from gen3d.data.world import SCALE_RANGE, ObjectSpec, heldout_combinations

    items = []
    for k, (color, cls) in enumerate(heldout_combinations()["color_class"]):
        rng = np.random.default_rng([seed, k, 0xE7A1])
        c = CLASS_BY_NAME[cls]
        spec = ObjectSpec(cls, c.sample_params(rng), {s.name: color for s in c.slots}, float(rng.uniform(*SCALE_RANGE)))
        items.append({"prompt": random_caption(spec, rng), "class": cls, "color": color})
    return items[:n] if n else items


def read_eval_prompts(path: str | Path) -> list[dict[str, Any]]:
    from gen3d.data.colors import get_color
    from gen3d.data.objects import CLASS_BY_NAME
    from gen3d.pipelines.generate import read_prompts

    items = read_prompts(path)
    for n, it in enumerate(items, 1):
        if it.get("class") not in CLASS_BY_NAME:
            raise DataError(f"{path}: prompt {n} has class {it.get('class')!r}; use a name from `gen3d data catalogue`")
        try:
            it["color"] = get_color(str(it.get("color"))).name
        except (KeyError, ValueError):
            raise DataError(f"{path}: prompt {n} has colour {it.get('color')!r}; use a name from `gen3d data catalogue`") from None
    return items


def mean_breakdown(parts: list[dict]) -> dict[str, float] | None:
    """The mean of several held-out views' :func:`gen3d.eval.image_metrics.silhouette_breakdown`
    dicts; an infinite PSNR (a perfect render) counts as 100 dB, pixel counts and shares as they are."""
    if not parts:
        return None
    return {k: round(float(np.mean([min(p[k], 100.0) if k.startswith("psnr") else p[k] for p in parts])), 4)
            for k in parts[0]}


def _loo_psnr(pipe, views, hold: list[int], breakdowns: list[dict] | None = None, sheet: Path | None = None) -> list[float]:
    """PSNR of each held-out view rendered from a fit on the others; with ``breakdowns``, also append
    each one's :func:`gen3d.eval.image_metrics.silhouette_breakdown` (silhouette vs interior error);
    with ``sheet``, write a PNG there: per held-out view, the view, the render and the silhouette map."""
    from gen3d.eval.image_metrics import psnr, silhouette_breakdown
    from gen3d.pipelines.reconstruct import fit

    cfg = dataclasses.replace(pipe.reconstruct.cfg)
    out: list[float] = []
    tiles: list[np.ndarray] = []
    labels: list[str] = []
    for h in hold:
        keep = [i for i in range(len(views)) if i != h]
        res = fit(views.subset(keep), cfg, None, quiet=True)
        test = views.subset([h])
        r = res.representation.render(test.cameras)
        pred = r.rgb.detach().cpu().float()
        out.append(float(psnr(pred.permute(0, 3, 1, 2), test.images.permute(0, 3, 1, 2).float()).mean()))
        if test.masks is not None:
            alpha = r.alpha.detach().cpu()[0]
            if breakdowns is not None:
                breakdowns.append(silhouette_breakdown(pred[0], alpha, test.images[0], test.masks[0]))
            tiles += [test.images[0].numpy(), pred[0].numpy(), silhouette_map(alpha >= 0.5, test.masks[0] >= 0.5)]
            labels += [f"view {h}", f"{out[-1]:.1f} dB", ""]
    if sheet is not None and tiles:
        from gen3d.utils.images import contact_sheet, save_png

        k = max(1, 192 // tiles[0].shape[1])  # small views are enlarged (nearest) to be seen
        save_png(sheet, contact_sheet([t.repeat(k, 0).repeat(k, 1) for t in tiles], cols=3, labels=labels))
    return out


def silhouette_map(rendered: Tensor, target: Tensor) -> np.ndarray:
    """An RGB picture of two silhouettes: grey where both cover a pixel, red where only the render does
    (excess), blue where only the target does (missing), white elsewhere."""
    a, m = rendered.cpu().numpy().astype(bool), target.cpu().numpy().astype(bool)
    img = np.ones(a.shape + (3,), np.float32)
    img[a & m] = 0.75
    img[a & ~m] = (0.85, 0.1, 0.1)
    img[m & ~a] = (0.1, 0.2, 0.85)
    return img


def evaluate_prompt(pipe, item: dict[str, Any], index: int, folder: Path, refs: dict, cfg: EvalConfig,
                    rules: dict[str, Any] | None = None) -> dict[str, Any]:
    """One prompt's row. ``refs``: the canonical class meshes (F-score); ``rules``: from :func:`class_rules`."""

    from gen3d.eval.color import color_votes
    from gen3d.geometry.metrics import mesh_metrics
    from gen3d.pipelines.generate import views_to_viewset

    t0 = time.perf_counter()
    res = pipe(item["prompt"], folder, seed=int(item.get("seed", cfg.seed)), quiet=True)
    gen_seconds = time.perf_counter() - t0
    views = views_to_viewset(res.views, 0)
    rep = res.representation
    r = rep.render(views.cameras)
    rgb = r.rgb.detach().cpu().reshape(-1, r.rgb.shape[-2], 3).numpy()
    alpha = r.alpha.detach().cpu().reshape(-1, r.alpha.shape[-1]).numpy()
    votes = color_votes(rgb, alpha > 0.5)
    mesh = _load_mesh(folder)
    fscore = 0.0
    if mesh is not None:
        fscore = float(mesh_metrics(mesh, refs[item["class"]], n_points=cfg.chamfer_points, normalization="each_bbox").fscore)
    V = len(views)
    hold = {"one": [index % V], "all": list(range(V)), "none": []}[cfg.loo]
    parts: list[dict] = []
    loo = _loo_psnr(pipe, views, hold, parts, folder / "loo.png") if hold else []
    loo_prior = None
    if hold and res.views.prior_depth is not None:  # the same protocol on the depth the prior decoded
        loo_prior = float(np.mean(_loo_psnr(pipe, dataclasses.replace(views, depths=res.views.prior_depth[0].float()), hold)))
    return {
        "index": index, "prompt": item["prompt"], "class": item["class"], "color": item["color"],
        "pred_color": votes.name, "color_ok": votes.name == item["color"],
        **class_fields(mesh, item["class"], rules or class_rules(cfg.chamfer_points)),
        "fscore": fscore, "fit_psnr": float(res.metrics.get("train_psnr", float("nan"))),
        "loo_psnr": float(np.mean(loo)) if loo else None, "loo_views": hold, "loo_psnr_prior_depth": loo_prior,
        "loo_breakdown": mean_breakdown(parts),
        "generate_seconds": round(gen_seconds, 2), "folder": folder.name, "candidate": res.chosen,
    }


def _load_mesh(folder: Path):
    """``folder``/mesh.glb, or None where there is none (an empty mesh is not written) or it has no faces."""
    import trimesh

    path = folder / "mesh.glb"
    mesh = trimesh.load(path, force="mesh", process=False) if path.is_file() else None
    return mesh if mesh is not None and len(mesh.faces) else None


def class_fields(mesh, cls: str, rules: dict[str, Any]) -> dict[str, Any]:
    """A row's class fields: both rules' verdicts on ``mesh`` (None: no class) for the prompt's class ``cls``."""
    pred, pred_canonical, dists = None, None, {}
    if mesh is not None:
        pred, dists = rules["exemplars"](mesh)
        pred_canonical, _ = rules["canonical"](mesh)
    return {"pred_class": pred, "class_ok": pred == cls, "pred_class_canonical": pred_canonical,
            "class_ok_canonical": pred_canonical == cls,
            "chamfer_to_class": {k: round(v, 5) for k, v in sorted(dists.items(), key=lambda kv: kv[1])[:3]}}


def rescore_class(row: dict[str, Any], folder: Path, rules: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its class fields from both rules, classifying ``folder``/mesh.glb again (a row of a
    run scored before the exemplar rule holds the canonical rule's verdict as ``pred_class``)."""
    if not folder.is_dir():
        raise DataError(f"{folder} is missing: cannot re-score prompt {row.get('index')} ({row.get('prompt')!r}) with "
                        "the current class rules; delete its per_prompt row to evaluate it again")
    return {**row, **class_fields(_load_mesh(folder), row["class"], rules)}


def reference_class_accuracy(items: list[dict[str, Any]], rule) -> float:
    """The class rule ``rule`` (a ``ClassRule``) on ground-truth meshes of the prompts' combinations."""
    from gen3d.data.objects import CLASS_BY_NAME
    from gen3d.data.world import ObjectSpec, build_object

    hits = []
    for k, it in enumerate(items):
        rng = np.random.default_rng([k, 0x5EF])
        c = CLASS_BY_NAME[it["class"]]
        spec = ObjectSpec(c.name, c.sample_params(rng), {s.name: it["color"] for s in c.slots}, 1.0)
        pred, _ = rule(build_object(spec).to_trimesh())
        hits.append(pred == it["class"])
    return float(np.mean(hits))


def reference_spec(item: dict[str, Any], index: int):
    """The ground-truth object of prompt ``index``'s combination (class and colour of ``item``; its shape
    parameters and scale drawn from a generator seeded by the index), as the reference LOO renders it."""
    from gen3d.data.objects import CLASS_BY_NAME
    from gen3d.data.world import SCALE_RANGE, ObjectSpec

    rng = np.random.default_rng([index, 0x100])
    c = CLASS_BY_NAME[item["class"]]
    return ObjectSpec(c.name, c.sample_params(rng), {s.name: item["color"] for s in c.slots}, float(rng.uniform(*SCALE_RANGE)))


def fused_viewset(views, recon_cfg):
    """``views`` with their depth as ``gen3d generate`` saves it (``view_depth="fit"``): rendered from
    the reconstruction ``recon_cfg`` (a ``ReconstructConfig``) fitted to all of them, inside each mask."""
    from gen3d.pipelines.reconstruct import fit
    from gen3d.recon.consistency import rendered_depth_from_fit

    rep = fit(views, recon_cfg, None, quiet=True).representation
    return dataclasses.replace(views, depths=rendered_depth_from_fit(rep, views.cameras, views.depths, views.masks))


def reference_loo_psnr(pipe, items: list[dict[str, Any]], n: int, loo: str = "one") -> float | None:
    """Leave-one-view-out PSNR of ground-truth renders of the first ``n`` prompts' combinations,
    from the prior's own rig, with the same reconstruction and protocol as the generated views."""
    from gen3d.priors.mvdata import render_viewset

    rig = pipe.load().spec.rig
    out = []
    for k, it in enumerate(items[:n]):
        views = render_viewset(reference_spec(it, k), rig)
        if getattr(pipe.config, "view_depth", "prior") == "fit":
            views = fused_viewset(views, pipe.reconstruct.cfg)
        hold = {"one": [k % rig.views], "all": list(range(rig.views)), "none": []}[loo]
        out += _loo_psnr(pipe, views, hold)
    return float(np.mean(out)) if out else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    loo = [r["loo_psnr"] for r in rows if r["loo_psnr"] is not None]
    s = {
        "prompts": len(rows),
        "color_accuracy": float(np.mean([r["color_ok"] for r in rows])),
        "class_accuracy": float(np.mean([r["class_ok"] for r in rows])),
        "fscore_mean": float(np.mean([r["fscore"] for r in rows])),
        "fit_psnr_mean": float(np.nanmean([r["fit_psnr"] for r in rows])),
        "loo_psnr_mean": float(np.mean(loo)) if loo else None,
        "generate_seconds_mean": float(np.mean([r["generate_seconds"] for r in rows])),
    }
    canon = [r["class_ok_canonical"] for r in rows if "class_ok_canonical" in r]
    if len(canon) == len(rows):  # the class rule with one canonical mesh per class (rows of older runs lack it)
        s["class_accuracy_canonical"] = float(np.mean(canon))
    raw = [r["loo_psnr_prior_depth"] for r in rows if r.get("loo_psnr_prior_depth") is not None]
    if raw:  # the views' depth as the prior decoded it, before gen3d generate fuses it with the fit
        s["loo_psnr_prior_depth_mean"] = float(np.mean(raw))
    parts = [r["loo_breakdown"] for r in rows if r.get("loo_breakdown")]
    if parts:  # where the held-out views' error lies: a perfect silhouette or perfect interior colours would reach
        s["loo_breakdown_mean"] = {k: float(np.mean([p[k] for p in parts])) for k in parts[0]}
    s["targets"] = {k: {"target": v, "value": s[k if k != "loo_psnr" else "loo_psnr_mean"],
                        "met": (s[k if k != "loo_psnr" else "loo_psnr_mean"] or 0) >= v} for k, v in TARGETS.items()}
    return s


def table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    raw = any(r.get("loo_psnr_prior_depth") is not None for r in rows)
    lines = ["| # | prompt | class -> predicted | colour -> predicted | F | fit PSNR | LOO PSNR |"
             + (" LOO PSNR, prior's depth |" if raw else ""), "|---|---|---|---|---|---|---|" + ("---|" if raw else "")]
    for r in rows:
        loo = f"{r['loo_psnr']:.1f}" if r["loo_psnr"] is not None else "-"
        if raw:
            loo += f" | {r['loo_psnr_prior_depth']:.1f}" if r.get("loo_psnr_prior_depth") is not None else " | -"
        canon = r.get("pred_class_canonical")
        canon = f" (canonical: {canon}{'' if r['class_ok_canonical'] else ' x'})" if canon and canon != r["pred_class"] else ""
        lines.append(f"| {r['index']} | {r['prompt']} | {r['class']} -> {r['pred_class']}{'' if r['class_ok'] else ' x'}{canon} | "
                     f"{r['color']} -> {r['pred_color']}{'' if r['color_ok'] else ' x'} | {r['fscore']:.2f} | "
                     f"{r['fit_psnr']:.1f} | {loo} |")
    s = summary
    loo = f"{s['loo_psnr_mean']:.2f} dB" if s["loo_psnr_mean"] is not None else "-"
    if s.get("loo_breakdown_mean"):
        b = s["loo_breakdown_mean"]
        loo += (f" (with perfect silhouettes {b['psnr_perfect_silhouette']:.2f} dB, with perfect interiors "
                f"{b['psnr_perfect_interior']:.2f} dB; silhouette share of the error {b['silhouette_share']:.2f})")
    if s.get("loo_psnr_prior_depth_mean") is not None:
        loo += f" (with the prior's own depth: {s['loo_psnr_prior_depth_mean']:.2f} dB)"
    if s.get("reference_loo_psnr") is not None:
        loo += f" (ground-truth renders of the first {s['reference_loo_prompts']}: {s['reference_loo_psnr']:.2f} dB)"
    lines += ["", (f"prompts {s['prompts']}; colour accuracy {s['color_accuracy']:.3f}; class accuracy "
                   f"{s['class_accuracy']:.3f} (ground-truth meshes: {s.get('reference_class_accuracy', float('nan')):.3f}"
                   + (f"; canonical-mesh rule: {s['class_accuracy_canonical']:.3f}, ground truth "
                      f"{s.get('reference_class_accuracy_canonical', float('nan')):.3f}" if "class_accuracy_canonical" in s else "")
                   + "); "
                   f"F-score {s['fscore_mean']:.3f}; fit PSNR {s['fit_psnr_mean']:.2f} dB; leave-one-view-out PSNR {loo}; "
                   f"{s['generate_seconds_mean']:.1f} s per generate")]
    return "\n".join(lines)


def run_eval(cfg: EvalConfig, pipe=None, quiet: bool = False) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from gen3d.config import to_dict
    from gen3d.pipelines.generate import GenerateConfig, GeneratePipeline, slug
    from gen3d.utils.io import read_json, write_json, write_text

    if not cfg.prompts:
        raise DataError("no prompts file: gen3d eval generate --prompts FILE (make one with `gen3d eval prompts`)")
    items = read_eval_prompts(cfg.prompts)
    if cfg.limit:
        items = items[: cfg.limit]
    out = Path(cfg.out)
    (out / "per_prompt").mkdir(parents=True, exist_ok=True)
    gen = GenerateConfig(model=cfg.model, seed=cfg.seed, guidance=cfg.guidance, guidance_min_sigma=cfg.guidance_min_sigma,
                         guide=cfg.guide, view_depth=cfg.view_depth)
    pipe = pipe or GeneratePipeline.from_config(dataclasses.replace(gen, candidates=cfg.candidates or gen.candidates))
    refs = canonical_meshes()
    rules = class_rules(cfg.chamfer_points)
    rows = []
    for i, it in enumerate(tqdm(items, desc="evaluating", unit="prompt", disable=quiet)):
        rp = out / "per_prompt" / f"{i:04d}.json"
        if rp.is_file():
            row = read_json(rp)
            if row.get("prompt") == it["prompt"]:
                if "pred_class_canonical" not in row:  # scored before the exemplar rule: re-classify its mesh
                    row = rescore_class(row, out / row.get("folder", ""), rules)
                    write_json(rp, row)
                rows.append(row)
                continue
        row = evaluate_prompt(pipe, it, i, out / f"{i:04d}_{slug(it['prompt'])}", refs, cfg, rules)
        write_json(rp, row)
        rows.append(row)
    summary = summarise(rows)
    summary["reference_class_accuracy"] = reference_class_accuracy(items, rules["exemplars"])
    summary["reference_class_accuracy_canonical"] = reference_class_accuracy(items, rules["canonical"])
    if cfg.reference_loo and cfg.loo != "none":
        summary["reference_loo_psnr"] = reference_loo_psnr(pipe, items, cfg.reference_loo, cfg.loo)
        summary["reference_loo_prompts"] = min(cfg.reference_loo, len(items))
    prior = pipe.load()
    result = {"summary": summary, "config": to_dict(cfg), "model": prior.meta.get("training", {}).get("steps"),
              "rows": rows}
    write_json(out / "eval.json", result)
    text = table(rows, summary)
    write_text(out / "eval.md", text + "\n")
    if not quiet:
        print(text)
    return result


def write_prompts_file(path: str | Path, n: int | None = None, seed: int = 0) -> int:
    from gen3d.utils.io import write_text

    items = heldout_prompt_items(n, seed)
    write_text(path, "".join(json.dumps(it) + "\n" for it in items))
    return len(items)


__all__ = [
    "EvalConfig",
    "canonical_meshes",
    "class_rules",
    "classify_mesh",
    "fused_viewset",
    "heldout_prompt_items",
    "mean_breakdown",
    "read_eval_prompts",
    "reference_loo_psnr",
    "reference_spec",
    "rescore_class",
    "run_eval",
    "summarise",
    "write_prompts_file",
]
