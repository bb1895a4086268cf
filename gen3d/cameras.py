"""Cameras: the one convention inside gen3d, and conversions at the edges.

Inside the library every camera is **OpenCV**: a world-to-camera matrix ``w2c`` (x right, y down,
z forward, the camera looks along +z) and pixel intrinsics ``K`` (fx, fy, cx, cy, pixel centres at
half-integers, so an image of width W has cx = W/2 for a centred camera). The world is **y-up**
(as glTF and three.js), so exported meshes stand upright in Blender and browsers.

Conversions (each with a round-trip test in tests/test_cameras.py):
- gsplat: ``viewmats`` are OpenCV world-to-camera and ``Ks`` pixel intrinsics, i.e. ours unchanged.
- nerfstudio / instant-ngp ``transforms.json``: camera-to-world in the OpenGL convention
  (x right, y up, camera looks along -z): ``c2w_gl = inverse(w2c) @ diag(1, -1, -1, 1)``.
- glTF 2.0 / three.js: a camera node's world matrix is the same OpenGL camera-to-world; its
  projection is a vertical field of view ``yfov = 2 atan(H / (2 fy))`` and an aspect ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

# OpenCV <-> OpenGL camera axes: flip y and z.
_CV_TO_GL = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


@dataclass(frozen=True)
class Cameras:
    """V pinhole cameras sharing one image size. Tensors are float32 on any device."""

    w2c: Float[Tensor, "V 4 4"]
    K: Float[Tensor, "V 3 3"]
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.w2c.ndim != 3 or self.w2c.shape[-2:] != (4, 4):
            raise ValueError(f"w2c must have shape (V, 4, 4), got {tuple(self.w2c.shape)}")
        if self.K.ndim != 3 or self.K.shape[-2:] != (3, 3) or self.K.shape[0] != self.w2c.shape[0]:
            raise ValueError(f"K must have shape ({self.w2c.shape[0]}, 3, 3), got {tuple(self.K.shape)}")

    def __len__(self) -> int:
        return self.w2c.shape[0]

    def __getitem__(self, idx: int | slice | Sequence[int] | Tensor) -> "Cameras":
        if isinstance(idx, int):
            idx = [idx]
        return Cameras(self.w2c[idx], self.K[idx], self.width, self.height)

    def to(self, device: str | torch.device) -> "Cameras":
        return Cameras(self.w2c.to(device), self.K.to(device), self.width, self.height)

    @property
    def c2w(self) -> Float[Tensor, "V 4 4"]:
        """OpenCV camera-to-world."""
        return torch.linalg.inv(self.w2c)

    @property
    def centers(self) -> Float[Tensor, "V 3"]:
        """Camera positions in world coordinates."""
        return self.c2w[:, :3, 3]

    def fov_y(self) -> Float[Tensor, "V"]:
        """Vertical field of view in radians."""
        return 2 * torch.atan(self.height / (2 * self.K[:, 1, 1]))

    def project(self, points: Float[Tensor, "P 3"]) -> tuple[Float[Tensor, "V P 2"], Float[Tensor, "V P"]]:
        """Pixel coordinates (x, y) and camera-space depth z of world points in every camera."""
        ph = torch.cat([points, torch.ones_like(points[:, :1])], dim=-1)  # P 4
        cam = torch.einsum("vij,pj->vpi", self.w2c, ph)[..., :3]  # V P 3
        z = cam[..., 2]
        uv = torch.einsum("vij,vpj->vpi", self.K, cam)
        return uv[..., :2] / uv[..., 2:3].clamp_min(1e-12), z

    def rays(self) -> tuple[Float[Tensor, "V H W 3"], Float[Tensor, "V H W 3"]]:
        """World-space ray origins and unit directions through pixel centres."""
        ys, xs = torch.meshgrid(
            torch.arange(self.height, dtype=self.K.dtype, device=self.K.device) + 0.5,
            torch.arange(self.width, dtype=self.K.dtype, device=self.K.device) + 0.5,
            indexing="ij",
        )
        fx, fy = self.K[:, 0, 0, None, None], self.K[:, 1, 1, None, None]
        cx, cy = self.K[:, 0, 2, None, None], self.K[:, 1, 2, None, None]
        d_cam = torch.stack([(xs - cx) / fx, (ys - cy) / fy, torch.ones_like(xs - cx)], dim=-1)  # V H W 3
        c2w = self.c2w
        d = torch.einsum("vij,vhwj->vhwi", c2w[:, :3, :3], d_cam)
        d = d / d.norm(dim=-1, keepdim=True)
        o = c2w[:, None, None, :3, 3].expand_as(d)
        return o, d


# --------------------------------------------------------------------------------------------------
# Construction
# --------------------------------------------------------------------------------------------------


def intrinsics_from_fov(fov_y_deg: float, width: int, height: int) -> Float[Tensor, "3 3"]:
    """Pixel intrinsics for a vertical field of view, square pixels, centred principal point."""
    fy = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
    return torch.tensor([[fy, 0.0, width / 2], [0.0, fy, height / 2], [0.0, 0.0, 1.0]])


def look_at(
    eye: Float[Tensor, "V 3"], target: Float[Tensor, "V 3"], up: Sequence[float] = (0.0, 1.0, 0.0)
) -> Float[Tensor, "V 4 4"]:
    """OpenCV world-to-camera matrices for cameras at ``eye`` looking at ``target`` (image y points down)."""
    eye = torch.as_tensor(eye, dtype=torch.float32)
    target = torch.as_tensor(target, dtype=torch.float32)
    up_t = torch.tensor(up, dtype=torch.float32).expand_as(eye)
    z = target - eye
    z = z / z.norm(dim=-1, keepdim=True)
    x = torch.linalg.cross(z, up_t)  # right = forward x up (OpenCV: y down)
    # A camera looking straight along `up` has no defined roll: pick world +z as its image "down".
    degenerate = x.norm(dim=-1) < 1e-6
    if degenerate.any():
        alt = torch.tensor([0.0, 0.0, 1.0]).expand_as(eye)
        x = torch.where(degenerate[:, None], torch.linalg.cross(z, alt), x)
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z], dim=1)  # rows: camera axes in world coordinates
    w2c = torch.eye(4).repeat(eye.shape[0], 1, 1)
    w2c[:, :3, :3] = R
    w2c[:, :3, 3] = -torch.einsum("vij,vj->vi", R, eye)
    return w2c


def orbit_position(elevation_deg: Tensor, azimuth_deg: Tensor, radius: Tensor) -> Float[Tensor, "V 3"]:
    """Point on a sphere (y-up). Azimuth 0 is the +z axis (the glTF front), increasing toward +x."""
    el = torch.deg2rad(torch.as_tensor(elevation_deg, dtype=torch.float32))
    az = torch.deg2rad(torch.as_tensor(azimuth_deg, dtype=torch.float32))
    r = torch.as_tensor(radius, dtype=torch.float32)
    return torch.stack([r * torch.cos(el) * torch.sin(az), r * torch.sin(el), r * torch.cos(el) * torch.cos(az)], -1)


def orbit_cameras(
    elevation_deg: float | Sequence[float],
    azimuth_deg: float | Sequence[float],
    radius: float | Sequence[float],
    fov_y_deg: float,
    width: int,
    height: int | None = None,
    target: Sequence[float] = (0.0, 0.0, 0.0),
) -> Cameras:
    """Cameras on a sphere around ``target`` looking at it. Scalars broadcast against sequences."""
    height = width if height is None else height
    el, az, r = torch.broadcast_tensors(
        torch.as_tensor(elevation_deg, dtype=torch.float32).reshape(-1),
        torch.as_tensor(azimuth_deg, dtype=torch.float32).reshape(-1),
        torch.as_tensor(radius, dtype=torch.float32).reshape(-1),
    )
    tgt = torch.tensor(target, dtype=torch.float32).expand(el.shape[0], 3)
    eye = orbit_position(el, az, r) + tgt
    w2c = look_at(eye, tgt)
    K = intrinsics_from_fov(fov_y_deg, width, height).expand(el.shape[0], 3, 3).clone()
    return Cameras(w2c, K, width, height)


def turntable_cameras(
    n: int, elevation_deg: float, radius: float, fov_y_deg: float, width: int, height: int | None = None,
    azimuth_start_deg: float = 0.0,
) -> Cameras:
    """``n`` cameras evenly spaced in azimuth at one elevation (the default multi-view layout)."""
    az = azimuth_start_deg + torch.arange(n, dtype=torch.float32) * (360.0 / n)
    return orbit_cameras(elevation_deg, az, radius, fov_y_deg, width, height)


# --------------------------------------------------------------------------------------------------
# Conversions at the edges
# --------------------------------------------------------------------------------------------------


def to_gsplat(cams: Cameras) -> tuple[Float[Tensor, "V 4 4"], Float[Tensor, "V 3 3"]]:
    """gsplat's ``viewmats`` and ``Ks`` (gsplat uses OpenCV world-to-camera: no change)."""
    return cams.w2c, cams.K


