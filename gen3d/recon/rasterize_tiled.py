"""The fast CPU rasterizer: numba kernels over 16x16 tiles with a hand-written backward.

Why our own: gsplat has no CPU rasterizer (its pure-torch twin still calls CUDA to composite), and a
dense torch compositor costs ~0.5 s per step at 2k Gaussians, far too slow for fitting on a CPU.

Layering (the same stages as gsplat, each a ``torch.autograd.Function`` so autograd joins them):

1. ``_Project``: per (camera, Gaussian) EWA projection + SH colour and its backward to means,
   quats, scales and colours/SH coefficients (the numba kernels live beside their torch twin in
   ``gen3d.recon.projection``). One thread per Gaussian loops over the cameras, so per-Gaussian
   gradients need no atomics.
2. Binning (no gradient): Gaussians sorted front to back by camera depth (a stable radix sort), then
   written into per-tile lists in that order (``_bin_tiles``), so every tile list is depth-sorted
   without a per-tile sort.
3. ``_Rasterize``: front-to-back compositing per tile (``_raster_fwd``) and back-to-front gradients
   (``_raster_bwd``, transmittance recovered by division as gsplat does) to means2d, conics, colours,
   depths and opacities. Each tile-list entry gets its own gradient slot (no write races, no atomics);
   the slots are then summed per Gaussian.

Speed: each Gaussian visits only the pixels of its tile inside the ellipse where alpha can reach
1/255 (``power <= log(255 opacity)``, with a small margin; row by row, solving the quadratic for
each row's span), not all 256 pixels of the tile, and is listed only in tiles that ellipse reaches;
a tile stops when all its pixels are done; the records of each tile's list are copied into list
order so the kernels read memory sequentially. Kernels are compiled once for float32/int32 arrays
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

from gen3d.recon.projection import NUMBA_FASTMATH, camera_table, project_bwd_kernel, project_fwd_kernel

TILE = 16
# Packed per (camera, Gaussian) record read by the compositing kernels.
_MX, _MY, _QA, _QB, _QC, _OP, _R, _G, _B, _Z, _TH, _EX, _EY = range(13)
_PACK = 16  # 64-byte records (one cache line); the last three floats are padding
_NGRAD = 10  # v_mx, v_my, v_qa, v_qb, v_qc, v_op, v_r, v_g, v_b, v_z


# --------------------------------------------------------------------------------------------------
# Per (camera, Gaussian) records and binning into depth-sorted tile lists
# --------------------------------------------------------------------------------------------------

ALPHA_MAX, ALPHA_MIN, T_MIN = 0.999, 1.0 / 255.0, 1e-4  # gsplat's thresholds
_EXTENT_MARGIN = 0.01  # power margin of the region a Gaussian can reach (conservative; exact tests follow)


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
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


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
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


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
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


@njit(parallel=True, cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _bin_tiles(packed, radii, order, tiles_x, tiles_y):
    """Depth-sorted tile lists (``order`` is a per-camera front-to-back argsort); cameras in parallel.

    Returns ``offsets`` (C * tiles + 1), ``ids`` and ``recs``: tile t of camera c holds the Gaussians
    ``ids[offsets[c * tiles + t] : offsets[c * tiles + t + 1]]``, front to back, and ``recs`` holds
    their records in the same order, so the compositing kernels read memory sequentially.
    """
    C, N = radii.shape
    n_tiles = tiles_x * tiles_y
    srt = np.empty_like(packed)
    srt_radii = np.empty((C, N), np.int32)
    offsets = np.zeros(C * n_tiles + 1, np.int64)
    for c in prange(C):
        # Records in depth order first: one pass of random reads the CPU can overlap, then
        # sequential passes.
        for i in range(N):
            g = order[c, i]
            srt_radii[c, i] = radii[c, g]
            for q in range(_PACK):
                srt[c, i, q] = packed[c, g, q]
        for i in range(N):
            if srt[c, i, _TH] >= 0.0:
                x0, x1, y0, y1 = _tile_rect(srt[c, i], srt_radii[c, i], tiles_x, tiles_y)
                for ty in range(y0, y1):
                    for tx in range(x0, x1):
                        offsets[c * n_tiles + ty * tiles_x + tx + 1] += 1
    for t in range(C * n_tiles):
        offsets[t + 1] += offsets[t]
    ids = np.empty(offsets[-1], np.int32)
    recs = np.empty((offsets[-1], _PACK), np.float32)
    for c in prange(C):
        cursor = offsets[c * n_tiles : (c + 1) * n_tiles].copy()
        for i in range(N):
            if srt[c, i, _TH] >= 0.0:
                x0, x1, y0, y1 = _tile_rect(srt[c, i], srt_radii[c, i], tiles_x, tiles_y)
                for ty in range(y0, y1):
                    for tx in range(x0, x1):
                        t = ty * tiles_x + tx
                        k = cursor[t]
                        ids[k] = order[c, i]
                        for q in range(_EY + 1):
                            recs[k, q] = srt[c, i, q]
                        cursor[t] = k + 1
    return offsets, ids, recs


# --------------------------------------------------------------------------------------------------
# Compositing: forward (front to back) and backward (back to front)
# --------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _rows(rec, y0, y1):
    """Rows of the tile [y0, y1) whose pixel centres lie within the ellipse's half-height."""
    my, ey = rec[_MY], rec[_EY]
    return max(y0, math.ceil(my - ey - 0.5)), min(y1 - 1, math.floor(my + ey - 0.5))


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
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


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _tile_bounds(tile, n_tiles, tiles_x, width, height):
    c = tile // n_tiles
    t = tile - c * n_tiles
    ty, tx = t // tiles_x, t % tiles_x
    x0, y0 = tx * TILE, ty * TILE
    return c, x0, min(x0 + TILE, width), y0, min(y0 + TILE, height)


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
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


