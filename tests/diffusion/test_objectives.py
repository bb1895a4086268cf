"""Objectives: noise-level distributions, weightings, condition dropout, and the loss identity."""

import math

import pytest
import torch

from gen3d.config import from_dict, to_dict
from gen3d.diffusion.conditioning import NULL_LABEL, Conditioning
from gen3d.diffusion.denoiser import Precond, PrecondConfig
from gen3d.diffusion.objectives import (
    ObjectiveConfig,
    diffusion_loss,
    drop_condition,
    loss_weight,
    sample_sigma,
)
from gen3d.diffusion.schedules import alpha_bar_to_sigma, ddpm_linear_alpha_bar, sigma_to_flow_t
from gen3d.nets import MLPConfig, ToyMLP


def test_lognormal_sigma_matches_edm_parameters():
    s = sample_sigma(ObjectiveConfig(p_mean=-1.2, p_std=1.2), 100_000, torch.Generator().manual_seed(0))
    ln = s.double().log()
    # SE of the mean 1.2 / sqrt(1e5) ~ 0.004
    assert ln.mean().item() == pytest.approx(-1.2, abs=0.02)
    assert ln.std().item() == pytest.approx(1.2, abs=0.02)


def test_flow_and_vp_sigma_sampling():
    g = torch.Generator().manual_seed(1)
    t = sigma_to_flow_t(sample_sigma(ObjectiveConfig(sigma_sampling="flow_uniform"), 100_000, g).double())
    assert t.mean().item() == pytest.approx(0.5, abs=0.005) and t.var().item() == pytest.approx(1 / 12, abs=0.003)
    ln = sample_sigma(ObjectiveConfig(sigma_sampling="flow_logit_normal", p_mean=0.0, p_std=1.0), 100_000, g).double().log()
    # logit(t) = ln(t / (1 - t)) = ln sigma ~ N(0, 1) (SD3 eq. 19)
    assert ln.mean().item() == pytest.approx(0.0, abs=0.02) and ln.std().item() == pytest.approx(1.0, abs=0.02)
    s = sample_sigma(ObjectiveConfig(sigma_sampling="vp_linear"), 5000, g).double()
    table = alpha_bar_to_sigma(ddpm_linear_alpha_bar()).float().double()
    assert torch.isin(s, table).all()  # exactly the discrete training levels


def test_weightings_formulas():
    s = torch.tensor([0.01, 0.3, 1.0, 10.0])
    snr = 1 / s**2
    torch.testing.assert_close(loss_weight(ObjectiveConfig(weighting="min_snr"), "eps", s), snr.clamp(max=5.0))
    torch.testing.assert_close(loss_weight(ObjectiveConfig(weighting="uniform"), "eps", s), snr)
    torch.testing.assert_close(loss_weight(ObjectiveConfig(weighting="uniform"), "v", s), snr + 1)
    torch.testing.assert_close(loss_weight(ObjectiveConfig(weighting="edm"), "edm", s, 0.5), (s**2 + 0.25) / (0.5 * s) ** 2)
    # EDM's weighting on the EDM parameterisation is exactly its uniform (unit-weight) loss
    torch.testing.assert_close(loss_weight(ObjectiveConfig(weighting="uniform"), "edm", s),
                               loss_weight(ObjectiveConfig(weighting="edm"), "edm", s))


@pytest.mark.parametrize("prediction", ["edm", "eps", "v", "x0", "flow"])
@pytest.mark.parametrize("weighting", ["uniform", "min_snr", "edm"])
def test_loss_equals_weighted_x0_error(prediction, weighting):
    """diffusion_loss (computed on the native target) equals E[lambda(sigma) ||D - x0||^2] / dim."""
    torch.manual_seed(0)
    model = Precond(ToyMLP(MLPConfig(hidden=16, depth=1)), PrecondConfig(prediction=prediction))
    for p in model.parameters():  # leave the zero init so D is not just c_skip x
        torch.nn.init.normal_(p, std=0.3)
    cfg = ObjectiveConfig(weighting=weighting)
    x0 = torch.randn(32, 2)
    loss = diffusion_loss(model, x0, cfg, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # replay the same draws: sigma, then noise
    sigma = sample_sigma(cfg, 32, g)
    noise = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        d = model(x0 + sigma[:, None] * noise, sigma)
    expected = (loss_weight(cfg, prediction, sigma) * ((d - x0) ** 2).mean(1)).mean()
    torch.testing.assert_close(loss.detach(), expected, rtol=2e-4, atol=1e-6)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_condition_dropout_rate_and_null_semantics():
    n = 20_000
    cond = Conditioning(tokens=torch.ones(n, 3, 4), embedding=torch.ones(n, 2), labels=torch.ones(n, dtype=torch.long))
    out = drop_condition(cond, 0.2, torch.Generator().manual_seed(0))
    dropped = out.labels == NULL_LABEL
    # binomial SE sqrt(0.2 * 0.8 / 2e4) ~ 0.003
    assert dropped.float().mean().item() == pytest.approx(0.2, abs=0.012)
    assert (out.tokens[dropped] == 0).all() and (out.tokens[~dropped] == 1).all()
    assert torch.equal(out.embedding, cond.embedding)  # camera / time is never dropped
    assert drop_condition(cond, 0.0) is cond and drop_condition(None, 0.5) is None
    null = cond.null()
    assert (null.labels == NULL_LABEL).all() and (null.tokens == 0).all()


def test_conditioning_validation_and_batch_ops():
    with pytest.raises(ValueError, match="batch size"):
        Conditioning(tokens=torch.zeros(2, 3, 4), labels=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="tokens"):
        Conditioning(tokens=torch.zeros(2, 3))
    a = Conditioning(labels=torch.tensor([0, 1]))
    assert a.cat(a.null()).labels.tolist() == [0, 1, NULL_LABEL, NULL_LABEL]
    assert a.repeat(2).labels.tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="only one"):
        a.cat(Conditioning(labels=torch.tensor([0]), embedding=torch.zeros(1, 2)))


def test_objective_config_roundtrips_and_validates():
    cfg = ObjectiveConfig(sigma_sampling="flow_logit_normal", weighting="min_snr", cond_drop_prob=0.1)
    assert from_dict(ObjectiveConfig, to_dict(cfg)) == cfg
    with pytest.raises(ValueError):
        ObjectiveConfig(cond_drop_prob=1.5)
    assert math.isfinite(loss_weight(ObjectiveConfig(weighting="min_snr"), "x0", torch.tensor([1e-4])).item())
