"""``vigil bench node``: how many cameras one node keeps in real time (issue 19).

What runs: the node config's first enabled camera cloned into ``N`` cameras ``<name>-1`` ..
``<name>-N`` (same source, calibration, zones, rules, plates and health checks), run by the
node's own :class:`~vigil.edge.supervisor.Supervisor` exactly as ``vigil run`` runs several
cameras: one worker process per camera and, with two or more, the shared detector process
(``operations.shared_detector``), with publishing and media off and the status files in a
temporary folder. ``--max-batch``, ``--max-wait-ms`` and ``--threads`` override
``operations.detector_max_batch``, ``operations.detector_max_wait_ms`` and the detector's
``threads`` (onnxruntime intra-op threads; null: the CPU cores), so settings can be compared.

Real time (the default): every replay is paced at the camera's frame rate the way a live
camera delivers frames (:class:`vigil.edge.sources.FileSource` with ``realtime``): frame ``i``
is due ``i / fps`` seconds after the start, and a worker still busy when the next frame is due
loses the older one (counted in ``dropped``, as a live source counts its stale frames). Frame 0
of every camera is due at the same instant, ``start_delay_s`` after the shared detector is
ready, so that worker start-up is not measured and the cameras load the node together; a
worker not ready by then starts its clock when it is (``late_start``: its load overlapped the
others' only in part). With ``--unpaced`` the replays run as fast as they can instead.

Definitions, per camera (``per_camera`` rows):

- ``offered``: the frames of the file that came due (the first ``--frames``, else the whole
  file); ``frames``: those processed; ``dropped``: those lost because the worker was busy
  (``offered = frames + dropped + corrupt``).
- ``fps``: frames processed per second of stream: ``frames * source_fps / offered`` when
  paced (at most the source's rate), ``frames / wall_s`` when unpaced.
- ``realtime``: paced, ``frames >= REALTIME_FRACTION * offered`` (95 %). The live rule keeps
  no queue, so no backlog can grow: a frame waits at most one frame interval, and a worker that
  cannot keep up shows as dropped frames. Unpaced: ``fps >= source_fps``.
- ``stage_ms``: the worker's mean milliseconds per processed frame of each stage: ``decode``
  (without the pacing wait), ``health``, ``detect`` (including the wait for the shared
  detector: queueing and batching), ``track``, ``geometry``, ``rules``, ``events``,
  ``outputs``; ``busy_ms`` their sum.

Node-wide: ``realtime_cameras`` (how many cameras kept real time), ``total_fps`` (the sum of
``fps``), ``detector`` (the shared detector's stats at the end of the run: ``mean_batch``,
``inference_ms_mean`` per batch, ``inference_ms_per_frame``, ``queue_wait_ms_mean``,
``drops``, ...; ``null`` without a shared detector), ``settings``, ``wall_s`` (the whole
bench, start-up included).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from vigil.edge.config import ConfigError, NodeConfig, load_config
from vigil.edge.runner import CameraReport, RunOptions
from vigil.edge.sources import FileSource
from vigil.edge.status import read_statuses
from vigil.edge.supervisor import Supervisor

__all__ = ["REALTIME_FRACTION", "bench_config", "bench_node", "camera_row", "add_bench_command"]

#: a paced camera keeps real time when it processes at least this fraction of the frames offered
REALTIME_FRACTION = 0.95


def bench_config(
    config: NodeConfig,
    cameras: int,
    work_dir: Path,
    *,
    max_batch: int | None = None,
    max_wait_ms: float | None = None,
    threads: int | None = None,
) -> NodeConfig:
    """``config`` with its first enabled camera cloned into ``cameras`` cameras ``<name>-1..N``
    (not looping), the shared detector's settings overridden where given, and the status files
    and outputs under ``work_dir``. Raises :class:`ConfigError` for a detector without threads."""
    if cameras < 1:
        raise ValueError(f"cameras must be >= 1, got {cameras}")
    cam = config.camera()
    base = cam.name[:60]
    clones = [cam.model_copy(update={"name": f"{base}-{i}", "loop": False}) for i in range(1, cameras + 1)]
    ops: dict = {"status_dir": work_dir / "status"}
    if max_batch is not None:
        ops["detector_max_batch"] = int(max_batch)
    if max_wait_ms is not None:
        ops["detector_max_wait_ms"] = float(max_wait_ms)
    detector = config.detector
    if threads is not None:
        if "threads" not in type(detector).model_fields:
            raise ConfigError(f"detector type {getattr(detector, 'type', '?')!r} has no threads setting")
        detector = detector.model_copy(update={"threads": int(threads)})
    return config.model_copy(
        update={
            "cameras": clones,
            "detector": detector,
            "operations": config.operations.model_copy(update=ops),
            "output": config.output.model_copy(update={"dir": work_dir / "out"}),
        }
    )


class _BenchSupervisor(Supervisor):
    """The node's supervisor, giving every camera the same real-time start and keeping the
    shared detector's last stats (the supervisor stops the detector when the run ends)."""

    def __init__(self, config: NodeConfig, options: RunOptions, cameras: list[str], start_delay_s: float) -> None:
        super().__init__(config, options, cameras)
        self.start_delay_s = start_delay_s
        self.start_at: float | None = None
        self.detector_stats: dict | None = None

    def _set_start(self) -> None:
        if self.options.realtime and len(self.cams) > 1:
            self.start_at = time.time() + self.start_delay_s
            self.options = replace(self.options, realtime_start=self.start_at)

    def _start_detector_server(self) -> None:
        super()._start_detector_server()
        self._set_start()  # the detector is built: the workers start now

    def _supervise(self, poll_s: float) -> list[CameraReport]:
        if self.server is None:
            self._set_start()
        reports = super()._supervise(poll_s)
        if self.server is not None:
            self.detector_stats = self.server.stats()
        return reports


