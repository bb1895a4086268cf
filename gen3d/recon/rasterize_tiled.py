"""The fast CPU rasterizer: numba kernels over 16x16 tiles with a hand-written backward.

Why our own: gsplat has no CPU rasterizer (its pure-torch twin still calls CUDA to composite), and a
dense torch compositor costs ~0.5 s per step at 2k Gaussians, far too slow for fitting on a CPU.

Layering (the same stages as gsplat, each a ``torch.autograd.Function`` so autograd joins them):

1. ``_Project``: per (camera, Gaussian) EWA projection + SH colour (``_project_fwd``), and its
   backward (``_project_bwd``) to means, quats, scales and colours/SH coefficients. One thread per
   Gaussian loops over the cameras, so per-Gaussian gradients need no atomics.
2. Binning (no gradient): Gaussians sorted front to back by camera depth (stable argsort), then
   written into per-tile lists in that order (``_count_tiles`` / ``_fill_tiles``), so every tile list
   is depth-sorted without a per-tile sort.
3. ``_Rasterize``: front-to-back compositing per tile (``_raster_fwd``) and back-to-front gradients
   (``_raster_bwd``, transmittance recovered by division as gsplat does) to means2d, conics, colours,
   depths and opacities. Each tile-list entry gets its own gradient slot (no write races, no atomics);
   the slots are then summed per Gaussian, one thread per camera.

Speed: each Gaussian visits only the pixels of its tile inside the ellipse where alpha can reach
1/255 (``power <= log(255 opacity)``, with a small margin; row by row, solving the quadratic for
each row's span), not all 256 pixels of the tile; a tile
stops when all its pixels are done. Kernels are compiled once for float32/int32 arrays
(``cache=True``); the math inside runs in float64 scalars.

Conventions: see ``gen3d.recon.rasterize`` (the dense twin, ``rasterize_dense``, is the reference).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numba
import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from gen3d.recon.projection import FOV_CLAMP_MARGIN
from gen3d.recon.sh import MAX_SH_DEGREE, sh_bases_grad_into, sh_bases_into

TILE = 16
# LLVM fast-math without approximate functions ("afn"): exp stays exact to float64 rounding, so
# pairs on the 1/255 and 1e-4 thresholds resolve as in the float64 reference.
_FASTMATH = {"nnan", "ninf", "nsz", "arcp", "contract", "reassoc"}
_sh_bases = njit(cache=True, error_model="numpy")(sh_bases_into)
_sh_grads = njit(cache=True, error_model="numpy")(sh_bases_grad_into)
_NB = (MAX_SH_DEGREE + 1) ** 2
# Packed per (camera, Gaussian) record read by the compositing kernels.
_MX, _MY, _QA, _QB, _QC, _OP, _R, _G, _B, _Z, _TH, _EX, _EY = range(13)
_PACK = 16  # 64-byte records (one cache line); the last three floats are padding
_NGRAD = 10  # v_mx, v_my, v_qa, v_qb, v_qc, v_op, v_r, v_g, v_b, v_z


# --------------------------------------------------------------------------------------------------
# Projection (EWA) and SH colour: forward and backward
# --------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _rotation(qw, qx, qy, qz):
    """Normalised quaternion and its rotation matrix (row-major 9-tuple)."""
    n = max(math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12)
    w, x, y, z = qw / n, qx / n, qy / n, qz / n
    R = (1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y),
         2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x),
         2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y))  # fmt: skip
    return n, w, x, y, z, R


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
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


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _covariance(R, s0, s1, s2):
    """Sigma = R S S^T R^T (Kerbl et al. 2023, Eq. 6) as a symmetric 6-tuple."""
    a, b, c = s0 * s0, s1 * s1, s2 * s2
    return (R[0] * R[0] * a + R[1] * R[1] * b + R[2] * R[2] * c,
            R[0] * R[3] * a + R[1] * R[4] * b + R[2] * R[5] * c,
            R[0] * R[6] * a + R[1] * R[7] * b + R[2] * R[8] * c,
            R[3] * R[3] * a + R[4] * R[4] * b + R[5] * R[5] * c,
            R[3] * R[6] * a + R[4] * R[7] * b + R[5] * R[8] * c,
            R[6] * R[6] * a + R[7] * R[7] * b + R[8] * R[8] * c)  # fmt: skip


def _camera_table(viewmats: np.ndarray, Ks: np.ndarray, width: int, height: int) -> np.ndarray:
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


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _view(cams, c):
    r = cams[c]
    W = (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])
    return W, r[9], r[10], r[11], r[12], r[13], r[14], r[15], r[16], r[17], r[18], r[19]


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
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


@njit(parallel=True, cache=True, error_model="numpy", fastmath=_FASTMATH)
def _project_fwd(means, quats, scales, coeffs, sh_degree, cams, width, height,
                 near, far, eps2d, means2d, conics, depths, colors, radii, n_chunks):  # fmt: skip
    N = means.shape[0]
    for chunk in prange(n_chunks):
        shb, shg = np.empty(_NB), np.empty((_NB, 3))
        for g in range(chunk * N // n_chunks, (chunk + 1) * N // n_chunks):
            _project_one(g, means, quats, scales, coeffs, sh_degree, cams, width, height,
                         near, far, eps2d, means2d, conics, depths, colors, radii, shb, shg)  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
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


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _mm3(A, B):
    """Product of two 3x3 matrices (row-major 9-tuples)."""
    return (A[0] * B[0] + A[1] * B[3] + A[2] * B[6], A[0] * B[1] + A[1] * B[4] + A[2] * B[7],
            A[0] * B[2] + A[1] * B[5] + A[2] * B[8], A[3] * B[0] + A[4] * B[3] + A[5] * B[6],
            A[3] * B[1] + A[4] * B[4] + A[5] * B[7], A[3] * B[2] + A[4] * B[5] + A[5] * B[8],
            A[6] * B[0] + A[7] * B[3] + A[8] * B[6], A[6] * B[1] + A[7] * B[4] + A[8] * B[7],
            A[6] * B[2] + A[7] * B[5] + A[8] * B[8])  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _quat_vjp(G, w, x, y, z):
    """Gradient of sum(G * R(q)) w.r.t. the unit quaternion (w, x, y, z)."""
    g00, g01, g02, g10, g11, g12, g20, g21, g22 = G
    vw = 2.0 * (-z * g01 + y * g02 + z * g10 - x * g12 - y * g20 + x * g21)
    vx = 2.0 * (y * g01 + z * g02 + y * g10 - 2.0 * x * g11 - w * g12 + z * g20 + w * g21 - 2.0 * x * g22)
    vy = 2.0 * (-2.0 * y * g00 + x * g01 + w * g02 + x * g10 + z * g12 - w * g20 + z * g21 - 2.0 * y * g22)
    vz = 2.0 * (-2.0 * z * g00 - w * g01 + x * g02 + w * g10 - 2.0 * z * g11 + y * g12 + x * g20 + y * g21)
    return vw, vx, vy, vz


@njit(parallel=True, cache=True, error_model="numpy", fastmath=_FASTMATH)
def _project_bwd(means, quats, scales, coeffs, sh_degree, cams, width, height, eps2d,
                 radii, v_means2d, v_conics, v_depths, v_colors, v_means, v_quats, v_scales, v_coeffs,
                 n_chunks):  # fmt: skip
    N = means.shape[0]
    for chunk in prange(n_chunks):
        shb, shg = np.empty(_NB), np.empty((_NB, 3))
        for g in range(chunk * N // n_chunks, (chunk + 1) * N // n_chunks):
            _project_one_bwd(g, means, quats, scales, coeffs, sh_degree, cams, width, height,
                             eps2d, radii, v_means2d, v_conics, v_depths, v_colors, v_means, v_quats, v_scales,
                             v_coeffs, shb, shg)  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
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


# --------------------------------------------------------------------------------------------------
# Per (camera, Gaussian) records and binning into depth-sorted tile lists
# --------------------------------------------------------------------------------------------------

ALPHA_MAX, ALPHA_MIN, T_MIN = 0.999, 1.0 / 255.0, 1e-4  # gsplat's thresholds
_EXTENT_MARGIN = 0.01  # power margin of the region a Gaussian can reach (conservative; exact tests follow)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _pack(means2d, conics, colors, depths, opacities, radii, packed):
    """Per (camera, Gaussian) record. TH: the power below which alpha can reach 1/255 (plus a margin);
    EX, EY: that ellipse's half-width and half-height; all -1 when the Gaussian cannot contribute."""
    C, N = radii.shape
    for c in range(C):
        for g in range(N):
            op = opacities[g]
            qa, qb, qc = conics[c, g, 0], conics[c, g, 1], conics[c, g, 2]
            rec = packed[c, g]
            rec[_MX], rec[_MY], rec[_QA], rec[_QB], rec[_QC] = means2d[c, g, 0], means2d[c, g, 1], qa, qb, qc
            rec[_OP], rec[_R], rec[_G], rec[_B] = op, colors[c, g, 0], colors[c, g, 1], colors[c, g, 2]
            rec[_Z] = depths[c, g]
            rec[_TH] = rec[_EX] = rec[_EY] = -1.0
            det = qa * qc - qb * qb
            if radii[c, g] <= 0 or op <= 0.0 or det <= 0.0:
                continue
            # alpha >= 1/255  <=>  power <= log(255 op); the ellipse 0.5 d^T Q d <= t spans
            # |dx| <= sqrt(2 t Q^-1_xx), |dy| <= sqrt(2 t Q^-1_yy), Q^-1 = [[qc, -qb], [-qb, qa]] / det.
            t = math.log(255.0 * op) + _EXTENT_MARGIN
            if t >= 0.0:
                rec[_TH] = t
                rec[_EX] = math.sqrt(2.0 * t * qc / det) + 1e-3
                rec[_EY] = math.sqrt(2.0 * t * qa / det) + 1e-3


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _tile_rect(rec, radius, tiles_x, tiles_y):
    """Tiles [x0, x1) x [y0, y1) a Gaussian is listed in.

    gsplat's rule (isect_tiles): the tiles its 3-sigma square touches. Tiles outside the ellipse where
    its alpha can reach 1/255 are dropped: every pixel there would skip it, so results are unchanged.
    """
    mx, my, ex, ey = rec[_MX], rec[_MY], rec[_EX], rec[_EY]
    tr = radius / TILE
    x0 = max(math.floor(mx / TILE - tr), math.floor(math.ceil(mx - ex - 0.5) / TILE))
    x1 = min(math.ceil(mx / TILE + tr), math.floor(math.floor(mx + ex - 0.5) / TILE) + 1)
    y0 = max(math.floor(my / TILE - tr), math.floor(math.ceil(my - ey - 0.5) / TILE))
    y1 = min(math.ceil(my / TILE + tr), math.floor(math.floor(my + ey - 0.5) / TILE) + 1)
    x0, x1 = int(min(max(x0, 0.0), tiles_x)), int(min(max(x1, 0.0), tiles_x))
    y0, y1 = int(min(max(y0, 0.0), tiles_y)), int(min(max(y1, 0.0), tiles_y))
    return x0, x1, y0, y1


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _depth_order(depths):
    """Stable front-to-back argsort of each camera's depths (C, N): an LSD radix sort on the float
    bits (3 passes of 11 bits), which orders non-negative float32 like their values (culled = 0)."""
    C, N = depths.shape
    order = np.empty((C, N), np.int32)
    tmp = np.empty(N, np.int32)
    count = np.empty(2049, np.int64)
    for c in range(C):
        keys = depths[c].view(np.uint32)
        for i in range(N):
            order[c, i] = i
        src, dst = order[c], tmp
        for shift in range(0, 33, 11):
            count[:] = 0
            bits = np.uint32(shift)  # keep the arithmetic uint32: mixed types slow numba's typing a lot
            for i in range(N):
                count[np.int64((keys[src[i]] >> bits) & np.uint32(2047)) + 1] += 1
            for b in range(2048):
                count[b + 1] += count[b]
            for i in range(N):
                d = np.int64((keys[src[i]] >> bits) & np.uint32(2047))
                dst[count[d]] = src[i]
                count[d] += 1
            src, dst = dst, src
        order[c, :] = src  # after 3 (odd) passes the result sits in tmp
    return order


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _bin_tiles(packed, radii, order, tiles_x, tiles_y):
    """Depth-sorted tile lists (``order`` is a per-camera front-to-back argsort).

    Returns ``offsets`` (C * tiles + 1), ``ids`` and ``recs``: tile t of camera c holds the Gaussians
    ``ids[offsets[c * tiles + t] : offsets[c * tiles + t + 1]]``, front to back, and ``recs`` holds
    their records in the same order, so the compositing kernels read memory sequentially.
    """
    C, N = radii.shape
    n_tiles = tiles_x * tiles_y
    # Records in depth order first: one pass of random reads the CPU can overlap, then sequential passes.
    srt = np.empty_like(packed)
    srt_radii = np.empty((C, N), np.int32)
    for c in range(C):
        for i in range(N):
            g = order[c, i]
            srt_radii[c, i] = radii[c, g]
            for q in range(_PACK):
                srt[c, i, q] = packed[c, g, q]
    offsets = np.zeros(C * n_tiles + 1, np.int64)
    for c in range(C):
        for i in range(N):
            if srt[c, i, _TH] >= 0.0:
                x0, x1, y0, y1 = _tile_rect(srt[c, i], srt_radii[c, i], tiles_x, tiles_y)
                for ty in range(y0, y1):
                    for tx in range(x0, x1):
                        offsets[c * n_tiles + ty * tiles_x + tx + 1] += 1
    for t in range(C * n_tiles):
        offsets[t + 1] += offsets[t]
    cursor = offsets[:-1].copy()
    ids = np.empty(offsets[-1], np.int32)
    recs = np.empty((offsets[-1], _PACK), np.float32)
    for c in range(C):
        for i in range(N):
            if srt[c, i, _TH] >= 0.0:
                x0, x1, y0, y1 = _tile_rect(srt[c, i], srt_radii[c, i], tiles_x, tiles_y)
                for ty in range(y0, y1):
                    for tx in range(x0, x1):
                        t = c * n_tiles + ty * tiles_x + tx
                        k = cursor[t]
                        ids[k] = order[c, i]
                        for q in range(_EY + 1):
                            recs[k, q] = srt[c, i, q]
                        cursor[t] = k + 1
    return offsets, ids, recs