def from_gsplat(viewmats: Tensor, Ks: Tensor, width: int, height: int) -> Cameras:
    return Cameras(viewmats, Ks, width, height)


def to_opengl_c2w(cams: Cameras) -> Float[Tensor, "V 4 4"]:
    """nerfstudio / instant-ngp / glTF camera-to-world (OpenGL axes: y up, looking along -z)."""
    return torch.linalg.inv(cams.w2c) @ _CV_TO_GL.to(cams.w2c)


def from_opengl_c2w(c2w_gl: Tensor, K: Tensor, width: int, height: int) -> Cameras:
    c2w_gl = torch.as_tensor(c2w_gl, dtype=torch.float32)
    if c2w_gl.ndim == 2:
        c2w_gl = c2w_gl[None]
    if c2w_gl.shape[-2:] == (3, 4):
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(c2w_gl.shape[0], 1, 4)
        c2w_gl = torch.cat([c2w_gl, bottom], dim=1)
    w2c = torch.linalg.inv(c2w_gl @ _CV_TO_GL.to(c2w_gl))
    K = torch.as_tensor(K, dtype=torch.float32)
    if K.ndim == 2:
        K = K.expand(c2w_gl.shape[0], 3, 3).clone()
    return Cameras(w2c, K, width, height)


def to_threejs(cams: Cameras) -> list[dict]:
    """three.js / glTF camera parameters: position, quaternion (x, y, z, w), vertical fov in degrees.

    The principal point is assumed centred (three.js' PerspectiveCamera has no offset; a shifted
    principal point would need ``setViewOffset``).
    """
    c2w = to_opengl_c2w(cams)
    out = []
    for i in range(len(cams)):
        R = c2w[i, :3, :3].double().cpu().numpy()
        out.append(
            {
                "position": c2w[i, :3, 3].tolist(),
                "quaternion": _quat_xyzw_from_matrix(R).tolist(),
                "fov": math.degrees(float(cams.fov_y()[i])),
                "aspect": cams.width / cams.height,
            }
        )
    return out


def from_threejs(params: Sequence[dict], width: int, height: int) -> Cameras:
    c2w = []
    for p in params:
        m = torch.eye(4, dtype=torch.float64)
        m[:3, :3] = torch.from_numpy(_matrix_from_quat_xyzw(np.asarray(p["quaternion"], dtype=np.float64)))
        m[:3, 3] = torch.tensor(p["position"], dtype=torch.float64)
        c2w.append(m)
    fov = params[0]["fov"] if params else 50.0
    K = intrinsics_from_fov(fov, width, height)
    return from_opengl_c2w(torch.stack(c2w).float(), K, width, height)


def _quat_xyzw_from_matrix(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of a rotation matrix (Shepperd's method, numerically stable)."""
    t = np.trace(R)
    if t > 0:
        s = 2.0 * math.sqrt(t + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + R[i, i] - R[j, j] - R[k, k])
        q = [0.0, 0.0, 0.0, (R[k, j] - R[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (R[j, i] + R[i, j]) / s
        q[k] = (R[k, i] + R[i, k]) / s
    q = np.asarray(q)
    return q / np.linalg.norm(q)


def _matrix_from_quat_xyzw(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