@njit(parallel=True, cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _raster_fwd(recs, offsets, n_views, width, height, tiles_x, tiles_y, n_chunks, out_acc, out_T, out_last):
    n_all = n_views * tiles_x * tiles_y
    for chunk in prange(n_chunks):
        T, last = np.empty(TILE * TILE), np.empty(TILE * TILE, np.int64)
        acc, done = np.empty((TILE * TILE, 4)), np.empty(TILE * TILE, np.bool_)
        for tile in range(chunk, n_all, n_chunks):  # strided: spreads busy tiles over the threads
            _tile_fwd(tile, recs, offsets, width, height, tiles_x, tiles_y, out_acc, out_T, out_last,
                      T, acc, last, done)  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _tile_median(tile, recs, offsets, width, height, tiles_x, tiles_y, level, out, T, done):
    """:func:`_tile_fwd`'s loop, keeping only each pixel's depth where its opacity first reaches ``level``."""
    c, x0, x1, y0, y1 = _tile_bounds(tile, tiles_x * tiles_y, tiles_x, width, height)
    n_pix = (x1 - x0) * (y1 - y0)
    T[:] = 1.0
    done[:] = False
    n_done = 0
    for i in range(y0, y1):
        for j in range(x0, x1):
            out[c, i, j] = 0.0
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
                if t_next <= T_MIN or t_next <= 1.0 - level:  # the pixel stops, or reached the level here
                    if t_next > T_MIN:
                        out[c, i, j] = rec[_Z]
                    done[p] = True
                    n_done += 1
                    continue
                T[p] = t_next
        if n_done >= n_pix:
            break


@njit(parallel=True, cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
def _raster_median(recs, offsets, n_views, width, height, tiles_x, tiles_y, n_chunks, level, out):
    n_all = n_views * tiles_x * tiles_y
    for chunk in prange(n_chunks):
        T, done = np.empty(TILE * TILE), np.empty(TILE * TILE, np.bool_)
        for tile in range(chunk, n_all, n_chunks):
            _tile_median(tile, recs, offsets, width, height, tiles_x, tiles_y, level, out, T, done)


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
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


@njit(parallel=True, cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
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


@njit(cache=True, error_model="numpy", fastmath=NUMBA_FASTMATH)
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
            project_fwd_kernel(_np(means), _np(quats), _np(scales), _np(coeffs), sh_degree, cams, width, height,
                               near, far, eps2d, means2d, conics, depths, colors, radii, n_threads)  # fmt: skip
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
            project_bwd_kernel(_np(means), _np(quats), _np(scales), _np(coeffs), sh_degree, ctx.cams, width,
                               height, eps2d, radii.numpy(), _np(v_means2d.float()), _np(v_conics.float()),
                               _np(v_depths.float()), _np(v_colors.float()), v_means, v_quats, v_scales, v_coeffs,
                               n_threads)  # fmt: skip
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
        with _threads(C * N):
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
            _raster_bwd(recs, offsets, C, width, height, tiles_x, tiles_y, n_threads, T_final, last, v_acc, v_T,
                        v_recs)  # fmt: skip
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
    cams = camera_table(_np(viewmats), _np(Ks), width, height)
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


def median_depth_tiled(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    level: float = 0.5,
) -> Tensor:
    """:func:`gen3d.recon.rasterize_dense.median_depth_dense` on the CPU kernels (C, H, W); no gradient."""
    C, N = viewmats.shape[0], means.shape[0]
    cams = camera_table(_np(viewmats.float()), _np(Ks.float()), width, height)
    means2d = np.empty((C, N, 2), np.float32)
    conics = np.empty((C, N, 3), np.float32)
    depths = np.empty((C, N), np.float32)
    colors = np.zeros((C, N, 3), np.float32)
    radii = np.empty((C, N), np.int32)
    f32 = [_np(t.float()) for t in (means, quats, scales, opacities)]
    with _threads(C * N) as n_threads:
        project_fwd_kernel(f32[0], f32[1], f32[2], np.zeros((N, 1, 3), np.float32), -1, cams, width, height,
                           float(near_plane), float(far_plane), float(eps2d), means2d, conics, depths, colors, radii,
                           n_threads)  # fmt: skip
    tiles_x, tiles_y = math.ceil(width / TILE), math.ceil(height / TILE)
    packed = np.empty((C, N, _PACK), np.float32)
    _pack(means2d, conics, colors, depths, f32[3], radii, packed)
    order = _depth_order(depths)
    with _threads(C * N):
        offsets, ids, recs = _bin_tiles(packed, radii, order, tiles_x, tiles_y)
    out = np.empty((C, height, width), np.float32)
    with _threads(len(ids) + C * width * height) as n_threads:
        _raster_median(recs, offsets, C, width, height, tiles_x, tiles_y, n_threads, float(level), out)
    return torch.from_numpy(out)
