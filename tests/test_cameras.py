from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gen3d.cameras import (
    Cameras,
    from_gsplat,
    from_opengl_c2w,
    from_threejs,
    intrinsics_from_fov,
    look_at,
    orbit_cameras,
    to_gsplat,
    to_opengl_c2w,
    to_threejs,
    turntable_cameras,
)


def random_cameras(n: int = 5, seed: int = 0) -> Cameras:
    g = torch.Generator().manual_seed(seed)
    el = torch.rand(n, generator=g) * 160 - 80
    az = torch.rand(n, generator=g) * 360
    r = 1 + 3 * torch.rand(n, generator=g)
    return orbit_cameras(el.tolist(), az.tolist(), r.tolist(), 45.0, 96, 64)


def test_orbit_camera_looks_at_target_and_is_a_rotation():
    cams = random_cameras()
    uv, z = cams.project(torch.zeros(1, 3))
    # The target projects to the principal point, in front of the camera at distance r.
    torch.testing.assert_close(uv[:, 0], torch.tensor([[48.0, 32.0]]).expand(len(cams), 2), atol=1e-3, rtol=0)
    assert (z > 0).all()
    R = cams.w2c[:, :3, :3]
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand_as(R), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.det(R), torch.ones(len(cams)), atol=1e-5, rtol=0)


def test_orbit_convention_y_up_azimuth_from_plus_z():
    c = orbit_cameras(0.0, 0.0, 2.0, 40.0, 64)
    torch.testing.assert_close(c.centers[0], torch.tensor([0.0, 0.0, 2.0]), atol=1e-5, rtol=0)
    c = orbit_cameras(0.0, 90.0, 2.0, 40.0, 64)
    torch.testing.assert_close(c.centers[0], torch.tensor([2.0, 0.0, 0.0]), atol=1e-5, rtol=0)
    c = orbit_cameras(30.0, 0.0, 2.0, 40.0, 64)
    assert c.centers[0, 1] == pytest.approx(1.0, abs=1e-5)
    # World up (+y) projects upward in the image (smaller pixel y: OpenCV y points down).
    uv, _ = c.project(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.2, 0.0]]))
    assert uv[0, 1, 1] < uv[0, 0, 1]
    # World +x appears to the right for a camera on +z looking at the origin.
    uv, _ = orbit_cameras(0.0, 0.0, 2.0, 40.0, 64).project(torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0]]))
    assert uv[0, 1, 0] > uv[0, 0, 0]


def test_straight_down_camera_is_well_defined():
    c = orbit_cameras(90.0, 0.0, 2.0, 40.0, 32)
    assert torch.isfinite(c.w2c).all()
    uv, z = c.project(torch.zeros(1, 3))
    torch.testing.assert_close(uv[0, 0], torch.tensor([16.0, 16.0]), atol=1e-3, rtol=0)


def test_intrinsics_match_fov():
    K = intrinsics_from_fov(60.0, 100, 80)
    assert K[1, 1] == pytest.approx(40 / math.tan(math.radians(30)))
    assert (K[0, 2], K[1, 2]) == (50.0, 40.0)
    cams = orbit_cameras(10, 0, 2, 60.0, 100, 80)
    assert math.degrees(float(cams.fov_y()[0])) == pytest.approx(60.0, abs=1e-4)


def test_gsplat_is_identity_round_trip():
    cams = random_cameras()
    vm, Ks = to_gsplat(cams)
    back = from_gsplat(vm, Ks, cams.width, cams.height)
    assert torch.equal(back.w2c, cams.w2c) and torch.equal(back.K, cams.K)


def test_opengl_round_trip_and_axes():
    cams = random_cameras()
    c2w = to_opengl_c2w(cams)
    back = from_opengl_c2w(c2w, cams.K, cams.width, cams.height)
    torch.testing.assert_close(back.w2c, cams.w2c, atol=1e-5, rtol=0)
    # OpenGL cameras look along their -z axis: toward the target (the origin).
    forward = -c2w[:, :3, 2]
    to_target = -c2w[:, :3, 3] / c2w[:, :3, 3].norm(dim=-1, keepdim=True)
    torch.testing.assert_close(forward, to_target, atol=1e-5, rtol=0)
    # 3x4 matrices (instant-ngp style) are accepted too.
    back34 = from_opengl_c2w(c2w[:, :3, :], cams.K, cams.width, cams.height)
    torch.testing.assert_close(back34.w2c, cams.w2c, atol=1e-5, rtol=0)


def test_threejs_round_trip():
    cams = random_cameras(7, seed=3)
    params = to_threejs(cams)
    assert all(len(p["quaternion"]) == 4 for p in params)
    assert params[0]["fov"] == pytest.approx(45.0, abs=1e-4)
    back = from_threejs(params, cams.width, cams.height)
    torch.testing.assert_close(back.w2c, cams.w2c, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.K, cams.K, atol=1e-3, rtol=0)


def test_threejs_quaternion_matches_a_known_rotation():
    # A camera on +x looking at the origin: OpenGL camera-to-world rotation is +90 deg about y.
    params = to_threejs(orbit_cameras(0.0, 90.0, 3.0, 40.0, 64))
    q = np.array(params[0]["quaternion"])
    expected = np.array([0.0, math.sin(math.pi / 4), 0.0, math.cos(math.pi / 4)])
    assert np.allclose(q, expected, atol=1e-5) or np.allclose(q, -expected, atol=1e-5)
    assert np.allclose(params[0]["position"], [3.0, 0.0, 0.0], atol=1e-5)


def test_rays_hit_projected_points():
    cams = random_cameras(3)
    o, d = cams.rays()
    assert o.shape == (3, 64, 96, 3)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(3, 64, 96))
    # A point along the ray through pixel (10, 20) projects back to that pixel centre.
    p = o[:, 20, 10] + 1.7 * d[:, 20, 10]
    for v in range(3):
        uv, _ = cams[v].project(p[v : v + 1])
        torch.testing.assert_close(uv[0, 0], torch.tensor([10.5, 20.5]), atol=1e-3, rtol=0)


def test_turntable_spacing_and_shape_checks():
    cams = turntable_cameras(4, 20.0, 2.5, 40.0, 32)
    c = cams.centers
    ang = torch.atan2(c[:, 0], c[:, 2])
    expected = torch.deg2rad(torch.tensor([0.0, 90.0, 180.0, 270.0]))
    torch.testing.assert_close(torch.cos(ang), torch.cos(expected), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.sin(ang), torch.sin(expected), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="w2c"):
        Cameras(torch.eye(4), torch.eye(3)[None], 8, 8)
    assert len(cams[1:3]) == 2


def test_look_at_matches_orbit():
    eye = torch.tensor([[1.0, 2.0, 3.0]])
    w2c = look_at(eye, torch.zeros(1, 3))
    cam_center = -w2c[0, :3, :3].T @ w2c[0, :3, 3]
    torch.testing.assert_close(cam_center, eye[0], atol=1e-5, rtol=0)
