"""Splat files: INRIA .ply (exact round trip, property order, channel-major f_rest, nerfstudio
variants) and .splat (32-byte records, quantisation tolerance, order); errors name the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from gen3d.errors import DataError
from gen3d.recon.gaussians import SH_C0, Gaussians
from gen3d.recon.splat_io import (
    SPLAT_RECORD,
    inria_property_names,
    load_splat,
    load_splat_ply,
    save_splat,
    save_splat_ply,
    splat_order,
)


def random_gaussians(n: int, degree: int, seed: int = 0) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    return Gaussians(
        torch.randn(n, 3, generator=gen),
        torch.randn(n, 4, generator=gen) * 2,  # deliberately not normalised
        torch.randn(n, 3, generator=gen) - 3,
        torch.randn(n, generator=gen) * 3,
        torch.randn(n, k, 3, generator=gen),
    )


def assert_same(a: Gaussians, b: Gaussians) -> None:
    for x, y in zip(a.tensors(), b.tensors()):
        assert x.dtype == y.dtype == torch.float32
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_ply_round_trip_is_exact(tmp_path, degree):
    g = random_gaussians(50, degree, seed=degree)
    back = load_splat_ply(save_splat_ply(g, tmp_path / "g.ply"))
    assert back.sh_degree == degree
    assert_same(g, back)


def test_ply_header_is_the_inria_layout(tmp_path):
    path = save_splat_ply(random_gaussians(3, 3), tmp_path / "g.ply")
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    lines = header.splitlines()
    assert lines[:3] == ["ply", "format binary_little_endian 1.0", "element vertex 3"]
    props = [ln.split() for ln in lines[3:]]
    assert all(p[:2] == ["property", "float"] for p in props)
    names = [p[2] for p in props]
    assert names == inria_property_names(3)
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert names[54:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert len(path.read_bytes()) == len(header) + len("end_header\n") + 3 * 62 * 4


def test_f_rest_is_channel_major_and_values_are_stored_raw(tmp_path):
    sh = torch.tensor([[[10.0 * k + c for c in range(3)] for k in range(4)]])  # sh[0, k, c] = 10k + c
    g = Gaussians(
        torch.tensor([[1.0, 2.0, 3.0]]),
        torch.tensor([[0.5, 0.1, 0.2, 0.3]]),
        torch.tensor([[-1.0, -2.0, -3.0]]),
        torch.tensor([0.7]),
        sh,
    )
    v = PlyData.read(str(save_splat_ply(g, tmp_path / "hand.ply")))["vertex"].data[0]
    assert [v[f"f_dc_{i}"] for i in range(3)] == [0, 1, 2]
    # All red coefficients (k = 1, 2, 3), then all green, then all blue.
    assert [v[f"f_rest_{i}"] for i in range(9)] == [10, 20, 30, 11, 21, 31, 12, 22, 32]
    assert v["opacity"] == np.float32(0.7)  # the logit, not sigmoid(0.7)
    assert [v[f"scale_{i}"] for i in range(3)] == [-1, -2, -3]  # logs, not exp'd
    assert [v[f"rot_{i}"] for i in range(4)] == list(np.float32([0.5, 0.1, 0.2, 0.3]))  # w x y z, as stored
    assert [v[n] for n in ("nx", "ny", "nz")] == [0, 0, 0]


def write_ply(path, columns: dict[str, np.ndarray]) -> None:
    rec = np.empty(len(next(iter(columns.values()))), [(k, v.dtype) for k, v in columns.items()])
    for k, v in columns.items():
        rec[k] = v
    PlyData([PlyElement.describe(rec, "vertex")], text=False, byte_order="<").write(str(path))


def test_loads_nerfstudio_variants(tmp_path):
    g = random_gaussians(20, 1)
    v = PlyData.read(str(save_splat_ply(g, tmp_path / "g.ply")))["vertex"].data
    # Shuffled property order, no normals, one extra property: same Gaussians.
    names = [n for n in inria_property_names(1) if n not in ("nx", "ny", "nz")][::-1]
    cols = {n: np.asarray(v[n]) for n in names}
    cols["filter_3D"] = np.ones(20, np.float32)
    write_ply(tmp_path / "ns.ply", cols)
    assert_same(g, load_splat_ply(tmp_path / "ns.ply"))
    # ply_color_mode="rgb": uchar red/green/blue instead of f_dc/f_rest.
    rgb = np.array([[255, 0, 128]] * 20, np.uint8)
    cols = {
        n: np.asarray(v[n])
        for n in (
            "x",
            "y",
            "z",
            "opacity",
            "scale_0",
            "scale_1",
            "scale_2",
            "rot_0",
            "rot_1",
            "rot_2",
            "rot_3",
        )
    }
    cols.update(red=rgb[:, 0], green=rgb[:, 1], blue=rgb[:, 2])
    write_ply(tmp_path / "rgb.ply", cols)
    back = load_splat_ply(tmp_path / "rgb.ply")
    assert back.sh_degree == 0
    torch.testing.assert_close(back.rgb, torch.tensor([[1.0, 0.0, 128 / 255]]).expand(20, 3))
    torch.testing.assert_close(back.means, g.means)


def nerfstudio_ply_bytes(columns: dict[str, np.ndarray]) -> bytes:
    """A file laid out as nerfstudio 1.1.5's ``ExportGaussianSplat.write_ply`` writes it: header
    comments, float or uchar properties in insertion order, records packed without padding."""
    head = [
        "ply",
        "format binary_little_endian 1.0",
        "comment Generated by Nerstudio 1.1.5",
        "comment Vertical Axis: z",
        f"element vertex {len(columns['x'])}",
    ]
    head += [f"property {'float' if v.dtype.kind == 'f' else 'uchar'} {k}" for k, v in columns.items()]
    rec = np.empty(
        len(columns["x"]), [(k, "<f4" if v.dtype.kind == "f" else "u1") for k, v in columns.items()]
    )
    for k, v in columns.items():
        rec[k] = v
    return ("\n".join(head) + "\nend_header\n").encode() + rec.tobytes()


def test_loads_files_laid_out_like_nerfstudio_exports(tmp_path):
    g = random_gaussians(7, 3, seed=4)
    v = PlyData.read(str(save_splat_ply(g, tmp_path / "g.ply")))["vertex"].data
    sh_cols = {n: np.asarray(v[n]) for n in inria_property_names(3)}
    (tmp_path / "sh.ply").write_bytes(nerfstudio_ply_bytes(sh_cols))
    assert_same(g, load_splat_ply(tmp_path / "sh.ply"))
    rgb_cols = {n: np.asarray(v[n]) for n in ("x", "y", "z", "nx", "ny", "nz")}
    rgb_cols.update(red=np.full(7, 255, np.uint8), green=np.zeros(7, np.uint8), blue=np.full(7, 51, np.uint8))
    rgb_cols.update({n: np.asarray(v[n]) for n in inria_property_names(0)[-8:]})
    (tmp_path / "rgb.ply").write_bytes(nerfstudio_ply_bytes(rgb_cols))
    back = load_splat_ply(tmp_path / "rgb.ply")
    torch.testing.assert_close(back.rgb, torch.tensor([[1.0, 0.0, 0.2]]).expand(7, 3))
    torch.testing.assert_close(back.opacity_logits, g.opacity_logits, rtol=0, atol=0)
    torch.testing.assert_close(back.quats, g.quats, rtol=0, atol=0)


def test_splat_round_trip_within_quantisation(tmp_path):
    g = random_gaussians(300, 2)
    g.sh[:, 0] = (
        torch.rand(300, 3, generator=torch.Generator().manual_seed(5)) - 0.5
    ) / SH_C0  # rgb in [0, 1]
    path = save_splat(g, tmp_path / "g.splat")
    assert path.stat().st_size == 32 * 300
    back = load_splat(path)
    ref = g.subset(torch.from_numpy(splat_order(g)))
    torch.testing.assert_close(back.means, ref.means, rtol=0, atol=0)
    torch.testing.assert_close(back.log_scales, ref.log_scales, rtol=0, atol=1e-6)
    torch.testing.assert_close(back.rgb, ref.rgb, rtol=0, atol=0.5 / 255 + 1e-6)
    torch.testing.assert_close(back.opacities, ref.opacities, rtol=0, atol=0.5 / 255 + 1e-6)
    q, q_ref = back.unit_quats, ref.unit_quats
    assert ((q - q_ref).abs().max(dim=1).values < 1.5 / 128).all()  # quantised by 1/128, then renormalised
    assert back.sh_degree == 0  # .splat keeps the DC colour only


def test_splat_bytes_and_order_by_hand(tmp_path):
    # Two Gaussians: the second is larger x more opaque, so it is written first.
    dc = (torch.tensor([[1.0, 0.0, 0.5], [0.2, 0.4, 0.6]]) - 0.5) / SH_C0
    g = Gaussians(
        torch.tensor([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]]),
        torch.tensor(
            [[0.0, 0.0, 0.0, 2.0], [3.0, 4.0, 0.0, 0.0]]
        ),  # unnormalised: (0, 0, 0, 1), (0.6, 0.8, 0, 0)
        torch.log(torch.tensor([[0.1, 0.1, 0.1], [0.2, 0.3, 0.4]])),
        torch.tensor([0.0, 10.0]),
        dc[:, None, :],
    )
    rec = np.frombuffer(save_splat(g, tmp_path / "two.splat").read_bytes(), SPLAT_RECORD)
    np.testing.assert_array_equal(rec["position"], [[-1, -2, -3], [1, 2, 3]])
    np.testing.assert_allclose(rec["scale"], [[0.2, 0.3, 0.4], [0.1, 0.1, 0.1]], rtol=1e-6)
    np.testing.assert_array_equal(rec["rgba"], [[51, 102, 153, 255], [255, 0, 128, 128]])
    # round(q * 128 + 128), w x y z: 0.6 -> 204.8 -> 205, 0.8 -> 230.4 -> 230, 1 -> 256 -> 255.
    np.testing.assert_array_equal(rec["rot"], [[205, 230, 128, 128], [128, 128, 128, 255]])
    assert SPLAT_RECORD.itemsize == 32


def test_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.ply"):
        load_splat_ply(tmp_path / "missing.ply")
    with pytest.raises(DataError, match="missing.splat"):
        load_splat(tmp_path / "missing.splat")
    bad = tmp_path / "bad.ply"
    bad.write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nproperty float x\nend_header\n\x00"
    )
    with pytest.raises(DataError, match="bad.ply"):
        load_splat_ply(bad)
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"\x89PNG not a ply at all")
    with pytest.raises(DataError, match="garbage.ply"):
        load_splat_ply(garbage)
    mesh_like = tmp_path / "mesh.ply"
    write_ply(
        mesh_like, {"x": np.zeros(2, np.float32), "y": np.zeros(2, np.float32), "z": np.zeros(2, np.float32)}
    )
    with pytest.raises(DataError, match="mesh.ply.*lacks.*opacity"):
        load_splat_ply(mesh_like)
    cut = tmp_path / "cut.splat"
    cut.write_bytes(b"\x00" * 33)
    with pytest.raises(DataError, match="cut.splat.*32-byte"):
        load_splat(cut)
    g = random_gaussians(4, 0)
    g.means[1, 0] = float("nan")
    with pytest.raises(ValueError, match="1 of 4 Gaussians have NaN"):
        save_splat_ply(g, tmp_path / "nan.ply")
    assert not (tmp_path / "nan.ply").exists()
