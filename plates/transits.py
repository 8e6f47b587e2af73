"""Plate transit records at the aggregator, in SQLite or PostgreSQL: :func:`open_transit_store`.

One row per vehicle pass (gate or traffic camera): time, camera, plate, confidence, direction,
vehicle class, list hits, evidence id. The table lives beside the events: in the aggregator's
SQLite file (:class:`TransitStore`, its own table and connection) or in its PostgreSQL
database (:class:`PgTransitStore`). Both stores share every rule below (:class:`TransitRecords`);
only the connection and the SQL dialect differ.

Privacy, failing closed (the key, the pseudonym and the plate-free event: :mod:`.pseudonym`):

- A transit that hits no watch list is stored **pseudonymised**: the plate column is empty and
  ``plate_hash`` holds :func:`~.pseudonym.pseudonym` (``HMAC-SHA256(key, plate)``). A search by
  plate hashes the query with the same key, so an authorised lookup still finds pseudonymised
  passes, while the table alone reveals no plate. Hits keep the plate in clear (and their
  evidence id).
- The key is read on first use (:func:`~.pseudonym.load_key`): without a usable one (a
  :class:`~.pseudonym.PlateKeyError`, which is a :class:`TransitError`) nothing is stored or
  searched.
- :meth:`TransitRecords.purge` deletes pseudonymised transits older than the retention
  (``retention_days``, default 7; hits only when ``hit_retention_days`` is set) **and every
  copy of them in the events table** of the same database: their ``plate_transit`` /
  ``plate_hit`` events (found by ``transit_id`` or event id), plate events of the same age
  whose transit row is missing, and the ``event_conflicts`` copies of deleted events. Events
  are deleted rather than stripped: the retention is the pass's, and a stripped event would
  still tell when and where the vehicle passed.

One key per database: the first use of a key records a check value of it
(``HMAC-SHA256(key, "vigil transit key check")``, which reveals nothing of the key) in
``transit_key_check``; a store opened with another key refuses to store or search
(:class:`~.pseudonym.PlateKeyError`) instead of writing pseudonyms no search would find and
answering "not found" for plates that are stored. Several aggregators on one database must
share the key file.

Schema versions: SQLite ``transits_version`` (a file from before the version table holds the
same ``transits`` table and is adopted as version 1), PostgreSQL ``vigil_transits_version``
(migrated under a transaction-level advisory lock). A database written by a newer build is refused.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Self

import psycopg

from vigil.postgres import redact_dsn
from vigil.sqlite import connect, migrate, transaction

from .grammar import clean
from .pseudonym import PlateKeyError, TransitError, key_path, load_key, pseudonym

log = logging.getLogger(__name__)

__all__ = [
    "open_transit_store",
    "TransitRecords",
    "TransitStore",
    "PgTransitStore",
    "TransitError",  # defined in .pseudonym (the base of PlateKeyError); raised by the stores
    "Purged",
    "transit_from_event",
    "TRANSIT_EVENT_TYPES",
    "EXPORT_FIELDS",
    "TRANSITS_SCHEMA_VERSION",
]

TRANSIT_EVENT_TYPES = ("plate_transit", "plate_hit")
EXPORT_FIELDS = [
    "id",
    "time",
    "camera",
    "plate",
    "plate_hash",
    "pseudonymised",
    "confidence",
    "direction",
    "vehicle_class",
    "hits",
    "evidence_id",
    "event_id",
    "kind",
    "country",
]
TRANSITS_SCHEMA_VERSION = 2

_COLS = ["id", "ts", *EXPORT_FIELDS[1:]]  # the table's columns: the export's, plus the sort key ts

_SQLITE_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE IF NOT EXISTS transits (
            id TEXT PRIMARY KEY,
            ts REAL NOT NULL,
            time TEXT NOT NULL,
            camera TEXT NOT NULL,
            plate TEXT,
            plate_hash TEXT NOT NULL,
            pseudonymised INTEGER NOT NULL,
            confidence REAL,
            direction TEXT,
            vehicle_class TEXT,
            hits TEXT NOT NULL DEFAULT '[]',
            evidence_id TEXT,
            event_id TEXT,
            kind TEXT,
            country TEXT
        )
        """,
        "CREATE INDEX IF NOT EXISTS transits_hash_ts ON transits (plate_hash, ts)",
        "CREATE INDEX IF NOT EXISTS transits_ts ON transits (ts)",
    ),
    # the check value of the key the transits are pseudonymised with (module docstring)
    2: (
        "CREATE TABLE IF NOT EXISTS transit_key_check"
        " (id integer PRIMARY KEY, digest text NOT NULL, created_at text NOT NULL)",
    ),
}

