"""Operator actions to every open browser: ``/api/actions`` (Server-Sent Events).

The source of truth is the ``console_actions`` table, so several console processes sharing one
database all see every action. Per process, one :class:`ActionWatch` thread (started and stopped
by the application's lifespan) polls the table's highest ``id`` every :data:`POLL_S` seconds and
wakes the feeds through a :class:`~.live.Hub` (whose ``last_seq`` is then an action id). Each
browser connection reads the actions after its own cursor itself, so a reconnection
(``Last-Event-ID``: the last action id it got) neither loses nor repeats one.

Each message is ``event: action``, ``id: <action id>``, data (JSON)::

    {"id": 12, "event_id": "<the id the action was given through>", "alarm_id": "<its alarm>",
     "action": "ack", "user": "alice", "time": "2026-...Z", "note": "...",
     "action_text": "acknowledged", "status": "acknowledged", "status_text": "acknowledged",
     "status_label": "acknowledged (by alice)"}

``status`` is the alarm's status after the actions read so far (a note leaves it as it was);
the texts are in the connection's language. ``static/live-actions.js`` updates the rows whose
``data-alarm`` or ``data-id`` is the alarm's id (or the event's), the ``#alarm-status`` badge and
the ``#history`` table of that alarm's page. Every :data:`FEED_CHECK_S` the session is checked
(``logout`` when it has ended) and a keep-alive is sent.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .i18n import pick_lang, translator
from .live import Hub
from .security import cookie_name, session_of

log = logging.getLogger("vigil.alerts.console")

__all__ = ["ACTION_ROUTES", "ActionWatch", "action_messages", "actions_after", "last_action_id"]

#: seconds between two reads of the highest action id (per console process)
POLL_S = 0.25
#: actions read per database query of a feed
BATCH = 200
#: seconds between session checks (and keep-alives) of an open feed
FEED_CHECK_S = 15.0
_STATUS = {"ack": "acknowledged", "close": "closed", "reopen": "new"}
#: the history table's words for an action (as alarm.html names them)
_ACTION_KEY = {"ack": "ack", "close": "closed", "reopen": "reopen", "note": "note_action"}


def last_action_id(db) -> int:
    """The highest ``console_actions.id`` (0: none yet) of a :class:`~.db.ConsoleDB` (its
    ``_q``: one statement under its lock; these reads live here to leave db.py alone)."""
    return int(db._q("SELECT COALESCE(MAX(id), 0) FROM console_actions")[0][0])


def actions_after(db, after: int, limit: int = BATCH) -> list[dict]:
    """The actions with ``id > after``, oldest first, at most ``limit``: ``id``, ``event_id``,
    ``alarm_id`` (the event id itself for an action recorded without one), ``time``, ``user``,
    ``action``, ``note``."""
    rows = db._q(
        'SELECT id, event_id, alarm_id, time, "user", action, note FROM console_actions'
        " WHERE id > ? ORDER BY id LIMIT ?",
        (int(after), int(limit)),
    )
    out = []
    for r in rows:
        text = ["" if v is None else (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)) for v in r[1:]]
        event_id, alarm_id, t, user, action, note = text
        out.append(
            {
                "id": int(r[0]),
                "event_id": event_id,
                "alarm_id": alarm_id or event_id,
                "time": t,
                "user": user,
                "action": action,
                "note": note,
            }
        )
    return out


def action_messages(db, after: int, lang: str, limit: int = BATCH) -> tuple[int, list[str]]:
    """One read of the feed after action id ``after``: the new cursor and the SSE messages (one
    per action, with the status of its alarm after it, texts in ``lang``)."""
    acts = actions_after(db, after, limit)
    if not acts:
        return after, []
    t = translator(lang)
    out = []
    for a in acts:
        status, user = _status_after(db, a)
        label = t(status) + (f" ({t('by')} {user})" if user and status != "new" else "")
        msg = {
            **a,
            "action_text": t(_ACTION_KEY.get(a["action"], a["action"])),
            "status": status,
            "status_text": t(status),
            "status_user": user,
            "status_label": label,
        }
        out.append(f"id: {a['id']}\nevent: action\ndata: {json.dumps(msg)}\n\n")
    return acts[-1]["id"], out


def _status_after(db, a: dict) -> tuple[str, str]:
    """The alarm's status just after action ``a`` and who set it (``("new", "")``: nobody): its
    own for ack/close/reopen; for a note, the latest earlier non-note action's on that alarm."""
    if a["action"] in _STATUS:
        return _STATUS[a["action"]], a["user"]
    rows = db._q(
        'SELECT action, "user" FROM console_actions WHERE alarm_id = ? AND action != ? AND id < ?'
        " ORDER BY id DESC LIMIT 1",
        (a["alarm_id"], "note", a["id"]),
    )
    if not rows:
        return "new", ""
    return _STATUS.get(str(rows[0][0]), "new"), str(rows[0][1])