# --------------------------------------------------------------------------------------------------
# Compositing: forward (front to back) and backward (back to front)
# --------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _rows(rec, y0, y1):
    """Rows of the tile [y0, y1) whose pixel centres lie within the ellipse's half-height."""
    my, ey = rec[_MY], rec[_EY]
    return max(y0, math.ceil(my - ey - 0.5)), min(y1 - 1, math.floor(my + ey - 0.5))


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _row_span(rec, dy, x0, x1):
    """Columns of the tile [x0, x1) where power <= TH on the row at offset dy = my - py.

    ``0.5 (qa dx^2 + qc dy^2) + qb dx dy <= t`` is a quadratic in dx = mx - px; its roots bound the
    span (widened by 1e-3 px; the exact alpha tests follow in the caller).
    """
    qa, qb, qc, t = rec[_QA], rec[_QB], rec[_QC], rec[_TH]
    disc = (qb * dy) * (qb * dy) - qa * (qc * dy * dy - 2.0 * t)
    if disc < 0.0:
        return x0, x0 - 1
    root = math.sqrt(disc)
    lo, hi = (-qb * dy - root) / qa, (-qb * dy + root) / qa  # dx range
    mx = rec[_MX]
    return max(x0, math.ceil(mx - hi - 0.5 - 1e-3)), min(x1 - 1, math.floor(mx - lo - 0.5 + 1e-3))


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _tile_bounds(tile, n_tiles, tiles_x, width, height):
    c = tile // n_tiles
    t = tile - c * n_tiles
    ty, tx = t // tiles_x, t % tiles_x
    x0, y0 = tx * TILE, ty * TILE
    return c, x0, min(x0 + TILE, width), y0, min(y0 + TILE, height)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _tile_fwd(
    tile, recs, offsets, width, height, tiles_x, tiles_y, out_acc, out_T, out_last, T, acc, last, done
):
    """Front-to-back compositing of one tile (Kerbl et al. 2023, Eq. 3) with gsplat's thresholds."""
    c, x0, x1, y0, y1 = _tile_bounds(tile, tiles_x * tiles_y, tiles_x, width, height)
    n_pix = (x1 - x0) * (y1 - y0)
    T[:] = 1.0
    acc[:] = 0.0
    last[:] = -1
    done[:] = False
    n_done = 0
    for k in range(offsets[tile], offsets[tile + 1]):
        rec = recs[k]
        mx, my, qa, qb, qc, op = rec[_MX], rec[_MY], rec[_QA], rec[_QB], rec[_QC], rec[_OP]
        ia, ib = _rows(rec, y0, y1)
        for i in range(ia, ib + 1):
            dy = my - (i + 0.5)
            ja, jb = _row_span(rec, dy, x0, x1)
            for j in range(ja, jb + 1):
                p = (i - y0) * TILE + (j - x0)
                if done[p]:
                    continue
                dx = mx - (j + 0.5)
                power = 0.5 * (qa * dx * dx + qc * dy * dy) + qb * dx * dy
                if power < 0.0:
                    continue
                alpha = min(ALPHA_MAX, op * math.exp(-power))
                if alpha < ALPHA_MIN:
                    continue
                t_next = T[p] * (1.0 - alpha)
                if t_next <= T_MIN:  # this pixel is done; this Gaussian is left out
                    done[p] = True
                    n_done += 1
                    continue
                w = alpha * T[p]
                acc[p, 0] += w * rec[_R]
                acc[p, 1] += w * rec[_G]
                acc[p, 2] += w * rec[_B]
                acc[p, 3] += w * rec[_Z]
                T[p] = t_next
                last[p] = k
        if n_done >= n_pix:
            break
    for i in range(y0, y1):
        for j in range(x0, x1):
            p = (i - y0) * TILE + (j - x0)
            for ch in range(4):
                out_acc[c, i, j, ch] = acc[p, ch]
            out_T[c, i, j] = T[p]
            out_last[c, i, j] = last[p]


