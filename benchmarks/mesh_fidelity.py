"""How faithful `gen3d generate`'s meshes are to the views they were made from, on ground truth.

For each class, its canonical object is rendered on the default prior's rig (4 views, 64 px). Each
mesh's silhouettes are then compared with the views' masks (IoU, and area as a share of the masks'):

* ``true``: the object's own mesh (the ceiling: rasterisation at 64 px);
* ``tsdf_exact``: TSDF fusion of exact renders from the reconstruction's mesh orbit (18 views, 96 px),
  which tests the fusion alone;
* ``recon``: what `gen3d generate` does with views: the Gaussian fit of the 4 views, then TSDF of the
  fit's orbit renders (``pipelines.reconstruct.extract_mesh``);
* ``recon_boost``: the same fit meshed with ``mesh_opacity_boost`` (``--boost``, default 4): the
  orbit views' depth and masks rendered with every opacity logit raised, so the depth is the first
  surface's.
* ``recon_median``: the same fit meshed with ``mesh_depth="median"``: each orbit pixel's depth is
  where the ray's accumulated opacity reaches 0.5 (the first surface), the mask where it does.

Each reconstruction's shape is also compared with the object's own mesh in world units (Chamfer-L1
and F-score at 0.02, ``gen3d.geometry.metrics.mesh_metrics`` without normalisation).

It also reports how much deeper than the true surface the fit's expected depth lies, on the 4 fitted
views and on 12 orbit views (median, world units; the frame is about 0.022 units per pixel at 64 px).

    python benchmarks/mesh_fidelity.py --classes cube torus mug sphere
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np


def silhouette(mesh, cams):
    from gen3d.data.render import MeshRenderer, RenderConfig

    faces = np.asarray(mesh.faces)
    r = MeshRenderer(np.asarray(mesh.vertices), faces, np.full((len(faces), 3), 0.6), RenderConfig(supersample=1))
    return r.render(cams).alpha > 0.5


def scores(pred: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    inter = (pred & mask).sum(axis=(1, 2))
    union = np.maximum((pred | mask).sum(axis=(1, 2)), 1)
    return {"iou": round(float(np.mean(inter / union)), 4), "area": round(float(pred.sum() / mask.sum()), 4)}


def shape(mesh, true) -> dict[str, float]:
    from gen3d.geometry.metrics import mesh_metrics

    m = mesh_metrics(mesh, true, n_points=20_000, normalization="none", tau=0.02)
    return {"chamfer_l1": round(float(m.chamfer_l1), 5), "fscore": round(float(m.fscore), 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", nargs="+", default=["cube", "torus", "mug", "sphere"])
    ap.add_argument("--boost", type=float, default=4.0, help="mesh_opacity_boost for the recon_boost mesh")
    ap.add_argument("--out", default="benchmarks/results/mesh_fidelity.json")
    args = ap.parse_args()

    import tempfile

    from gen3d.pipelines.generate import GenerateConfig, GeneratePipeline
    from gen3d.pipelines.reconstruct import extract_mesh, mesh_cameras

    from gen3d.cameras import orbit_cameras
    from gen3d.data.render import MeshRenderer, RenderConfig
    from gen3d.data.world import build_object, canonical_spec
    from gen3d.geometry.tsdf import tsdf_fusion
    from gen3d.priors.mvdata import render_viewset

    pipe = GeneratePipeline.from_config(GenerateConfig(device="cpu"))
    rig, rc = pipe.load().spec.rig, pipe.reconstruct.cfg
    mesh_cams = mesh_cameras(rc)
    box = np.array([[-1.0] * 3, [1.0] * 3])
    rows = []
    for cls in args.classes:
        spec = canonical_spec(cls)
        obj = build_object(spec)
        views = render_viewset(spec, rig)
        mask = views.masks.numpy() > 0.5
        exact = MeshRenderer.from_object(obj, RenderConfig(supersample=1)).render(mesh_cams)
        fused = tsdf_fusion(exact.depth, exact.rgb, mesh_cams, masks=exact.alpha > 0.5, bounds=box, cfg=rc.mesh)
        with tempfile.TemporaryDirectory() as tmp:
            rec = pipe.reconstruct(views, Path(tmp), quiet=True)
        rep = rec.representation
        recon = extract_mesh(rep, rc)
        boosted = extract_mesh(rep, dataclasses.replace(rc, mesh_opacity_boost=args.boost))
        median = extract_mesh(rep, dataclasses.replace(rc, mesh_depth="median"))
        fit = rep.render(views.cameras)
        ok = mask & (views.depths.numpy() > 0) & (fit.alpha.detach().numpy() > 0.5)
        depth_bias_views = float(np.median((fit.depth.detach().numpy() - views.depths.numpy())[ok]))
        orbit = orbit_cameras([25.0] * 6 + [-15.0] * 6, [i * 60.0 for i in range(6)] * 2, rc.camera_radius,
                              rc.camera_fov_deg, rc.mesh_res)
        fo = rep.render(orbit)
        to = MeshRenderer.from_object(obj, RenderConfig(supersample=1)).render(orbit)
        ok = (to.alpha > 0.5) & (fo.alpha.detach().numpy() > 0.5) & (to.depth > 0)
        depth_bias_orbit = float(np.median((fo.depth.detach().numpy() - to.depth)[ok]))
        row = {"class": cls, "true": scores(silhouette(obj.to_trimesh(), views.cameras), mask),
               "tsdf_exact": scores(silhouette(fused, views.cameras), mask),
               "recon": scores(silhouette(recon, views.cameras), mask),
               "recon_boost": scores(silhouette(boosted, views.cameras), mask),
               "recon_median": scores(silhouette(median, views.cameras), mask),
               "shape": {k: shape(m, obj.to_trimesh()) for k, m in (("recon", recon), ("recon_boost", boosted),
                                                                    ("recon_median", median))},
               "fit_depth_bias_views": round(depth_bias_views, 4), "fit_depth_bias_orbit": round(depth_bias_orbit, 4)}
        rows.append(row)
        print(f"{cls:10} IoU (area) vs the views' masks: true mesh {row['true']['iou']:.3f} ({row['true']['area']:.3f}), "
              f"TSDF of exact renders {row['tsdf_exact']['iou']:.3f} ({row['tsdf_exact']['area']:.3f}), "
              f"recon {row['recon']['iou']:.3f} ({row['recon']['area']:.3f}), "
              f"boosted {row['recon_boost']['iou']:.3f} ({row['recon_boost']['area']:.3f}), "
              f"median depth {row['recon_median']['iou']:.3f} ({row['recon_median']['area']:.3f}); fit depth - true depth, median: "
              f"views {depth_bias_views:+.4f}, orbit {depth_bias_orbit:+.4f}; Chamfer to the true mesh: "
              + ", ".join(f"{k} {v['chamfer_l1']:.4f}" for k, v in row["shape"].items()), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rig": str(rig), "boost": args.boost, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
