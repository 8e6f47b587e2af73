"""Events as JSON Lines files: one event per line, appended whole.

:class:`JsonlEventWriter` appends each event as one ``os.write`` of the complete line to a
file opened with ``O_APPEND`` (no user-space buffering: nothing is lost in a Python buffer if
the process dies). If the file already ends with a partial line — left by a crash or power
loss mid-write — the writer first terminates it with a newline, so the damage stays on that
one line and :func:`iter_jsonl_events` can skip it. ``fsync=True`` also makes each line
survive power loss (slower).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Iterator

from .events import Event, EventError

__all__ = ["JsonlEventWriter", "iter_jsonl_events"]

log = logging.getLogger(__name__)


class JsonlEventWriter:
    def __init__(self, path: str | Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lines_written = 0
        try:
            size = os.fstat(self._fd).st_size
            if size:
                with open(self.path, "rb") as fh:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":
                        log.warning("%s ends with a partial line (interrupted write?); starting a new line", self.path)
                        self._write_all(b"\n")
        except BaseException:
            self.close()
            raise

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def write(self, event: Event) -> None:
        """Append ``event`` as one line (flushed to the OS before returning)."""
        line = event.to_bytes() + b"\n"
        with self._lock:
            if self._fd is None:
                raise ValueError(f"write to closed JsonlEventWriter({self.path})")
            self._write_all(line)
            if self.fsync:
                os.fsync(self._fd)
            self.lines_written += 1

    publish = write  # the edge worker's event-sink interface (same as EventPublisher)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "JsonlEventWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_jsonl_events(path: str | Path, *, strict: bool = False) -> Iterator[Event]:
    """Read events back; invalid lines (e.g. a crash's partial line) are logged and skipped,
    or raise :class:`EventError` with the line number when ``strict``."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            raw = raw.strip()
            if not raw:
                continue
            try:
                yield Event.from_json(raw)
            except EventError as exc:
                if strict:
                    raise EventError(f"{path}:{lineno}: {exc}") from None
                log.warning("%s:%d: skipping an invalid line: %s", path, lineno, exc)
