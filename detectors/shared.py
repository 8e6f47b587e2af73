"""One detector process per device, shared by every camera worker of the node.

Camera workers (separate processes, usually started with ``spawn``) hand frames to a
single detector process, which forms batches across cameras and runs one inference per
batch:

- **Frames travel through shared memory.** Each camera gets its own segment holding a
  small ring of fixed-size slots, one frame each (``slots`` x ``H x W x 3`` bytes); the
  detector process creates it when the camera connects and unlinks it when the camera
  goes away or the server stops. Only tiny messages (slot number, sequence number) and the
  results (a :class:`~vigil.detectors.detections.Detections`, a few small arrays) go
  through a per-camera connection (a Unix socket with an authentication key).
- **Nothing blocks the video loop.** A slot belongs to the camera from ``submit`` until its
  result comes back. When every slot of a camera is in flight, :meth:`DetectorClient.submit`
  drops the *new* frame at once, counts the drop and returns ``False`` (the frames already
  queued keep their place, so results arrive in order and nothing a worker is waiting for
  disappears). The synchronous :meth:`DetectorClient.detect` waits for its own result,
  bounded by ``timeout_s``.
- **Batches across cameras.** The detector process takes the frames that are waiting (at
  most ``max_batch``, the oldest frame of each camera first, so one busy camera cannot
  starve the others), waits up to ``max_wait_ms`` after the oldest frame arrived to fill a
  batch (not at all when every connected camera already has a frame waiting), and runs ``detector.detect_batch(frames)`` where the backend has it (one batched
  inference), else ``detect`` frame by frame.
- **Health.** :meth:`DetectorServer.stats` reports frames in and out, batches, the mean
  batch size, inference time, drops per camera, and a watchdog: an inference running
  longer than ``inference_timeout_s`` sets ``stuck`` and counts a ``watchdog_trip``
  (restarting a stuck detector belongs to the supervisor). Stats are served by a thread of
  the detector process, so they answer even while an inference is stuck.
- **Failures stay local.** A camera process that dies (even ``SIGKILL``) closes its socket;
  the detector process drops that camera's queued frames and frees its segment and goes on
  with the others. If the detector process dies, clients get :class:`DetectorClosed`.
  :meth:`DetectorServer.stop` stops the process (terminating it if it does not exit) and
  then removes any segment it left behind, so ``/dev/shm`` is clean afterwards.

Usage (the supervisor owns the server; each camera worker gets a client, which pickles)::

    server = DetectorServer(node.detector, max_batch=4, max_wait_ms=5).start()
    client = server.client("cam1", (576, 768))      # pass it to the camera's process
    ...                                             # in the worker:
    dets = client.detect(frame)                     # same contract as a backend's detect

A client uses ``detector.class_names`` of the real backend (sent by the detector process
when it is ready), so a worker can use it in place of a detector unchanged.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing import connection as mpc
from multiprocessing import get_context, shared_memory
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vigil.detectors.detections import Detections

__all__ = [
    "DetectorServer",
    "DetectorClient",
    "DetectorError",
    "DetectorClosed",
    "DetectorTimeout",
    "run_batch",
]

_HEADER = 64  # bytes before the first slot: int64 counters written by the client only
_H_DROPS, _H_SUBMITTED = 0, 1
_SHM_DIR = Path("/dev/shm")


class DetectorError(RuntimeError):
    """The shared detector failed on a frame, or refused a client."""


class DetectorClosed(DetectorError):
    """The shared detector process is gone (stopped or crashed)."""


class DetectorTimeout(DetectorError, TimeoutError):
    """No result within the client's ``timeout_s``."""


def run_batch(detector: Any, frames: list[np.ndarray]) -> list[Detections]:
    """One batched inference where the backend has ``detect_batch``, else one ``detect`` per frame."""
    batch = getattr(detector, "detect_batch", None)
    if batch is not None:
        out = list(batch(frames))
        if len(out) != len(frames):
            raise DetectorError(f"detect_batch returned {len(out)} results for {len(frames)} frames")
        return out
    return [detector.detect(f) for f in frames]


