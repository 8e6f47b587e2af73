"""Alarms as rows: the console's grouped reads of the event table (one row per alarm).

An alarm is the set of stored events sharing an ``alarm_id`` (the event table's column,
filled by the store from the payload: schema 2, schema 1 derived, see
:func:`vigil.alerts.store.base.alarm_id_column`); an alarm-type event without one (a row
written straight into the table, an unreadable payload) is an alarm of its own, keyed by its
event id. Types in :data:`NON_ALARM_TYPES` (``heatmap``: state, not alarms) never make rows.

Per alarm (:meth:`AlarmReads.alarms`): camera and type (its events'), ``state`` ``open`` until
one of its events is an ``end`` (then ``ended``: a resent update arriving after the end does
not reopen it), ``severity`` (its latest event's, by ``stream_seq``) and ``max_severity`` (the
highest seen), ``first_time`` / ``last_time`` (its events' observation times, UTC ISO text),
``events`` (how many), ``last`` (the latest event, a :func:`~.views.stored_event`) and the
operator ``status`` (``new`` | ``acknowledged`` | ``closed``, its latest non-note action on
the alarm, with ``status_user`` / ``status_time``).

One grouped query over the event table (from the covering index ``events_alarm``) joined with
the latest action per alarm. Measured on 100k events (25k alarms) in SQLite on a shared 2-core
machine: the list about 0.25 s, the open count about 0.12 s.
Sites: a camera's site is the part of its name before the first ``-`` or ``/``
(:func:`site_of`: ``piazza-nord`` and ``piazza/2`` are both in ``piazza``).
"""

from __future__ import annotations

import re
from typing import Any

from .views import COLUMNS, stored_event

__all__ = ["AlarmReads", "NON_ALARM_TYPES", "SORTS", "STATUSES", "ALARM_STATES", "site_of"]

#: event types that are state, not alarms: stored, shown on /cameras, never an alarm row
NON_ALARM_TYPES = ("heatmap",)
#: list orders: priority (open first, highest severity, newest start) or age (newest start first)
SORTS = ("priority", "age")
#: operator statuses, and the action that sets each
STATUSES = {"new": ("reopen",), "acknowledged": ("ack",), "closed": ("close",)}
ALARM_STATES = ("open", "ended")
_SEVERITIES = ("info", "warning", "critical")
_KEY = "COALESCE(alarm_id, CAST(id AS TEXT))"
_SEV = "CASE severity WHEN 'critical' THEN 3 WHEN 'warning' THEN 2 WHEN 'info' THEN 1 ELSE 0 END"
_EVENT_COLS = "e.stream_seq, e.received_at, e.json, " + ", ".join(f"e.{c}" for c in COLUMNS)
_LATEST_ACTION = (
    'SELECT a.alarm_id, a.action, a."user", a.time FROM console_actions a JOIN ('
    " SELECT alarm_id, MAX(id) AS id FROM console_actions WHERE action != 'note' GROUP BY alarm_id) m ON m.id = a.id"
)
_SITE_RE = re.compile(r"[-/]")


def site_of(camera: str) -> str:
    """The site of a camera: its name up to the first ``-`` or ``/`` (the whole name without one)."""
    return _SITE_RE.split(camera, 1)[0]


def _status(action: Any) -> str:
    return {"ack": "acknowledged", "close": "closed"}.get(action, "new")


