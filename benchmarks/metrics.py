"""Metric timings, and the colour classifier on ground-truth renders of the procedural world.

    python benchmarks/metrics.py [--objects 200 --views 4 --res 64] [--out benchmarks/results/metrics.json]

Colour: every sampled object is rendered from ``--views`` cameras; a view counts as a hit when its
dominant colour (alpha > 0.5 as the mask) is the object's primary colour (its first colour slot).
On multi-part objects another part can cover more pixels than the primary one (a laptop's screen),
so the rate measures the metric's definition as much as the classifier; misses are listed.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import Counter

import numpy as np


def best_of(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    return min(_timed(fn) for _ in range(repeats))


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def timings() -> dict[str, float]:
    import torch
    import trimesh

    from gen3d.eval.image_metrics import psnr, ssim
    from gen3d.eval.set_metrics import set_metrics
    from gen3d.geometry.metrics import mesh_metrics

    cube = trimesh.creation.box(extents=(1, 1, 1))
    moved = cube.copy()
    moved.apply_translation((0.05, 0, 0))
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(8, 3, 256, 256, generator=g), torch.rand(8, 3, 256, 256, generator=g)
    a.requires_grad_(True)
    clouds_g, clouds_r = torch.randn(16, 1024, 3, generator=g), torch.randn(16, 1024, 3, generator=g)
    return {
        "mesh_metrics, 2 x 100k points (s)": best_of(lambda: mesh_metrics(moved, cube)),
        "psnr 8x3x256x256 (s)": best_of(lambda: psnr(a.detach(), b)),
        "ssim 8x3x256x256 forward (s)": best_of(lambda: ssim(a.detach(), b)),
        "ssim 8x3x256x256 forward+backward (s)": best_of(lambda: ssim(a, b).sum().backward()),
        "set_metrics 16 vs 16 clouds x 1024 points (s)": best_of(lambda: set_metrics(clouds_g, clouds_r), 1),
    }


def colour_on_renders(objects: int, views: int, res: int) -> dict:
    from gen3d.data.dataset import CameraRig
    from gen3d.data.render import MeshRenderer
    from gen3d.data.world import build_object, sample_spec
    from gen3d.eval.color import color_votes

    cams = CameraRig(views=views).cameras(res)
    hits, misses = 0, Counter()
    per_color: dict[str, list[bool]] = {}
    for i in range(objects):
        spec = sample_spec(0, i, split="all")
        out = MeshRenderer.from_object(build_object(spec)).render(cams)
        for rgb, alpha in zip(out.rgb, out.alpha):
            name = color_votes(rgb, alpha).name
            hit = name == spec.primary_color
            hits += hit
            per_color.setdefault(spec.primary_color, []).append(hit)
            if not hit:
                misses[f"{spec.cls} {spec.colors} -> {name}"] += 1
    return {
        "views": objects * views,
        "accuracy": hits / (objects * views),
        "accuracy_per_primary_colour": {k: float(np.mean(v)) for k, v in sorted(per_color.items())},
        "misses": dict(misses.most_common()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=200)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--out", default="benchmarks/results/metrics.json")
    args = ap.parse_args()

    import torch

    from gen3d.utils.io import write_json

    times = timings()
    colour = colour_on_renders(args.objects, args.views, args.res)
    print(f"{'timing':<48}{'seconds':>10}")
    for k, v in times.items():
        print(f"{k.removesuffix(' (s)'):<48}{v:>10.3f}")
    print(f"\ncolour accuracy on {colour['views']} world renders ({args.res}px): {colour['accuracy']:.3f}")
    for k, v in colour["misses"].items():
        print(f"  miss x{v}: {k}")
    write_json(
        args.out,
        {
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
            "timings_s": {k: round(v, 4) for k, v in times.items()},
            "colour_on_renders": colour,
        },
    )


if __name__ == "__main__":
    main()