_PG_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE IF NOT EXISTS transits (
            id            text             PRIMARY KEY,
            ts            double precision NOT NULL,
            time          text             NOT NULL,
            camera        text             NOT NULL,
            plate         text,
            plate_hash    text             NOT NULL,
            pseudonymised integer          NOT NULL,
            confidence    double precision,
            direction     text,
            vehicle_class text,
            hits          text             NOT NULL DEFAULT '[]',
            evidence_id   text,
            event_id      text,
            kind          text,
            country       text
        )
        """,
        "CREATE INDEX IF NOT EXISTS transits_hash_ts ON transits (plate_hash, ts)",
        "CREATE INDEX IF NOT EXISTS transits_ts ON transits (ts)",
    ),
    # the check value of the key the transits are pseudonymised with (module docstring)
    2: (
        "CREATE TABLE IF NOT EXISTS transit_key_check"
        " (id integer PRIMARY KEY, digest text NOT NULL, created_at text NOT NULL)",
    ),
}
_PG_MIGRATION_LOCK = 0x76697431  # "vit1": transit migrations, one process at a time


# ---------------------------------------------------------------------------------- records
def _to_ts(value: Any) -> float:
    """Epoch seconds from epoch seconds, a datetime (naive = UTC) or ISO 8601 text; None: now."""
    if value is None:
        return time.time()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo else value.replace(tzinfo=timezone.utc).timestamp()
    text = str(value).strip()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TransitError(f"bad time {value!r} (ISO 8601 or epoch seconds)") from None
    return dt.timestamp() if dt.tzinfo else dt.replace(tzinfo=timezone.utc).timestamp()


def _iso(ts: float) -> str:
    """UTC ISO 8601 with milliseconds and ``Z`` (the events' time format)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _iso_us(ts: float) -> str:
    """UTC ISO 8601 with microseconds and ``Z``: the stored events' ``time`` (compared as text)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Purged:
    """What :meth:`TransitRecords.purge_all` deleted: transit rows, and event copies (rows of
    ``events`` and ``event_conflicts``)."""

    transits: int
    events: int


def transit_from_event(event: Any) -> dict:
    """A transit record from a ``plate_transit`` / ``plate_hit`` event: a dict with the event's
    keys, or any object with ``id``, ``camera``, ``time`` (ISO 8601 or epoch seconds) and
    ``payload`` attributes (the alerts' ``Event`` is one; this module does not import it)."""
    if isinstance(event, Mapping):
        get = event.get
    else:

        def get(name: str) -> Any:
            return getattr(event, name, None)

    p = dict(get("payload") or {})
    return {
        "id": p.get("transit_id") or get("id"),
        "event_id": get("id"),
        "time": get("time"),
        "camera": get("camera"),
        "plate": p.get("plate"),
        "plate_hash": p.get("plate_hash"),
        "confidence": p.get("confidence"),
        "direction": p.get("direction"),
        "vehicle_class": p.get("vehicle_class"),
        "hits": p.get("hits") or [],
        "evidence_id": p.get("evidence_id"),
        "kind": p.get("kind"),
        "country": p.get("country"),
    }


def _num(v) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------- the stores
class TransitRecords:
    """What both transit stores do; a subclass opens ``self._db`` (a DB-API connection in
    autocommit mode whose ``execute`` returns a cursor) and sets the dialect below. Thread-safe."""

    _P = "?"  #: parameter marker
    _INSERT = "INSERT OR IGNORE INTO transits ({cols}) VALUES ({marks})"  #: an existing id is skipped
    _ORDER = "ts, id"  #: oldest first, ties by id (byte order)
    #: in an events-table row (``{t}``: the table), the JSON's payload transit_id, its number of
    #: list hits, its type and time; the row id as text (see :meth:`purge_all`)
    _J_TRANSIT = "json_extract({t}.json, '$.payload.transit_id')"
    _J_HITS = "COALESCE(json_array_length({t}.json, '$.payload.hits'), 0)"
    _J_TYPE = "json_extract({t}.json, '$.type')"
    _J_TIME = "json_extract({t}.json, '$.time')"
    _ID_TEXT = "{t}.id"
    _HAS_TABLE = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
    _BYTES = ""  #: how to compare ISO times as text byte by byte (SQLite's default)
    path: Any  #: what messages show: the file, or the DSN without its password

    def __init__(
        self,
        *,
        key: bytes | str | None = None,
        key_file: str | Path | None = None,
        retention_days: float = 7.0,
        hit_retention_days: float | None = None,
    ) -> None:
        self._key_arg, self._key_file = key, key_file
        self._key: bytes | None = None
        self.retention_days = float(retention_days)
        self.hit_retention_days = hit_retention_days
        self._lock = threading.Lock()
        self._db: Any = None

    @property
    def key(self) -> bytes:
        """The pseudonymisation key, read on first use and checked against the one this
        database's transits were made with (:class:`~.pseudonym.PlateKeyError` if another)."""
        if self._key is None:
            key = load_key(self._key_arg, self._key_file)
            self._check_key(key)
            self._key = key
        return self._key

    def _check_key(self, key: bytes) -> None:
        digest = hmac.new(key, b"vigil transit key check", hashlib.sha256).hexdigest()
        p = self._P
        with self._lock:
            self._db.execute(
                f"INSERT INTO transit_key_check (id, digest, created_at) VALUES (1, {p}, {p}) ON CONFLICT DO NOTHING",
                (digest, _iso(time.time())),
            )
            ((stored,),) = self._db.execute("SELECT digest FROM transit_key_check WHERE id = 1").fetchall()
        if not hmac.compare_digest(str(stored), digest):
            where = f"the key file {key_path(self._key_file)}" if self._key_arg is None else "the key given"
            raise PlateKeyError(
                f"{where} is not the key the transits in {self.path} were pseudonymised with: nothing is stored "
                "or searched with it (searches would answer 'not found' for stored plates). Every aggregator and "
                "`vigil transits` on this database must use the same key file"
            )

    # ------------------------------------------------------------------ write
    def add(self, transit: dict) -> str | None:
        """Store one transit; returns its id, or None when the id is already stored."""
        plate = clean(transit.get("plate") or "")
        given_hash = transit.get("plate_hash")
        if not plate and not given_hash:
            raise TransitError("transit without plate or plate_hash")
        hits = list(transit.get("hits") or [])
        camera = str(transit.get("camera") or "").strip()
        if not camera:
            raise TransitError("transit without camera")
        ts = _to_ts(transit.get("time"))
        tid = str(transit.get("id") or uuid.uuid4())
        plate_hash = pseudonym(plate, self.key) if plate else str(given_hash)
        pseudonymised = not hits
        row = (
            tid,
            ts,
            _iso(ts),
            camera,
            None if pseudonymised else plate,
            plate_hash,
            int(pseudonymised),
            _num(transit.get("confidence")),
            transit.get("direction"),
            transit.get("vehicle_class"),
            json.dumps(hits, separators=(",", ":")),
            None if pseudonymised else transit.get("evidence_id"),
            transit.get("event_id"),
            transit.get("kind"),
            transit.get("country"),
        )
        sql = self._INSERT.format(cols=", ".join(_COLS), marks=", ".join([self._P] * len(_COLS)))
        with self._lock:
            cur = self._db.execute(sql, row)
        return tid if cur.rowcount else None

    def add_event(self, event: Any) -> str | None:
        """Store the transit of a ``plate_transit`` / ``plate_hit`` event (see :func:`transit_from_event`)."""
        return self.add(transit_from_event(event))

    # ------------------------------------------------------------------ read
    def _rows(self, where: str, params: tuple) -> list[dict]:
        with self._lock:
            cur = self._db.execute(f"SELECT {', '.join(_COLS)} FROM transits {where} ORDER BY {self._ORDER}", params)
            rows = cur.fetchall()
        out = []
        for r in rows:
            d = dict(zip(_COLS, r))
            d.pop("ts")
            d["pseudonymised"] = bool(d["pseudonymised"])
            d["hits"] = json.loads(d["hits"] or "[]")
            out.append(d)
        return out

    def search_plate(self, plate: str, since=None, until=None) -> list[dict]:
        """Transits of ``plate`` (any spacing/case), oldest first; ``since``/``until``: ISO time or epoch."""
        text = clean(plate)
        if not text:
            return []
        p = self._P
        return self._rows_in_window(
            f"WHERE (plate_hash = {p} OR plate = {p})", [pseudonym(text, self.key), text], since, until
        )

    def all(self, since=None, until=None) -> list[dict]:
        return self._rows_in_window("WHERE 1=1", [], since, until)

    def _rows_in_window(self, where: str, params: list, since, until) -> list[dict]:
        """:meth:`_rows` for ``where`` narrowed to ``since <= ts <= until`` (either may be None)."""
        if since is not None:
            where += f" AND ts >= {self._P}"
            params.append(_to_ts(since))
        if until is not None:
            where += f" AND ts <= {self._P}"
            params.append(_to_ts(until))
        return self._rows(where, tuple(params))

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM transits").fetchone()[0])

    def export(self, fh: IO[str], format: str = "csv", since=None, until=None, plate: str | None = None) -> int:
        """Write transits as CSV (header + one row each) or JSON (an array); returns the count."""
        rows = self.search_plate(plate, since, until) if plate else self.all(since, until)
        if format == "csv":
            w = csv.DictWriter(fh, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow(
                    {
                        **r,
                        "hits": ";".join(h.get("list", "") for h in r["hits"]),
                        "plate": r["plate"] or "",
                        "pseudonymised": int(r["pseudonymised"]),
                    }
                )
        elif format == "json":
            json.dump(rows, fh, indent=1)
            fh.write("\n")
        else:
            raise ValueError(f"export format must be csv or json, got {format!r}")
        return len(rows)

    # ------------------------------------------------------------------ retention
    def purge(self, now: float | None = None) -> int:
        """Delete pseudonymised transits older than the retention (and hits older than
        ``hit_retention_days`` when set), with every copy of them in the events table
        (:meth:`purge_all`); returns the number of transits deleted."""
        return self.purge_all(now).transits

    def purge_all(self, now: float | None = None) -> Purged:
        """What :meth:`purge` does, counting both: transits, and event copies deleted.

        For each class (no-hit transits older than ``retention_days``; hits older than
        ``hit_retention_days`` when set), in one transaction: the ``plate_transit`` /
        ``plate_hit`` events of the expiring transits (by payload ``transit_id`` or by the
        row's ``event_id``); plate events of that class (no hits / hits) older than the cutoff
        whose transit row is missing (recorded before this rule, or never recorded); the
        copies of such events in ``event_conflicts``; then the transit rows. Without an
        events table in the database (a transit file of its own) only transits go."""
        now = time.time() if now is None else _to_ts(now)
        classes = [(1, now - self.retention_days * 86400.0)]
        if self.hit_retention_days is not None:
            classes.append((0, now - float(self.hit_retention_days) * 86400.0))
        p = self._P
        transits = events = 0
        with self._lock, self._transaction():
            has_events = self._has_table("events")
            has_conflicts = has_events and self._has_table("event_conflicts")
            for pseudonymised, cutoff in classes:
                if has_events:
                    events += self._purge_events(pseudonymised, cutoff, conflicts=has_conflicts)
                cur = self._db.execute(
                    f"DELETE FROM transits WHERE pseudonymised = {p} AND ts < {p}", (pseudonymised, cutoff)
                )
                transits += cur.rowcount
            if has_conflicts:  # copies of plate events no longer stored
                ctype = self._json(self._J_TYPE, "event_conflicts")
                cur = self._db.execute(
                    f"DELETE FROM event_conflicts WHERE {ctype} IN ('plate_transit', 'plate_hit') "
                    "AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = event_conflicts.id)"
                )
                events += cur.rowcount
        return Purged(transits, events)

    def _purge_events(self, pseudonymised: int, cutoff: float, *, conflicts: bool) -> int:
        """Delete the plate events of one retention class (see :meth:`purge_all`); their number."""
        p = self._P
        plate_types = "IN ('plate_transit', 'plate_hit')"
        tid, id_text = self._json(self._J_TRANSIT, "events"), self._json(self._ID_TEXT, "events")
        expiring = f"FROM transits WHERE pseudonymised = {p} AND ts < {p}"
        # Only events up to an hour younger than the cutoff are looked at (the time index): a
        # transit's events are sent within minutes of its pass, so this finds them without
        # reading every stored plate event's JSON at each hourly purge; one sent later still
        # goes, by the next statement, once its own time has passed the cutoff.
        cur = self._db.execute(
            f"DELETE FROM events WHERE type {plate_types} AND time < {p} AND time{self._BYTES} < {p} "
            f"AND ({tid} IN (SELECT id {expiring}) "
            f"OR {id_text} IN (SELECT event_id {expiring} AND event_id IS NOT NULL))",
            (_iso_us(cutoff + 3600.0), _iso_us(cutoff + 3600.0), pseudonymised, cutoff, pseudonymised, cutoff),
        )
        n = cur.rowcount
        hits = self._json(self._J_HITS, "events")
        of_class = f"{hits} = 0" if pseudonymised else f"{hits} > 0"
        cur = self._db.execute(
            f"DELETE FROM events WHERE type {plate_types} AND time < {p} AND time{self._BYTES} < {p} AND {of_class} "
            f"AND NOT EXISTS (SELECT 1 FROM transits t WHERE t.id = {tid})",
            (_iso_us(cutoff), _iso_us(cutoff)),
        )
        n += cur.rowcount
        if conflicts:  # a copy resent with other content, of this class and age
            ctype, ctime = self._json(self._J_TYPE, "event_conflicts"), self._json(self._J_TIME, "event_conflicts")
            chits = self._json(self._J_HITS, "event_conflicts")
            of_class = f"{chits} = 0" if pseudonymised else f"{chits} > 0"
            cur = self._db.execute(
                f"DELETE FROM event_conflicts WHERE {ctype} {plate_types} "
                f"AND {ctime}{self._BYTES} < {p} AND {of_class}",
                (_iso_us(cutoff),),
            )
            n += cur.rowcount
        return n

    @staticmethod
    def _json(template: str, table: str) -> str:
        return template.replace("{t}", table)

    def _has_table(self, name: str) -> bool:
        return bool(self._db.execute(self._HAS_TABLE, (name,)).fetchone()[0])

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with transaction(self._db):
            yield

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TransitStore(TransitRecords):
    """Transit records in the SQLite database at ``db_path`` (the aggregator's event file;
    the folder must exist, the file and the table are created if missing)."""

    def __init__(
        self,
        db_path: str | Path,
        *,
        key: bytes | str | None = None,
        key_file: str | Path | None = None,
        retention_days: float = 7.0,
        hit_retention_days: float | None = None,
    ) -> None:
        super().__init__(
            key=key, key_file=key_file, retention_days=retention_days, hit_retention_days=hit_retention_days
        )
        self.path = Path(db_path)
        self._db = connect(self.path, what="transit database", error=TransitError, create_parent=False)
        try:
            migrate(
                self._db,
                table="transits_version",
                target=TRANSITS_SCHEMA_VERSION,
                steps=_SQLITE_MIGRATIONS,
                what=f"transit database {self.path}",
                error=TransitError,
            )
        except sqlite3.Error as exc:
            self._db.close()
            raise TransitError(f"cannot use the transit database {self.path}: {exc}") from None
        except BaseException:
            self._db.close()
            raise


class PgTransitStore(TransitRecords):
    """Transit records in the PostgreSQL database at ``dsn`` (the aggregator's event database;
    the ``transits`` table is created or migrated on open)."""

    _P = "%s"
    _INSERT = "INSERT INTO transits ({cols}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"
    _ORDER = 'ts, id COLLATE "C"'  # the same tie order as SQLite's byte comparison
    _J_TRANSIT = "({t}.json::jsonb #>> '{payload,transit_id}')"
    _J_HITS = (
        "CASE WHEN jsonb_typeof({t}.json::jsonb #> '{payload,hits}') = 'array' "
        "THEN jsonb_array_length({t}.json::jsonb #> '{payload,hits}') ELSE 0 END"
    )
    _J_TYPE = "({t}.json::jsonb ->> 'type')"
    _J_TIME = "({t}.json::jsonb ->> 'time')"
    _ID_TEXT = "{t}.id::text"
    _HAS_TABLE = "SELECT to_regclass(%s) IS NOT NULL"
    _BYTES = ' COLLATE "C"'

    def __init__(
        self,
        dsn: str,
        *,
        key: bytes | str | None = None,
        key_file: str | Path | None = None,
        retention_days: float = 7.0,
        hit_retention_days: float | None = None,
    ) -> None:
        super().__init__(
            key=key, key_file=key_file, retention_days=retention_days, hit_retention_days=hit_retention_days
        )
        self.dsn = dsn
        self.path = redact_dsn(dsn)
        try:
            self._db = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise TransitError(f"cannot connect to PostgreSQL {self.path}: {exc}") from None
        try:
            self._migrate()
        except psycopg.Error as exc:
            self._db.close()
            raise TransitError(f"cannot use PostgreSQL {self.path}: {exc}") from None
        except BaseException:
            self._db.close()
            raise

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._db.transaction():
            yield

    def _version(self) -> int:
        (exists,) = self._db.execute("SELECT to_regclass('vigil_transits_version') IS NOT NULL").fetchone()
        if not exists:
            return 0
        (v,) = self._db.execute("SELECT COALESCE(MAX(version), 0) FROM vigil_transits_version").fetchone()
        return int(v)

    def _migrate(self) -> None:
        with self._lock:
            if self._version() == TRANSITS_SCHEMA_VERSION:
                return
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_MIGRATION_LOCK,))
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS vigil_transits_version ("
                    " version integer PRIMARY KEY, applied_at text NOT NULL)"
                )
                version = self._version()  # re-read under the lock
                if version > TRANSITS_SCHEMA_VERSION:
                    raise TransitError(
                        f"transit database {self.path} has schema {version}; this build reads "
                        f"{TRANSITS_SCHEMA_VERSION}: upgrade vigil"
                    )
                for target in range(version + 1, TRANSITS_SCHEMA_VERSION + 1):
                    for stmt in _PG_MIGRATIONS[target]:
                        self._db.execute(stmt)
                    self._db.execute("INSERT INTO vigil_transits_version VALUES (%s, %s)", (target, _iso(time.time())))
                    log.info("transit database %s migrated to schema %d", self.path, target)


def open_transit_store(
    *,
    sqlite_path: str | Path | None = None,
    dsn: str | None = None,
    key: bytes | str | None = None,
    key_file: str | Path | None = None,
    retention_days: float = 7.0,
    hit_retention_days: float | None = None,
) -> TransitRecords:
    """The transit store in the SQLite file ``sqlite_path`` or the PostgreSQL database ``dsn``
    (exactly one); ``key`` / ``key_file``: see :func:`load_key` (read on first use)."""
    if (sqlite_path is None) == (dsn is None):
        raise TransitError("give exactly one of sqlite_path (SQLite) or dsn (PostgreSQL)")
    options = dict(key=key, key_file=key_file, retention_days=retention_days, hit_retention_days=hit_retention_days)
    if dsn is not None:
        return PgTransitStore(dsn, **options)
    return TransitStore(sqlite_path, **options)
