from __future__ import annotations

import torch

from gen3d.cameras import orbit_cameras
from gen3d.nets import load_net
from gen3d.nets.multiview import MultiViewConfig, MultiViewNet, camera_vector, plucker_from_vector
from gen3d.nets.unet import UNetConfig

CFG = MultiViewConfig(latent_channels=4, token_dim=8, unet=UNetConfig(channels=(16, 32), attention_levels=(0, 1), heads=2))


def _cams(v=4, res=8):
    cams = orbit_cameras(20.0, [90.0 * i for i in range(v)], 2.6, 30.0, res)
    return cams, camera_vector(cams.c2w, cams.K, cams.width, cams.height)


def test_plucker_rays_match_the_cameras():
    cams, vec = _cams(res=8)
    pl = plucker_from_vector(vec, 8, 8)  # V 6 8 8
    o, d = cams.rays()  # V H W 3 each
    d = d / d.norm(dim=-1, keepdim=True)
    assert torch.allclose(pl[:, :3].permute(0, 2, 3, 1), d, atol=1e-5)
    # the moment o x d is the same for every point on the ray (here: the camera centre and centre + 2 d)
    m = torch.cross(o + 2 * d, d, dim=-1)
    assert torch.allclose(pl[:, 3:].permute(0, 2, 3, 1), m, atol=1e-5)
    # intrinsics are stored normalised: a 2x finer grid sees the same central directions
    fine = plucker_from_vector(vec, 16, 16)
    assert torch.allclose(fine[:, :3, 7:9, 7:9].mean(dim=(2, 3)), pl[:, :3, 3:5, 3:5].mean(dim=(2, 3)), atol=2e-2)


def test_views_attend_to_each_other_only_within_an_object():
    torch.manual_seed(0)
    net = MultiViewNet(CFG)
    for p in net.parameters():  # zero-initialised output layers would hide any mixing
        torch.nn.init.normal_(p, std=0.05)
    _, vec = _cams()
    x = torch.randn(8, 4, 8, 8)
    emb, tok, t = vec.repeat(2, 1), torch.randn(8, 3, 8), torch.zeros(8)
    y = net(x, t, tok, emb, views=4)
    x2 = x.clone()
    x2[1] += 5.0  # change view 1 of object 0
    y2 = net(x2, t, tok, emb, views=4)
    assert (y2[0] - y[0]).abs().max() > 1e-5  # view 0 of the same object notices
    assert (y2[4:] - y[4:]).abs().max() < 1e-7  # object 1 does not
    y1 = net(x2, t, tok, emb, views=1)  # views=1: no cross-view attention at all
    assert (y1[0] - net(x, t, tok, emb, views=1)[0]).abs().max() < 1e-7


def test_camera_is_required_and_save_load_round_trips(tmp_path):
    import pytest

    net = MultiViewNet(CFG)
    with pytest.raises(ValueError, match="camera vector"):
        net(torch.randn(4, 4, 8, 8), torch.zeros(4), views=4)
    net.save_pretrained(tmp_path / "net")
    back = load_net(tmp_path / "net")
    assert isinstance(back, MultiViewNet) and back.config == CFG
    _, vec = _cams()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    net.save_pretrained(tmp_path / "net2")
    back = load_net(tmp_path / "net2")
    x, tok = torch.randn(4, 4, 8, 8), torch.randn(4, 2, 8)
    assert torch.equal(back(x, torch.zeros(4), tok, vec, views=4), net(x, torch.zeros(4), tok, vec, views=4))


def test_dit_backbone_runs_multi_view():
    from gen3d.nets.dit import DiTConfig

    net = MultiViewNet(MultiViewConfig(latent_channels=4, token_dim=8, backbone="dit",
                                       dit=DiTConfig(patch_size=2, hidden=32, depth=2, heads=2)))
    _, vec = _cams()
    y = net(torch.randn(4, 4, 8, 8), torch.zeros(4), torch.randn(4, 2, 8), vec, views=4)
    assert y.shape == (4, 4, 8, 8)
