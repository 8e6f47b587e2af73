"""``vigil bench soak``: several cameras replaying a file in a loop for minutes, on real processes.

Starts an aggregator (``--insecure-dev`` on loopback, a temporary SQLite database) and a
node whose cameras all replay the video in a loop, through the supervisor. Every
``--sample-s`` it reads each worker's resident memory (``VmRSS``) and open file descriptors
from ``/proc``; the first samples after ``--warmup-s`` are the baseline. At the end it stops
the node with SIGTERM (workers finish their frame and flush their outboxes), then compares
the events the workers produced with what the aggregator stored.

Prints one JSON object: per camera worker, and for the supervisor and its other processes
(the shared detector), the RSS baseline/end/growth % and fd baseline/end; frames and fps per
camera; and ``events_produced``, ``events_stored``, ``distinct_ids``, ``events_lost``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vigil.bench.detection_eval import missing_input
from vigil.bench.procs import free_port, open_fds, rss_kib
from vigil.edge.status import read_statuses

__all__ = ["soak", "add_bench_command"]


def _descendants(root: int) -> list[int]:
    """Every live descendant process of ``root`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def soak(
    video: str,
    calibration: str,
    cameras: int = 3,
    seconds: float = 600.0,
    warmup_s: float = 60.0,
    sample_s: float = 10.0,
    threshold_m: float = 2.0,
    workdir: str | None = None,
) -> dict:

    work = Path(workdir or tempfile.mkdtemp(prefix="vigil-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    ingest, stream = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    db = work / "events.db"
    cams = "".join(
        f'  - name: soak-{i}\n    source: "{Path(video).resolve()}"\n    fps: 7\n    loop: true\n'
        f'    calibration: "{Path(calibration).resolve()}"\n'
        f"    rules: {{distance: {{threshold_m: {threshold_m}, min_duration_s: 0.5}}}}\n"
        for i in range(cameras)
    )
    cfg = work / "node.yaml"
    cfg.write_text(
        f'node: soak\naggregator: {{endpoint: "{ingest}", outbox_dir: "{work / "outbox"}", flush_timeout_s: 30}}\n'
        f'output: {{dir: "{work / "out"}"}}\noperations: {{status_dir: "{work / "status"}", shutdown_timeout_s: 60}}\n'
        f"cameras:\n{cams}"
    )
    vigil = [sys.executable, "-m", "vigil"]
    agg = subprocess.Popen(
        vigil + ["aggregator", "--insecure-dev", "--db", str(db), "--ingest", ingest, "--stream", stream],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "aggregator.log", "w"),
    )
    time.sleep(2.0)
    node = subprocess.Popen(
        vigil + ["run", "--config", str(cfg), "--no-media", "-q", "--json"],
        stdout=subprocess.PIPE,
        stderr=open(work / "node.log", "w"),
        text=True,
    )
    t0 = time.monotonic()
    samples: dict[str, list[tuple[float, int, int]]] = {}
    pids: dict[str, int] = {}
    try:
        while time.monotonic() - t0 < seconds:
            time.sleep(sample_s)
            now = time.monotonic() - t0
            camera_pids = set()
            for st in read_statuses(work / "status"):
                pid = st.get("pid")
                if not pid:
                    continue
                cam = st["camera"]
                camera_pids.add(pid)
                if pids.setdefault(cam, pid) != pid:  # restarted: a new process, a new series
                    samples.setdefault(cam + ":restarted", [])
                    pids[cam] = pid
                rss, fds = rss_kib(pid), open_fds(pid)
                if rss is not None and fds is not None:
                    samples.setdefault(cam, []).append((now, rss, fds))
            # the supervisor itself and its other children (the shared detector process, ...)
            for pid in [node.pid] + [p for p in _descendants(node.pid) if p not in camera_pids]:
                rss, fds = rss_kib(pid), open_fds(pid)
                if rss is not None and fds is not None and rss > 20 * 1024:  # skip tiny helpers (resource tracker)
                    samples.setdefault(f"process-{pid}" if pid != node.pid else "supervisor", []).append(
                        (now, rss, fds)
                    )
            if node.poll() is not None:
                break
    finally:
        node.send_signal(signal.SIGTERM)
        out, _ = node.communicate(timeout=180)
        time.sleep(2.0)
        agg.send_signal(signal.SIGTERM)
        agg.wait(60)
    reports = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    produced = sum(int(r.get("events", 0)) for r in reports)
    counted = subprocess.run(
        vigil + ["events", "count", "--db", str(db), "--json"], capture_output=True, text=True, timeout=120
    )
    stored = json.loads(counted.stdout) if counted.returncode == 0 else {"events": None, "distinct_ids": None}
    per_cam = {}
    for cam, series in samples.items():
        if cam.endswith(":restarted"):
            continue
        after = [s for s in series if s[0] >= warmup_s] or series
        base = after[: max(1, min(3, len(after)))]
        end = after[-max(1, min(3, len(after))) :]
        rss0 = sorted(s[1] for s in base)[len(base) // 2]
        rss1 = sorted(s[1] for s in end)[len(end) // 2]
        rep = next((r for r in reports if r.get("camera") == cam), {})
        if cam not in pids:  # not a camera worker: the supervisor or the shared detector
            per_cam[cam] = {
                "rss_mib_after_warmup": round(rss0 / 1024, 1),
                "rss_mib_end": round(rss1 / 1024, 1),
                "rss_growth_pct": round(100.0 * (rss1 - rss0) / rss0, 2),
                "fds_after_warmup": base[0][2],
                "fds_end": end[-1][2],
            }
            continue
        per_cam[cam] = {
            "rss_mib_after_warmup": round(rss0 / 1024, 1),
            "rss_mib_end": round(rss1 / 1024, 1),
            "rss_growth_pct": round(100.0 * (rss1 - rss0) / rss0, 2),
            "fds_after_warmup": base[0][2],
            "fds_end": end[-1][2],
            "frames": rep.get("frames"),
            "fps": rep.get("fps"),
            "restarts": rep.get("restarts", 0),
        }
    return {
        "cameras": cameras,
        "seconds": round(time.monotonic() - t0, 1),
        "warmup_s": warmup_s,
        "per_process": per_cam,
        "max_rss_growth_pct": max((c["rss_growth_pct"] for c in per_cam.values()), default=None),
        "fd_growth": max((c["fds_end"] - c["fds_after_warmup"] for c in per_cam.values()), default=None),
        "events_produced": produced,
        "events_stored": stored.get("events"),
        "distinct_ids": stored.get("distinct_ids"),
        "events_lost": (produced - stored["distinct_ids"]) if stored.get("distinct_ids") is not None else None,
        "workdir": str(work),
    }


def _cmd(args: argparse.Namespace) -> int:

    if missing_input("vigil bench soak", ((args.video, "--video"), (args.calibration, "--calibration"))):
        return 2
    res = soak(
        args.video,
        args.calibration,
        cameras=args.cameras,
        seconds=args.minutes * 60,
        warmup_s=args.warmup_s,
        sample_s=args.sample_s,
        workdir=args.workdir,
    )
    print(json.dumps(res) if args.json else json.dumps(res, indent=2))
    ok = res["events_lost"] == 0 and (res["max_rss_growth_pct"] or 0) < 5.0 and (res["fd_growth"] or 0) <= 0
    return 0 if ok else 1


def add_bench_command(bench_sub) -> None:
    p = bench_sub.add_parser(
        "soak", help="several cameras replaying a file in a loop: memory, file descriptors, lost events"
    )
    p.add_argument("--video", default="data/vtest.avi")
    p.add_argument("--calibration", default="deploy/examples/pets2009-view001.calib.yaml")
    p.add_argument("--cameras", type=int, default=3)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--warmup-s", type=float, default=60.0, help="samples before this are not the baseline")
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--workdir", help="keep the aggregator db, logs and statuses here (default: a temporary folder)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd)