def _watch_start(sup: _BenchSupervisor, ready: dict[str, bool], done: threading.Event) -> None:
    """Mark the cameras whose worker was ready (had written a status) by the common start. A
    worker's first status comes one second after it is ready, hence the 1.5 s of grace."""
    while not done.is_set() and sup.start_at is None:
        done.wait(0.2)
    if sup.start_at is None:
        return
    if done.wait(max(0.0, sup.start_at + 1.5 - time.time())):
        return
    seen = {st.get("camera") for st in read_statuses(sup.ops.status_dir)}
    for name in ready:
        ready[name] = name in seen


def camera_row(report: CameraReport, source_fps: float, paced: bool, late_start: bool = False) -> dict:
    """One ``per_camera`` row (see the module docstring) from a camera's report."""
    run = report.run
    if run is None:
        return {"name": report.camera, "ok": False, "error": report.error, "frames": 0, "realtime": False}
    offered = run.frames + run.stale_dropped + run.corrupt_skipped
    if paced:
        fps = run.frames * source_fps / offered if offered else 0.0
        realtime = offered > 0 and run.frames >= REALTIME_FRACTION * offered
    else:
        fps = run.fps
        realtime = fps >= source_fps
    stage_ms = run.stage_ms()
    return {
        "name": report.camera,
        "ok": report.ok,
        "error": report.error,
        "offered": offered,
        "frames": run.frames,
        "dropped": run.stale_dropped,
        "corrupt": run.corrupt_skipped,
        "fps": round(fps, 3),
        "realtime": bool(realtime),
        "late_start": late_start,
        "stage_ms": {k: round(v, 2) for k, v in stage_ms.items()},
        "busy_ms": round(sum(stage_ms.values()), 2),
        "wall_s": round(run.wall_s, 3),
    }


def bench_node(
    config: NodeConfig,
    cameras: int,
    *,
    frames: int | None = None,
    max_batch: int | None = None,
    max_wait_ms: float | None = None,
    threads: int | None = None,
    paced: bool = True,
    start_delay_s: float | None = None,
    log_level: int = logging.WARNING,
) -> dict:
    """Run the bench; see the module docstring. ``start_delay_s``: from the shared detector
    being ready to the common frame 0 (default: 4 s + 2 s per camera with a shared detector,
    4 s + 6 s per camera when every worker builds its own). Returns the JSON-ready result."""
    if frames is not None and frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    t0 = time.perf_counter()
    cam = config.camera()
    if "://" in cam.source or cam.source.isdigit() or cam.source.startswith("/dev/"):
        raise ConfigError(f"camera {cam.name!r}: vigil bench node replays a recorded file, not {cam.source!r}")
    probe = FileSource(cam.source, fps=cam.fps)
    source_fps, total = probe.fps, probe.frame_count
    probe.close()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-node-") as tmp:
        node = bench_config(config, cameras, Path(tmp), max_batch=max_batch, max_wait_ms=max_wait_ms, threads=threads)
        ops = node.operations
        shared = ops.shared_detector and cameras > 1
        if start_delay_s is None:
            start_delay_s = 4.0 + (2.0 if shared else 6.0) * cameras
        options = RunOptions(
            max_frames=frames, publish=False, media=False, progress=False, log_level=log_level, realtime=paced
        )
        names = [c.name for c in node.cameras]
        sup = _BenchSupervisor(node, options, names, start_delay_s)
        ready = {n: True for n in names}
        done = threading.Event()
        watcher = threading.Thread(target=_watch_start, args=(sup, ready, done), daemon=True)
        watcher.start()
        try:
            reports = sup.run()
        finally:
            done.set()
            watcher.join(timeout=5)
    rows = [camera_row(r, source_fps, paced, late_start=not ready.get(r.camera, True)) for r in reports]
    det = node.detector
    return {
        "cameras": cameras,
        "frames": frames if frames is not None else total,
        "source_fps": round(source_fps, 3),
        "paced": paced,
        "realtime_fraction": REALTIME_FRACTION,
        "per_camera": rows,
        "realtime_cameras": sum(1 for r in rows if r["realtime"]),
        "total_fps": round(sum(r.get("fps", 0.0) for r in rows), 3),
        "detector": sup.detector_stats,
        "settings": {
            "shared_detector": shared,
            "max_batch": ops.detector_max_batch,
            "max_wait_ms": ops.detector_max_wait_ms,
            "threads": getattr(det, "threads", None),
            "detector": getattr(det, "type", None),
            "start_delay_s": round(start_delay_s, 3) if paced and cameras > 1 else None,
        },
        "wall_s": round(time.perf_counter() - t0, 3),
    }


