"""Real spherical harmonics up to degree 3, in the basis and sign convention 3DGS and gsplat use.

A Gaussian's view-dependent colour is ``c(d) = sum_k B_k(d) * sh_k`` over the ``(degree + 1)^2``
bases ``B_k`` of the unit view direction ``d`` (Kerbl et al. 2023, Sec. 4; the polynomial forms of
Sloan 2013, "Efficient Spherical Harmonic Evaluation", JCGT 2(2)), DC first. gsplat's
``rasterization`` then adds 0.5 and clamps at 0 (``max(c + 0.5, 0)``), to match the INRIA code;
the rasterizers here do the same (see ``gen3d.recon.rasterize``).

Two twins live here: ``eval_sh`` (vectorised torch, autograd gives its gradient; the dense
reference rasterizer uses it) and ``sh_bases_into`` / ``sh_bases_grad_into`` (the bases and their gradients at
one scalar direction, plain Python that numba compiles inside the fast CPU rasterizer's kernels). The
tests check them against each other and against gsplat's pure-torch implementation.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

MAX_SH_DEGREE = 3

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
# Degree 2 (Sloan's constants): B4 = C2a * 2xy, B5 = -C2b yz, B6 = C2c z^2 - C2d, B7 = -C2b xz,
# B8 = C2a (x^2 - y^2).
SH_C2A = 0.5462742152960395
SH_C2B = 1.0925484305920792
SH_C2C = 0.9461746957575601
SH_C2D = 0.3153915652525201
# Degree 3: B9 = -C3a (3x^2 y - y^3), B10 = C3b z 2xy, B11 = (-C3c z^2 + C3d) y,
# B12 = z (C3e z^2 - C3f), B13 = (-C3c z^2 + C3d) x, B14 = C3b z (x^2 - y^2), B15 = -C3a (x^3 - 3xy^2).
SH_C3A = 0.5900435899266435
SH_C3B = 1.445305721320277
SH_C3C = 2.285228997322329
SH_C3D = 0.4570457994644658
SH_C3E = 1.865881662950577
SH_C3F = 1.119528997770346


def check_sh_degree(sh_degree: int, num_coeffs: int) -> None:
    if not 0 <= sh_degree <= MAX_SH_DEGREE:
        raise ValueError(f"sh_degree must be in [0, {MAX_SH_DEGREE}], got {sh_degree}")
    if (sh_degree + 1) ** 2 > num_coeffs:
        raise ValueError(
            f"sh_degree={sh_degree} needs {(sh_degree + 1) ** 2} SH coefficients per Gaussian, "
            f"the colours have {num_coeffs}"
        )


def sh_bases(degree: int, dirs: Float[Tensor, "... 3"]) -> Float[Tensor, "... K"]:
    """The ``(degree + 1)^2`` real SH bases at unit directions ``dirs``."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        out += [
            SH_C2A * 2 * x * y,
            -SH_C2B * y * z,
            SH_C2C * z * z - SH_C2D,
            -SH_C2B * x * z,
            SH_C2A * (x * x - y * y),
        ]
    if degree >= 3:
        zz = -SH_C3C * z * z + SH_C3D
        out += [
            -SH_C3A * (3 * x * x * y - y * y * y),
            SH_C3B * z * 2 * x * y,
            zz * y,
            z * (SH_C3E * z * z - SH_C3F),
            zz * x,
            SH_C3B * z * (x * x - y * y),
            -SH_C3A * (x * x * x - 3 * x * y * y),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(
    degree: int, dirs: Float[Tensor, "... 3"], coeffs: Float[Tensor, "... K 3"]
) -> Float[Tensor, "... 3"]:
    """Colour ``sum_k B_k(d) coeffs_k`` for (not necessarily unit) directions; uses the first
    ``(degree + 1)^2`` coefficients. Differentiable in ``dirs`` and ``coeffs`` (plain autograd)."""
    check_sh_degree(degree, coeffs.shape[-2])
    d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    bases = sh_bases(degree, d)  # ... K
    return (bases[..., None] * coeffs[..., : bases.shape[-1], :]).sum(dim=-2)


def sh_bases_into(degree: int, x: float, y: float, z: float, b) -> None:
    """Write the bases ``B_k`` at the unit direction (x, y, z) into ``b[k]``, k < (degree + 1)^2.

    Straight-line scalar code for numba (``gen3d.recon.rasterize_tiled`` compiles it).
    """
    b[0] = SH_C0
    if degree < 1:
        return
    b[1], b[2], b[3] = -SH_C1 * y, SH_C1 * z, -SH_C1 * x
    if degree < 2:
        return
    b[4] = 2.0 * SH_C2A * x * y
    b[5] = -SH_C2B * y * z
    b[6] = SH_C2C * z * z - SH_C2D
    b[7] = -SH_C2B * x * z
    b[8] = SH_C2A * (x * x - y * y)
    if degree < 3:
        return
    b[9] = -SH_C3A * (3.0 * x * x * y - y * y * y)
    b[10] = 2.0 * SH_C3B * x * y * z
    zz = -SH_C3C * z * z + SH_C3D
    b[11] = zz * y
    b[12] = z * (SH_C3E * z * z - SH_C3F)
    b[13] = zz * x
    b[14] = SH_C3B * z * (x * x - y * y)
    b[15] = -SH_C3A * (x * x * x - 3.0 * x * y * y)


def sh_bases_grad_into(degree: int, x: float, y: float, z: float, gb) -> None:
    """Write the gradients (dB_k/dx, dB_k/dy, dB_k/dz) of the bases into ``gb[k]``.

    The gradient is of the polynomial as written; callers project it onto the sphere's tangent plane
    (the direction is normalised before evaluation), which removes the difference between
    equivalent forms such as ``3z^2 - 1`` and ``2z^2 - x^2 - y^2``.
    """
    gb[0, 0] = gb[0, 1] = gb[0, 2] = 0.0
    if degree < 1:
        return
    gb[1, 0], gb[1, 1], gb[1, 2] = 0.0, -SH_C1, 0.0
    gb[2, 0], gb[2, 1], gb[2, 2] = 0.0, 0.0, SH_C1
    gb[3, 0], gb[3, 1], gb[3, 2] = -SH_C1, 0.0, 0.0
    if degree < 2:
        return
    gb[4, 0], gb[4, 1], gb[4, 2] = 2.0 * SH_C2A * y, 2.0 * SH_C2A * x, 0.0
    gb[5, 0], gb[5, 1], gb[5, 2] = 0.0, -SH_C2B * z, -SH_C2B * y
    gb[6, 0], gb[6, 1], gb[6, 2] = 0.0, 0.0, 2.0 * SH_C2C * z
    gb[7, 0], gb[7, 1], gb[7, 2] = -SH_C2B * z, 0.0, -SH_C2B * x
    gb[8, 0], gb[8, 1], gb[8, 2] = 2.0 * SH_C2A * x, -2.0 * SH_C2A * y, 0.0
    if degree < 3:
        return
    gb[9, 0], gb[9, 1], gb[9, 2] = -6.0 * SH_C3A * x * y, -3.0 * SH_C3A * (x * x - y * y), 0.0
    gb[10, 0], gb[10, 1], gb[10, 2] = 2.0 * SH_C3B * y * z, 2.0 * SH_C3B * x * z, 2.0 * SH_C3B * x * y
    zz = -SH_C3C * z * z + SH_C3D
    gb[11, 0], gb[11, 1], gb[11, 2] = 0.0, zz, -2.0 * SH_C3C * z * y
    gb[12, 0], gb[12, 1], gb[12, 2] = 0.0, 0.0, 3.0 * SH_C3E * z * z - SH_C3F
    gb[13, 0], gb[13, 1], gb[13, 2] = zz, 0.0, -2.0 * SH_C3C * z * x
    gb[14, 0], gb[14, 1], gb[14, 2] = 2.0 * SH_C3B * x * z, -2.0 * SH_C3B * y * z, SH_C3B * (x * x - y * y)
    gb[15, 0], gb[15, 1], gb[15, 2] = -3.0 * SH_C3A * (x * x - y * y), 6.0 * SH_C3A * x * y, 0.0
