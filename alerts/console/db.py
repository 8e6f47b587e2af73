"""The console's state (``console_*`` tables) and its read-only queries on the event table,
in SQLite or PostgreSQL.

One connection (:mod:`.dbconn`: ``sqlite3`` or ``psycopg``) behind a lock, and one set of
portable queries (``?`` markers, ``ON CONFLICT``, the ``"user"`` column quoted: a reserved word
in PostgreSQL). In SQLite the console shares the aggregator's database file (WAL,
``busy_timeout``) without stalling it (its writes are a few rows per operator action);
``events_db`` may be a separate file from the state (``state_db``), in which case it is
attached read-only. In PostgreSQL (``dsn``) the console tables live in the database of the
aggregator's ``events`` table. The event table is only read, each row through
:func:`~.views.stored_event` (which never raises, whatever the row holds).

Tables (versioned in ``console_schema``: one row per migration applied, :data:`_MIGRATIONS`):

* ``console_users``: name, role (operator | supervisor | admin), password hash, enabled.
* ``console_sessions``: by token digest; user, CSRF token, created/last seen/expiry (epoch
  seconds). A password change (:meth:`ConsoleDB.set_password`) or reset
  (``add_user(replace=True)``) deletes the user's sessions in the same transaction (a
  self-service change keeps its own).
* ``console_actions``: the alarm audit trail: the id acted on (an event's or an alarm's), the
  alarm it resolved to (``alarm_id``: the events' ``alarm_id``, or the event's own id for an
  event without one; version 2, back-filled), time, user, action (ack | close | reopen |
  note), note. An alarm's status is its latest non-note action, whichever of its events (or
  its alarm id) it was given through.

Alarm rows (one per alarm, not per event) are :class:`~.alarmdb.AlarmReads`' grouped reads.
* ``console_audit``: every access worth accounting for: logins (failed too), logouts,
  alarm actions, transit searches (allowed and refused), account changes, retention purges.

:meth:`ConsoleDB.purge` applies a retention (the aggregator's retention job calls it through
:func:`open_console_db`; :func:`console_tables_exist` tells whether there is anything to purge).
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from vigil.postgres import redact_dsn

from ..events import utc_iso
from .accounts import AccountAdmin
from .alarmdb import NON_ALARM_TYPES, AlarmReads
from .auth import ROLES, hash_password, needs_rehash, new_token, token_digest, verify_password
from .dbconn import Conn, open_postgres, open_sqlite
from .views import COLUMNS, stored_event

__all__ = [
    "ConsoleDB",
    "ConsoleError",
    "ACTIONS",
    "NON_ALARM_TYPES",
    "CONSOLE_TABLES",
    "console_tables_exist",
    "open_console_db",
]

ACTIONS = ("ack", "close", "reopen", "note")
CONSOLE_SCHEMA_VERSION = 2
CONSOLE_TABLES = ("console_schema", "console_users", "console_sessions", "console_actions", "console_audit")
#: the columns an event row is read with (:meth:`ConsoleDB._row`)
_EVENT_COLS = "stream_seq, received_at, json, " + ", ".join(COLUMNS)

_SCHEMA_TABLE = "CREATE TABLE IF NOT EXISTS console_schema (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
#: version -> DDL taking the tables from the previous version to it ({serial}, {real}:
#: :data:`~.dbconn.DDL_TOKENS`; IF NOT EXISTS: files from before the version rows open as they are)
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE IF NOT EXISTS console_users (
            name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS console_sessions (
            token_digest TEXT PRIMARY KEY, "user" TEXT NOT NULL, csrf TEXT NOT NULL,
            created {real} NOT NULL, last_seen {real} NOT NULL, expires {real} NOT NULL, client TEXT)""",
        """CREATE TABLE IF NOT EXISTS console_actions (
            id {serial}, event_id TEXT NOT NULL, time TEXT NOT NULL,
            "user" TEXT NOT NULL, action TEXT NOT NULL, note TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX IF NOT EXISTS console_actions_event ON console_actions (event_id, id)",
        """CREATE TABLE IF NOT EXISTS console_audit (
            id {serial}, time TEXT NOT NULL, "user" TEXT NOT NULL,
            action TEXT NOT NULL, target TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '',
            client TEXT NOT NULL DEFAULT '')""",
    ),
    # actions belong to alarms (back-filled from the events by ConsoleDB._backfill_actions)
    2: (
        "ALTER TABLE console_actions ADD COLUMN alarm_id TEXT",
        "CREATE INDEX IF NOT EXISTS console_actions_alarm ON console_actions (alarm_id, id)",
    ),
}
_DB_ERRORS = (sqlite3.Error, psycopg.Error)


class ConsoleError(RuntimeError):
    """The console's database cannot be opened or used."""


