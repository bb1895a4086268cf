"""Our cameras at the nerfstudio edge: ``gen3d.cameras.Cameras`` <-> nerfstudio ``Cameras`` and rays.

nerfstudio keeps OpenGL camera-to-world matrices (3x4, x right, y up, looking along -z) with pixel
intrinsics and pixel centres at +0.5, so the conversion is :func:`gen3d.cameras.to_opengl_c2w` plus
the intrinsics taken apart. Its rays (``Cameras.generate_rays``) carry unit directions and, in
``metadata["directions_norm"]``, the length of the un-normalised direction ``R @ (x', y', -1)``,
which is ``1 / cos`` of the angle to the optical axis. nerfstudio's depths are distances along the
unit ray, so camera z (our depth convention) is ``depth / directions_norm``.

nerfstudio is imported inside the functions (importing it takes several seconds).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from gen3d.cameras import Cameras, from_opengl_c2w, to_opengl_c2w

if TYPE_CHECKING:  # pragma: no cover
    from nerfstudio.cameras.cameras import Cameras as NSCameras
    from nerfstudio.cameras.rays import RayBundle


def to_nerfstudio(cams: Cameras) -> NSCameras:
    """nerfstudio perspective cameras equal to ``cams`` (same device)."""
    from nerfstudio.cameras.cameras import Cameras as NSCameras
    from nerfstudio.cameras.cameras import CameraType

    K = cams.K
    return NSCameras(
        camera_to_worlds=to_opengl_c2w(cams)[:, :3, :].contiguous(),
        fx=K[:, 0, 0:1].contiguous(),
        fy=K[:, 1, 1:2].contiguous(),
        cx=K[:, 0, 2:3].contiguous(),
        cy=K[:, 1, 2:3].contiguous(),
        width=cams.width,
        height=cams.height,
        camera_type=CameraType.PERSPECTIVE,
    )


def from_nerfstudio(ns: NSCameras) -> Cameras:
    """Our cameras from nerfstudio perspective cameras of one image size."""
    widths, heights = ns.width.unique(), ns.height.unique()
    if len(widths) != 1 or len(heights) != 1:
        raise ValueError("gen3d Cameras share one image size; these nerfstudio cameras have several")
    V = ns.camera_to_worlds.shape[0]
    K = torch.zeros(V, 3, 3, dtype=ns.camera_to_worlds.dtype, device=ns.camera_to_worlds.device)
    K[:, 0, 0], K[:, 1, 1] = ns.fx[:, 0], ns.fy[:, 0]
    K[:, 0, 2], K[:, 1, 2] = ns.cx[:, 0], ns.cy[:, 0]
    K[:, 2, 2] = 1.0
    cams = from_opengl_c2w(ns.camera_to_worlds.cpu(), K.cpu(), int(widths[0]), int(heights[0]))
    return cams.to(ns.camera_to_worlds.device)


def view_rays(ns: NSCameras, view: int) -> RayBundle:
    with warnings.catch_warnings():
        # nerfstudio 1.1.5 indexes with lists, which torch >= 2.9 warns about once per call
        warnings.filterwarnings("ignore", message="Using a non-tuple sequence", category=UserWarning)
        return ns.generate_rays(camera_indices=view, keep_shape=True)


def ray_bundle(cams: Cameras, view: int) -> RayBundle:
    """All rays of one view through nerfstudio, shape (H, W); ``camera_indices`` = ``view``."""
    return view_rays(to_nerfstudio(cams), view)


def all_rays(cams: Cameras) -> RayBundle:
    """Every ray of every view, flattened to (V*H*W,) in view-major, row-major pixel order."""
    from nerfstudio.cameras.rays import RayBundle

    ns = to_nerfstudio(cams)
    parts = [view_rays(ns, v).flatten() for v in range(len(cams))]
    return RayBundle(
        origins=torch.cat([p.origins for p in parts]),
        directions=torch.cat([p.directions for p in parts]),
        pixel_area=torch.cat([p.pixel_area for p in parts]),
        camera_indices=torch.cat([p.camera_indices for p in parts]),
        metadata={"directions_norm": torch.cat([p.metadata["directions_norm"] for p in parts])},
    )


def camera_z_from_ray_depth(
    depth: Float[Tensor, "*bs 1"], directions_norm: Float[Tensor, "*bs 1"]
) -> Float[Tensor, "*bs 1"]:
    """Camera-space z of a point at distance ``depth`` along a unit ray (nerfstudio's depth convention)."""
    return depth / directions_norm
