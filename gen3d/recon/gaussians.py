"""3D Gaussians: the splatting representation (parameters, activations, initialisation).

Parameters are stored unconstrained, as 3DGS does (Kerbl et al. 2023, Sec. 4): log-scales,
opacity logits, unnormalised quaternions (w, x, y, z), and spherical-harmonic colour coefficients
with the DC term first. ``sh[:, 0]`` relates to RGB by ``rgb = 0.5 + C0 * sh_dc``
(C0 = 0.28209479177387814), the INRIA .ply convention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

SH_C0 = 0.28209479177387814


def num_sh_bases(degree: int) -> int:
    return (degree + 1) ** 2


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: Tensor) -> Tensor:
    return dc * SH_C0 + 0.5


@dataclass
class Gaussians:
    """N Gaussians. Tensors may be ``nn.Parameter``s while fitting; all share one device."""

    means: Float[Tensor, "N 3"]
    quats: Float[Tensor, "N 4"]  # (w, x, y, z), not necessarily normalised
    log_scales: Float[Tensor, "N 3"]
    opacity_logits: Float[Tensor, "N"]
    sh: Float[Tensor, "N K 3"]  # K = (sh_degree + 1) ** 2 coefficients, DC first

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        shapes = {
            "means": (self.means.shape, (n, 3)),
            "quats": (self.quats.shape, (n, 4)),
            "log_scales": (self.log_scales.shape, (n, 3)),
            "opacity_logits": (self.opacity_logits.shape, (n,)),
        }
        for name, (got, want) in shapes.items():
            if tuple(got) != want:
                raise ValueError(f"Gaussians.{name} must have shape {want}, got {tuple(got)}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(f"Gaussians.sh must have shape ({n}, K, 3), got {tuple(self.sh.shape)}")
        k = self.sh.shape[1]
        if int(math.isqrt(k)) ** 2 != k:
            raise ValueError(f"Gaussians.sh has {k} coefficients; expected (degree + 1)^2")

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return math.isqrt(self.sh.shape[1]) - 1

    @property
    def device(self) -> torch.device:
        return self.means.device

    # Activated values ------------------------------------------------------------------------
    @property
    def scales(self) -> Float[Tensor, "N 3"]:
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> Float[Tensor, "N"]:
        return torch.sigmoid(self.opacity_logits)

    @property
    def unit_quats(self) -> Float[Tensor, "N 4"]:
        return self.quats / self.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    @property
    def rgb(self) -> Float[Tensor, "N 3"]:
        """View-independent colour (the DC term), clamped to [0, 1]."""
        return sh_dc_to_rgb(self.sh[:, 0]).clamp(0, 1)

    def detach(self) -> "Gaussians":
        return Gaussians(*(t.detach().clone() for t in self.tensors()))

    def to(self, device: str | torch.device) -> "Gaussians":
        return Gaussians(*(t.to(device) for t in self.tensors()))

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return self.means, self.quats, self.log_scales, self.opacity_logits, self.sh

    def subset(self, idx: Tensor) -> "Gaussians":
        return Gaussians(*(t[idx] for t in self.tensors()))

    # Construction ------------------------------------------------------------------------------
    @classmethod
    def from_points(
        cls,
        points: Float[Tensor, "N 3"],
        rgb: Float[Tensor, "N 3"] | None = None,
        sh_degree: int = 0,
        scale: float | Float[Tensor, "N"] | None = None,
        opacity: float = 0.1,
    ) -> "Gaussians":
        """Isotropic Gaussians at ``points``. Default scale: mean distance to the 3 nearest neighbours."""
        points = points.float()
        n = points.shape[0]
        if scale is None:
            scale = knn_mean_distance(points, k=3).clamp_min(1e-4)
        s = torch.as_tensor(scale, dtype=torch.float32, device=points.device)
        log_scales = torch.log(s).reshape(-1, 1).expand(n, 3).clone() if s.ndim else torch.full((n, 3), math.log(float(s)))
        rgb = torch.full((n, 3), 0.5) if rgb is None else rgb.float()
        sh = torch.zeros(n, num_sh_bases(sh_degree), 3)
        sh[:, 0] = rgb_to_sh_dc(rgb.cpu())
        quats = torch.zeros(n, 4)
        quats[:, 0] = 1.0
        logit = math.log(opacity / (1 - opacity))
        dev = points.device
        return cls(points.clone(), quats.to(dev), log_scales.to(dev), torch.full((n,), logit, device=dev), sh.to(dev))

    @classmethod
    def random_in_box(
        cls, n: int, lo: tuple[float, float, float], hi: tuple[float, float, float], sh_degree: int = 0, seed: int = 0
    ) -> "Gaussians":
        g = torch.Generator().manual_seed(seed)
        lo_t, hi_t = torch.tensor(lo), torch.tensor(hi)
        pts = lo_t + (hi_t - lo_t) * torch.rand(n, 3, generator=g)
        rgb = torch.rand(n, 3, generator=g)
        return cls.from_points(pts, rgb, sh_degree)


def knn_mean_distance(points: Float[Tensor, "N 3"], k: int = 3, chunk: int = 4096) -> Float[Tensor, "N"]:
    """Mean distance of each point to its k nearest neighbours (chunked to bound memory)."""
    n = points.shape[0]
    if n <= 1:
        return torch.full((n,), 0.01, device=points.device)
    k = min(k, n - 1)
    out = torch.empty(n, device=points.device)
    for i in range(0, n, chunk):
        d = torch.cdist(points[i : i + chunk], points)
        d[torch.arange(d.shape[0]), torch.arange(i, i + d.shape[0])] = float("inf")
        out[i : i + chunk] = d.topk(k, largest=False).values.mean(-1)
    return out
