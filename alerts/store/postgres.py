"""Aggregator-side event storage in PostgreSQL (a city deployment), selected by a DSN.

Same interface as :class:`~vigil.alerts.store.sqlite.EventStore` (``add_many``, ``add_many_seq``,
``count``, ``last_stream_seq``, ``read_after``, ``iter_events``, ``export_jsonl``,
``schema_version``, ``open_transits``, ``close``), same table shape::

    events (stream_seq bigint generated always as identity primary key, id uuid unique, camera,
            seq, type, time, severity, state, json, received_at)

A batch is one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT (id) DO NOTHING RETURNING``
in one transaction (one round trip), so a resent event is stored once.

``stream_seq`` comes from an identity sequence, so it may have gaps (a conflicting insert or
a rolled-back batch burns numbers); readers resume with ``stream_seq > N`` and never rely on
it being gapless. Several aggregators may write to one database at once (active-active): each
batch takes a transaction-level advisory lock (:data:`_INSERT_LOCK`) before it draws its
numbers and holds it until its commit, so batches commit one at a time in ``stream_seq``
order whichever aggregator wrote them. A reader that has seen ``stream_seq`` N therefore never
later finds a committed row below N, which replaying and following the store
(:class:`~vigil.alerts.aggregator.stream.OperatorStream`) rely on. The lock is held for one
``INSERT`` round trip per batch (batches group up to a thousand events), so it costs the
writers little; ids are unique across all of them (``ON CONFLICT (id) DO NOTHING``), so an event
resent to another aggregator is stored once.

Migrations: :data:`_MIGRATIONS` and the ``vigil_schema_version`` table, applied under a
transaction-level advisory lock; a database written by a newer build is refused.

The DSN given is kept (``dsn``) to open the plate transit store in the same database
(:meth:`PgEventStore.open_transits`); messages and logs show ``path``, the DSN without its
password (:func:`redact_dsn`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Iterable

import psycopg

from vigil.plates.transits import open_transit_store
from vigil.postgres import redact_dsn

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

__all__ = ["PgEventStore", "PG_SCHEMA_VERSION", "redact_dsn"]

log = logging.getLogger(__name__)


PG_SCHEMA_VERSION = 3
_MIGRATION_LOCK = 0x76696731  # "vig1"
_INSERT_LOCK = 0x76696732  # "vig2": held by one inserting transaction at a time

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE events (
            stream_seq  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id          uuid        NOT NULL UNIQUE,
            camera      text        NOT NULL,
            seq         bigint      NOT NULL,
            type        text        NOT NULL,
            time        text        NOT NULL,
            severity    text        NOT NULL,
            state       text        NOT NULL,
            json        text        NOT NULL,
            received_at text        NOT NULL
        )
        """,
        "CREATE INDEX events_camera_seq ON events (camera, seq)",
        "CREATE INDEX events_time ON events (time)",
    ),
    # an id already stored, resent with other content: kept aside for an administrator
    2: (
        """
        CREATE TABLE event_conflicts (
            id          uuid NOT NULL,
            digest      text NOT NULL,
            json        text NOT NULL,
            received_at text NOT NULL,
            PRIMARY KEY (id, digest)
        )
        """,
    ),
    # the alarm each event belongs to (as in the SQLite store's migration 3), back-filled
    3: (
        "ALTER TABLE events ADD COLUMN alarm_id text",
        # covering the console's grouped alarm reads (vigil.alerts.console.alarmdb)
        "CREATE INDEX events_alarm ON events (alarm_id, type, camera, state, severity, time, stream_seq)",
    ),
}

#: errors of the data of one event rather than of the database (see StoreError.data_error)
_DATA_ERRORS = (psycopg.DataError, psycopg.IntegrityError, OverflowError, ValueError)


