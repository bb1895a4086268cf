"""Renderer throughput on the procedural world: views/s at a resolution, with and without PNG writing.

    python benchmarks/render.py --res 128 --objects 26 --views 8 [--out benchmarks/results/render.json]

Target (foundation issue): >= 50 views/s at 128x128 on the 2-core CPU machine, renderer alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--objects", type=int, default=26)
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--supersample", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/render.json")
    args = ap.parse_args()

    import torch

    from gen3d.data.dataset import CameraRig, DataRenderConfig
    from gen3d.data.render import MeshRenderer, RenderConfig
    from gen3d.data.render_dataset import render_dataset
    from gen3d.data.world import build_object, sample_spec

    cfg = RenderConfig(supersample=args.supersample)
    cams = CameraRig(views=args.views).cameras(args.res)
    objs = [build_object(sample_spec(0, i)) for i in range(args.objects)]
    faces = [len(o.arrays()[1]) for o in objs]
    MeshRenderer.from_object(objs[0], cfg).render(cams)  # warm-up (open3d import, thread pool)

    best = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for o in objs:
            MeshRenderer.from_object(o, cfg).render(cams)
        best = min(best, time.perf_counter() - t0)
    n_views = args.objects * args.views
    render_vps = n_views / best

    with tempfile.TemporaryDirectory() as tmp:
        dcfg = DataRenderConfig(out=str(Path(tmp) / "d"), n=args.objects, res=args.res,
                                camera=CameraRig(views=args.views), render=cfg)
        t0 = time.perf_counter()
        render_dataset(dcfg, quiet=True)
        e2e = time.perf_counter() - t0
    e2e_vps = n_views / e2e

    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, {platform.processor() or 'cpu'}",
        "res": args.res,
        "supersample": args.supersample,
        "objects": args.objects,
        "views_per_object": args.views,
        "mean_faces": float(np.mean(faces)),
        "render_views_per_s": round(render_vps, 1),
        "dataset_views_per_s": round(e2e_vps, 1),
        "dataset_note": "gen3d data render incl. mesh building, PNG writing (rgb, mask, depth, normals), mesh.ply",
    }
    print(f"{'stage':<34}{'views/s':>10}")
    print(f"{'render (rays+shading, ' + str(args.res) + 'px, ss' + str(args.supersample) + ')':<34}{render_vps:>10.1f}")
    print(f"{'gen3d data render (all files)':<34}{e2e_vps:>10.1f}")
    print(f"mean faces per object: {np.mean(faces):.0f}; target >= 50 views/s (renderer alone)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
