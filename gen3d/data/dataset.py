"""Rendered datasets in the nerfstudio / instant-ngp ``transforms.json`` layout.

One folder per object, so any object can be handed to reconstruction (or to ``ns-train``) as it is::

    DIR/index.json                 objects with their captions and exact parameters; the resolved config
    DIR/config.yaml                the resolved config (``gen3d data render --config DIR/config.yaml`` resumes it)
    DIR/preview.png                contact sheet: one row of views per object (first 16 objects)
    DIR/obj_00000/transforms.json  cameras (OpenGL camera-to-world, pixel intrinsics) + our "gen3d" block
    DIR/obj_00000/images/*.png     RGB on white (RGBA with a transparent background)
    DIR/obj_00000/masks/*.png      8-bit alpha
    DIR/obj_00000/depth/*.png      16-bit camera z; metres = value * depth_unit_scale_factor
    DIR/obj_00000/normals/*.png    world normals as (n + 1) / 2
    DIR/obj_00000/mesh.ply         the ground-truth mesh (rest pose) with vertex colours

Frames are named ``v{view:03d}.png`` or, for motions, ``f{frame:03d}_v{view:03d}.png`` with a
``time`` in [0, 1] per frame (the D-NeRF / nerfstudio convention). Each object folder is written
to a temporary folder and renamed into place, so an interrupted run leaves only complete objects
and re-running the same command resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image
from torch import Tensor

from gen3d.cameras import Cameras, from_opengl_c2w, intrinsics_from_fov, orbit_cameras, to_opengl_c2w
from gen3d.data.render import RenderConfig
from gen3d.errors import DataError

DEPTH_SCALE = 1e-4  # 16-bit depth PNG unit: 0.1 mm, so depths up to 6.5 units fit
INDEX_VERSION = 1


@dataclass(frozen=True)
class CameraRig:
    """Where the cameras of each object sit: ``views`` cameras evenly spaced in azimuth."""

    views: int = 4
    elevation_deg: float = 20.0
    radius: float = 2.6
    fov_deg: float = 40.0
    azimuth_start_deg: float = 0.0
    random_azimuth: bool = False  # add a random azimuth offset per object

    def cameras(self, res: int, rng: np.random.Generator | None = None) -> Cameras:
        offset = float(rng.uniform(0, 360)) if (self.random_azimuth and rng is not None) else 0.0
        az = self.azimuth_start_deg + offset + np.arange(self.views) * (360.0 / self.views)
        return orbit_cameras(self.elevation_deg, az.tolist(), self.radius, self.fov_deg, res)


@dataclass(frozen=True)
class DataRenderConfig:
    """``gen3d data render``: sample ``n`` objects of ``split`` and render each from a camera rig."""

    out: str = "out/data"
    n: int = 8
    seed: int = 0
    split: Literal["train", "heldout", "all"] = "train"
    res: int = 128
    motion: bool = False  # animate each object with one of its motions
    frames: int = 8  # frames per clip when motion is on
    captions: int = 3  # random paraphrases per object (after the canonical caption)
    classes: tuple[str, ...] = ()  # restrict to these classes (empty: all)
    camera: CameraRig = CameraRig()
    render: RenderConfig = RenderConfig()
    write_depth: bool = True
    write_normals: bool = True
    write_mesh: bool = True

    def __post_init__(self) -> None:
        if self.n < 1 or self.res < 8 or self.frames < 1 or self.camera.views < 1:
            raise ValueError("n, frames and camera.views must be >= 1 and res >= 8")


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> None:
    Image.fromarray(arr, mode=mode).save(path, compress_level=1)


def write_depth_png(path: Path, depth: np.ndarray) -> None:
    """A depth map (camera z, 0 = none) as a 16-bit PNG in units of ``DEPTH_SCALE``."""
    _png(path, np.clip(np.round(depth / DEPTH_SCALE), 0, 65535).astype(np.uint16))


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_views(
    folder: Path,
    cams: Cameras,
    renders: list,  # one RenderOutput per frame
    times: list[float] | None,
    meta: dict[str, Any],
    *,
    background: str = "white",
    write_depth: bool = True,
    write_normals: bool = True,
) -> dict[str, Any]:
    """Write images/masks/depth/normals and transforms.json for one object into ``folder``."""
    for sub in ("images", "masks") + (("depth",) if write_depth else ()) + (("normals",) if write_normals else ()):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    c2w = to_opengl_c2w(cams).numpy()
    K = cams.K[0].numpy()
    frames = []
    for fi, out in enumerate(renders):
        for vi in range(len(cams)):
            name = f"v{vi:03d}.png" if times is None else f"f{fi:03d}_v{vi:03d}.png"
            if background == "transparent":
                _png(folder / "images" / name, _to_u8(out.rgba()[vi]), "RGBA")
            else:
                _png(folder / "images" / name, _to_u8(out.rgb[vi]))
            _png(folder / "masks" / name, _to_u8(out.alpha[vi]))
            frame: dict[str, Any] = {
                "file_path": f"images/{name}",
                "mask_path": f"masks/{name}",
                "transform_matrix": c2w[vi].tolist(),
                "view_index": vi,
            }
            if write_depth:
                write_depth_png(folder / "depth" / name, out.depth[vi])
                frame["depth_file_path"] = f"depth/{name}"
            if write_normals:
                _png(folder / "normals" / name, _to_u8((out.normals[vi] + 1.0) / 2.0))
                frame["normal_path"] = f"normals/{name}"
            if times is not None:
                frame["time"] = float(times[fi])
                frame["frame_index"] = fi
            frames.append(frame)
    transforms = {
        "camera_model": "OPENCV",
        "fl_x": float(K[0, 0]),
        "fl_y": float(K[1, 1]),
        "cx": float(K[0, 2]),
        "cy": float(K[1, 2]),
        "w": cams.width,
        "h": cams.height,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "depth_unit_scale_factor": DEPTH_SCALE,
        "frames": frames,
        "gen3d": meta,
    }
    (folder / "transforms.json").write_text(json.dumps(transforms, indent=1))
    return transforms


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewSet:
    """Posed views of one object, as read from a ``transforms.json`` folder."""

    images: Float[Tensor, "V H W 3"]  # in [0, 1]; RGBA files are composited on white
    cameras: Cameras
    masks: Float[Tensor, "V H W"] | None = None
    depths: Float[Tensor, "V H W"] | None = None  # camera z, 0 = no depth
    times: Float[Tensor, "V"] | None = None
    view_index: list[int] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # the "gen3d" block (spec, captions) if present
    root: Path | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, idx: list[int]) -> "ViewSet":
        pick = lambda x: None if x is None else x[idx]  # noqa: E731
        return dataclasses.replace(
            self,
            images=self.images[idx],
            cameras=self.cameras[idx],
            masks=pick(self.masks),
            depths=pick(self.depths),
            times=pick(self.times),
            view_index=[self.view_index[i] for i in idx] if self.view_index else [],
        )


def _resolve_image(root: Path, rel: str) -> Path:
    p = (root / rel).resolve() if not Path(rel).is_absolute() else Path(rel)
    if p.is_file():
        return p
    for ext in (".png", ".jpg", ".jpeg"):  # instant-ngp / Blender sets often omit the extension
        if p.with_suffix(ext).is_file() or Path(str(p) + ext).is_file():
            return p.with_suffix(ext) if p.with_suffix(ext).is_file() else Path(str(p) + ext)
    raise DataError(f"{root / 'transforms.json'}: frame file not found: {rel}")


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e} (re-render or replace the file)") from e


def load_views(folder: str | Path, *, load_depth: bool = True) -> ViewSet:
    """Read a ``transforms.json`` folder (ours, nerfstudio's or an instant-ngp/Blender one)."""
    root = Path(folder)
    tf_path = root / "transforms.json" if root.is_dir() else root
    root = tf_path.parent
    if not tf_path.is_file():
        raise DataError(f"no transforms.json in {root} (expected a folder written by `gen3d data render` or nerfstudio)")
    try:
        tf = json.loads(tf_path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{tf_path} is not valid JSON: {e}") from e
    frames = tf.get("frames")
    if not frames:
        raise DataError(f"{tf_path} lists no frames")

    images, masks, depths, c2ws, Ks, times, vidx = [], [], [], [], [], [], []
    W = H = None
    for i, fr in enumerate(frames):
        img = _read_image(_resolve_image(root, fr["file_path"]))
        if img.dtype != np.uint8:
            img = (img / np.iinfo(img.dtype).max * 255).astype(np.uint8) if img.dtype.kind == "u" else img
        img = img.astype(np.float32) / 255.0
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        alpha = None
        if img.shape[-1] == 4:
            alpha = img[..., 3]
            img = img[..., :3] * alpha[..., None] + (1.0 - alpha[..., None])
        h, w = img.shape[:2]
        if W is None:
            W, H = w, h
        elif (w, h) != (W, H):
            raise DataError(f"{tf_path}: frame {i} is {w}x{h}, the first frame was {W}x{H}")
        images.append(img)
        if "mask_path" in fr:
            m = _read_image(_resolve_image(root, fr["mask_path"])).astype(np.float32) / 255.0
            masks.append(m if m.ndim == 2 else m[..., 0])
        elif alpha is not None:
            masks.append(alpha)
        if load_depth and "depth_file_path" in fr:
            d = _read_image(_resolve_image(root, fr["depth_file_path"])).astype(np.float32)
            depths.append(d * float(tf.get("depth_unit_scale_factor", 1e-3)))
        c2ws.append(np.asarray(fr["transform_matrix"], np.float32))
        Ks.append(_intrinsics(tf, fr, w, h, tf_path))
        if "time" in fr:
            times.append(float(fr["time"]))
        vidx.append(int(fr.get("view_index", i)))

    cams = from_opengl_c2w(torch.from_numpy(np.stack(c2ws)), torch.from_numpy(np.stack(Ks)), W, H)
    return ViewSet(
        images=torch.from_numpy(np.stack(images)),
        cameras=cams,
        masks=torch.from_numpy(np.stack(masks)) if len(masks) == len(frames) else None,
        depths=torch.from_numpy(np.stack(depths)) if len(depths) == len(frames) else None,
        times=torch.tensor(times) if len(times) == len(frames) else None,
        view_index=vidx,
        meta=tf.get("gen3d", {}),
        root=root,
    )


def _intrinsics(tf: dict, fr: dict, w: int, h: int, path: Path) -> np.ndarray:
    get = lambda k: fr.get(k, tf.get(k))  # noqa: E731  (per-frame values override the top level)
    if get("fl_x") is not None:
        fx = float(get("fl_x"))
        fy = float(get("fl_y") or fx)
        cx = float(get("cx") if get("cx") is not None else w / 2)
        cy = float(get("cy") if get("cy") is not None else h / 2)
        # Intrinsics are for the stated w/h; scale if the images were resized.
        sx, sy = w / float(get("w") or w), h / float(get("h") or h)
        return np.array([[fx * sx, 0, cx * sx], [0, fy * sy, cy * sy], [0, 0, 1]], np.float32)
    if get("camera_angle_x") is not None:  # instant-ngp / Blender synthetic
        fx = 0.5 * w / math.tan(0.5 * float(get("camera_angle_x")))
        return np.array([[fx, 0, w / 2], [0, fx, h / 2], [0, 0, 1]], np.float32)
    raise DataError(f"{path}: no intrinsics (need fl_x/fl_y/cx/cy or camera_angle_x)")


def read_index(root: str | Path) -> dict[str, Any]:
    """The dataset's ``index.json``: its config and the list of objects with captions and specs."""
    from gen3d.utils.io import read_json

    return read_json(Path(root) / "index.json")


__all__ = [
    "CameraRig",
    "DataRenderConfig",
    "ViewSet",
    "load_views",
    "read_index",
    "write_depth_png",
    "write_views",
    "intrinsics_from_fov",
]
