"""Backbones: shapes, every conditioning input has an effect, cross-view attention, save/load round-trip."""

import json

import pytest
import torch

from gen3d.config import dump_config, load_config
from gen3d.diffusion.denoiser import Precond, PrecondConfig
from gen3d.errors import DataError
from gen3d.nets import NETS, DiT, DiTConfig, MLPConfig, ToyMLP, UNet, UNetConfig, load_net
from gen3d.nets.attention import MultiHeadAttention, join_views, split_views
from gen3d.nets.embeddings import FourierEmbedding, SinusoidalEmbedding

TOK, EXTRA, CLASSES = 8, 3, 3


def _unet(**kw):
    cfg = {"in_channels": 2, "channels": (16, 32), "attention_levels": (1,), "heads": 2, "token_dim": TOK,
           "extra_embedding_dim": EXTRA, "num_classes": CLASSES}
    return UNet(UNetConfig(**{**cfg, **kw}))


def _dit(**kw):
    cfg = {"in_channels": 2, "hidden": 32, "depth": 2, "heads": 2, "patch_size": 2, "token_dim": TOK,
           "extra_embedding_dim": EXTRA, "num_classes": CLASSES}
    return DiT(DiTConfig(**{**cfg, **kw}))


def _mlp(**kw):
    base = {"shape": (2,), "hidden": 32, "depth": 2, "num_classes": CLASSES, "extra_embedding_dim": EXTRA}
    return ToyMLP(MLPConfig(**{**base, **kw}))


BUILDERS = {
    "unet-adagn-sin": lambda: _unet(),
    "unet-add-fourier": lambda: _unet(time_feed="add", time_embedding="fourier"),
    "dit-sin": lambda: _dit(),
    "dit-fourier": lambda: _dit(time_embedding="fourier"),
    "mlp": lambda: _mlp(),
}