@njit(parallel=True, cache=True, error_model="numpy", fastmath=_FASTMATH)
def _raster_fwd(recs, offsets, n_views, width, height, tiles_x, tiles_y, n_chunks, out_acc, out_T, out_last):
    n_all = n_views * tiles_x * tiles_y
    for chunk in prange(n_chunks):
        T, last = np.empty(TILE * TILE), np.empty(TILE * TILE, np.int64)
        acc, done = np.empty((TILE * TILE, 4)), np.empty(TILE * TILE, np.bool_)
        for tile in range(chunk, n_all, n_chunks):  # strided: spreads busy tiles over the threads
            _tile_fwd(tile, recs, offsets, width, height, tiles_x, tiles_y, out_acc, out_T, out_last,
                      T, acc, last, done)  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _tile_bwd(tile, recs, offsets, width, height, tiles_x, tiles_y, T_final, last_ids, v_acc, v_T, v_recs,
              T, t_fin, buf, last, vacc, vfin):  # fmt: skip
    """Back-to-front gradients of one tile; the gradient of list entry k goes to v_recs[k]."""
    c, x0, x1, y0, y1 = _tile_bounds(tile, tiles_x * tiles_y, tiles_x, width, height)
    k_max = -1
    last[:] = -1
    for i in range(y0, y1):
        for j in range(x0, x1):
            p = (i - y0) * TILE + (j - x0)
            T[p] = t_fin[p] = T_final[c, i, j]
            last[p] = last_ids[c, i, j]
            k_max = max(k_max, last[p])
            for ch in range(4):
                vacc[p, ch] = v_acc[c, i, j, ch]
                buf[p, ch] = 0.0
            vfin[p] = v_T[c, i, j]
    v_recs[max(k_max + 1, offsets[tile]) : offsets[tile + 1]] = 0.0  # behind every pixel's last
    for k in range(k_max, offsets[tile] - 1, -1):
        rec = recs[k]
        mx, my, qa, qb, qc, op = rec[_MX], rec[_MY], rec[_QA], rec[_QB], rec[_QC], rec[_OP]
        cr, cg, cb, cz = rec[_R], rec[_G], rec[_B], rec[_Z]
        ia, ib = _rows(rec, y0, y1)
        g_mx = g_my = g_qa = g_qb = g_qc = g_op = g_r = g_g = g_b = g_z = 0.0
        for i in range(ia, ib + 1):
            dy = my - (i + 0.5)
            ja, jb = _row_span(rec, dy, x0, x1)
            for j in range(ja, jb + 1):
                p = (i - y0) * TILE + (j - x0)
                if k > last[p]:
                    continue
                dx = mx - (j + 0.5)
                power = 0.5 * (qa * dx * dx + qc * dy * dy) + qb * dx * dy
                if power < 0.0:
                    continue
                vis = math.exp(-power)
                alpha = min(ALPHA_MAX, op * vis)
                if alpha < ALPHA_MIN:
                    continue
                ra = 1.0 / (1.0 - alpha)
                T[p] *= ra  # transmittance in front of this Gaussian (gsplat recovers it the same way)
                fac = alpha * T[p]
                g_r += fac * vacc[p, 0]
                g_g += fac * vacc[p, 1]
                g_b += fac * vacc[p, 2]
                g_z += fac * vacc[p, 3]
                # d acc / d alpha = c T - (what lies behind) / (1 - alpha); T_final = prod (1 - alpha_j)
                # gives d T_final / d alpha = -T_final / (1 - alpha).
                v_alpha = ((cr * T[p] - buf[p, 0] * ra) * vacc[p, 0] + (cg * T[p] - buf[p, 1] * ra) * vacc[p, 1]
                           + (cb * T[p] - buf[p, 2] * ra) * vacc[p, 2] + (cz * T[p] - buf[p, 3] * ra) * vacc[p, 3]
                           - t_fin[p] * ra * vfin[p])  # fmt: skip
                if op * vis <= ALPHA_MAX:  # alpha not clamped
                    v_power = -op * vis * v_alpha
                    g_qa += 0.5 * v_power * dx * dx
                    g_qb += v_power * dx * dy
                    g_qc += 0.5 * v_power * dy * dy
                    g_mx += v_power * (qa * dx + qb * dy)
                    g_my += v_power * (qb * dx + qc * dy)
                    g_op += vis * v_alpha
                buf[p, 0] += cr * fac
                buf[p, 1] += cg * fac
                buf[p, 2] += cb * fac
                buf[p, 3] += cz * fac
        v = v_recs[k]
        v[0], v[1], v[2], v[3], v[4] = g_mx, g_my, g_qa, g_qb, g_qc
        v[5], v[6], v[7], v[8], v[9] = g_op, g_r, g_g, g_b, g_z


