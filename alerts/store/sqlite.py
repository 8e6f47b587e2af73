"""Aggregator-side event storage: SQLite in WAL mode.

One row per event id (a ``UNIQUE`` id, looked up before inserting, so a resent event is
stored once), plus a global ``stream_seq`` assigned by the store: the aggregator's order of arrival,
which readers use to resume (``iter_events(since_stream_seq=...)``).

Why ``stream_seq`` is the primary key and ``id`` is ``UNIQUE`` (not the other way round):
SQLite only auto-increments an ``INTEGER PRIMARY KEY``. ``UNIQUE`` gives the same
idempotence on the id. The same shape maps onto PostgreSQL as ``stream_seq bigint generated
always as identity primary key, id uuid unique`` with ``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING stream_seq``
(:mod:`vigil.alerts.store.postgres`).

Schema changes go through :data:`_MIGRATIONS` and the ``schema_version`` table (one row per
applied version, with the time it was applied); a database written by a newer build is
refused rather than misread. The plate transits live in the same file
(:meth:`EventStore.open_transits`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from vigil.plates.transits import open_transit_store
from vigil.sqlite import SYNCHRONOUS_LEVELS, connect, transaction
from vigil.sqlite import schema_version as read_schema_version

from ..events import Event, utc_iso
from .base import (
    PURGE_CHUNK_ROWS,
    EventReads,
    StoreError,
    backfill_alarm_ids,
    content_digest,
    purge_filters,
    purge_in_chunks,
)

__all__ = ["EventStore", "STORE_SCHEMA_VERSION"]


log = logging.getLogger(__name__)

STORE_SCHEMA_VERSION = 3

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
    # an id already stored, resent with other content: kept aside for an administrator
    2: (
        """
        CREATE TABLE event_conflicts (
            id          TEXT NOT NULL,
            digest      TEXT NOT NULL,
            json        TEXT NOT NULL,
            received_at TEXT NOT NULL,
            PRIMARY KEY (id, digest)
        )
        """,
    ),
    # the alarm each event belongs to (the payload's alarm_id; NULL: not an alarm), for the
    # console's one row per alarm; existing rows are back-filled from their JSON (_migrate)
    3: (
        "ALTER TABLE events ADD COLUMN alarm_id TEXT",
        # covering the console's grouped alarm reads (vigil.alerts.console.alarmdb)
        "CREATE INDEX events_alarm ON events (alarm_id, type, camera, state, severity, time, stream_seq)",
    ),
}

#: errors of the data of one event rather than of the database (see StoreError.data_error)
_DATA_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, OverflowError, ValueError)

_VERSION_TABLE = "schema_version"


class EventStore(EventReads):
    """SQLite event store. Thread-safe (one connection behind a lock).

    ``readonly=True`` opens an existing database for reading only (for ``vigil events``):
    a missing file is an error instead of a new empty database.
    ``synchronous`` is SQLite's ``PRAGMA synchronous``; ``FULL`` (default) makes a committed
    event survive power loss, which is what an acknowledgement promises.

    ``single_writer=True`` (the aggregator's store): hold an exclusive lock on the file
    ``<path>.writer-lock`` while open, so a second aggregator on the same file is refused. One
    SQLite file has one aggregator: each aggregator streams to its operators what it stored
    itself, so a second writer's events would never reach the first one's operators (several
    aggregators share a PostgreSQL database instead: :mod:`.postgres`). Readers (the console,
    ``vigil events``) take no lock.
    """

    #: other aggregators may write to this store at the same time (they may not: see single_writer)
    shared = False

    def __init__(
        self, path: str | Path, *, readonly: bool = False, synchronous: str = "FULL", single_writer: bool = False
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        self._writer_fd: int | None = None
        if synchronous.upper() not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
        if single_writer and not readonly:
            self._writer_fd = _writer_lock(self.path)
        # WAL is switched on here, not by connect(): a file system without WAL is logged, not refused
        self._db = connect(
            self.path,
            what="event database",
            error=StoreError,
            readonly=readonly,
            wal=False,
            synchronous=None,
            create_parent=False,
        )
        try:
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
            self._release_writer_lock()
            raise StoreError(f"cannot use event database {self.path}: {exc}") from None
        except StoreError:
            self._db.close()
            self._release_writer_lock()
            raise

    # ------------------------------------------------------------------ schema
    def _migrate(self) -> None:
        version = read_schema_version(self._db, _VERSION_TABLE)
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
        # Not vigil.sqlite.migrate(): this version table keeps one row per applied version with
        # its time (existing files have that layout), where migrate() keeps a single row.
        with self._lock, transaction(self._db):
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {_VERSION_TABLE} ( version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            version = read_schema_version(self._db, _VERSION_TABLE)  # re-read inside the write lock
            for target in range(version + 1, STORE_SCHEMA_VERSION + 1):
                for stmt in _MIGRATIONS[target]:
                    self._db.execute(stmt)
                if target == 3:
                    n = backfill_alarm_ids(
                        lambda after: self._db.execute(
                            "SELECT stream_seq, type, camera, json FROM events WHERE stream_seq > ?"
                            " ORDER BY stream_seq LIMIT 1000",
                            (after,),
                        ).fetchall(),
                        lambda rows: self._db.executemany("UPDATE events SET alarm_id = ? WHERE stream_seq = ?", rows),
                    )
                    log.info("event database %s: alarm_id back-filled on %d event(s)", self.path, n)
                self._db.execute(
                    f"INSERT INTO {_VERSION_TABLE} (version, applied_at) VALUES (?, ?)",
                    (target, utc_iso(time.time())),
                )
                log.info("event database %s migrated to schema %d", self.path, target)

    @property
    def schema_version(self) -> int:
        with self._lock:
            return read_schema_version(self._db, _VERSION_TABLE)

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

    def add_many_seq(
        self, events: Iterable[Event], texts: list[str] | None = None, conflicts: list[str] | None = None
    ) -> list[int | None]:
        """Like :meth:`add_many`; per event, its new ``stream_seq`` or ``None`` (a duplicate).

        ``texts``: the events' :meth:`Event.to_json`, when the caller already has them.
        One lookup, one multi-row insert and one read-back per batch (not per event).
        A duplicate whose content differs from the stored one is a conflict: the stored event is
        kept, the other copy goes to ``event_conflicts`` (once per content, in the same
        transaction) and its id is appended to ``conflicts``.
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
                with transaction(self._db):
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
                            "INSERT INTO events"
                            " (id, camera, seq, type, time, severity, state, json, received_at, alarm_id)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                                    _alarm_id(events[i]),
                                )
                                for i in new_idx
                            ],
                        )
                        # stream_seq is the rowid (AUTOINCREMENT): the rows of one statement in one
                        # write transaction take consecutive values, ending at last_insert_rowid().
                        (last,) = self._db.execute("SELECT last_insert_rowid()").fetchone()
                        first_seq = int(last) - len(new_idx) + 1
                        seqs = {events[i].id: first_seq + k for k, i in enumerate(new_idx)}
                    clashes = [(i, texts[first[i]]) for i, text in stored.items() if text != texts[first[i]]]
                    if clashes:
                        self._db.executemany(
                            "INSERT OR IGNORE INTO event_conflicts (id, digest, json, received_at) VALUES (?, ?, ?, ?)",
                            [(i, content_digest(text), text, received_at) for i, text in clashes],
                        )
            except _DATA_ERRORS as exc:
                raise StoreError(f"event database {self.path} refused the data: {exc}", data_error=True) from None
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to event database {self.path}: {exc}") from None
        if conflicts is not None:
            conflicts.extend(i for i, _ in clashes)
        return [seqs.get(ev.id) if first[ev.id] == i else None for i, ev in enumerate(events)]

    def _fetch(self, sql: str, params: tuple) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read event database {self.path}: {exc}") from None

    # ------------------------------------------------------------------ plate transits
    def open_transits(self, **options: Any):
        """The plate transit store in this database's file (:func:`vigil.plates.transits.open_transit_store`;
        ``options``: its ``key``, ``key_file``, ``retention_days``, ``hit_retention_days``)."""
        return open_transit_store(sqlite_path=self.path, **options)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._release_writer_lock()

    def _release_writer_lock(self) -> None:
        if self._writer_fd is not None:
            os.close(self._writer_fd)  # closing the descriptor releases the lock
            self._writer_fd = None

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ retention
    def purge_events(
        self,
        before_iso: str,
        *,
        exclude_types: tuple[str, ...] = (),
        only_types: tuple[str, ...] = (),
        chunk_rows: int = PURGE_CHUNK_ROWS,
    ) -> int:
        """Delete the events whose ``time`` (the observation's UTC time, normalised ISO text) is
        before ``before_iso``, except those of ``exclude_types`` (and, given ``only_types``, only
        those of these types), and their ``event_conflicts``
        copies; returns the rows deleted (events and copies). In transactions of at most
        ``chunk_rows`` rows, the store's lock released between them, so the aggregator's writer
        is never held for long. Idempotent: a second run deletes nothing more."""
        if self.readonly:
            raise StoreError(f"event database {self.path} is open read-only")
        (ev, evp), (ct, ctp) = purge_filters(False, before_iso, exclude_types, only_types)
        events_sql = f"DELETE FROM events WHERE stream_seq IN (SELECT stream_seq FROM events WHERE {ev} LIMIT ?)"
        conflicts_sql = (
            "DELETE FROM event_conflicts WHERE (id, digest) IN "
            f"(SELECT id, digest FROM event_conflicts WHERE {ct} LIMIT ?)"
        )
        n = purge_in_chunks(lambda: self._purge_chunk(events_sql, (*evp, chunk_rows)), chunk_rows)
        return n + purge_in_chunks(lambda: self._purge_chunk(conflicts_sql, (*ctp, chunk_rows)), chunk_rows)

    def _purge_chunk(self, sql: str, params: tuple) -> int:
        with self._lock:
            try:
                with transaction(self._db):
                    return self._db.execute(sql, params).rowcount
            except sqlite3.Error as exc:
                raise StoreError(f"cannot purge event database {self.path}: {exc}") from None


def _alarm_id(event: Event) -> str | None:
    """The ``alarm_id`` column of a new event (``None`` for a non-alarm type)."""
    found = event.payload.get("alarm_id")
    return found if isinstance(found, str) else None


def _writer_lock(path: Path) -> int:
    """Take the exclusive lock ``<path>.writer-lock`` (``flock``, released when the process
    ends, however it ends); its descriptor. :class:`StoreError` if another process holds it."""
    lock_path = path.with_name(path.name + ".writer-lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot create the writer lock {lock_path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreError(
            f"another aggregator is writing to {path} (it holds {lock_path}); one SQLite file has one "
            "aggregator: run several aggregators on one PostgreSQL database instead (--dsn)"
        ) from None
    return fd
