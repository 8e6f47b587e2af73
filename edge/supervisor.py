"""The node supervisor: one worker process per camera, restarted when it crashes or sticks.

- Each camera runs :func:`vigil.edge.worker.run_camera` in its own process (``spawn``: no
  state shared by accident), writing its status file (:mod:`vigil.edge.status`).
- A worker that exits with an error, or whose status shows no frame for
  ``operations.stuck_after_s`` while its source is connected (or no status at all for that
  long), is killed and restarted after a backoff that doubles within the window. More than
  ``max_restarts`` restarts within ``restart_window_s`` marks the camera ``failed``.
- A worker that finishes a recorded file (exit code 0) is done and not restarted.
- :meth:`Supervisor.stop` (SIGINT/SIGTERM in ``vigil run``) asks every worker to finish its
  frame and flush its outbox, waits ``shutdown_timeout_s``, then kills what is left.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import queue as queue_mod
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from vigil.edge.status import read_statuses, write_status

log = logging.getLogger(__name__)

__all__ = ["Supervisor", "run_cameras"]

_EXIT_BAD_INPUT = 2  # vigil.edge.cli.EXIT_ERROR


def _worker(args: argparse.Namespace, camera: str, restarts: int, results, detector=None) -> None:
    """Process entry point for one camera."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor forwards a stop as SIGTERM
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    from vigil.edge.cli import EXIT_ERROR, _run_one, _setup_logging, _user_errors
    from vigil.edge.config import load_config

    _setup_logging(getattr(args, "verbose", False), getattr(args, "log_json", False))
    from vigil.edge.logs import tag_camera

    tag_camera(camera)
    args.quiet = True
    try:
        cfg = load_config(args.config)
        res = _run_one(
            cfg, cfg.camera(camera), args, stopping.is_set, status_extra={"restarts": restarts}, detector=detector
        )
        res["ok"] = True
        results.put(res)
    except _user_errors() as exc:  # bad input: restarting cannot help
        log.error("camera %s: %s", camera, exc, extra={"camera": camera})
        results.put({"camera": camera, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        raise SystemExit(EXIT_ERROR) from None
    except Exception as exc:  # noqa: BLE001 - reported to the supervisor, then the process fails
        log.exception("camera %s: worker failed", camera, extra={"camera": camera})
        results.put({"camera": camera, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        raise SystemExit(1) from None


@dataclass
class _Camera:
    name: str
    proc: mp.Process | None = None
    started: float = 0.0
    restarts: deque = field(default_factory=deque)
    total_restarts: int = 0
    next_start: float = 0.0
    done: bool = False
    failed: bool = False
    result: dict | None = None


class Supervisor:
    """See the module docstring. ``args``: the ``vigil run`` arguments (``config`` at least)."""

    def __init__(self, args: argparse.Namespace, cameras: list[str], ops) -> None:
        self.args = args
        self.ops = ops
        self.ctx = mp.get_context("spawn")
        self.results = self.ctx.Queue()
        self.cams = {name: _Camera(name) for name in cameras}
        self._stop = threading.Event()
        self.server = None  # the shared detector process, when several cameras share one

    def _start_detector_server(self) -> None:
        from vigil.detectors.shared import DetectorServer
        from vigil.edge.config import load_config

        cfg = load_config(self.args.config)
        self.server = DetectorServer(
            cfg.detector, max_batch=self.ops.detector_max_batch, max_wait_ms=self.ops.detector_max_wait_ms
        ).start()
        log.info("shared detector process started (pid %s, max batch %d)", self.server.pid, self.ops.detector_max_batch)

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        self._stop.set()

    def _start(self, cam: _Camera) -> None:
        client = self.server.client(cam.name) if self.server is not None else None
        cam.proc = self.ctx.Process(
            target=_worker,
            args=(self.args, cam.name, cam.total_restarts, self.results, client),
            name=f"vigil-worker:{cam.name}",
        )
        cam.proc.start()
        cam.started = time.monotonic()
        log.info("camera %s: worker started (pid %s)", cam.name, cam.proc.pid, extra={"camera": cam.name})

    def _restart_or_fail(self, cam: _Camera, why: str) -> None:
        now = time.monotonic()
        while cam.restarts and now - cam.restarts[0] > self.ops.restart_window_s:
            cam.restarts.popleft()
        if len(cam.restarts) >= self.ops.max_restarts:
            cam.failed = True
            log.error(
                "camera %s: %s; %d restarts within %.0f s: giving up",
                cam.name,
                why,
                len(cam.restarts),
                self.ops.restart_window_s,
                extra={"camera": cam.name},
            )
            write_status(
                self.ops.status_dir,
                {
                    "camera": cam.name,
                    "state": "failed",
                    "updated": time.time(),
                    "error": why,
                    "restarts": cam.total_restarts,
                },
            )
            return
        delay = self.ops.restart_backoff_s * (2 ** len(cam.restarts))
        cam.restarts.append(now)
        cam.total_restarts += 1
        cam.next_start = now + delay
        cam.proc = None
        log.warning("camera %s: %s; restarting in %.1f s", cam.name, why, delay, extra={"camera": cam.name})

    def _stuck(self, cam: _Camera, statuses: dict[str, dict]) -> str | None:
        if cam.proc is None or time.monotonic() - cam.started < self.ops.stuck_after_s:
            return None
        st = statuses.get(cam.name)
        if st is None or st.get("pid") != cam.proc.pid:
            return f"no status from the worker for {self.ops.stuck_after_s:.0f} s"
        if time.time() - float(st.get("updated", 0)) > self.ops.stuck_after_s:
            return f"worker stopped reporting for {self.ops.stuck_after_s:.0f} s"
        if st.get("connected") and float(st.get("seconds_since_frame", 0)) > self.ops.stuck_after_s:
            return f"no frame processed for {st['seconds_since_frame']:.0f} s while the source is connected"
        return None

    def _drain_results(self) -> None:
        while True:
            try:
                res = self.results.get_nowait()
            except queue_mod.Empty:
                return
            cam = self.cams.get(res.get("camera"))
            if cam is not None:
                cam.result = res

    # ------------------------------------------------------------------ main loop
    def run(self, poll_s: float = 0.5) -> list[dict]:
        """Run until every camera is done or failed, or :meth:`stop`; returns one report per camera."""
        if self.ops.shared_detector and len(self.cams) > 1:
            self._start_detector_server()
        try:
            return self._supervise(poll_s)
        finally:
            if self.server is not None:
                self.server.stop()

    def _supervise(self, poll_s: float) -> list[dict]:
        for cam in self.cams.values():
            self._start(cam)
        while not self._stop.is_set():
            if self.server is not None and not self.server.is_alive():
                log.error("the shared detector process died: restarting it and the camera workers")
                self.server.stop()
                self._start_detector_server()
                for cam in self.cams.values():
                    if cam.proc is not None and cam.proc.is_alive():
                        cam.proc.kill()
            self._drain_results()
            statuses = {s.get("camera"): s for s in read_statuses(self.ops.status_dir)}
            now = time.monotonic()
            for cam in self.cams.values():
                if cam.done or cam.failed:
                    continue
                if cam.proc is None:
                    if now >= cam.next_start:
                        self._start(cam)
                    continue
                if not cam.proc.is_alive():
                    cam.proc.join()
                    self._drain_results()
                    if cam.proc.exitcode == 0:
                        cam.done = True
                        continue
                    if cam.proc.exitcode == _EXIT_BAD_INPUT:
                        cam.failed = True  # a config, calibration or missing-file error: restarting cannot help
                        log.error("camera %s: bad input; not restarting", cam.name, extra={"camera": cam.name})
                        write_status(
                            self.ops.status_dir,
                            {
                                "camera": cam.name,
                                "state": "failed",
                                "updated": time.time(),
                                "error": (cam.result or {}).get("error", "bad input"),
                                "restarts": cam.total_restarts,
                            },
                        )
                        continue
                    self._restart_or_fail(cam, f"worker exited with code {cam.proc.exitcode}")
                    continue
                why = self._stuck(cam, statuses)
                if why:
                    cam.proc.kill()
                    cam.proc.join(5)
                    self._restart_or_fail(cam, why)
            if all(c.done or c.failed for c in self.cams.values()):
                break
            self._stop.wait(poll_s)
        self._shutdown()
        self._drain_results()
        out = []
        for cam in self.cams.values():
            res = cam.result or {"camera": cam.name, "ok": False, "error": "no report"}
            if cam.failed:
                res = {**res, "ok": False, "error": res.get("error") or "failed"}
            res["restarts"] = cam.total_restarts
            out.append(res)
        return out

    def _shutdown(self) -> None:
        live = [c.proc for c in self.cams.values() if c.proc is not None and c.proc.is_alive()]
        for p in live:
            p.terminate()  # SIGTERM: finish the frame, flush the outbox
        deadline = time.monotonic() + self.ops.shutdown_timeout_s
        for p in live:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                log.error("worker %s did not stop in %.0f s: killing it", p.name, self.ops.shutdown_timeout_s)
                p.kill()
                p.join(5)


def run_cameras(
    args: argparse.Namespace, cameras: list[str], ops, stop_event: threading.Event | None = None
) -> list[dict]:
    """Supervise ``cameras`` until they finish or ``stop_event`` is set."""
    sup = Supervisor(args, cameras, ops)
    if stop_event is not None:
        threading.Thread(target=lambda: (stop_event.wait(), sup.stop()), daemon=True).start()
    return sup.run()
