"""`vigil bench geometry`: the scene (camera, crowd, boxes) and the per-stage timing keys, at small N."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vigil.bench.geometry_bench import BOUND_MS_AT_1000, PETS_CALIBRATION, Crowd, bench_camera, bench_geometry


def test_the_calibration_ships_with_the_repository():
    assert PETS_CALIBRATION.is_file()


@pytest.mark.parametrize("side_m", [7.0, 20.0, 63.0])
def test_the_square_fills_the_frame_alike_for_every_size(side_m):
    """Moving the camera back by side / 7 m keeps the image of the scaled square (and of scaled people)."""
    ref, c0, a0 = bench_camera(7.0)
    cam, c, a = bench_camera(side_m)
    np.testing.assert_allclose(c, c0, atol=1e-9)
    np.testing.assert_allclose(a, a0, atol=1e-12)
    np.testing.assert_allclose(a @ a.T, np.eye(2), atol=1e-12)
    local = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [0.1, 0.3]])
    k = side_m / 7.0
    g_ref, g = c0 + 7.0 * local @ a0, c + side_m * local @ a
    np.testing.assert_allclose(cam.ground_to_image(g), ref.ground_to_image(g_ref), atol=1e-6)
    heads = cam.project_points(np.c_[g, np.full(len(g), 1.7 * k)])
    np.testing.assert_allclose(heads, ref.project_points(np.c_[g_ref, np.full(len(g), 1.7)]), atol=1e-6)
    px = ref.ground_to_image(g_ref)
    w, h = ref.image_size
    assert np.all((px[:, 0] > 0) & (px[:, 0] < w)) and np.all(px[:, 1] > h / 2)  # the lower half of the frame


def test_the_crowd_gives_the_occlusion_rule_work():
    people = 400
    side = math.sqrt(people / 0.25)
    cam, c, a = bench_camera(side)
    crowd = Crowd(people, side, cam, c, a, np.random.default_rng(0))
    for _ in range(5):
        crowd.step(0.1)
    assert np.all((crowd.local >= 0) & (crowd.local <= side))
    assert np.all((crowd.height >= 1.5) & (crowd.height <= 1.9))
    b, seen = crowd.boxes()
    assert b.shape == (people, 4) and np.all(np.isfinite(b)) and seen.mean() > 0.97
    b = b[seen]
    assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
    cut = np.mean(b[:, 3] >= cam.image_size[1])
    assert 0.01 < cut < 0.15  # feet below the frame's bottom edge


def test_bench_geometry_reports_both_stages():
    res = bench_geometry(60, frames=3)
    for key in ("people", "frames", "density_per_m2", "ms_per_frame", "p95_ms", "ground_ms", "rules_ms", "changes"):
        assert key in res
    assert res["people"] == 60 and res["ground_stage"] is True
    assert res["ground_ms"] > 0 and res["rules_ms"] > 0 and res["ms_per_frame"] > 0
    assert res["foot_flagged_per_frame"] >= res["foot_corrected_per_frame"] > 0
    assert 0.9 * 60 < res["in_view_per_frame"] <= 60
    json.dumps(res)
    rules_only = bench_geometry(60, frames=3, ground=False)
    assert rules_only["ground_ms"] is None and rules_only["ms_per_frame"] > 0


def test_bench_geometry_cli_json(capsys):
    from vigil.cli import main

    assert main(["bench", "geometry", "--people", "40", "--frames", "2", "--no-growth", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["people"] == 40 and {"ms_per_frame", "ground_ms", "rules_ms", "p95_ms"} <= set(out)
    assert main(["bench", "geometry", "--people", "40", "--frames", "2", "--no-growth", "--no-ground"]) == 0
    assert "rules only" in capsys.readouterr().out
    assert BOUND_MS_AT_1000 == 5.0


def test_no_people():
    res = bench_geometry(0, frames=2)
    assert res["people"] == 0 and res["changes"] == 0
