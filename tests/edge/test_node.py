"""A node run from Python: a validated NodeConfig and typed RunOptions, no argparse.

One camera runs in this process and its report, events file and MOT file are checked (and
compared with what `vigil run` writes for the same options); two cameras run through the
supervisor, each in its own worker process that receives the validated config pickled."""

from __future__ import annotations

import json
import pickle
import threading
from pathlib import Path

import pytest

from vigil.cli import main
from vigil.edge.config import NodeConfig, load_config, parse_config
from vigil.edge.node import CameraReport, OptionsError, RunOptions, run_node

REPO = Path(__file__).resolve().parents[2]
CALIB = REPO / "deploy" / "examples" / "pets2009-view001.calib.yaml"
FRAMES = 10


def _config(tmp_path: Path, vtest: Path, cameras: list[str]) -> Path:
    cams = "".join(
        f'  - name: {c}\n    source: "{vtest}"\n    fps: 7\n    calibration: "{CALIB}"\n'
        "    rules:\n      distance: {threshold_m: 6.0, min_duration_s: 0, end_after_s: 1.0}\n"
        for c in cameras
    )
    path = tmp_path / "node.yaml"
    path.write_text(
        f'node: test-node\naggregator: {{publish: false}}\noutput: {{dir: "{tmp_path / "out"}"}}\n'
        f'operations:\n  status_dir: "{tmp_path / "status"}"\ncameras:\n{cams}'
    )
    return path


def test_one_camera_runs_in_process_and_writes_its_events_and_mot_file(tmp_path: Path, vtest: Path, default_model):
    cfg = load_config(_config(tmp_path, vtest, ["pets"]))
    mot, events = tmp_path / "api" / "mot.txt", tmp_path / "api" / "events.jsonl"
    options = RunOptions(max_frames=FRAMES, mot_out=mot, events_out=events, media=False, progress=False)

    reports = run_node(cfg, options, stop=threading.Event())

    assert len(reports) == 1
    rep = reports[0]
    assert isinstance(rep, CameraReport)
    assert (rep.camera, rep.ok, rep.error, rep.restarts, rep.supervised) == ("pets", True, None, None, False)
    d = rep.as_dict()
    assert "ok" not in d and "restarts" not in d  # an in-process run reports like `vigil run --json`
    assert d["camera"] == "pets" and d["frames"] == FRAMES
    assert d["delivered"] is None and d["undelivered"] is None  # publishing is off in the config
    assert d["outputs"] == {"mot": str(mot), "events": str(events)}

    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert d["events"] == len(lines) > 0
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    assert {e["camera"] for e in lines} == {"pets"}
    starts = [e for e in lines if e["type"] == "distance_violation" and e["state"] == "start"]
    assert d["violations"] == len(starts) > 0
    # the end of the replay closes every open violation
    assert sorted(tuple(e["payload"]["tracks"]) for e in starts) == sorted(
        tuple(e["payload"]["tracks"]) for e in lines if e["type"] == "distance_violation" and e["state"] == "end"
    )

    rows = [line.split(",") for line in mot.read_text().splitlines()]
    assert rows and all(len(r) == 10 and r[-1] == "-1" for r in rows)
    assert {int(r[0]) for r in rows} <= set(range(1, FRAMES + 1))  # MOT frames count from 1
    # people only (the distance rule's classes); the report counts the tracks of every class
    assert 0 < len({int(r[1]) for r in rows}) <= d["tracks"]
    assert (tmp_path / "status" / "pets.json").is_file()
    assert json.loads((tmp_path / "status" / "pets.json").read_text())["state"] == "finished"

    # `vigil run` with the same options writes the same MOT file and the same events
    cli_mot, cli_events = tmp_path / "cli" / "mot.txt", tmp_path / "cli" / "events.jsonl"
    cfg_path = tmp_path / "node.yaml"
    argv = ["run", "--config", str(cfg_path), "--max-frames", str(FRAMES), "--no-media", "-q"]
    assert main([*argv, "--mot-out", str(cli_mot), "--events-out", str(cli_events)]) == 0
    assert cli_mot.read_text() == mot.read_text()

    def strip(e):  # ids are random, times follow the wall clock
        return (e["type"], e["camera"], e["seq"], e["severity"], e["state"], e["payload"]["tracks"])

    assert [strip(json.loads(x)) for x in cli_events.read_text().splitlines()] == [strip(e) for e in lines]


def test_two_cameras_run_through_the_supervisor(tmp_path: Path, vtest: Path, default_model):
    cfg = load_config(_config(tmp_path, vtest, ["cam-a", "cam-b"]))
    reports = run_node(cfg, RunOptions(max_frames=3, media=False, progress=False))
    assert sorted(r.camera for r in reports) == ["cam-a", "cam-b"]
    for rep in reports:
        assert (rep.ok, rep.error, rep.restarts, rep.supervised) == (True, None, 0, True)
        assert rep.run is not None and rep.run.frames == 3
        d = rep.as_dict()
        assert d["ok"] is True and d["restarts"] == 0 and d["frames"] == 3
    statuses = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "status").glob("*.json")}
    assert {k: v["state"] for k, v in statuses.items()} == {"cam-a": "finished", "cam-b": "finished"}


def test_output_files_need_one_camera(tmp_path: Path):
    text = _config(tmp_path, Path("v.avi"), ["cam-a", "cam-b"]).read_text()
    cfg = parse_config(text, base_dir=tmp_path)
    with pytest.raises(OptionsError, match="need one camera"):
        run_node(cfg, RunOptions(events_out=tmp_path / "e.jsonl"))
    # naming the camera picks it (before anything runs, an unknown name is a config error)
    with pytest.raises(Exception, match="no camera named 'nope'"):
        run_node(cfg, RunOptions(camera="nope"))


def test_options_and_config_cross_process_boundaries_pickled(tmp_path: Path):
    cfg = parse_config(_config(tmp_path, Path("v.avi"), ["cam-a"]).read_text(), base_dir=tmp_path)
    options = RunOptions(max_frames=5, mot_out="m.txt", mot_classes=["person", "car"], publish=False)
    assert options.mot_out == Path("m.txt") and options.mot_classes == ("person", "car")
    assert pickle.loads(pickle.dumps(options)) == options
    again = pickle.loads(pickle.dumps(cfg))
    assert isinstance(again, NodeConfig) and again == cfg
    with pytest.raises(ValueError, match="max_frames"):
        RunOptions(max_frames=-1)
