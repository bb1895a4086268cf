"""Analytic test data: a Gaussian mixture, whose noisy marginals, score and denoiser are exact.

Adding N(0, sigma^2 I) noise to a mixture sum_k w_k N(mu_k, S_k) gives the mixture
sum_k w_k N(mu_k, S_k + sigma^2 I), so at every noise level (Karras et al. 2024, "Guiding a Diffusion
Model with a Bad Version of Itself", App. on the toy example; Bishop 2006, eq. 2.115-2.116):

    grad log p_sigma(x) = sum_k r_k(x) (S_k + sigma^2 I)^{-1} (mu_k - x)
    D(x, sigma) = E[x0 | x] = sum_k r_k(x) (mu_k + S_k (S_k + sigma^2 I)^{-1} (x - mu_k))
                = x + sigma^2 grad log p_sigma(x)                        (Tweedie's formula)

with responsibilities r_k(x) proportional to w_k N(x; mu_k, S_k + sigma^2 I). Components carry a
class label, so class-conditional denoisers (and thus classifier-free guidance) are exact too.
Everything is computed in float64 through each component's eigen-decomposition, which makes any
per-sample sigma cheap. Data may be vectors (B, d) or image-shaped (B, C, H, W) with C*H*W = d.

Also here: the sliced Wasserstein-2 distance (Rabin et al. 2011; Bonneel et al. 2015) used as the
quality statistic in tests and benchmarks. Why our own: no maintained library offers an exact
mixture denoiser at every noise level; SW2 is ten lines (POT would be a heavy dependency for it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from gen3d.diffusion.conditioning import NULL_LABEL, Conditioning


@dataclass(frozen=True)
class GaussianMixture:
    """sum_k w_k N(mu_k, S_k) over R^d; ``shape`` is the per-sample shape samples are returned in."""

    weights: Float[Tensor, " K"]
    means: Float[Tensor, "K d"]
    covs: Float[Tensor, "K d d"]
    labels: Int[Tensor, " K"]  # class of each component
    shape: tuple[int, ...] = ()
    _eig: tuple[Tensor, Tensor] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d) or self.labels.shape != (k,):
            raise ValueError("GaussianMixture: weights (K,), means (K, d), covs (K, d, d), labels (K,) must agree")
        if not self.shape:
            object.__setattr__(self, "shape", (d,))
        if math.prod(self.shape) != d:
            raise ValueError(f"GaussianMixture: shape {self.shape} does not hold d = {d} numbers")
        w = self.weights.double()
        object.__setattr__(self, "weights", w / w.sum())
        object.__setattr__(self, "means", self.means.double())
        covs = self.covs.double()
        object.__setattr__(self, "covs", 0.5 * (covs + covs.transpose(1, 2)))
        lam, u = torch.linalg.eigh(self.covs)  # S_k = U diag(lam) U^T
        object.__setattr__(self, "_eig", (lam.clamp(min=0), u))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    # ---- sampling and moments ------------------------------------------------------------------
    def sample(
        self, n: int, generator: torch.Generator | None = None, labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """n exact samples (float32, in ``shape``) and their class labels; ``labels`` (n,) fixes the class."""
        if labels is None:
            comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        else:
            w = self._class_weights(labels.cpu())
            comp = torch.multinomial(w, 1, generator=generator)[:, 0]
        lam, u = self._eig
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x = self.means[comp] + torch.einsum("nij,nj->ni", u[comp], lam[comp].sqrt() * z)
        return x.float().reshape(n, *self.shape), self.labels[comp]

    def mean(self) -> Tensor:
        return (self.weights[:, None] * self.means).sum(0)

    def cov(self) -> Tensor:
        """Total covariance sum_k w_k (S_k + mu_k mu_k^T) - m m^T."""
        m = self.mean()
        second = (self.weights[:, None, None] * (self.covs + self.means[:, :, None] * self.means[:, None, :])).sum(0)
        return second - m[:, None] * m[None, :]

    # ---- exact quantities at noise level sigma -------------------------------------------------
    def _component_terms(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per component: log N(x; mu_k, S_k + sigma^2 I) (B, K), y = U^T (x - mu_k) (B, K, d), lam + sigma^2."""
        lam, u = self._eig
        xf = x.reshape(x.shape[0], -1).double()
        y = torch.einsum("kji,bkj->bki", u, xf[:, None, :] - self.means[None])  # rotate into eigenbasis
        var = lam[None] + sigma.double().reshape(-1, 1, 1) ** 2  # (B, K, d)
        logn = -0.5 * ((y**2 / var).sum(-1) + var.log().sum(-1) + self.dim * math.log(2 * math.pi))
        return logn, y, var

    def _class_weights(self, labels: Tensor | None, batch: int | None = None) -> Tensor:
        """Mixture weights (B, K) restricted to each sample's class (NULL_LABEL: all classes)."""
        w = self.weights[None]
        if labels is None:
            return w.expand(batch or 1, -1)
        keep = (self.labels[None] == labels[:, None].to(self.labels)) | (labels[:, None] == NULL_LABEL)
        w = torch.where(keep, w, torch.zeros_like(w))
        return w / w.sum(1, keepdim=True)

    def responsibilities(self, x: Tensor, sigma: Tensor | float, labels: Tensor | None = None) -> Tensor:
        """r_k(x) = p(component k | x) at noise level sigma (B, K)."""
        sigma = _sigma_vec(sigma, x)
        logn, _, _ = self._component_terms(x, sigma)
        logw = self._class_weights(None if labels is None else labels.cpu(), x.shape[0]).log()
        return torch.softmax(logn + logw.to(logn), dim=1)

    def log_prob(self, x: Tensor, sigma: Tensor | float = 0.0, labels: Tensor | None = None) -> Tensor:
        """log p_sigma(x) (B,), float64; class-conditional when ``labels`` is given."""
        sigma = _sigma_vec(sigma, x)
        logn, _, _ = self._component_terms(x, sigma)
        logw = self._class_weights(None if labels is None else labels.cpu(), x.shape[0]).log()
        return torch.logsumexp(logn + logw.to(logn), dim=1)

    def denoise(self, x: Tensor, sigma: Tensor | float, cond: Conditioning | None = None) -> Tensor:
        """The exact denoiser E[x0 | x0 + sigma n = x] (class-conditional if ``cond.labels``)."""
        sigma = _sigma_vec(sigma, x)
        labels = None if cond is None or cond.labels is None else cond.labels.cpu()
        logn, y, var = self._component_terms(x.cpu(), sigma.cpu())
        r = torch.softmax(logn + self._class_weights(labels, x.shape[0]).log(), dim=1)  # (B, K)
        lam, u = self._eig
        # mu_k + S_k (S_k + sigma^2 I)^{-1} (x - mu_k), in the eigenbasis: lam / (lam + sigma^2) * y
        post = self.means[None] + torch.einsum("kij,bkj->bki", u, lam[None] / var * y)
        d = (r[..., None] * post).sum(1)
        return d.to(x.dtype).to(x.device).reshape(x.shape)

    def score(self, x: Tensor, sigma: Tensor | float, cond: Conditioning | None = None) -> Tensor:
        """grad_x log p_sigma(x) = (D(x, sigma) - x) / sigma^2 (Tweedie; sigma > 0)."""
        sigma = _sigma_vec(sigma, x)
        s2 = sigma.reshape(-1, *([1] * (x.ndim - 1))) ** 2
        return (self.denoise(x, sigma, cond) - x) / s2

    def class_posterior(self, x: Tensor, sigma: Tensor | float = 0.0) -> Tensor:
        """p(class | x) at noise level sigma (B, num_classes)."""
        r = self.responsibilities(x, sigma)
        onehot = torch.nn.functional.one_hot(self.labels, self.num_classes).to(r)
        return r @ onehot

    def denoiser(self) -> ExactDenoiser:
        return ExactDenoiser(self)

    def broadened(self, factor: float) -> GaussianMixture:
        """The same mixture with every covariance scaled by ``factor``: a "weaker model" whose exact
        denoiser plays the bad model in autoguidance (Karras et al. 2024, Sec. 4 toy example)."""
        return GaussianMixture(self.weights, self.means, self.covs * factor, self.labels, self.shape)


