"""The console's state (``console_*`` tables) and its read-only queries on the event table.

One SQLite connection (:func:`vigil.sqlite.connect`: WAL, ``busy_timeout``) behind a lock,
so the console shares the aggregator's database file without stalling it (its writes are a
few rows per operator action). The event table is only read, each row through :func:`~.views.stored_event` (which never
raises, whatever the row holds); ``events_db`` may be a separate file from the state
(``state_db``), in which case it is attached read-only.

Tables (created if missing, versioned in ``console_schema``):

* ``console_users``: name, role (operator | supervisor | admin), password hash, enabled.
* ``console_sessions``: by token digest; user, CSRF token, created/last seen/expiry. A
  password change (:meth:`ConsoleDB.set_password`) or reset (``add_user(replace=True)``)
  deletes the user's sessions in the same transaction (a self-service change keeps its own).
* ``console_actions``: the alarm audit trail: event id, time, user, action (ack | close |
  reopen | note), note. An alarm's status is its latest action.
* ``console_audit``: every access worth accounting for: logins (failed too), logouts,
  alarm actions, transit searches (allowed and refused), account changes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from vigil.sqlite import connect, schema_version, transaction

from ..events import utc_iso
from .auth import ROLES, hash_password, needs_rehash, new_token, token_digest, verify_password
from .views import COLUMNS, stored_event

__all__ = ["ConsoleDB", "ConsoleError", "ACTIONS", "NON_ALARM_TYPES"]

ACTIONS = ("ack", "close", "reopen", "note")
#: event types that are state, not alarms: stored, shown on /cameras, never in the alarm list or feed
NON_ALARM_TYPES = ("heatmap",)
CONSOLE_SCHEMA_VERSION = 1
_SEVERITIES = ("info", "warning", "critical")
#: the columns an event row is read with (:meth:`ConsoleDB._row`)
_EVENT_COLS = "stream_seq, received_at, json, " + ", ".join(COLUMNS)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS console_schema (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS console_users (
        name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS console_sessions (
        token_digest TEXT PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL,
        created REAL NOT NULL, last_seen REAL NOT NULL, expires REAL NOT NULL, client TEXT)""",
    """CREATE TABLE IF NOT EXISTS console_actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, time TEXT NOT NULL,
        user TEXT NOT NULL, action TEXT NOT NULL, note TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS console_actions_event ON console_actions (event_id, id)",
    """CREATE TABLE IF NOT EXISTS console_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, user TEXT NOT NULL,
        action TEXT NOT NULL, target TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '',
        client TEXT NOT NULL DEFAULT '')""",
)


class ConsoleError(RuntimeError):
    """The console's database cannot be opened or used."""


