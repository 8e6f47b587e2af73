"""`vigil eval detect` / `vigil bench detect`: AP arithmetic on known cases, and both commands on real frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vigil.bench.detect_cmd import average_precision

REPO = Path(__file__).resolve().parents[2]


def test_ap_is_one_when_every_detection_is_right_and_all_are_found():
    assert average_precision(np.array([0.9, 0.8]), np.array([True, True]), 2) == pytest.approx(1.0)


def test_ap_of_known_ranking():
    # ranked: TP, FP, TP with 2 ground truths -> recall steps 0.5 (P 1.0) and 1.0 (P 2/3)
    ap = average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 2)
    assert ap == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))


def test_ap_counts_missed_ground_truth_and_handles_empty():
    assert average_precision(np.array([0.9]), np.array([True]), 4) == pytest.approx(0.25)
    assert average_precision(np.zeros(0), np.zeros(0, bool), 3) == 0.0
    assert average_precision(np.zeros(0), np.zeros(0, bool), 0) == 0.0


def test_eval_detect_scores_real_frames(vtest: Path, pets_gt: Path, default_model, capsys):
    from vigil.cli import main

    assert main(["eval", "detect", "--video", str(vtest), "--gt", str(pets_gt), "--frames", "0:12", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["frames"] == 12
    assert 0 <= res["detector"]["precision"] <= 1 and res["detector"]["recall"] > 0.5
    assert set(res) >= {"mota", "idf1", "id_switches", "fps", "tracked"}


def test_bench_detect_reports_both_rates_and_every_stage(vtest: Path, default_model, capsys):
    from vigil.cli import main

    cfg = REPO / "deploy" / "examples" / "pets2009-s2l1.yaml"
    assert main(["bench", "detect", "--config", str(cfg), "--source", str(vtest), "--frames", "5", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["frames"] == 5
    assert res["detector_fps"] > 0 and res["pipeline_fps"] > 0
    assert {"decode", "inference", "tracking", "geometry", "events"} <= set(res["stages_ms"])
    # a CPU node (AMX patched off by conftest): OpenVINO runs the INT8 copy, or FP32 before it is made
    assert res["detector"]["runtime"] == "openvino" and res["detector"]["precision"] in ("int8", "fp32")
    assert res["detector"]["model"].startswith("yolov8s") and res["detector"]["model"].endswith(".onnx")
