"""The serving loop of the detector process (one per device), shared by every camera.

The process takes the frames that are waiting (at most ``max_batch``, the oldest frame of
each camera first, so one busy camera cannot starve the others), waits up to
``max_wait_ms`` after the oldest frame arrived to fill a batch (not at all when every
connected camera already has a frame waiting), and runs them through
:func:`vigil.detectors.base.detect_batch` (one batched inference where the backend has
``detect_batch``, else ``detect`` frame by frame). A camera that dies (even ``SIGKILL``)
closes its socket: its queued frames are dropped and its ring freed, the others go on.
An inference running longer than ``inference_timeout_s`` counts a ``watchdog_trip`` and
shows as ``stuck`` in the stats, which a separate thread answers even then.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import connection as mpc
from typing import Any

from vigil.detectors.base import detect_batch
from vigil.detectors.shared.protocol import (
    Bye,
    DetectorError,
    Failed,
    Frame,
    Hello,
    Ready,
    Refused,
    Result,
    StartFailed,
    StatsRequest,
    StopRequest,
    Welcome,
)
from vigil.detectors.shared.ring import Ring

__all__ = ["ServeSettings", "serve"]


@dataclass(frozen=True)
class ServeSettings:
    """How the detector process batches: segment name ``prefix``, at most ``max_batch`` frames
    per inference, waiting at most ``max_wait_s`` seconds for a batch to fill; an inference
    longer than ``inference_timeout_s`` seconds trips the watchdog."""

    prefix: str
    max_batch: int
    max_wait_s: float
    inference_timeout_s: float


@dataclass
class _Camera:
    """A connected camera, as the detector process sees it (counters are frames)."""

    name: str
    conn: Any
    ring: Ring
    frames_in: int = 0
    frames_out: int = 0
    connected: bool = True
    drops: int = 0
    submitted: int = 0


class _Serve:
    """The detector process's state: cameras, the queue of waiting frames, counters.

    Three threads share it (under ``lock``): the accept loop (handshakes), the control loop
    (stats, stop, watchdog) and the main loop (:meth:`loop`: reads frames, runs batches).
    ``pending`` holds ``(arrived monotonic s, camera, slot, seq)`` in arrival order.
    """

    def __init__(self, detector: Any, listener: Any, control: Any, settings: ServeSettings) -> None:
        self.detector = detector
        self.listener = listener
        self.control = control
        self.prefix = settings.prefix
        self.max_batch = settings.max_batch
        self.max_wait_s = settings.max_wait_s
        self.inference_timeout_s = settings.inference_timeout_s
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.wake_r, self.wake_w = mpc.Pipe(duplex=False)
        self.incoming: deque[_Camera] = deque()
        self.cams: dict[Any, _Camera] = {}  # conn -> camera
        self.by_name: dict[str, _Camera] = {}
        self.gone: dict[str, dict] = {}
        self.n_segments = 0
        self.pending: deque[tuple[float, _Camera, int, int]] = deque()
        self.busy_since = 0.0
        self.t0 = time.monotonic()
        self.s = {
            "frames_in": 0,
            "frames_out": 0,
            "batches": 0,
            "errors": 0,
            "infer_s": 0.0,
            "infer_max_s": 0.0,
            "infer_last_s": 0.0,
            "wait_s": 0.0,
            "watchdog_trips": 0,
            "last_error": None,
        }

    # -------------------------------------------------------------- threads
    def accept_loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn = self.listener.accept()
            except Exception:  # noqa: BLE001 - a failed handshake or the listener closed
                if self.stop.is_set():
                    return
                continue
            try:
                self._handshake(conn)
            except Exception:  # noqa: BLE001 - a client that vanished during the handshake
                conn.close()

    def _handshake(self, conn) -> None:
        if not conn.poll(10.0):
            conn.close()
            return
        hello = conn.recv()
        if not isinstance(hello, Hello):
            conn.close()
            return
        name, shape, slots = str(hello.camera), tuple(int(x) for x in hello.shape), int(hello.slots)
        with self.lock:
            taken = name in self.by_name or any(c.name == name for c in self.incoming)
            seg = f"{self.prefix}{self.n_segments}"
            self.n_segments += 1
        if taken or self.stop.is_set():
            conn.send(Refused(f"camera {name!r} is already connected" if taken else "shutting down", taken=taken))
            conn.close()
            return
        cam = _Camera(name, conn, Ring.create(seg, shape, slots))  # type: ignore[arg-type]
        with self.lock:
            self.incoming.append(cam)
        try:
            conn.send(Welcome(seg))
        except Exception:  # noqa: BLE001 - re-raised after freeing the ring
            with self.lock:
                if cam in self.incoming:
                    self.incoming.remove(cam)
            self._free_camera(cam)
            raise
        self.wake_w.send_bytes(b"c")

    def control_loop(self) -> None:
        """Answers ``stats``/``stop`` from the parent and watches inference time."""
        while not self.stop.is_set():
            try:
                has = self.control.poll(0.1)
                if has:
                    msg = self.control.recv()
                    if isinstance(msg, StatsRequest):
                        self.control.send(self.stats())
                    elif isinstance(msg, StopRequest):
                        self._request_stop()
                        return
                self._watchdog()
            except (EOFError, OSError):  # the parent is gone: so are we
                self._request_stop()
                return

    def _request_stop(self) -> None:
        self.stop.set()
        try:
            self.wake_w.send_bytes(b"s")
        except OSError:
            pass

    def _watchdog(self) -> None:
        busy = self.busy_since
        if busy and time.monotonic() - busy > self.inference_timeout_s:
            with self.lock:
                if self.s.get("_tripped_for") != busy:
                    self.s["_tripped_for"] = busy
                    self.s["watchdog_trips"] += 1

    def stats(self) -> dict:
        with self.lock:
            s = dict(self.s)
            s.pop("_tripped_for", None)
            cams = {}
            for c in [*self.by_name.values(), *self.incoming]:
                if not c.ring.closed:
                    c.drops, c.submitted = c.ring.counters()
                cams[c.name] = {
                    "connected": True,
                    "frames_in": c.frames_in,
                    "frames_out": c.frames_out,
                    "drops": c.drops,
                    "submitted": c.submitted,
                }
            for name, g in self.gone.items():
                cams.setdefault(name, g)
            queued = len(self.pending)
        busy = self.busy_since
        busy_s = time.monotonic() - busy if busy else 0.0
        batches, out = s["batches"], s["frames_out"]
        return {
            "alive": True,
            "uptime_s": round(time.monotonic() - self.t0, 3),
            "max_batch": self.max_batch,
            "max_wait_ms": self.max_wait_s * 1e3,
            "frames_in": s["frames_in"],
            "frames_out": out,
            "queued": queued,
            "batches": batches,
            "mean_batch": out / batches if batches else 0.0,
            "inference_ms_mean": s["infer_s"] / batches * 1e3 if batches else 0.0,
            "inference_ms_per_frame": s["infer_s"] / out * 1e3 if out else 0.0,
            "inference_ms_max": s["infer_max_s"] * 1e3,
            "inference_ms_last": s["infer_last_s"] * 1e3,
            "queue_wait_ms_mean": s["wait_s"] / out * 1e3 if out else 0.0,
            "busy_ms": busy_s * 1e3,
            "stuck": bool(busy and busy_s > self.inference_timeout_s),
            "inference_timeout_s": self.inference_timeout_s,
            "watchdog_trips": s["watchdog_trips"],
            "errors": s["errors"],
            "last_error": s["last_error"],
            "drops": sum(c["drops"] for c in cams.values()),
            "cameras": cams,
        }

    # -------------------------------------------------------------- cameras
    def _free_camera(self, cam: _Camera) -> None:
        try:
            cam.conn.close()
        except OSError:
            pass
        cam.ring.close(unlink=True)

    def _drop_camera(self, cam: _Camera) -> None:
        with self.lock:
            if not cam.connected:
                return
            cam.connected = False
            if not cam.ring.closed:
                cam.drops, cam.submitted = cam.ring.counters()
            self.cams.pop(cam.conn, None)
            self.by_name.pop(cam.name, None)
            self.gone[cam.name] = {
                "connected": False,
                "frames_in": cam.frames_in,
                "frames_out": cam.frames_out,
                "drops": cam.drops,
                "submitted": cam.submitted,
            }
            self.pending = deque(p for p in self.pending if p[1] is not cam)
        self._free_camera(cam)

    def _adopt(self) -> None:
        with self.lock:
            while self.incoming:
                cam = self.incoming.popleft()
                self.cams[cam.conn] = cam
                self.by_name[cam.name] = cam
                self.gone.pop(cam.name, None)

    def _read(self, cam: _Camera) -> None:
        try:
            while cam.conn.poll(0):
                msg = cam.conn.recv()
                if isinstance(msg, Frame):
                    slot, seq = int(msg.slot), int(msg.seq)
                    if not 0 <= slot < cam.ring.slots:
                        raise ValueError(f"bad slot {slot}")
                    with self.lock:
                        self.pending.append((time.monotonic(), cam, slot, seq))
                        cam.frames_in += 1
                        self.s["frames_in"] += 1
                elif isinstance(msg, Bye):
                    self._drop_camera(cam)
                    return
                # anything else is not part of the protocol: ignored
        except (EOFError, OSError, ValueError, TypeError, IndexError):  # a dead or broken client
            self._drop_camera(cam)

    # -------------------------------------------------------------- batching
    def _take(self) -> list[tuple[float, _Camera, int, int]]:
        """Up to ``max_batch`` waiting frames: each camera's oldest first, then by age."""
        with self.lock:
            items = list(self.pending)
            first, rest, seen = [], [], set()
            for it in items:
                (rest if id(it[1]) in seen else first).append(it)
                seen.add(id(it[1]))
            batch = (first + rest)[: self.max_batch]
            batch.sort(key=lambda it: it[0])
            taken = {id(it) for it in batch}
            self.pending = deque(it for it in items if id(it) not in taken)
        return batch

    def _run(self, batch: list[tuple[float, _Camera, int, int]]) -> None:
        frames = [cam.ring.views[slot] for _, cam, slot, _ in batch]
        t = time.monotonic()
        self.busy_since = t
        try:
            results: list[Any] = list(detect_batch(self.detector, frames))
            if len(results) != len(frames):
                raise DetectorError(f"detect_batch returned {len(results)} results for {len(frames)} frames")
            error = None
        except Exception as exc:  # noqa: BLE001 - reported to the clients and in stats
            results, error = [None] * len(batch), f"{type(exc).__name__}: {exc}"
        finally:
            self.busy_since = 0.0
            del frames
        done = time.monotonic()
        dt = done - t
        with self.lock:
            s = self.s
            s["batches"] += 1
            s["infer_s"] += dt
            s["infer_last_s"] = dt
            s["infer_max_s"] = max(s["infer_max_s"], dt)
            if error is not None:
                s["errors"] += 1
                s["last_error"] = error
        for (arrived, cam, slot, seq), det in zip(batch, results):
            if cam.conn not in self.cams:
                continue
            msg = Failed(slot, seq, error) if error is not None else Result(slot, seq, det)
            try:
                cam.conn.send(msg)
            except (OSError, ValueError):
                self._drop_camera(cam)
                continue
            with self.lock:
                cam.frames_out += 1
                self.s["frames_out"] += 1
                self.s["wait_s"] += t - arrived

    def _batch_ready(self) -> bool:
        """Run now: the batch is full, or every connected camera has a frame waiting (no one
        else can add to it, so waiting would only add latency)."""
        if len(self.pending) >= self.max_batch:
            return True
        return len({id(p[1]) for p in self.pending}) >= len(self.cams)

    def loop(self) -> None:
        while not self.stop.is_set():
            if self.pending:
                oldest = self.pending[0][0]
                timeout = 0.0 if self._batch_ready() else max(0.0, oldest + self.max_wait_s - time.monotonic())
            else:
                timeout = 1.0
            ready = mpc.wait([self.wake_r, *self.cams], timeout)
            for r in ready:
                if r is self.wake_r:
                    while self.wake_r.poll(0):
                        self.wake_r.recv_bytes()
                    self._adopt()
                elif r in self.cams:
                    self._read(self.cams[r])
            if self.stop.is_set():
                break
            if self.pending and (self._batch_ready() or time.monotonic() >= self.pending[0][0] + self.max_wait_s):
                self._run(self._take())

    def shutdown(self) -> None:
        self.stop.set()
        try:
            self.listener.close()
        except OSError:
            pass
        self._adopt()
        with self.lock:
            incoming = list(self.incoming)
            self.incoming.clear()
        for cam in list(self.cams.values()) + incoming:
            self._drop_camera(cam)


def serve(
    builder: Callable[[Any], Any],
    detector_cfg: Any,
    address: str,
    authkey: bytes,
    control: Any,
    settings: ServeSettings,
) -> None:
    """Entry point of the detector process: build the backend with ``builder(detector_cfg)``,
    listen on the Unix socket ``address``, say :class:`Ready` (or :class:`StartFailed`) on
    ``control``, then serve until :class:`StopRequest` or the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us with a message (or SIGTERM)
    try:
        detector = builder(detector_cfg)
        class_names = list(detector.class_names)
        listener = mpc.Listener(address, family="AF_UNIX", authkey=authkey)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        control.send(StartFailed(f"{type(exc).__name__}: {exc}"))
        return
    srv = _Serve(detector, listener, control, settings)
    threading.Thread(target=srv.accept_loop, name="vigil-detector-accept", daemon=True).start()
    control.send(Ready(class_names, os.getpid()))
    ctl = threading.Thread(target=srv.control_loop, name="vigil-detector-control", daemon=True)
    ctl.start()
    try:
        srv.loop()
    finally:
        srv.shutdown()
        ctl.join(timeout=1.0)