class AlarmReads:
    """The alarm reads of :class:`~.db.ConsoleDB` (it gives ``_q`` and ``_c``)."""

    def _q(self, sql: str, params: tuple = ()) -> list[tuple]:  # pragma: no cover - given by ConsoleDB
        raise NotImplementedError

    def distinct(self, column: str) -> list[str]:  # pragma: no cover - given by ConsoleDB
        raise NotImplementedError

    def sites(self) -> list[str]:
        """The sites of the stored cameras (:func:`site_of`), sorted."""
        return sorted({site_of(c) for c in self.distinct("camera")})

    def _key_where(self, key: str) -> tuple[str, tuple]:
        """The ``WHERE`` clause of the events of the alarm ``key``."""
        eid = self._c.event_id(key)
        if eid is None:
            return "alarm_id = ?", (key,)
        return "(alarm_id = ? OR (alarm_id IS NULL AND id = ?))", (key, eid)

    def alarm_key(self, some_id: str) -> str | None:
        """The alarm an id names: an event id resolves to its alarm's key, an alarm id to itself;
        ``None`` when no stored alarm-type event has it."""
        if not isinstance(some_id, str) or not some_id or len(some_id) > 200:
            return None
        eid = self._c.event_id(some_id)
        if eid is not None:
            rows = self._q("SELECT alarm_id, CAST(id AS TEXT), type FROM {events} WHERE id = ?", (eid,))
            if rows and rows[0][2] not in NON_ALARM_TYPES:
                return rows[0][0] if isinstance(rows[0][0], str) else str(rows[0][1])
        rows = self._q("SELECT 1 FROM {events} WHERE alarm_id = ? LIMIT 1", (some_id,))
        return some_id if rows else None

    def alarms(
        self,
        *,
        camera: str | None = None,
        type: str | None = None,
        severity: str | None = None,
        state: str | None = None,
        status: str | None = None,
        site: str | None = None,
        sort: str = "priority",
        keys: list[str] | None = None,
        limit: int = 200,
    ) -> list[dict]:
        """Alarm rows (module docstring) with the filters: ``camera``, ``type``, ``site``;
        ``severity``: the highest seen; ``state``: ``open`` | ``ended``; ``status``: ``new`` |
        ``acknowledged`` | ``closed``; ``keys``: only these alarms. Ordered by ``sort``
        (:data:`SORTS`), at most ``limit``."""
        where, params = self._event_filters(camera, type, site)
        if where is None:
            return []
        if keys is not None:
            if not keys:
                return []
            clauses, kp = [], []
            for k in keys[:500]:
                c, p = self._key_where(k)
                clauses.append(c)
                kp.extend(p)
            where += f" AND ({' OR '.join(clauses)})"
            params += tuple(kp)
        outer, oparams = [], []
        if severity in _SEVERITIES:
            outer.append("g.maxsev = ?")
            oparams.append(_SEVERITIES.index(severity) + 1)
        if state in ALARM_STATES:
            outer.append(f"g.ended = {1 if state == 'ended' else 0}")
        if status in STATUSES:
            cond = "st.action IN ({})".format(",".join("?" * len(STATUSES[status])))
            outer.append(f"({cond} OR st.action IS NULL)" if status == "new" else cond)
            oparams.extend(STATUSES[status])
        order = "g.t0 DESC, g.last DESC" if sort == "age" else "g.ended ASC, g.maxsev DESC, g.t0 DESC, g.last DESC"
        grouped, params = self._grouped(f"({where})", params)
        sql = (
            'SELECT g.akey, g.n, g.t0, g.t1, g.maxsev, g.ended, st.action, st."user", st.time, '
            f"{_EVENT_COLS} FROM ({grouped}) g"
            " JOIN {events} e ON e.stream_seq = g.last"
            f" LEFT JOIN ({_LATEST_ACTION}) st ON st.alarm_id = g.akey"
            + (" WHERE " + " AND ".join(outer) if outer else "")
            + f" ORDER BY {order} LIMIT ?"
        )
        rows = self._q(sql, params + tuple(oparams) + (int(limit),))
        return [self._alarm_row(r) for r in rows]

    def open_count(self, *, camera: str | None = None, type: str | None = None, site: str | None = None) -> int:
        """How many alarms are open (none of their events is an ``end``), with those filters."""
        where, params = self._event_filters(camera, type, site)
        if where is None:
            return 0
        grouped, params = self._grouped(where, params)
        rows = self._q(f"SELECT COUNT(*) FROM ({grouped}) g WHERE g.ended = 0", params)
        return int(rows[0][0])

    def open_by_camera(self) -> dict[str, tuple[int, str]]:
        """Per camera: ``(open alarms, worst current severity among them)`` (cameras with none left out)."""
        grouped, params = self._grouped(*self._event_filters(None, None, None))
        rows = self._q(
            f"SELECT e.camera, e.severity FROM ({grouped}) g JOIN {{events}} e ON e.stream_seq = g.last"
            " WHERE g.ended = 0",
            params,
        )
        out: dict[str, tuple[int, str]] = {}
        for cam, sev in rows:
            n, worst = out.get(cam, (0, "info"))
            if sev in _SEVERITIES and _SEVERITIES.index(sev) > _SEVERITIES.index(worst):
                worst = sev
            out[cam] = (n + 1, worst)
        return out

    def touched_after(self, after: int, limit: int) -> list[tuple[int, str, str, str]]:
        """The alarm-type events after ``stream_seq`` ``after`` (at most ``limit``, oldest first) as
        ``(stream_seq, alarm key, camera, type)``: what the live feed turns into alarm rows."""
        rows = self._q(
            f"SELECT stream_seq, {_KEY}, camera, type FROM {{events}} WHERE stream_seq > ?"
            f" AND type NOT IN ({','.join('?' * len(NON_ALARM_TYPES))}) ORDER BY stream_seq LIMIT ?",
            (int(after), *NON_ALARM_TYPES, int(limit)),
        )
        return [(int(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    def alarm(self, key: str) -> dict | None:
        """The alarm row of ``key`` (an alarm key, :meth:`alarm_key`), or ``None``."""
        found = self.alarms(keys=[key], limit=1)
        return found[0] if found else None

    def alarm_events(self, key: str, limit: int = 2000) -> list[dict]:
        """The events of the alarm ``key`` in order (camera ``seq``, then arrival), at most ``limit``
        (the latest ones)."""
        where, params = self._key_where(key)
        rows = self._q(
            f"SELECT {_EVENT_COLS.replace('e.', '')} FROM {{events}} WHERE {where}"
            " ORDER BY seq DESC, stream_seq DESC LIMIT ?",
            params + (int(limit),),
        )
        return [stored_event(r[0], r[1], r[2], dict(zip(COLUMNS, r[3:]))) for r in reversed(rows)]

    # ------------------------------------------------------------------ helpers
    def _event_filters(self, camera: str | None, type: str | None, site: str | None) -> tuple[str | None, tuple]:
        """The event-level ``WHERE`` of the alarm reads (``None``: nothing can match)."""
        where = [f"type NOT IN ({','.join('?' * len(NON_ALARM_TYPES))})"]
        params: list[Any] = list(NON_ALARM_TYPES)
        for col, val in (("camera", camera), ("type", type)):
            if val:
                where.append(f"{col} = ?")
                params.append(val)
        if site:
            cams = [c for c in self.distinct("camera") if site_of(c) == site]
            if not cams:
                return None, ()
            where.append(f"camera IN ({','.join('?' * len(cams))})")
            params.extend(cams)
        return " AND ".join(where), tuple(params)

    @staticmethod
    def _grouped(where: str, params: tuple) -> tuple[str, tuple]:
        """The per-alarm aggregate of the events matching ``where`` and its parameters: events with
        an ``alarm_id`` grouped by it (read from the covering index ``events_alarm``), each event
        without one an alarm of its own."""
        ended = "CASE WHEN state = 'end' THEN 1 ELSE 0 END"
        sql = (
            "SELECT alarm_id AS akey, COUNT(*) AS n, MIN(time) AS t0, MAX(time) AS t1, MAX(stream_seq) AS last,"
            f" MAX({_SEV}) AS maxsev, MAX({ended}) AS ended"
            f" FROM {{events}} WHERE alarm_id IS NOT NULL AND {where} GROUP BY alarm_id"
            f" UNION ALL SELECT CAST(id AS TEXT), 1, time, time, stream_seq, {_SEV}, {ended}"
            f" FROM {{events}} WHERE alarm_id IS NULL AND {where}"
        )
        return sql, params + params

    @staticmethod
    def _alarm_row(r: tuple) -> dict:
        key, n, t0, t1, maxsev, ended, action, user, st_time = r[:9]
        last = stored_event(r[9], r[10], r[11], dict(zip(COLUMNS, r[12:])))
        return {
            "id": str(key),
            "camera": last["camera"],
            "type": last["type"],
            "zone": last["payload"].get("zone") if isinstance(last["payload"].get("zone"), str) else None,
            "state": "ended" if ended else "open",
            "severity": last["severity"],
            "max_severity": _SEVERITIES[int(maxsev) - 1] if maxsev else last["severity"],
            "first_time": t0 if isinstance(t0, str) else "",
            "last_time": t1 if isinstance(t1, str) else "",
            "events": int(n),
            "status": _status(action),
            "status_user": user if isinstance(user, str) else None,
            "status_time": st_time if isinstance(st_time, str) else None,
            "last": last,
        }