@njit(parallel=True, cache=True, error_model="numpy", fastmath=_FASTMATH)
def _raster_bwd(recs, offsets, n_views, width, height, tiles_x, tiles_y, n_chunks, T_final, last_ids,
                v_acc, v_T, v_recs):  # fmt: skip
    n_all = n_views * tiles_x * tiles_y
    for chunk in prange(n_chunks):
        T, t_fin, vfin = np.empty(TILE * TILE), np.empty(TILE * TILE), np.empty(TILE * TILE)
        buf, vacc = np.empty((TILE * TILE, 4)), np.empty((TILE * TILE, 4))
        last = np.empty(TILE * TILE, np.int64)
        for tile in range(chunk, n_all, n_chunks):
            _tile_bwd(tile, recs, offsets, width, height, tiles_x, tiles_y, T_final, last_ids, v_acc, v_T,
                      v_recs, T, t_fin, buf, last, vacc, vfin)  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _gather_grads(v_recs, ids, offsets, tiles_per_view, grads):
    """Sum the per-list-entry gradients into grads (C, N, 10)."""
    for c in range(grads.shape[0]):
        for k in range(offsets[c * tiles_per_view], offsets[(c + 1) * tiles_per_view]):
            g = ids[k]
            for q in range(_NGRAD):
                grads[c, g, q] += v_recs[k, q]


