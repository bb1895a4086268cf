"""Reconstruction quality and speed on procedural objects.

    python benchmarks/reconstruct.py --objects 4 --views 16 --res 128 --backends gaussians nerf

Each object is rendered from ``--views`` orbit cameras; every second view is held out (8 train,
8 held-out for 16 views). For every backend and device the full ``gen3d reconstruct`` pipeline
runs (fit, evaluation, TSDF mesh, exports), and the table reports wall seconds end to end and for
the fit, held-out PSNR, and the mesh F-score at 2% of the ground-truth bounding-box diagonal.

Targets (reconstruction issue): CPU Gaussians: held-out PSNR >= 28 dB, F-score >= 0.85, a 4-8 view
128x128 fit <= 60 s end to end, mesh included.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=4)
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backends", nargs="+", default=["gaussians"], choices=["gaussians", "nerf"])
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    ap.add_argument("--iters", type=int, default=None, help="override the backend's default iterations")
    ap.add_argument("--out", default="benchmarks/results/reconstruct.json")
    ap.add_argument("--keep", default=None, help="keep the output folders here")
    args = ap.parse_args()

    import torch

    from gen3d.config import load_config
    from gen3d.data.dataset import CameraRig, DataRenderConfig
    from gen3d.data.render_dataset import render_dataset
    from gen3d.pipelines.reconstruct import ReconstructConfig, ReconstructPipeline

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    work = Path(args.keep or tempfile.mkdtemp(prefix="gen3d-bench-"))
    data = work / "data"
    render_dataset(DataRenderConfig(out=str(data), n=args.objects, seed=args.seed, res=args.res,
                                    camera=CameraRig(views=args.views)), quiet=True)
    rows = []
    for backend in args.backends:
        for device in devices:
            for i in range(args.objects):
                obj = data / f"obj_{i:05d}"
                overrides = [f"backend={backend}", f"device={device}", "holdout_every=2"]
                if args.iters:
                    overrides.append(f"{backend}.iters={args.iters}")
                cfg = load_config(ReconstructConfig, None, overrides)
                t0 = time.perf_counter()
                res = ReconstructPipeline(cfg)(obj, work / "out" / f"{backend}-{device}-{i}", quiet=True)
                total = time.perf_counter() - t0
                meta = json.loads((obj / "transforms.json").read_text())["gen3d"]
                rows.append({
                    "backend": backend, "device": device, "object": meta["caption"], "class": meta["spec"]["cls"],
                    "train_views": args.views - args.views // 2, "heldout_views": args.views // 2, "res": args.res,
                    "iterations": res.metrics["iterations"], "seconds_total": round(total, 2),
                    "seconds_fit": res.timings.get("fit"), "heldout_psnr": round(res.metrics.get("heldout_psnr", float("nan")), 2),
                    "fscore": round(res.metrics.get("mesh_fscore", float("nan")), 3),
                })
                r = rows[-1]
                print(f"{backend:<10}{device:<6}{r['class']:<10}{r['iterations']:>6}{r['seconds_total']:>9.1f}"
                      f"{r['seconds_fit']:>9.1f}{r['heldout_psnr']:>8.2f}{r['fscore']:>8.3f}", flush=True)

    print(f"\n{'backend':<10}{'device':<7}{'views':>6}{'res':>5}{'iters':>7}{'s total':>9}{'s fit':>8}{'PSNR':>7}{'F@2%':>7}")
    summary = []
    for backend in args.backends:
        for device in devices:
            rs = [r for r in rows if r["backend"] == backend and r["device"] == device]
            mean = lambda k: sum(r[k] for r in rs) / len(rs)  # noqa: E731
            s = {"backend": backend, "device": device, "train_views": rs[0]["train_views"], "res": args.res,
                 "iterations": rs[0]["iterations"], "seconds_total": round(mean("seconds_total"), 2),
                 "seconds_fit": round(mean("seconds_fit"), 2), "heldout_psnr": round(mean("heldout_psnr"), 2),
                 "fscore": round(mean("fscore"), 3), "min_psnr": min(r["heldout_psnr"] for r in rs),
                 "min_fscore": min(r["fscore"] for r in rs)}
            summary.append(s)
            print(f"{backend:<10}{device:<7}{s['train_views']:>6}{args.res:>5}{s['iterations']:>7}{s['seconds_total']:>9.1f}"
                  f"{s['seconds_fit']:>8.1f}{s['heldout_psnr']:>7.2f}{s['fscore']:>7.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        machine += f", {torch.cuda.get_device_name(0)}"
    out.write_text(json.dumps({"machine": machine, "args": vars(args), "summary": summary, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