# ------------------------------------------------------------------------------------ CLI
def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _print_text(res: dict) -> None:
    s = res["settings"]
    mode = "paced at" if res["paced"] else "unpaced, source"
    print(
        f"{res['cameras']} camera(s), {res['frames']} frames each, {mode} {res['source_fps']:g} fps; "
        f"shared detector {s['shared_detector']}, max_batch {s['max_batch']}, max_wait_ms {s['max_wait_ms']:g}, "
        f"threads {s['threads'] or 'default'}"
    )
    for r in res["per_camera"]:
        if "offered" not in r:
            print(f"  {r['name']}: failed: {r.get('error')}")
            continue
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stage_ms"].items() if v >= 0.05)
        print(
            f"  {r['name']}: {r['frames']}/{r['offered']} frames, {r['fps']:.2f} fps, dropped {r['dropped']}, "
            f"realtime {'yes' if r['realtime'] else 'no'}{' (late start)' if r['late_start'] else ''}; "
            f"ms per frame: {stages}"
        )
    print(f"realtime cameras: {res['realtime_cameras']} of {res['cameras']}, total {res['total_fps']:.2f} fps")
    if any(r.get("late_start") for r in res["per_camera"]):
        print(
            f"  (late start: a worker was not ready {s['start_delay_s']:g} s after the detector; raise --start-delay-s)"
        )
    d = res["detector"]
    if d:
        print(
            f"shared detector: mean batch {d.get('mean_batch', 0):.2f}, inference {d.get('inference_ms_mean', 0):.1f} "
            f"ms per batch ({d.get('inference_ms_per_frame', 0):.1f} per frame), queue wait "
            f"{d.get('queue_wait_ms_mean', 0):.1f} ms, drops {d.get('drops', 0)}"
        )
    print(f"wall {res['wall_s']:.1f} s")


def _cmd_node(args: argparse.Namespace) -> int:
    res = bench_node(
        load_config(args.config),
        args.cameras,
        frames=args.frames,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        threads=args.threads,
        paced=not args.unpaced,
        start_delay_s=args.start_delay_s,
    )
    if args.json:
        print(json.dumps(res))
    else:
        _print_text(res)
    return 0


def add_bench_command(bench_sub) -> None:
    p = bench_sub.add_parser(
        "node",
        help="N real-time replays of a camera through the supervisor and the shared detector: fps per camera, "
        "realtime_cameras, stage latencies",
        description="Clone the config's first camera into N cameras, replay them paced at the source's frame rate "
        "through the node's supervisor and shared detector, and report per camera the frames processed and "
        "dropped, frames/s, whether it kept real time (>= 95 % of the frames offered) and the stage latencies.",
    )
    p.add_argument("--config", required=True, help="node config (its first enabled camera is cloned)")
    p.add_argument("--cameras", type=_at_least_one, required=True, help="number of cameras to run")
    p.add_argument("--frames", type=_at_least_one, help="replay only the first F frames of the source (default: all)")
    p.add_argument("--max-batch", type=_at_least_one, help="override operations.detector_max_batch")
    p.add_argument("--max-wait-ms", type=float, help="override operations.detector_max_wait_ms")
    p.add_argument(
        "--threads", type=_at_least_one, help="override the detector's threads (onnxruntime intra-op threads)"
    )
    p.add_argument("--unpaced", action="store_true", help="replay as fast as possible instead of in real time")
    p.add_argument("--start-delay-s", type=float, help="seconds from the detector being ready to the common start")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_node)
