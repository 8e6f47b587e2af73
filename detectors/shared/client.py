"""One camera's handle on the shared detector: :class:`DetectorClient` (picklable).

It runs in the camera's worker process. ``detect(frame)`` has a backend's contract (a BGR
``uint8`` ``(H, W, 3)`` frame in, :class:`~vigil.detectors.detections.Detections` in its
pixels out), bounded by ``timeout_s``; ``submit``/``poll`` pipeline frames without waiting.
A frame is copied into a free slot of the camera's :class:`~vigil.detectors.shared.ring.Ring`
and announced with a :class:`~vigil.detectors.shared.protocol.Frame`; the slot comes back
with the result. When every slot is in flight, ``submit`` drops the *new* frame at once,
counts the drop and returns ``False`` (frames already queued keep their place, so results
arrive in order and nothing a worker is waiting for disappears).
"""

from __future__ import annotations

import time
from collections import deque
from multiprocessing import connection as mpc

import numpy as np

from vigil.detectors.detections import Detections
from vigil.detectors.shared.protocol import (
    Bye,
    DetectorClosed,
    DetectorError,
    DetectorTimeout,
    Failed,
    Frame,
    Hello,
    Refused,
    Result,
    Welcome,
)
from vigil.detectors.shared.ring import HEADER_DROPS, HEADER_SUBMITTED, Ring

__all__ = ["DetectorClient"]


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
        self._ring: Ring | None = None
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
        return (
            f"DetectorClient(camera={self.camera!r}, frame_shape={self.frame_shape}, slots={self.slots}, "
            f"connected={self._conn is not None})"
        )

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

    def connect(self) -> DetectorClient:
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

    def _connect(self) -> DetectorClient:
        try:
            conn = mpc.Client(self.address, family="AF_UNIX", authkey=self.authkey)
        except (OSError, EOFError) as exc:
            raise DetectorClosed(
                f"camera {self.camera!r}: cannot reach the shared detector at {self.address}: {exc}"
            ) from exc
        try:
            conn.send(Hello(self.camera, self.frame_shape, self.slots))  # type: ignore[arg-type]
            if not conn.poll(max(self.timeout_s, 5.0)):
                raise DetectorTimeout(f"camera {self.camera!r}: the shared detector did not answer the handshake")
            reply = conn.recv()
        except (OSError, EOFError) as exc:
            conn.close()
            raise DetectorClosed(f"camera {self.camera!r}: the shared detector closed the connection: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        if not isinstance(reply, Welcome):
            conn.close()
            if isinstance(reply, Refused) and reply.taken:
                raise _Taken()
            error = reply.error if isinstance(reply, Refused) else f"unexpected answer {type(reply).__name__}"
            raise DetectorError(f"camera {self.camera!r}: refused by the shared detector: {error}")
        self._ring = Ring.attach(reply.shm, self.frame_shape, self.slots)  # type: ignore[arg-type]
        self._conn = conn
        self._free = deque(range(self.slots))
        return self

    def close(self) -> None:
        """Say goodbye (the server frees this camera's segment) and unmap it here."""
        conn, ring = self._conn, self._ring
        if conn is not None:
            try:
                conn.send(Bye())
            except (OSError, ValueError):
                pass
            conn.close()
        if ring is not None:
            ring.close(unlink=False)
        drops, submitted = self.drops, self.submitted
        self._reset()
        self.drops, self.submitted = drops, submitted

    def __enter__(self) -> DetectorClient:
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            if self._conn is not None:
                self.close()
        except Exception:  # noqa: BLE001 - nothing to report to from a finaliser
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
        np.copyto(self._ring.views[slot], frame)  # type: ignore[union-attr]
        seq = self._next_seq
        self._next_seq += 1
        try:
            self._conn.send(Frame(slot, seq))  # type: ignore[union-attr]
        except (OSError, ValueError) as exc:
            self._free.appendleft(slot)
            raise DetectorClosed(f"camera {self.camera!r}: the shared detector is gone: {exc}") from exc
        self._inflight[seq] = slot
        self.submitted += 1
        self._ring.write_counter(HEADER_SUBMITTED, self.submitted)  # type: ignore[union-attr]
        self.last_seq = seq
        return seq

    def submit(self, frame: np.ndarray) -> bool:
        """Queue a frame without waiting; ``False`` (a counted drop) when every slot is in flight."""
        self._check(frame)
        self._pump(0.0)
        if not self._free:
            self.drops += 1
            self._ring.write_counter(HEADER_DROPS, self.drops)  # type: ignore[union-attr]
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
                if isinstance(msg, (Result, Failed)):
                    self._inflight.pop(msg.seq, None)
                    self._free.append(msg.slot)
                if isinstance(msg, Result):
                    self._ready.append(msg.detections.with_metadata(frame_seq=msg.seq))
                elif isinstance(msg, Failed):
                    raise DetectorError(f"camera {self.camera!r}: the detector failed on frame {msg.seq}: {msg.error}")
                if not conn.poll(0):  # type: ignore[union-attr]
                    return
        except (EOFError, OSError) as exc:
            raise DetectorClosed(f"camera {self.camera!r}: the shared detector closed the connection") from exc
