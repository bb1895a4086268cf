"""The one boundary between what a network predicts and the denoiser D(x, sigma, cond) samplers use.

A network may predict epsilon (Ho et al. 2020), v (Salimans & Ho 2022), x0, the flow-matching
velocity n - x0 (Lipman et al. 2023; Liu et al. 2023) or EDM's preconditioned target F (Karras et
al. 2022). All five are instances of EDM's preconditioning (EDM eq. 7, Table 1):

    D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma))

with x = x0 + sigma n. Writing them this way gives, for free,

* the network's training target F* = (x0 - c_skip x) / c_out (``Precond.target``), and
* the identity ||F - F*||^2 = ||D - x0||^2 / c_out^2, so "plain MSE on the model's own target" is
  the x0-space loss weighted by 1 / c_out^2 (``native_weight``); see ``objectives``.

| prediction | c_in            | c_skip              | c_out                      | F*            |
| ---------- | --------------- | ------------------- | -------------------------- | ------------- |
| edm        | 1/sqrt(s^2+sd^2)| sd^2/(s^2+sd^2)     | s sd / sqrt(s^2+sd^2)      | EDM eq. 8     |
| eps        | 1/sqrt(1+s^2)   | 1                   | -s                         | n             |
| v          | 1/sqrt(1+s^2)   | 1/(1+s^2)           | -s/sqrt(1+s^2)             | a n - b x0    |
| x0         | 1/sqrt(1+s^2)   | 0                   | 1                          | x0            |
| flow       | 1/(1+s)         | 1/(1+s)             | -s/(1+s)                   | n - x0        |

(s = sigma, sd = sigma_data, a = 1/sqrt(1+s^2), b = s/sqrt(1+s^2)). The eps / v / x0 networks see the
VP-scaled input x / sqrt(1 + s^2) and the flow network sees (1 - t) x0 + t n, exactly what they
would see in their original papers. Samplers never convert anything: they call D.

Why our own: diffusers has no denoiser abstraction (each scheduler converts the model output
itself, in its ``step``); the edm2 ``Precond`` module covers only EDM's own parameterisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import torch
from jaxtyping import Float
from torch import Tensor, nn

from gen3d.diffusion.conditioning import Conditioning
from gen3d.diffusion.schedules import _bcast, ddpm_linear_alpha_bar, sigma_to_timestep

Prediction = Literal["edm", "eps", "v", "x0", "flow"]
PREDICTIONS: tuple[str, ...] = ("edm", "eps", "v", "x0", "flow")
NoiseInput = Literal["log_sigma", "flow_t", "ddpm_t"]


@runtime_checkable
class Denoiser(Protocol):
    """D(x, sigma, cond) ~ E[x0 | x], for x = x0 + sigma n. The interface every sampler consumes."""

    def __call__(
        self, x: Float[Tensor, "B ..."], sigma: Float[Tensor, " B"], cond: Conditioning | None = None
    ) -> Float[Tensor, "B ..."]: ...


@dataclass(frozen=True)
class Coefficients:
    """Per-sample preconditioning coefficients, each shaped to broadcast against x."""

    c_in: Tensor
    c_skip: Tensor
    c_out: Tensor


def coefficients(prediction: str, sigma: Tensor, like: Tensor, sigma_data: float = 0.5) -> Coefficients:
    """c_in, c_skip, c_out of EDM eq. 7 for each prediction type (see the table in the module docstring)."""
    s = _bcast(sigma, like)
    if prediction == "edm":  # EDM Table 1, "Ours" column
        sd2 = sigma_data**2
        return Coefficients(1 / (s**2 + sd2).sqrt(), sd2 / (s**2 + sd2), s * sigma_data / (s**2 + sd2).sqrt())
    if prediction == "eps":  # x0 = (x_vp - sqrt(1-abar) eps) / sqrt(abar)  (Ho et al. 2020, eq. 4 solved for x0)
        return Coefficients(1 / (1 + s**2).sqrt(), torch.ones_like(s), -s)
    if prediction == "v":  # x0 = sqrt(abar) x_vp - sqrt(1-abar) v  (Salimans & Ho 2022, Sec. 4 / App. D)
        return Coefficients(1 / (1 + s**2).sqrt(), 1 / (1 + s**2), -s / (1 + s**2).sqrt())
    if prediction == "x0":
        return Coefficients(1 / (1 + s**2).sqrt(), torch.zeros_like(s), torch.ones_like(s))
    if prediction == "flow":  # x0 = x_t - t u with x_t = (1-t) x0 + t n, u = n - x0 (Liu et al. 2023, eq. 1)
        return Coefficients(1 / (1 + s), 1 / (1 + s), -s / (1 + s))
    raise ValueError(f"unknown prediction type {prediction!r}; choose one of {', '.join(PREDICTIONS)}")


def denoised_from_prediction(prediction: str, out: Tensor, x: Tensor, sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """D = c_skip x + c_out F: a network output of type ``prediction`` turned into an x0 estimate."""
    c = coefficients(prediction, sigma, x, sigma_data)
    return c.c_skip * x + c.c_out * out


def prediction_from_denoised(prediction: str, denoised: Tensor, x: Tensor, sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """F = (D - c_skip x) / c_out: an x0 estimate expressed as a ``prediction``-type output (e.g. epsilon
    for a diffusers scheduler). ``x`` is in sigma form (x0 + sigma n)."""
    c = coefficients(prediction, sigma, x, sigma_data)
    return (denoised - c.c_skip * x) / c.c_out


def native_weight(prediction: str, sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """1 / c_out^2: the x0-space weight that plain MSE on the ``prediction`` target implies (per sample)."""
    c_out = coefficients(prediction, sigma, sigma.reshape(-1), sigma_data).c_out
    return 1.0 / c_out**2


# --------------------------------------------------------------------------------------------------
# Wrapping a network
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrecondConfig:
    """How a backbone's output is read. ``noise_input`` is what the backbone gets as its time input:
    0.25 ln sigma (EDM's c_noise), 1000 t for flow time t (SD3 convention), or the fractional DDPM
    training timestep (to drive diffusers models trained on 1000 linear-beta steps)."""

    prediction: Prediction = "edm"
    sigma_data: float = 0.5  # std of the data; used by the "edm" parameterisation only
    noise_input: NoiseInput = "log_sigma"

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if not self.sigma_data > 0:
            raise ValueError(f"sigma_data must be positive, got {self.sigma_data}")


def noise_input(kind: str, sigma: Tensor) -> Tensor:
    """The scalar time input c_noise(sigma) handed to the backbone."""
    if kind == "log_sigma":  # EDM Table 1: c_noise = ln(sigma) / 4
        return sigma.clamp(min=1e-20).log() / 4
    if kind == "flow_t":
        return 1000.0 * sigma / (1 + sigma)
    if kind == "ddpm_t":
        return sigma_to_timestep(sigma, ddpm_linear_alpha_bar()).to(sigma.dtype)
    raise ValueError(f"unknown noise_input {kind!r}")


class Precond(nn.Module):
    """A backbone ``net(x_in, c_noise, tokens=, embedding=, labels=, views=)`` seen as a :class:`Denoiser`.

    ``forward`` returns D(x, sigma, cond); ``raw`` the backbone's own output F; ``target`` the F*
    it is trained towards. Saved as ``precond.json`` + the backbone's own folder ``net/``.
    """

    def __init__(self, net: nn.Module, config: PrecondConfig = PrecondConfig()):
        super().__init__()
        self.net = net
        self.config = config

    def coefficients(self, sigma: Tensor, like: Tensor) -> Coefficients:
        return coefficients(self.config.prediction, sigma, like, self.config.sigma_data)

    def raw(self, x: Tensor, sigma: Float[Tensor, " B"], cond: Conditioning | None = None, views: int = 1) -> Tensor:
        """The backbone output F(c_in x, c_noise) (EDM eq. 7)."""
        cond = cond or Conditioning()
        sigma = _per_sample(sigma, x)
        c = self.coefficients(sigma, x)
        return self.net(
            (c.c_in * x).to(x.dtype),
            noise_input(self.config.noise_input, sigma).to(x.dtype),
            tokens=cond.tokens,
            embedding=cond.embedding,
            labels=cond.labels,
            views=views,
        )

    def forward(self, x: Tensor, sigma: Float[Tensor, " B"], cond: Conditioning | None = None, views: int = 1) -> Tensor:
        sigma = _per_sample(sigma, x)
        c = self.coefficients(sigma, x)
        return (c.c_skip * x + c.c_out * self.raw(x, sigma, cond, views)).to(x.dtype)

    def target(self, x0: Tensor, noise: Tensor, sigma: Float[Tensor, " B"]) -> Tensor:
        """F* = (x0 - c_skip x) / c_out for x = x0 + sigma n (EDM eq. 8, generalised)."""
        x = x0 + _bcast(sigma, x0) * noise
        c = self.coefficients(sigma, x0)
        return (x0 - c.c_skip * x) / c.c_out

    # ---- save / load (safetensors + JSON; the backbone saves itself) ----
    def save_pretrained(self, path: str | Path) -> None:
        from gen3d.nets.base import save_module_dir

        save_module_dir(path, {"precond.json": _config_dict(self.config)}, {"net": self.net})

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu") -> Precond:
        from gen3d.config import from_dict
        from gen3d.errors import DataError
        from gen3d.nets import load_net
        from gen3d.utils.io import read_json

        path = Path(path)
        if not (path / "precond.json").is_file():
            raise DataError(f"{path} is not a saved denoiser (no precond.json); save one with Precond.save_pretrained")
        config = from_dict(PrecondConfig, read_json(path / "precond.json"), str(path / "precond.json"))
        return cls(load_net(path / "net", map_location=map_location), config)


def _config_dict(cfg) -> dict:
    from gen3d.config import to_dict

    return to_dict(cfg)


def _per_sample(sigma: Tensor | float, x: Tensor) -> Tensor:
    """sigma as a (B,) tensor in x's dtype (a scalar is broadcast to the batch)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ValueError(f"sigma must be a scalar or shaped (B,) = ({x.shape[0]},), got {tuple(sigma.shape)}")
    return sigma


def snr(sigma: Tensor) -> Tensor:
    """Signal-to-noise ratio abar / (1 - abar) = 1 / sigma^2 (Kingma et al. 2021, eq. 2)."""
    return 1.0 / sigma**2


__all__ = [
    "Conditioning",
    "Denoiser",
    "Precond",
    "PrecondConfig",
    "coefficients",
    "denoised_from_prediction",
    "native_weight",
    "noise_input",
    "prediction_from_denoised",
    "snr",
]
