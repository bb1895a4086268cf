"""How often the evaluation's class rules name ground-truth objects correctly (``gen3d.eval.classify``).

Draws ``--per-class`` objects of every class from the *training* distribution (``sample_spec``, seed
``--seed``; not the evaluation's prompts) and classifies each with the canonical-mesh rule and the
exemplar rule:

- ``--source mesh``: the object's exact mesh;
- ``--source recon``: the object rendered from the shipped prior's rig (exact colour, depth and
  masks) and reconstructed by ``gen3d generate``'s own reconstruction stage (the fit and the TSDF mesh),
  so the rules see what a perfect prior would hand them.
- ``--source ae``: as ``recon``, but the renders first go through the prior's autoencoder (encode, then
  decode), so the rules see what a prior that produced exactly the right latents would hand them.

    python benchmarks/class_rule.py --source mesh --per-class 8 --points 2000
    python benchmarks/class_rule.py --source recon --per-class 2 --out out/class_rule_recon.json
    python benchmarks/class_rule.py --source recon --per-class 2 recon.mesh_depth=expected   # a variant
    python benchmarks/class_rule.py --source ae --per-class 2

With ``--source recon`` or ``ae``, GenerateConfig overrides (``key=value``) change the reconstruction that is run.

Prints each rule's accuracy and its confusions; ``--out`` writes them as JSON with every draw.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def autoencoder_round_trip(views, prior, rig):
    """The views encoded and decoded by the prior's autoencoder, as generated views are decoded."""
    import torch
    from gen3d.pipelines.generate import views_to_viewset

    from gen3d.priors.mvdata import from_network, to_network
    from gen3d.priors.mvprior import GeneratedViews

    rgb = (views.images.permute(0, 3, 1, 2) * 255).round().to(torch.uint8)
    alpha = (views.masks * 255).round().to(torch.uint8)
    x = to_network(rgb, alpha, views.depths, rig.radius)
    ae = prior.autoencoder.eval()
    with torch.no_grad():
        out = from_network(ae.decode(ae.encode(x.to(prior.device))).float().cpu(), rig.radius)
    g = GeneratedViews(rgb=out["rgb"][None], alpha=out["alpha"][None], depth=out["depth"][None], cameras=views.cameras,
                       latents=None, nfe=0, info={})  # fmt: skip
    return views_to_viewset(g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", choices=["mesh", "recon", "ae"], default="mesh")
    ap.add_argument("--per-class", type=int, default=8)
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--points", type=int, default=4000, help="points sampled per shape (the evaluation uses 4000)")
    ap.add_argument("--classes", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--out", default="", help="write JSON here")
    ap.add_argument("overrides", nargs="*", help="GenerateConfig overrides for --source recon or ae, e.g. recon.mesh_depth=expected")
    args = ap.parse_args()

    import trimesh
    from tqdm.auto import tqdm

    from gen3d.data.objects import CLASSES
    from gen3d.data.world import build_object, sample_spec
    from gen3d.eval.generate import class_rules
    from gen3d.utils.io import write_json

    rules = class_rules(args.points)  # the evaluation's two rules
    names = tuple(args.classes.split(",")) if args.classes else tuple(c.name for c in CLASSES)
    pipe = rig = None
    if args.source in ("recon", "ae"):
        from dataclasses import replace

        from gen3d.pipelines.generate import GenerateConfig, GeneratePipeline

        from gen3d.config import load_config
        from gen3d.priors.mvdata import render_viewset

        pipe = GeneratePipeline.from_config(load_config(GenerateConfig, None, args.overrides))
        rig = pipe.load().spec.rig
        recon = pipe.reconstruct
        recon.cfg = replace(recon.cfg, preview_frames=2, preview_res=32)  # the mesh does not depend on the preview
    draws = []
    for name in names:
        for i in range(args.per_class):
            draws.append((name, sample_spec(seed=args.seed, index=i, split="train", classes=(name,))))
    rows = []
    for name, spec in tqdm(draws, desc=f"classifying ({args.source})", unit="object"):
        if args.source == "mesh":
            mesh = build_object(spec).to_trimesh()
        else:
            views = render_viewset(spec, rig)
            if args.source == "ae":
                views = autoencoder_round_trip(views, pipe.load(), rig)
            with tempfile.TemporaryDirectory() as tmp:
                recon(views, tmp, quiet=True)
                mesh = trimesh.load(Path(tmp) / "mesh.glb", force="mesh", process=False)
        row = {"class": name, "params": spec.params, "scale": spec.scale}
        for r, rule in rules.items():
            pred, d = rule(mesh)
            row[r] = pred
            row[f"{r}_top3"] = {k: round(v, 5) for k, v in sorted(d.items(), key=lambda kv: kv[1])[:3]}
        rows.append(row)
    summary = {"source": args.source, "draws": len(rows), "per_class": args.per_class, "seed": args.seed,
               "points": args.points, "overrides": list(args.overrides)}
    for r in rules:
        summary[f"{r}_accuracy"] = sum(row[r] == row["class"] for row in rows) / len(rows)
        conf = collections.Counter((row["class"], row[r]) for row in rows if row[r] != row["class"])
        summary[f"{r}_confusions"] = [f"{a} -> {b}: {n}" for (a, b), n in conf.most_common()]
        print(f"{r:10s} rule: {summary[f'{r}_accuracy']:.3f} of {len(rows)}; misses: "
              + (", ".join(summary[f"{r}_confusions"]) or "none"))
    if args.out:
        write_json(args.out, {"summary": summary, "rows": rows})
        print(json.dumps({k: v for k, v in summary.items() if "confusions" not in k}))


if __name__ == "__main__":
    main()
