"""Sample quality against NFE for every sampler, driven by the exact Gaussian-mixture denoiser.

    python benchmarks/samplers.py [--out benchmarks/results] [--samples 4000] [--steps 4,8,16,32,64,128,256]
    python benchmarks/samplers.py --plot-only benchmarks/results/samplers.json   # redraw from saved numbers

For each toy mixture (2-D ring, 8-D random) and each sampler and step count, draws ``--samples``
samples from the same noise and reports the sliced Wasserstein-2 distance to 20,000 exact samples
and the true log-density gap E_q log p - E_p log p (0 for the truth; < 0 too broad, > 0 too sharp).
Because the denoiser is exact, every number is the sampler's own error. Prints a Markdown table and
writes samplers.json and samplers.png to ``--out``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from gen3d.diffusion.plots import quality_plot
from gen3d.diffusion.samplers import SAMPLERS, sample, sampler_names
from gen3d.diffusion.toy import sliced_wasserstein, toy_2d, toy_nd
from gen3d.utils.io import write_json

DATA = {"2d": toy_2d, "8d": lambda: toy_nd(8)}
LONG = ("ddpm", "euler_maruyama")  # first-order, uniform-in-t or stochastic: also run 512 and 1000 steps


def nfe_of(name: str, steps: int) -> int:
    two = name in ("heun", "edm_sde", "flow_heun")
    return 2 * steps - 1 if two else steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results", help="output folder (default: benchmarks/results)")
    p.add_argument("--samples", type=int, default=4000)
    p.add_argument("--steps", default="4,8,16,32,64,128,256", help="comma-separated step counts")
    p.add_argument("--data", default="2d,8d", help="comma-separated: 2d, 8d")
    p.add_argument("--samplers", default=",".join(sampler_names()))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--plot-only", metavar="JSON", help="redraw the plot and table from a saved samplers.json")
    args = p.parse_args(argv)
    if args.plot_only:
        from gen3d.utils.io import read_json

        saved = read_json(args.plot_only)
        quality_plot(saved["rows"], Path(args.out) / "samplers.png", saved["meta"]["noise_floor_sw2"])
        print(markdown_table(saved["rows"], saved["meta"]["noise_floor_sw2"]))
        return 0
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    steps_list = [int(s) for s in args.steps.split(",")]
    names = args.samplers.split(",")
    rows, floors = [], {}
    start = time.perf_counter()
    for data in args.data.split(","):
        gmm = DATA[data]()
        g = torch.Generator().manual_seed(args.seed)
        ref, _ = gmm.sample(20_000, g)
        ref_logp = gmm.log_prob(ref).mean().item()
        floors[data] = sliced_wasserstein(gmm.sample(args.samples, g)[0], ref)
        noise = torch.randn(args.samples, *gmm.shape, generator=g)
        for name in names:
            for steps in steps_list + ([512, 1000] if name in LONG else []):
                t0 = time.perf_counter()
                res = sample(name, gmm.denoiser(), noise, steps, generator=torch.Generator().manual_seed(args.seed + 1))
                row = {
                    "data": data, "sampler": name, "steps": steps, "nfe": res.nfe,
                    "sw2": sliced_wasserstein(res.x, ref),
                    "logp_gap": gmm.log_prob(res.x).mean().item() - ref_logp,
                    "seconds": time.perf_counter() - t0,
                }
                rows.append(row)
                if not args.quiet:
                    print(f"{data} {name:22s} steps {steps:5d} NFE {row['nfe']:5d} SW2 {row['sw2']:.4f} "
                          f"gap {row['logp_gap']:+.3f}", file=sys.stderr, flush=True)
    out = Path(args.out)
    meta = {
        "command": "python benchmarks/samplers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "samples": args.samples, "reference_samples": 20_000, "seconds_total": time.perf_counter() - start,
        "noise_floor_sw2": floors,
    }
    write_json(out / "samplers.json", {"meta": meta, "rows": rows})
    quality_plot(rows, out / "samplers.png", floors)
    print(markdown_table(rows, floors))
    return 0


def markdown_table(rows: list[dict], floors: dict[str, float]) -> str:
    """One line per (data, sampler); columns: SW2 (and log-density gap) at each step count."""
    lines = []
    for data in dict.fromkeys(r["data"] for r in rows):
        steps = sorted({r["steps"] for r in rows if r["data"] == data})
        lines.append(f"\n**{data} mixture** (exact samples: SW2 {floors[data]:.3f}). "
                     "Cells: sliced W2 / log-density gap, NFE in brackets.\n")
        lines.append("| sampler | " + " | ".join(f"{s} steps" for s in steps) + " |")
        lines.append("|---|" + "---|" * len(steps))
        for name in dict.fromkeys(r["sampler"] for r in rows if r["data"] == data):
            cells = []
            for s in steps:
                r = next((r for r in rows if r["data"] == data and r["sampler"] == name and r["steps"] == s), None)
                cells.append("" if r is None else f"{r['sw2']:.3f} / {r['logp_gap']:+.2f} ({r['nfe']})")
            kind = "" if name not in SAMPLERS else (" (stoch.)" if not SAMPLERS[name].deterministic else "")
            lines.append(f"| {name}{kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