# --------------------------------------------------------------------------------------------------
# Autograd glue
# --------------------------------------------------------------------------------------------------


# Below this much work (camera-Gaussian pairs, or tile-list entries + pixels) a kernel runs on one
# thread: a parallel region costs a wake-up and a barrier, which on a busy machine can take
# milliseconds when a worker thread is not scheduled.
_PARALLEL_MIN_WORK = 16_384


@contextmanager
def _threads(work: int):
    """Run the enclosed numba kernels on all numba threads, or on one for small work; yields the count."""
    before = numba.get_num_threads()
    n = before if work >= _PARALLEL_MIN_WORK else 1
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(before)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


class _Project(torch.autograd.Function):
    """(means, quats, scales, colours/SH) -> per-camera (means2d, conics, depths, colours, radii)."""

    @staticmethod
    def forward(ctx, means, quats, scales, coeffs, cams, settings):
        sh_degree, width, height, near, far, eps2d = settings
        C, N = cams.shape[0], means.shape[0]
        means2d = np.empty((C, N, 2), np.float32)
        conics = np.empty((C, N, 3), np.float32)
        depths = np.empty((C, N), np.float32)
        colors = np.zeros((C, N, 3), np.float32)
        radii = np.empty((C, N), np.int32)
        with _threads(C * N) as n_threads:
            _project_fwd(_np(means), _np(quats), _np(scales), _np(coeffs), sh_degree, cams, width, height, near,
                         far, eps2d, means2d, conics, depths, colors, radii, n_threads)  # fmt: skip
        radii_t = torch.from_numpy(radii)
        ctx.save_for_backward(means, quats, scales, coeffs, radii_t)
        ctx.cams, ctx.settings = cams, settings
        ctx.mark_non_differentiable(radii_t)
        return (torch.from_numpy(means2d), torch.from_numpy(conics), torch.from_numpy(depths),
                torch.from_numpy(colors), radii_t)  # fmt: skip

    @staticmethod
    def backward(ctx, v_means2d, v_conics, v_depths, v_colors, _v_radii):
        means, quats, scales, coeffs, radii = ctx.saved_tensors
        sh_degree, width, height, _near, _far, eps2d = ctx.settings
        v_means = np.empty(tuple(means.shape), np.float32)
        v_quats = np.empty(tuple(quats.shape), np.float32)
        v_scales = np.empty(tuple(scales.shape), np.float32)
        v_coeffs = np.zeros(tuple(coeffs.shape), np.float32)
        with _threads(radii.numel()) as n_threads:
            _project_bwd(_np(means), _np(quats), _np(scales), _np(coeffs), sh_degree, ctx.cams, width, height,
                         eps2d, radii.numpy(), _np(v_means2d.float()), _np(v_conics.float()), _np(v_depths.float()),
                         _np(v_colors.float()), v_means, v_quats, v_scales, v_coeffs, n_threads)  # fmt: skip
        out = [torch.from_numpy(a) for a in (v_means, v_quats, v_scales, v_coeffs)]
        return (*out, None, None)


