"""Aggregator-side event storage: SQLite in WAL mode.

One row per event id (a ``UNIQUE`` id, looked up before inserting, so a resent event is
stored once), plus a global ``stream_seq`` assigned by the store: the aggregator's order of arrival,
which readers use to resume (``iter_events(since_stream_seq=...)``).

Why ``stream_seq`` is the primary key and ``id`` is ``UNIQUE`` (not the other way round):
SQLite only auto-increments an ``INTEGER PRIMARY KEY``. ``UNIQUE`` gives the same
idempotence on the id. The same shape maps onto PostgreSQL as ``stream_seq bigint generated
always as identity primary key, id uuid unique`` with ``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING stream_seq``.

Schema changes go through :data:`_MIGRATIONS` and the ``schema_version`` table; a database
written by a newer build is refused rather than misread.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator

from .events import Event, EventError, utc_iso

__all__ = ["EventStore", "StoreError", "StoredEvent", "STORE_SCHEMA_VERSION"]

log = logging.getLogger(__name__)

STORE_SCHEMA_VERSION = 1

# version -> statements bringing the database from version-1 to version.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE events (
            stream_seq  INTEGER PRIMARY KEY AUTOINCREMENT,
            id          TEXT    NOT NULL UNIQUE,
            camera      TEXT    NOT NULL,
            seq         INTEGER NOT NULL,
            type        TEXT    NOT NULL,
            time        TEXT    NOT NULL,
            severity    TEXT    NOT NULL,
            state       TEXT    NOT NULL,
            json        TEXT    NOT NULL,
            received_at TEXT    NOT NULL
        )
        """,
        "CREATE INDEX events_camera_seq ON events (camera, seq)",
        "CREATE INDEX events_time ON events (time)",
    ),
}


class StoreError(RuntimeError):
    """The database cannot be opened, read or written (message says which and why)."""


@dataclass(frozen=True)
class StoredEvent:
    """An event as the store holds it: its aggregator order and arrival time."""

    stream_seq: int
    received_at: str
    event: Event


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


class EventStore(EventReads):
    """SQLite event store. Thread-safe (one connection behind a lock).

    ``readonly=True`` opens an existing database for reading only (for ``vigil events``):
    a missing file is an error instead of a new empty database.
    ``synchronous`` is SQLite's ``PRAGMA synchronous``; ``FULL`` (default) makes a committed
    event survive power loss, which is what an acknowledgement promises.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
        try:
            if readonly:
                if not self.path.is_file():
                    raise StoreError(f"no event database at {self.path}")
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            else:
                if self.path.parent and not self.path.parent.exists():
                    raise StoreError(f"directory {self.path.parent} does not exist")
                self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open event database {self.path}: {exc}") from None
        try:
            self._db.execute("PRAGMA busy_timeout = 5000")
            if not readonly:
                mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning("event database %s: journal_mode is %s, not WAL", self.path, mode)
                self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            # Keep up to 64 MiB of pages in memory (SQLite's default is 2 MiB): duplicate checks
            # and the UNIQUE id index stay cached (Vigil's UUIDv7 ids append to that index, but
            # other publishers may send random UUID4 ids, which land all over it).
            self._db.execute("PRAGMA cache_size = -65536")
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"cannot use event database {self.path}: {exc}") from None
        except StoreError:
            self._db.close()
            raise

    # ------------------------------------------------------------------ schema
    def _schema_version(self) -> int:
        row = self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if row is None:
            return 0
        (version,) = self._db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        return int(version)

    def _migrate(self) -> None:
        version = self._schema_version()
        if version > STORE_SCHEMA_VERSION:
            raise StoreError(
                f"event database {self.path} has schema {version}; this build reads up to "
                f"{STORE_SCHEMA_VERSION}: upgrade vigil"
            )
        if version == STORE_SCHEMA_VERSION:
            return
        if self.readonly:
            if version == 0:
                raise StoreError(f"{self.path} is not a vigil event database (no schema_version table)")
            raise StoreError(
                f"event database {self.path} has schema {version} and needs migrating to "
                f"{STORE_SCHEMA_VERSION}: open it once with the aggregator"
            )
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version ( version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
                )
                version = self._schema_version()  # re-read inside the write lock
                for target in range(version + 1, STORE_SCHEMA_VERSION + 1):
                    for stmt in _MIGRATIONS[target]:
                        self._db.execute(stmt)
                    self._db.execute(
                        "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                        (target, utc_iso(time.time())),
                    )
                    log.info("event database %s migrated to schema %d", self.path, target)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._schema_version()

    # ------------------------------------------------------------------ writing
    def add(self, event: Event) -> bool:
        """Store ``event``; ``True`` if new, ``False`` if its id was already stored."""
        return self.add_many([event])[0]

    def add_many(self, events: Iterable[Event]) -> list[bool]:
        """Store several events in one transaction; per event, whether it was new.

        Either all are committed or none (on error :class:`StoreError` is raised and the
        caller must not acknowledge any of them).
        """
        return [s is not None for s in self.add_many_seq(events)]

    def add_many_seq(self, events: Iterable[Event], texts: list[str] | None = None) -> list[int | None]:
        """Like :meth:`add_many`; per event, its new ``stream_seq`` or ``None`` (a duplicate).

        ``texts``: the events' :meth:`Event.to_json`, when the caller already has them.
        One lookup, one multi-row insert and one read-back per batch (not per event).
        """
        events = list(events)
        if self.readonly:
            raise StoreError(f"event database {self.path} is open read-only")
        if not events:
            return []
        if texts is None:
            texts = [ev.to_json() for ev in events]
        received_at = utc_iso(time.time())
        first: dict[str, int] = {}
        for i, ev in enumerate(events):
            first.setdefault(ev.id, i)
        ids = list(first)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    stored: dict[str, str] = {}
                    for k in range(0, len(ids), 500):
                        chunk = ids[k : k + 500]
                        stored.update(
                            self._db.execute(
                                f"SELECT id, json FROM events WHERE id IN ({','.join('?' * len(chunk))})", chunk
                            ).fetchall()
                        )
                    new_idx = [i for i in first.values() if events[i].id not in stored]
                    seqs: dict[str, int] = {}
                    if new_idx:
                        # Looked up first (inside the write transaction, so no race) rather than
                        # INSERT OR IGNORE: an ignored insert must not burn a stream_seq.
                        self._db.executemany(
                            "INSERT INTO events (id, camera, seq, type, time, severity, state, json, received_at)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [
                                (
                                    events[i].id,
                                    events[i].camera,
                                    events[i].seq,
                                    events[i].type,
                                    events[i].time,
                                    events[i].severity,
                                    events[i].state,
                                    texts[i],
                                    received_at,
                                )
                                for i in new_idx
                            ],
                        )
                        # stream_seq is the rowid (AUTOINCREMENT): the rows of one statement in one
                        # write transaction take consecutive values, ending at last_insert_rowid().
                        (last,) = self._db.execute("SELECT last_insert_rowid()").fetchone()
                        first_seq = int(last) - len(new_idx) + 1
                        seqs = {events[i].id: first_seq + k for k, i in enumerate(new_idx)}
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to event database {self.path}: {exc}") from None
        for event_id, text in stored.items():
            if text != texts[first[event_id]]:
                ev = events[first[event_id]]
                log.warning(
                    "event id %s resent with different content (camera %s seq %d); keeping the first",
                    ev.id,
                    ev.camera,
                    ev.seq,
                )
        return [seqs.get(ev.id) if first[ev.id] == i else None for i, ev in enumerate(events)]

    def _fetch(self, sql: str, params: tuple) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read event database {self.path}: {exc}") from None

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
