"""Gaussian splat files: the INRIA 3DGS ``.ply`` and the 32-byte ``.splat``.

Both layouts are written here from their published descriptions (the reference 3DGS code is
under a non-commercial licence, so none of it is copied); plyfile does the PLY container.

INRIA ``.ply`` (Kerbl et al. 2023; also what nerfstudio's ``ns-export gaussian-splat`` writes):
one ``vertex`` element, binary little-endian, float32 properties in this order::

    x y z nx ny nz f_dc_0 f_dc_1 f_dc_2 f_rest_0 ... f_rest_{3(K-1)-1} opacity
    scale_0 scale_1 scale_2 rot_0 rot_1 rot_2 rot_3

opacity is a logit, scales are logs, ``rot`` is the quaternion (w, x, y, z) as stored (not
normalised), normals are zeros, and ``f_rest`` is channel-major: the K-1 higher-order
coefficients of red, then those of green, then blue (``f_rest_{c (K-1) + j} = sh[:, 1 + j, c]``).
The loader also reads nerfstudio's variants: normals absent, properties in another order or
with extra ones, and its ``ply_color_mode="rgb"`` files, which carry ``red green blue`` uchar
colours instead of ``f_dc_*`` (turned into the DC coefficient; degree 0).

``.splat`` (antimatter15/splat's format, read by SuperSplat, Spark and most web viewers): 32
bytes per Gaussian, no header: position 3 x float32, scale 3 x float32 (activated, i.e. exp'd),
colour RGBA 4 x uint8 (``0.5 + C0 * f_dc`` and ``sigmoid(opacity)``, times 255, clipped), rotation
4 x uint8 (the unit quaternion w, x, y, z as ``round(q * 128 + 128)`` clipped to [0, 255]). Only
the DC colour survives (view-dependent SH is dropped). Splats are written in descending order of
``scale_0 * scale_1 * scale_2 * opacity`` (volume times opacity), as antimatter15's converter
sorts them, so viewers that stream the file draw the large, opaque splats first; ties keep the
input order.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from gen3d.errors import DataError
from gen3d.recon.gaussians import SH_C0, Gaussians
from gen3d.utils.io import atomic_path

SPLAT_RECORD = np.dtype(
    [("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)]
)  # 32 bytes, antimatter15/splat


def inria_property_names(sh_degree: int) -> list[str]:
    """The INRIA .ply vertex properties, in file order, for Gaussians of this SH degree."""
    k = (sh_degree + 1) ** 2
    return [
        *("x", "y", "z", "nx", "ny", "nz"),
        *(f"f_dc_{i}" for i in range(3)),
        *(f"f_rest_{i}" for i in range(3 * (k - 1))),
        "opacity",
        *(f"scale_{i}" for i in range(3)),
        *(f"rot_{i}" for i in range(4)),
    ]


def _numpy(g: Gaussians) -> dict[str, np.ndarray]:
    out = {
        name: t.detach().cpu().float().numpy()
        for name, t in zip(("means", "quats", "log_scales", "opacity_logits", "sh"), g.tensors())
    }
    bad = ~np.isfinite(np.concatenate([v.reshape(len(g), -1) for v in out.values()], axis=1)).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} of {len(g)} Gaussians have NaN or infinite parameters; drop them first "
            "(e.g. g.subset(torch.isfinite(g.means).all(-1)))"
        )
    return out


# --------------------------------------------------------------------------------------------------
# INRIA .ply
# --------------------------------------------------------------------------------------------------


def save_splat_ply(g: Gaussians, path: str | os.PathLike) -> Path:
    """Write ``g`` as an INRIA 3DGS .ply (float32, binary little-endian), atomically."""
    from plyfile import PlyData, PlyElement

    path = Path(path)
    a = _numpy(g)
    n, k = len(g), a["sh"].shape[1]
    rest = a["sh"][:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * (k - 1))  # channel-major: R..., G..., B...
    columns = np.concatenate(
        [
            a["means"],
            np.zeros((n, 3), np.float32),
            a["sh"][:, 0, :],
            rest,
            a["opacity_logits"][:, None],
            a["log_scales"],
            a["quats"],
        ],
        axis=1,
    )
    names = inria_property_names(g.sh_degree)
    assert columns.shape[1] == len(names)
    records = np.empty(n, dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        records[name] = columns[:, i]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(records, "vertex")], text=False, byte_order="<").write(str(tmp))
    return path


def load_splat_ply(path: str | os.PathLike) -> Gaussians:
    """Read an INRIA-layout 3DGS .ply (ours, the reference code's, nerfstudio's) as Gaussians."""
    from plyfile import PlyData

    path = Path(path)
    if not path.is_file():
        raise DataError(f"splat file not found: {path}")
    try:
        ply = PlyData.read(str(path))
        vertex = ply["vertex"].data
    except Exception as e:  # plyfile raises several types on corrupt input
        raise DataError(
            f"{path} is not a readable PLY file with a 'vertex' element ({type(e).__name__}: {e})"
        ) from e
    names = set(vertex.dtype.names or ())

    def cols(*keys: str) -> np.ndarray:
        missing = [k for k in keys if k not in names]
        if missing:
            raise DataError(
                f"{path} is not a 3D Gaussian splat .ply: it lacks the vertex properties {', '.join(missing)} "
                "(expected the INRIA layout: x y z f_dc_* f_rest_* opacity scale_* rot_*)"
            )
        return np.stack([np.asarray(vertex[k], np.float32) for k in keys], axis=1)

    n = len(vertex)
    means = cols("x", "y", "z")
    opacity = cols("opacity")[:, 0]
    log_scales = cols("scale_0", "scale_1", "scale_2")
    quats = cols("rot_0", "rot_1", "rot_2", "rot_3")
    if {"f_dc_0", "f_dc_1", "f_dc_2"} <= names:
        dc = cols("f_dc_0", "f_dc_1", "f_dc_2")
    elif {"red", "green", "blue"} <= names:  # nerfstudio's ply_color_mode="rgb"
        rgb = cols("red", "green", "blue")
        if vertex["red"].dtype.kind in "ui":
            rgb = rgb / 255.0
        dc = (rgb - 0.5) / SH_C0
    else:
        raise DataError(f"{path} has no colour: expected f_dc_0..2 (or red, green, blue) vertex properties")
    n_rest = sum(1 for name in names if name.startswith("f_rest_"))
    k = n_rest // 3 + 1
    if n_rest % 3 or math.isqrt(k) ** 2 != k:
        raise DataError(
            f"{path} has {n_rest} f_rest_* properties; expected 3 * ((degree + 1)^2 - 1), e.g. 0, 9, 24 or 45"
        )
    rest = np.zeros((n, 0, 3), np.float32)
    if n_rest:
        rest = cols(*(f"f_rest_{i}" for i in range(n_rest))).reshape(n, 3, k - 1).transpose(0, 2, 1)
    sh = np.concatenate([dc[:, None, :], rest], axis=1)
    return Gaussians(
        torch.from_numpy(means),
        torch.from_numpy(quats),
        torch.from_numpy(log_scales),
        torch.from_numpy(opacity.copy()),
        torch.from_numpy(np.ascontiguousarray(sh)),
    )


# --------------------------------------------------------------------------------------------------
# .splat (32 bytes per Gaussian)
# --------------------------------------------------------------------------------------------------


def splat_order(g: Gaussians) -> np.ndarray:
    """Indices in the order .splat files store Gaussians: descending volume x opacity, stable."""
    a = _numpy(g)
    key = np.exp(a["log_scales"].astype(np.float64).sum(axis=1)) / (
        1 + np.exp(-a["opacity_logits"].astype(np.float64))
    )
    return np.argsort(-key, kind="stable")


def encode_splat(g: Gaussians) -> bytes:
    """The .splat bytes of ``g`` (see the module docstring for the layout and order)."""
    a = _numpy(g)
    order = splat_order(g)
    rec = np.zeros(len(g), SPLAT_RECORD)
    rec["position"] = a["means"][order]
    rec["scale"] = np.exp(a["log_scales"][order].astype(np.float64))
    rgb = 0.5 + SH_C0 * a["sh"][order, 0, :].astype(np.float64)
    alpha = 1.0 / (1.0 + np.exp(-a["opacity_logits"][order].astype(np.float64)))
    rec["rgba"] = np.clip(np.round(np.concatenate([rgb, alpha[:, None]], axis=1) * 255), 0, 255)
    q = a["quats"][order].astype(np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    rec["rot"] = np.clip(np.round(q * 128 + 128), 0, 255)
    return rec.tobytes()


def save_splat(g: Gaussians, path: str | os.PathLike) -> Path:
    """Write ``g`` as a .splat file (32 bytes per Gaussian, DC colour only), atomically."""
    path = Path(path)
    data = encode_splat(g)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def load_splat(path: str | os.PathLike) -> Gaussians:
    """Read a .splat file as degree-0 Gaussians (in file order). Quantised fields are decoded at
    the centres of their bins; alpha 0 and 255 are clamped to 0.5/255 from the ends, so the
    opacity logit stays finite."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"splat file not found: {path}")
    data = path.read_bytes()
    if len(data) % SPLAT_RECORD.itemsize:
        raise DataError(
            f"{path} is {len(data)} bytes, not a whole number of 32-byte splats: truncated or not a .splat file"
        )
    rec = np.frombuffer(data, SPLAT_RECORD)
    scale = rec["scale"].astype(np.float64)
    if not (np.isfinite(rec["position"]).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise DataError(f"{path} has non-finite positions or non-positive scales: not a valid .splat file")
    rgba = rec["rgba"].astype(np.float64) / 255.0
    alpha = np.clip(rgba[:, 3], 0.5 / 255, 1 - 0.5 / 255)
    q = (rec["rot"].astype(np.float64) - 128.0) / 128.0
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norm > 1e-12, q / np.maximum(norm, 1e-12), [1.0, 0.0, 0.0, 0.0])
    sh = ((rgba[:, :3] - 0.5) / SH_C0)[:, None, :]
    return Gaussians(
        torch.from_numpy(rec["position"].astype(np.float32)),
        torch.from_numpy(q.astype(np.float32)),
        torch.from_numpy(np.log(scale).astype(np.float32)),
        torch.from_numpy(np.log(alpha / (1 - alpha)).astype(np.float32)),
        torch.from_numpy(sh.astype(np.float32)),
    )