class _Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, conics, colors, depths, opacities, radii, size):
        width, height = size
        C, N = radii.shape
        tiles_x, tiles_y = math.ceil(width / TILE), math.ceil(height / TILE)
        radii_np = radii.numpy()
        packed = np.empty((C, N, _PACK), np.float32)
        _pack(_np(means2d), _np(conics), _np(colors), _np(depths), _np(opacities), radii_np, packed)
        order = _depth_order(_np(depths))  # front to back
        offsets, ids, recs = _bin_tiles(packed, radii_np, order, tiles_x, tiles_y)
        acc = np.empty((C, height, width, 4), np.float32)
        T_final = np.empty((C, height, width), np.float32)
        last = np.empty((C, height, width), np.int64)
        with _threads(len(ids) + C * width * height) as n_threads:
            _raster_fwd(recs, offsets, C, width, height, tiles_x, tiles_y, n_threads, acc, T_final, last)
        ctx.state = (recs, offsets, ids, T_final, last, (C, N), size, tiles_x, tiles_y)
        return torch.from_numpy(acc), torch.from_numpy(T_final)

    @staticmethod
    def backward(ctx, v_acc, v_T):
        recs, offsets, ids, T_final, last, (C, N), (width, height), tiles_x, tiles_y = ctx.state
        v_acc = np.zeros((C, height, width, 4), np.float32) if v_acc is None else _np(v_acc.float())
        v_T = np.zeros((C, height, width), np.float32) if v_T is None else _np(v_T.float())
        v_recs = np.empty((recs.shape[0], _NGRAD), np.float32)
        with _threads(len(ids) + C * width * height) as n_threads:
            _raster_bwd(
                recs,
                offsets,
                C,
                width,
                height,
                tiles_x,
                tiles_y,
                n_threads,
                T_final,
                last,
                v_acc,
                v_T,
                v_recs,
            )
        grads = np.zeros((C, N, _NGRAD), np.float32)
        _gather_grads(v_recs, ids, offsets, tiles_x * tiles_y, grads)
        g = torch.from_numpy(grads)
        return g[..., 0:2], g[..., 2:5], g[..., 6:9], g[..., 9], g[..., 5].sum(0), None, None