class ActionWatch:
    """One thread per console process: polls the highest action id of ``db`` every ``poll_s``
    seconds and publishes it to :attr:`hub` (whose ``last_seq`` is the highest action id seen)."""

    def __init__(self, db, poll_s: float = POLL_S) -> None:
        self.db = db
        self.poll_s = poll_s
        self.hub = Hub()
        self.running = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self.hub.publish(last_action_id(db))
        except Exception as exc:  # noqa: BLE001 - the feed reads the database itself anyway
            log.warning("console: cannot read the action table: %s", exc)

    def start(self) -> "ActionWatch":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vigil-console-actions", daemon=True)
        self.running = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.hub.close()
        if self._thread is not None:
            self._thread.join(5)
        self.running = False

    def _run(self) -> None:
        seen = -1
        while not self._stop.wait(self.poll_s):
            try:
                newest = last_action_id(self.db)
                if newest != seen:  # wake the feeds only when there is something new
                    seen = newest
                    self.hub.publish(newest)
            except Exception as exc:  # noqa: BLE001 - keep polling through a transient database error
                log.warning("console: cannot read the action table: %s", exc)


async def action_feed(watch: ActionWatch, db, since: int, token: str | None, lang: str) -> AsyncIterator[str]:
    """The ``/api/actions`` stream after action id ``since`` (module docstring)."""
    hub = watch.hub
    cursor = since
    yield "retry: 1000\n\n"
    next_check = time.monotonic() + FEED_CHECK_S
    while not hub.closing:
        cursor, messages = await run_in_threadpool(action_messages, db, cursor, lang)
        for m in messages:
            yield m
        if len(messages) >= BATCH:
            continue
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + FEED_CHECK_S
            if db.session(token) is None:
                yield "event: logout\ndata: {}\n\n"
                return
            yield f"id: {cursor}\n: keep-alive\n\n"
        # the watcher wakes this on a new action; without it (no lifespan) read again each second
        await hub.wait(cursor, FEED_CHECK_S if watch.running else 1.0)


async def actions_stream(request: Request) -> Response:
    """``/api/actions``: needs a session (401 otherwise). Starts after ``Last-Event-ID`` or
    ``?since=`` (an action id), else after the newest action now."""
    s = session_of(request)
    if s is None:
        return JSONResponse({"error": "not logged in"}, status_code=401)
    watch: ActionWatch = request.app.state.actions
    db = request.app.state.console.db
    raw = request.headers.get("last-event-id") or request.query_params.get("since") or ""
    try:
        since = max(0, int(raw))
    except ValueError:
        since = last_action_id(db)  # from now on
    lang = pick_lang(request.cookies.get("vigil_lang"), request.headers.get("accept-language"))
    return StreamingResponse(
        action_feed(watch, db, since, request.cookies.get(cookie_name(request)), lang),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


#: the live-actions feed (registered by :func:`~.app.create_app`)
ACTION_ROUTES = [Route("/api/actions", actions_stream)]
