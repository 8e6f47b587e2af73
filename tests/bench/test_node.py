"""`vigil bench node`: N paced replays through the supervisor and the shared detector.

The real run (two cameras, 20 frames of vtest.avi, the embedded model at a small input size
to stay short) checks what the report says against itself: every frame offered is either
processed or dropped, fps and realtime follow their definitions, the shared detector ran
exactly the frames the workers processed. The row arithmetic is checked on known reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vigil.bench.node import REALTIME_FRACTION, bench_config, camera_row
from vigil.edge.config import load_config
from vigil.edge.runner import CameraReport
from vigil.edge.worker import RunReport

REPO = Path(__file__).resolve().parents[2]
CALIB = REPO / "deploy" / "examples" / "pets2009-view001.calib.yaml"


def _config(tmp_path: Path, vtest: Path, **camera) -> Path:
    cfg = {
        "node": "bench",
        "detector": {"type": "onnx", "input_size": [288, 384]},
        "cameras": [{"name": "cam", "source": str(vtest), "fps": 7, "calibration": str(CALIB), **camera}],
    }
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _report(frames: int, dropped: int, corrupt: int = 0, wall_s: float = 4.0) -> CameraReport:
    run = RunReport(camera="c-1", frames=frames, stale_dropped=dropped, corrupt_skipped=corrupt, wall_s=wall_s)
    run.stage_s = {"decode": 0.01 * frames, "detect": 0.1 * frames, "track": 0.0}
    return CameraReport("c-1", ok=True, run=run, supervised=True)


def test_paced_row_counts_offered_frames_and_applies_the_95_percent_rule():
    row = camera_row(_report(19, 1), source_fps=7.0, paced=True)
    assert (row["offered"], row["frames"], row["dropped"]) == (20, 19, 1)
    assert row["fps"] == pytest.approx(19 * 7.0 / 20, abs=1e-3)
    assert row["realtime"] is True  # 19 >= 0.95 * 20
    assert row["stage_ms"] == {"decode": 10.0, "detect": 100.0, "track": 0.0}
    assert row["busy_ms"] == 110.0
    row = camera_row(_report(18, 1, corrupt=1), source_fps=7.0, paced=True)
    assert (row["offered"], row["realtime"]) == (20, False)  # 18 < 19
    assert REALTIME_FRACTION == 0.95


def test_unpaced_row_compares_the_frame_rate_with_the_source():
    assert camera_row(_report(28, 0, wall_s=4.0), 7.0, paced=False)["realtime"] is True  # 7.0 fps
    row = camera_row(_report(27, 0, wall_s=4.0), 7.0, paced=False)
    assert (row["fps"], row["realtime"]) == (6.75, False)


def test_a_camera_that_failed_is_a_row_that_is_not_realtime():
    row = camera_row(CameraReport("c-2", ok=False, error="boom", supervised=True), 7.0, paced=True)
    assert row == {"name": "c-2", "ok": False, "error": "boom", "frames": 0, "realtime": False}


def test_bench_config_clones_the_first_camera_and_overrides_the_shared_detector(tmp_path: Path, vtest: Path):
    cfg = load_config(_config(tmp_path, vtest, loop=True))
    node = bench_config(cfg, 3, tmp_path / "w", max_batch=3, max_wait_ms=12.5, threads=1)
    assert [c.name for c in node.cameras] == ["cam-1", "cam-2", "cam-3"]
    assert {c.source for c in node.cameras} == {str(vtest)}
    assert {c.calibration for c in node.cameras} == {CALIB}
    assert not any(c.loop for c in node.cameras)
    assert (node.operations.detector_max_batch, node.operations.detector_max_wait_ms) == (3, 12.5)
    assert node.detector.threads == 1
    assert node.operations.status_dir == tmp_path / "w" / "status"
    with pytest.raises(ValueError, match="cameras"):
        bench_config(cfg, 0, tmp_path)


def test_two_paced_cameras_on_20_frames(tmp_path: Path, vtest: Path, default_model, capsys):
    from vigil.cli import main

    argv = ["bench", "node", "--config", str(_config(tmp_path, vtest)), "--cameras", "2", "--frames", "20"]
    argv += ["--max-batch", "2", "--max-wait-ms", "5", "--threads", "2", "--start-delay-s", "4", "--json"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert {"cameras", "source_fps", "per_camera", "realtime_cameras", "total_fps", "detector", "settings"} <= set(res)
    assert (res["cameras"], res["frames"], res["source_fps"], res["paced"]) == (2, 20, 7.0, True)
    rows = res["per_camera"]
    assert [r["name"] for r in rows] == ["cam-1", "cam-2"]
    for r in rows:
        assert r["ok"] is True and r["offered"] == 20
        assert r["frames"] + r["dropped"] + r["corrupt"] == 20 and r["corrupt"] == 0
        assert r["frames"] >= 1
        assert r["fps"] == pytest.approx(r["frames"] * 7.0 / 20, abs=1e-3)
        assert r["realtime"] is (r["frames"] >= 19)
        assert {"decode", "detect", "track", "geometry", "rules", "outputs"} <= set(r["stage_ms"])
        assert r["stage_ms"]["detect"] > 0
    assert res["realtime_cameras"] == sum(r["realtime"] for r in rows)
    assert res["total_fps"] == pytest.approx(sum(r["fps"] for r in rows), abs=1e-3)
    det = res["detector"]
    assert det["frames_out"] == sum(r["frames"] for r in rows)  # the shared detector ran every processed frame
    assert det["max_batch"] == 2 and det["mean_batch"] >= 1.0
    assert res["settings"] == {
        "shared_detector": True,
        "max_batch": 2,
        "max_wait_ms": 5.0,
        "threads": 2,
        "detector": "onnx",
        "start_delay_s": 4.0,
    }
    assert res["wall_s"] > 20 / 7.0  # a paced replay of 20 frames takes at least their stream time
