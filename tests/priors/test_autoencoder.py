from __future__ import annotations

import pytest
import torch

from gen3d.autoencoders.autoencoder import (
    Autoencoder,
    AutoencoderConfig,
    DiscriminatorConfig,
    PatchDiscriminator,
    adaptive_gan_weight,
    hinge_d_loss,
)
from gen3d.errors import DataError


@pytest.mark.parametrize("reg", ["kl", "vq"])
def test_shapes_factor_and_gradients(reg):
    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(latent_channels=4, channels=(8, 16, 16, 16), regularizer=reg, codebook_size=32,
                                        lowpass_skip=False))
    assert ae.config.factor == 8
    x = torch.randn(2, 5, 32, 32)
    x_hat, enc = ae(x)
    assert x_hat.shape == x.shape and enc.z.shape == (2, 4, 4, 4)
    assert float(enc.reg_loss) >= 0
    ((x_hat - x) ** 2).mean().add(enc.reg_loss).backward()
    assert ae.encoder.net[0].weight.grad.abs().sum() > 0  # gradients reach the encoder (straight-through for VQ)
    if reg == "vq":
        assert enc.codes.shape == (2, 4, 4) and int(enc.codes.max()) < 32


def test_kl_posterior_and_normalised_latents():
    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(latent_channels=6, channels=(8, 16)))
    x = torch.randn(3, 5, 16, 16)
    raw = ae.encode_raw(x, sample=False).mean
    ae.latent_shift.copy_(raw.mean(dim=(0, 2, 3)))
    ae.latent_scale.copy_(raw.std(dim=(0, 2, 3)))
    z = ae.encode(x)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(6), atol=1e-5)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(6), atol=1e-4)
    assert torch.allclose(ae.decode(z), ae.decode_raw(raw), atol=1e-5)  # decode undoes the normalisation


def test_lowpass_skip_starts_from_the_pooled_image():
    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(latent_channels=6, channels=(8, 16, 16)))
    with pytest.raises(ValueError, match="latent_channels >= in_channels"):
        AutoencoderConfig(latent_channels=4)
    # silence the learned parts: what is left is the skip path, pool by f then upsample
    for conv in (ae.encoder.net[-1], ae.decoder.conv_out):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    x = torch.rand(2, 5, 16, 16) * 2 - 1
    z = ae.encode_raw(x, sample=False).mean
    pooled = torch.nn.functional.avg_pool2d(x, 4)
    assert torch.allclose(z[:, :5], pooled, atol=1e-6) and float(z[:, 5:].abs().max()) == 0.0
    up = torch.nn.functional.interpolate(pooled, scale_factor=4, mode="bilinear", align_corners=False)
    assert torch.allclose(ae.decode_raw(z), up, atol=1e-6)


def test_save_load_round_trip_and_wrong_input(tmp_path):
    ae = Autoencoder(AutoencoderConfig(latent_channels=4, channels=(8, 16), lowpass_skip=False))
    ae.latent_scale.fill_(2.5)
    ae.save_pretrained(tmp_path / "ae")
    back = Autoencoder.from_pretrained(tmp_path / "ae")
    x = torch.randn(1, 5, 16, 16)
    assert torch.equal(back.encode(x), ae.encode(x)) and float(back.latent_scale[0]) == 2.5
    with pytest.raises(ValueError, match="divisible by 2"):
        ae.encode(torch.randn(1, 5, 15, 16))
    with pytest.raises(ValueError, match=r"\(B, 5, H, W\)"):
        ae.encode(torch.randn(1, 3, 16, 16))
    (tmp_path / "ae" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(Exception):
        Autoencoder.from_pretrained(tmp_path / "ae")
    with pytest.raises(DataError, match="no config.json"):
        Autoencoder.from_pretrained(tmp_path / "nothing")


def test_patch_discriminator_and_losses():
    d = PatchDiscriminator(DiscriminatorConfig(in_channels=5, channels=8, layers=3))
    logits = d(torch.randn(2, 5, 64, 64))
    assert logits.ndim == 4 and logits.shape[0] == 2 and logits.shape[-1] > 1  # a grid of patches
    assert float(hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0))) == 0.0  # confident and right
    assert float(hinge_d_loss(torch.zeros(4), torch.zeros(4))) == pytest.approx(1.0)
    w = torch.randn(3, 3, requires_grad=True)
    rec, gan = (w**2).sum(), (2 * w).sum()
    lam = adaptive_gan_weight(rec, gan, w)
    assert float(lam) == pytest.approx(float((2 * w).norm() / (torch.full((3, 3), 2.0).norm() + 1e-4)), rel=1e-4)


