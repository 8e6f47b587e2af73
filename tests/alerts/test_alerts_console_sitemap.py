"""The console's site map (alerts/console/sitemap.py, maproutes.py): camera placement by a
reflecting similarity, the field-of-view polygon, the sites file's checks, markers, the pages."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jinja2")

from vigil.alerts.console.sitemap import (  # noqa: E402
    SitesError,
    fit_similarity,
    fov_ground,
    load_sites,
    marker_of,
)
from vigil.geometry.camera import PinholeCamera  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deploy" / "examples"
A = complex(12, 16)  # 20 plan px per metre, rotated by atan2(16, 12)
B = complex(100, 50)


def _apply(ground):
    g = np.asarray(ground, float)
    w = A * (g[:, 0] - 1j * g[:, 1]) + B
    return np.c_[w.real, w.imag]


def test_similarity_from_two_points_exact():
    ground = [[1.0, 2.0], [5.0, -3.0]]
    fit = fit_similarity(ground, _apply(ground))
    assert abs(fit.a - A) < 1e-12 and abs(fit.b - B) < 1e-12
    assert fit.px_per_m == pytest.approx(20.0, abs=1e-12)
    assert fit.rotation_deg == pytest.approx(math.degrees(math.atan2(16, 12)), abs=1e-12)
    assert fit.residuals_m == pytest.approx((0.0, 0.0), abs=1e-12)
    np.testing.assert_allclose(fit.apply([[0.0, 0.0], [1.0, 0.0]]), [[100.0, 50.0], [112.0, 66.0]], atol=1e-12)


def test_similarity_from_three_noisy_points_least_squares():
    """Noise orthogonal to the model (what least squares leaves as residual): the fit returns
    the exact similarity, and each residual is that noise's length in metres."""
    ground = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 6.0]])
    z = ground[:, 0] - 1j * ground[:, 1]
    basis = np.c_[np.ones(3), z - z.mean()]
    noise = np.array([0.3 + 0.1j, -0.2 + 0.4j, 0.5 - 0.3j])
    noise -= basis @ np.linalg.lstsq(basis, noise, rcond=None)[0]  # the part no similarity explains
    plan = _apply(ground) + np.c_[noise.real, noise.imag]
    fit = fit_similarity(ground, plan)
    assert abs(fit.a - A) < 1e-9 and abs(fit.b - B) < 1e-9
    assert fit.residuals_m == pytest.approx(tuple(np.abs(noise) / 20.0), abs=1e-12)
    assert fit.rms_m == pytest.approx(math.sqrt(np.mean(np.abs(noise) ** 2)) / 20.0, abs=1e-12)