def open_console_db(*, db: str | Path | None = None, dsn: str | None = None, **options: Any) -> "ConsoleDB":
    """The console tables in the SQLite file ``db`` (the aggregator's event database) or the
    PostgreSQL database ``dsn``: exactly one (``ValueError`` otherwise). ``options`` go to
    :class:`ConsoleDB`. The tables are created if missing (see :func:`console_tables_exist`)."""
    if (db is None) == (dsn is None):
        raise ValueError("give exactly one of db (SQLite) or dsn (PostgreSQL)")
    return ConsoleDB(db, **options) if dsn is None else ConsoleDB(dsn=dsn, **options)


def console_tables_exist(*, db: str | Path | None = None, dsn: str | None = None) -> bool:
    """Whether the console's tables (:data:`CONSOLE_TABLES`) are all in the SQLite file ``db``
    or the PostgreSQL database ``dsn`` (exactly one; ``ValueError`` otherwise). Creates
    nothing: a missing SQLite file is ``False``; a database that cannot be read is a
    :class:`ConsoleError`."""
    if (db is None) == (dsn is None):
        raise ValueError("give exactly one of db (SQLite) or dsn (PostgreSQL)")
    if dsn is not None:
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
                (n,) = conn.execute(
                    "SELECT count(*) FROM unnest(%s::text[]) AS t(name) WHERE to_regclass(t.name) IS NOT NULL",
                    (list(CONSOLE_TABLES),),
                ).fetchone()
        except psycopg.Error as exc:
            raise ConsoleError(f"cannot read PostgreSQL {redact_dsn(dsn)}: {exc}") from None
        return n == len(CONSOLE_TABLES)
    path = Path(db)
    if not path.is_file():
        return False
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ConsoleError(f"cannot read {path}: {exc}") from None
    return set(CONSOLE_TABLES) <= names


