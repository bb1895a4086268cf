"""Mesh files users open elsewhere: .glb (three.js, Blender, model-viewer), .obj, .ply.

- ``.glb`` is written here with pygltflib rather than by trimesh, because trimesh writes a
  vertex-coloured mesh without a material and glTF's default material is fully metallic, which
  three.js renders black. We write one primitive with POSITION, NORMAL, COLOR_0 and a PBR
  material (baseColorFactor 1, metallicFactor 0, roughnessFactor 1, doubleSided false, OPAQUE).
  glTF defines COLOR_0 as *linear* RGB (glTF 2.0 spec, 3.7.2.1) while our colours are sRGB
  display values, so COLOR_0 holds float32 linear values (IEC 61966-2-1 transfer function) and
  :func:`load_mesh` converts them back; a reader that treats COLOR_0 as sRGB (trimesh) sees
  darker colours. Our world is y-up like glTF, so no axis change is needed.
- ``.obj`` and ``.ply`` go through trimesh: OBJ with ``v x y z r g b`` (sRGB floats in [0, 1],
  the MeshLab/Blender extension), PLY binary little-endian with uchar RGBA vertex colours.

Every writer is atomic (``gen3d.utils.io.atomic_path``). Layouts: docs/formats.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh

from gen3d.errors import DataError
from gen3d.geometry.cleanup import vertex_colors_of
from gen3d.utils.io import atomic_path

MESH_SUFFIXES = (".glb", ".obj", ".ply")


# --------------------------------------------------------------------------------------------------
# Colour transfer functions (sRGB <-> linear, IEC 61966-2-1)
# --------------------------------------------------------------------------------------------------


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


# --------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------


def _with_vertex_colors(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, np.ndarray | None]:
    """The mesh and its (P, 4) uint8 vertex colours; face colours become per-corner vertex colours
    (vertices are split so the colours stay crisp), textures are sampled to vertices."""
    kind = mesh.visual.kind
    if kind == "face":
        fc = np.asarray(mesh.visual.face_colors)
        split = trimesh.Trimesh(
            mesh.vertices[mesh.faces].reshape(-1, 3),
            np.arange(3 * len(mesh.faces)).reshape(-1, 3),
            process=False,
        )
        return split, np.repeat(fc, 3, axis=0)
    if kind == "texture":
        mesh = mesh.copy()
        mesh.visual = mesh.visual.to_color()
    return mesh, vertex_colors_of(mesh)


def export_mesh(mesh: trimesh.Trimesh, path: str | os.PathLike) -> Path:
    """Write ``mesh`` (with its vertex or face colours) to .glb, .obj or .ply, chosen by suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise ValueError(
            f"cannot write {path}: unknown mesh format {suffix!r}; use one of {', '.join(MESH_SUFFIXES)}"
        )
    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"expected a trimesh.Trimesh, got {type(mesh).__name__}")
    if len(mesh.faces) == 0:
        raise ValueError(f"cannot write {path}: the mesh has no faces")
    mesh, colors = _with_vertex_colors(mesh)
    with atomic_path(path) as tmp:
        if suffix == ".glb":
            tmp.write_bytes(glb_bytes(mesh, colors))
        else:
            out = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=colors, process=False)
            if suffix == ".obj":
                text = trimesh.exchange.obj.export_obj(
                    out, include_normals=False, include_color=colors is not None, include_texture=False
                )
                tmp.write_text(text, encoding="utf-8")
            else:
                tmp.write_bytes(
                    trimesh.exchange.ply.export_ply(out, encoding="binary", include_attributes=False)
                )
    return path


def glb_bytes(mesh: trimesh.Trimesh, colors: np.ndarray | None) -> bytes:
    """A binary glTF 2.0 file: one node, one triangle primitive, one non-metallic PBR material."""
    import pygltflib as gl

    positions = np.ascontiguousarray(mesh.vertices, np.float32)
    normals = np.ascontiguousarray(mesh.vertex_normals, np.float32)
    indices = np.ascontiguousarray(mesh.faces, np.uint32).reshape(-1)
    arrays: list[tuple[np.ndarray, int, str, int]] = [  # data, componentType, type, bufferView target
        (positions, gl.FLOAT, gl.VEC3, gl.ARRAY_BUFFER),
        (normals, gl.FLOAT, gl.VEC3, gl.ARRAY_BUFFER),
    ]
    if colors is not None:
        linear = srgb_to_linear(np.asarray(colors[:, :3], np.float64) / 255.0).astype(np.float32)
        arrays.append((np.ascontiguousarray(linear), gl.FLOAT, gl.VEC3, gl.ARRAY_BUFFER))
    arrays.append((indices, gl.UNSIGNED_INT, gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER))

    blob, views, accessors = bytearray(), [], []
    for data, ctype, atype, target in arrays:
        offset = len(blob)
        raw = data.tobytes()
        blob += raw + b"\x00" * (-len(raw) % 4)  # keep every view 4-byte aligned
        views.append(gl.BufferView(buffer=0, byteOffset=offset, byteLength=len(raw), target=target))
        acc = gl.Accessor(bufferView=len(views) - 1, componentType=ctype, count=len(data), type=atype)
        if data is positions:  # POSITION must carry min/max (glTF 2.0, 3.7.2.1)
            acc.min, acc.max = positions.min(0).tolist(), positions.max(0).tolist()
        accessors.append(acc)
    attrs = gl.Attributes(POSITION=0, NORMAL=1, COLOR_0=2 if colors is not None else None)
    material = gl.Material(
        name="vertex_color",
        pbrMetallicRoughness=gl.PbrMetallicRoughness(
            baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=1.0
        ),
        doubleSided=False,
        alphaMode=gl.OPAQUE,
    )
    gltf = gl.GLTF2(
        asset=gl.Asset(version="2.0", generator="gen3d"),
        scene=0,
        scenes=[gl.Scene(nodes=[0])],
        nodes=[gl.Node(mesh=0, name="mesh")],
        meshes=[
            gl.Mesh(
                primitives=[
                    gl.Primitive(attributes=attrs, indices=len(accessors) - 1, material=0, mode=gl.TRIANGLES)
                ]
            )
        ],
        materials=[material],
        accessors=accessors,
        bufferViews=views,
        buffers=[gl.Buffer(byteLength=len(blob))],
    )
    gltf.set_binary_blob(bytes(blob))
    return b"".join(gltf.save_to_bytes())


