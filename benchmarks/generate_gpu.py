"""`gen3d generate` after warm-up, in one process (the prior issue's GPU target: <= 5 s per object).

One pipeline is built, generates a warm-up prompt (on a GPU this also compiles gsplat's CUDA code
when it is not cached yet, and lets cuDNN pick its kernels), then generates the chosen prompts one
after another, as ``gen3d generate --prompts FILE`` does. Each object is timed from the call to the
written output folder (``mesh.glb``, ``splats.ply``, previews, ``result.json``), the GPU synchronised
before and after. Writes ``generate_gpu.json`` (per-object wall time and stage timings, peak GPU
memory) after every prompt, and with ``--pack`` a tar of each object's ``mesh.glb``, ``views.png``,
``views/`` and ``result.json`` in parts of at most 15 MiB, so the meshes can be scored elsewhere:

    python benchmarks/generate_gpu.py --device cuda --n 18 --out-dir OUT --pack      # on the GPU machine
    python benchmarks/generate_gpu.py --score OUT                                   # here: class and colour

``--score`` joins and unpacks the parts and scores every mesh with the evaluation's class rules
(``gen3d.eval.generate.class_fields``) and the views' colour (``gen3d.eval.color``), as
``gen3d eval generate`` does, and adds them to ``generate_gpu.json``. On the lent machines, which
lack open3d and the bundled MiniLM package, ``benchmarks/device_prior/pack.py --generate`` packs what
is missing (see ``benchmarks/device_generate.sh``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pick_prompts(path: Path, n: int) -> list[dict]:
    items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    step = max(1, len(items) // n)
    return [dict(it, index=i) for i, it in enumerate(items)][::step][:n]


def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def run(args) -> int:
    t_start = time.perf_counter()
    import torch
    from gen3d.pipelines.generate import GenerateConfig, GeneratePipeline

    from gen3d.config import load_config
    from gen3d.geometry.tsdf import resolve_engine

    cuda = args.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.backends.cudnn.benchmark = True
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="g3gen_"))
    items = pick_prompts(Path(args.prompts), args.n)
    base = GenerateConfig(device=args.device, seed=args.seed)
    # Each variant is a pipeline with its own overrides; they share the loaded prior (load_prior caches it)
    # and take turns on every prompt, so a drift of the machine affects them alike.
    variants = {v: load_config(GenerateConfig, None, [o for o in v.split(",") if o], base=base) for v in args.variant or [""]}
    pipes = {v: GeneratePipeline.from_config(c) for v, c in variants.items()}
    cfg = next(iter(variants.values()))
    t_import = time.perf_counter() - t_start

    report = {"device": torch.cuda.get_device_name(0) if cuda else f"cpu ({platform.processor() or platform.machine()})",
              "torch": torch.__version__, "python": platform.python_version(),
              "mesh_engine": resolve_engine(cfg.recon.mesh.engine), "fit_backend": cfg.recon.gaussians.backend,
              "seed": args.seed, "import_and_build_s": round(t_import, 2), "rows": []}
    try:
        import gsplat

        report["gsplat"] = gsplat.__version__
    except ImportError:
        report["gsplat"] = None
    res_path = out_dir / "generate_gpu.json"

    report["warmup_s"] = {}
    for v, pipe in pipes.items():
        sync()
        t = time.perf_counter()
        pipe(args.warmup, work / "warmup", seed=args.seed, quiet=True)
        sync()
        report["warmup_s"][v] = round(time.perf_counter() - t, 2)
        print(f"warm-up {v or 'default'} ({args.warmup!r}; the first also loads the model) {report['warmup_s'][v]} s",
              flush=True)
    write_json(res_path, report)
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    for it in items:
        for k, (v, pipe) in enumerate(pipes.items()):
            folder = work / (f"{it['index']:02d}" + (f"_v{k}" if k else ""))
            sync()
            t = time.perf_counter()
            pipe(it["prompt"], folder, seed=args.seed, quiet=True)
            sync()
            wall = time.perf_counter() - t
            res = json.loads((folder / "result.json").read_text())
            row = {**it, "variant": v, "wall_s": round(wall, 3), "timings": res["timings"],
                   "fit_psnr": res.get("metrics", {}).get("train_psnr"), "mesh_faces": res.get("metrics", {}).get("mesh_faces")}
            report["rows"].append(row)
            print(f"{it['index']:2d} {it['prompt']!r:40} {v or 'default':24} {wall:6.2f} s  " +
                  "  ".join(f"{k} {x:.2f}" for k, x in res["timings"].items() if k not in ("total", "load") and x >= 0.05),
                  flush=True)
            write_json(res_path, report)

    report["summary"] = {}
    for v in pipes:
        rows = [r for r in report["rows"] if r["variant"] == v]
        walls = [r["wall_s"] for r in rows]
        stages = sorted({k for r in rows for k in r["timings"]})
        report["summary"][v or "default"] = {
            "objects": len(walls), "mean_s": round(statistics.mean(walls), 3), "median_s": round(statistics.median(walls), 3),
            "max_s": round(max(walls), 3), "min_s": round(min(walls), 3),
            "stage_mean_s": {k: round(statistics.mean(r["timings"].get(k, 0.0) for r in rows), 3) for k in stages},
            "fit_psnr_mean": round(statistics.mean(r["fit_psnr"] for r in rows), 3),
        }
    report["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 3) if cuda else None
    write_json(res_path, report)
    print(json.dumps(report["summary"], indent=1), flush=True)
    if args.profile:
        profile(pipes[next(iter(pipes))], items[: args.profile], work, args.seed, out_dir / "profile.txt", cuda)
    if args.pack:
        files = [str(p.relative_to(work)) for it in items for name in ("mesh.glb", "views.png", "result.json", "views")
                 if (p := work / f"{it['index']:02d}" / name).exists()]
        subprocess.run(f"tar czf - -C {work} {' '.join(files)} | split -b 15m - {out_dir}/meshes.tgz.part_",
                       shell=True, check=True)
    return 0


def profile(pipe, items: list[dict], work: Path, seed: int, dest: Path, cuda: bool) -> None:
    """torch.profiler over generating ``items``: the operators by their own CPU time, then by CUDA time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=acts) as prof:
        for it in items:
            pipe(it["prompt"], work / f"profile_{it['index']:02d}", seed=seed, quiet=True)
    ka = prof.key_averages()
    text = [f"profile of {len(items)} generate calls\n", ka.table(sort_by="self_cpu_time_total", row_limit=40)]
    if cuda:
        text.append(ka.table(sort_by="self_cuda_time_total", row_limit=25))
    dest.write_text("\n".join(text))
    print(text[1][:6000], flush=True)


