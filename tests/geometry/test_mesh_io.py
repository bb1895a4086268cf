"""Mesh files: round trips (.glb, .obj, .ply), the GLB's material and COLOR_0, errors that name the file."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import trimesh

from gen3d.data.world import ObjectSpec, build_object
from gen3d.errors import DataError
from gen3d.geometry import mesh_io
from gen3d.geometry.cleanup import vertex_colors_of
from gen3d.geometry.mesh_io import export_mesh, linear_to_srgb, load_mesh, srgb_to_linear


@pytest.fixture(scope="module")
def mug() -> trimesh.Trimesh:
    """A two-colour mug (y-up, handle toward +x): exact vertices, faces and per-part colours."""
    from gen3d.data.world import CLASS_BY_NAME

    spec = ObjectSpec(
        "mug", dict(CLASS_BY_NAME["mug"].canonical_params), {"body": "orange", "handle": "blue"}
    )
    return build_object(spec).to_trimesh()


def glb_json(path) -> dict:
    """The JSON chunk of a GLB, parsed by hand (glTF 2.0 spec, 4.4: 12-byte header, then chunks)."""
    data = path.read_bytes()
    magic, version, length = struct.unpack("<4sII", data[:12])
    assert magic == b"glTF" and version == 2 and length == len(data)
    chunk_len, chunk_type = struct.unpack("<I4s", data[12:20])
    assert chunk_type == b"JSON"
    return json.loads(data[20 : 20 + chunk_len])


@pytest.mark.parametrize("suffix", [".glb", ".obj", ".ply"])
def test_round_trip_keeps_vertices_faces_and_colours(tmp_path, mug, suffix):
    path = export_mesh(mug, tmp_path / f"mug{suffix}")
    back = load_mesh(path)
    np.testing.assert_allclose(back.vertices, mug.vertices, atol=1e-7 if suffix == ".obj" else 0)
    np.testing.assert_array_equal(back.faces, mug.faces)
    np.testing.assert_array_equal(vertex_colors_of(back), vertex_colors_of(mug))
    assert back.vertices[:, 1].argmax() == mug.vertices[:, 1].argmax()  # still y-up: no axis swap
    assert len(np.unique(vertex_colors_of(back)[:, :3], axis=0)) == 2


def test_glb_has_a_non_metallic_material_and_linear_color_0(tmp_path, mug):
    path = export_mesh(mug, tmp_path / "mug.glb")
    doc = glb_json(path)
    (material,) = doc["materials"]
    pbr = material["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] == 0.0 and pbr["roughnessFactor"] == 1.0
    assert pbr["baseColorFactor"] == [1.0, 1.0, 1.0, 1.0]
    assert material["doubleSided"] is False and material["alphaMode"] == "OPAQUE"
    (prim,) = doc["meshes"][0]["primitives"]
    assert prim["material"] == 0 and prim["mode"] == 4
    assert {"POSITION", "NORMAL", "COLOR_0"} <= set(prim["attributes"])
    pos = doc["accessors"][prim["attributes"]["POSITION"]]
    np.testing.assert_allclose(pos["min"], mug.vertices.min(0), rtol=1e-6)
    np.testing.assert_allclose(pos["max"], mug.vertices.max(0), rtol=1e-6)
    node = doc["nodes"][doc["scenes"][doc["scene"]]["nodes"][0]]
    assert not {"matrix", "rotation", "scale", "translation"} & set(node)  # y-up as is, no re-orientation
    # COLOR_0 holds linear values of the sRGB vertex colours (read back independently with pygltflib).
    import pygltflib

    gltf = pygltflib.GLTF2.load_binary(str(path))
    color = mesh_io._read_accessor(gltf, gltf.binary_blob(), prim["attributes"]["COLOR_0"])
    want = srgb_to_linear(vertex_colors_of(mug)[:, :3] / 255.0)
    np.testing.assert_allclose(color, want, atol=1e-6)
    assert doc["accessors"][prim["attributes"]["COLOR_0"]]["componentType"] == 5126  # float


def test_srgb_linear_round_trip_is_exact_in_uint8():
    c = np.arange(256) / 255.0
    np.testing.assert_array_equal(np.round(linear_to_srgb(srgb_to_linear(c)) * 255), np.arange(256))
    np.testing.assert_allclose(srgb_to_linear([0.0, 0.5, 1.0]), [0.0, 0.21404114, 1.0], atol=1e-7)


def test_obj_and_ply_layouts(tmp_path, mug):
    obj = export_mesh(mug, tmp_path / "m.obj").read_text()
    v_lines = [ln.split() for ln in obj.splitlines() if ln.startswith("v ")]
    assert len(v_lines) == len(mug.vertices) and all(len(v) == 7 for v in v_lines)  # v x y z r g b
    np.testing.assert_allclose(
        np.asarray(v_lines[0][4:], float), vertex_colors_of(mug)[0, :3] / 255, atol=1e-6
    )
    header = export_mesh(mug, tmp_path / "m.ply").read_bytes().split(b"end_header")[0].decode()
    assert "format binary_little_endian 1.0" in header
    assert "property uchar red" in header and "property list uchar int vertex_indices" in header


def test_face_colours_are_exported_crisply(tmp_path):
    box = trimesh.creation.box()
    fc = np.zeros((12, 4), np.uint8)
    fc[:, 3] = 255
    fc[:6, 0] = 255  # six red faces, six black ones sharing vertices with them
    box.visual.face_colors = fc
    back = load_mesh(export_mesh(box, tmp_path / "box.glb"))
    corner = vertex_colors_of(back)[back.faces]  # F 3 4
    np.testing.assert_array_equal(corner[:, 0], fc)  # each face's corners carry its own colour
    np.testing.assert_array_equal(corner[:, 1], corner[:, 2])


def test_uncoloured_mesh_loads_white(tmp_path):
    back = load_mesh(export_mesh(trimesh.creation.icosphere(1), tmp_path / "s.glb"))
    assert (vertex_colors_of(back) == 255).all()


def test_glb_loader_applies_node_transforms(tmp_path):
    """A GLB written by another tool (trimesh) with a translated node, uint8 colours."""
    box = trimesh.creation.box()
    box.visual.vertex_colors = np.tile([10, 200, 30, 255], (8, 1)).astype(np.uint8)
    scene = trimesh.Scene()
    scene.add_geometry(box, transform=trimesh.transformations.translation_matrix([0, 2, 0]))
    path = tmp_path / "scene.glb"
    path.write_bytes(scene.export(file_type="glb"))
    back = load_mesh(path)
    np.testing.assert_allclose(back.bounds, [[-0.5, 1.5, -0.5], [0.5, 2.5, 0.5]], atol=1e-6)


def test_errors_name_the_file(tmp_path, mug):
    missing = tmp_path / "nope.glb"
    with pytest.raises(DataError, match="nope.glb"):
        load_mesh(missing)
    for suffix in (".glb", ".obj", ".ply"):
        bad = tmp_path / f"bad{suffix}"
        bad.write_bytes(b"\x00garbage\xff" * 10)
        with pytest.raises(DataError, match=f"bad\\{suffix}"):
            load_mesh(bad)
    other = tmp_path / "m.stl"
    other.write_text("solid")
    with pytest.raises(DataError, match="unknown mesh format"):
        load_mesh(other)
    with pytest.raises(ValueError, match="unknown mesh format"):
        export_mesh(mug, tmp_path / "m.stl")
    with pytest.raises(ValueError, match="no faces"):
        export_mesh(trimesh.Trimesh(), tmp_path / "e.glb")


def test_failed_export_leaves_the_old_file_and_no_temporaries(tmp_path, mug, monkeypatch):
    path = export_mesh(mug, tmp_path / "mug.glb")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(mesh_io, "glb_bytes", boom)
    with pytest.raises(RuntimeError):
        export_mesh(trimesh.creation.box(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["mug.glb"]
