"""EWA projection of 3D Gaussians to screen space: the reference (vectorised torch, autograd).

Conventions (the same as gsplat's ``fully_fused_projection`` in "classic" mode, so backends agree):

- Covariance from rotation and scale, ``Sigma = R S S^T R^T`` (Kerbl et al. 2023, Eq. 6), with
  ``R`` from the normalised quaternion (w, x, y, z) and ``S = diag(scales)``.
- Camera: OpenCV world-to-camera ``viewmats`` (x right, y down, z forward) and pixel intrinsics
  ``Ks`` (pixel centres at half-integers). The camera-space covariance is ``W Sigma W^T``.
- EWA splatting (Zwicker et al. 2001, Eq. 31-34; Kerbl et al. 2023, Eq. 5): the 2D covariance is
  ``J W Sigma W^T J^T`` with ``J`` the Jacobian of the perspective map at the mean,
  ``J = [[fx/z, 0, -fx x/z^2], [0, fy/z, -fy y/z^2]]``. As in 3DGS and gsplat, ``x/z`` and ``y/z``
  inside ``J`` are clamped to 1.3x the image's half-extent (0.3 tan(fov/2) beyond each border), which
  keeps far off-screen Gaussians from producing huge footprints; the mean itself is not clamped.
- ``eps2d`` is added to the diagonal of the 2D covariance (a low-pass filter of ~0.3 px^2,
  Kerbl et al. 2023 Sec. 6 / gsplat "classic" mode: no opacity compensation).
- The conic is the inverse 2D covariance stored as (a, b, c): ``power = 0.5 (a dx^2 + c dy^2) + b dx dy``.
- Radius: ``ceil(3 sqrt(lambda_max))`` pixels, with ``lambda_max = b + sqrt(max(b^2 - det, 0.1^2))``,
  ``b`` = half the trace (the 3-sigma extent of the major axis).
- Culled (radius 0): depth ``z`` outside [near, far], a non-positive determinant, or the
  3-sigma square entirely outside the image. Culled entries of means2d/conics/depths are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

# Jacobian clamp: 0.3 x tan(fov / 2) beyond each image border (3DGS / gsplat).
FOV_CLAMP_MARGIN = 0.3


@dataclass(frozen=True)
class Projection:
    means2d: Float[Tensor, "C N 2"]  # pixel coordinates of the projected centres
    conics: Float[Tensor, "C N 3"]  # inverse 2D covariance (a, b, c), eps2d included
    depths: Float[Tensor, "C N"]  # camera-space z
    radii: Int[Tensor, "C N"]  # 3-sigma radius in pixels, 0 = culled


def quat_to_rotmat(quats: Float[Tensor, "N 4"]) -> Float[Tensor, "N 3 3"]:
    """Rotation matrix of the normalised quaternion (w, x, y, z)."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def covariance_3d(quats: Float[Tensor, "N 4"], scales: Float[Tensor, "N 3"]) -> Float[Tensor, "N 3 3"]:
    """``Sigma = R S S^T R^T`` (Kerbl et al. 2023, Eq. 6)."""
    M = quat_to_rotmat(quats) * scales[..., None, :]  # R S
    return M @ M.transpose(-1, -2)


def project_ewa(
    means: Float[Tensor, "N 3"],
    quats: Float[Tensor, "N 4"],
    scales: Float[Tensor, "N 3"],
    viewmats: Float[Tensor, "C 4 4"],
    Ks: Float[Tensor, "C 3 3"],
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
) -> Projection:
    """Project N Gaussians into C cameras (see the module docstring for every convention)."""
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None]  # C N 3
    covars_c = torch.einsum("cij,njk,clk->cnil", R, covariance_3d(quats, scales), R)  # W Sigma W^T
    x, y, z = means_c.unbind(-1)
    # Culled Gaussians are masked below; a safe depth keeps their (discarded) terms finite, since
    # autograd multiplies a masked branch's zero gradient by its local derivative (0 * inf = nan).
    z = torch.where(z >= near_plane, z, torch.ones_like(z))
    z_true = means_c[..., 2]
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]

    # Jacobian of the perspective map at the (clamped) mean: Zwicker et al. 2001, Eq. 34.
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    u = torch.minimum(torch.maximum(x / z, -(cx / fx + FOV_CLAMP_MARGIN * tan_x)),
                      (width - cx) / fx + FOV_CLAMP_MARGIN * tan_x)  # fmt: skip
    v = torch.minimum(torch.maximum(y / z, -(cy / fy + FOV_CLAMP_MARGIN * tan_y)),
                      (height - cy) / fy + FOV_CLAMP_MARGIN * tan_y)  # fmt: skip
    tx, ty = z * u, z * v
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * tx / z**2, zero, fy / z, -fy * ty / z**2], -1).reshape(
        *z.shape, 2, 3
    )
    cov2d = J @ covars_c @ J.transpose(-1, -2)  # C N 2 2
    cov2d = cov2d + eps2d * torch.eye(2, dtype=cov2d.dtype, device=cov2d.device)  # low-pass dilation

    a, b_, c = cov2d[..., 0, 0], 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0]), cov2d[..., 1, 1]
    det = a * c - b_ * b_
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b_ / det_safe, a / det_safe], dim=-1)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)

    with torch.no_grad():
        half_trace = 0.5 * (a + c)
        lam_max = half_trace + torch.sqrt(torch.clamp(half_trace**2 - det, min=0.01))
        radius = torch.ceil(3.0 * torch.sqrt(lam_max))
        valid = (z_true >= near_plane) & (z_true <= far_plane) & (det > 0)
        m = means2d.detach()
        inside = (
            (m[..., 0] + radius > 0) & (m[..., 0] - radius < width)
            & (m[..., 1] + radius > 0) & (m[..., 1] - radius < height)
        )  # fmt: skip
        valid = valid & inside
        radii = torch.where(valid, radius, torch.zeros_like(radius)).to(torch.int32)

    keep = valid[..., None]
    return Projection(
        means2d=torch.where(keep, means2d, torch.zeros_like(means2d)),
        conics=torch.where(keep, conics, torch.zeros_like(conics)),
        depths=torch.where(valid, z_true, torch.zeros_like(z_true)),
        radii=radii,
    )