def rasterize_tiled(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    backgrounds: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Colours (C,H,W,3), alphas (C,H,W,1), expected depths (C,H,W,1), means2d (C,N,2), radii (C,N).

    CPU float32 (other float dtypes are cast, with gradients cast back by autograd). No gradient
    flows to the cameras (``viewmats``, ``Ks``).
    """
    if viewmats.requires_grad or Ks.requires_grad:
        raise ValueError(
            "the tiled rasterizer has no camera gradients: pass viewmats/Ks without requires_grad"
        )
    f32 = [t.float().contiguous() for t in (means, quats, scales, opacities)]
    coeffs = colors[:, None, :] if sh_degree is None else colors[:, : (sh_degree + 1) ** 2]
    coeffs = coeffs.float().contiguous()
    cams = _camera_table(_np(viewmats), _np(Ks), width, height)
    settings = (
        -1 if sh_degree is None else sh_degree,
        width,
        height,
        float(near_plane),
        float(far_plane),
        float(eps2d),
    )
    means2d, conics, depths, rgb, radii = _Project.apply(f32[0], f32[1], f32[2], coeffs, cams, settings)
    if means2d.requires_grad:
        means2d.retain_grad()
    acc, trans = _Rasterize.apply(means2d, conics, rgb, depths, f32[3], radii, (width, height))
    alphas = (1.0 - trans)[..., None]
    out = acc[..., :3]
    if backgrounds is not None:
        out = out + trans[..., None] * backgrounds.float()[:, None, None, :]
    depth = acc[..., 3:] / alphas.clamp_min(1e-10)
    return out, alphas, depth, means2d, radii
