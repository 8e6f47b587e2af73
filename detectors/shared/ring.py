"""One camera's ring of frame slots in shared memory.

Layout of a segment (created by the detector process when the camera connects, unlinked
when it goes away or the server stops)::

    [0, 64)                       header: int64 counters written by the client only
                                  (HEADER_DROPS, HEADER_SUBMITTED), read for stats
    [64 + i * step, ... + H*W*3)  slot i: one (H, W, 3) uint8 BGR frame, i < slots;
                                  step = H*W*3 rounded up to 64 bytes

A slot belongs to the client from ``submit`` until its result comes back; the detector
only reads it in between. Names start with the server's prefix so that
:func:`leftover_segments` and :func:`sweep` find what a crashed process left in ``/dev/shm``.
"""

from __future__ import annotations

from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

__all__ = ["HEADER_BYTES", "HEADER_DROPS", "HEADER_SUBMITTED", "Ring", "slot_bytes", "leftover_segments", "sweep"]

HEADER_BYTES = 64
HEADER_DROPS, HEADER_SUBMITTED = 0, 1  # int64 indices into the header
SHM_DIR = Path("/dev/shm")


def slot_bytes(shape: tuple[int, int, int]) -> int:
    """Bytes between two slots: a frame of ``shape`` rounded up to 64 (cache lines)."""
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


def _close(shm: shared_memory.SharedMemory, unlink: bool) -> None:
    try:
        shm.close()
    except BufferError:  # a view is still alive somewhere; the mapping goes with the process
        pass
    if unlink:
        try:
            shm.unlink()
        except FileNotFoundError:
            pass


class Ring:
    """A mapped segment: ``views[i]`` is slot ``i`` as an ``(H, W, 3) uint8`` array, ``header``
    the ``(8,) int64`` counters. Build with :meth:`create` (detector) or :meth:`attach` (client)."""

    def __init__(self, shm: shared_memory.SharedMemory, shape: tuple[int, int, int], slots: int) -> None:
        step = slot_bytes(shape)
        self.shm = shm
        self.shape = shape
        self.slots = slots
        self.header: np.ndarray | None = np.ndarray((HEADER_BYTES // 8,), np.int64, buffer=shm.buf, offset=0)
        self.views: list[np.ndarray] = [
            np.ndarray(shape, np.uint8, buffer=shm.buf, offset=HEADER_BYTES + i * step) for i in range(slots)
        ]

    @classmethod
    def create(cls, name: str, shape: tuple[int, int, int], slots: int) -> Ring:
        """A new segment ``name`` for ``slots`` frames of ``shape``, counters zeroed."""
        shm = shared_memory.SharedMemory(name=name, create=True, size=HEADER_BYTES + slots * slot_bytes(shape))
        ring = cls(shm, shape, slots)
        ring.header[:] = 0  # type: ignore[index]
        return ring

    @classmethod
    def attach(cls, name: str, shape: tuple[int, int, int], slots: int) -> Ring:
        """Map the segment ``name`` that the detector created for this camera."""
        return cls(_attach(name), shape, slots)

    @property
    def name(self) -> str:
        return self.shm.name

    @property
    def closed(self) -> bool:
        return self.header is None

    def counters(self) -> tuple[int, int]:
        """``(drops, submitted)`` as the client last wrote them."""
        h = self.header
        if h is None:
            raise ValueError("ring is closed")
        return int(h[HEADER_DROPS]), int(h[HEADER_SUBMITTED])

    def write_counter(self, index: int, value: int) -> None:
        """Client side: publish a counter (``HEADER_DROPS`` or ``HEADER_SUBMITTED``)."""
        if self.header is not None:
            self.header[index] = value

    def close(self, unlink: bool) -> None:
        """Drop the views and unmap; ``unlink`` (the detector's side) also removes the segment."""
        self.views = []
        self.header = None
        _close(self.shm, unlink)


def leftover_segments(prefix: str) -> list[str]:
    """Names of segments starting with ``prefix`` still in ``/dev/shm`` (Linux; empty elsewhere)."""
    if not SHM_DIR.is_dir():
        return []
    return sorted(p.name for p in SHM_DIR.iterdir() if p.name.startswith(prefix))


def sweep(prefix: str) -> None:
    """Unlink every leftover segment of ``prefix`` (after the detector process is gone)."""
    for name in leftover_segments(prefix):
        try:
            _close(shared_memory.SharedMemory(name=name), unlink=True)
        except FileNotFoundError:
            pass
