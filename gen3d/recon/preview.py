"""Preview pictures of a result: a turntable GIF (and MP4 where an encoder is installed), a contact
sheet of views, and a renderer for vertex-coloured meshes to feed them.

``turntable`` takes any ``render_fn(cameras) -> (V, H, W, 3)`` images, so the same code previews
meshes (``mesh_render_fn``), Gaussians (wrap the rasteriser) or NeRFs. Cameras orbit the world
origin at one elevation (``gen3d.cameras.turntable_cameras``: azimuth 0 looks at the object's
+z front, y is up). The MP4 is optional: it is written with imageio's PyAV or imageio-ffmpeg
plugin when either is installed (H.264, yuv420p), and skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import trimesh

from gen3d.cameras import Cameras, turntable_cameras
from gen3d.utils.images import contact_sheet, save_gif, save_png, to_uint8
from gen3d.utils.io import atomic_path

RenderFn = Callable[[Cameras], np.ndarray]


def _as_images(images, n: int | None = None) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (3, 4) or (n is not None and len(images) != n):
        want = f"({n}, H, W, 3)" if n is not None else "(V, H, W, 3)"
        raise ValueError(f"render_fn must return images of shape {want}, got {images.shape}")
    return to_uint8(images[..., :3])


def render_turntable(
    render_fn: RenderFn,
    frames: int = 36,
    elevation_deg: float = 20.0,
    radius: float = 2.6,
    fov_deg: float = 40.0,
    res: int = 256,
    batch: int = 12,
) -> np.ndarray:
    """(frames, res, res, 3) uint8 views orbiting the origin, rendered ``batch`` cameras at a time."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    cams = turntable_cameras(frames, elevation_deg, radius, fov_deg, res)
    out = []
    for s in range(0, frames, batch):
        idx = list(range(s, min(s + batch, frames)))
        out.append(_as_images(render_fn(cams[idx]), len(idx)))
    return np.concatenate(out)


def mp4_available() -> bool:
    return (
        importlib.util.find_spec("av") is not None or importlib.util.find_spec("imageio_ffmpeg") is not None
    )


def save_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float = 12.0) -> Path:
    """An H.264 MP4 (yuv420p, plays in browsers), written atomically. Needs PyAV or imageio-ffmpeg."""
    import imageio.v3 as iio

    path = Path(path)
    frames = to_uint8(np.asarray(frames)[..., :3])
    h, w = frames.shape[1:3]
    frames = frames[:, : h - h % 2, : w - w % 2]  # yuv420p needs even sizes
    with atomic_path(path) as tmp:
        if importlib.util.find_spec("av") is not None:
            iio.imwrite(tmp, frames, plugin="pyav", codec="libx264", fps=fps, out_pixel_format="yuv420p")
        else:
            iio.imwrite(
                tmp,
                frames,
                plugin="FFMPEG",
                fps=fps,
                codec="libx264",
                pixelformat="yuv420p",
                macro_block_size=1,
            )
    return path


def turntable(
    render_fn: RenderFn,
    path: str | os.PathLike,
    frames: int = 36,
    elevation_deg: float = 20.0,
    radius: float = 2.6,
    fov_deg: float = 40.0,
    res: int = 256,
    fps: float = 12.0,
    mp4: bool | None = None,
) -> list[Path]:
    """Write a looping turntable GIF at ``path`` (atomically), and ``path`` with suffix .mp4 when
    ``mp4`` is True, or None (the default) and an encoder is installed. Returns the written paths.

    Identical consecutive frames (a rotationally symmetric object) are merged by the GIF writer
    into one longer frame; the loop still takes frames / fps seconds.
    """
    path = Path(path)
    images = render_turntable(render_fn, frames, elevation_deg, radius, fov_deg, res)
    save_gif(path, list(images), fps=fps)
    written = [path]
    if mp4 or (mp4 is None and mp4_available()):
        if not mp4_available():
            raise RuntimeError("mp4=True needs PyAV or imageio-ffmpeg: pip install av")
        written.append(save_mp4(path.with_suffix(".mp4"), images, fps))
    return written


def views_contact_sheet(
    images: Sequence[np.ndarray] | np.ndarray,
    path: str | os.PathLike,
    labels: Sequence[str] | None = None,
    cols: int | None = None,
) -> Path:
    """Tile views (HxWx3, float in [0, 1] or uint8) into one PNG (e.g. ``views.png``), atomically."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(labels)} labels for {len(images)} images")
    path = Path(path)
    save_png(path, contact_sheet(list(images), cols=cols, labels=labels))
    return path


def mesh_face_colors(mesh: trimesh.Trimesh) -> np.ndarray:
    """(F, 3) float colours in [0, 1]: the mean of each face's vertex colours (or its face colour;
    light grey for an uncoloured mesh)."""
    kind = mesh.visual.kind
    if kind == "face":
        return np.asarray(mesh.visual.face_colors, np.float32)[:, :3] / 255.0
    if kind == "vertex":
        vc = np.asarray(mesh.visual.vertex_colors, np.float32)[:, :3] / 255.0
        return vc[mesh.faces].mean(axis=1)
    return np.full((len(mesh.faces), 3), 0.75, np.float32)


def mesh_render_fn(mesh: trimesh.Trimesh, **render_cfg) -> RenderFn:
    """A ``render_fn`` that draws a (vertex-)coloured mesh with ``gen3d.data.render.MeshRenderer``;
    ``render_cfg`` fills its ``RenderConfig`` (e.g. ``background="white"``, ``supersample=2``)."""
    from gen3d.data.render import MeshRenderer, RenderConfig

    renderer = MeshRenderer(mesh.vertices, mesh.faces, mesh_face_colors(mesh), RenderConfig(**render_cfg))
    return lambda cams: renderer.render(cams).rgb


def mesh_turntable(mesh: trimesh.Trimesh, path: str | os.PathLike, **kwargs) -> list[Path]:
    """``turntable`` of a mesh (keyword arguments as for :func:`turntable`)."""
    return turntable(mesh_render_fn(mesh), path, **kwargs)