class ConsoleDB:
    def __init__(
        self,
        events_db: str | Path,
        state_db: str | Path | None = None,
        *,
        idle_timeout_s: float = 1800.0,
        max_age_s: float = 12 * 3600.0,
    ) -> None:
        self.events_path = Path(events_db)
        self.state_path = Path(state_db) if state_db else self.events_path
        self.idle_timeout_s = idle_timeout_s
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        if not self.events_path.is_file():
            raise ConsoleError(f"no event database at {self.events_path} (start the aggregator first)")
        # synchronous=None: SQLite's default (FULL), as the console always had, for the audit trail
        self._db = connect(
            self.state_path, what="console database", error=ConsoleError, synchronous=None, create_parent=False
        )
        try:
            if self.state_path.resolve() != self.events_path.resolve():
                self._db.execute("ATTACH DATABASE ? AS ev", (f"{self.events_path.resolve().as_uri()}?mode=ro",))
                self._events = "ev.events"
            else:
                self._events = "events"
            # console_schema keeps its own layout (version, applied_at: one row per version
            # applied), so vigil.sqlite.migrate (one version row) does not write it
            version = schema_version(self._db, "console_schema")
            if version > CONSOLE_SCHEMA_VERSION:
                raise ConsoleError(f"console tables in {self.state_path} have schema {version}; upgrade vigil")
            with transaction(self._db):
                for stmt in _SCHEMA:
                    self._db.execute(stmt)
                self._db.execute(
                    "INSERT OR IGNORE INTO console_schema VALUES (?, ?)",
                    (CONSOLE_SCHEMA_VERSION, utc_iso(time.time())),
                )
            self._db.execute(f"SELECT 1 FROM {self._events} LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            self._db.close()
            raise ConsoleError(f"cannot use {self.state_path} / {self.events_path}: {exc}") from None
        except BaseException:
            self._db.close()
            raise

    def _q(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql.replace("{events}", self._events), params).fetchall()
            except sqlite3.Error as exc:
                raise ConsoleError(f"database error: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ accounts
    def add_user(self, name: str, role: str, password: str, *, replace: bool = False) -> None:
        """Add an account; ``replace``: reset an existing one's password and role (an
        administrator's reset), which ends every session of that user."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if not name or len(name) > 64 or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ValueError("a user name is 1-64 letters, digits, '.', '-' or '_'")
        pw = hash_password(password)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        ended = 0
        try:
            with self._lock, transaction(self._db):
                self._db.execute(
                    f"{verb} INTO console_users (name, role, password, enabled, created_at) VALUES (?, ?, ?, 1, ?)",
                    (name, role, pw, utc_iso(time.time())),
                )
                if replace:
                    ended = self._db.execute("DELETE FROM console_sessions WHERE user = ?", (name,)).rowcount
        except sqlite3.IntegrityError:
            raise ValueError(f"user {name!r} exists (use --replace to reset the password and role)") from None
        self.audit("-", "user_add", name, f"role={role}" + (f" sessions_ended={ended}" if replace else ""))

    def set_password(self, name: str, password: str, *, keep_token: str | None = None) -> int:
        """Change a user's password and end every session of that user but ``keep_token``'s
        (the one that made a self-service change; ``None``: end them all), in one transaction.
        Returns the number of sessions ended. ``ValueError``: no such user, or a password
        :func:`~.auth.hash_password` refuses."""
        pw = hash_password(password)
        keep = token_digest(keep_token) if keep_token else ""
        with self._lock, transaction(self._db):
            if self._db.execute("UPDATE console_users SET password = ? WHERE name = ?", (pw, name)).rowcount != 1:
                raise ValueError(f"no user {name!r}")
            return self._db.execute(
                "DELETE FROM console_sessions WHERE user = ? AND token_digest != ?", (name, keep)
            ).rowcount

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
            with self._lock:
                self._db.execute(
                    "UPDATE console_users SET password = ? WHERE name = ?", (hash_password(password), name)
                )
        return {"name": name, "role": rows[0][1]}

    # ------------------------------------------------------------------ sessions
    def new_session(self, user: str, client: str = "") -> str:
        token = new_token()
        now = time.time()
        with self._lock, transaction(self._db):
            self._db.execute(
                "DELETE FROM console_sessions WHERE expires < ? OR last_seen < ?", (now, now - self.idle_timeout_s)
            )
            self._db.execute(
                "INSERT INTO console_sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
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
            "SELECT s.user, s.csrf, s.last_seen, s.expires, u.role, u.enabled FROM console_sessions s"
            " JOIN console_users u ON u.name = s.user WHERE s.token_digest = ?",
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
            "INSERT INTO console_audit (time, user, action, target, detail, client) VALUES (?, ?, ?, ?, ?, ?)",
            (utc_iso(time.time()), user, action, target[:200], detail[:1000], client[:100]),
        )

    def audit_log(self, limit: int = 200, action: str | None = None) -> list[dict]:
        sql = "SELECT id, time, user, action, target, detail, client FROM console_audit"
        params: tuple = ()
        if action:
            sql += " WHERE action = ?"
            params = (action,)
        rows = self._q(sql + " ORDER BY id DESC LIMIT ?", params + (int(limit),))
        keys = ("id", "time", "user", "action", "target", "detail", "client")
        return [{"id": r[0], **{k: _str(v) for k, v in zip(keys[1:], r[1:])}} for r in rows]

    # ------------------------------------------------------------------ alarm actions
    def add_action(self, event_id: str, user: str, action: str, note: str = "", client: str = "") -> None:
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}")
        note = (note or "").strip()[:2000]
        self._q(
            "INSERT INTO console_actions (event_id, time, user, action, note) VALUES (?, ?, ?, ?, ?)",
            (event_id, utc_iso(time.time()), user, action, note),
        )
        self.audit(user, f"alarm_{action}", event_id, note, client)

    def actions(self, event_id: str) -> list[dict]:
        rows = self._q(
            "SELECT id, time, user, action, note FROM console_actions WHERE event_id = ? ORDER BY id", (event_id,)
        )
        return [{"id": r[0], **{k: _str(v) for k, v in zip(("time", "user", "action", "note"), r[1:])}} for r in rows]

    def statuses(self, event_ids: list[str]) -> dict[str, dict]:
        """Latest action per event id: ``{id: {"status", "user", "time"}}`` (absent: new)."""
        out: dict[str, dict] = {}
        for k in range(0, len(event_ids), 500):
            chunk = event_ids[k : k + 500]
            rows = self._q(
                "SELECT a.event_id, a.action, a.user, a.time FROM console_actions a JOIN ("
                " SELECT event_id, MAX(id) AS id FROM console_actions WHERE action != 'note' AND event_id IN"
                f" ({','.join('?' * len(chunk))}) GROUP BY event_id) m ON m.id = a.id",
                tuple(chunk),
            )
            for eid, action, user, t in rows:
                out[eid] = {
                    "status": {"ack": "acknowledged", "close": "closed", "reopen": "new"}.get(action, "new"),
                    "user": user,
                    "time": t,
                }
        return out

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
        rows = self._q(f"SELECT {_EVENT_COLS} FROM {{events}} WHERE id = ?", (event_id,))
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
        if column not in ("camera", "type"):
            raise ValueError(column)
        values = self._q(f"SELECT DISTINCT {column} FROM {{events}} ORDER BY {column}")
        return [v for v in dict.fromkeys(r[0] for r in values if isinstance(r[0], str) and r[0])]

    def camera_overview(self) -> list[dict]:
        """Per camera: last alarm event, open-alarm count in the recent window, latest occupancy,
        risk and ``heatmap`` event (the raw event; ``None`` if none)."""
        out = []
        for cam in self.distinct("camera"):
            last = self.events(camera=cam, limit=1, exclude_types=NON_ALARM_TYPES)
            occ = self.events(camera=cam, type="occupancy_limit", limit=1)
            risk = self.events(camera=cam, type="risk_level", limit=1)
            heat = self.events(camera=cam, type="heatmap", limit=1)
            recent = self.events(camera=cam, limit=200, exclude_types=NON_ALARM_TYPES)
            open_keys: dict[str, str] = {}  # alarm id -> state of its latest event
            for e in reversed(recent):
                open_keys[e["alarm_id"] or e["id"]] = e["state"]
            n_open = sum(1 for s in open_keys.values() if s != "end")
            out.append(
                {
                    "camera": cam,
                    "last": last[0] if last else None,
                    "open": n_open,
                    "occupancy": _metric(occ[0]) if occ else None,
                    "risk": _metric(risk[0]) if risk else None,
                    "heatmap": heat[0] if heat else None,
                    "worst": max(
                        (e["severity"] for e in recent if e["state"] != "end" and e["severity"] in _SEVERITIES),
                        key=_SEVERITIES.index,
                        default="info",
                    ),
                }
            )
        return out


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
