"""`vigil calibrate pick` in real headless Chromium (Debian's `chromium`) driven by Playwright.

Clicks 8 points of the PETS plaza on frame 0 of vtest.avi, types their ground coordinates,
saves, and checks the written calibration file. A screenshot of the page goes to
``$VIGIL_ARTIFACTS`` (default: the test's tmp_path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from ..conftest import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
VTEST = REPO / "data" / "vtest.avi"
PETS_XML = REPO.parent / "shared" / "data" / "pets2009" / "View_001.xml"
PLAZA_8 = np.array([[-12, -14], [-8, -14], [6, -9], [6, -5], [-7, 6], [-10, 2], [-12, -6], [-2, -4]], float)


def _need():
    if not VTEST.is_file():
        pytest.skip(f"{VTEST} missing: run `bash scripts/setup.sh`")
    if not PETS_XML.is_file():
        pytest.skip(f"{PETS_XML} missing: ../shared exists only beside development checkouts")


@pytest.fixture
def server(tmp_path):
    _need()
    from vigil.calibration.frames import read_frame
    from vigil.calibration.pick import create_app

    out = tmp_path / "out" / "view1.calib.yaml"
    app = create_app(read_frame(str(VTEST), 0), out, source=str(VTEST))
    with serve_in_thread(app, lifespan="off") as url:
        yield f"{url}/", out


def test_pick_points_in_chromium(launch_chromium, artifacts_dir, server, tmp_path):
    from playwright.sync_api import sync_playwright

    from vigil.geometry.calibration_io import load_calibration
    from vigil.geometry.camera import TsaiCamera

    url, out = server
    tsai = TsaiCamera.from_pets_xml(PETS_XML)
    pixels = tsai.ground_to_image(PLAZA_8)
    artifacts = artifacts_dir
    with sync_playwright() as pw:
        ctx = launch_chromium(
            pw,
            viewport={"width": 1500, "height": 950},
        )
        try:
            page = ctx.new_page()
            page.goto(url)
            page.wait_for_function(
                "() => { const f = document.getElementById('frame'); "
                "return !!f && f.complete && f.naturalWidth === 768; }"
            )
            canvas = page.locator("#overlay")
            for i, ((u, v), (x, y)) in enumerate(zip(pixels, PLAZA_8)):
                canvas.click(position={"x": float(u), "y": float(v)})
                clicked = (float(page.input_value("#pu")), float(page.input_value("#pv")))
                assert abs(clicked[0] - u) <= 1.0 and abs(clicked[1] - v) <= 1.0, (clicked, (u, v))
                # the installer corrects the pixel to a tenth by typing, then the ground position
                page.fill("#pu", f"{u:.1f}")
                page.fill("#pv", f"{v:.1f}")
                page.fill("#gx", f"{x:g}")
                page.fill("#gy", f"{y:g}")
                page.click("#add")
                page.wait_for_function(f"() => document.querySelectorAll('#points tbody tr').length === {i + 1}")
            # live residuals shown for every point once >= 4 points
            page.wait_for_function(
                "() => (document.querySelectorAll('#points tbody tr td:nth-child(6)')[7]?.textContent ?? '') !== ''"
            )
            status = page.text_content("#status")
            assert "homography: 8 of 8 points used" in status
            residuals = [float(t) for t in page.locator("#points tbody tr td:nth-child(6)").all_text_contents()]
            assert len(residuals) == 8 and max(residuals) < 0.15
            page.click("#save")
            page.wait_for_function("() => document.getElementById('status')?.dataset.saved !== undefined")
            assert "saved" in page.text_content("#status")
            page.screenshot(path=str(artifacts / "calibrate-pick-page.png"), full_page=True)
        finally:
            ctx.close()
    cal, cam = load_calibration(out)
    assert cal.model == "homography" and cal.camera == "view1" and cal.image_size == (768, 576)
    err = np.linalg.norm(cam.image_to_ground(pixels) - PLAZA_8, axis=1)
    assert err.max() < 0.15
    saved_points = yaml.safe_load(out.with_name("view1.points.yaml").read_text())["points"]
    assert [p["name"] for p in saved_points] == [f"P{i}" for i in range(1, 9)]
    np.testing.assert_allclose([p["ground"] for p in saved_points], PLAZA_8)
