"""Leave-one-view-out PSNR of `gen3d generate`'s Gaussian fit under fit overrides, without sampling.

Fits 3 of the 4 views and renders the 4th, as ``gen3d eval generate`` does, on either
  * ground-truth renders of the held-out prompts' combinations from the prior's rig (``--source gt``,
    the same objects as the evaluation's ``reference_loo``), or
  * the views an earlier ``gen3d eval generate --out DIR`` saved (``--source DIR``; read back from their
    8-bit PNGs, so within a few tenths of a dB of the evaluation's in-memory figure).

    python benchmarks/loo_fit.py --source gt --limit 12 gaussians.hull_extent=3
    python benchmarks/loo_fit.py --source out/eval --index 0,1,2 gaussians.hull_extent=3

With ``--fuse``, each set's depth is first replaced as ``gen3d generate`` saves it (rendered from a fit
to all 4 views, inside each mask: ``gen3d.recon.consistency.depth_from_fit``); an evaluation folder
written with that default already holds fused depth (the prior's own is in ``views/depth_prior``), so
``--fuse`` is for ground truth and for folders written with ``--view-depth prior`` or before it existed.

Prints per prompt the held-out PSNR, the silhouette pixels rendered outside the view's mask
(excess) and missing from it, and the PSNR on the 3 fitted views; then the means.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch
    from gen3d.pipelines.generate import _default_recon
    from gen3d.pipelines.reconstruct import ReconstructConfig, fit

    from gen3d.config import load_config
    from gen3d.data.dataset import load_views
    from gen3d.errors import ConfigError
    from gen3d.eval.generate import fused_viewset, read_eval_prompts, reference_spec
    from gen3d.eval.image_metrics import silhouette_breakdown
    from gen3d.priors.mvdata import PriorRig, render_viewset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="gt", help="gt, or the --out folder of a gen3d eval generate run")
    ap.add_argument("--prompts", default=str(ROOT / "configs" / "eval_heldout_prompts.jsonl"))
    ap.add_argument("--limit", type=int, default=12, help="the first N prompts (ignored with --index)")
    ap.add_argument("--index", default="", help="comma-separated prompt indices")
    ap.add_argument("--json", default="", help="also write the rows and means here")
    ap.add_argument("--fuse", action="store_true", help="first replace the depth by that of a fit to all 4 views")
    ap.add_argument("overrides", nargs="*", help="KEY=VALUE on gen3d generate's ReconstructConfig, e.g. gaussians.hull_extent=3")
    a = ap.parse_args()
    try:
        cfg = load_config(ReconstructConfig, overrides=a.overrides, base=_default_recon())
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    items = read_eval_prompts(a.prompts)
    rows = None if a.source == "gt" else json.loads((Path(a.source) / "eval.json").read_text())["rows"]
    n = len(rows) if rows is not None else len(items)
    idx = [int(i) for i in a.index.split(",")] if a.index else list(range(min(a.limit or n, n)))
    out = []
    for k in idx:
        if rows is None:
            views, hold, name = render_viewset(reference_spec(items[k], k), PriorRig()), k % 4, items[k]["prompt"]
        else:
            row = rows[k]
            views, hold, name = load_views(Path(a.source) / row["folder"] / "views"), row["loo_views"][0], row["prompt"]
        if a.fuse:
            views = fused_viewset(views, cfg)
        keep = [j for j in range(len(views)) if j != hold]
        train, test = views.subset(keep), views.subset([hold])
        rep = fit(train, cfg, None, quiet=True).representation
        r = rep.render(test.cameras)
        b = silhouette_breakdown(r.rgb[0], r.alpha[0], test.images[0], test.masks[0])
        rt = rep.render(train.cameras)
        train_psnr = float(-10 * torch.log10(((rt.rgb - train.images) ** 2).mean()))
        out.append({"index": k, "prompt": name, "loo_psnr": b["psnr"], "excess_px": b["excess_px"],
                    "missing_px": b["missing_px"], "train_psnr": train_psnr})
        print(f"{k:3d} {name[:36]:36s} held-out {b['psnr']:6.2f} dB  excess {b['excess_px']:4d}  missing "
              f"{b['missing_px']:4d}  fitted views {train_psnr:6.2f} dB", flush=True)
    means = {k: float(np.mean([o[k] for o in out])) for k in ("loo_psnr", "excess_px", "missing_px", "train_psnr")}
    print(f"mean over {len(out)}: held-out {means['loo_psnr']:.2f} dB, excess {means['excess_px']:.1f}, missing "
          f"{means['missing_px']:.1f}, fitted views {means['train_psnr']:.2f} dB  ({' '.join(a.overrides) or 'defaults'}{', fused depth' if a.fuse else ''})")
    if a.json:
        from gen3d.utils.io import write_json

        write_json(a.json, {"source": a.source, "overrides": a.overrides, "fuse": a.fuse, "rows": out, "mean": means})


if __name__ == "__main__":
    main()