class ExactDenoiser:
    """The mixture's exact denoiser as a :class:`gen3d.diffusion.denoiser.Denoiser`."""

    def __init__(self, gmm: GaussianMixture):
        self.gmm = gmm

    def __call__(self, x: Tensor, sigma: Tensor, cond: Conditioning | None = None) -> Tensor:
        return self.gmm.denoise(x, sigma, cond)


def _sigma_vec(sigma: Tensor | float, x: Tensor) -> Tensor:
    s = torch.as_tensor(sigma, dtype=torch.float64)
    return s.expand(x.shape[0]) if s.ndim == 0 else s.double()


# --------------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------------


def toy_2d() -> GaussianMixture:
    """The 2-D picture data: 8 anisotropic components on a ring of radius 2, two classes alternating,
    plus a small central one (class 0); thin, tilted components make sampler errors visible."""
    k = 8
    ang = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    means = torch.stack([2.0 * ang.cos(), 2.0 * ang.sin()], 1)
    rot = torch.stack([torch.stack([ang.cos(), -ang.sin()], -1), torch.stack([ang.sin(), ang.cos()], -1)], -2)
    diag = torch.diag_embed(torch.tensor([0.02, 0.15], dtype=torch.float64).expand(k, 2))  # tangential spread
    covs = rot @ diag @ rot.transpose(1, 2)
    means = torch.cat([means, torch.zeros(1, 2, dtype=torch.float64)])
    covs = torch.cat([covs, 0.05 * torch.eye(2, dtype=torch.float64)[None]])
    labels = torch.tensor([0, 1] * (k // 2) + [0])
    weights = torch.cat([torch.full((k,), 1.0, dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)])
    return GaussianMixture(weights, means, covs, labels)


def toy_nd(dim: int = 8, k: int = 6, num_classes: int = 2, seed: int = 0, shape: tuple[int, ...] = ()) -> GaussianMixture:
    """A random mixture in R^dim (means on a sphere of radius 2, random covariances of scale ~0.1-0.3).
    ``shape`` returns samples image-shaped, e.g. (1, 4, 4) for dim 16 (data for the U-Net / DiT)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, dim, generator=g, dtype=torch.float64)
    means = 2.0 * means / means.norm(dim=1, keepdim=True)
    a = torch.randn(k, dim, dim, generator=g, dtype=torch.float64) / math.sqrt(dim)
    covs = 0.08 * (a @ a.transpose(1, 2)) + 0.02 * torch.eye(dim, dtype=torch.float64)
    labels = torch.arange(k) % num_classes
    weights = 0.5 + torch.rand(k, generator=g, dtype=torch.float64)
    return GaussianMixture(weights, means, covs, labels, tuple(shape))


def toy_patterns(size: int = 4, channels: int = 1, std: float = 0.2) -> GaussianMixture:
    """Image-shaped data (channels, size, size) for the U-Net / DiT: four +-1 patterns (horizontal and
    vertical stripes, a checkerboard and its negative) with isotropic noise ``std``; classes: stripes 0,
    checkers 1. Each pattern repeats every 2 pixels, so it can be told from any 2 x 2 patch."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    check = ((yy + xx) % 2) * 2 - 1
    pats = [(yy % 2) * 2 - 1, (xx % 2) * 2 - 1, check, -check]
    means = torch.stack([p.double().expand(channels, size, size).reshape(-1) for p in pats])
    d = means.shape[1]
    covs = (std**2 * torch.eye(d, dtype=torch.float64)).expand(4, d, d).clone()
    return GaussianMixture(torch.ones(4, dtype=torch.float64), means, covs, torch.tensor([0, 0, 1, 1]),
                           (channels, size, size))


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------


def sliced_wasserstein(
    a: Tensor, b: Tensor, num_projections: int = 256, generator: torch.Generator | None = None
) -> float:
    """Sliced Wasserstein-2 distance sqrt(E_theta W2^2(theta^T a, theta^T b)) between two sample sets
    (Bonneel et al. 2015, eq. 8), theta uniform on the sphere; sets may differ in size (quantiles)."""
    a = a.reshape(a.shape[0], -1).double()
    b = b.reshape(b.shape[0], -1).double()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"sample dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    g = generator if generator is not None else torch.Generator().manual_seed(12345)
    theta = torch.randn(a.shape[1], num_projections, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    pa, pb = (a @ theta).sort(0).values, (b @ theta).sort(0).values
    n = max(len(pa), len(pb))
    qa, qb = _quantiles(pa, n), _quantiles(pb, n)
    return float(((qa - qb) ** 2).mean().sqrt())


def _quantiles(sorted_x: Tensor, n: int) -> Tensor:
    """Values of the empirical quantile function at the n mid-points (i + 0.5) / n."""
    m = len(sorted_x)
    if m == n:
        return sorted_x
    idx = ((torch.arange(n, dtype=torch.float64) + 0.5) / n * m).floor().long().clamp(max=m - 1)
    return sorted_x[idx]


__all__ = ["ExactDenoiser", "GaussianMixture", "sliced_wasserstein", "toy_2d", "toy_nd", "toy_patterns"]
