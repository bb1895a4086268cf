"""EWA projection of 3D Gaussians to screen space, as twins: ``project_ewa`` (vectorised torch,
autograd; the dense reference rasterizer uses it) and ``project_fwd_kernel`` / ``project_bwd_kernel``
(numba, hand-written backward; the tiled CPU rasterizer uses them). The tests compare both, and the
torch twin with gsplat's pure-torch implementation.

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

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from numba import njit, prange
from torch import Tensor

from gen3d.recon.sh import MAX_SH_DEGREE, sh_bases_grad_into, sh_bases_into

# Jacobian clamp: 0.3 x tan(fov / 2) beyond each image border (3DGS / gsplat).
FOV_CLAMP_MARGIN = 0.3
# numba kernels: LLVM fast-math without approximate functions ("afn"), so exp stays exact to float64
# rounding and pairs on the rasterizer's 1/255 and 1e-4 thresholds resolve as in the float64 reference.
NUMBA_FASTMATH = {"nnan", "ninf", "nsz", "arcp", "contract", "reassoc"}
_sh_bases = njit(cache=True, error_model="numpy")(sh_bases_into)
_sh_grads = njit(cache=True, error_model="numpy")(sh_bases_grad_into)
_NB = (MAX_SH_DEGREE + 1) ** 2


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


# --------------------------------------------------------------------------------------------------
# The fast twin: numba kernels for the tiled CPU rasterizer (gen3d.recon.rasterize_tiled).
# Same conventions; the math runs in float64 scalars on float32 arrays; gradients hand-written.
# --------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _rotation(qw, qx, qy, qz):
    """Normalised quaternion and its rotation matrix (row-major 9-tuple)."""
    n = max(math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12)
    w, x, y, z = qw / n, qx / n, qy / n, qz / n
    R = (1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y),
         2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x),
         2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y))  # fmt: skip
    return n, w, x, y, z, R


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _sandwich(A, S):
    """A S A^T for a 3x3 A (9-tuple) and symmetric S (s00, s01, s02, s11, s12, s22)."""
    s00, s01, s02, s11, s12, s22 = S
    # B = A S (row-major)
    b00 = A[0] * s00 + A[1] * s01 + A[2] * s02
    b01 = A[0] * s01 + A[1] * s11 + A[2] * s12
    b02 = A[0] * s02 + A[1] * s12 + A[2] * s22
    b10 = A[3] * s00 + A[4] * s01 + A[5] * s02
    b11 = A[3] * s01 + A[4] * s11 + A[5] * s12
    b12 = A[3] * s02 + A[4] * s12 + A[5] * s22
    b20 = A[6] * s00 + A[7] * s01 + A[8] * s02
    b21 = A[6] * s01 + A[7] * s11 + A[8] * s12
    b22 = A[6] * s02 + A[7] * s12 + A[8] * s22
    return (b00 * A[0] + b01 * A[1] + b02 * A[2], b00 * A[3] + b01 * A[4] + b02 * A[5],
            b00 * A[6] + b01 * A[7] + b02 * A[8], b10 * A[3] + b11 * A[4] + b12 * A[5],
            b10 * A[6] + b11 * A[7] + b12 * A[8], b20 * A[6] + b21 * A[7] + b22 * A[8])  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _covariance(R, s0, s1, s2):
    """Sigma = R S S^T R^T (Kerbl et al. 2023, Eq. 6) as a symmetric 6-tuple."""
    a, b, c = s0 * s0, s1 * s1, s2 * s2
    return (R[0] * R[0] * a + R[1] * R[1] * b + R[2] * R[2] * c,
            R[0] * R[3] * a + R[1] * R[4] * b + R[2] * R[5] * c,
            R[0] * R[6] * a + R[1] * R[7] * b + R[2] * R[8] * c,
            R[3] * R[3] * a + R[4] * R[4] * b + R[5] * R[5] * c,
            R[3] * R[6] * a + R[4] * R[7] * b + R[5] * R[8] * c,
            R[6] * R[6] * a + R[7] * R[7] * b + R[8] * R[8] * c)  # fmt: skip


def camera_table(viewmats: np.ndarray, Ks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Per-camera constants (C, 23) float64: W (9, row-major), t (3), fx, fy, cx, cy, the Jacobian
    clamp limits (x+, x-, y+, y-: 0.3 tan(fov/2) beyond each border, as 3DGS / gsplat) and the
    camera centre (3)."""
    vm, K = viewmats.astype(np.float64), Ks.astype(np.float64)
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    limits = np.stack([(width - cx) / fx + FOV_CLAMP_MARGIN * 0.5 * width / fx,
                       cx / fx + FOV_CLAMP_MARGIN * 0.5 * width / fx,
                       (height - cy) / fy + FOV_CLAMP_MARGIN * 0.5 * height / fy,
                       cy / fy + FOV_CLAMP_MARGIN * 0.5 * height / fy], axis=1)  # fmt: skip
    centres = np.linalg.inv(vm)[:, :3, 3]
    table = np.concatenate([vm[:, :3, :3].reshape(-1, 9), vm[:, :3, 3], np.stack([fx, fy, cx, cy], 1), limits,
                            centres], axis=1)  # fmt: skip
    return np.ascontiguousarray(table)


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _view(cams, c):
    r = cams[c]
    W = (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])
    return W, r[9], r[10], r[11], r[12], r[13], r[14], r[15], r[16], r[17], r[18], r[19]


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _ewa(Sc, x, y, z, fx, fy, lxp, lxn, lyp, lyn, eps2d):
    """2D covariance J Sc J^T + eps2d I (Zwicker et al. 2001, Eq. 31-34) and the Jacobian terms."""
    rz = 1.0 / z
    u, v = x * rz, y * rz
    cu, cv = min(max(u, -lxn), lxp), min(max(v, -lyn), lyp)
    tx, ty = z * cu, z * cv
    j00, j02 = fx * rz, -fx * tx * rz * rz
    j11, j12 = fy * rz, -fy * ty * rz * rz
    s00, s01, s02, s11, s12, s22 = Sc
    a = (j00 * s00 + j02 * s02) * j00 + (j00 * s02 + j02 * s22) * j02 + eps2d
    b = (j00 * s01 + j02 * s12) * j11 + (j00 * s02 + j02 * s22) * j12
    c = (j11 * s11 + j12 * s12) * j11 + (j11 * s12 + j12 * s22) * j12 + eps2d
    clamped_x = u != cu
    clamped_y = v != cv
    return a, b, c, j00, j02, j11, j12, tx, ty, clamped_x, clamped_y


