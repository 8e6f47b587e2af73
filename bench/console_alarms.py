"""``vigil eval console-alarms``: a replay of vtest.avi with every rule enabled, its events
through the real event store, checked against the console's alarm rows.

The replay (``vigil run``, in this process, publishing nothing) runs the PETS2009 View_001
camera (``deploy/examples/pets2009-view001.calib.yaml``) with the distance, contact,
occupancy, density, queue and risk rules and the heat map on, one zone and one queue line
placed on the ground the camera sees (the image quad and line below, projected through the
calibration) and limits low enough that every rule fires. Its JSON Lines events are stored in
a fresh SQLite event store in two halves (the store closed and reopened in between: a
restart), then the console's reads (:class:`vigil.alerts.console.db.ConsoleDB`) are compared
with the events themselves:

* ``rows`` (console alarm rows) against ``alarm_ids`` (distinct ``alarm_id`` of the alarm events);
* ``open`` (console open count) against ``without_end`` (alarms none of whose events is an end);
* ``event_counts_ok``: every row's event count equals its events in the file.

Prints one line (``--json``: one JSON object); exit 0 when all three hold, 1 otherwise, 2 when
the video or the model is missing. The full replay (795 frames) takes a few minutes on 2 cores;
``--max-frames N`` tries it small.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from vigil.alerts.console.alarmdb import NON_ALARM_TYPES
from vigil.alerts.console.db import ConsoleDB
from vigil.alerts.events import Event, alarm_id_of
from vigil.alerts.store import EventStore
from vigil.edge import cli as edge_cli
from vigil.geometry.calibration_io import load_camera

__all__ = ["add_eval_command", "check_alarm_rows", "node_config"]

REPO = Path(__file__).resolve().parents[1]
CALIB = REPO / "deploy" / "examples" / "pets2009-view001.calib.yaml"
VIDEOS = (REPO / "data" / "vtest.avi", Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi"))
#: the zone (an image quad, pixels) and queue line (pixels) placed on the ground through the calibration
ZONE_PX = ((50.0, 300.0), (718.0, 300.0), (760.0, 570.0), (10.0, 570.0))
QUEUE_PX = ((100.0, 420.0), (668.0, 420.0))


def node_config(folder: Path, video: Path) -> Path:
    """Write the every-rule node config of the replay into ``folder``; its path."""
    cam = load_camera(CALIB)
    zone = [[round(float(x), 2), round(float(y), 2)] for x, y in cam.image_to_ground(np.array(ZONE_PX))]
    line = [[round(float(x), 2), round(float(y), 2)] for x, y in cam.image_to_ground(np.array(QUEUE_PX))]
    cfg = folder / "node.yaml"
    cfg.write_text(
        f"""version: 1
node: console-alarms
aggregator: {{publish: false}}
output: {{dir: "{folder / "out"}"}}
cameras:
  - name: pets-view001
    source: "{video}"
    fps: 7
    calibration: "{CALIB}"
    zones:
      - name: piazza
        polygon: {json.dumps(zone)}
        max_people: 1
        max_density_per_m2: 0.02
        queue: {{line: {json.dumps(line)}, min_spacing_m: 2.0}}
    rules:
      distance: {{threshold_m: 1.0, min_duration_s: 1.0, hysteresis_m: 0.2}}
      contact: {{enabled: true, threshold_m: 2.0, limit_s: 3.0, end_after_s: 2.0}}
      zones: {{enabled: true}}
      queue: {{enabled: true}}
      risk: {{enabled: true, e_ref: 5.0, alarm_level: 0.3, critical_level: 0.6}}
      heatmap: {{enabled: true}}
"""
    )
    return cfg


def check_alarm_rows(events_jsonl: Path, db_path: Path) -> dict:
    """Store the events of ``events_jsonl`` in a new SQLite store at ``db_path`` (two halves, the
    store reopened in between) and compare the console's alarm rows with them (module docstring)."""
    events = [Event.from_json(line) for line in events_jsonl.read_text().splitlines() if line.strip()]
    half = len(events) // 2
    for part in (events[:half], events[half:]):
        store = EventStore(db_path)
        for k in range(0, len(part), 500):
            store.add_many(part[k : k + 500])
        store.close()
    per_alarm: Counter[str] = Counter()
    ended: set[str] = set()
    for ev in events:
        if ev.type in NON_ALARM_TYPES:
            continue
        key = alarm_id_of(ev) or ev.id
        per_alarm[key] += 1
        if ev.state == "end":
            ended.add(key)
    db = ConsoleDB(db_path)
    try:
        t0 = time.perf_counter()
        rows = db.alarms(limit=10**9)
        n_open = db.open_count()
        took_ms = (time.perf_counter() - t0) * 1000
    finally:
        db.close()
    counts_ok = all(per_alarm.get(r["id"]) == r["events"] for r in rows)
    report = {
        "events": len(events),
        "types": dict(sorted(Counter(e.type for e in events).items())),
        "rows": len(rows),
        "alarm_ids": len(per_alarm),
        "open": n_open,
        "without_end": len(set(per_alarm) - ended),
        "event_counts_ok": counts_ok,
        "query_ms": round(took_ms, 1),
    }
    report["ok"] = report["rows"] == report["alarm_ids"] and report["open"] == report["without_end"] and counts_ok
    return report


def _vigil_run(argv: list[str]) -> int:
    """``vigil run`` with ``argv`` in this process (the edge's own command)."""
    parser = argparse.ArgumentParser(prog="vigil")
    edge_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def cmd_eval_console_alarms(args) -> int:

    video = Path(args.video).resolve() if args.video else next((v for v in VIDEOS if v.is_file()), None)
    if video is None or not video.is_file():
        print(f"video not found: {video or VIDEOS[0]} (run scripts/setup.sh or pass --video)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="vigil-console-alarms-") as tmp:
        folder = Path(tmp)
        cfg = node_config(folder, video)
        events = folder / "events.jsonl"
        argv = ["run", "--config", str(cfg), "--events-out", str(events), "--no-media", "--no-publish", "-q"]
        if args.max_frames:
            argv += ["--max-frames", str(args.max_frames)]
        t0 = time.perf_counter()
        rc = _vigil_run(argv)
        replay_s = time.perf_counter() - t0
        if rc != 0:
            print(f"the replay failed (vigil run exited {rc})", file=sys.stderr)
            return 2
        report = check_alarm_rows(events, folder / "events.db")
    report["replay_s"] = round(replay_s, 1)
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['events']} events; console rows {report['rows']} vs alarm_ids {report['alarm_ids']}; "
            f"open {report['open']} vs alarms without an end {report['without_end']}; "
            f"event counts {'ok' if report['event_counts_ok'] else 'WRONG'}; list query {report['query_ms']} ms; "
            f"replay {report['replay_s']} s -> {'OK' if report['ok'] else 'MISMATCH'}"
        )
        print("types: " + ", ".join(f"{k} {v}" for k, v in report["types"].items()))
    return 0 if report["ok"] else 1


def add_eval_command(eval_sub) -> None:
    p = eval_sub.add_parser(
        "console-alarms",
        help="replay vtest.avi with every rule on; the console's alarm rows and open count against the events",
    )
    p.add_argument("--video", help="the video (default: data/vtest.avi, else Debian's opencv-doc copy)")
    p.add_argument("--max-frames", type=int, help="replay only the first N frames (default: all)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_eval_console_alarms)
