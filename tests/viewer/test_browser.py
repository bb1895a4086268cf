"""The viewer page in headless Chromium: each asset type draws in its colours, modes switch, the
timeline advances, broken assets show a message, and nothing is fetched from outside the server."""

from __future__ import annotations

import numpy as np
import pytest
from gen3d.viewer.results import scan
from viewer_browser import ViewerPage, colour_fraction

pytestmark = pytest.mark.browser


def assert_clean(v: ViewerPage, allowed: tuple[str, ...]) -> None:
    assert v.errors == [], f"the page logged errors: {v.errors}"
    assert v.foreign_requests(allowed) == [], "the page fetched from outside the server"
    assert v.state()["errors"] == []


def local(v: ViewerPage) -> tuple[str, ...]:
    return (v.base, "blob:" + v.base.rstrip("/"), "data:")


@pytest.mark.parametrize(
    "result, mode, colour",
    [
        ("red_sphere", "splats", "red"),  # INRIA .ply
        ("red_splat_file", "splats", "red"),  # .splat
        ("green_cube", "mesh", "green"),
        ("blue_points", "points", "blue"),
    ],
)
def test_each_asset_type_draws_in_its_colour(viewer, result, mode, colour):
    viewer.open(f"#/r/{result}?bg=black")
    st = viewer.state()
    assert (st["page"], st["mode"], st["message"]) == ("result", mode, None)
    img = viewer.canvas()
    others = {"red", "green", "blue"} - {colour}
    assert colour_fraction(img, colour) > 0.05, f"too few {colour} pixels"
    assert all(colour_fraction(img, c) < 0.001 for c in others)
    # The object sits in the middle of the view, on the black background.
    h, w, _ = img.shape
    centre = img[h // 2 - 8 : h // 2 + 8, w // 2 - 8 : w // 2 + 8]
    assert colour_fraction(centre, colour) > 0.6  # points leave gaps between them
    assert img[2, 2].max() < 10 and img[-3, -3].max() < 10
    assert_clean(viewer, local(viewer))


def test_glb_without_material_shows_its_colours_like_one_with(viewer):
    """glTF's default material is metallic 1, which shows a vertex-coloured mesh dark; the viewer
    shows such a mesh matte, as bright as the same mesh with our exporter's material."""
    means = {}
    for rid in ("green_cube", "green_cube_no_material"):
        viewer.open(f"#/r/{rid}?bg=black")
        img = viewer.canvas().astype(float)
        obj = img.max(axis=-1) > 20
        assert obj.mean() > 0.05
        means[rid] = img[obj].mean(axis=0)
    r, g, b = means["green_cube_no_material"]
    assert g > 5 * max(r, b, 1)
    assert g / means["green_cube"][1] > 0.9, means


def test_gallery_shows_a_card_per_result_and_opens_one(viewer, results_root):
    viewer.open("#/")
    expected = {r["id"]: r["title"] for r in scan(results_root).results}
    cards = viewer.page.locator(".card")
    assert cards.count() == len(expected)
    ids = [cards.nth(i).get_attribute("data-id") for i in range(cards.count())]
    assert sorted(ids) == sorted(expected)
    card = viewer.page.locator('.card[data-id="red_sphere"]')
    assert "a red sphere" in card.inner_text() and "4.62 s" in card.inner_text()
    viewer.page.locator('.card[data-id="all_kinds"] img').wait_for()  # thumbnail: views.png
    card.click()
    viewer.page.wait_for_function("window.__viewer.page === 'result' && window.__ready === true")
    assert viewer.state()["id"] == "red_sphere"
    assert_clean(viewer, local(viewer))


def test_mode_buttons_switch_between_splats_mesh_points_and_views(viewer):
    viewer.open("#/r/all_kinds?bg=black")
    seen = {}
    for mode, colour in [("splats", "red"), ("mesh", "green"), ("points", "blue")]:
        viewer.page.click(f'button.mode[data-mode="{mode}"]')
        viewer.page.wait_for_function(f"window.__viewer.mode === '{mode}' && window.__ready === true")
        img = viewer.canvas()
        seen[mode] = colour_fraction(img, colour)
        assert seen[mode] > 0.05, f"{mode}: too few {colour} pixels"
        assert viewer.page.locator(f'button.mode[data-mode="{mode}"]').get_attribute("aria-pressed") == "true"
    viewer.page.click('button.mode[data-mode="views"]')
    viewer.page.wait_for_function("window.__viewer.mode === 'views' && window.__ready === true")
    assert viewer.page.locator(".viewport").is_hidden()
    assert viewer.page.eval_on_selector(".view-main", "img => img.naturalWidth") == 32
    assert viewer.page.locator(".view-strip img").count() == 4
    viewer.page.locator(".view-strip img").nth(2).click()
    viewer.page.wait_for_function("window.__viewer.shown.endsWith('002.png') && window.__ready === true")
    assert "view 3 / 4" in viewer.page.inner_text(".view-caption")
    assert_clean(viewer, local(viewer))


def test_info_panel_shows_request_seed_timings_metrics_config(viewer):
    viewer.open("#/r/green_cube")
    info = viewer.page.locator(".info")
    text = info.inner_text()
    assert "a green cube" in text
    assert viewer.page.inner_text('.run dd[data-key="seed"]') == "2"
    timings = viewer.page.inner_text("table.timings")
    assert "fit" in timings and "3.50 s" in timings and "4.62 s" in timings
    assert "train_psnr" in viewer.page.inner_text("table.metrics")
    viewer.page.click("details.config summary")
    assert "iterations: 300" in viewer.page.inner_text("details.config pre")
    assert_clean(viewer, local(viewer))


def test_background_toggle_changes_the_canvas_background(viewer):
    viewer.open("#/r/green_cube?bg=black")
    assert viewer.canvas()[2, 2].tolist() == [0, 0, 0]
    viewer.page.click("button.bg")  # black -> dark
    viewer.page.wait_for_timeout(300)
    corner = viewer.canvas()[2, 2].astype(int)
    assert np.abs(corner - [0x1D, 0x1F, 0x24]).max() <= 2
    viewer.page.click("button.bg")  # dark -> grey
    viewer.page.wait_for_timeout(300)
    assert np.abs(viewer.canvas()[2, 2].astype(int) - 128).max() <= 2
    assert viewer.state()["background"] == "grey"


def test_screenshot_button_saves_a_png_of_the_view(viewer, tmp_path):
    from PIL import Image

    viewer.open("#/r/red_sphere?bg=black")
    with viewer.page.expect_download() as dl:
        viewer.page.click("button.shot")
    d = dl.value
    assert d.suggested_filename == "red_sphere_splats.png"
    img = np.asarray(Image.open(d.path()).convert("RGB"))
    assert colour_fraction(img, "red") > 0.05
    assert_clean(viewer, local(viewer))


def test_timeline_plays_and_scrubs_through_frames(viewer):
    viewer.open("#/r/sequence?mode=points&bg=black")
    assert viewer.page.locator(".timeline").is_visible()
    st = viewer.state()
    assert st["frame"] == 0 and colour_fraction(viewer.canvas(), "red") > 0.05
    assert "1 / 3" in viewer.page.inner_text(".frame-label")
    viewer.page.click("button.play")
    # fps 4: a full loop (0 -> 1 -> 2 -> 0 ...) takes under a second or so of page time.
    viewer.page.wait_for_function("window.__viewer.frameChanges >= 5", timeout=30_000)
    viewer.page.click("button.play")  # pause
    viewer.page.eval_on_selector(".scrub", "s => { s.value = '2'; s.dispatchEvent(new Event('input')); }")
    viewer.page.wait_for_function("window.__viewer.frame === 2 && window.__ready === true")
    assert "3 / 3" in viewer.page.inner_text(".frame-label")
    img = viewer.canvas()
    assert colour_fraction(img, "blue") > 0.05 and colour_fraction(img, "red") < 0.001
    viewer.page.keyboard.press("ArrowRight")  # wraps to frame 0
    viewer.page.wait_for_function("window.__viewer.frame === 0 && window.__ready === true")
    assert colour_fraction(viewer.canvas(), "red") > 0.05
    # Splat frames: switching kind keeps the frame; stepping shows the next frame's splats.
    viewer.page.click('button.mode[data-mode="splats"]')
    viewer.page.wait_for_function("window.__viewer.mode === 'splats' && window.__ready === true")
    assert viewer.state()["frame"] == 0 and colour_fraction(viewer.canvas(), "red") > 0.05
    viewer.page.keyboard.press("ArrowRight")
    viewer.page.wait_for_function("window.__viewer.frame === 1 && window.__ready === true")
    img = viewer.canvas()
    assert colour_fraction(img, "green") > 0.05 and colour_fraction(img, "red") < 0.001
    assert_clean(viewer, local(viewer))


@pytest.mark.parametrize(
    "mode, words",
    [("splats", ["splats.ply", "not a valid Gaussian splat file"]), ("mesh", ["mesh.glb", "glTF"])],
)
def test_corrupt_asset_shows_a_message_not_a_blank_canvas(viewer, mode, words):
    viewer.open(f"#/r/broken?mode={mode}")
    msg = viewer.page.locator(".message.error")
    assert msg.is_visible()
    text = msg.inner_text()
    assert all(w in text for w in words), text
    assert viewer.state()["message"] == text


def test_missing_asset_shows_a_message(viewer, results_root):
    from viewer_fixtures import GREEN, RED, sphere_points, write_mesh_glb, write_points_ply, write_result_json

    d = results_root / "vanishing"
    write_result_json(d, "a mesh that goes missing")
    write_points_ply(d / "points.ply", sphere_points(500), RED)
    write_mesh_glb(d / "mesh.glb", GREEN)
    try:
        viewer.open("#/r/vanishing?mode=points")
        (d / "mesh.glb").unlink()  # after the page listed it
        viewer.page.click('button.mode[data-mode="mesh"]')
        viewer.page.wait_for_function("window.__viewer.mode === 'mesh' && window.__ready === true")
        text = viewer.page.inner_text(".message.error")
        assert "mesh.glb" in text and "404" in text and "missing" in text
    finally:
        import shutil

        shutil.rmtree(d)


def test_exported_page_opens_from_file_url_without_any_request(browser, results_root, tmp_path):
    from gen3d.viewer.export import export_page

    page_path = tmp_path / "all_kinds.html"
    export_page(results_root / "all_kinds", page_path)
    # The page's own CSP forbids eval, which Playwright's waiting uses: bypass it for the test only.
    v = ViewerPage(browser, page_path.as_uri(), bypass_csp=True)
    try:
        v.open("#/r/.?bg=black")  # one result: its id is "."
        for mode, colour in [("splats", "red"), ("mesh", "green"), ("points", "blue")]:
            v.page.click(f'button.mode[data-mode="{mode}"]')
            v.page.wait_for_function(f"window.__viewer.mode === '{mode}' && window.__ready === true")
            assert colour_fraction(v.canvas(), colour) > 0.05, mode
        v.page.click('button.mode[data-mode="views"]')
        v.page.wait_for_function("window.__viewer.mode === 'views' && window.__ready === true")
        assert v.page.eval_on_selector(".view-main", "img => img.naturalWidth") == 32
        assert_clean(v, (page_path.as_uri(), "blob:"))
    finally:
        v.close()
