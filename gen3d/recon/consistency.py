"""How well a set of posed views agrees in 3D, measured without fitting anything.

A multi-view prior samples its views jointly, but not every sample is equally consistent: one view's
object can be a little wider, or its far side a little deeper, than the other views allow. The
leave-one-out hull agreement scores that cheaply: for each view, carve the visual hull of the *other*
views (clipped by their depth as the Gaussian fit's initialisation is, see
:func:`gen3d.recon.init.visual_hull_occupancy`), ray-cast its silhouette into the left-out camera and
take the IoU with that view's mask. Perfectly consistent views of a convex object score close to 1;
a view that contradicts the others scores lower. ``gen3d generate --candidates N`` samples N sets of
views and keeps the one that scores highest (docs/prior.md, "Choosing among candidates").

:func:`depth_from_fit` goes the other way: once the views are fitted, it makes their depth maps agree
with the fitted object, which every view's silhouette shapes (``gen3d generate`` saves its views so).
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from gen3d.cameras import Cameras
from gen3d.recon.init import grid_occupied, visual_hull_occupancy


def raycast_silhouettes(occ: Bool[Tensor, "R R R"], cams: Cameras, bound: float = 1.0) -> Bool[Tensor, "V H W"]:
    """Which pixels of ``cams`` see an occupied voxel of ``occ`` (a grid over [-bound, bound]^3, indexed x, y, z).

    One ray per pixel centre, sampled every half voxel through the cube's bounding sphere.
    """
    R = occ.shape[0]
    vox = 2 * bound / R
    cams = cams.to("cpu")
    o, d = cams.rays()  # V H W 3
    V, H, W, _ = d.shape
    dist = o[:, 0, 0].norm(dim=-1)  # V: camera distance from the centre
    half = math.sqrt(3) * bound
    n = int(math.ceil(2 * half / (vox / 2))) + 1
    out = torch.zeros(V, H, W, dtype=torch.bool)
    for v in range(V):
        t = torch.linspace(max(float(dist[v]) - half, 0.0), float(dist[v]) + half, n)
        for r0 in range(0, H, 16):  # a band of rows at a time keeps memory small
            p = o[v, r0 : r0 + 16, :, None] + d[v, r0 : r0 + 16, :, None] * t[:, None]  # h W n 3
            out[v, r0 : r0 + 16] = grid_occupied(occ, p, bound).any(-1)
    return out


def leave_one_out_hull_iou(
    cams: Cameras,
    masks: Float[Tensor, "V H W"],
    depths: Float[Tensor, "V H W"] | None = None,
    resolution: int = 48,
    bound: float = 1.0,
    depth_margin: float = math.inf,
    box_margin: float | None = 0.05,
    convex_margin: float | None = 0.02,
    threshold: float = 0.5,
) -> Float[Tensor, "V"]:
    """For each view: IoU of its mask with the silhouette of the visual hull of the other views.

    The hull options are those of :func:`gen3d.recon.init.visual_hull_occupancy` (depth carving off by
    default; with ``depths``, the box and convex clips of the seen surface). Needs at least 2 views.
    """
    V = len(cams)
    if V < 2:
        raise ValueError(f"leave-one-out hull agreement needs at least 2 views, got {V}")
    if masks.shape[0] != V or (depths is not None and depths.shape[0] != V):
        raise ValueError(f"{V} cameras but masks {tuple(masks.shape)}" + ("" if depths is None else f", depths {tuple(depths.shape)}"))
    masks = masks.float().cpu()
    depths = None if depths is None else depths.float().cpu()
    out = torch.zeros(V)
    for v in range(V):
        keep = [j for j in range(V) if j != v]
        occ = visual_hull_occupancy(cams[keep], masks[keep], resolution, bound, threshold, True,
                                    None if depths is None else depths[keep], depth_margin, box_margin, convex_margin)
        sil = raycast_silhouettes(occ, cams[v], bound)[0]
        m = masks[v] >= threshold
        union = (sil | m).sum()
        out[v] = float((sil & m).sum()) / float(union) if union > 0 else 1.0
    return out


def depth_from_fit(
    depths: Float[Tensor, "V H W"],
    masks: Float[Tensor, "V H W"],
    rendered_depth: Float[Tensor, "V H W"],
    rendered_alpha: Float[Tensor, "V H W"],
    threshold: float = 0.5,
    min_alpha: float = 0.05,
) -> Float[Tensor, "V H W"]:
    """The views' depth maps made consistent with an object fitted to all of them (multi-view depth fusion).

    Inside each view's mask (``>= threshold``), wherever the fitted object renders (alpha ``>= min_alpha``),
    the depth becomes the object's rendered depth (alpha-normalised camera z); elsewhere it is kept. A
    prior decodes each view's depth on its own, and near silhouettes it is least reliable (a few pixels
    inside a box's edge read up to 0.15 units too shallow, docs/prior.md); the fit agrees with every
    view's silhouette and colours at once, so its depth there is bounded by the views that see the edge
    from the side.
    """
    if not (depths.shape == masks.shape == rendered_depth.shape == rendered_alpha.shape):
        raise ValueError(f"depth_from_fit needs equal shapes, got depths {tuple(depths.shape)}, masks "
                         f"{tuple(masks.shape)}, rendered depth {tuple(rendered_depth.shape)}, alpha {tuple(rendered_alpha.shape)}")
    rd = rendered_depth.detach().to(depths.device, depths.dtype)
    use = (masks.to(depths.device) >= threshold) & (rendered_alpha.detach().to(depths.device) >= min_alpha) & (rd > 0)
    return torch.where(use, rd, depths)


def rendered_depth_from_fit(representation, cams: Cameras, depths: Float[Tensor, "V H W"],
                            masks: Float[Tensor, "V H W"]) -> Float[Tensor, "V H W"]:
    """:func:`depth_from_fit` with ``representation`` (fitted to these views) rendered at ``cams``; on the CPU."""
    with torch.no_grad():
        r = representation.render(cams)
    return depth_from_fit(depths.float().cpu(), masks.float().cpu(), r.depth.float().cpu(), r.alpha.float().cpu())


__all__ = ["depth_from_fit", "leave_one_out_hull_iou", "raycast_silhouettes", "rendered_depth_from_fit"]
