"""Operations: the Prometheus endpoint scraped from a running node, graceful stop on SIGTERM,
`vigil status`, and the supervisor restarting a killed worker within its limits."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from vigil.edge.config import CameraConfig, NodeConfig, parse_config
from vigil.edge.config_parts import OperationsConfig
from vigil.edge.node import RunOptions
from vigil.edge.status import effective_state, read_statuses, write_status

REPO = Path(__file__).resolve().parents[2]
CALIB = REPO / "deploy" / "examples" / "pets2009-view001.calib.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(pred, timeout: float, every: float = 0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(every)
    return pred()


def _config(tmp_path: Path, vtest: Path, cameras: list[str], port: int | None = None) -> Path:
    cams = "".join(
        f'  - name: {c}\n    source: "{vtest}"\n    fps: 7\n    loop: true\n    calibration: "{CALIB}"\n'
        for c in cameras
    )
    metrics = f"\n  metrics_port: {port}" if port else ""
    path = tmp_path / "node.yaml"
    path.write_text(
        f'node: test-node\naggregator: {{publish: false}}\noutput: {{dir: "{tmp_path / "out"}"}}\n'
        f'operations:\n  status_dir: "{tmp_path / "status"}"\n  restart_backoff_s: 0.2{metrics}\ncameras:\n{cams}'
    )
    return path


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_endpoint_is_scraped_from_a_running_node_and_sigterm_stops_it_cleanly(
    tmp_path: Path, vtest: Path, default_model
):
    port = _free_port()
    cfg = _config(tmp_path, vtest, ["cam-a"], port=port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigil", "run", "--config", str(cfg), "--no-media", "-q", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def frames_seen():
            try:
                m = _scrape(port)
            except OSError:
                return None
            v = m.get(("vigil_frames_total", (("camera", "cam-a"),)), 0)
            return m if v >= 3 else None

        metrics = _wait(frames_seen, 90)
        assert metrics, "no frames reported on /metrics"
        cam = (("camera", "cam-a"),)
        assert metrics[("vigil_camera_up", cam)] == 1.0
        assert metrics[("vigil_fps", cam)] > 0
        assert metrics[("vigil_stage_latency_ms", (("camera", "cam-a"), ("stage", "detect")))] > 0
        assert ("vigil_dropped_frames_total", (("camera", "cam-a"), ("reason", "stale"))) in metrics
        assert ("vigil_outbox_depth", cam) in metrics and ("vigil_seconds_since_last_frame", cam) in metrics
        # `vigil status` reads the same status files
        out = subprocess.run(
            [sys.executable, "-m", "vigil", "status", "--config", str(cfg), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        rows = json.loads(out.stdout)["cameras"]
        assert rows[0]["camera"] == "cam-a" and rows[0]["state"] == "running"
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["camera"] == "cam-a" and report["frames"] >= 3
    final = {s["camera"]: s for s in read_statuses(tmp_path / "status")}
    assert final["cam-a"]["state"] == "finished"


def test_supervisor_restarts_a_killed_worker_and_stops_gracefully(tmp_path: Path, vtest: Path, default_model):
    from vigil.edge.supervisor import Supervisor

    cfg_path = _config(tmp_path, vtest, ["cam-a", "cam-b"])
    cfg = parse_config(cfg_path.read_text(), base_dir=tmp_path)
    sup = Supervisor(cfg, RunOptions(publish=False, media=False, progress=False), ["cam-a", "cam-b"])
    import threading

    results: list = []
    runner = threading.Thread(target=lambda: results.extend(sup.run(poll_s=0.1)))
    runner.start()
    try:

        def status(cam):
            return {s["camera"]: s for s in read_statuses(tmp_path / "status")}.get(cam)

        first = _wait(lambda: (st := status("cam-a")) and st.get("frames", 0) > 0 and st, 90)
        assert first, "cam-a never reported frames"
        os.kill(first["pid"], signal.SIGKILL)  # a crash
        again = _wait(
            lambda: (st := status("cam-a")) and st.get("pid") != first["pid"] and st.get("frames", 0) > 0 and st, 90
        )
        assert again and again["restarts"] == 1
        assert status("cam-b")["restarts"] == 0
    finally:
        sup.stop()
        runner.join(120)
    assert not runner.is_alive()
    by_cam = {r.camera: r.as_dict() for r in results}
    assert by_cam["cam-a"]["restarts"] == 1 and by_cam["cam-a"]["ok"]
    assert by_cam["cam-b"]["ok"] and by_cam["cam-b"]["frames"] > 0
    assert {s["camera"]: s["state"] for s in read_statuses(tmp_path / "status")} == {
        "cam-a": "finished",
        "cam-b": "finished",
    }


def test_restart_limit_marks_a_camera_failed(tmp_path: Path):
    from vigil.edge.supervisor import Supervisor

    ops = OperationsConfig(status_dir=tmp_path, max_restarts=2, restart_window_s=60, restart_backoff_s=0)
    cfg = NodeConfig(operations=ops, cameras=[CameraConfig(name="c", source="x.avi", calibration=Path("x.yaml"))])
    sup = Supervisor(cfg, RunOptions(), ["c"])
    cam = sup.cams["c"]
    sup._restart_or_fail(cam, "crash 1")
    sup._restart_or_fail(cam, "crash 2")
    assert not cam.failed and cam.total_restarts == 2
    sup._restart_or_fail(cam, "crash 3")
    assert cam.failed
    assert next(read_statuses(tmp_path))["state"] == "failed"


def test_stale_status_is_reported_as_stale(tmp_path: Path):
    write_status(tmp_path, {"camera": "c", "state": "running", "updated": time.time() - 60})
    assert effective_state(next(read_statuses(tmp_path))) == "stale"
    write_status(tmp_path, {"camera": "c", "state": "finished", "updated": time.time() - 60})
    assert effective_state(next(read_statuses(tmp_path))) == "finished"


def test_status_check_is_the_node_health_check(tmp_path: Path, vtest: Path, capsys):
    """`vigil status --config F --check` exits 1 while a camera is not started, failed or stale,
    0 when every camera runs, connects or has finished its replay (containers' health check)."""
    import argparse

    from vigil.edge.cli import add_commands

    cfg = _config(tmp_path, vtest, ["cam-a", "cam-b"])
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())

    def check() -> tuple[int, dict]:
        args = parser.parse_args(["status", "--config", str(cfg), "--check", "--json"])
        code = args.func(args)
        return code, json.loads(capsys.readouterr().out)

    status_dir = tmp_path / "status"
    write_status(status_dir, {"camera": "cam-a", "state": "running", "updated": time.time(), "frames": 1})
    code, doc = check()
    assert code == 1 and not doc["healthy"]  # cam-b not started
    write_status(status_dir, {"camera": "cam-b", "state": "connecting", "updated": time.time(), "frames": 0})
    assert check()[0] == 0
    write_status(status_dir, {"camera": "cam-b", "state": "running", "updated": time.time() - 60, "frames": 0})
    assert check()[0] == 1  # stale: its worker is silent
    write_status(status_dir, {"camera": "cam-b", "state": "failed", "updated": time.time(), "frames": 0})
    assert check()[0] == 1
    write_status(status_dir, {"camera": "cam-b", "state": "finished", "updated": time.time() - 60, "frames": 9})
    code, doc = check()
    assert code == 0 and doc["healthy"]
    args = parser.parse_args(["status", "--config", str(cfg), "--json"])  # without --check: always 0
    write_status(status_dir, {"camera": "cam-b", "state": "failed", "updated": time.time(), "frames": 0})
    assert args.func(args) == 0