def _slot_bytes(shape: tuple[int, int, int]) -> int:
    n = int(np.prod(shape))
    return (n + 63) // 64 * 64


def _attach(name: str) -> shared_memory.SharedMemory:
    """Attach to an existing segment without asking the resource tracker to own it.

    On Python >= 3.13 ``track=False`` says so. Before that, attaching registers the name
    again with the resource tracker; processes started by ``multiprocessing`` share their
    parent's tracker, where the name is already registered by its creator, so that is harmless.
    """
    try:
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg]
    except TypeError:
        return shared_memory.SharedMemory(name=name)


def _close_shm(shm: shared_memory.SharedMemory, unlink: bool) -> None:
    try:
        shm.close()
    except BufferError:  # a view is still alive somewhere; the mapping goes with the process
        pass
    if unlink:
        try:
            shm.unlink()
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------- client
class _Taken(Exception):
    """The server still has a live connection under this camera name."""


class DetectorClient:
    """One camera's handle on a :class:`DetectorServer`; picklable, connects on first use.

    ``detect(frame)`` has a backend's contract (a BGR ``uint8`` frame in, ``Detections`` in
    its pixels out). ``submit(frame) -> bool`` and ``poll(timeout=0) -> Detections | None``
    pipeline frames without waiting: ``submit`` returns ``False`` (and counts a drop) when
    all ``slots`` are in flight; ``poll`` returns results in submission order, each with
    ``metadata["frame_seq"]`` equal to the :attr:`last_seq` that ``submit`` set.
    """

    def __init__(
        self,
        address: str,
        authkey: bytes,
        camera: str,
        frame_shape: tuple[int, ...] | None,
        slots: int,
        class_names: list[str],
        timeout_s: float,
    ) -> None:
        if frame_shape is not None:
            if len(frame_shape) == 2:
                frame_shape = (*frame_shape, 3)
            if len(frame_shape) != 3 or frame_shape[2] != 3 or min(frame_shape) <= 0:
                raise ValueError(f"frame_shape: expected (H, W) or (H, W, 3), got {frame_shape}")
            frame_shape = tuple(int(x) for x in frame_shape)
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self.address = address
        self.authkey = bytes(authkey)
        self.camera = camera
        self.frame_shape = frame_shape
        self.slots = int(slots)
        self.class_names = list(class_names)
        self.timeout_s = float(timeout_s)
        self._reset()

    def _reset(self) -> None:
        self._conn = None
        self._shm: shared_memory.SharedMemory | None = None
        self._views: list[np.ndarray] = []
        self._header: np.ndarray | None = None
        self._free: deque[int] = deque()
        self._inflight: dict[int, int] = {}  # seq -> slot
        self._ready: deque[Detections] = deque()
        self._next_seq = 0
        self.last_seq: int | None = None
        self.drops = 0
        self.submitted = 0

    # pickling: configuration only; the connection and mapping are per process
    def __getstate__(self) -> dict:
        return {
            k: getattr(self, k)
            for k in ("address", "authkey", "camera", "frame_shape", "slots", "class_names", "timeout_s")
        }

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def __repr__(self) -> str:
        return f"DetectorClient(camera={self.camera!r}, frame_shape={self.frame_shape}, slots={self.slots}, connected={self._conn is not None})"

    # ------------------------------------------------------------------ connection
    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def in_flight(self) -> int:
        """Slots in use: frames submitted whose result has not come back yet."""
        return len(self._inflight)

    @property
    def pending(self) -> int:
        """Frames submitted whose result ``poll`` has not returned yet."""
        return len(self._inflight) + len(self._ready)

    def connect(self) -> "DetectorClient":
        if self._conn is not None:
            return self
        if self.frame_shape is None:
            raise ValueError(
                f"camera {self.camera!r}: the frame shape is not known yet (give frame_shape, or submit a frame)"
            )
        deadline = time.monotonic() + 2.0
        while True:
            try:
                return self._connect()
            except _Taken:
                if time.monotonic() > deadline:
                    raise DetectorError(
                        f"camera {self.camera!r}: refused by the shared detector: already connected"
                    ) from None
                time.sleep(0.02)  # our own previous connection may not be gone yet (a shape change)

    def _connect(self) -> "DetectorClient":
        try:
            conn = mpc.Client(self.address, family="AF_UNIX", authkey=self.authkey)
        except (OSError, EOFError) as exc:
            raise DetectorClosed(
                f"camera {self.camera!r}: cannot reach the shared detector at {self.address}: {exc}"
            ) from exc
        try:
            conn.send({"camera": self.camera, "shape": self.frame_shape, "slots": self.slots})
            if not conn.poll(max(self.timeout_s, 5.0)):
                raise DetectorTimeout(f"camera {self.camera!r}: the shared detector did not answer the handshake")
            reply = conn.recv()
        except (OSError, EOFError) as exc:
            conn.close()
            raise DetectorClosed(f"camera {self.camera!r}: the shared detector closed the connection: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        if not reply.get("ok"):
            conn.close()
            if reply.get("taken"):
                raise _Taken()
            raise DetectorError(f"camera {self.camera!r}: refused by the shared detector: {reply.get('error')}")
        shm = _attach(reply["shm"])
        step = _slot_bytes(self.frame_shape)
        self._header = np.ndarray((_HEADER // 8,), np.int64, buffer=shm.buf, offset=0)
        self._views = [
            np.ndarray(self.frame_shape, np.uint8, buffer=shm.buf, offset=_HEADER + i * step) for i in range(self.slots)
        ]
        self._shm, self._conn = shm, conn
        self._free = deque(range(self.slots))
        return self

    def close(self) -> None:
        """Say goodbye (the server frees this camera's segment) and unmap it here."""
        conn, shm = self._conn, self._shm
        if conn is not None:
            try:
                conn.send(("bye",))
            except (OSError, ValueError):
                pass
            conn.close()
        self._views = []
        self._header = None
        if shm is not None:
            _close_shm(shm, unlink=False)
        drops, submitted = self.drops, self.submitted
        self._reset()
        self.drops, self.submitted = drops, submitted

    def __enter__(self) -> "DetectorClient":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            if self._conn is not None:
                self.close()
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------------ frames
    def _check(self, frame: np.ndarray) -> None:
        """Validate a frame; connect (the first frame gives the shape if none was given), and
        reconnect with the new shape when the camera's resolution changes between frames."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(
                f"camera {self.camera!r}: expected a BGR uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}"
            )
        if self.frame_shape is None:
            self.frame_shape = tuple(frame.shape)
        if frame.shape != self.frame_shape:
            if self.pending:
                raise ValueError(
                    f"camera {self.camera!r}: expected a uint8 frame of shape {self.frame_shape}, got {frame.dtype} "
                    f"{frame.shape} while {self.pending} frame(s) of the old shape are pending"
                )
            self.close()
            self.frame_shape = tuple(frame.shape)
        self.connect()

    def _send(self, frame: np.ndarray) -> int:
        slot = self._free.popleft()
        np.copyto(self._views[slot], frame)
        seq = self._next_seq
        self._next_seq += 1
        try:
            self._conn.send(("f", slot, seq))  # type: ignore[union-attr]
        except (OSError, ValueError) as exc:
            self._free.appendleft(slot)
            raise DetectorClosed(f"camera {self.camera!r}: the shared detector is gone: {exc}") from exc
        self._inflight[seq] = slot
        self.submitted += 1
        self._header[_H_SUBMITTED] = self.submitted  # type: ignore[index]
        self.last_seq = seq
        return seq

    def submit(self, frame: np.ndarray) -> bool:
        """Queue a frame without waiting; ``False`` (a counted drop) when every slot is in flight."""
        self._check(frame)
        self._pump(0.0)
        if not self._free:
            self.drops += 1
            self._header[_H_DROPS] = self.drops  # type: ignore[index]
            return False
        self._send(frame)
        return True

    def poll(self, timeout: float = 0.0) -> Detections | None:
        """The oldest result not yet returned, waiting at most ``timeout`` seconds; else ``None``."""
        if self._conn is None:
            return self._ready.popleft() if self._ready else None
        if not self._ready:
            deadline = time.monotonic() + timeout
            while not self._ready and self._inflight:
                self._pump(max(0.0, deadline - time.monotonic()))
                if time.monotonic() >= deadline:
                    break
        return self._ready.popleft() if self._ready else None

    def detect(self, frame: np.ndarray) -> Detections:
        """Detect on one frame and wait for its result (at most ``timeout_s``)."""
        self._check(frame)
        deadline = time.monotonic() + self.timeout_s
        while not self._free:  # earlier submit()s fill the ring: wait for one of them
            self._pump(self._remaining(deadline))
        seq = self._send(frame)
        while seq in self._inflight:
            self._pump(self._remaining(deadline), want=seq)
        for i, d in enumerate(self._ready):
            if d.metadata.get("frame_seq") == seq:
                del self._ready[i]
                meta = dict(d.metadata)
                meta.pop("frame_seq", None)
                return Detections(d.xyxy, d.confidence, d.class_id, d.tracker_id, d.data, meta)
        raise DetectorError(f"camera {self.camera!r}: lost the result of frame {seq}")  # pragma: no cover

    def _remaining(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DetectorTimeout(
                f"camera {self.camera!r}: no result from the shared detector within {self.timeout_s:g} s"
            )
        return left

    def _pump(self, timeout: float, want: int | None = None) -> None:
        """Read every result that is there (waiting up to ``timeout`` for the first one)."""
        conn = self._conn
        try:
            if not conn.poll(timeout):  # type: ignore[union-attr]
                return
            while True:
                msg = conn.recv()  # type: ignore[union-attr]
                kind, slot, seq = msg[0], msg[1], msg[2]
                self._inflight.pop(seq, None)
                self._free.append(slot)
                if kind == "r":
                    self._ready.append(msg[3].with_metadata(frame_seq=seq))
                elif kind == "e":
                    raise DetectorError(f"camera {self.camera!r}: the detector failed on frame {seq}: {msg[3]}")
                if not conn.poll(0):  # type: ignore[union-attr]
                    return
        except (EOFError, OSError) as exc:
            raise DetectorClosed(f"camera {self.camera!r}: the shared detector closed the connection") from exc


# ---------------------------------------------------------------------------- server process
@dataclass
class _Camera:
    name: str
    conn: Any
    shm: shared_memory.SharedMemory
    shape: tuple[int, int, int]
    slots: int
    header: np.ndarray | None = None
    views: list[np.ndarray] = field(default_factory=list)
    frames_in: int = 0
    frames_out: int = 0
    connected: bool = True
    drops: int = 0
    submitted: int = 0


class _Serve:
    """Runs inside the detector process."""

    def __init__(
        self,
        detector: Any,
        listener: Any,
        control: Any,
        prefix: str,
        max_batch: int,
        max_wait_s: float,
        inference_timeout_s: float,
    ) -> None:
        self.detector = detector
        self.listener = listener
        self.control = control
        self.prefix = prefix
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.inference_timeout_s = inference_timeout_s
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
        name, shape, slots = str(hello["camera"]), tuple(int(x) for x in hello["shape"]), int(hello["slots"])
        with self.lock:
            taken = name in self.by_name or any(c.name == name for c in self.incoming)
            seg = f"{self.prefix}{self.n_segments}"
            self.n_segments += 1
        if taken or self.stop.is_set():
            conn.send(
                {
                    "ok": False,
                    "taken": taken,
                    "error": f"camera {name!r} is already connected" if taken else "shutting down",
                }
            )
            conn.close()
            return
        step = _slot_bytes(shape)  # type: ignore[arg-type]
        shm = shared_memory.SharedMemory(name=seg, create=True, size=_HEADER + slots * step)
        cam = _Camera(name, conn, shm, shape, slots)  # type: ignore[arg-type]
        cam.header = np.ndarray((_HEADER // 8,), np.int64, buffer=shm.buf, offset=0)
        cam.header[:] = 0
        cam.views = [np.ndarray(shape, np.uint8, buffer=shm.buf, offset=_HEADER + i * step) for i in range(slots)]
        with self.lock:
            self.incoming.append(cam)
        try:
            conn.send({"ok": True, "shm": seg})
        except Exception:
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
                    if msg == "stats":
                        self.control.send(self.stats())
                    elif msg == "stop":
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
                if c.header is not None:
                    c.drops, c.submitted = int(c.header[_H_DROPS]), int(c.header[_H_SUBMITTED])
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
        cam.views = []
        cam.header = None
        try:
            cam.conn.close()
        except OSError:
            pass
        _close_shm(cam.shm, unlink=True)

    def _drop_camera(self, cam: _Camera) -> None:
        with self.lock:
            if not cam.connected:
                return
            cam.connected = False
            if cam.header is not None:
                cam.drops, cam.submitted = int(cam.header[_H_DROPS]), int(cam.header[_H_SUBMITTED])
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
                if msg[0] == "f":
                    slot, seq = int(msg[1]), int(msg[2])
                    if not 0 <= slot < cam.slots:
                        raise ValueError(f"bad slot {slot}")
                    with self.lock:
                        self.pending.append((time.monotonic(), cam, slot, seq))
                        cam.frames_in += 1
                        self.s["frames_in"] += 1
                elif msg[0] == "bye":
                    self._drop_camera(cam)
                    return
        except (EOFError, OSError, ValueError, TypeError, IndexError):
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
        frames = [cam.views[slot] for _, cam, slot, _ in batch]
        t = time.monotonic()
        self.busy_since = t
        try:
            results: list[Any] = run_batch(self.detector, frames)
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
            msg = ("e", slot, seq, error) if error is not None else ("r", slot, seq, det)
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


def _serve(
    builder: Callable[[Any], Any],
    detector_cfg: Any,
    address: str,
    authkey: bytes,
    control: Any,
    prefix: str,
    max_batch: int,
    max_wait_s: float,
    inference_timeout_s: float,
) -> None:
    """Entry point of the detector process."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us with a message (or SIGTERM)
    try:
        detector = builder(detector_cfg)
        class_names = list(detector.class_names)
        listener = mpc.Listener(address, family="AF_UNIX", authkey=authkey)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        control.send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return
    srv = _Serve(detector, listener, control, prefix, max_batch, max_wait_s, inference_timeout_s)
    threading.Thread(target=srv.accept_loop, name="vigil-detector-accept", daemon=True).start()
    control.send({"ok": True, "class_names": class_names, "pid": os.getpid()})
    ctl = threading.Thread(target=srv.control_loop, name="vigil-detector-control", daemon=True)
    ctl.start()
    try:
        srv.loop()
    finally:
        srv.shutdown()
        ctl.join(timeout=1.0)


# ---------------------------------------------------------------------------- server handle
def _default_builder(cfg: Any) -> Any:
    from vigil.detectors.registry import build_detector

    return build_detector(cfg)


class DetectorServer:
    """The shared detector of one device (see the module docstring).

    ``detector_cfg`` is what :func:`vigil.detectors.registry.build_detector` takes (a backend
    config, a dict, or ``None`` for the default); ``builder`` replaces ``build_detector`` (it
    must be picklable: a module-level function or class). The detector is built in the
    detector process, so its import cost and threads stay there.
    """

    def __init__(
        self,
        detector_cfg: Any = None,
        *,
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
        slots: int = 2,
        inference_timeout_s: float = 5.0,
        client_timeout_s: float = 30.0,
        start_timeout_s: float = 300.0,
        builder: Callable[[Any], Any] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self.detector_cfg = detector_cfg
        self.max_batch = int(max_batch)
        self.max_wait_ms = float(max_wait_ms)
        self.slots = int(slots)
        self.inference_timeout_s = float(inference_timeout_s)
        self.client_timeout_s = float(client_timeout_s)
        self.start_timeout_s = float(start_timeout_s)
        self.builder = builder or _default_builder
        self.class_names: list[str] = []
        self.prefix = f"vigil-det-{os.getpid()}-{secrets.token_hex(4)}-"
        self._authkey = secrets.token_bytes(32)
        self._dir: str | None = None
        self._address: str | None = None
        self._proc = None
        self._control = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ life cycle
    @property
    def address(self) -> str | None:
        return self._address

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def start(self) -> "DetectorServer":
        """Start the detector process and wait until its detector is built (raises if it fails)."""
        if self._proc is not None:
            raise RuntimeError("DetectorServer already started")
        ctx = get_context("spawn")
        self._dir = tempfile.mkdtemp(prefix="vigil-det-")
        self._address = os.path.join(self._dir, "detector.sock")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve,
            name="vigil-detector",
            daemon=True,
            args=(
                self.builder,
                self.detector_cfg,
                self._address,
                self._authkey,
                child,
                self.prefix,
                self.max_batch,
                self.max_wait_ms / 1e3,
                self.inference_timeout_s,
            ),
        )
        self._proc.start()
        child.close()
        self._control = parent
        deadline = time.monotonic() + self.start_timeout_s
        while not parent.poll(0.1):
            if not self._proc.is_alive() or time.monotonic() > deadline:
                code = self._proc.exitcode
                self.stop()
                raise DetectorError(f"the shared detector process did not start (exit code {code})")
        try:
            msg = parent.recv()
        except EOFError:
            msg = {"ok": False, "error": "the detector process exited during start"}
        if not msg.get("ok"):
            self.stop()
            raise DetectorError(f"the shared detector could not be built: {msg.get('error')}")
        self.class_names = list(msg["class_names"])
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the detector process and release every shared-memory segment; idempotent."""
        proc, control = self._proc, self._control
        if control is not None:
            with self._lock:
                try:
                    control.send("stop")
                except (OSError, ValueError):
                    pass
        if proc is not None:
            proc.join(timeout)
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)
        if control is not None:
            control.close()
        self._control = None
        self._sweep()
        if self._dir is not None:
            for p in (self._address, self._dir):
                try:
                    os.unlink(p) if p == self._address else os.rmdir(p)  # type: ignore[arg-type]
                except OSError:
                    pass
            self._dir = None

    def leftover_segments(self) -> list[str]:
        """Names of this server's segments still in ``/dev/shm`` (Linux; empty elsewhere)."""
        if not _SHM_DIR.is_dir():
            return []
        return sorted(p.name for p in _SHM_DIR.iterdir() if p.name.startswith(self.prefix))

    def _sweep(self) -> None:
        for name in self.leftover_segments():
            try:
                _close_shm(shared_memory.SharedMemory(name=name), unlink=True)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "DetectorServer":
        return self.start() if self._proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients and health
    def client(
        self,
        camera_name: str,
        frame_shape: tuple[int, ...] | None = None,
        *,
        slots: int | None = None,
        timeout_s: float | None = None,
    ) -> DetectorClient:
        """A handle for one camera (not yet connected: it connects in the process that uses it).

        ``frame_shape`` ``(H, W)`` or ``(H, W, 3)`` sizes the camera's slots; ``None`` takes it
        from the first frame (a later change of resolution reconnects with the new size).
        """
        if self._address is None or not self.class_names:
            raise RuntimeError("start() the DetectorServer before asking for clients")
        return DetectorClient(
            self._address,
            self._authkey,
            camera_name,
            frame_shape,
            slots or self.slots,
            self.class_names,
            self.client_timeout_s if timeout_s is None else timeout_s,
        )

    def stats(self, timeout: float = 2.0) -> dict:
        """Health and counters; ``{"alive": False, ...}`` when the detector process is gone."""
        dead = {"alive": False, "exitcode": self._proc.exitcode if self._proc is not None else None}
        if self._control is None or not self.is_alive():
            return dead
        with self._lock:
            try:
                self._control.send("stats")
                if not self._control.poll(timeout):
                    return {**dead, "alive": self.is_alive(), "error": "no answer"}
                return self._control.recv()
            except (EOFError, OSError):
                return dead

    def healthy(self) -> bool:
        s = self.stats()
        return bool(s.get("alive")) and not s.get("stuck", False)