class ConsoleDB(AlarmReads, AccountAdmin):
    """The console's tables and event reads, in SQLite (``events_db``, optional ``state_db``)
    or PostgreSQL (``dsn``; give it instead of the paths).

    ``idle_timeout_s`` / ``max_age_s``: a session ends after this long unused / this long
    after login (seconds). Attributes: ``kind`` (``"sqlite"`` | ``"postgres"``), ``events_path``
    and ``state_path`` (SQLite; ``None`` in PostgreSQL), ``dsn`` (PostgreSQL, as given;
    ``None`` in SQLite), ``where`` (the database for messages: a path, or the redacted DSN).
    Opening fails with :class:`ConsoleError` when there is no event table yet (start the
    aggregator first), the database cannot be reached, or its console tables are newer than
    this build.
    """

    def __init__(
        self,
        events_db: str | Path | None = None,
        state_db: str | Path | None = None,
        *,
        dsn: str | None = None,
        idle_timeout_s: float = 1800.0,
        max_age_s: float = 12 * 3600.0,
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self.dsn = dsn
        self.events_path: Path | None = None
        self.state_path: Path | None = None
        if dsn is not None:
            if events_db is not None or state_db is not None:
                raise ValueError("give the SQLite paths or dsn, not both")
            self._c: Conn = open_postgres(dsn, error=ConsoleError)
        else:
            if events_db is None:
                raise ValueError("give events_db (SQLite) or dsn (PostgreSQL)")
            self.events_path = Path(events_db)
            self.state_path = Path(state_db) if state_db else self.events_path
            if not self.events_path.is_file():
                raise ConsoleError(f"no event database at {self.events_path} (start the aggregator first)")
            self._c = open_sqlite(self.events_path, self.state_path, error=ConsoleError)
        self.kind = self._c.kind
        self.where = self._c.where
        try:
            self._open()
        except _DB_ERRORS as exc:
            self._c.close()
            raise ConsoleError(f"cannot use {self.where}: {exc}") from None
        except BaseException:
            self._c.close()
            raise

    def _open(self) -> None:
        """Check the event table, then migrate the console tables (in one transaction)."""
        c = self._c
        if c.kind == "postgres" and not c.table_exists("events"):
            raise ConsoleError(f"no event table in PostgreSQL {self.where} (start the aggregator first)")
        try:
            c.execute("SELECT alarm_id FROM {events} LIMIT 1")
        except _DB_ERRORS:
            raise ConsoleError(
                f"the event table in {self.where} has no alarm_id column (event store schema 3):"
                " start this build's aggregator once to migrate it"
            ) from None
        with c.transaction():
            c.lock_migrations()
            c.execute(_SCHEMA_TABLE)
            (version,) = c.execute("SELECT COALESCE(MAX(version), 0) FROM console_schema")[0][0]
            if version > CONSOLE_SCHEMA_VERSION:
                raise ConsoleError(f"console tables in {self.where} have schema {version}; upgrade vigil")
            for target in range(version + 1, CONSOLE_SCHEMA_VERSION + 1):
                for stmt in _MIGRATIONS[target]:
                    c.execute(c.ddl(stmt))
                if target == 2:
                    _backfill_actions(c)
                c.execute(
                    "INSERT INTO console_schema (version, applied_at) VALUES (?, ?) ON CONFLICT (version) DO NOTHING",
                    (target, utc_iso(time.time())),
                )
        c.execute("SELECT 1 FROM {events} LIMIT 1")

    def _q(self, sql: str, params: tuple = ()) -> list[tuple]:
        """One statement under the lock: its rows (:class:`ConsoleError` on a database error)."""
        with self._lock:
            try:
                return self._c.execute(sql, params)[0]
            except _DB_ERRORS as exc:
                raise ConsoleError(f"database error: {exc}") from None

    @contextmanager
    def _tx(self) -> Iterator[Conn]:
        """One transaction under the lock; a database error is a :class:`ConsoleError`, but a
        constraint violation (``Conn.integrity_errors``) propagates as the driver raised it."""
        with self._lock:
            try:
                with self._c.transaction():
                    yield self._c
            except self._c.integrity_errors:
                raise
            except _DB_ERRORS as exc:
                raise ConsoleError(f"database error: {exc}") from None

    def ping(self) -> bool:
        """Whether the database answers a trivial query now (for ``/healthz``); never raises."""
        try:
            return self._q("SELECT 1") == [(1,)]
        except ConsoleError:
            return False

    def close(self) -> None:
        with self._lock:
            self._c.close()

    # ------------------------------------------------------------------ accounts
    def add_user(self, name: str, role: str, password: str, *, replace: bool = False) -> None:
        """Add an account; ``replace``: reset an existing one's password and role (an
        administrator's reset), which ends every session of that user."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if not name or len(name) > 64 or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ValueError("a user name is 1-64 letters, digits, '.', '-' or '_'")
        pw = hash_password(password)
        sql = "INSERT INTO console_users (name, role, password, enabled, created_at) VALUES (?, ?, ?, 1, ?)"
        if replace:
            sql += (
                " ON CONFLICT (name) DO UPDATE SET role = excluded.role, password = excluded.password,"
                " enabled = 1, created_at = excluded.created_at"
            )
        ended = 0
        try:
            with self._tx() as c:
                c.execute(sql, (name, role, pw, utc_iso(time.time())))
                if replace:
                    ended = c.execute('DELETE FROM console_sessions WHERE "user" = ?', (name,))[1]
        except self._c.integrity_errors:
            raise ValueError(f"user {name!r} exists (use --replace to reset the password and role)") from None
        self.audit("-", "user_add", name, f"role={role}" + (f" sessions_ended={ended}" if replace else ""))

    def set_password(self, name: str, password: str, *, keep_token: str | None = None) -> int:
        """Change a user's password and end every session of that user but ``keep_token``'s
        (the one that made a self-service change; ``None``: end them all), in one transaction.
        Returns the number of sessions ended. ``ValueError``: no such user, or a password
        :func:`~.auth.hash_password` refuses."""
        pw = hash_password(password)
        keep = token_digest(keep_token) if keep_token else ""
        with self._tx() as c:
            if c.execute("UPDATE console_users SET password = ? WHERE name = ?", (pw, name))[1] != 1:
                raise ValueError(f"no user {name!r}")
            return c.execute('DELETE FROM console_sessions WHERE "user" = ? AND token_digest != ?', (name, keep))[1]

    def user(self, name: str) -> dict | None:
        rows = self._q("SELECT name, role, enabled FROM console_users WHERE name = ?", (name,))
        return {"name": rows[0][0], "role": rows[0][1], "enabled": bool(rows[0][2])} if rows else None

    def check_login(self, name: str, password: str) -> dict | None:
        rows = self._q("SELECT password, role, enabled FROM console_users WHERE name = ?", (name,))
        stored = rows[0][0] if rows else None
        ok = verify_password(password, stored)
        if not ok or not rows or not rows[0][2]:
            return None
        if needs_rehash(stored):
            self._q("UPDATE console_users SET password = ? WHERE name = ?", (hash_password(password), name))
        return {"name": name, "role": rows[0][1]}

    # ------------------------------------------------------------------ sessions
    def new_session(self, user: str, client: str = "") -> str:
        token = new_token()
        now = time.time()
        with self._tx() as c:
            c.execute(
                "DELETE FROM console_sessions WHERE expires < ? OR last_seen < ?", (now, now - self.idle_timeout_s)
            )
            c.execute(
                'INSERT INTO console_sessions (token_digest, "user", csrf, created, last_seen, expires, client)'
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_digest(token), user, new_token(), now, now, now + self.max_age_s, client),
            )
        return token

    def session(self, token: str | None) -> dict | None:
        """The live session for a cookie value (touching it), with its user and role; else ``None``."""
        if not token or len(token) > 200:
            return None
        now = time.time()
        d = token_digest(token)
        rows = self._q(
            'SELECT s."user", s.csrf, s.last_seen, s.expires, u.role, u.enabled FROM console_sessions s'
            ' JOIN console_users u ON u.name = s."user" WHERE s.token_digest = ?',
            (d,),
        )
        if not rows:
            return None
        user, csrf, last_seen, expires, role, enabled = rows[0]
        if not enabled or now > expires or now - last_seen > self.idle_timeout_s:
            self.end_session(token)
            return None
        if now - last_seen > 30:
            self._q("UPDATE console_sessions SET last_seen = ? WHERE token_digest = ?", (now, d))
        return {"user": user, "role": role, "csrf": csrf}

    def end_session(self, token: str) -> None:
        self._q("DELETE FROM console_sessions WHERE token_digest = ?", (token_digest(token),))

    # ------------------------------------------------------------------ audit
    def audit(self, user: str, action: str, target: str = "", detail: str = "", client: str = "") -> None:
        self._q(
            'INSERT INTO console_audit (time, "user", action, target, detail, client) VALUES (?, ?, ?, ?, ?, ?)',
            (utc_iso(time.time()), user, action, target[:200], detail[:1000], client[:100]),
        )

    def audit_log(self, limit: int = 200, action: str | None = None) -> list[dict]:
        sql = 'SELECT id, time, "user", action, target, detail, client FROM console_audit'
        params: tuple = ()
        if action:
            sql += " WHERE action = ?"
            params = (action,)
        rows = self._q(sql + " ORDER BY id DESC LIMIT ?", params + (int(limit),))
        keys = ("id", "time", "user", "action", "target", "detail", "client")
        return [{"id": r[0], **{k: _str(v) for k, v in zip(keys[1:], r[1:])}} for r in rows]

    # ------------------------------------------------------------------ retention
    def purge(self, *, now: float | None = None, audit_days: float, actions_days: float) -> dict[str, int]:
        """Delete ``console_audit`` rows older than ``audit_days``, ``console_actions`` rows
        older than ``actions_days`` (days before ``now``, epoch seconds, default the current
        time; by their ``time``) and those whose event is no longer stored (an action goes with
        the event it acts on: a note on a plate hit goes with the hit's 15 days), and the
        sessions expired at ``now`` (past their absolute or idle expiry), in one transaction.
        Returns the rows deleted per table,
        ``{"console_audit": n, "console_actions": m, "console_sessions": k}``. When anything
        was deleted, one ``purge`` row recording the counts is then added to the audit log.
        ``ValueError``: a retention that is negative or not finite."""
        for what, days in (("audit_days", audit_days), ("actions_days", actions_days)):
            if not (isinstance(days, (int, float)) and math.isfinite(days) and days >= 0):
                raise ValueError(f"{what} must be a finite number of days >= 0, got {days!r}")
        now = time.time() if now is None else float(now)
        with self._tx() as c:
            counts = {
                "console_audit": c.execute(
                    "DELETE FROM console_audit WHERE time < ?", (utc_iso(now - audit_days * 86400.0),)
                )[1],
                "console_actions": c.execute(
                    "DELETE FROM console_actions WHERE time < ?", (utc_iso(now - actions_days * 86400.0),)
                )[1]
                + _purge_orphan_actions(c),
                "console_sessions": c.execute(
                    "DELETE FROM console_sessions WHERE expires < ? OR last_seen < ?", (now, now - self.idle_timeout_s)
                )[1],
            }
        if any(counts.values()):
            self.audit("-", "purge", "", " ".join(f"{k}={v}" for k, v in counts.items()))
        return counts

    # ------------------------------------------------------------------ alarm actions
    def add_action(self, target_id: str, user: str, action: str, note: str = "", client: str = "") -> str:
        """Record an operator action on the alarm ``target_id`` names (an alarm id, or the id of
        one of its events: :meth:`alarm_key`); returns the alarm's key. ``ValueError``: an
        unknown action, or an id that names no stored alarm."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}")
        key = self.alarm_key(target_id)
        if key is None:
            raise ValueError(f"no stored alarm has the id {target_id[:80]!r}")
        note = (note or "").strip()[:2000]
        self._q(
            'INSERT INTO console_actions (event_id, alarm_id, time, "user", action, note) VALUES (?, ?, ?, ?, ?, ?)',
            (target_id, key, utc_iso(time.time()), user, action, note),
        )
        self.audit(user, f"alarm_{action}", target_id, note, client)
        return key

    def actions(self, some_id: str) -> list[dict]:
        """The actions on the alarm ``some_id`` names (an alarm or one of its events), oldest first."""
        key = self.alarm_key(some_id) or some_id
        rows = self._q(
            'SELECT id, time, "user", action, note FROM console_actions WHERE alarm_id = ? ORDER BY id', (key,)
        )
        return [{"id": r[0], **{k: _str(v) for k, v in zip(("time", "user", "action", "note"), r[1:])}} for r in rows]

    def statuses(self, ids: list[str]) -> dict[str, dict]:
        """Operator status of the alarm each id names (an alarm id or an event id), keyed by the
        ids given: ``{id: {"status", "user", "time"}}`` (absent: new, no action yet)."""
        keys = {i: self.alarm_key(i) or i for i in ids}
        by_key: dict[str, dict] = {}
        wanted = sorted(set(keys.values()))
        for k in range(0, len(wanted), 500):
            chunk = wanted[k : k + 500]
            rows = self._q(
                'SELECT a.alarm_id, a.action, a."user", a.time FROM console_actions a JOIN ('
                " SELECT alarm_id, MAX(id) AS id FROM console_actions WHERE action != 'note' AND alarm_id IN"
                f" ({','.join('?' * len(chunk))}) GROUP BY alarm_id) m ON m.id = a.id",
                tuple(chunk),
            )
            for eid, action, user, t in rows:
                by_key[eid] = {
                    "status": {"ack": "acknowledged", "close": "closed", "reopen": "new"}.get(action, "new"),
                    "user": user,
                    "time": t,
                }
        return {i: by_key[k] for i, k in keys.items() if k in by_key}

    # ------------------------------------------------------------------ events (read only)
    def last_stream_seq(self) -> int:
        return int(self._q("SELECT COALESCE(MAX(stream_seq), 0) FROM {events}")[0][0])

    def events(
        self,
        *,
        camera: str | None = None,
        type: str | None = None,
        severity: str | None = None,
        state: str | None = None,
        before: int | None = None,
        after: int | None = None,
        limit: int = 200,
        exclude_types: tuple[str, ...] = (),
    ) -> list[dict]:
        """Stored events, newest first (``after``: oldest first), with the filters applied
        (``exclude_types``: leave these types out)."""
        where, params = [], []
        if exclude_types:
            where.append(f"type NOT IN ({','.join('?' * len(exclude_types))})")
            params.extend(exclude_types)
        for col, val in (("camera", camera), ("type", type), ("severity", severity), ("state", state)):
            if val:
                where.append(f"{col} = ?")
                params.append(val)
        if before is not None:
            where.append("stream_seq < ?")
            params.append(int(before))
        if after is not None:
            where.append("stream_seq > ?")
            params.append(int(after))
        sql = f"SELECT {_EVENT_COLS} FROM {{events}}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY stream_seq {'ASC' if after is not None else 'DESC'} LIMIT ?"
        rows = self._q(sql, tuple(params) + (int(limit),))
        return [self._row(*r) for r in rows]

    @staticmethod
    def _row(stream_seq: Any, received_at: Any, text: Any, *columns: Any) -> dict:
        """A stored row as the pages read it (:func:`~.views.stored_event`: never raises)."""
        return stored_event(stream_seq, received_at, text, dict(zip(COLUMNS, columns)))

    def event(self, event_id: str) -> dict | None:
        """The stored event with this id (text, as in a URL), or ``None``: also for text that
        cannot be an id in this database (PostgreSQL's ids are uuid: never a cast error)."""
        key = self._c.event_id(event_id)
        if key is None:
            return None
        rows = self._q(f"SELECT {_EVENT_COLS} FROM {{events}} WHERE id = ?", (key,))
        return self._row(*rows[0]) if rows else None

    def related(self, ev: dict, limit: int = 50) -> list[dict]:
        """The lifecycle of the same alarm (same camera, type and ``alarm_id``; schema-1 events get
        theirs on reading, see :func:`~vigil.alerts.events.alarm_id_of`), by ``seq``; ``ev`` is a
        :func:`~.views.stored_event`."""
        alarm = ev.get("alarm_id")
        rows = self._q(
            f"SELECT {_EVENT_COLS} FROM {{events}} WHERE camera = ? AND type = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            (ev["camera"], ev["type"], ev["seq"] - 2000, ev["seq"] + 2000),
        )
        out = []
        for r in rows:
            e = self._row(*r)
            if e["id"] == ev.get("id") or (alarm is not None and e["alarm_id"] == alarm):
                out.append(e)
        return out[:limit] if len(out) <= limit else out[-limit:]

    def distinct(self, column: str) -> list[str]:
        """The distinct non-empty text values of ``column`` (``camera`` or ``type``), sorted."""
        if column not in ("camera", "type"):
            raise ValueError(column)
        # sorted here, by code point, not by the database's collation (which differs by backend)
        values = self._q(f"SELECT DISTINCT {column} FROM {{events}}")
        return sorted({r[0] for r in values if isinstance(r[0], str) and r[0]})

    def camera_overview(self) -> list[dict]:
        """Per camera: last alarm event, open alarms (:meth:`open_by_camera`: alarms none of whose
        events is an end), latest occupancy, risk and ``heatmap`` event (the raw event; ``None``
        if none), ``worst``: the highest current severity among its open alarms (``info``: none)."""
        out = []
        opened = self.open_by_camera()
        for cam in self.distinct("camera"):
            last = self.events(camera=cam, limit=1, exclude_types=NON_ALARM_TYPES)
            occ = self.events(camera=cam, type="occupancy_limit", limit=1)
            risk = self.events(camera=cam, type="risk_level", limit=1)
            heat = self.events(camera=cam, type="heatmap", limit=1)
            n_open, worst = opened.get(cam, (0, "info"))
            out.append(
                {
                    "camera": cam,
                    "last": last[0] if last else None,
                    "open": n_open,
                    "occupancy": _metric(occ[0]) if occ else None,
                    "risk": _metric(risk[0]) if risk else None,
                    "heatmap": heat[0] if heat else None,
                    "worst": worst,
                }
            )
        return out


def _backfill_actions(c: Conn) -> None:
    """Console migration 2: the ``alarm_id`` of the actions recorded before it (by event id):
    the event's ``alarm_id``, or its own id when it has none or is no longer stored."""
    ids = [str(r[0]) for r in c.execute("SELECT DISTINCT event_id FROM console_actions WHERE alarm_id IS NULL")[0]]
    for eid in ids:
        key = c.event_id(eid)
        rows = c.execute("SELECT alarm_id FROM {events} WHERE id = ?", (key,))[0] if key is not None else []
        alarm = rows[0][0] if rows and isinstance(rows[0][0], str) else eid
        c.execute("UPDATE console_actions SET alarm_id = ? WHERE event_id = ? AND alarm_id IS NULL", (alarm, eid))


def _purge_orphan_actions(c: Conn, chunk: int = 500) -> int:
    """Delete the actions whose alarm has no event left in the event table (purged by its
    retention); their number. Looks the alarms up by ``alarm_id`` (and, for an alarm keyed by
    an event's own id, by event id), ``chunk`` at a time (actions are few: one per operator
    click)."""
    ids = [str(r[0]) for r in c.execute("SELECT DISTINCT alarm_id FROM console_actions")[0] if r[0] is not None]
    gone: list[str] = []
    for k in range(0, len(ids), chunk):
        part = ids[k : k + chunk]
        marks = ",".join("?" * len(part))
        found = {
            str(r[0])
            for r in c.execute(f"SELECT DISTINCT alarm_id FROM {{events}} WHERE alarm_id IN ({marks})", tuple(part))[0]
        }
        as_ids = [(i, c.event_id(i)) for i in part if i not in found]
        keys = [key for _, key in as_ids if key is not None]
        if keys:
            rows = c.execute(f"SELECT id FROM {{events}} WHERE id IN ({','.join('?' * len(keys))})", tuple(keys))[0]
            found |= {str(r[0]) for r in rows}
        gone += [i for i in part if i not in found]
    n = c.execute("DELETE FROM console_actions WHERE alarm_id IS NULL")[1]
    for k in range(0, len(gone), chunk):
        part = gone[k : k + chunk]
        n += c.execute(f"DELETE FROM console_actions WHERE alarm_id IN ({','.join('?' * len(part))})", tuple(part))[1]
    return n


def _str(v: Any) -> str:
    """A console-table text column as text whatever was written into it."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return "" if v is None else str(v)


def _metric(ev: dict) -> dict[str, Any]:
    """The latest measurement of a rule alarm event (``occupancy_limit``, ``risk_level``, ...),
    from its payload as :func:`~.views.stored_event` read it (wrong-typed fields left out)."""
    p = ev["payload"]
    return {
        "value": p.get("value"),
        "threshold": p.get("threshold"),
        "zone": p.get("zone") if isinstance(p.get("zone"), str) else None,
        "state": ev["state"],
        "time": ev["time"],
        "severity": ev["severity"],
    }
