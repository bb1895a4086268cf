"""Pictures for people: contact sheets of views, animated GIFs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from gen3d.utils.io import atomic_path


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (or uint8 already) -> uint8."""
    if img.dtype == np.uint8:
        return img
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def contact_sheet(
    images: Sequence[np.ndarray], cols: int | None = None, labels: Sequence[str] | None = None, pad: int = 2,
    background: int = 255,
) -> np.ndarray:
    """Tile HxWx3 images (float in [0, 1] or uint8) into one uint8 grid, optional label under each.

    A label may run on under the next cells of its row when those have empty labels."""
    if len(images) == 0:
        raise ValueError("contact_sheet needs at least one image")
    ims = [to_uint8(np.asarray(im)) for im in images]
    ims = [np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im[..., :3] for im in ims]
    h = max(im.shape[0] for im in ims)
    w = max(im.shape[1] for im in ims)
    cols = cols or min(len(ims), 8)
    rows = (len(ims) + cols - 1) // cols
    label_h = 12 if labels else 0
    sheet = np.full((rows * (h + label_h + pad) + pad, cols * (w + pad) + pad, 3), background, np.uint8)
    for i, im in enumerate(ims):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + label_h + pad), pad + c * (w + pad)
        sheet[y : y + im.shape[0], x : x + im.shape[1]] = im
    if labels:
        pil = Image.fromarray(sheet)
        draw = ImageDraw.Draw(pil)
        for i, text in enumerate(labels):
            r, c = divmod(i, cols)
            draw.text((pad + c * (w + pad) + 1, pad + r * (h + label_h + pad) + h), text, fill=(0, 0, 0))
        sheet = np.asarray(pil)
    return sheet


def save_png(path: str | os.PathLike, img: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(img)).save(tmp, format="PNG")


def save_gif(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float = 12.0) -> None:
    """An endlessly looping GIF (written atomically)."""
    pils = [Image.fromarray(to_uint8(f)[..., :3]) for f in frames]
    with atomic_path(Path(path)) as tmp:
        pils[0].save(tmp, format="GIF", save_all=True, append_images=pils[1:], duration=int(1000 / fps), loop=0)
