"""Colour accuracy on shaded synthetic images of the 12 named albedos, mixed foregrounds and renders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gen3d.data.colors import COLORS
from gen3d.eval.color import NAMES, color_accuracy, color_votes, dominant_color

H = W = 32


def shaded(albedo, shading: np.ndarray, rng: np.random.Generator, noise: float = 0.02) -> np.ndarray:
    """An (H, W, 3) image of one albedo times a per-pixel shading factor, plus Gaussian noise, clipped."""
    img = np.asarray(albedo)[None, None] * shading[..., None]
    return np.clip(img + rng.normal(0.0, noise, img.shape), 0.0, 1.0)


def shading_fields(lo: float, hi: float, rng: np.random.Generator) -> list[np.ndarray]:
    """A horizontal ramp, a vertical ramp, a radial (sphere-like) falloff and i.i.d. uniform shading."""
    ramp = np.linspace(lo, hi, W)[None].repeat(H, 0)
    yy, xx = np.mgrid[0:H, 0:W]
    radial = hi - (hi - lo) * np.hypot(yy - H / 2, xx - W / 2) / np.hypot(H / 2, W / 2)
    return [ramp, ramp.T, radial, rng.uniform(lo, hi, (H, W))]


# The stated rate is 100%: every image below must come out right.
@pytest.mark.parametrize("lo,hi", [(0.5, 1.0), (0.4, 1.2)])  # our test range; the renderer's range
@pytest.mark.parametrize("color", COLORS, ids=lambda c: c.name)
def test_each_named_albedo_under_shading_and_noise(color, lo, hi):
    rng = np.random.default_rng(NAMES.index(color.name))
    for shading in shading_fields(lo, hi, rng):
        votes = color_votes(shaded(color.rgb, shading, rng), None)
        assert votes.name == color.name, (votes.name, votes.fractions)
        assert votes.fractions[color.name] > 0.85


def test_shadowed_white_is_not_gray_and_lit_gray_is_not_white():
    rng = np.random.default_rng(0)
    ramp = shading_fields(0.5, 1.0, rng)[0]
    white = color_votes(shaded(COLORS[NAMES.index("white")].rgb, ramp, rng), None)
    gray = color_votes(shaded(COLORS[NAMES.index("gray")].rgb, ramp, rng), None)
    # A per-pixel nearest-albedo rule would split both; the lit pixels decide for all neutral ones.
    assert white.fractions["white"] > 0.99
    assert gray.fractions["gray"] > 0.99


def test_white_mostly_in_shadow_is_still_white():
    # 70% of the pixels in shade (s in 0.4 .. 0.6), 30% lit: the median of all neutral pixels would
    # say gray (0.93 * 0.5 ~ 0.47); the lit ones say white.
    rng = np.random.default_rng(6)
    shading = np.where(
        rng.random((H, W)) < 0.7, rng.uniform(0.4, 0.6, (H, W)), rng.uniform(0.85, 1.0, (H, W))
    )
    assert dominant_color(shaded(COLORS[NAMES.index("white")].rgb, shading, rng), None) == "white"
    assert dominant_color(shaded(COLORS[NAMES.index("gray")].rgb, shading, rng), None) == "gray"


@pytest.mark.parametrize("red_share", [0.6, 0.4])
def test_half_red_half_blue_picks_the_majority(red_share):
    rng = np.random.default_rng(1)
    shading = rng.uniform(0.5, 1.0, (H, W))
    red_cols = round(red_share * W)
    img = shaded(COLORS[NAMES.index("blue")].rgb, shading, rng)
    img[:, :red_cols] = shaded(COLORS[NAMES.index("red")].rgb, shading, rng)[:, :red_cols]
    votes = color_votes(img, np.ones((H, W), bool))
    assert votes.name == ("red" if red_share > 0.5 else "blue")
    assert votes.fractions["red"] == pytest.approx(red_cols / W, abs=0.01)
    assert votes.fractions["blue"] == pytest.approx(1 - red_cols / W, abs=0.01)
    assert sum(votes.fractions.values()) == pytest.approx(1.0)
    assert set(votes.fractions) == set(NAMES) and votes.n_pixels == H * W


def test_chromatic_majority_beats_a_white_minority():
    rng = np.random.default_rng(2)
    shading = rng.uniform(0.5, 1.0, (H, W))
    img = shaded(COLORS[NAMES.index("green")].rgb, shading, rng)
    img[:, : W * 3 // 10] = shaded(COLORS[NAMES.index("white")].rgb, shading, rng)[:, : W * 3 // 10]
    votes = color_votes(img, None)
    assert votes.name == "green"
    assert votes.fractions["white"] == pytest.approx(9 / 32, abs=0.02)


def test_mask_excludes_the_background():
    rng = np.random.default_rng(3)
    img = np.ones((H, W, 3))  # white background
    mask = np.zeros((H, W), np.float32)
    mask[10:20, 10:20] = 1.0  # a small purple object: 10% of the image
    img[10:20, 10:20] = shaded(COLORS[NAMES.index("purple")].rgb, rng.uniform(0.5, 1, (10, 10)), rng)
    assert dominant_color(img, mask) == "purple"
    assert dominant_color(img, None) == "white"


def test_inputs_uint8_torch_and_soft_masks():
    rng = np.random.default_rng(4)
    img = shaded(COLORS[NAMES.index("orange")].rgb, rng.uniform(0.5, 1, (H, W)), rng)
    alpha = rng.uniform(0, 1, (H, W))
    expected = color_votes(img, alpha > 0.5)
    u8 = np.round(img * 255).astype(np.uint8)
    assert dominant_color(u8, alpha) == "orange"
    assert color_votes(torch.from_numpy(img).float(), torch.from_numpy(alpha)).name == "orange"
    assert color_votes(img, alpha).fractions == expected.fractions
    with pytest.raises(ValueError, match=r"permute\(1, 2, 0\)"):
        color_votes(torch.from_numpy(img).permute(2, 0, 1), None)
    with pytest.raises(ValueError, match="mask must have"):
        color_votes(img, alpha[:-1])


def test_empty_mask():
    img = np.zeros((H, W, 3))
    empty = np.zeros((H, W), bool)
    assert color_votes(img, empty).name is None
    with pytest.raises(ValueError, match="no foreground"):
        dominant_color(img, empty)


def test_color_accuracy():
    rng = np.random.default_rng(5)
    images = [shaded(c.rgb, rng.uniform(0.5, 1, (H, W)), rng) for c in COLORS]
    masks = [np.ones((H, W), bool)] * len(COLORS)
    assert color_accuracy(images, masks, NAMES) == 1.0
    # Synonyms name the same colour; a wrong name and an empty mask each count as a miss.
    names = ["crimson", *NAMES[1:-1], "white"]
    assert color_accuracy(images, masks, names) == pytest.approx(11 / 12)
    masks[0] = np.zeros((H, W), bool)
    assert color_accuracy(images, masks, NAMES) == pytest.approx(11 / 12)
    with pytest.raises(ValueError, match="one mask and one expected name"):
        color_accuracy(images, masks[:3], NAMES)
    with pytest.raises(KeyError, match="unknown colour"):
        color_accuracy(images[:1], masks[:1], ["mauve"])


def test_renders_of_every_colour():
    """Through the real renderer (Lambert key light + headlight + ambient, anti-aliased silhouettes)."""
    pytest.importorskip("open3d")
    import trimesh

    from gen3d.cameras import turntable_cameras
    from gen3d.data.render import MeshRenderer, RenderConfig

    cams = turntable_cameras(3, 20.0, 3.0, 40.0, 32)
    meshes = [trimesh.creation.icosphere(3, radius=0.7), trimesh.creation.torus(0.6, 0.2)]
    images, masks, names = [], [], []
    for mesh in meshes:
        for color in COLORS:
            face_colors = np.tile(color.rgb, (len(mesh.faces), 1))
            out = MeshRenderer(mesh.vertices, mesh.faces, face_colors, RenderConfig()).render(cams)
            images += list(out.rgb)
            masks += list(out.alpha)
            names += [color.name] * len(cams)
    assert color_accuracy(images, masks, names) == 1.0
