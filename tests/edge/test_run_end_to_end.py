"""`vigil run` end to end on real frames of vtest.avi with the embedded model: events reach a
real aggregator over ZeroMQ and SQLite, the MOT file and the JSON Lines file agree, and a
replay with no aggregator answering still finishes and reports what was not delivered."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from vigil.alerts.aggregator import Aggregator
from vigil.alerts.store import EventStore
from vigil.cli import main

FRAMES = 25


def _node_config(tmp_path: Path, vtest: Path, endpoint: str) -> Path:
    repo = Path(__file__).resolve().parents[2]
    calib = repo / "deploy" / "examples" / "pets2009-view001.calib.yaml"
    cfg = tmp_path / "node.yaml"
    # a wide threshold so that the first frames already hold violations
    cfg.write_text(
        f"""
version: 1
aggregator: {{endpoint: "{endpoint}", flush_timeout_s: 5}}
output: {{dir: "{tmp_path / "out"}"}}
cameras:
  - name: pets
    source: "{vtest}"
    fps: 7
    calibration: "{calib}"
    rules:
      distance: {{threshold_m: 3.0, min_duration_s: 0, end_after_s: 1.0}}
"""
    )
    return cfg


def test_replay_delivers_every_event_to_the_aggregator_and_writes_outputs(
    tmp_path: Path, vtest: Path, default_model, capsys
):
    db = tmp_path / "events.db"
    agg = Aggregator(db, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", stats_interval_s=3600)
    stop = threading.Event()
    thread = threading.Thread(target=agg.run, args=(stop,), daemon=True)
    thread.start()
    try:
        cfg = _node_config(tmp_path, vtest, agg.ingest_endpoint)
        mot, events = tmp_path / "mot.txt", tmp_path / "events.jsonl"
        rc = main(
            [
                "run",
                "--config",
                str(cfg),
                "--max-frames",
                str(FRAMES),
                "--mot-out",
                str(mot),
                "--events-out",
                str(events),
                "--json",
                "-q",
            ]
        )
        assert rc == 0
    finally:
        stop.set()
        thread.join(5)
        agg.close()
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["frames"] == FRAMES
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert report["events"] == len(lines) > 0
    assert report["delivered"] == len(lines) and report["undelivered"] == 0
    # every start has its end (the replay closes open violations), sequence numbers 1..n
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    starts = {tuple(e["payload"]["tracks"]) for e in lines if e["state"] == "start"}
    ends = {tuple(e["payload"]["tracks"]) for e in lines if e["state"] == "end"}
    assert starts == ends and starts
    for e in lines:
        assert e["type"] == "distance_violation" and e["camera"] == "pets"
        assert e["payload"]["threshold_m"] == 3.0
        assert "image" not in json.dumps(e)
    store = EventStore(db, readonly=True)
    try:
        assert store.count() == (len(lines), len(lines))
        assert {s.event.id for s in store.iter_events()} == {e["id"] for e in lines}
    finally:
        store.close()
    # MOT: frames 1..FRAMES, ground coordinates in metres inside the PETS plaza
    rows = [r.split(",") for r in mot.read_text().splitlines()]
    assert rows and {int(r[0]) for r in rows} <= set(range(1, FRAMES + 1))
    xs = [float(r[7]) for r in rows if r[7] != "-1"]
    assert xs and all(-40 < x < 40 for x in xs)
    assert (tmp_path / "out" / "pets.annotated.mp4").stat().st_size > 10_000
    assert (tmp_path / "out" / "pets.birdseye.png").stat().st_size > 1_000


def test_replay_finishes_without_an_aggregator_and_reports_undelivered(
    tmp_path: Path, vtest: Path, default_model, capsys
):
    import socket

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _node_config(tmp_path, vtest, f"tcp://127.0.0.1:{port}")
    cfg.write_text(cfg.read_text().replace("flush_timeout_s: 5", "flush_timeout_s: 0.5"))
    events = tmp_path / "events.jsonl"
    rc = main(
        [
            "run",
            "--config",
            str(cfg),
            "--max-frames",
            str(FRAMES),
            "--events-out",
            str(events),
            "--no-media",
            "--json",
            "-q",
        ]
    )
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    n = len(events.read_text().splitlines())
    assert report["events"] == n > 0
    assert report["delivered"] == 0 and report["undelivered"] == n


def test_missing_video_is_a_clear_error_and_writes_nothing(tmp_path: Path, capsys):
    cfg = _node_config(tmp_path, tmp_path / "nope.avi", "tcp://127.0.0.1:9")
    mot = tmp_path / "mot.txt"
    rc = main(["run", "--config", str(cfg), "--mot-out", str(mot), "--no-publish", "-q"])
    assert rc == 2
    assert "nope.avi: video file not found" in capsys.readouterr().err
    assert not mot.exists()


def test_check_config_accepts_the_example_and_names_a_bad_calibration(tmp_path: Path, capsys):
    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "bad.calib.yaml").write_text(
        "vigil_calibration: 1\nmodel: homography\nhomography:\n  matrix: [[1, 0, 0], [0, 1, 0], [0, 0, 0]]\n"
    )
    (tmp_path / "v.avi").write_bytes(b"x")
    (tmp_path / "node.yaml").write_text("cameras:\n  - name: c1\n    source: v.avi\n    calibration: bad.calib.yaml\n")
    assert main(["check-config", str(tmp_path / "node.yaml")]) == 2
    err = capsys.readouterr().err
    assert "camera 'c1': calibration:" in err and "bad.calib.yaml" in err
    if (repo / "data" / "vtest.avi").is_file():
        assert main(["check-config", str(repo / "deploy" / "examples" / "pets2009-s2l1.yaml")]) == 0


def test_sequence_numbers_continue_across_runs_through_the_durable_outbox(
    tmp_path: Path, vtest: Path, default_model, capsys
):
    import socket

    with socket.socket() as s:  # nobody listens: events stay in the outbox
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _node_config(tmp_path, vtest, f"tcp://127.0.0.1:{port}")
    cfg.write_text(cfg.read_text().replace("flush_timeout_s: 5", "flush_timeout_s: 0.2"))
    first, second = tmp_path / "e1.jsonl", tmp_path / "e2.jsonl"
    for out in (first, second):
        assert (
            main(
                ["run", "--config", str(cfg), "--max-frames", str(FRAMES), "--events-out", str(out), "--no-media", "-q"]
            )
            == 0
        )
    s1 = [json.loads(x)["seq"] for x in first.read_text().splitlines()]
    s2 = [json.loads(x)["seq"] for x in second.read_text().splitlines()]
    assert s1 and s2 and s1 == list(range(1, len(s1) + 1))
    assert s2 == list(range(len(s1) + 1, len(s1) + len(s2) + 1))


def test_replay_with_the_heat_map_publishes_heatmap_events(tmp_path: Path, vtest: Path, default_model, capsys):
    from vigil.geometry.risk import decode_compact_grid

    cfg = _node_config(tmp_path, vtest, "tcp://127.0.0.1:9")
    cfg.write_text(
        cfg.read_text().replace(
            "      distance: {threshold_m: 3.0, min_duration_s: 0, end_after_s: 1.0}",
            "      distance: {threshold_m: 3.0, min_duration_s: 0, end_after_s: 1.0}\n"
            "      heatmap: {enabled: true, cell_m: 0.5, bounds: [-30, 30, -30, 30], publish_interval_s: 1.0, "
            "publish_max_cells: 900}",
        )
    )
    events = tmp_path / "events.jsonl"
    assert (
        main(
            [
                "run",
                "--config",
                str(cfg),
                "--max-frames",
                str(FRAMES),
                "--events-out",
                str(events),
                "--no-publish",
                "--no-media",
                "-q",
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    heat = [e for e in lines if e["type"] == "heatmap"]
    # 25 frames at 7 fps: about 3.4 s of stream, so 3 periodic maps and the final one
    assert len(heat) >= 3 and heat[-1]["payload"]["final"] is True
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    assert any(e["type"] == "distance_violation" for e in lines)  # the other rules keep their events
    for e in heat:
        assert e["severity"] == "info" and e["state"] == "update" and e["camera"] == "pets"
        assert len(json.dumps(e)) < 16 * 1024
        occ = e["payload"]["layers"]["occupancy"]
        rows, cols = occ["shape"]
        assert rows * cols <= 900 and occ["origin_m"] == [-30.0, -30.0] and occ["unit"] == "person-seconds"
        assert decode_compact_grid(occ).shape == (rows, cols)
    assert heat[-1]["payload"]["layers"]["occupancy"]["scale"] > 0  # people were seen on the map


def test_missing_curve_keys_are_a_clear_error(tmp_path: Path, vtest: Path, capsys):
    cfg = _node_config(tmp_path, vtest, "tcp://10.1.2.3:5555")
    cfg.write_text(
        cfg.read_text().replace(
            "flush_timeout_s: 5", "flush_timeout_s: 5, keys_dir: '" + str(tmp_path / "keys") + "', key_name: node1"
        )
    )
    assert main(["check-config", str(cfg)]) == 2
    assert f"key file not found: {tmp_path / 'keys' / 'node1.key_secret'}" in capsys.readouterr().err
    assert main(["run", "--config", str(cfg), "--max-frames", "1", "--no-media", "-q"]) == 2
    assert "node1.key_secret" in capsys.readouterr().err