# --------------------------------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------------------------------


def load_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
    """Read a .glb, .obj or .ply mesh (vertex colours as sRGB uint8 RGBA), or raise DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mesh file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise DataError(f"{path}: unknown mesh format {suffix!r}; gen3d reads {', '.join(MESH_SUFFIXES)}")
    try:
        mesh = _load_glb(path) if suffix == ".glb" else _load_trimesh(path, suffix)
    except DataError:
        raise
    except Exception as e:  # parsers raise many types on corrupt input; say which file, keep the cause
        raise DataError(
            f"{path} is not a readable {suffix} mesh ({type(e).__name__}: {e}); re-export it"
        ) from e
    if len(mesh.faces) == 0:
        raise DataError(f"{path} holds no triangles")
    return mesh


def _load_trimesh(path: Path, suffix: str) -> trimesh.Trimesh:
    loaded = trimesh.load(path, file_type=suffix[1:], process=False, force="mesh")
    if not isinstance(loaded, trimesh.Trimesh):
        raise DataError(f"{path} holds no triangle mesh")
    return loaded


def _node_matrix(node) -> np.ndarray:
    if node.matrix:
        return np.asarray(node.matrix, np.float64).reshape(4, 4).T  # glTF stores column-major
    m = np.eye(4)
    if node.scale:
        m = np.diag([*node.scale, 1.0]) @ m
    if node.rotation:
        x, y, z, w = node.rotation
        r = np.eye(4)
        r[:3, :3] = [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
        m = r @ m
    if node.translation:
        t = np.eye(4)
        t[:3, 3] = node.translation
        m = t @ m
    return m  # T R S


_COMPONENTS = {
    5120: np.int8,
    5121: np.uint8,
    5122: np.int16,
    5123: np.uint16,
    5125: np.uint32,
    5126: np.float32,
}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


def _read_accessor(gltf, blob: bytes, index: int) -> np.ndarray:
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = np.dtype(_COMPONENTS[acc.componentType])
    width = _WIDTH[acc.type]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    stride = view.byteStride or dtype.itemsize * width
    rows = np.ndarray((acc.count, width), dtype, buffer=blob, offset=start, strides=(stride, dtype.itemsize))
    out = np.array(rows)
    if acc.normalized or (dtype.kind == "u" and acc.type != "SCALAR" and dtype != np.uint32):
        out = out.astype(np.float64) / np.iinfo(dtype).max  # normalized integer colours
    return out


def _load_glb(path: Path) -> trimesh.Trimesh:
    """Every triangle primitive of the default scene, in world coordinates, with sRGB colours."""
    import pygltflib as gl

    gltf = gl.GLTF2.load_binary(str(path))
    if gltf is None:
        raise DataError(f"{path} is not a binary glTF file")
    blob = gltf.binary_blob() or b""
    scene = gltf.scenes[gltf.scene or 0] if gltf.scenes else gl.Scene(nodes=list(range(len(gltf.nodes))))
    verts, faces, cols, offset = [], [], [], 0
    stack = [(n, np.eye(4)) for n in scene.nodes]
    while stack:
        idx, parent = stack.pop()
        node = gltf.nodes[idx]
        world = parent @ _node_matrix(node)
        stack.extend((c, world) for c in node.children or [])
        if node.mesh is None:
            continue
        for prim in gltf.meshes[node.mesh].primitives:
            if prim.mode not in (None, gl.TRIANGLES) or prim.attributes.POSITION is None:
                continue
            v = _read_accessor(gltf, blob, prim.attributes.POSITION).astype(np.float64)
            v = v @ world[:3, :3].T + world[:3, 3]
            f = (
                _read_accessor(gltf, blob, prim.indices).reshape(-1, 3)
                if prim.indices is not None
                else np.arange(len(v)).reshape(-1, 3)
            )
            if prim.attributes.COLOR_0 is not None:
                lin = _read_accessor(gltf, blob, prim.attributes.COLOR_0)[:, :3]
            else:
                lin = np.broadcast_to(_base_color(gltf, prim.material), (len(v), 3))
            verts.append(v)
            faces.append(f.astype(np.int64) + offset)
            cols.append(lin)
            offset += len(v)
    if not verts:
        raise DataError(f"{path} holds no triangle mesh")
    rgb = np.round(linear_to_srgb(np.concatenate(cols)) * 255).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    return trimesh.Trimesh(np.concatenate(verts), np.concatenate(faces), vertex_colors=rgba, process=False)


def _base_color(gltf, material_index: int | None) -> np.ndarray:
    if material_index is None:
        return np.ones(3)
    pbr = gltf.materials[material_index].pbrMetallicRoughness
    return np.asarray(pbr.baseColorFactor[:3] if pbr and pbr.baseColorFactor else [1.0, 1.0, 1.0])
