"""What both event stores share: the error type, a stored event, and the reading queries.

:class:`EventReads` holds every query that reads the ``events`` table (counts, replay after a
``stream_seq``, iteration, JSON Lines export); the SQLite and PostgreSQL stores subclass it
and give only ``_fetch`` and their driver's parameter marker, so both answer the same reads
with the same SQL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Protocol

from ..events import Event, EventError

__all__ = ["EventReads", "Store", "StoreError", "StoredEvent", "content_digest"]


class StoreError(RuntimeError):
    """The database cannot be opened, read or written (message says which and why).

    ``data_error``: the database refused the *data* (a value out of a column's range, text it
    cannot hold, a constraint), not the write itself: some event of the batch is at fault and
    the others can be committed without it (:class:`~vigil.alerts.aggregator.writer.StoreWriter`
    splits the batch to find it). ``False`` (disk full, locked, gone): nothing can be written
    now and the publishers resend later.
    """

    def __init__(self, message: str, *, data_error: bool = False) -> None:
        super().__init__(message)
        self.data_error = data_error


def content_digest(text: str) -> str:
    """SHA-256 (hex) of an event's JSON text: tells apart the copies of one id kept aside in
    ``event_conflicts`` (one row per id and content)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class StoredEvent:
    """An event as the store holds it: its aggregator order and arrival time."""

    stream_seq: int
    received_at: str
    event: Event


class Store(Protocol):
    """What the aggregator and the ``vigil events`` commands need of an event store; both
    :class:`~vigil.alerts.store.sqlite.EventStore` and :class:`~vigil.alerts.store.postgres.PgEventStore`
    have it (with :class:`EventReads`' other reads)."""

    path: Path | str  # what messages show (the file, or the DSN without its password)

    def add_many_seq(
        self, events: Iterable[Event], texts: list[str] | None = None, conflicts: list[str] | None = None
    ) -> list[int | None]: ...

    def conflicts(self, limit: int = 100) -> list[tuple[str, str, str]]: ...

    def read_after(self, since_stream_seq: int, limit: int = 500) -> list[tuple[int, str, str, str, str]]: ...

    def last_stream_seq(self) -> int: ...

    def count(self) -> tuple[int, int]: ...

    def export_jsonl(self, fh: IO[str], since_stream_seq: int = 0, *, batch: int = 500) -> int: ...

    def open_transits(self, **options: Any) -> Any: ...

    def close(self) -> None: ...


class EventReads:
    """Reading the ``events`` table, shared by the SQLite and PostgreSQL stores.

    A subclass gives ``_fetch(sql, params) -> rows`` and the driver's parameter marker
    ``_PARAM`` (the queries here are written with ``?``).
    """

    _PARAM = "?"

    def _fetch(self, sql: str, params: tuple) -> list[tuple]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _read(self, sql: str, params: tuple) -> list[tuple]:
        return self._fetch(sql if self._PARAM == "?" else sql.replace("?", self._PARAM), params)

    def count(self) -> tuple[int, int]:
        """``(events, distinct_ids)``: equal by construction; both reported as a check."""
        ((n, distinct),) = self._read("SELECT COUNT(*), COUNT(DISTINCT id) FROM events", ())
        return int(n), int(distinct)

    def last_stream_seq(self) -> int:
        ((last,),) = self._read("SELECT COALESCE(MAX(stream_seq), 0) FROM events", ())
        return int(last)

    def read_after(self, since_stream_seq: int, limit: int = 500) -> list[tuple[int, str, str, str, str]]:
        """Up to ``limit`` rows ``(stream_seq, camera, type, severity, json)`` after ``since_stream_seq``,
        in stream order: the stored JSON as stored (for replaying to operators)."""
        rows = self._read(
            "SELECT stream_seq, camera, type, severity, json FROM events"
            " WHERE stream_seq > ? ORDER BY stream_seq LIMIT ?",
            (int(since_stream_seq), int(limit)),
        )
        return [(int(a), b, c, d, e) for a, b, c, d, e in rows]

    def iter_events(self, since_stream_seq: int = 0, *, batch: int = 500) -> Iterator[StoredEvent]:
        """Events with ``stream_seq > since_stream_seq`` in stream order, read in batches."""
        cursor = int(since_stream_seq)
        while True:
            rows = self._read(
                "SELECT stream_seq, received_at, json FROM events WHERE stream_seq > ? ORDER BY stream_seq LIMIT ?",
                (cursor, batch),
            )
            for stream_seq, received_at, text in rows:
                try:
                    event = Event.from_json(text)
                except EventError as exc:
                    raise StoreError(f"stored event at stream_seq {stream_seq} is unreadable: {exc}") from None
                yield StoredEvent(int(stream_seq), received_at, event)
                cursor = int(stream_seq)
            if len(rows) < batch:
                return

    def conflicts(self, limit: int = 100) -> list[tuple[str, str, str]]:
        """The latest conflicting copies kept aside: ``(id, received_at, json)``, newest first."""
        return self._read(
            "SELECT CAST(id AS TEXT), received_at, json FROM event_conflicts ORDER BY received_at DESC, id LIMIT ?",
            (int(limit),),
        )

    def export_jsonl(self, fh: IO[str], since_stream_seq: int = 0, *, batch: int = 500) -> int:
        """Write each stored event's JSON as one line to ``fh`` (stream order); returns the count.

        The stored JSON is written as stored, without re-validation (an export is a copy).
        """
        cursor = int(since_stream_seq)
        n = 0
        while True:
            rows = self._read(
                "SELECT stream_seq, json FROM events WHERE stream_seq > ? ORDER BY stream_seq LIMIT ?", (cursor, batch)
            )
            for stream_seq, text in rows:
                fh.write(text)
                fh.write("\n")
                cursor = int(stream_seq)
                n += 1
            if len(rows) < batch:
                return n
