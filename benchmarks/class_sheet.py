"""Render a contact sheet of every object class: canonical parameters, then random draws.

A quick visual check of the procedural classes, independent of the library's renderer: Open3D's
raycaster, Lambert shading with one light, one flat colour per slot.

    python benchmarks/class_sheet.py --out docs/figures/classes.png [--draws 2] [--azimuth 35] [--size 128]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import open3d as o3d
from PIL import Image, ImageDraw

from gen3d.data.colors import COLORS
from gen3d.data.objects import CLASSES

# Slot colours by slot index (primary first): distinct enough to tell parts apart.
SLOT_RGB = [COLORS[i].rgb for i in (5, 0, 3, 2)]  # blue, red, green, yellow


def render(parts, slot_names: list[str], azimuth_deg: float, elevation_deg: float, size: int) -> np.ndarray:
    """One view of the parts, normalised like the world does: centred, largest extent 1."""
    meshes = [p.mesh for p in parts]
    lo = np.min([m.bounds[0] for m in meshes], axis=0)
    hi = np.max([m.bounds[1] for m in meshes], axis=0)
    center, scale = (lo + hi) / 2, 1.0 / np.max(hi - lo)
    scene = o3d.t.geometry.RaycastingScene()
    ids = []
    for m in meshes:
        v = ((m.vertices - center) * scale).astype(np.float32)
        ids.append(scene.add_triangles(v, m.faces.astype(np.uint32)))
    slot_of = {gid: p.slot for gid, p in zip(ids, parts)}
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    eye = 2.4 * np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    rays = scene.create_rays_pinhole(fov_deg=40, center=[0, 0, 0], eye=eye.tolist(), up=[0, 1, 0],
                                     width_px=size, height_px=size)
    hit = scene.cast_rays(rays)
    t = hit["t_hit"].numpy()
    normals = hit["primitive_normals"].numpy()
    geom = hit["geometry_ids"].numpy()
    light = np.array([0.4, 0.8, 0.6]) / np.linalg.norm([0.4, 0.8, 0.6])
    shade = 0.35 + 0.65 * np.abs(normals @ light)
    img = np.full((size, size, 3), 1.0)
    for gid in ids:
        mask = (geom == gid) & np.isfinite(t)
        rgb = np.array(SLOT_RGB[slot_names.index(slot_of[gid]) % len(SLOT_RGB)])
        img[mask] = shade[mask, None] * rgb
    # Open3D's pinhole rays start at the bottom-right pixel: turn the image upright.
    return (np.clip(img[::-1, ::-1], 0, 1) * 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/figures/classes.png")
    ap.add_argument("--draws", type=int, default=2, help="random parameter draws per class")
    ap.add_argument("--azimuth", type=float, default=35.0)
    ap.add_argument("--elevation", type=float, default=22.0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--per-row", type=int, default=3, help="classes per row")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    tiles = []
    start = time.perf_counter()
    for cls in CLASSES:
        params = [cls.canonical_params] + [cls.sample_params(rng) for _ in range(args.draws)]
        slots = [s.name for s in cls.slots]
        row = [render(cls.build(p), slots, args.azimuth, args.elevation, args.size) for p in params]
        tile = Image.fromarray(np.concatenate(row, axis=1))
        ImageDraw.Draw(tile).text((3, 2), cls.name, fill=(0, 0, 0))
        tiles.append(tile)
    w, h = tiles[0].size
    rows = -(-len(tiles) // args.per_row)
    sheet = Image.new("RGB", (w * args.per_row, h * rows), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % args.per_row) * w, (i // args.per_row) * h))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    sheet.save(tmp, optimize=True)
    tmp.replace(out)
    print(f"{len(CLASSES)} classes x {1 + args.draws} draws in {time.perf_counter() - start:.1f} s -> {out}")


if __name__ == "__main__":
    main()
