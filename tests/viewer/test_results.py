"""Finding result folders and describing them for the page (viewer/results.py), incl. the frames convention."""

from __future__ import annotations

import json
import os

from gen3d.viewer.results import scan
from viewer_fixtures import BLUE, GREEN, RED, sphere_points, write_points_ply, write_result_json


def test_finds_nested_results_and_skips_their_subfolders(tmp_path):
    for rel in ["a", "group/b", "group/deeper/c"]:
        write_result_json(tmp_path / rel, f"prompt {rel}")
    write_points_ply(tmp_path / "a" / "frames" / "0000" / "points.ply", sphere_points(5), RED)
    (tmp_path / ".hidden").mkdir()
    write_result_json(tmp_path / ".hidden" / "x", "hidden")
    s = scan(tmp_path)
    assert [r["id"] for r in s.results] == ["a", "group/b", "group/deeper/c"]
    assert s.results[1]["title"] == "prompt group/b"


def test_a_result_folder_itself_is_one_result(tmp_path):
    write_result_json(tmp_path, "just me")
    write_points_ply(tmp_path / "points.ply", sphere_points(5), RED)
    s = scan(tmp_path)
    assert len(s.results) == 1 and s.results[0]["id"] == "."
    assert s.results[0]["assets"]["points"]["url"] == "data/points.ply"


def test_assets_thumbnail_and_views(results_root):
    r = {x["id"]: x for x in scan(results_root).results}
    a = r["all_kinds"]
    assert set(a["assets"]) == {"splats", "mesh", "points"}
    assert a["assets"]["mesh"] == {
        "kind": "mesh",
        "format": "glb",
        "file": "mesh.glb",
        "url": "data/all_kinds/mesh.glb",
        "bytes": (results_root / "all_kinds" / "mesh.glb").stat().st_size,
    }
    assert a["thumbnail"] == "data/all_kinds/views.png"
    assert [v["name"] for v in a["views"]["images"]] == ["000.png", "001.png", "002.png", "003.png"]
    assert len(a["views"]["images"][0]["c2w"]) == 4 and a["views"]["camera"]["w"] == 32
    assert r["red_sphere"]["thumbnail"] is None and r["red_sphere"]["views"] is None
    assert r["red_sphere"]["timings"]["total"] == 4.62 and r["red_sphere"]["metrics"]["train_psnr"] == 31.25
    assert "iterations: 300" in r["red_sphere"]["config_text"]


def test_frames_from_index_json(results_root):
    seq = next(x for x in scan(results_root).results if x["id"] == "sequence")["frames"]
    assert seq["fps"] == 4 and seq["kind"] == "sequence"
    assert [f["time"] for f in seq["frames"]] == [0.0, 0.25, 0.5]
    assert [f["label"] for f in seq["frames"]] == ["t = 0", "t = 0.25", "t = 0.5"]
    assert seq["frames"][2]["assets"]["points"]["url"] == "data/sequence/frames/0002/points.ply"


def test_frames_without_index_json_are_the_numbered_folders(tmp_path):
    for i in (10, 2, 1):  # numeric, not lexical, order
        write_points_ply(tmp_path / "r" / "frames" / f"{i:d}" / "points.ply", sphere_points(5), GREEN)
    (tmp_path / "r" / "frames" / "notes").mkdir()
    fr = scan(tmp_path).results[0]["frames"]
    assert [f["path"] for f in fr["frames"]] == ["1", "2", "10"]
    assert fr["fps"] == 12 and fr["frames"][1]["time"] == 1 / 12


def test_progress_frames_with_steps_and_labels(tmp_path):
    d = tmp_path / "fit"
    for i in range(2):
        write_points_ply(d / "frames" / f"{i:04d}" / "points.ply", sphere_points(5), BLUE)
    index = {
        "kind": "progress",
        "fps": 2,
        "frames": [{"path": "0000", "step": 0}, {"path": "0001", "step": 500, "label": "after densify"}],
    }
    (d / "frames" / "index.json").write_text(json.dumps(index))
    fr = scan(tmp_path).results[0]["frames"]
    assert fr["kind"] == "progress"
    assert [f["label"] for f in fr["frames"]] == ["step 0", "after densify"]


def test_bad_index_and_escaping_frame_paths_become_warnings(tmp_path):
    d = tmp_path / "r"
    write_points_ply(d / "frames" / "0000" / "points.ply", sphere_points(5), RED)
    (d / "frames" / "index.json").write_text(json.dumps({"frames": [{"path": "../../.."}, {"path": "0000"}]}))
    r = scan(tmp_path).results[0]
    assert [f["path"] for f in r["frames"]["frames"]] == ["0000"]
    assert any("frame 0" in w for w in r["warnings"])
    (d / "frames" / "index.json").write_text("{not json")
    r = scan(tmp_path).results[0]
    assert any("index.json could not be read" in w for w in r["warnings"]) and len(r["frames"]["frames"]) == 1


def test_corrupt_result_json_still_lists_the_files(tmp_path):
    d = tmp_path / "r"
    write_points_ply(d / "points.ply", sphere_points(5), RED)
    (d / "result.json").write_text("{truncated")
    r = scan(tmp_path).results[0]
    assert "result.json could not be read" in r["error"]
    assert r["assets"]["points"] and r["title"] == "r"


def test_unfinished_result_is_marked(tmp_path):
    write_points_ply(tmp_path / "r" / "points.ply", sphere_points(5), RED)
    r = scan(tmp_path).results[0]
    assert r["finished"] is False and any("no result.json" in w for w in r["warnings"])


def test_links_pointing_outside_are_not_listed(tmp_path):
    outside = tmp_path / "outside"
    write_points_ply(outside / "points.ply", sphere_points(5), RED)
    root = tmp_path / "root"
    write_result_json(root / "r", "linked")
    os.symlink(outside / "points.ply", root / "r" / "points.ply")
    os.symlink(outside, root / "linked_dir")
    r = scan(root).results
    assert [x["id"] for x in r] == ["r"]
    assert r[0]["assets"] == {} and "points.ply" not in [f["name"] for f in r[0]["files"]]


def test_views_with_paths_outside_are_dropped(tmp_path):
    d = tmp_path / "root" / "r"
    write_result_json(d, "x")
    (d / "views").mkdir()
    (tmp_path / "secret.png").write_bytes(b"x")
    (d / "views" / "transforms.json").write_text(
        json.dumps({"frames": [{"file_path": "../../../secret.png"}]})
    )
    r = scan(tmp_path / "root").results[0]
    assert r["views"] is None
