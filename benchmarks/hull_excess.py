"""Held-out silhouette of the starting hull: how far the hull of 3 views reaches outside the 4th view's mask.

For each chosen prompt, the visual hull of the views other than the held-out one (silhouettes only,
and clipped to the convex hull of their seen surface as ``gen3d generate``'s fit starts from) is
ray-cast into the held-out camera and compared with that view's mask; the same for ground-truth
renders of the prompt's combination from the prior's rig (``gen3d.eval.generate.reference_spec``).

    python benchmarks/hull_excess.py --source out/eval --index 0,1,3,4,5,14,22,46
    python benchmarks/hull_excess.py --source out/eval --index 0,1 --prior-depth

``--prior-depth`` reads the depth the prior decoded (``views/depth_prior``) instead of the saved views'
depth, which ``gen3d generate`` fuses with its fit by default (docs/prior.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import numpy as np
    import torch
    from gen3d.pipelines.generate import _default_recon
    from PIL import Image

    from gen3d.data.dataset import DEPTH_SCALE, load_views
    from gen3d.eval.generate import read_eval_prompts, reference_spec
    from gen3d.priors.mvdata import PriorRig, render_viewset
    from gen3d.recon.consistency import raycast_silhouettes
    from gen3d.recon.fit_gaussians import hull_options
    from gen3d.recon.init import visual_hull_occupancy

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, help="the --out folder of a gen3d eval generate run")
    ap.add_argument("--prompts", default=str(ROOT / "configs" / "eval_heldout_prompts.jsonl"))
    ap.add_argument("--index", required=True, help="comma-separated prompt indices")
    ap.add_argument("--prior-depth", action="store_true", help="use views/depth_prior instead of views/depth")
    a = ap.parse_args()
    g = _default_recon().gaussians
    rows = json.loads((Path(a.source) / "eval.json").read_text())["rows"]
    items = read_eval_prompts(a.prompts)

    def excess(views, hold):
        keep = [j for j in range(len(views)) if j != hold]
        train, test = views.subset(keep), views.subset([hold])
        m = test.masks[0] >= 0.5
        out = []
        for cfg in (replace(g, hull_convex_margin=-1.0), g):
            occ = visual_hull_occupancy(train.cameras, train.masks, g.hull_resolution, **hull_options(cfg, train.depths))
            s = raycast_silhouettes(occ, test.cameras)[0]
            out += [int((s & ~m).sum()), int((~s & m).sum())]
        return out

    print("prompt                                  | silhouettes only: excess missing | convex clip: excess missing")
    for k in [int(i) for i in a.index.split(",")]:
        row = rows[k]
        folder = Path(a.source) / row["folder"] / "views"
        views = load_views(folder)
        if a.prior_depth:
            d = [np.asarray(Image.open(folder / "depth_prior" / f"v{v:03d}.png")).astype(np.float32) * DEPTH_SCALE
                 for v in range(len(views))]
            views = replace(views, depths=torch.from_numpy(np.stack(d)))
        gen = excess(views, row["loo_views"][0])
        gt = excess(render_viewset(reference_spec(items[k], k), PriorRig()), k % 4)
        print(f"{k:3d} {row['prompt'][:34]:34s}  generated {gen[0]:4d} {gen[1]:4d} | {gen[2]:4d} {gen[3]:4d}   "
              f"ground truth {gt[0]:4d} {gt[1]:4d} | {gt[2]:4d} {gt[3]:4d}", flush=True)


if __name__ == "__main__":
    main()
