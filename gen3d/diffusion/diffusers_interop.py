"""Any diffusers scheduler (DPM-Solver++, UniPC, DDIM, Euler, flow matching, ...) as a gen3d sampler.

diffusers' schedulers are well-tested multistep solvers we should not rewrite, so instead of our own
DPM-Solver++ we drive theirs: at each of the scheduler's timesteps we convert its state to sigma form,
call our denoiser D(x, sigma, cond), convert D into the output type the scheduler expects (epsilon,
v, sample or flow velocity; ``denoiser.prediction_from_denoised``, the one conversion boundary) and
let ``scheduler.step`` do the update. The result is a :class:`SampleResult` with the same NFE count
and trajectory layout as our own samplers, so benchmarks and tests treat both alike.

Coordinates: VP schedulers (with ``alphas_cumprod``) keep x_vp = x / sqrt(1 + sigma^2), or sigma
form for Euler-type ones whose ``scale_model_input`` divides by sqrt(1 + sigma^2); in both cases
``scale_model_input(x, t) * sqrt(1 + sigma_t^2)`` is the sigma-form state. The sigma of a
(possibly fractional) timestep comes from the training table, log-interpolated like diffusers does.
Flow-matching schedulers keep x_t = (1 - s) x0 + s n with s = t / num_train_timesteps, so
sigma = s / (1 - s); s = 1 (infinite sigma) is evaluated at s = 1 - 1e-4.
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor
from tqdm.auto import tqdm

from gen3d.diffusion.conditioning import Conditioning
from gen3d.diffusion.denoiser import Denoiser, prediction_from_denoised
from gen3d.diffusion.samplers import SampleResult
from gen3d.diffusion.schedules import timestep_to_sigma

_PREDICTION = {"epsilon": "eps", "v_prediction": "v", "sample": "x0", "flow_prediction": "flow"}
_FLOW_S_MAX = 1.0 - 1e-4


def make_scheduler(name: str):
    """The diffusers schedulers offered by name in ``samplers.sample`` (DDPM linear betas, T = 1000)."""
    import diffusers

    if name == "dpmpp_2m":  # Lu et al. 2022, "DPM-Solver++", 2nd-order multistep, data prediction
        return diffusers.DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2)
    if name == "unipc":  # Zhao et al. 2023, "UniPC", bh2 corrector
        return diffusers.UniPCMultistepScheduler()
    if name == "diffusers_flow_euler":
        return diffusers.FlowMatchEulerDiscreteScheduler(shift=1.0)
    raise ValueError(f"unknown diffusers sampler {name!r}; choose dpmpp_2m, unipc or diffusers_flow_euler")


def _is_flow(scheduler) -> bool:
    return not hasattr(scheduler, "alphas_cumprod") and type(scheduler).__name__.startswith("FlowMatch")


def diffusers_sample(
    scheduler,
    denoiser: Denoiser,
    noise: Tensor,
    steps: int,
    cond: Conditioning | None = None,
    generator: torch.Generator | None = None,
    trajectory: bool = False,
    progress: bool = False,
) -> SampleResult:
    """Sample with a diffusers scheduler: ``steps`` is its ``num_inference_steps``; NFE = its timesteps."""
    flow = _is_flow(scheduler)
    if not flow and not hasattr(scheduler, "alphas_cumprod"):
        raise ValueError(f"{type(scheduler).__name__}: neither a VP (alphas_cumprod) nor a flow-matching scheduler")
    pred_type = "flow_prediction" if flow else scheduler.config.prediction_type
    if pred_type not in _PREDICTION:
        raise ValueError(f"{type(scheduler).__name__}: unsupported prediction_type {pred_type!r}")
    pred = _PREDICTION[pred_type]
    scheduler.set_timesteps(steps)
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    x = noise * float(getattr(scheduler, "init_noise_sigma", 1.0))
    states, sigmas, nfe = [], [], 0
    for t in tqdm(scheduler.timesteps, desc="sampling", unit="nfe", leave=False, disable=not progress):
        if flow:
            s = torch.as_tensor(float(t) / scheduler.config.num_train_timesteps, dtype=torch.float64).clamp(max=_FLOW_S_MAX)
            sigma = s / (1 - s)
            x_sig = x / (1 - s)
        else:
            sigma = timestep_to_sigma(torch.as_tensor(t), scheduler.alphas_cumprod)
            x_sig = scheduler.scale_model_input(x, t) * (1 + sigma**2).sqrt()
        x_sig = x_sig.to(noise.dtype)
        d = denoiser(x_sig, torch.full((x.shape[0],), float(sigma), dtype=x.dtype, device=x.device), cond)
        nfe += 1
        out = prediction_from_denoised(pred, d, x_sig, torch.full((x.shape[0],), float(sigma), dtype=torch.float64))
        states.append(x_sig)
        sigmas.append(float(sigma))
        x = scheduler.step(out.to(x.dtype), t, x, **step_kwargs).prev_sample
    states.append(x)
    sigmas.append(0.0)
    return SampleResult(
        x=x,
        nfe=nfe,
        sigmas=torch.tensor(sigmas, dtype=torch.float64),
        trajectory=torch.stack(states) if trajectory else None,
    )


__all__ = ["diffusers_sample", "make_scheduler"]