def test_similarity_needs_distinct_ground_points():
    with pytest.raises(ValueError, match="coincide"):
        fit_similarity([[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [5.0, 5.0]])


def _down_camera():
    """800 x 600 px, f = 500 px, 10 m above (3, 4), looking straight down (image x = world x,
    image y = world -y)."""
    return PinholeCamera(
        np.array([[500.0, 0, 400], [0, 500, 300], [0, 0, 1]]),
        None,
        [math.pi, 0, 0],
        [-3.0, 4.0, 10.0],
        image_size=(800, 600),
    )


def test_fov_of_camera_looking_down():
    poly = fov_ground(_down_camera(), max_range_m=40.0)
    # the image's corners on the ground, counter-clockwise
    np.testing.assert_allclose(poly, [[-5.0, -2.0], [11.0, -2.0], [11.0, 10.0], [-5.0, 10.0]], atol=1e-9)


def test_fov_cut_at_range():
    """A 7 m disc around the foot (3, 4) cuts the 16 x 12 m rectangle on all four sides."""
    poly = fov_ground(_down_camera(), max_range_m=7.0)
    d = np.hypot(poly[:, 0] - 3.0, poly[:, 1] - 4.0)
    assert d.max() == pytest.approx(7.0, abs=1e-9)  # the inscribed 72-gon's vertices
    assert np.all(d <= 7.0 + 1e-9) and np.all(d >= 7.0 * math.cos(math.pi / 72) - 1e-9)
    # the rectangle's bottom edge y = -2 (6 m from the foot) is kept between the cuts near x = 3 -/+ 3.606
    on_edge = np.sort(poly[np.abs(poly[:, 1] + 2.0) < 1e-9, 0])
    assert len(on_edge) == 2 and on_edge == pytest.approx([3 - math.sqrt(13), 3 + math.sqrt(13)], abs=0.05)
    assert np.all(poly[:, 0] >= -5.0 - 1e-9) and np.all(poly[:, 1] <= 10.0 + 1e-9)


def test_fov_of_pets_camera_stops_at_range_and_horizon():
    from vigil.geometry.calibration_io import load_camera

    cam = load_camera(EXAMPLES / "pets2009-view001.calib.yaml")
    poly = fov_ground(cam, max_range_m=40.0)
    foot = cam.centre_m[:2]
    d = np.hypot(*(poly - foot).T)
    assert len(poly) > 10 and np.all(np.isfinite(poly))
    assert d.max() == pytest.approx(40.0, abs=1e-2)


def _sites(tmp_path, text):
    shutil.copy(EXAMPLES / "pets-plan.png", tmp_path / "plan.png")
    shutil.copy(EXAMPLES / "pets2009-view001.calib.yaml", tmp_path / "cam.calib.yaml")
    path = tmp_path / "sites.yaml"
    path.write_text(text)
    return path


SITE = """vigil_sites: 1
areas:
  - name: piazza
    plan: plan.png
    scale: 0.05
    georeference:
      - {{plan: [0, 0], lat: 45.0, lon: 9.0}}
      - {{plan: [1000, 800], lat: 44.999, lon: 9.002}}
    cameras:
      - name: cam-a
        points:
          - {{ground: [0, 0], plan: [700, 300]}}
          - {{ground: [10, 0], plan: [900, 300]}}
          - {{ground: [0, -20], plan: [{u3}, 700]}}
"""


def test_sites_file_loads(tmp_path):
    sites = load_sites(_sites(tmp_path, SITE.format(u3=700)))
    area = sites.areas["piazza"]
    assert area.size_px == (1000, 800) and area.scale == 0.05
    assert area.georeference[1] == {"plan": (1000.0, 800.0), "lat": 44.999, "lon": 9.002}
    cam = area.cameras["cam-a"]
    assert cam.scale_deviation == pytest.approx(0.0, abs=1e-12)
    assert cam.at_px == pytest.approx((766.6667, 433.3333), abs=1e-4)  # no calibration: points' centroid
    assert cam.fov_px.shape == (0, 2)
    assert sites.area_of_camera("cam-a") is area and sites.area_of_camera("other") is None


def test_sites_file_rejects_a_bad_fit_naming_the_camera(tmp_path):
    with pytest.raises(SitesError) as err:
        load_sites(_sites(tmp_path, SITE.format(u3=760)))  # 3 m off on the plan
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "sites.yaml")) and "areas[0] (piazza).cameras[0] (cam-a).points" in msg
    assert "the fit's RMS residual 0.560 m exceeds max_rms_m 0.5 m (residuals, m: 0.686, 0.614, 0.307)" in msg


def test_sites_file_rejects_a_scale_off_the_plan(tmp_path):
    text = SITE.format(u3=700).replace("scale: 0.05", "scale: 0.04")
    with pytest.raises(SitesError, match=r"cameras\[0\] \(cam-a\)\.points: the fitted scale 0\.05 m/px differs"):
        load_sites(_sites(tmp_path, text))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("scale: 0.05", "scale: -1"), "areas[0].scale: Input should be greater than 0"),
        (("plan: plan.png", "plan: missing.png"), "areas[0] (piazza).plan: cannot read"),
        (("plan: plan.png", "plan: cam.calib.yaml"), "not a .png/.jpg/.jpeg file"),
        (("        points:", "        colour: red\n        points:"), "areas[0].cameras[0].colour: Extra inputs"),
        (("vigil_sites: 1", "vigil_sites: 2"), "vigil_sites: expected 1, got 2"),
    ],
)
def test_sites_file_errors_name_file_and_field(tmp_path, change, expected):
    path = _sites(tmp_path, SITE.format(u3=700).replace(*change))
    with pytest.raises(SitesError) as err:
        load_sites(path)
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value)