@njit(parallel=True, cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def project_fwd_kernel(means, quats, scales, coeffs, sh_degree, cams, width, height,
                 near, far, eps2d, means2d, conics, depths, colors, radii, n_chunks):  # fmt: skip
    N = means.shape[0]
    for chunk in prange(n_chunks):
        shb, shg = np.empty(_NB), np.empty((_NB, 3))
        for g in range(chunk * N // n_chunks, (chunk + 1) * N // n_chunks):
            _project_one(g, means, quats, scales, coeffs, sh_degree, cams, width, height,
                         near, far, eps2d, means2d, conics, depths, colors, radii, shb, shg)  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _project_one(g, means, quats, scales, coeffs, sh_degree, cams, width, height,
                 near, far, eps2d, means2d, conics, depths, colors, radii, shb, shg):  # fmt: skip
    C = cams.shape[0]
    n_bases = (sh_degree + 1) ** 2
    _, _, _, _, _, R = _rotation(quats[g, 0], quats[g, 1], quats[g, 2], quats[g, 3])
    Sig = _covariance(R, scales[g, 0], scales[g, 1], scales[g, 2])
    mx, my, mz = means[g, 0], means[g, 1], means[g, 2]
    for c in range(C):
        radii[c, g] = 0
        means2d[c, g, 0] = means2d[c, g, 1] = 0.0
        conics[c, g, 0] = conics[c, g, 1] = conics[c, g, 2] = 0.0
        depths[c, g] = 0.0
        W, tx0, ty0, tz0, fx, fy, cx, cy, lxp, lxn, lyp, lyn = _view(cams, c)
        x = W[0] * mx + W[1] * my + W[2] * mz + tx0
        y = W[3] * mx + W[4] * my + W[5] * mz + ty0
        z = W[6] * mx + W[7] * my + W[8] * mz + tz0
        if z < near or z > far:
            continue
        a, b, cc, _, _, _, _, _, _, _, _ = _ewa(_sandwich(W, Sig), x, y, z, fx, fy, lxp, lxn, lyp, lyn, eps2d)
        det = a * cc - b * b
        if det <= 0.0:
            continue
        half = 0.5 * (a + cc)
        radius = math.ceil(3.0 * math.sqrt(half + math.sqrt(max(0.01, half * half - det))))
        u, v = fx * x / z + cx, fy * y / z + cy
        if u + radius <= 0 or u - radius >= width or v + radius <= 0 or v - radius >= height:
            continue
        radii[c, g] = int(radius)
        means2d[c, g, 0], means2d[c, g, 1] = u, v
        conics[c, g, 0], conics[c, g, 1], conics[c, g, 2] = cc / det, -b / det, a / det
        depths[c, g] = z
        if sh_degree < 0:  # RGB given
            for ch in range(3):
                colors[c, g, ch] = coeffs[g, 0, ch]
            continue
        dx, dy, dz = mx - cams[c, 20], my - cams[c, 21], mz - cams[c, 22]
        dn = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
        dx, dy, dz = dx / dn, dy / dn, dz / dn
        _sh_bases(sh_degree, dx, dy, dz, shb)
        r0 = r1 = r2 = 0.5  # gsplat: SH colour + 0.5, clamped at 0
        for k in range(n_bases):
            r0 += shb[k] * coeffs[g, k, 0]
            r1 += shb[k] * coeffs[g, k, 1]
            r2 += shb[k] * coeffs[g, k, 2]
        colors[c, g, 0], colors[c, g, 1], colors[c, g, 2] = max(r0, 0.0), max(r1, 0.0), max(r2, 0.0)


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _mm3(A, B):
    """Product of two 3x3 matrices (row-major 9-tuples)."""
    return (A[0] * B[0] + A[1] * B[3] + A[2] * B[6], A[0] * B[1] + A[1] * B[4] + A[2] * B[7],
            A[0] * B[2] + A[1] * B[5] + A[2] * B[8], A[3] * B[0] + A[4] * B[3] + A[5] * B[6],
            A[3] * B[1] + A[4] * B[4] + A[5] * B[7], A[3] * B[2] + A[4] * B[5] + A[5] * B[8],
            A[6] * B[0] + A[7] * B[3] + A[8] * B[6], A[6] * B[1] + A[7] * B[4] + A[8] * B[7],
            A[6] * B[2] + A[7] * B[5] + A[8] * B[8])  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _quat_vjp(G, w, x, y, z):
    """Gradient of sum(G * R(q)) w.r.t. the unit quaternion (w, x, y, z)."""
    g00, g01, g02, g10, g11, g12, g20, g21, g22 = G
    vw = 2.0 * (-z * g01 + y * g02 + z * g10 - x * g12 - y * g20 + x * g21)
    vx = 2.0 * (y * g01 + z * g02 + y * g10 - 2.0 * x * g11 - w * g12 + z * g20 + w * g21 - 2.0 * x * g22)
    vy = 2.0 * (-2.0 * y * g00 + x * g01 + w * g02 + x * g10 + z * g12 - w * g20 + z * g21 - 2.0 * y * g22)
    vz = 2.0 * (-2.0 * z * g00 - w * g01 + x * g02 + w * g10 - 2.0 * z * g11 + y * g12 + x * g20 + y * g21)
    return vw, vx, vy, vz


@njit(parallel=True, cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def project_bwd_kernel(means, quats, scales, coeffs, sh_degree, cams, width, height, eps2d,
                 radii, v_means2d, v_conics, v_depths, v_colors, v_means, v_quats, v_scales, v_coeffs,
                 n_chunks):  # fmt: skip
    N = means.shape[0]
    for chunk in prange(n_chunks):
        shb, shg = np.empty(_NB), np.empty((_NB, 3))
        for g in range(chunk * N // n_chunks, (chunk + 1) * N // n_chunks):
            _project_one_bwd(g, means, quats, scales, coeffs, sh_degree, cams, width, height,
                             eps2d, radii, v_means2d, v_conics, v_depths, v_colors, v_means, v_quats, v_scales,
                             v_coeffs, shb, shg)  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _project_one_bwd(g, means, quats, scales, coeffs, sh_degree, cams, width, height, eps2d,
                     radii, v_means2d, v_conics, v_depths, v_colors, v_means, v_quats, v_scales, v_coeffs,
                     shb, shg):  # fmt: skip
    C = cams.shape[0]
    n_bases = (sh_degree + 1) ** 2
    qn, w, qx, qy, qz, R = _rotation(quats[g, 0], quats[g, 1], quats[g, 2], quats[g, 3])
    s0, s1, s2 = scales[g, 0], scales[g, 1], scales[g, 2]
    Sig = _covariance(R, s0, s1, s2)
    mx, my, mz = means[g, 0], means[g, 1], means[g, 2]
    vm0 = vm1 = vm2 = 0.0
    G00 = G01 = G02 = G11 = G12 = G22 = 0.0  # gradient w.r.t. the world covariance (symmetric)
    for c in range(C):
        if radii[c, g] <= 0:
            continue
        W, tx0, ty0, tz0, fx, fy, _, _, lxp, lxn, lyp, lyn = _view(cams, c)
        x = W[0] * mx + W[1] * my + W[2] * mz + tx0
        y = W[3] * mx + W[4] * my + W[5] * mz + ty0
        z = W[6] * mx + W[7] * my + W[8] * mz + tz0
        Sc = _sandwich(W, Sig)
        a, b, cc, j00, j02, j11, j12, tx, ty, clx, cly = _ewa(Sc, x, y, z, fx, fy, lxp, lxn, lyp, lyn, eps2d)
        det = a * cc - b * b
        p, q, r = cc / det, -b / det, a / det  # conic = inverse 2D covariance [[p, q], [q, r]]
        # conic -> 2D covariance: G_cov = -Q G_Q Q, G_Q = [[va, vb/2], [vb/2, vc]]
        ga, gb, gc = v_conics[c, g, 0], 0.5 * v_conics[c, g, 1], v_conics[c, g, 2]
        m00 = (p * ga + q * gb) * p + (p * gb + q * gc) * q
        m01 = (p * ga + q * gb) * q + (p * gb + q * gc) * r
        m11 = (q * ga + r * gb) * q + (q * gb + r * gc) * r
        h00, h01, h11 = -m00, -m01, -m11
        # 2D covariance = J Sc J^T: G_Sc = J^T G J, G_J = 2 G J Sc
        a00, a01, a02 = h00 * j00, h01 * j11, h00 * j02 + h01 * j12
        a10, a11, a12 = h01 * j00, h11 * j11, h01 * j02 + h11 * j12
        gS = (j00 * a00, j00 * a01, j00 * a02, j11 * a11, j11 * a12, j02 * a02 + j12 * a12)
        s00, s01, s02, s11, s12, s22 = Sc
        gj00 = 2.0 * (a00 * s00 + a01 * s01 + a02 * s02)
        gj02 = 2.0 * (a00 * s02 + a01 * s12 + a02 * s22)
        gj11 = 2.0 * (a10 * s01 + a11 * s11 + a12 * s12)
        gj12 = 2.0 * (a10 * s02 + a11 * s12 + a12 * s22)
        # Camera-space mean: from means2d, depth, and J's dependence on (x, y, z).
        rz = 1.0 / z
        rz2 = rz * rz
        vu, vv = v_means2d[c, g, 0], v_means2d[c, g, 1]
        vx, vy = fx * rz * vu, fy * rz * vv
        vz = -(fx * x * vu + fy * y * vv) * rz2 + v_depths[c, g]
        vz += -fx * rz2 * gj00 - fy * rz2 * gj11
        if clx:  # tx = z * limit: J02 = -fx limit / z
            vz += fx * tx * rz2 * rz * gj02
        else:
            vx += -fx * rz2 * gj02
            vz += 2.0 * fx * tx * rz2 * rz * gj02
        if cly:
            vz += fy * ty * rz2 * rz * gj12
        else:
            vy += -fy * rz2 * gj12
            vz += 2.0 * fy * ty * rz2 * rz * gj12
        vm0 += W[0] * vx + W[3] * vy + W[6] * vz
        vm1 += W[1] * vx + W[4] * vy + W[7] * vz
        vm2 += W[2] * vx + W[5] * vy + W[8] * vz
        # Camera covariance = W Sigma W^T: G_Sigma += W^T G_Sc W
        Wt = (W[0], W[3], W[6], W[1], W[4], W[7], W[2], W[5], W[8])
        d00, d01, d02, d11, d12, d22 = _sandwich(Wt, gS)
        G00 += d00
        G01 += d01
        G02 += d02
        G11 += d11
        G12 += d12
        G22 += d22
        # Colour.
        vc0, vc1, vc2 = v_colors[c, g, 0], v_colors[c, g, 1], v_colors[c, g, 2]
        if sh_degree < 0:
            v_coeffs[g, 0, 0] += vc0
            v_coeffs[g, 0, 1] += vc1
            v_coeffs[g, 0, 2] += vc2
            continue
        ex, ey, ez = mx - cams[c, 20], my - cams[c, 21], mz - cams[c, 22]
        dn = max(math.sqrt(ex * ex + ey * ey + ez * ez), 1e-12)
        dx, dy, dz = ex / dn, ey / dn, ez / dn
        _sh_bases(sh_degree, dx, dy, dz, shb)
        _sh_grads(sh_degree, dx, dy, dz, shg)
        r0 = r1 = r2 = 0.5
        for k in range(n_bases):
            r0 += shb[k] * coeffs[g, k, 0]
            r1 += shb[k] * coeffs[g, k, 1]
            r2 += shb[k] * coeffs[g, k, 2]
        vc0 = vc0 if r0 >= 0.0 else 0.0  # clamp at 0
        vc1 = vc1 if r1 >= 0.0 else 0.0
        vc2 = vc2 if r2 >= 0.0 else 0.0
        vdx = vdy = vdz = 0.0
        for k in range(n_bases):
            v_coeffs[g, k, 0] += shb[k] * vc0
            v_coeffs[g, k, 1] += shb[k] * vc1
            v_coeffs[g, k, 2] += shb[k] * vc2
            s = coeffs[g, k, 0] * vc0 + coeffs[g, k, 1] * vc1 + coeffs[g, k, 2] * vc2
            vdx += shg[k, 0] * s
            vdy += shg[k, 1] * s
            vdz += shg[k, 2] * s
        # Through the normalisation d = e / |e|: (I - d d^T) v / |e|.
        dot = dx * vdx + dy * vdy + dz * vdz
        vm0 += (vdx - dx * dot) / dn
        vm1 += (vdy - dy * dot) / dn
        vm2 += (vdz - dz * dot) / dn
    v_means[g, 0], v_means[g, 1], v_means[g, 2] = vm0, vm1, vm2
    # Sigma = M M^T, M = R diag(s): G_M = 2 G_Sigma M; G_R = G_M diag(s); v_s_j = sum_i G_M_ij R_ij
    Gs = (G00, G01, G02, G01, G11, G12, G02, G12, G22)
    M = (R[0] * s0, R[1] * s1, R[2] * s2, R[3] * s0, R[4] * s1, R[5] * s2, R[6] * s0, R[7] * s1, R[8] * s2)
    GM = _mm3(Gs, M)  # half of G_M: the factor 2 is applied below
    GM = (2.0 * GM[0], 2.0 * GM[1], 2.0 * GM[2], 2.0 * GM[3], 2.0 * GM[4], 2.0 * GM[5], 2.0 * GM[6],
          2.0 * GM[7], 2.0 * GM[8])  # fmt: skip
    v_scales[g, 0] = GM[0] * R[0] + GM[3] * R[3] + GM[6] * R[6]
    v_scales[g, 1] = GM[1] * R[1] + GM[4] * R[4] + GM[7] * R[7]
    v_scales[g, 2] = GM[2] * R[2] + GM[5] * R[5] + GM[8] * R[8]
    GR = (GM[0] * s0, GM[1] * s1, GM[2] * s2, GM[3] * s0, GM[4] * s1, GM[5] * s2, GM[6] * s0, GM[7] * s1,
          GM[8] * s2)  # fmt: skip
    vw, vx_, vy_, vz_ = _quat_vjp(GR, w, qx, qy, qz)
    # Through the normalisation q = p / |p|: (v - q (q . v)) / |p|.
    dot = w * vw + qx * vx_ + qy * vy_ + qz * vz_
    v_quats[g, 0] = (vw - w * dot) / qn
    v_quats[g, 1] = (vx_ - qx * dot) / qn
    v_quats[g, 2] = (vy_ - qy * dot) / qn
    v_quats[g, 3] = (vz_ - qz * dot) / qn