def _inputs(net, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (2,) if isinstance(net, ToyMLP) else (2, 8, 8)
    kw = {"embedding": torch.randn(b, EXTRA, generator=g), "labels": torch.tensor([0, 1, 2, -1])[:b]}
    if not isinstance(net, ToyMLP):
        kw["tokens"] = torch.randn(b, 5, TOK, generator=g)
    return torch.randn(b, *shape, generator=g), torch.randn(b, generator=g), kw


def _randomize(net, seed=1):
    """Zero-initialised output layers make a fresh net ignore its inputs; perturb every parameter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return net


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_fresh_backbone_outputs_zero_so_precond_starts_at_c_skip(kind):
    net = BUILDERS[kind]()
    x, c, kw = _inputs(net)
    out = net(x, c, **kw)
    assert out.shape == x.shape
    if not isinstance(net, ToyMLP):  # zero-initialised output conv / adaLN-Zero final layer
        assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_every_conditioning_input_changes_the_output(kind):
    net = _randomize(BUILDERS[kind]()).eval()
    x, c, kw = _inputs(net)
    base = net(x, c, **kw)
    changes = {"c_noise": (x, c + 0.5, kw),
               "labels": (x, c, {**kw, "labels": torch.tensor([1, 2, 0, 0])}),
               "embedding": (x, c, {**kw, "embedding": kw["embedding"] + 1.0})}
    if "tokens" in kw:
        changes["tokens"] = (x, c, {**kw, "tokens": kw["tokens"] + 1.0})
    for name, (xx, cc, kk) in changes.items():
        out = net(xx, cc, **kk)
        assert (out - base).abs().amax(dim=tuple(range(1, out.ndim))).min() > 1e-4, f"{name} has no effect on some sample"


@pytest.mark.parametrize("kind", ["unet-adagn-sin", "dit-sin"])
def test_views_join_the_images_of_one_object_in_self_attention(kind):
    net = _randomize(BUILDERS[kind]()).eval()
    x, c, kw = _inputs(net)  # 4 images = 2 objects x 2 views
    kw["tokens"] = kw["tokens"][:2]  # text given once per object, repeated for its views
    x2 = x.clone()
    x2[1] += 1.0  # change view 1 of object 0
    a, b = net(x, c, views=2, **kw), net(x2, c, views=2, **kw)
    assert (a[0] - b[0]).abs().max() > 1e-4  # view 0 of the same object sees the change
    torch.testing.assert_close(a[2:], b[2:])  # the other object does not
    kw1 = {**kw, "tokens": kw["tokens"].repeat_interleave(2, 0)}
    a1, b1 = net(x, c, views=1, **kw1), net(x2, c, views=1, **kw1)
    torch.testing.assert_close(a1[0], b1[0])  # views=1: images are independent


def test_join_split_views_roundtrip_and_attention_matches_reference():
    x = torch.randn(6, 5, 8)
    torch.testing.assert_close(split_views(join_views(x, 3), 3), x)
    assert join_views(x, 3).shape == (2, 15, 8)
    attn = MultiHeadAttention(8, 2)
    # slow twin: explicit softmax(QK^T / sqrt(d)) V per head
    q = attn.q(x).reshape(6, 5, 2, 4).transpose(1, 2)
    k, v = attn.kv(x).reshape(6, 5, 2, 2, 4).permute(2, 0, 3, 1, 4)
    w = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)
    ref = attn.out((w @ v).transpose(1, 2).reshape(6, 5, 8))
    torch.testing.assert_close(attn(x), ref)


def test_embeddings_closed_forms():
    e = SinusoidalEmbedding(8, max_period=10000.0)
    c = torch.tensor([0.0, 2.0])
    f = torch.tensor([10000.0 ** (-j / 4) for j in range(4)])
    torch.testing.assert_close(e(c), torch.cat([torch.cos(c[:, None] * f), torch.sin(c[:, None] * f)], 1))
    fe = FourierEmbedding(8, scale=16.0)
    assert "freqs" in fe.state_dict()  # saved with the weights
    torch.testing.assert_close(fe(c)[:, :4], torch.cos(2 * torch.pi * c[:, None] * fe.freqs))


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_save_load_roundtrip_identical_outputs(kind, tmp_path):
    net = _randomize(BUILDERS[kind]()).eval()
    x, c, kw = _inputs(net)
    net.save_pretrained(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["config.json", "model.safetensors"]  # JSON + safetensors, nothing pickled
    loaded = load_net(tmp_path / "m").eval()
    assert type(loaded) is type(net) and loaded.config == net.config
    assert torch.equal(loaded(x, c, **kw), net(x, c, **kw))
    assert json.loads((tmp_path / "m" / "config.json").read_text())["kind"] == net.kind


def test_precond_save_load_roundtrip(tmp_path):
    model = Precond(_randomize(_dit()), PrecondConfig(prediction="flow", noise_input="flow_t")).eval()
    x, _, kw = _inputs(model.net)
    sigma = torch.tensor([0.1, 1.0, 3.0, 20.0])
    model.save_pretrained(tmp_path / "d")
    loaded = Precond.from_pretrained(tmp_path / "d").eval()
    assert loaded.config == model.config
    from gen3d.diffusion.conditioning import Conditioning

    cond = Conditioning(**kw)
    assert torch.equal(loaded(x, sigma, cond), model(x, sigma, cond))


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="config.json"):
        load_net(tmp_path / "missing")
    _mlp().save_pretrained(tmp_path / "m")
    with pytest.raises(DataError, match="'mlp'"):
        UNet.from_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["config"]["hidden"] = 64  # weights no longer match
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DataError, match="does not match"):
        load_net(tmp_path / "m")
    with pytest.raises(DataError, match="precond.json"):
        Precond.from_pretrained(tmp_path / "m")


@pytest.mark.parametrize("cls", [UNetConfig, DiTConfig, MLPConfig, PrecondConfig])
def test_configs_roundtrip_through_yaml(cls, tmp_path):
    cfg = {UNetConfig: UNetConfig(channels=(8, 16, 16), attention_levels=(2,), token_dim=4),
           DiTConfig: DiTConfig(hidden=64, heads=4, time_embedding="fourier"),
           MLPConfig: MLPConfig(shape=(1, 4, 4), num_classes=2),
           PrecondConfig: PrecondConfig(prediction="v", noise_input="ddpm_t")}[cls]
    dump_config(cfg, tmp_path / "c.yaml")
    assert load_config(cls, tmp_path / "c.yaml") == cfg


def test_shape_and_conditioning_errors():
    with pytest.raises(ValueError, match="divisible"):
        _unet()(torch.zeros(1, 2, 6, 5), torch.zeros(1))
    with pytest.raises(ValueError, match="divisible"):
        _dit()(torch.zeros(1, 2, 5, 6), torch.zeros(1))
    with pytest.raises(ValueError, match="cross-attention"):
        _mlp()(torch.zeros(1, 2), torch.zeros(1), tokens=torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="num_classes"):
        _mlp(num_classes=0)(torch.zeros(1, 2), torch.zeros(1), labels=torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_levels"):
        UNetConfig(channels=(8,), attention_levels=(1,))
    assert set(NETS) == {"mlp", "unet", "dit", "multiview"}