def test_pets_example_and_markers():
    sites = load_sites(EXAMPLES / "sites-pets.yaml")
    area = sites.areas["pets"]
    cam = area.cameras["pets-view001"]
    assert cam.fit.residuals_m == pytest.approx((0, 0, 0, 0), abs=1e-9)
    # the camera's foot (-28.940, -19.529) m -> u = 20 (x + 35), v = 20 (15 - y)
    assert cam.at_px == pytest.approx((121.196, 690.581), abs=1e-3)
    assert len(cam.fov_px) > 10
    ev = {
        "id": "e1",
        "camera": "pets-view001",
        "type": "distance_violation",
        "severity": "warning",
        "state": "start",
        "time": "2026-12-02T10:00:00Z",
        "alarm_id": "5f0c2d4e-7a8b-4c1d-9e2f-3a4b5c6d7e02",
        "payload": {"positions_m": {"3": [1.0, 2.0], "7": [2.0, 4.0]}},
    }
    m = marker_of(area, ev)
    assert m["people"] == [[720.0, 260.0], [740.0, 220.0]] and m["at"] == [730.0, 240.0]
    assert m["alarm"] == "5f0c2d4e-7a8b-4c1d-9e2f-3a4b5c6d7e02" and m["at_camera"] is False
    hit = {**ev, "type": "plate_hit", "payload": {"plate": "AB123CD"}, "alarm_id": None}
    assert marker_of(area, hit)["at"] == [121.2, 690.58] and marker_of(area, hit)["alarm"] == "e1"
    assert marker_of(area, hit)["at_camera"] is True
    assert marker_of(area, {**ev, "type": "plate_transit"}) is None
    assert marker_of(area, {**ev, "type": "heatmap"}) is None
    assert marker_of(area, {**ev, "camera": "elsewhere"}) is None


def _login(client, user, password):
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"csrf": token, "username": user, "password": password}, follow_redirects=False)


def test_map_pages(tmp_path):
    from starlette.testclient import TestClient

    from vigil.alerts.console.app import create_app
    from vigil.alerts.console.db import ConsoleDB
    from vigil.alerts.store import EventStore

    EventStore(tmp_path / "events.db").close()
    db = ConsoleDB(tmp_path / "events.db")
    db.add_user("op", "operator", "op-password")
    try:
        app = create_app(db, follow=False, sites=load_sites(EXAMPLES / "sites-pets.yaml"))
        with TestClient(app) as client:
            assert client.get("/map", follow_redirects=False).status_code == 303
            assert client.get("/map/plan/pets", follow_redirects=False).status_code == 303
            assert client.get("/api/map/pets/marker/x").status_code == 401
            assert _login(client, "op", "op-password").status_code == 303
            page = client.get("/map")
            assert page.status_code == 200
            assert 'viewBox="0 0 1000 800"' in page.text and 'href="/map/plan/pets"' in page.text
            assert 'class="fov" data-camera="pets-view001"' in page.text
            assert 'data-metres="10" data-px="200.0"' in page.text  # scale bar: 10 m = 200 px
            assert "http://" not in page.text.replace("http://www.w3.org/2000/svg", "")
            assert "https://" not in page.text
            plan = client.get("/map/plan/pets")
            assert plan.status_code == 200 and plan.content == (EXAMPLES / "pets-plan.png").read_bytes()
            assert client.get("/map/nowhere").status_code == 404
            assert client.get("/api/map/pets/marker/123").json() == {"marker": None}
        with TestClient(create_app(db, follow=False)) as client:
            _login(client, "op", "op-password")
            assert 'id="map-none"' in client.get("/map").text
    finally:
        db.close()


def test_console_cli_checks_the_sites_file_at_start(tmp_path, capsys):
    from vigil.alerts.store import EventStore
    from vigil.cli import main

    EventStore(tmp_path / "e.db").close()
    bad = _sites(tmp_path, SITE.format(u3=700).replace("scale: 0.05", "scale: zero"))
    assert main(["console", "--db", str(tmp_path / "e.db"), "--sites", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"vigil console: error: {bad}: areas[0].scale: Input should be a valid number" in err
