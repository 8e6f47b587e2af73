"""`vigil eval ground` pair scoring and `vigil bench geometry` (smoke, small N)."""

from __future__ import annotations

import json

import numpy as np

from vigil.bench.geometry_bench import bench_geometry
from vigil.bench.ground_eval import pair_scores


def test_pair_scores_strict_and_matched_only():
    gt = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.5, 0.0], [20.0, 0.0], [21.0, 0.0]])
    # detections: 0->gt0, 1->gt1 (pair TP), 2->gt2 but gt3 missed (FN, not matched-only),
    # 3 unmatched next to 2 (FP in strict only), 4->gt4 and 5->gt5 placed 3 m apart (FN both)
    pred = np.array([[0.1, 0.0], [1.0, 0.1], [10.0, 0.0], [10.5, 0.5], [20.0, 0.0], [23.0, 0.0]])
    det_to_gt = np.array([0, 1, 2, -1, 4, 5])
    s = pair_scores(pred, gt, det_to_gt, 2.0)
    assert s["strict"] == (1, 1, 2)
    assert s["matched_only"] == (1, 0, 1)


def test_bench_geometry_smoke():
    res = bench_geometry(50, frames=3)
    assert res["people"] == 50 and res["ms_per_frame"] > 0
    json.dumps(res)


