"""`vigil calibrate zones`: zones drawn in image pixels, saved in ground metres into the node config.

The PETS2009 View_001 calibration (Tsai, from the published parameters) maps clicks to the
ground; the config file is edited as a round trip (its comments stay), validated as ``vigil run``
would (a refused zone leaves the file untouched) and the previous version is kept as ``.bak``.
The Chromium test draws a zone on frame 0 of vtest.avi and saves it; its screenshot goes to
``$VIGIL_ARTIFACTS``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from ..conftest import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
VTEST = REPO / "data" / "vtest.avi"
CALIB = REPO / "deploy" / "examples" / "pets2009-view001.calib.yaml"
SQUARE_M = np.array([[-6.0, -10.0], [2.0, -10.0], [2.0, -4.0], [-6.0, -4.0]])  # 48 m², in view

CONFIG = """\
# a node config written by hand: this comment must survive the editor
version: 1
node: zone-test
cameras:
  - name: plaza
    source: {video}   # the replayed video
    calibration: {calib}
    rules:
      zones:
        enabled: true
"""


@pytest.fixture
def config(tmp_path):
    if not VTEST.is_file():
        pytest.skip(f"{VTEST} missing: run `bash scripts/setup.sh`")
    path = tmp_path / "node.yaml"
    path.write_text(CONFIG.format(video=VTEST, calib=CALIB))
    return path


@pytest.fixture
def editor(config):
    from vigil.calibration.zones import ZoneEditor

    return ZoneEditor(config, "plaza", frame=np.zeros((576, 768, 3), np.uint8))


def _px(editor, points_m):
    return [list(p) for p in editor.to_image(points_m)]


def test_a_zone_clicked_in_pixels_is_saved_in_metres_and_the_comments_stay(editor, config):
    out = editor.save({"name": "bench", "polygon_px": _px(editor, SQUARE_M), "max_people": 4})
    assert out["warnings"] == []
    doc = yaml.safe_load(config.read_text())
    (zone,) = doc["cameras"][0]["zones"]
    assert zone["name"] == "bench" and zone["max_people"] == 4
    # pixels rounded to 0.1 px: back on the ground within 2 cm of the corners
    np.testing.assert_allclose(np.array(zone["polygon"]), SQUARE_M, atol=0.02)
    text = config.read_text()
    assert "# a node config written by hand: this comment must survive the editor" in text
    assert "# the replayed video" in text
    assert (config.parent / "node.yaml.bak").read_text() == CONFIG.format(video=VTEST, calib=CALIB)
    (listed,) = editor.zones()
    assert listed["name"] == "bench" and listed["area_m2"] == pytest.approx(48.0, abs=0.5)


def test_saving_a_zone_of_the_same_name_replaces_it_and_a_queue_line_is_kept_in_metres(editor, config):
    editor.save({"name": "bench", "polygon_px": _px(editor, SQUARE_M)})
    smaller = SQUARE_M * 0.5
    line_m = np.array([[-2.0, -4.5], [-2.0, -2.0]])
    editor.save(
        {"name": "bench", "polygon_px": _px(editor, smaller), "queue_px": _px(editor, line_m), "min_spacing_m": 1.5}
    )
    (zone,) = yaml.safe_load(config.read_text())["cameras"][0]["zones"]
    np.testing.assert_allclose(np.array(zone["polygon"]), smaller, atol=0.02)
    np.testing.assert_allclose(np.array(zone["queue"]["line"]), line_m, atol=0.02)
    assert zone["queue"]["min_spacing_m"] == 1.5
    assert editor.delete("bench")["deleted"] == "bench"
    assert yaml.safe_load(config.read_text())["cameras"][0]["zones"] == []


def test_a_zone_run_would_refuse_is_refused_and_the_file_is_left_as_it_was(editor, config):
    from vigil.calibration.zones import ZoneEditError

    before = config.read_text()
    with pytest.raises(ZoneEditError, match="max_people"):
        editor.save({"name": "bad", "polygon_px": _px(editor, SQUARE_M), "max_people": -1})
    with pytest.raises(ZoneEditError, match="at least 3 points"):
        editor.save({"name": "bad", "polygon_px": _px(editor, SQUARE_M[:2])})
    with pytest.raises(ZoneEditError, match="sees no ground|see no ground"):
        editor.save({"name": "sky", "polygon_px": [[100, -400], [200, -400], [200, -300]]})
    assert config.read_text() == before
    assert not (config.parent / "node.yaml.bak").exists()


def test_a_post_from_another_origin_or_not_json_is_refused(editor, config):
    from starlette.testclient import TestClient

    from vigil.calibration.zones import create_app

    client = TestClient(create_app(editor), base_url="http://127.0.0.1:8766")
    body = {"name": "bench", "polygon_px": _px(editor, SQUARE_M)}
    r = client.post("/api/zones", json=body, headers={"Origin": "http://evil.example"})
    assert r.status_code == 400 and "evil.example" in r.json()["error"]
    r = client.post("/api/zones", content=b'{"name": "x"}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and "application/json" in r.json()["error"]
    assert "zones" not in yaml.safe_load(config.read_text())["cameras"][0]
    r = client.post("/api/ground", json={"points_px": _px(editor, SQUARE_M)})
    assert r.status_code == 200
    np.testing.assert_allclose(np.array(r.json()["points_m"]), SQUARE_M, atol=0.02)
    assert r.json()["area_m2"] == pytest.approx(48.0, abs=0.5)


@pytest.fixture
def server(config):
    from vigil.calibration.zones import ZoneEditor, create_app

    editor = ZoneEditor(config, "plaza", frame_index=0)
    with serve_in_thread(create_app(editor), lifespan="off") as base:
        yield f"{base}/", editor


def test_draw_and_save_a_zone_in_chromium(launch_chromium, artifacts_dir, server, config):
    from playwright.sync_api import sync_playwright

    url, editor = server
    corners = _px(editor, SQUARE_M)
    with sync_playwright() as pw:
        browser = launch_chromium(pw, viewport={"width": 1400, "height": 800})
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("() => document.getElementById('camera')?.textContent === 'plaza'")
        for u, v in corners:
            page.locator("#overlay").click(position={"x": u, "y": v})
        page.wait_for_function("() => document.querySelectorAll('#vertices tbody tr').length === 4")
        page.wait_for_function("() => (document.getElementById('area')?.textContent ?? '').includes('m²')")
        page.fill("#zname", "bench")
        page.fill("#max_people", "4")
        page.click("#save")
        page.wait_for_function(
            "() => (document.getElementById('status')?.textContent ?? '').startsWith('Saved zone bench')"
        )
        page.wait_for_selector("#zones tr[data-zone='bench']")
        page.screenshot(path=str(artifacts_dir / "zone-editor-01-saved.png"), full_page=True)
        browser.close()
    (zone,) = yaml.safe_load(config.read_text())["cameras"][0]["zones"]
    assert zone["name"] == "bench" and zone["max_people"] == 4
    # a click lands on a whole CSS pixel: within 1 px of the corners, i.e. a few cm on the ground
    np.testing.assert_allclose(np.array(zone["polygon"]), SQUARE_M, atol=0.1)


def test_writes_through_another_host_name_and_ragged_points_are_refused(editor, config):
    from starlette.testclient import TestClient

    from vigil.calibration.zones import create_app, serve

    body = {"name": "bench", "polygon_px": _px(editor, SQUARE_M)}
    rebound = TestClient(create_app(editor), base_url="http://attacker.example:8766")
    r = rebound.post("/api/zones", json=body)
    assert r.status_code == 400 and "attacker.example" in r.json()["error"]
    local = TestClient(create_app(editor), base_url="http://127.0.0.1:8766")
    r = local.post("/api/ground", json={"points_px": [[1, 2], [3]]})
    assert r.status_code == 400 and "points_px" in r.json()["error"]
    assert "zones" not in yaml.safe_load(config.read_text())["cameras"][0]
    with pytest.raises(Exception, match="loopback only"):
        serve(config, "plaza", host="0.0.0.0")
