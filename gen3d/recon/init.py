"""Initial points for fitting: the visual hull of the input masks, a random box, or a point cloud.

The visual hull (Laurentini 1994) is the set of points whose projection falls inside the object's
mask in every view that sees it. Starting Gaussians on its surface, coloured from the images,
lets a CPU fit converge in hundreds rather than thousands of steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from gen3d.cameras import Cameras


def visual_hull_points(
    cams: Cameras,
    masks: Float[Tensor, "V H W"],
    images: Float[Tensor, "V H W 3"] | None = None,
    n: int = 10_000,
    resolution: int = 96,
    bound: float = 1.0,
    threshold: float = 0.5,
    seed: int = 0,
    object_in_every_view: bool = True,
    depths: Float[Tensor, "V H W"] | None = None,
    depth_margin: float = 0.05,
    box_margin: float | None = 0.05,
    convex_margin: float | None = None,
) -> tuple[Float[Tensor, "P 3"], Float[Tensor, "P 3"]]:
    """Points on the surface of the visual hull inside the cube [-bound, bound]^3, with colours.

    A voxel survives if every view has mask >= ``threshold`` at its projection. With
    ``object_in_every_view`` (object-centric captures: every view sees the whole object) a voxel
    outside a view's frustum is carved; otherwise such a view does not vote. Surface voxels are survivors with a carved
    6-neighbour; ``n`` points are drawn from them with sub-voxel jitter. Colours are the mean of
    the images at the projected points over the views, which is exact for single-colour parts and
    a good start otherwise. Returns empty tensors if nothing survives (e.g. empty masks).

    With ``depths`` (camera z, 0 where unknown) the hull is also carved by depth (space carving,
    Kutulakos & Seitz 2000): a voxel that a view sees more than ``depth_margin`` in front of that
    view's surface is empty. Silhouettes alone leave the far side of an object bloated along each
    view's cone when the views are few; depth removes that. Colours then come only from the views
    where a point is visible (within the margin of the view's depth); points no view sees take the
    mean colour of the views that cover them, as without depth. With depths and ``box_margin`` not
    None, the hull is also clipped to the bounding box of the surface points the views see, grown by
    ``box_margin``: when every camera looks down on the object, the silhouette cones meet in a
    wedge far below its lowest visible point, which nothing else carves. With depths and
    ``convex_margin`` not None, the hull is clipped to the convex hull of the surface points inside the
    1-pixel-eroded masks, grown by the margin: that also removes the bulge toward a face no view looks
    at. ``depth_margin=inf`` turns depth carving off while depths still serve the clips and colours.
    """
    g = torch.Generator().manual_seed(seed)
    step = 2 * bound / resolution
    occ = visual_hull_occupancy(cams, masks, resolution, bound, threshold, object_in_every_view, depths, depth_margin,
                                box_margin, convex_margin)
    if not occ.any():
        return torch.empty(0, 3), torch.empty(0, 3)
    # Surface = occupied voxels with at least one empty 6-neighbour (erosion via max-pool of the complement).
    empty = (~occ).float()[None, None]
    near_empty = F.max_pool3d(F.pad(empty, (1, 1, 1, 1, 1, 1), value=1.0), 3, stride=1, padding=0)[0, 0] > 0
    surface = (occ & near_empty).reshape(-1)
    ax = torch.linspace(-bound + step / 2, bound - step / 2, resolution)
    cand = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), dim=-1).reshape(-1, 3)[surface]
    idx = torch.randint(len(cand), (n,), generator=g) if len(cand) < n else torch.randperm(len(cand), generator=g)[:n]
    pts = cand[idx] + (torch.rand(len(idx), 3, generator=g) - 0.5) * step
    if images is None:
        return pts, torch.full_like(pts, 0.5)
    cols = torch.zeros_like(pts)
    vis_margin = (depth_margin if math.isfinite(depth_margin) else step) + step
    vis_cols, vis_n = torch.zeros_like(pts), torch.zeros(len(pts))
    for v in range(len(cams)):
        uv, z = cams[v].project(pts)
        c = _sample(images[v].permute(2, 0, 1)[None].float().cpu(), uv[0], cams.width, cams.height).T
        cols += c
        if depths is not None:
            d = _sample_nearest(depths[v].float().cpu(), uv[0], cams.width, cams.height)
            vis = ((d > 0) & ((z[0] - d).abs() <= vis_margin)).float()
            vis_cols += c * vis[:, None]
            vis_n += vis
    cols = cols / len(cams)
    if depths is not None:
        seen_pts = vis_n > 0
        cols[seen_pts] = vis_cols[seen_pts] / vis_n[seen_pts, None]
    return pts, cols.clamp(0, 1)


def grid_occupied(occ: Tensor, pts: Tensor, bound: float = 1.0) -> Tensor:
    """Whether each point (..., 3) falls in an occupied voxel of ``occ`` (a grid over [-bound, bound]^3,
    indexed x, y, z); points outside the grid are not."""
    R = occ.shape[0]
    i = ((pts + bound) / (2 * bound) * R).floor().long()
    ok = ((i >= 0) & (i < R)).all(-1)
    i = i.clamp(0, R - 1)
    return ok & occ[i[..., 0], i[..., 1], i[..., 2]]


def visual_hull_occupancy(
    cams: Cameras,
    masks: Float[Tensor, "V H W"],
    resolution: int = 96,
    bound: float = 1.0,
    threshold: float = 0.5,
    object_in_every_view: bool = True,
    depths: Float[Tensor, "V H W"] | None = None,
    depth_margin: float = 0.05,
    box_margin: float | None = 0.05,
    convex_margin: float | None = None,
) -> Tensor:
    """The visual hull as a boolean voxel grid (``resolution``^3, indexed x, y, z) over [-bound, bound]^3.

    Carving, clips and arguments as in :func:`visual_hull_points`, which samples the surface of this grid.
    """
    step = 2 * bound / resolution
    ax = torch.linspace(-bound + step / 2, bound - step / 2, resolution)
    grid = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), dim=-1).reshape(-1, 3)
    inside = torch.ones(grid.shape[0], dtype=torch.bool)
    masks = masks.float().cpu()
    cams = cams.to("cpu")
    for v in range(len(cams)):
        uv, z = cams[v].project(grid)
        uv, z = uv[0], z[0]
        seen = (z > 1e-3) & (uv[:, 0] >= 0) & (uv[:, 0] < cams.width) & (uv[:, 1] >= 0) & (uv[:, 1] < cams.height)
        m = _sample(masks[v][None, None], uv, cams.width, cams.height)[0]
        inside &= (seen & (m >= threshold)) if object_in_every_view else (~seen | (m >= threshold))
        if depths is not None:
            d = _sample_nearest(depths[v].float().cpu(), uv, cams.width, cams.height)
            inside &= ~(seen & (m >= threshold) & (d > 0) & (z < d - depth_margin))
    if depths is not None and box_margin is not None:
        seen_pts = depth_points(cams, depths, masks, threshold)
        if len(seen_pts):
            lo, hi = seen_pts.min(0).values - box_margin, seen_pts.max(0).values + box_margin
            inside &= ((grid >= lo) & (grid <= hi)).all(-1)
    if depths is not None and convex_margin is not None:
        inner = -F.max_pool2d(-(masks >= threshold).float()[:, None], 3, stride=1, padding=1)[:, 0]  # eroded 1 px
        keep = inside.nonzero()[:, 0]  # only voxels still in the hull need the (costly) facet test
        inside[keep] = inside_convex_hull(grid[keep], depth_points(cams, depths, inner, 0.5), convex_margin)
    return inside.reshape(resolution, resolution, resolution)


def inside_convex_hull(points: Float[Tensor, "N 3"], seen: Float[Tensor, "P 3"], margin: float) -> Tensor:
    """Which ``points`` lie within ``margin`` of the convex hull of ``seen`` (all, if ``seen`` is degenerate)."""
    from scipy.spatial import ConvexHull, QhullError

    if len(seen) < 4:
        return torch.ones(len(points), dtype=torch.bool)
    try:
        eq = torch.as_tensor(ConvexHull(seen.double().numpy()).equations, dtype=torch.float32)  # n.x + b <= 0 inside
    except QhullError:  # flat or collinear surface points: no volume to clip to
        return torch.ones(len(points), dtype=torch.bool)
    out = torch.ones(len(points), dtype=torch.bool)
    for k in range(0, len(points), 65536):
        out[k : k + 65536] = (points[k : k + 65536] @ eq[:, :3].T + eq[:, 3] <= margin).all(-1)
    return out


def point_normals(points: Float[Tensor, "P 3"], k: int = 12, chunk: int = 2048) -> Float[Tensor, "P 3"]:
    """Unit normals of a surface point cloud: the least-variance axis of each point's ``k`` nearest
    neighbours, turned to point away from the cloud's centroid (right for closed, roughly star-shaped
    surfaces such as a visual hull)."""
    points = points.float()
    k = max(3, min(k, len(points)))
    out = torch.empty_like(points)
    centre = points.mean(0)
    for i in range(0, len(points), chunk):
        p = points[i : i + chunk]
        nb = points[torch.cdist(p, points).topk(k, largest=False).indices]  # (B, k, 3)
        d = nb - nb.mean(1, keepdim=True)
        _, vecs = torch.linalg.eigh(d.transpose(1, 2) @ d)  # ascending eigenvalues
        n = vecs[..., 0]
        out[i : i + chunk] = torch.where(((p - centre) * n).sum(-1, keepdim=True) < 0, -n, n)
    return out


def depth_points(
    cams: Cameras, depths: Float[Tensor, "V H W"], masks: Float[Tensor, "V H W"] | None = None, threshold: float = 0.5
) -> Float[Tensor, "P 3"]:
    """World points of every pixel with depth (camera z > 0) inside the mask: the surface the views see."""
    cams = cams.to("cpu")
    o, d = cams.rays()
    fwd = cams.c2w[:, :3, 2]
    depths = depths.float().cpu()
    t = depths / torch.einsum("vhwi,vi->vhw", d, fwd).clamp_min(1e-6)
    ok = depths > 0
    if masks is not None:
        ok &= masks.float().cpu() >= threshold
    return (o + d * t[..., None])[ok]


def _sample_nearest(img: Float[Tensor, "H W"], uv: Float[Tensor, "P 2"], width: int, height: int) -> Float[Tensor, "P"]:
    """Nearest-pixel lookup (for depth, which must not be blended across the silhouette), 0 outside."""
    x, y = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    ok = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    out = torch.zeros(len(uv), dtype=img.dtype)
    out[ok] = img[y[ok], x[ok]]
    return out


def _sample(img: Float[Tensor, "1 C H W"], uv: Float[Tensor, "P 2"], width: int, height: int) -> Float[Tensor, "C P"]:
    """Bilinear lookup at pixel coordinates (pixel centres at +0.5), zero outside."""
    gx = uv[:, 0] / width * 2 - 1
    gy = uv[:, 1] / height * 2 - 1
    grid = torch.stack([gx, gy], -1)[None, None]
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, :, 0]
