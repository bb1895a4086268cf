"""TSDF fusion of posed depth + colour images into a vertex-coloured triangle mesh.

Truncated signed distance fusion (Curless and Levoy 1996; KinectFusion, Newcombe et al. 2011):
every voxel near an observed surface stores the weighted running mean of
``clamp(depth(u, v) - z_voxel, -trunc, trunc) / trunc`` over the views, and the mesh is the zero
level set (marching cubes). Two engines (``MeshExtractConfig.engine``) compute the same fusion:

* ``open3d``: open3d's tensor ``VoxelBlockGrid`` on the CPU. It allocates only the 8^3-voxel blocks
  near observed surfaces, integrates a 128^2 view in milliseconds and grows its hash map as needed.
  (open3d 0.20's ``ScalableTSDFVolume`` integrates nothing, and the legacy ``UniformTSDFVolume`` was
  ~4x slower here at 256^3.)
* ``torch``: a dense grid over the box of the observed surface (padded by the truncation), integrated
  with torch on any device (a GPU too), then scikit-image's marching cubes on the cubes whose 8
  corners are all observed, as open3d does. It needs no open3d, which has no wheels for some
  platforms and is not installed on the lent GPU machines.

``auto`` (the default) uses open3d where it is installed, else torch. Each view adds weight 1 to the
voxels it sees, so ``weight_threshold`` counts views: a surface must be seen by at least that many.
open3d keeps voxels with weight strictly *above* its threshold (its default 3.0 hides surfaces
seen by 3 views or fewer; 1.0 would hide everything seen once), so we pass ours minus 0.5. The
default 1 keeps surfaces seen once, which sparse-view reconstruction needs. Floaters seen by a single
view are removed afterwards as small connected components (``gen3d.geometry.cleanup``).

Conventions: depths are camera-space z (OpenCV, as ``gen3d.data.render`` returns), 0 where
nothing was seen; open3d projects a voxel to pixel ``floor(K @ x)``, so pixel centres sit at
half-integers exactly as in our ``Cameras``, and our ``K`` and ``w2c`` are passed unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from jaxtyping import Float

from gen3d.cameras import Cameras
from gen3d.geometry.cleanup import canonical_order, clean_mesh, from_open3d, keep_faces

Array = np.ndarray | torch.Tensor
ENGINES = ("auto", "open3d", "torch")
MAX_DENSE_VOXELS = 64_000_000  # the torch engine's grid: about 3 GB of working memory at this size


def resolve_engine(engine: str) -> str:
    """``engine`` with "auto" replaced by "open3d" where open3d is installed, else "torch"."""
    if engine != "auto":
        return engine
    import importlib.util

    try:
        found = importlib.util.find_spec("open3d") is not None
    except (ImportError, ValueError):  # a broken or blocked installation counts as none
        found = False
    return "open3d" if found else "torch"


@dataclass(frozen=True)
class MeshExtractConfig:
    """How to turn fused views into a mesh. ``None`` fields are derived from the data."""

    voxel_size: float | None = None  # world units; None: region diagonal / resolution
    resolution: int = 256  # voxels along the region's bounding-box diagonal (when voxel_size is None)
    sdf_trunc: float | None = None  # world units; None: trunc_voxels * voxel_size
    trunc_voxels: float = 4.0
    weight_threshold: float = 1.0  # a voxel must be seen by at least this many views (integer)
    depth_max: float | None = None  # ignore depths beyond this (None: no limit)
    min_component_fraction: float = 0.05  # drop fragments with fewer faces than this share (0: keep all)
    target_faces: int | None = None  # quadric decimation target (None: no decimation)
    engine: str = "auto"  # "open3d", "torch", or "auto": open3d where it is installed, else torch

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.resolution < 8:
            raise ValueError(f"resolution must be >= 8, got {self.resolution}")
        for name in ("voxel_size", "sdf_trunc", "depth_max"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"{name} must be > 0 or None, got {v}")
        if not 0 <= self.min_component_fraction <= 1:
            raise ValueError(f"min_component_fraction must be in [0, 1], got {self.min_component_fraction}")
        if self.target_faces is not None and self.target_faces < 1:
            raise ValueError(f"target_faces must be >= 1 or None, got {self.target_faces}")


def _np(x: Array | None, dtype=None) -> np.ndarray | None:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x) if dtype is None else np.asarray(x, dtype)


def backproject(
    depths: Float[np.ndarray, "V H W"], cameras: Cameras, valid: np.ndarray
) -> Float[np.ndarray, "P 3"]:
    """World points of the valid pixels (pixel centres at half-integers, depth = camera z)."""
    V, H, W = depths.shape
    K = cameras.K.detach().cpu().double().numpy()
    c2w = torch.linalg.inv(cameras.w2c.detach().cpu().double()).numpy()
    ys, xs = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    out = []
    for i in range(V):
        m = valid[i]
        z = depths[i][m]
        x = (xs[m] - K[i, 0, 2]) / K[i, 0, 0] * z
        y = (ys[m] - K[i, 1, 2]) / K[i, 1, 1] * z
        cam = np.stack([x, y, z], axis=-1)
        out.append(cam @ c2w[i, :3, :3].T + c2w[i, :3, 3])
    return np.concatenate(out) if out else np.zeros((0, 3))


def tsdf_fusion(
    depths: Float[Array, "V H W"],
    colors: Float[Array, "V H W 3"],
    cameras: Cameras,
    masks: Array | None = None,
    voxel_size: float | None = None,
    sdf_trunc: float | None = None,
    bounds: Float[Array, "2 3"] | None = None,
    weight_threshold: float | None = None,
    cfg: MeshExtractConfig = MeshExtractConfig(),
    device: str | torch.device = "cpu",
) -> trimesh.Trimesh:
    """Fuse V posed depth maps (camera z) and colours into a cleaned, vertex-coloured mesh.

    colors: float in [0, 1] or uint8. masks: (V, H, W) bool/float; pixels outside (< 0.5) are
    ignored, as are zero or non-finite depths. bounds: world box ``[min, max]``; depth points
    outside it are ignored and the mesh is cropped to it (None: the box of all valid depth
    points). Explicit ``voxel_size`` / ``sdf_trunc`` / ``weight_threshold`` override ``cfg``.
    Then small fragments are removed and the mesh optionally decimated, as ``cfg`` says.
    device: where the torch engine integrates (open3d always runs on the CPU).
    """
    overrides = {"voxel_size": voxel_size, "sdf_trunc": sdf_trunc, "weight_threshold": weight_threshold}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    depths_np = _np(depths, np.float32)
    colors_np = _np(colors)
    if depths_np.ndim != 3 or len(depths_np) != len(cameras):
        raise ValueError(f"depths must have shape ({len(cameras)}, H, W), got {depths_np.shape}")
    V, H, W = depths_np.shape
    if (H, W) != (cameras.height, cameras.width):
        raise ValueError(f"depth maps are {W}x{H} but the cameras are {cameras.width}x{cameras.height}")
    if colors_np.shape != (V, H, W, 3):
        raise ValueError(f"colors must have shape {(V, H, W, 3)}, got {colors_np.shape}")
    colors_np = (
        colors_np.astype(np.float32) / 255.0 if colors_np.dtype == np.uint8 else colors_np.astype(np.float32)
    )

    valid = np.isfinite(depths_np) & (depths_np > 0)
    if masks is not None:
        m = _np(masks)
        if m.shape != (V, H, W):
            raise ValueError(f"masks must have shape {(V, H, W)}, got {m.shape}")
        valid &= m.astype(np.float32) >= 0.5
    if cfg.depth_max is not None:
        valid &= depths_np <= cfg.depth_max
    if bounds is not None:
        box = _np(bounds, np.float64)
        if box.shape != (2, 3) or not (box[1] > box[0]).all():
            raise ValueError(
                f"bounds must be [[xmin, ymin, zmin], [xmax, ymax, zmax]] with min < max, got {box}"
            )
        pts = backproject(depths_np, cameras, valid)
        inside = ((pts >= box[0]) & (pts <= box[1])).all(axis=1)
        valid[valid] = inside
        pts = pts[inside]
    else:
        pts = backproject(depths_np, cameras, valid)
        if len(pts) == 0:
            raise ValueError("no valid depth: every pixel is masked out, zero or non-finite")
        box = np.stack([pts.min(axis=0), pts.max(axis=0)])
    if not valid.any():
        raise ValueError("no valid depth inside the bounds: nothing to fuse")

    diag = float(np.linalg.norm(box[1] - box[0]))
    vox = cfg.voxel_size if cfg.voxel_size is not None else max(diag, 1e-6) / cfg.resolution
    trunc = cfg.sdf_trunc if cfg.sdf_trunc is not None else cfg.trunc_voxels * vox
    depth_in = np.where(valid, depths_np, 0.0).astype(np.float32)
    engine = resolve_engine(cfg.engine)
    if engine == "torch":
        mesh = _integrate_torch(depth_in, colors_np, cameras, vox, trunc, cfg.weight_threshold,
                                np.stack([pts.min(axis=0), pts.max(axis=0)]), device)
    else:
        try:
            mesh = _integrate(depth_in, colors_np, cameras, vox, trunc, cfg.weight_threshold)
        except ImportError:
            raise ImportError("MeshExtractConfig(engine='open3d') needs open3d (pip install open3d); "
                              "engine='torch' or 'auto' works without it") from None
        except RuntimeError as e:  # open3d aborts when no voxel block is touched (e.g. a few stray pixels)
            raise ValueError(f"TSDF fusion found no surface to integrate ({str(e).splitlines()[0][-120:]})") from None
    if len(mesh.faces) == 0:
        raise ValueError(
            "TSDF fusion produced an empty mesh: the views may not overlap enough for "
            f"weight_threshold={cfg.weight_threshold}, or voxel_size={vox:.3g} is too large"
        )
    if bounds is not None:
        mesh = crop_to_box(mesh, box)
    return clean_mesh(mesh, cfg.min_component_fraction, cfg.target_faces)


def _integrate(
    depths: np.ndarray,
    colors: np.ndarray,
    cameras: Cameras,
    voxel_size: float,
    sdf_trunc: float,
    weight_threshold: float,
) -> trimesh.Trimesh:
    import open3d as o3d  # heavy: imported only when fusing
    import open3d.core as o3c

    device = o3c.Device("CPU:0")
    # Each block is 8^3 voxels x 5 floats = 10 KB and open3d preallocates block_count of them;
    # start small (the hash map grows on demand) so memory follows the surface area, not a guess.
    vbg = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight", "color"),
        attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
        attr_channels=((1), (1), (3)),
        voxel_size=float(voxel_size),
        block_resolution=8,
        block_count=4096,
        device=device,
    )
    K = cameras.K.detach().cpu().double().numpy()
    w2c = cameras.w2c.detach().cpu().double().numpy()
    depth_max = float(depths.max()) * 1.01 + sdf_trunc
    mult = float(sdf_trunc / voxel_size)
    for i in range(len(depths)):
        if not (depths[i] > 0).any():
            continue
        depth = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(depths[i])))
        color = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(colors[i])))
        intr, extr = o3c.Tensor(K[i]), o3c.Tensor(w2c[i])
        blocks = vbg.compute_unique_block_coordinates(
            depth, intr, extr, depth_scale=1.0, depth_max=depth_max, trunc_voxel_multiplier=mult
        )
        vbg.integrate(
            blocks,
            depth,
            color,
            intr,
            intr,
            extr,
            depth_scale=1.0,
            depth_max=depth_max,
            trunc_voxel_multiplier=mult,
        )
    # open3d keeps voxels whose weight is strictly above its threshold; ours counts views (>=).
    o3d_threshold = float(weight_threshold) - 0.5
    return canonical_order(from_open3d(vbg.extract_triangle_mesh(weight_threshold=o3d_threshold).to_legacy()))


@torch.no_grad()
def _integrate_torch(
    depths: np.ndarray,
    colors: np.ndarray,
    cameras: Cameras,
    voxel_size: float,
    sdf_trunc: float,
    weight_threshold: float,
    surface_box: np.ndarray,
    device: str | torch.device,
) -> trimesh.Trimesh:
    """The open3d engine's fusion on a dense grid with torch (same voxel lattice, projection and update).

    Voxel centres lie at integer multiples of ``voxel_size``, as in open3d's block grid; the grid
    covers ``surface_box`` padded by the truncation, which holds every voxel within ``sdf_trunc`` of
    an observed surface point (voxels farther in front only ever store +1). A view updates a voxel
    when the voxel projects (pixel ``floor(K @ x)``) onto a valid depth ``d`` with
    ``d - z >= -sdf_trunc``, storing the running mean of ``min(d - z, sdf_trunc) / sdf_trunc`` and of
    the pixel's colour, with weight 1 per view.
    """
    from skimage.measure import marching_cubes

    dev = torch.device(device)
    pad = sdf_trunc + 2 * voxel_size
    lo = np.floor((surface_box[0] - pad) / voxel_size).astype(np.int64)
    hi = np.ceil((surface_box[1] + pad) / voxel_size).astype(np.int64)
    shape = tuple(int(n) for n in hi - lo + 1)
    if int(np.prod(shape)) > MAX_DENSE_VOXELS:
        raise ValueError(f"the torch TSDF engine would need a dense grid of {shape[0]}x{shape[1]}x{shape[2]} voxels "
                         f"(at most {MAX_DENSE_VOXELS:,}): use a larger voxel_size or a lower resolution, "
                         "or engine='open3d', which stores only the blocks near the surface")
    axes = [(torch.arange(shape[a], device=dev, dtype=torch.float32) + float(lo[a])) * voxel_size for a in range(3)]
    xyz = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    n = xyz.shape[0]
    tsdf = torch.zeros(n, device=dev, dtype=torch.float32)
    weight = torch.zeros(n, device=dev, dtype=torch.float32)
    rgb = torch.zeros(n, 3, device=dev, dtype=torch.float32)
    K = cameras.K.detach().to(dev, torch.float32)
    w2c = cameras.w2c.detach().to(dev, torch.float32)
    V, H, W = depths.shape
    depth_t = torch.from_numpy(depths).to(dev)
    color_t = torch.from_numpy(np.ascontiguousarray(colors)).to(dev)
    for i in range(V):
        if not (depths[i] > 0).any():
            continue
        cam = xyz @ w2c[i, :3, :3].T + w2c[i, :3, 3]
        z = cam[:, 2]
        zs = z.clamp_min(1e-9)
        u = torch.floor(K[i, 0, 0] * cam[:, 0] / zs + K[i, 0, 2])
        v = torch.floor(K[i, 1, 1] * cam[:, 1] / zs + K[i, 1, 2])
        ok = (z > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
        idx = ok.nonzero().squeeze(1)
        pix = (v[idx] * W + u[idx]).long()
        d = depth_t[i].reshape(-1)[pix]
        sdf = d - z[idx]
        upd = (d > 0) & (sdf >= -sdf_trunc)
        idx, pix = idx[upd], pix[upd]
        val = (sdf[upd].clamp(max=sdf_trunc) / sdf_trunc).float()
        w = weight[idx]
        tsdf[idx] = (tsdf[idx] * w + val) / (w + 1)
        rgb[idx] = (rgb[idx] * w[:, None] + color_t[i].reshape(-1, 3)[pix]) / (w[:, None] + 1)
        weight[idx] = w + 1
    seen = (weight >= weight_threshold - 0.5).reshape(shape)
    # A cube is meshed only when its 8 corners are all observed, as in open3d's extraction. skimage
    # tests the mask at a cube's last corner (index + 1 on each axis; checked in the tests).
    cube_ok = -torch.nn.functional.max_pool3d(-seen[None, None].float(), 2, stride=1)[0, 0] > 0.5
    mask = torch.zeros(shape, dtype=torch.bool, device=dev)
    mask[1:, 1:, 1:] = cube_ok
    values = torch.where(seen, tsdf.reshape(shape), torch.ones((), device=dev)).cpu().numpy()
    mask_np = mask.cpu().numpy()
    if not mask_np.any() or not (values[mask_np] < 0).any():
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), process=False)
    try:
        verts, faces, _, _ = marching_cubes(values, level=0.0, spacing=(voxel_size,) * 3, mask=mask_np,
                                            gradient_direction="descent")
    except (ValueError, RuntimeError):  # no zero crossing inside the mask
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), process=False)
    from scipy.ndimage import map_coordinates

    grid_rgb = rgb.reshape(*shape, 3).cpu().numpy()
    at = (verts / voxel_size).T  # vertices in voxel-index units: on cube edges, so this is linear along the edge
    col = np.stack([map_coordinates(grid_rgb[..., c], at, order=1, mode="nearest") for c in range(3)], axis=-1)
    origin = lo * voxel_size
    col8 = np.round(np.clip(col, 0, 1) * 255).astype(np.uint8)
    col8 = np.concatenate([col8, np.full((len(col8), 1), 255, np.uint8)], axis=1)
    return canonical_order(trimesh.Trimesh(verts + origin, faces, vertex_colors=col8, process=False))


def crop_to_box(mesh: trimesh.Trimesh, box: np.ndarray) -> trimesh.Trimesh:
    """Faces whose vertices all lie inside ``box`` (with a tiny tolerance)."""
    eps = 1e-6 * float(np.linalg.norm(box[1] - box[0]))
    inside = ((mesh.vertices >= box[0] - eps) & (mesh.vertices <= box[1] + eps)).all(axis=1)
    return keep_faces(mesh, inside[mesh.faces].all(axis=1))
