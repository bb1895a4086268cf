"""The dense reference rasterizer: every (pixel, Gaussian) pair in plain torch, autograd for gradients.

This is the obviously-correct twin of the fast backends (gsplat's "every fast op has a slow twin"):
no tiles lists, no hand-written backward, any dtype (float64 for ``gradcheck``) and any device. It is
quadratic in (pixels x Gaussians), chunked over pixels to bound memory: tiny inputs only.

It follows the conventions documented in ``gen3d.recon.rasterize`` exactly, including the one rule
that comes from tiling: a Gaussian is evaluated only at pixels of the 16x16 tiles that its 3-sigma
square ``[mean - radius, mean + radius]`` touches (gsplat's tile intersection). A Gaussian's
footprint can reach past 3 sigma (opacity 0.999 still gives alpha = 0.011 > 1/255 there), so
without this rule the reference would differ from every tiled rasterizer at footprint edges.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from gen3d.recon.projection import Projection, project_ewa
from gen3d.recon.sh import eval_sh

TILE_SIZE = 16
ALPHA_MAX = 0.999  # gsplat: alpha = min(0.999, opacity * exp(-power))
ALPHA_MIN = 1.0 / 255.0  # gsplat: skip alpha < 1/255
T_MIN = 1e-4  # gsplat: stop before transmittance would fall to <= 1e-4


def view_colors(
    means: Float[Tensor, "N 3"],
    colors: Tensor,
    viewmats: Float[Tensor, "C 4 4"],
    sh_degree: int | None,
) -> Float[Tensor, "C N 3"]:
    """Per-view colours: RGB as given, or SH evaluated along (mean - camera centre), + 0.5, clamped at 0."""
    C = viewmats.shape[0]
    if sh_degree is None:
        return colors[None].expand(C, -1, -1)
    cam_centres = torch.linalg.inv(viewmats)[:, :3, 3]  # C 3
    dirs = means[None] - cam_centres[:, None]  # C N 3
    rgb = eval_sh(sh_degree, dirs, colors[None].expand(C, -1, -1, -1))
    return torch.clamp_min(rgb + 0.5, 0.0)  # gsplat / INRIA: +0.5 offset, clamp at 0


def tile_rects(means2d: Tensor, radii: Tensor, width: int, height: int) -> Tensor:
    """Tile rectangle [x0, y0, x1, y1) each Gaussian touches (gsplat's ``isect_tiles`` rule), C N 4."""
    tw, th = math.ceil(width / TILE_SIZE), math.ceil(height / TILE_SIZE)
    m = means2d.detach() / TILE_SIZE
    r = radii.to(m.dtype) / TILE_SIZE
    lo = torch.floor(m - r[..., None]).long()
    hi = torch.ceil(m + r[..., None]).long()
    x0, x1 = lo[..., 0].clamp(0, tw), hi[..., 0].clamp(0, tw)
    y0, y1 = lo[..., 1].clamp(0, th), hi[..., 1].clamp(0, th)
    return torch.stack([x0, y0, x1, y1], dim=-1)


def pixel_contributions(
    means2d: Float[Tensor, "M 2"],
    conics: Float[Tensor, "M 3"],
    opacities: Float[Tensor, " M"],
    rects: Tensor,
    pix: Tensor,
    width: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """For pixels ``pix`` (flat indices) and M depth-sorted Gaussians, (P, M) each: alpha (0 where a pair is
    skipped), transmittance after each Gaussian, transmittance before it, and whether it is composited."""
    py, px = pix // width, pix % width
    dx = means2d[None, :, 0] - (px[:, None].to(means2d.dtype) + 0.5)  # pixel centres at +0.5
    dy = means2d[None, :, 1] - (py[:, None].to(means2d.dtype) + 0.5)
    power = 0.5 * (conics[:, 0] * dx * dx + conics[:, 2] * dy * dy) + conics[:, 1] * dx * dy
    alpha = torch.clamp(opacities * torch.exp(-power), max=ALPHA_MAX)
    tx, ty = (px // TILE_SIZE)[:, None], (py // TILE_SIZE)[:, None]
    in_tile = (tx >= rects[:, 0]) & (tx < rects[:, 2]) & (ty >= rects[:, 1]) & (ty < rects[:, 3])
    eligible = in_tile & (power >= 0) & (alpha >= ALPHA_MIN)
    a = torch.where(eligible, alpha, torch.zeros_like(alpha))
    trans = torch.cumprod(1 - a, dim=1)
    t_before = torch.cat([torch.ones_like(trans[:, :1]), trans[:, :-1]], dim=1)
    # The first eligible Gaussian that would take T to <= 1e-4 stops the pixel; it and every
    # later one are left out (gsplat: "this pixel is done: exclusive").
    stops = eligible & (t_before * (1 - a) <= T_MIN)
    included = eligible & (torch.cumsum(stops.int(), dim=1) == 0)
    return a, trans, t_before, included


def composite_view(
    means2d: Float[Tensor, "M 2"],
    conics: Float[Tensor, "M 3"],
    features: Float[Tensor, "M D"],
    opacities: Float[Tensor, " M"],
    rects: Tensor,
    width: int,
    height: int,
    pixel_chunk: int = 4096,
) -> tuple[Float[Tensor, "H W D"], Float[Tensor, "H W"]]:
    """Front-to-back compositing of M depth-sorted Gaussians (Kerbl et al. 2023, Eq. 3).

    Returns the accumulated features ``sum_i f_i alpha_i T_i`` and the final transmittance
    ``prod_i (1 - alpha_i)`` over the Gaussians that contribute to each pixel.
    """
    acc_chunks, t_chunks = [], []
    n_pix = width * height
    for start in range(0, n_pix, pixel_chunk):
        pix = torch.arange(start, min(start + pixel_chunk, n_pix), device=means2d.device)
        a, _, t_before, included = pixel_contributions(means2d, conics, opacities, rects, pix, width)
        weights = torch.where(included, a * t_before, torch.zeros_like(a))
        acc_chunks.append(weights @ features)
        t_chunks.append(torch.prod(1 - torch.where(included, a, torch.zeros_like(a)), dim=1))
    acc = torch.cat(acc_chunks).reshape(height, width, -1)
    return acc, torch.cat(t_chunks).reshape(height, width)


def rasterize_dense(
    means: Float[Tensor, "N 3"],
    quats: Float[Tensor, "N 4"],
    scales: Float[Tensor, "N 3"],
    opacities: Float[Tensor, " N"],
    colors: Tensor,
    viewmats: Float[Tensor, "C 4 4"],
    Ks: Float[Tensor, "C 3 3"],
    width: int,
    height: int,
    sh_degree: int | None,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    backgrounds: Float[Tensor, "C 3"] | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Colours (C,H,W,3), alphas (C,H,W,1), expected depths (C,H,W,1), means2d (C,N,2), radii (C,N)."""
    proj: Projection = project_ewa(
        means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d
    )
    means2d = proj.means2d
    if means2d.requires_grad:
        means2d.retain_grad()
    rgb = view_colors(means, colors, viewmats, sh_degree)
    rects = tile_rects(means2d, proj.radii, width, height)
    out_rgb, out_alpha, out_depth = [], [], []
    for c in range(viewmats.shape[0]):
        visible = torch.nonzero(proj.radii[c] > 0).flatten()
        # Front to back by camera-space depth; ties keep index order (a stable sort).
        order = visible[torch.sort(proj.depths[c, visible].detach(), stable=True).indices]
        feats = torch.cat([rgb[c, order], proj.depths[c, order, None]], dim=-1)  # RGB + depth
        acc, trans = composite_view(
            means2d[c, order], proj.conics[c, order], feats, opacities[order], rects[c, order], width, height
        )
        alpha = 1 - trans
        colour = acc[..., :3]
        if backgrounds is not None:
            colour = colour + trans[..., None] * backgrounds[c]
        out_rgb.append(colour)
        out_alpha.append(alpha[..., None])
        out_depth.append(acc[..., 3:] / alpha[..., None].clamp_min(1e-10))  # expected depth ("ED")
    return torch.stack(out_rgb), torch.stack(out_alpha), torch.stack(out_depth), means2d, proj.radii


@torch.no_grad()
def median_depth_dense(
    means: Float[Tensor, "N 3"],
    quats: Float[Tensor, "N 4"],
    scales: Float[Tensor, "N 3"],
    opacities: Float[Tensor, " N"],
    viewmats: Float[Tensor, "C 4 4"],
    Ks: Float[Tensor, "C 3 3"],
    width: int,
    height: int,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    level: float = 0.5,
    pixel_chunk: int = 2048,
) -> Float[Tensor, "C H W"]:
    """Per pixel, the camera depth of the Gaussian at which the accumulated opacity first reaches
    ``level`` (the median depth at 0.5), 0 where it never does. Same compositing rules as
    :func:`composite_view` (the Gaussians a pixel skips or stops before do not count). Any device;
    quadratic in pixels x Gaussians, chunked over pixels."""
    proj = project_ewa(means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d)
    rects = tile_rects(proj.means2d, proj.radii, width, height)
    n_pix = width * height
    out = torch.zeros(viewmats.shape[0], n_pix, dtype=means.dtype, device=means.device)
    for c in range(viewmats.shape[0]):
        visible = torch.nonzero(proj.radii[c] > 0).flatten()
        order = visible[torch.sort(proj.depths[c, visible], stable=True).indices]
        m2, con, z, op, rc = proj.means2d[c, order], proj.conics[c, order], proj.depths[c, order], opacities[order], rects[c, order]
        if len(order) == 0:
            continue
        for start in range(0, n_pix, pixel_chunk):
            pix = torch.arange(start, min(start + pixel_chunk, n_pix), device=means.device)
            _, trans, _, included = pixel_contributions(m2, con, op, rc, pix, width)
            reached = included & (trans <= 1 - level)
            first = reached.to(torch.uint8).argmax(dim=1)
            out[c, pix] = torch.where(reached.any(dim=1), z[first], torch.zeros_like(z[first]))
    return out.reshape(-1, height, width)