def test_training_reduces_the_loss_and_resumes_exactly(tiny_data, tmp_path, monkeypatch):
    import gen3d.training.loop as loop
    from gen3d.autoencoders.train import AETrainConfig, train_autoencoder
    from gen3d.utils.io import read_json

    def cfg(out):
        return AETrainConfig(data=str(tiny_data), out=str(out), model=AutoencoderConfig(latent_channels=6, channels=(8, 16, 16)),
                             steps=6, batch_size=4, disc_start=3, checkpoint_every=2, log_every=1, eval_objects=2,
                             stats_objects=8, lr=2e-3, warmup=1, device="cpu")

    full = train_autoencoder(cfg(tmp_path / "full"), quiet=True)
    assert full["heldout_views"] == 8 and 0 < full["psnr_rgb_mean"] < 100
    _interrupt_after_checkpoint(monkeypatch, loop, at_step=4)  # killed after its step-4 checkpoint (GAN running)
    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(cfg(tmp_path / "part"), quiet=True)
    monkeypatch.undo()
    train_autoencoder(cfg(tmp_path / "part"), quiet=True)  # the same command again resumes
    a = Autoencoder.from_pretrained(tmp_path / "full" / "autoencoder").state_dict()
    b = Autoencoder.from_pretrained(tmp_path / "part" / "autoencoder").state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    log = read_json(tmp_path / "full" / "checkpoints" / "last.json")["log"]
    assert log[-1]["l1"] < log[0]["l1"]
    assert "d_loss" in log[-1] and "d_loss" not in log[0]  # the discriminator starts at disc_start
    assert (tmp_path / "full" / "losses.png").is_file() and (tmp_path / "full" / "recon.png").is_file()


def _interrupt_after_checkpoint(monkeypatch, loop, at_step: int) -> None:
    """Make the trainer die (as with Ctrl-C) right after it has written the checkpoint of ``at_step``."""
    real = loop.save_train_state

    def save_then_die(folder, modules, optimizers, meta):
        real(folder, modules, optimizers, meta)
        if meta["step"] >= at_step:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_train_state", save_then_die)


def test_decoder_fine_tune_keeps_the_latent_space(tiny_data, tiny_ae, tmp_path):
    """train_parts=decoder: the encoder and the latent statistics come out unchanged (a prior trained on
    the old latents stays valid), the decoder changes, and its reconstruction loss falls."""
    from gen3d.autoencoders.train import AETrainConfig, train_autoencoder
    from gen3d.utils.io import read_json

    with pytest.raises(ValueError, match="init_from"):
        AETrainConfig(train_parts="decoder")
    with pytest.raises(ValueError, match="train_parts"):
        AETrainConfig(train_parts="encoder", init_from=str(tiny_ae))
    out = tmp_path / "ft"
    res = train_autoencoder(AETrainConfig(data=str(tiny_data), out=str(out), init_from=str(tiny_ae), train_parts="decoder",
                                          steps=8, batch_size=4, disc_start=4, checkpoint_every=4, log_every=1,
                                          eval_objects=2, lr=2e-3, warmup=1, alpha_weight=1.0, device="cpu"), quiet=True)
    assert res["train_parts"] == "decoder" and res["init_from"] == str(tiny_ae)
    before = Autoencoder.from_pretrained(tiny_ae).state_dict()
    after = Autoencoder.from_pretrained(out / "autoencoder").state_dict()
    for k in before:
        if k.startswith("decoder.conv_out"):
            assert not torch.equal(before[k], after[k]), k
        elif not k.startswith("decoder."):
            assert torch.equal(before[k], after[k]), k  # encoder weights, latent_shift, latent_scale
    log = read_json(out / "checkpoints" / "last.json")["log"]
    assert log[-1]["l1"] < log[0]["l1"]
