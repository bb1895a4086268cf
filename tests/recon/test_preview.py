"""Preview pictures: turntable GIF/MP4 frame counts and content, camera orbit, contact sheet size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from gen3d.cameras import Cameras
from gen3d.data.world import CLASS_BY_NAME, ObjectSpec, build_object
from gen3d.recon.preview import (
    mesh_face_colors,
    mesh_render_fn,
    mp4_available,
    render_turntable,
    turntable,
    views_contact_sheet,
)


@pytest.fixture(scope="module")
def chair() -> trimesh.Trimesh:
    spec = ObjectSpec(
        "chair",
        dict(CLASS_BY_NAME["chair"].canonical_params),
        {"seat": "red", "legs": "blue", "back": "green"},
    )
    return build_object(spec).to_trimesh()


def gif_frames(path) -> list[np.ndarray]:
    im = Image.open(path)
    frames = []
    for i in range(im.n_frames):
        im.seek(i)
        frames.append(np.asarray(im.convert("RGB")))
    return frames


def test_mesh_turntable_gif(tmp_path, chair):
    written = turntable(mesh_render_fn(chair), tmp_path / "turntable.gif", frames=8, res=48, mp4=False)
    assert written == [tmp_path / "turntable.gif"]
    frames = gif_frames(written[0])
    assert len(frames) == 8 and frames[0].shape == (48, 48, 3)
    assert Image.open(written[0]).info.get("loop") == 0  # loops forever
    for f in frames:
        object_px = (f < 200).any(axis=-1)  # the background is white
        assert 0.05 < object_px.mean() < 0.6  # the object is in frame, not cut off, not missing
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).mean() > 5  # it turns
    # The part colours show (seat red, legs blue, back green under shading): all three dominate somewhere.
    px = np.concatenate([f.reshape(-1, 3) for f in frames]).astype(int)
    for c in range(3):
        others = np.delete(px, c, axis=1).max(axis=1)
        assert ((px[:, c] > 120) & (others < 80)).sum() > 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["turntable.gif"]  # no temporaries left


@pytest.mark.skipif(not mp4_available(), reason="no MP4 encoder (PyAV or imageio-ffmpeg)")
def test_turntable_mp4(tmp_path, chair):
    import importlib.util

    import imageio.v3 as iio

    written = turntable(mesh_render_fn(chair), tmp_path / "t.gif", frames=6, res=32, mp4=True)
    assert [p.name for p in written] == ["t.gif", "t.mp4"]
    video = iio.imread(written[1], plugin="pyav" if importlib.util.find_spec("av") else "FFMPEG")
    assert video.shape == (6, 32, 32, 3)


def test_turntable_cameras_orbit_the_origin_in_batches():
    seen: list[Cameras] = []

    def fake_render(cams: Cameras) -> torch.Tensor:
        seen.append(cams)
        return torch.full((len(cams), 16, 16, 3), 0.5)

    images = render_turntable(fake_render, frames=30, elevation_deg=20.0, radius=2.6, res=16, batch=12)
    assert images.shape == (30, 16, 16, 3) and images.dtype == np.uint8
    assert [len(c) for c in seen] == [12, 12, 6]
    centers = torch.cat([c.centers for c in seen])
    torch.testing.assert_close(centers.norm(dim=-1), torch.full((30,), 2.6))
    torch.testing.assert_close(centers[:, 1], torch.full((30,), 2.6 * np.sin(np.radians(20.0))).float())
    az = torch.rad2deg(torch.atan2(centers[:, 0], centers[:, 2])) % 360
    torch.testing.assert_close(az, torch.arange(30) * 12.0, atol=1e-3, rtol=0)  # starts at the +z front
    with pytest.raises(ValueError, match="render_fn must return"):
        render_turntable(lambda cams: np.zeros((len(cams), 8, 8)), frames=2, res=8)


def test_views_contact_sheet_size(tmp_path):
    images = [np.full((32, 40, 3), i / 6.0) for i in range(6)]
    path = views_contact_sheet(images, tmp_path / "views.png", labels=[f"view {i}" for i in range(6)], cols=3)
    sheet = np.asarray(Image.open(path))
    pad, label_h = 2, 12
    assert sheet.shape == (2 * (32 + label_h + pad) + pad, 3 * (40 + pad) + pad, 3)
    np.testing.assert_array_equal(sheet[pad + 5, pad + 42 + 5], [42, 42, 42])  # 2nd tile: round(255 / 6)
    with pytest.raises(ValueError, match="labels"):
        views_contact_sheet(images, tmp_path / "v.png", labels=["a"])


def test_mesh_face_colors():
    m = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]], process=False)
    assert np.allclose(mesh_face_colors(m), 0.75)  # uncoloured: light grey
    m.visual.vertex_colors = np.array([[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]], np.uint8)
    np.testing.assert_allclose(mesh_face_colors(m), [[1 / 3, 1 / 3, 1 / 3]])
