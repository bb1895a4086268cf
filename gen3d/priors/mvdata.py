"""Multi-view training sets for the latent autoencoder and the multi-view prior, as tensor shards.

A training set is a folder:

    DIR/dataset.json              the config, the camera rig (w2c, K of every view), shard list
    DIR/shard_00000.safetensors   rgb (n, V, 3, H, W) u8 on white, alpha (n, V, H, W) u8,
                                  depth (n, V, H, W) f16 (camera z, 0 off the object)
    DIR/shard_00000.json          per object: id, spec, captions, held-out flag

Why shards of tensors and not one PNG folder per object (``gen3d data render``): the trainers read
every image many times; 40k small PNGs decode far slower than one memory-mapped tensor file, and a
shard appears atomically, so an interrupted build resumes at the first missing shard.

Every view of every object is rendered from the same rig (``PriorRig``: V cameras evenly spaced in
azimuth at one elevation), which is also what the prior generates; the rig is stored with the data
and with the trained prior, so generation uses exactly the training cameras.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gen3d.errors import ConfigError, DataError

DATASET_VERSION = 1


@dataclass(frozen=True)
class PriorRig:
    """V cameras evenly spaced in azimuth around the origin, looking at it (OpenCV convention)."""

    views: int = 4
    elevation_deg: float = 20.0
    radius: float = 2.6
    fov_deg: float = 30.0
    azimuth_start_deg: float = 0.0
    res: int = 64

    def __post_init__(self) -> None:
        if self.views < 1 or self.res < 8 or not 0 < self.fov_deg < 180 or self.radius <= 0:
            raise ValueError("PriorRig: views >= 1, res >= 8, 0 < fov_deg < 180 and radius > 0 are required")

    def azimuths(self) -> list[float]:
        return [self.azimuth_start_deg + i * 360.0 / self.views for i in range(self.views)]

    def mirror_order(self) -> list[int] | None:
        """View order of the mirror image (x -> -x) of an object seen from this rig: mirrored view i is
        view ``order[i]`` flipped left-right. None when the rig is not symmetric under the mirror (the
        azimuths -a must be azimuths of the rig, which needs 2 x azimuth_start a multiple of 360 / V)."""
        step = 360.0 / self.views
        k = 2 * self.azimuth_start_deg / step
        if abs(k - round(k)) > 1e-6:
            return None
        return [int((-round(k) - i) % self.views) for i in range(self.views)]

    def cameras(self):
        from gen3d.cameras import orbit_cameras

        return orbit_cameras(self.elevation_deg, self.azimuths(), self.radius, self.fov_deg, self.res)


@dataclass(frozen=True)
class MVDataConfig:
    """``gen3d train data``: render ``n`` training objects (never a held-out combination) from ``rig``."""

    out: str = "out/mvdata"
    n: int = 12000
    seed: int = 0
    split: str = "train"
    shard_size: int = 500
    captions: int = 4  # random paraphrases per object, after the canonical caption
    rig: PriorRig = field(default_factory=PriorRig)
    supersample: int = 2
    workers: int = 2

    def __post_init__(self) -> None:
        if self.n < 1 or self.shard_size < 1 or self.workers < 1:
            raise ValueError("MVDataConfig: n, shard_size and workers must be >= 1")
        if self.split not in ("train", "heldout", "all"):
            raise ValueError(f"MVDataConfig.split must be train, heldout or all, got {self.split!r}")


def render_views(spec, rig: PriorRig, supersample: int = 2) -> dict[str, np.ndarray]:
    """Render one object spec from the rig: rgb (V,3,H,W) u8, alpha (V,H,W) u8, depth (V,H,W) f16."""
    from gen3d.data.render import MeshRenderer, RenderConfig
    from gen3d.data.world import build_object

    out = MeshRenderer.from_object(build_object(spec), RenderConfig(supersample=supersample)).render(rig.cameras())
    rgb = np.round(np.clip(out.rgb, 0, 1) * 255).astype(np.uint8).transpose(0, 3, 1, 2)
    alpha = np.round(np.clip(out.alpha, 0, 1) * 255).astype(np.uint8)
    return {"rgb": rgb, "alpha": alpha, "depth": out.depth.astype(np.float16)}


def render_viewset(spec, rig: PriorRig, supersample: int = 2):
    """:func:`render_views` as a :class:`gen3d.data.dataset.ViewSet` (float images, masks, depth) to fit."""
    from gen3d.data.dataset import ViewSet

    r = render_views(spec, rig, supersample)
    return ViewSet(images=torch.from_numpy(r["rgb"]).permute(0, 2, 3, 1).float() / 255, cameras=rig.cameras(),
                   masks=torch.from_numpy(r["alpha"]).float() / 255, depths=torch.from_numpy(r["depth"].astype(np.float32)),
                   view_index=list(range(rig.views)), meta={})


def _shard_name(i: int) -> str:
    return f"shard_{i:05d}"


def _render_shard(args: tuple[MVDataConfig, int]) -> str:
    from safetensors.numpy import save_file

    from gen3d.data.captions import captions_for
    from gen3d.data.world import is_heldout, sample_spec
    from gen3d.utils.io import atomic_path, write_json

    cfg, shard = args
    out = Path(cfg.out)
    lo, hi = shard * cfg.shard_size, min(cfg.n, (shard + 1) * cfg.shard_size)
    arrays: dict[str, list[np.ndarray]] = {"rgb": [], "alpha": [], "depth": []}
    meta = []
    for i in range(lo, hi):
        spec = sample_spec(cfg.seed, i, cfg.split)  # type: ignore[arg-type]
        r = render_views(spec, cfg.rig, cfg.supersample)
        for k in arrays:
            arrays[k].append(r[k])
        meta.append({"id": f"obj_{i:06d}", "spec": spec.to_json(), "captions": captions_for(spec, cfg.captions),
                     "heldout": is_heldout(spec)})
    name = _shard_name(shard)
    write_json(out / f"{name}.json", meta)
    with atomic_path(out / f"{name}.safetensors") as tmp:  # written last: its presence marks the shard done
        save_file({k: np.ascontiguousarray(np.stack(v)) for k, v in arrays.items()}, str(tmp))
    return name


def build_dataset(cfg: MVDataConfig, quiet: bool = False) -> dict[str, Any]:
    """Render the shards that are missing (resumable) and write dataset.json."""
    from tqdm.auto import tqdm

    from gen3d.config import to_dict
    from gen3d.utils.io import read_json, write_json

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "dataset.json"
    want = to_dict(cfg)
    want.pop("out"), want.pop("workers")
    if index_path.is_file():
        have = read_json(index_path).get("config", {})
        if have != want:
            diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            raise ConfigError(f"{out} holds a training set built with another config (differs in: {', '.join(diff)}); "
                              "choose another --out or delete the folder")
    cams = cfg.rig.cameras()
    index = {"version": DATASET_VERSION, "config": want, "n": cfg.n, "views": cfg.rig.views, "res": cfg.rig.res,
             "w2c": cams.w2c.tolist(), "K": cams.K.tolist(),
             "shards": [_shard_name(s) for s in range((cfg.n + cfg.shard_size - 1) // cfg.shard_size)]}
    write_json(index_path, index)
    todo = [s for s in range(len(index["shards"])) if not (out / f"{_shard_name(s)}.safetensors").is_file()]
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc="rendering shards", unit="shard", disable=quiet)
    if cfg.workers > 1 and len(todo) > 1:
        ctx = mp.get_context("spawn")
        with ctx.Pool(cfg.workers) as pool:
            for _ in pool.imap_unordered(_render_shard, [(cfg, s) for s in todo]):
                bar.update(1)
    else:
        for s in todo:
            _render_shard((cfg, s))
            bar.update(1)
    bar.close()
    index["render_seconds"] = time.perf_counter() - start
    index["rendered_shards_this_run"] = len(todo)
    write_json(index_path, index)
    return index


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


DEPTH_NEAR_FAR_PAD = 1.0  # depth channel: (z - radius) / DEPTH_NEAR_FAR_PAD, background at +1


class MVDataset:
    """All shards of a training set in memory: images as uint8, captions and specs as lists.

    ``images(idx)`` returns the 5-channel float views (RGB in [-1, 1], alpha in [-1, 1], normalised
    depth) the autoencoder encodes; ``rig`` the cameras.
    """

    def __init__(self, root: str | Path, max_objects: int | None = None):
        from safetensors.numpy import load_file

        from gen3d.utils.io import read_json

        self.root = Path(root)
        index_path = self.root / "dataset.json"
        if not index_path.is_file():
            raise DataError(f"{self.root} is not a multi-view training set (no dataset.json); build one with "
                            "`gen3d train data --out DIR`")
        self.index = read_json(index_path)
        if self.index.get("version") != DATASET_VERSION:
            raise DataError(f"{index_path}: dataset version {self.index.get('version')}, this gen3d reads {DATASET_VERSION}")
        parts: dict[str, list[np.ndarray]] = {"rgb": [], "alpha": [], "depth": []}
        self.meta: list[dict] = []
        for name in self.index["shards"]:
            f = self.root / f"{name}.safetensors"
            if not f.is_file():
                continue  # an unfinished build: use what is there
            try:
                arr = load_file(str(f))
            except Exception as e:  # noqa: BLE001 - any decoding failure is a corrupt file
                raise DataError(f"corrupt training shard {f}: {e}") from None
            for k in parts:
                parts[k].append(arr[k])
            self.meta.extend(read_json(self.root / f"{name}.json"))
            if max_objects is not None and len(self.meta) >= max_objects:
                break
        if not self.meta:
            raise DataError(f"{self.root} has no finished shards yet")
        n = len(self.meta) if max_objects is None else min(max_objects, len(self.meta))
        self.meta = self.meta[:n]
        self.rgb = np.concatenate(parts["rgb"])[:n]
        self.alpha = np.concatenate(parts["alpha"])[:n]
        self.depth = np.concatenate(parts["depth"])[:n]
        cfg = self.index["config"]["rig"]
        self.rig = PriorRig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()})

    def __len__(self) -> int:
        return len(self.meta)

    @property
    def views(self) -> int:
        return self.rgb.shape[1]

    def images(self, idx: np.ndarray | list[int]) -> torch.Tensor:
        """(len(idx), V, 5, H, W) float32 network inputs (see :func:`to_network`)."""
        idx = np.asarray(idx)
        return to_network(torch.from_numpy(self.rgb[idx]), torch.from_numpy(self.alpha[idx]),
                          torch.from_numpy(self.depth[idx]), self.rig.radius)


def to_network(rgb_u8: torch.Tensor, alpha_u8: torch.Tensor, depth: torch.Tensor, radius: float) -> torch.Tensor:
    """uint8 RGB (..., 3, H, W), uint8 alpha (..., H, W), depth (..., H, W) -> (..., 5, H, W) in ~[-1, 1].

    Channels: RGB and alpha scaled to [-1, 1]; depth as (z - radius) / DEPTH_NEAR_FAR_PAD with the
    background at +1 (far)."""
    rgb = rgb_u8.float() / 127.5 - 1
    a = alpha_u8.float() / 255.0
    d = depth.float()
    d = torch.where(d > 0, ((d - radius) / DEPTH_NEAR_FAR_PAD).clamp(-1, 1), torch.ones_like(d))
    return torch.cat([rgb, (2 * a - 1).unsqueeze(-3), d.unsqueeze(-3)], dim=-3)


def from_network(x: torch.Tensor, radius: float, alpha_threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """Inverse of :func:`to_network`: rgb (..., 3, H, W) in [0, 1] on white, alpha (..., H, W) in
    [0, 1], depth (..., H, W) camera z with 0 where alpha < ``alpha_threshold``."""
    rgb = ((x[..., :3, :, :] + 1) / 2).clamp(0, 1)
    alpha = ((x[..., 3, :, :] + 1) / 2).clamp(0, 1)
    depth = x[..., 4, :, :].clamp(-1, 1) * DEPTH_NEAR_FAR_PAD + radius
    depth = torch.where(alpha >= alpha_threshold, depth, torch.zeros_like(depth))
    return {"rgb": rgb, "alpha": alpha, "depth": depth}


__all__ = ["MVDataConfig", "MVDataset", "PriorRig", "build_dataset", "from_network", "render_views", "render_viewset",
           "to_network"]
