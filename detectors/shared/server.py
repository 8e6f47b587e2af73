"""The parent's handle on the shared detector process: :class:`DetectorServer`.

The supervisor owns it. ``start`` spawns the detector process (``spawn`` context: the
backend's import cost and threads stay there), waits until its backend is built and keeps
the backend's ``class_names``; ``client(camera, frame_shape)`` hands out picklable
:class:`~vigil.detectors.shared.client.DetectorClient` objects for the camera workers;
``stats`` asks the process for its counters over the control pipe; ``stop`` stops the
process (terminating, then killing it if it does not exit) and removes any shared-memory
segment it left behind, so ``/dev/shm`` is clean afterwards.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing import get_context
from typing import Any

from vigil.detectors.registry import build_detector
from vigil.detectors.shared.client import DetectorClient
from vigil.detectors.shared.protocol import DetectorError, Ready, StartFailed, StatsRequest, StopRequest
from vigil.detectors.shared.ring import leftover_segments, sweep
from vigil.detectors.shared.serve import ServeSettings, serve

__all__ = ["DetectorServer"]


class DetectorServer:
    """The shared detector of one device (see :mod:`vigil.detectors.shared`).

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
        self.builder = builder or build_detector
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

    def start(self) -> DetectorServer:
        """Start the detector process and wait until its detector is built (raises if it fails)."""
        if self._proc is not None:
            raise RuntimeError("DetectorServer already started")
        ctx = get_context("spawn")
        self._dir = tempfile.mkdtemp(prefix="vigil-det-")
        self._address = os.path.join(self._dir, "detector.sock")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=serve,
            name="vigil-detector",
            daemon=True,
            args=(
                self.builder,
                self.detector_cfg,
                self._address,
                self._authkey,
                child,
                ServeSettings(self.prefix, self.max_batch, self.max_wait_ms / 1e3, self.inference_timeout_s),
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
            msg = StartFailed("the detector process exited during start")
        if not isinstance(msg, Ready):
            self.stop()
            error = msg.error if isinstance(msg, StartFailed) else f"unexpected message {type(msg).__name__}"
            raise DetectorError(f"the shared detector could not be built: {error}")
        self.class_names = list(msg.class_names)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the detector process and release every shared-memory segment; idempotent."""
        proc, control = self._proc, self._control
        if control is not None:
            with self._lock:
                try:
                    control.send(StopRequest())
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
        sweep(self.prefix)
        if self._dir is not None:
            for p in (self._address, self._dir):
                try:
                    os.unlink(p) if p == self._address else os.rmdir(p)  # type: ignore[arg-type]
                except OSError:
                    pass
            self._dir = None

    def leftover_segments(self) -> list[str]:
        """Names of this server's segments still in ``/dev/shm`` (Linux; empty elsewhere)."""
        return leftover_segments(self.prefix)

    def __enter__(self) -> DetectorServer:
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
                self._control.send(StatsRequest())
                if not self._control.poll(timeout):
                    return {**dead, "alive": self.is_alive(), "error": "no answer"}
                return self._control.recv()
            except (EOFError, OSError):
                return dead

    def healthy(self) -> bool:
        """Alive, and no inference running past ``inference_timeout_s``."""
        s = self.stats()
        return bool(s.get("alive")) and not s.get("stuck", False)