class PgEventStore(EventReads):
    """The event store in PostgreSQL (reading is :class:`vigil.alerts.store.base.EventReads`)."""

    _PARAM = "%s"  # psycopg's parameter marker
    #: several aggregators may write to one database at once (active-active: module docstring)
    shared = True

    def __init__(self, dsn: str, *, readonly: bool = False) -> None:
        self.dsn = dsn
        self.path = redact_dsn(dsn)  # what messages show
        self.readonly = readonly
        self._lock = threading.Lock()
        try:
            self._db = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL {self.path}: {exc}") from None
        try:
            self._migrate()
        except psycopg.Error as exc:
            self._db.close()
            raise StoreError(f"cannot use PostgreSQL {self.path}: {exc}") from None
        except StoreError:
            self._db.close()
            raise

    def _reconnect_if_broken(self) -> None:
        """With the lock held: a connection the server dropped (PostgreSQL restarted, failed over,
        or an administrator ended the session) is replaced by a new one, so the aggregator
        recovers by itself: the write that met the broken connection failed and was not
        acknowledged (its publishers resend it); the next one goes through the new connection.
        :class:`StoreError` while the server cannot be reached (the next call tries again)."""
        if not (self._db.closed or self._db.broken):
            return
        try:
            self._db.close()
        except psycopg.Error:
            pass
        try:
            self._db = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise StoreError(f"cannot reconnect to PostgreSQL {self.path}: {exc}") from None
        log.warning("event database %s: connection lost; reconnected", self.path)

    # ------------------------------------------------------------------ schema
    def _version(self, cur) -> int:
        (exists,) = cur.execute("SELECT to_regclass('vigil_schema_version') IS NOT NULL").fetchone()
        if not exists:
            return 0
        (v,) = cur.execute("SELECT COALESCE(MAX(version), 0) FROM vigil_schema_version").fetchone()
        return int(v)

    def _migrate(self) -> None:
        with self._lock:
            version = self._version(self._db)
            if version > PG_SCHEMA_VERSION:
                raise StoreError(
                    f"event database {self.path} has schema {version}; this build reads up to "
                    f"{PG_SCHEMA_VERSION}: upgrade vigil"
                )
            if version == PG_SCHEMA_VERSION:
                return
            if self.readonly:
                raise StoreError(
                    f"{self.path} is not a vigil event database (schema {version}): open it once with the aggregator"
                )
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS vigil_schema_version ("
                    " version integer PRIMARY KEY, applied_at text NOT NULL)"
                )
                version = self._version(self._db)  # re-read under the lock
                for target in range(version + 1, PG_SCHEMA_VERSION + 1):
                    for stmt in _MIGRATIONS[target]:
                        self._db.execute(stmt)
                    if target == 3:
                        self._backfill_alarm_ids()
                    self._db.execute("INSERT INTO vigil_schema_version VALUES (%s, %s)", (target, utc_iso(time.time())))
                    log.info("event database %s migrated to schema %d", self.path, target)

    def _backfill_alarm_ids(self) -> None:
        """Migration 3: the ``alarm_id`` of the rows stored before the column (inside the
        migration's transaction)."""

        def update(rows: list[tuple]) -> None:
            with self._db.cursor() as cur:
                cur.executemany("UPDATE events SET alarm_id = %s WHERE stream_seq = %s", rows)

        n = backfill_alarm_ids(
            lambda after: self._db.execute(
                "SELECT stream_seq, type, camera, json FROM events WHERE stream_seq > %s"
                " ORDER BY stream_seq LIMIT 1000",
                (after,),
            ).fetchall(),
            update,
        )
        log.info("event database %s: alarm_id back-filled on %d event(s)", self.path, n)

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._version(self._db)

    # ------------------------------------------------------------------ writing
    def add(self, event: Event) -> bool:
        return self.add_many([event])[0]

    def add_many(self, events: Iterable[Event]) -> list[bool]:
        return [s is not None for s in self.add_many_seq(events)]

    def add_many_seq(
        self, events: Iterable[Event], texts: list[str] | None = None, conflicts: list[str] | None = None
    ) -> list[int | None]:
        """As :meth:`vigil.alerts.store.sqlite.EventStore.add_many_seq` (conflicts included)."""
        events = list(events)
        if self.readonly:
            raise StoreError(f"event database {self.path} is open read-only")
        if not events:
            return []
        received_at = utc_iso(time.time())
        first: dict[str, int] = {}  # id -> index of its first occurrence in this batch
        for i, ev in enumerate(events):
            first.setdefault(ev.id, i)
        uniq = [events[i] for i in sorted(first.values())]
        if texts is not None:
            by_id = {ev.id: texts[first[ev.id]] for ev in uniq}
        else:
            by_id = {ev.id: ev.to_json() for ev in uniq}
        cols = (
            [ev.id for ev in uniq],
            [ev.camera for ev in uniq],
            [ev.seq for ev in uniq],
            [ev.type for ev in uniq],
            [ev.time for ev in uniq],
            [ev.severity for ev in uniq],
            [ev.state for ev in uniq],
            [by_id[ev.id] for ev in uniq],
            [a if isinstance(a := ev.payload.get("alarm_id"), str) else None for ev in uniq],
        )
        with self._lock:
            self._reconnect_if_broken()
            try:
                with self._db.transaction():
                    # commit order = stream_seq order across aggregators (module docstring)
                    self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_INSERT_LOCK,))
                    rows = self._db.execute(
                        "INSERT INTO events (id, camera, seq, type, time, severity, state, json, received_at, alarm_id)"
                        " SELECT u.id, u.camera, u.seq, u.type, u.time, u.severity, u.state, u.json, %s, u.alarm_id"
                        " FROM unnest(%s::uuid[], %s::text[], %s::bigint[], %s::text[], %s::text[],"
                        "             %s::text[], %s::text[], %s::text[], %s::text[])"
                        "      WITH ORDINALITY AS u(id, camera, seq, type, time, severity, state, json, alarm_id, n)"
                        " ORDER BY u.n"
                        " ON CONFLICT (id) DO NOTHING RETURNING id::text, stream_seq",
                        (received_at, *cols),
                    ).fetchall()
                    new = {i: int(s) for i, s in rows}
                    old = [ev.id for ev in uniq if ev.id not in new]
                    clashes: list[str] = []
                    if old:
                        stored = dict(
                            self._db.execute(
                                "SELECT id::text, json FROM events WHERE id = ANY(%s::uuid[])", (old,)
                            ).fetchall()
                        )
                        clashes = [i for i in old if i in stored and stored[i] != by_id[i]]
                        with self._db.cursor() as cur:
                            cur.executemany(
                                "INSERT INTO event_conflicts (id, digest, json, received_at) VALUES (%s, %s, %s, %s)"
                                " ON CONFLICT DO NOTHING",
                                [(i, content_digest(by_id[i]), by_id[i], received_at) for i in clashes],
                            )
            except _DATA_ERRORS as exc:
                raise StoreError(f"event database {self.path} refused the data: {exc}", data_error=True) from None
            except psycopg.Error as exc:
                raise StoreError(f"cannot write to event database {self.path}: {exc}") from None
        if conflicts is not None:
            conflicts.extend(clashes)
        return [new.get(ev.id) if first[ev.id] == i else None for i, ev in enumerate(events)]

    # ------------------------------------------------------------------ reading
    def _fetch(self, sql: str, params: tuple) -> list[tuple]:
        with self._lock:
            self._reconnect_if_broken()
            try:
                return self._db.execute(sql, params).fetchall()
            except psycopg.Error as exc:
                raise StoreError(f"cannot read event database {self.path}: {exc}") from None

    # ------------------------------------------------------------------ plate transits
    def open_transits(self, **options: Any):
        """The plate transit store in this PostgreSQL database (:func:`vigil.plates.transits.open_transit_store`
        with the DSN as given, password included; ``options`` as for the SQLite store)."""
        return open_transit_store(dsn=self.dsn, **options)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "PgEventStore":
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
        """As :meth:`vigil.alerts.store.sqlite.EventStore.purge_events`. Each chunk locks its rows
        ``FOR UPDATE SKIP LOCKED``: several aggregators purging one database at once never wait
        for nor deadlock on each other, and each row is deleted (and counted) by one of them."""
        if self.readonly:
            raise StoreError(f"event database {self.path} is open read-only")
        (ev, evp), (ct, ctp) = purge_filters(True, before_iso, exclude_types, only_types)
        events_sql = (
            "DELETE FROM events WHERE stream_seq IN "
            f"(SELECT stream_seq FROM events WHERE {ev} LIMIT %s FOR UPDATE SKIP LOCKED)"
        )
        conflicts_sql = (
            "DELETE FROM event_conflicts WHERE (id, digest) IN "
            f"(SELECT id, digest FROM event_conflicts WHERE {ct} LIMIT %s FOR UPDATE SKIP LOCKED)"
        )
        n = purge_in_chunks(lambda: self._purge_chunk(events_sql, (*evp, chunk_rows)), chunk_rows)
        return n + purge_in_chunks(lambda: self._purge_chunk(conflicts_sql, (*ctp, chunk_rows)), chunk_rows)

    def _purge_chunk(self, sql: str, params: tuple) -> int:
        with self._lock:
            self._reconnect_if_broken()
            try:
                with self._db.transaction():
                    return self._db.execute(sql, params).rowcount
            except psycopg.Error as exc:
                raise StoreError(f"cannot purge event database {self.path}: {exc}") from None