def test_bench_geometry_cli(capsys):
    from vigil.cli import main

    assert main(["bench", "geometry", "--people", "30", "--frames", "2", "--no-growth", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["people"] == 30 and "ms_per_frame" in out


def test_ground_matching_is_one_to_one_within_the_gate():
    import numpy as np

    from vigil.bench.ground_eval import match_on_ground

    pred = np.array([[0.0, 0.0], [1.1, 0.0], [5.0, 5.0], [np.nan, 0.0]])
    gt = np.array([[1.0, 0.0], [0.2, 0.0], [9.0, 9.0]])
    assert match_on_ground(pred, gt, gate_m=1.0).tolist() == [1, 0, -1, -1]
    assert match_on_ground(pred, np.zeros((0, 2)), gate_m=1.0).tolist() == [-1, -1, -1, -1]


# ---------------------------------------------------------------- figures on hand-made frames
def _frame():
    from vigil.bench.ground_stats import FrameRecord

    gt = np.array([[0, 0], [0.8, 0], [10, 0], [11.3, 0], [20, 0], [21.8, 0], [30, 0]], float)
    pred = np.array([[0, 0], [0.9, 0], [10, 0], [11.6, 0], [20, 0], [21.4, 0], [30, 0], [30, 0.9]], float)
    iou = np.array([0, 1, 2, 3, 4, 5, 6, -1])
    ground = np.array([0, 1, 2, 3, 4, -1, 6, -1])
    return FrameRecord(0, pred, gt, np.array([10.0, 10, 22, 22, 30, 30, 30]), {"iou": iou, "ground": ground})


def test_pair_f1_at_several_thresholds_and_grouped_recall():
    from vigil.bench.ground_stats import frame_table, summarise

    s = summarise(frame_table([_frame()], (1.0, 1.5, 2.0), (20.0, 25.0)), 2.0)
    by = s["violation_pairs_by_threshold"]
    assert by["1"]["iou_matched"]["f1"] == round(2 / 3, 4)
    assert by["1.5"]["iou_matched"]["f1"] == 0.4
    assert by["2"]["iou_matched"]["f1"] == round(6 / 7, 4)
    assert (by["2"]["ground_matched"]["tp"], by["2"]["ground_matched"]["fp"], by["2"]["ground_matched"]["fn"]) == (
        2,
        2,
        1,
    )
    p = s["people"]
    assert (p["iou_matched"]["precision"], p["iou_matched"]["recall"]) == (0.875, 1.0)
    assert (p["ground_matched"]["precision"], p["ground_matched"]["recall"]) == (0.75, round(6 / 7, 4))
    assert p["ground_matched"]["grouped"]["recall"] == round(5 / 6, 4)
    assert p["ground_matched"]["isolated"]["recall"] == 1.0
    assert p["ground_matched"]["by_threshold"]["1"]["isolated"]["recall"] == 0.8
    rows = s["by_camera_distance"]
    assert [r["gt_people"] for r in rows] == [2, 2, 3]
    assert [r["recall_ground"] for r in rows] == [1.0, 1.0, round(2 / 3, 4)]
    assert rows[1]["foot_error_m"]["median"] == 0.15  # gt3 (11.3) vs p3 (11.6) and 0 for gt2


def test_pair_distance_error():
    from vigil.bench.ground_stats import FrameRecord, frame_table, summarise

    gt = np.array([[0, 0], [1, 0], [0, 4]], float)
    pred = np.array([[0, 0], [1.5, 0], [0, 4]], float)
    r = FrameRecord(0, pred, gt, np.zeros(3), {"iou": np.array([0, 1, 2]), "ground": np.array([0, -1, 2])})
    s = summarise(frame_table([r], (2.0,), (20.0,)), 2.0)["pair_distance_error_m"]
    err = np.abs(np.hypot(1.5, 4) - np.hypot(1, 4))
    assert s["iou_matched"]["all"]["median"] == round(err, 3)
    assert s["iou_matched"]["all"]["p95"] == round(float(np.percentile([0, err, 0.5], 95)), 3)
    assert s["iou_matched"]["close"]["median"] == 0.5 and s["iou_matched"]["close"]["pairs"] == 1
    assert s["ground_matched"]["all"]["median"] == 0.0 and s["ground_matched"]["close"]["median"] is None


def test_bootstrap_interval_contains_estimate_and_is_deterministic():
    from vigil.bench.ground_stats import (
        FrameRecord,
        block_resample_counts,
        bootstrap,
        frame_table,
        summarise,
        weighted_percentile,
    )

    rng = np.random.default_rng(1)
    recs = []
    for i in range(120):
        f = _frame()
        recs.append(FrameRecord(i, f.pred_xy + rng.normal(0, 0.2, f.pred_xy.shape), f.gt_xy, f.gt_range_m, f.matches))
    t = frame_table(recs, (1.0, 2.0), (20.0,))
    s, ci = summarise(t, 2.0), bootstrap(t, 2.0, resamples=200, seed=3)
    lo, hi = ci["pair_f1"]["iou_matched"]["2"]
    assert lo <= s["violation_pairs_by_threshold"]["2"]["iou_matched"]["f1"] <= hi
    lo, hi = ci["foot_error_median_m"]
    assert lo <= s["ground_error_m"]["median"] <= hi
    assert ci == bootstrap(t, 2.0, resamples=200, seed=3)
    assert ci != bootstrap(t, 2.0, resamples=200, seed=4)
    w = block_resample_counts(50, 20, 7, 0)
    assert w.shape == (7, 50) and (w.sum(axis=1) == 50).all()
    v = np.sort(rng.normal(size=30))
    k = rng.integers(0, 3, 30)
    assert np.isclose(weighted_percentile(v, k, 50), np.percentile(np.repeat(v, k), 50))


def test_detections_cache_key_and_round_trip(tmp_path):
    from vigil.bench.detcache import CachingDetector, cache_key, detector_identity
    from vigil.detectors.detections import Detections

    class Fake:
        class_names = ["person"]
        calls = 0

        def detect(self, image):
            Fake.calls += 1
            return Detections(np.array([[1, 2, 3, 4.0]]), np.array([0.9]), np.array([0]))

    video = tmp_path / "v.avi"
    video.write_bytes(b"abc")
    k = cache_key(video, range(0, 5), detector_identity(Fake(), {"conf": 0.25}))
    assert k == cache_key(video, range(0, 5), detector_identity(Fake(), {"conf": 0.25}))
    assert k != cache_key(video, range(0, 5), detector_identity(Fake(), {"conf": 0.2}))
    assert k != cache_key(video, range(0, 6), detector_identity(Fake(), {"conf": 0.25}))
    video.write_bytes(b"abd")
    assert k != cache_key(video, range(0, 5), detector_identity(Fake(), {"conf": 0.25}))
    c = CachingDetector(Fake(), tmp_path / "c", k)
    for i in range(3):
        c.frame_index = i
        c.detect(None)
    assert not c.hit and c.save() is not None and Fake.calls == 3
    c2 = CachingDetector(Fake(), tmp_path / "c", k)
    c2.frame_index = 1
    d = c2.detect(None)
    assert c2.hit and Fake.calls == 3 and d.xyxy.tolist() == [[1, 2, 3, 4]]
