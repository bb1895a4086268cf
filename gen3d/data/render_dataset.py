"""``gen3d data render``: sample procedural objects and write one transforms.json folder per object.

Resumable: every object folder appears atomically, and a re-run with the same config skips the
objects already written (the resolved config in DIR/config.yaml must match, so a changed config
never mixes into an old dataset).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from gen3d.config import dump_config, read_yaml, to_dict
from gen3d.data.captions import captions_for
from gen3d.data.dataset import INDEX_VERSION, DataRenderConfig, write_views
from gen3d.data.render import MeshRenderer
from gen3d.data.world import build_object, is_heldout, pose_object, sample_spec
from gen3d.errors import ConfigError
from gen3d.utils.io import atomic_dir, write_json


def object_id(i: int) -> str:
    return f"obj_{i:05d}"


def render_one(cfg: DataRenderConfig, index: int, folder: Path) -> dict:
    """Sample object ``index``, render all its frames and views into ``folder``; return its index entry."""
    spec = sample_spec(cfg.seed, index, cfg.split, cfg.motion, cfg.classes or None)
    obj = build_object(spec)
    rng = np.random.default_rng([cfg.seed, index, 0xCA3])
    cams = cfg.camera.cameras(cfg.res, rng)
    times = [f / cfg.frames for f in range(cfg.frames)] if cfg.motion else None
    renders = []
    for t in times if times is not None else [0.0]:
        posed = pose_object(obj, t)
        renders.append(MeshRenderer.from_object(posed, cfg.render).render(cams))
    captions = captions_for(spec, cfg.captions)
    meta = {
        "id": object_id(index),
        "caption": captions[1] if len(captions) > 1 else captions[0],
        "captions": captions,
        "spec": spec.to_json(),
        "heldout": is_heldout(spec),
        "normalisation": "bbox centred at the origin, largest extent = scale (world units)",
    }
    write_views(
        folder,
        cams,
        renders,
        times,
        meta,
        background=cfg.render.background,
        write_depth=cfg.write_depth,
        write_normals=cfg.write_normals,
    )
    if cfg.write_mesh:
        obj.to_trimesh().export(folder / "mesh.ply")
    return {"id": meta["id"], "path": meta["id"], "class": spec.cls, "caption": meta["caption"],
            "captions": captions, "spec": meta["spec"], "heldout": meta["heldout"]}


PREVIEW_OBJECTS = 16


def write_preview(out: Path, entries: list[dict], cfg: DataRenderConfig) -> None:
    """``preview.png``: one row per object (its views, first frame), for people to look at."""
    from PIL import Image

    from gen3d.utils.images import contact_sheet, save_png

    views = min(cfg.camera.views, 8)
    ims, labels = [], []
    for e in entries:
        for v in range(views):
            name = f"v{v:03d}.png" if not cfg.motion else f"f000_v{v:03d}.png"
            with Image.open(out / e["path"] / "images" / name) as im:
                ims.append(np.asarray(im.convert("RGB")))
            labels.append(f'{e["id"]}: {e["caption"]}' if v == 0 else "")  # one label, across the row
    if ims:
        save_png(out / "preview.png", contact_sheet(ims, cols=views, labels=labels))


def render_dataset(cfg: DataRenderConfig, *, quiet: bool = False) -> dict:
    """Render ``cfg.n`` objects into ``cfg.out``, resuming if it was interrupted. Returns the index."""
    from tqdm import tqdm

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.yaml"
    if cfg_path.exists():
        old = read_yaml(cfg_path)
        if {k: v for k, v in old.items() if k != "n"} != {k: v for k, v in to_dict(cfg).items() if k != "n"}:
            raise ConfigError(
                f"{out} holds a dataset rendered with a different config ({cfg_path}); "
                "choose another --out, or re-run with --config " + str(cfg_path) + " to resume it"
            )
    dump_config(cfg, cfg_path)
    t0 = time.perf_counter()
    entries = []
    skipped = 0
    for i in tqdm(range(cfg.n), desc="render", unit="obj", disable=quiet):
        folder = out / object_id(i)
        done = folder / "transforms.json"
        if done.is_file():
            import json

            meta = json.loads(done.read_text())["gen3d"]
            entries.append({"id": meta["id"], "path": meta["id"], "class": meta["spec"]["cls"],
                            "caption": meta["caption"], "captions": meta["captions"], "spec": meta["spec"],
                            "heldout": meta["heldout"]})
            skipped += 1
            continue
        with atomic_dir(folder) as tmp:
            entries.append(render_one(cfg, i, tmp))
    seconds = time.perf_counter() - t0
    index = {"version": INDEX_VERSION, "config": to_dict(cfg), "objects": entries}
    write_json(out / "index.json", index)
    write_preview(out, entries[:PREVIEW_OBJECTS], cfg)
    frames = cfg.frames if cfg.motion else 1
    index["_stats"] = {"seconds": seconds, "rendered": cfg.n - skipped, "skipped": skipped,
                       "views": (cfg.n - skipped) * frames * cfg.camera.views}
    return index


