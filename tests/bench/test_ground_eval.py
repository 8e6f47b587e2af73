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
