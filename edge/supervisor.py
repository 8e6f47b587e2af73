"""The node supervisor: one worker process per camera, restarted when it crashes or sticks.

- Each camera runs :func:`vigil.edge.runner.camera_process` in its own process (``spawn``: no
  state shared by accident), which gets the validated config and the typed
  :class:`~vigil.edge.runner.RunOptions` (pickled: the YAML is read once, by the caller)
  and writes its status file (:mod:`vigil.edge.status`).
- A worker that exits with an error, or whose status shows no frame for
  ``operations.stuck_after_s`` while its source is connected (or no status at all for that
  long), is killed and restarted after a backoff that doubles within the window. More than
  ``max_restarts`` restarts within ``restart_window_s`` marks the camera ``failed``.
- A worker that finishes a recorded file (exit code 0) is done and not restarted.
- :meth:`Supervisor.stop` (SIGINT/SIGTERM in ``vigil run``) asks every worker to finish its
  frame and flush its outbox, waits ``shutdown_timeout_s``, then kills what is left.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue as queue_mod
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

from vigil.detectors.shared import DetectorServer
from vigil.edge.config import NodeConfig
from vigil.edge.runner import EXIT_BAD_INPUT, CameraReport, RunOptions, camera_process
from vigil.edge.status import read_statuses, write_status

log = logging.getLogger(__name__)

__all__ = ["Supervisor", "run_cameras"]


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
    result: CameraReport | None = None


class Supervisor:
    """See the module docstring. ``config``: the validated node config (handed to every worker
    process as is); ``options``: how to run it; ``cameras``: the names of the cameras to run."""

    def __init__(self, config: NodeConfig, options: RunOptions, cameras: list[str]) -> None:
        self.config = config
        self.options = options
        self.ops = config.operations
        self.ctx = mp.get_context("spawn")
        self.results = self.ctx.Queue()
        self.cams = {name: _Camera(name) for name in cameras}
        self._stop = threading.Event()
        self.server = None  # the shared detector process, when several cameras share one

    def _start_detector_server(self) -> None:
        self.server = DetectorServer(
            self.config.detector, max_batch=self.ops.detector_max_batch, max_wait_ms=self.ops.detector_max_wait_ms
        ).start()
        log.info("shared detector process started (pid %s, max batch %d)", self.server.pid, self.ops.detector_max_batch)

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        self._stop.set()

    def _start(self, cam: _Camera) -> None:
        client = self.server.client(cam.name) if self.server is not None else None
        cam.proc = self.ctx.Process(
            target=camera_process,
            args=(self.config, self.options, cam.name, cam.total_restarts, self.results, client),
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
            cam = self.cams.get(res.camera)
            if cam is not None:
                cam.result = res

    # ------------------------------------------------------------------ main loop
    def run(self, poll_s: float = 0.5) -> list[CameraReport]:
        """Run until every camera is done or failed, or :meth:`stop`; returns one report per camera."""
        if self.ops.shared_detector and len(self.cams) > 1:
            self._start_detector_server()
        try:
            return self._supervise(poll_s)
        finally:
            if self.server is not None:
                self.server.stop()

    def _supervise(self, poll_s: float) -> list[CameraReport]:
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
                    if cam.proc.exitcode == EXIT_BAD_INPUT:
                        cam.failed = True  # a config, calibration or missing-file error: restarting cannot help
                        log.error("camera %s: bad input; not restarting", cam.name, extra={"camera": cam.name})
                        write_status(
                            self.ops.status_dir,
                            {
                                "camera": cam.name,
                                "state": "failed",
                                "updated": time.time(),
                                "error": (cam.result.error if cam.result is not None else None) or "bad input",
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
            res = cam.result or CameraReport(cam.name, ok=False, error="no report", supervised=True)
            if cam.failed:
                res = replace(res, ok=False, error=res.error or "failed")
            out.append(replace(res, restarts=cam.total_restarts))
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
    config: NodeConfig, options: RunOptions, cameras: list[str], stop_event: threading.Event | None = None
) -> list[CameraReport]:
    """Supervise ``cameras`` of ``config`` until they finish or ``stop_event`` is set."""
    sup = Supervisor(config, options, cameras)
    if stop_event is not None:
        threading.Thread(target=lambda: (stop_event.wait(), sup.stop()), daemon=True).start()
    return sup.run()
