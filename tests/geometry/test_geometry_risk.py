"""The dynamic risk model and the heat map, against closed-form answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vigil.geometry.risk import HeatMap, RiskModel, RiskParams, proximity


def test_proximity_kernel():
    p = RiskParams(sigma_m=1.0, cutoff_m=3.0)
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [np.nan, 0.0]])
    total, per = proximity(xy, p)
    assert total == pytest.approx(math.exp(-0.5))
    np.testing.assert_allclose(per, [math.exp(-0.5), math.exp(-0.5), 0.0, 0.0])
    # beyond the cutoff nothing counts
    assert proximity(np.array([[0.0, 0.0], [3.5, 0.0]]), p)[0] == 0.0


def test_risk_rises_to_steady_state_and_decays():
    p = RiskParams(sigma_m=1.0, tau_s=10.0, e_ref=5.0, max_gap_s=5.0)
    m = RiskModel(p)
    m.update(0.0, 1.0)
    assert m.exposure == 0.0
    for k in range(1, 11):
        m.update(float(k), 1.0)
    # exact solution of dE/dt = P - E/tau with P = 1 from 0 to 10: tau (1 - e^-1)
    assert m.exposure == pytest.approx(10.0 * (1 - math.exp(-1.0)), rel=1e-12)
    assert m.level == pytest.approx(1 - math.exp(-m.exposure / 5.0))
    e10 = m.exposure
    m.update(20.0, 0.0)  # nobody close for 10 s: decays by e^-1
    assert m.exposure == pytest.approx(e10 * math.exp(-1.0), rel=1e-12)
    # long run: steady state P * tau
    for k in range(21, 400):
        m.update(float(k), 2.0)
    assert m.exposure == pytest.approx(20.0, rel=1e-9)


def test_risk_parameters_are_validated():
    with pytest.raises(ValueError, match="tau_s"):
        RiskParams(tau_s=0)


def test_heatmap_accumulates_person_seconds(tmp_path):
    hm = HeatMap((0, 4, 0, 2), cell_m=1.0, params=RiskParams(cutoff_m=2.0))
    assert hm.occupancy.shape == (2, 4)
    xy = np.array([[0.5, 0.5], [1.5, 0.5], [3.5, 1.5], [9, 9], [np.nan, 1]])
    hm.update(0.0, xy)
    hm.update(1.0, xy)
    hm.update(3.0, xy)
    occ = np.zeros((2, 4))
    occ[0, 0] = occ[0, 1] = occ[1, 3] = 3.0
    np.testing.assert_allclose(hm.occupancy, occ)
    w = math.exp(-0.5)  # the two people 1 m apart
    risk = np.zeros((2, 4))
    risk[0, 0] = risk[0, 1] = 3.0 * w
    np.testing.assert_allclose(hm.risk, risk)
    assert hm.outside == 6
    files = hm.save(tmp_path / "cam.heatmap")
    np.testing.assert_allclose(np.load(files["occupancy_npy"]), occ)
    import cv2

    img = cv2.imread(files["risk_png"])
    assert img is not None and img.shape[0] > 2 and img.max() > 0
    assert json.loads(open(files["grid_json"]).read())["cell_m"] == 1.0


def test_heatmap_bad_bounds():
    with pytest.raises(ValueError, match="bounds"):
        HeatMap((0, 0, 0, 1))


def test_compact_grid_round_trips_within_one_quantisation_step():
    from vigil.geometry.risk import compact_grid, decode_compact_grid

    rng = np.random.default_rng(0)
    values = rng.uniform(0, 40, size=(12, 20))
    values[3, 4] = 0.0
    g = compact_grid(values, (-3.25, 7.5), 0.5, unit="person-seconds", max_cells=2500)
    assert g["shape"] == [12, 20] and g["downsample"] == 1
    assert g["origin_m"] == [-3.25, 7.5] and g["cell_m"] == 0.5 and g["unit"] == "person-seconds"
    assert g["scale"] == pytest.approx(values.max(), rel=1e-5)
    back = decode_compact_grid(json.loads(json.dumps(g)))
    assert back.shape == values.shape
    assert np.abs(back - values).max() <= g["scale"] / 255.0
    assert back[3, 4] == 0.0
    zero = compact_grid(np.zeros((3, 4)), (0, 0), 1.0)
    assert zero["scale"] == 0.0 and not decode_compact_grid(zero).any()


def test_compact_grid_of_a_large_area_is_downsampled_under_the_size_bound():
    from vigil.geometry.risk import compact_grid, decode_compact_grid

    hm = HeatMap((-100, 100, -60, 60), cell_m=0.25)  # 480 x 800 cells
    xy = np.array([[-99.9, -59.9], [0.1, 0.1], [0.6, 0.1], [99.9, 59.9]])
    hm.update(0.0, xy)
    hm.update(1.0, xy)
    layers = hm.compact(max_cells=2500)
    assert set(layers) == {"occupancy", "risk"}
    occ = layers["occupancy"]
    rows, cols = occ["shape"]
    assert rows * cols <= 2500 and occ["downsample"] > 1
    k = occ["downsample"]
    assert (rows, cols) == (math.ceil(480 / k), math.ceil(800 / k)) and occ["cell_m"] == pytest.approx(0.25 * k)
    # block sums keep the total person-seconds (within the quantisation)
    back = decode_compact_grid(occ)
    assert back.sum() == pytest.approx(hm.occupancy.sum(), abs=rows * cols * occ["scale"] / 255.0)
    assert back[0, 0] > 0 and back[-1, -1] > 0
    assert len(json.dumps(layers, separators=(",", ":"))) < 16 * 1024
    worst = compact_grid(np.random.default_rng(1).uniform(0, 1, (2000, 2000)), (0, 0), 0.1, max_cells=4096)
    assert len(json.dumps(worst)) < 8 * 1024
