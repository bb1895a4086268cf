"""gen3d.diffusion: the diffusion core every prior is built from (see docs/diffusion.md).

One convention, x = x0 + sigma * n, throughout:

* ``schedules``     noise schedules (DDPM linear, cosine, EDM, flow), VP kernel, flow interpolation, grids
* ``conditioning``  ``Conditioning`` (text tokens, per-sample embedding, labels) and its null twin
* ``denoiser``      the ``Denoiser`` protocol and ``Precond``: the one eps / v / x0 / flow / EDM boundary
* ``objectives``    noise-level sampling, loss weightings (uniform, min-SNR, EDM), condition dropout
* ``samplers``      DDPM, DDIM, Euler, Heun, Euler-Maruyama, EDM churn, flow Euler / Heun
* ``diffusers_interop``  any diffusers scheduler (DPM-Solver++, UniPC, ...) behind the same interface
* ``guidance``      classifier-free guidance (interval, rescale) and autoguidance, as denoisers
* ``toy``           Gaussian mixtures with exact score / denoiser, sliced Wasserstein-2
* ``train``         a minimal training loop;  ``plots``: the toy and NFE figures
"""
