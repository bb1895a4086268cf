from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from gen3d.cameras import orbit_cameras
from gen3d.data.render import MeshRenderer, RenderConfig


def sphere_renderer(r: float = 0.5, rgb=(0.2, 0.4, 0.8), **cfg) -> MeshRenderer:
    m = trimesh.creation.icosphere(subdivisions=5, radius=r)
    return MeshRenderer(m.vertices, m.faces, np.tile(rgb, (len(m.faces), 1)), RenderConfig(**cfg))


@pytest.mark.parametrize("engine", ["open3d", "torch"])
def test_sphere_depth_normals_and_silhouette_area(engine):
    r, D, res, fov = 0.5, 2.0, 96, 40.0
    cams = orbit_cameras([0.0, 35.0], [0.0, 120.0], D, fov, res)
    out = sphere_renderer(r, engine=engine).render(cams)
    c = res // 2
    # Centre pixel: camera z of the nearest surface point is D - r (pixel centre is 0.5 px off-axis).
    np.testing.assert_allclose(out.depth[:, c, c], D - r, atol=2e-3)
    # Its normal points back at the camera.
    to_cam = (cams.centers / cams.centers.norm(dim=-1, keepdim=True)).numpy()
    np.testing.assert_allclose(out.normals[:, c, c], to_cam, atol=0.03)
    # Silhouette: a disc of radius f * tan(asin(r / D)) pixels.
    f = float(cams.K[0, 1, 1])
    rad = f * math.tan(math.asin(r / D))
    area = out.alpha.sum(axis=(1, 2))
    np.testing.assert_allclose(area, math.pi * rad**2, rtol=0.02)
    assert out.depth[:, 0, 0].max() == 0 and out.alpha[:, 0, 0].max() == 0


def test_shading_of_the_centre_pixel_matches_the_lighting_model():
    rgb = np.array([0.2, 0.4, 0.8])
    cfg = dict(ambient=0.3, key=0.4, head=0.5, light_dir=(0.0, 0.0, 1.0), supersample=1)
    cams = orbit_cameras(0.0, 0.0, 2.0, 40.0, 65)  # camera on +z: the key light is a headlight too
    out = sphere_renderer(0.5, rgb, **cfg).render(cams)
    np.testing.assert_allclose(out.rgb[0, 32, 32], np.clip(rgb * (0.3 + 0.4 + 0.5), 0, 1), atol=0.01)


def test_backgrounds():
    cams = orbit_cameras(10.0, 0.0, 2.0, 40.0, 32)
    white = sphere_renderer(background="white").render(cams)
    clear = sphere_renderer(background="transparent").render(cams)
    np.testing.assert_allclose(white.rgb[0, 0, 0], 1.0)
    np.testing.assert_allclose(clear.rgb[0, 0, 0], 0.0)
    # Straight RGBA recovers the same object colour from either background where coverage is full.
    full = white.alpha[0] > 0.999
    np.testing.assert_allclose(white.rgba()[0][full], clear.rgba()[0][full], atol=1e-5)
    edge = (clear.alpha[0] > 0.1) & (clear.alpha[0] < 0.9)
    assert edge.any(), "supersampling should give fractional alpha at the silhouette"
    np.testing.assert_allclose(white.rgba()[0][edge][:, :3], clear.rgba()[0][edge][:, :3], atol=1e-3)


def test_face_colors_are_validated():
    m = trimesh.creation.box()
    with pytest.raises(ValueError, match="face_colors"):
        MeshRenderer(m.vertices, m.faces, np.zeros((3, 3)))


def test_procedural_object_renders_in_its_colours():
    from gen3d.data.colors import COLOR_BY_NAME
    from gen3d.data.render import render_object
    from gen3d.data.world import ObjectSpec, build_object

    spec = ObjectSpec("cube", {"width": 1.0, "height": 1.0, "depth": 1.0}, {"body": "red"})
    out = render_object(build_object(spec), orbit_cameras(20.0, [30.0, 200.0], 2.6, 40.0, 64))
    fg = out.alpha > 0.99
    px = out.rgb[fg]
    red = np.array(COLOR_BY_NAME["red"].rgb)
    # Shaded pixels are positive multiples of the albedo: the chromaticity is preserved.
    chroma = px / px.sum(-1, keepdims=True)
    np.testing.assert_allclose(chroma, np.broadcast_to(red / red.sum(), chroma.shape), atol=0.02)


def test_torch_engine_matches_open3d_on_procedural_objects():
    """The torch ray caster (used where open3d is missing, e.g. on a GPU box) finds the same hits."""
    from gen3d.data.world import build_object, sample_spec

    cams = orbit_cameras(20.0, [0.0, 90.0, 180.0, 270.0], 2.6, 30.0, 48)
    for i in range(6):
        obj = build_object(sample_spec(0, i, "train"))
        a = MeshRenderer.from_object(obj, RenderConfig(engine="open3d")).render(cams)
        b = MeshRenderer.from_object(obj, RenderConfig(engine="torch")).render(cams)
        np.testing.assert_array_equal(a.alpha, b.alpha)
        np.testing.assert_allclose(a.depth, b.depth, atol=1e-4)
        assert np.mean(np.abs(a.rgb - b.rgb)) < 1e-4  # a ray on a shared edge may pick the other face
        assert np.mean(np.abs(a.rgb - b.rgb) > 1e-3) < 1e-3


def test_torch_engine_refuses_a_vertex_behind_the_camera():
    cams = orbit_cameras(0.0, 0.0, 0.4, 40.0, 16)  # inside the sphere
    with pytest.raises(ValueError, match="behind a camera"):
        sphere_renderer(0.5, engine="torch").render(cams)


def test_engine_name_is_validated():
    with pytest.raises(ValueError, match="engine"):
        RenderConfig(engine="embree")
