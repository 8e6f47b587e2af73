"""What both event stores share: the error type, a stored event, and the reading queries.

:class:`EventReads` holds every query that reads the ``events`` table (counts, replay after a
``stream_seq``, iteration, JSON Lines export); the SQLite and PostgreSQL stores subclass it
and give only ``_fetch`` and their driver's parameter marker, so both answer the same reads
with the same SQL.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Protocol

from ..events import Event, EventError, alarm_id_of
from ..payloads import ALARM_TYPES

__all__ = [
    "EventReads",
    "PURGE_CHUNK_ROWS",
    "alarm_id_column",
    "backfill_alarm_ids",
    "Store",
    "StoreError",
    "StoredEvent",
    "content_digest",
    "purge_filters",
    "purge_in_chunks",
]

#: rows one retention ``DELETE`` removes at most (each chunk is its own short transaction)
PURGE_CHUNK_ROWS = 1000
#: pause between two chunks (seconds): the store's lock is free for the writer in between
PURGE_CHUNK_PAUSE_S = 0.005


def alarm_id_column(event_type: Any, camera: Any, text: Any) -> str | None:
    """The ``alarm_id`` column of a stored row: the payload's ``alarm_id`` (a schema-1 event's
    derived as on upgrade, :func:`~vigil.alerts.events.alarm_id_of`), ``None`` for a non-alarm
    type or a row whose JSON or id cannot be read (the console then takes the event's own id as
    its alarm's). Never raises; at most 64 characters."""
    if event_type not in ALARM_TYPES or not isinstance(text, (str, bytes)):
        return None
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or not isinstance(doc.get("payload"), dict):
            return None
        found = alarm_id_of({"camera": camera, "type": event_type, "payload": doc["payload"]})
    except Exception:  # noqa: BLE001 - a row of any shape has no alarm id rather than breaking a migration
        return None
    return found if isinstance(found, str) and 0 < len(found) <= 64 else None


def backfill_alarm_ids(fetch: Callable[[int], list[tuple]], update: Callable[[list[tuple]], None]) -> int:
    """Fill the new ``alarm_id`` column of the rows stored before it (a store migration):
    ``fetch(after_stream_seq)`` gives up to 1000 rows ``(stream_seq, type, camera, json)`` in
    ``stream_seq`` order, ``update([(alarm_id, stream_seq), ...])`` writes them. Returns the rows
    given an id."""
    cursor, n = 0, 0
    while True:
        rows = fetch(cursor)
        found = [(alarm_id_column(t, c, text), int(seq)) for seq, t, c, text in rows]
        found = [f for f in found if f[0] is not None]
        if found:
            update(found)
            n += len(found)
        if len(rows) < 1000:
            return n
        cursor = int(rows[-1][0])


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
    shared: bool  # other aggregators may write to it at the same time (PostgreSQL)

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

    def purge_events(
        self, before_iso: str, *, exclude_types: tuple[str, ...] = (), only_types: tuple[str, ...] = ()
    ) -> int: ...

    def count_events_before(
        self, before_iso: str, *, exclude_types: tuple[str, ...] = (), only_types: tuple[str, ...] = ()
    ) -> int: ...

    def count_transits_before(self, before_ts: float, *, hits: bool) -> int: ...


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
                    event = Event.from_json(text, stored=True)
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

    # ------------------------------------------------------------------ retention (counts)
    def count_events_before(
        self, before_iso: str, *, exclude_types: tuple[str, ...] = (), only_types: tuple[str, ...] = ()
    ) -> int:
        """How many rows ``purge_events(before_iso, exclude_types=...)`` would delete now: events
        whose ``time`` is before ``before_iso`` and their ``event_conflicts`` copies (a dry run)."""
        (ev, evp), (ct, ctp) = purge_filters(self._PARAM != "?", before_iso, exclude_types, only_types)
        ((n,),) = self._fetch(f"SELECT COUNT(*) FROM events WHERE {ev}", evp)
        ((c,),) = self._fetch(f"SELECT COUNT(*) FROM event_conflicts WHERE {ct}", ctp)
        return int(n) + int(c)

    def count_transits_before(self, before_ts: float, *, hits: bool) -> int:
        """Plate transits in this database recorded before ``before_ts`` (epoch seconds): list
        hits (``hits``) or pseudonymised passes; 0 without a ``transits`` table (a dry run of
        :meth:`vigil.plates.transits.TransitRecords.purge_all`, transit rows only)."""
        pg = self._PARAM != "?"
        has = (
            "SELECT to_regclass('transits') IS NOT NULL"
            if pg
            else ("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'transits'")
        )
        ((exists,),) = self._fetch(has, ())
        if not exists:
            return 0
        p = self._PARAM
        ((n,),) = self._fetch(
            f"SELECT COUNT(*) FROM transits WHERE pseudonymised = {p} AND ts < {p}",
            (0 if hits else 1, float(before_ts)),
        )
        return int(n)


def purge_filters(
    pg: bool, before_iso: str, exclude_types: Iterable[str] = (), only_types: Iterable[str] = ()
) -> tuple[tuple[str, tuple], tuple[str, tuple]]:
    """The ``WHERE`` clauses (and their parameters) of the retention of events: ``(events,
    event_conflicts)`` rows whose event ``time`` is before ``before_iso``, whose type is not
    in ``exclude_types`` and, when ``only_types`` is given, is one of them; ``pg``:
    PostgreSQL's dialect, else SQLite's.

    Times are compared as text: stored times are normalised UTC (``YYYY-MM-DDTHH:MM:SS.ffffffZ``,
    :func:`vigil.alerts.events.utc_iso`), so byte order is time order. In PostgreSQL the plain
    comparison (which the ``events_time`` index serves whatever the database's collation) is
    narrowed by a byte-order (``COLLATE "C"``) one, so a locale's ordering never widens a purge.
    A conflict copy is aged by the ``time`` inside its JSON (the table has no time column)."""
    types = tuple(str(t) for t in exclude_types)
    only = tuple(str(t) for t in only_types)
    before = str(before_iso)
    if pg:
        ev, evp = 'time < %s AND time COLLATE "C" < %s', (before, before)
        ct, ctp = "(json::jsonb ->> 'time') COLLATE \"C\" < %s", (before,)
        if types:
            ev, evp = ev + " AND NOT (type = ANY(%s))", evp + (list(types),)
            ct, ctp = ct + " AND NOT ((json::jsonb ->> 'type') = ANY(%s))", ctp + (list(types),)
        if only:
            ev, evp = ev + " AND type = ANY(%s)", evp + (list(only),)
            ct, ctp = ct + " AND (json::jsonb ->> 'type') = ANY(%s)", ctp + (list(only),)
        return (ev, evp), (ct, ctp)
    ev, ct = "time < ?", "json_extract(json, '$.time') < ?"
    if types:
        marks = ", ".join("?" * len(types))
        ev += f" AND type NOT IN ({marks})"
        ct += f" AND json_extract(json, '$.type') NOT IN ({marks})"
    if only:
        marks = ", ".join("?" * len(only))
        ev += f" AND type IN ({marks})"
        ct += f" AND json_extract(json, '$.type') IN ({marks})"
    return (ev, (before, *types, *only)), (ct, (before, *types, *only))


def purge_in_chunks(delete_chunk: Callable[[], int], chunk_rows: int = PURGE_CHUNK_ROWS) -> int:
    """Call ``delete_chunk()`` (one short transaction deleting at most ``chunk_rows`` rows; the
    number it deleted) until a chunk comes back short; the total. Pauses
    :data:`PURGE_CHUNK_PAUSE_S` seconds between chunks so that writers get the database."""
    total = 0
    while True:
        n = int(delete_chunk())
        total += n
        if n < chunk_rows:
            return total
        time.sleep(PURGE_CHUNK_PAUSE_S)
