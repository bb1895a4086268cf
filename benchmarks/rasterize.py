"""Rasterizer speed: forward and forward+backward per backend, views, resolution and N.

    python benchmarks/rasterize.py [--repeats 10] [--threads 2] [--out benchmarks/results/rasterize.json] [--no-cold]

Scene: N Gaussians uniformly in a ball of radius 0.5 (an object), anisotropic, scales log-uniform in
[0.005, 0.03], opacities uniform in [0.05, 0.95], SH degree 3, seen by cameras on an orbit of radius
2.5 (elevation 15 deg, fov 50 deg). The loss is sum(colours) + mean(expected depth), so backward
reaches every input. Times are the minimum over repeats after two warm-up calls (the machine is
shared: the minimum is the least disturbed run).

Targets (issue 4, 2-core CPU): tiled forward+backward <= 100 ms for 4 views x 128^2 x 20k Gaussians
and <= 30 ms for 1 view x 128^2 x 20k.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# (backend, views, resolution, N); dense only for small N (it is quadratic).
CONFIGS = [
    ("dense", 1, 64, 500),
    ("tiled", 1, 64, 500),
    ("tiled", 1, 128, 20_000),
    ("tiled", 4, 128, 20_000),
    ("tiled", 4, 256, 100_000),
    ("gsplat", 1, 128, 20_000),
    ("gsplat", 4, 128, 20_000),
    ("gsplat", 4, 256, 100_000),
]


def make_scene(n: int, views: int, res: int, device: str = "cpu", seed: int = 0):
    from gen3d.cameras import orbit_cameras

    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=g)
    means = d / d.norm(dim=-1, keepdim=True) * 0.5 * torch.rand(n, 1, generator=g) ** (1 / 3)
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.empty(n, 3).uniform_(math.log(0.005), math.log(0.03), generator=g))
    opacities = torch.empty(n).uniform_(0.05, 0.95, generator=g)
    sh = torch.randn(n, 16, 3, generator=g) * 0.2
    cams = orbit_cameras(15.0, (torch.arange(views) * 360.0 / views).tolist(), 2.5, 50.0, res)
    params = [p.to(device).requires_grad_(True) for p in (means, quats, scales, opacities, sh)]
    return params, cams.w2c.to(device), cams.K.to(device)


def time_backend(backend: str, views: int, res: int, n: int, repeats: int) -> dict:
    from gen3d.recon.rasterize import rasterize

    device = "cuda" if backend == "gsplat" else "cpu"
    params, w2c, K = make_scene(n, views, res, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step(backward: bool) -> float:
        for p in params:
            p.grad = None
        sync()
        t0 = time.perf_counter()
        r = rasterize(*params, w2c, K, res, res, sh_degree=3, backend=backend)
        if backward:
            (r.colors.sum() + r.depths.mean()).backward()
        sync()
        return time.perf_counter() - t0

    for _ in range(2):
        step(True)
    fwd = min(step(False) for _ in range(repeats))
    fwd_bwd = min(step(True) for _ in range(repeats))
    return {"backend": backend, "views": views, "res": res, "n": n, "ms_forward": fwd * 1e3,
            "ms_forward_backward": fwd_bwd * 1e3}  # fmt: skip


def first_call_seconds(cold: bool) -> float:
    """Wall time of a fresh process's first tiled forward+backward, with or without numba's cache."""
    root = str(Path(__file__).resolve().parents[1])
    code = (
        f"import time; t0 = time.perf_counter(); import sys; sys.path.insert(0, {root!r}); "
        "from benchmarks.rasterize import make_scene; from gen3d.recon.rasterize import rasterize; "
        "p, w, K = make_scene(100, 1, 32); r = rasterize(*p, w, K, 32, 32, sh_degree=3, backend='tiled'); "
        "r.colors.sum().backward(); print(time.perf_counter() - t0)"
    )
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        if cold:
            env["NUMBA_CACHE_DIR"] = tmp  # an empty cache: everything compiles
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default="benchmarks/results/rasterize.json")
    ap.add_argument("--no-cold", action="store_true", help="skip measuring the cold numba compile")
    ap.add_argument("--threads", type=int, default=None, help="torch and numba threads (default: all cores)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    import numba

    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)

    has_cuda = torch.cuda.is_available()
    rows = []
    for backend, views, res, n in CONFIGS:
        if backend == "gsplat" and not has_cuda:
            continue
        rows.append(time_backend(backend, views, res, n, args.repeats))
        if not args.quiet:
            r = rows[-1]
            print(f"{backend:7s} {views:2d} x {res}^2  N={n:>7d}  fwd {r['ms_forward']:8.1f} ms"
                  f"  fwd+bwd {r['ms_forward_backward']:8.1f} ms", flush=True)  # fmt: skip
    compile_s = {"cached": first_call_seconds(cold=False)}
    if not args.no_cold:
        compile_s["cold"] = first_call_seconds(cold=True)

    machine = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.threading_layer() if rows else None,
        "load_average": os.getloadavg(),
        "gpu": torch.cuda.get_device_name(0) if has_cuda else None,
    }
    print()
    print("| backend | views | resolution | N | ms forward | ms forward+backward |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['backend']} | {r['views']} | {r['res']}x{r['res']} | {r['n']} | {r['ms_forward']:.1f} |"
              f" {r['ms_forward_backward']:.1f} |")  # fmt: skip
    print(f"\nfirst tiled call in a fresh process: {compile_s}  (seconds; 'cold' = empty numba cache)")
    print(f"machine: {machine}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"rows": rows, "first_call_s": compile_s, "machine": machine}, indent=2))
    tmp.replace(out)


if __name__ == "__main__":
    main()
