"""End-to-end speed and memory of ``gen3d generate`` (a fresh process per prompt, as a user runs it).

    python benchmarks/generate.py --prompts "a red mug" "a blue chair" "a green sphere" --device cpu

For each prompt, ``gen3d generate`` runs in its own process under ``/usr/bin/time -v`` (or with
resource.getrusage when that is missing): the table reports the wall time the user waits (process
start to exit, imports and model loading included), the per-stage timings from result.json, and the
peak resident memory. Targets (prior issue): CPU 2 cores <= 60 s (stretch 30 s), <= 6 GB; GPU
<= 5 s per object after warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_one(prompt: str, out: Path, device: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "gen3d", "generate", prompt, "--out", str(out), "--device", device, "--quiet", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"gen3d generate failed for {prompt!r}:\n{r.stderr[-2000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    res = json.loads((out / "result.json").read_text())
    return {"prompt": prompt, "wall_s": round(wall, 2), "peak_rss_gb": round(max(peak_kb, before) / 1e6, 2),
            "timings": res["timings"], "fit_psnr": res["metrics"].get("train_psnr")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", nargs="+", default=["a red mug", "a blue chair", "a green sphere"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", default="benchmarks/results/generate.json")
    ap.add_argument("extra", nargs="*", help="extra key=value overrides for gen3d generate")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, p in enumerate(args.prompts):
            rows.append(run_one(p, Path(tmp) / f"g{i}", args.device, args.extra))
            r = rows[-1]
            print(f"{p!r:28} wall {r['wall_s']:6.1f} s  sample {r['timings'].get('sample', 0):5.1f} s  "
                  f"fit {r['timings'].get('fit', 0):5.1f} s  mesh {r['timings'].get('mesh', 0):4.1f} s  "
                  f"peak {r['peak_rss_gb']:.2f} GB  fit PSNR {r['fit_psnr']:.1f} dB", flush=True)
    walls = [r["wall_s"] for r in rows]
    summary = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
               "device": args.device, "mean_wall_s": round(sum(walls) / len(walls), 2), "max_wall_s": max(walls),
               "max_peak_rss_gb": max(r["peak_rss_gb"] for r in rows), "rows": rows}
    print(f"mean {summary['mean_wall_s']} s, max {summary['max_wall_s']} s, peak memory {summary['max_peak_rss_gb']} GB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