def score(out_dir: Path, points: int) -> int:
    """Class (both rules) and colour of the returned objects, as ``gen3d eval generate`` scores them."""
    import numpy as np

    from gen3d.data.dataset import load_views
    from gen3d.eval.color import color_votes
    from gen3d.eval.generate import _load_mesh, class_fields, class_rules

    report = json.loads((out_dir / "generate_gpu.json").read_text())
    parts = sorted(out_dir.glob("meshes.tgz.part_*"))
    if not parts:
        raise SystemExit(f"{out_dir} holds no meshes.tgz.part_* (run with --pack)")
    work = Path(tempfile.mkdtemp(prefix="g3score_"))
    subprocess.run(f"cat {' '.join(map(str, parts))} | tar xzf - -C {work}", shell=True, check=True)
    rules = class_rules(points)
    first = report["rows"][0].get("variant", "")
    rows = [r for r in report["rows"] if r.get("variant", "") == first]  # --pack keeps the first variant's objects
    for row in rows:
        folder = work / f"{row['index']:02d}"
        row.update(class_fields(_load_mesh(folder), row["class"], rules))
        # The evaluation votes on the fit's renders of the views; the fit (splats.ply) is not returned,
        # so this votes on the generated views themselves, inside their masks.
        views = load_views(folder / "views")
        rgb = views.images.reshape(-1, views.images.shape[-2], 3).numpy()
        mask = views.masks.reshape(-1, views.masks.shape[-1]).numpy() > 0.5
        row["pred_color_views"] = color_votes(rgb, mask).name
        row["color_ok_views"] = row["pred_color_views"] == row["color"]
    report["scores"] = {"variant": first or "default", "objects": len(rows), "points": points,
                        "class_accuracy": round(float(np.mean([r["class_ok"] for r in rows])), 3),
                        "class_accuracy_canonical": round(float(np.mean([r["class_ok_canonical"] for r in rows])), 3),
                        "color_accuracy_views": round(float(np.mean([r["color_ok_views"] for r in rows])), 3)}
    write_json(out_dir / "generate_gpu.json", report)
    for r in rows:
        print(f"{r['index']:2d} {r['prompt']!r:40} class {r['pred_class']!s:10} ({'ok' if r['class_ok'] else r['class']})"
              f"  colour {r['pred_color_views']:8} ({'ok' if r['color_ok_views'] else r['color']})")
    print(report["scores"])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    ap.add_argument("--prompts", default=str(ROOT / "configs" / "eval_heldout_prompts.jsonl"))
    ap.add_argument("--n", type=int, default=18, help="how many prompts (every k-th of the file)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", default="a red mug")
    ap.add_argument("--out-dir", default="benchmarks/results/generate_gpu")
    ap.add_argument("--work", default="", help="where the output folders go (default: a temporary folder)")
    ap.add_argument("--pack", action="store_true", help="also write the meshes, views and results as tar parts")
    ap.add_argument("--variant", action="append", default=[],
                    help="a comma-separated list of GenerateConfig overrides (e.g. recon.gaussians.adam=unfused); "
                         "repeat to compare variants, which take turns on every prompt (none: the defaults)")
    ap.add_argument("--profile", type=int, default=0, help="afterwards, profile this many prompts (first variant)")
    ap.add_argument("--score", default="", help="score a returned OUT folder here instead of generating")
    ap.add_argument("--points", type=int, default=4000, help="surface points per mesh for the class rules")
    args = ap.parse_args()
    if args.score:
        return score(Path(args.score), args.points)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("generate_gpu.py: --device cuda needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
            return 2
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
