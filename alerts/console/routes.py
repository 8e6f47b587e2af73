"""The console's pages and feeds: one module-level handler per route, and :data:`ROUTES`.

Every handler reads its dependencies from the request's :class:`~.context.ConsoleContext`
(``request.app.state.console``). All pages but ``/login``, ``/lang/...`` and ``/healthz`` (the
container health check: ``200 ok`` when the database answers a trivial query, else 503; not
audited) need a session: without one a page redirects to ``/login`` (303), an ``/api/`` URL
answers 401. ``/transits`` and ``/audit`` need the supervisor or admin role (403 otherwise, logged as
``denied``). Every POST is CSRF-checked (400 when refused).

Logins are refused without a password check while :class:`~.context.LoginThrottle` says so
(per user and client, per client, per user, overall); the first refusal of each kind in its
window is audited (``login_throttled``, with which count refused), not every attempt of a
flood. ``/account`` changes one's own password (the current one is checked and its failures
count as failed logins); that ends every other session of the user and keeps the one that
made the change. Events are drawn only through :mod:`.views` (a stored event of any shape
renders, with an "unreadable payload" marker for what could not be read). ``/transits``
takes ``since``/``until`` as ISO 8601 (a date, a date and time, with ``Z`` or an offset;
naive is UTC; a date alone as ``until`` means the end of that day) or epoch seconds
(``0`` included); anything else answers 400 naming the field.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from vigil.plates.transits import TransitError

from .alarmdb import ALARM_STATES, SORTS, STATUSES, site_of
from .context import ConsoleContext, context_of
from .db import ACTIONS, NON_ALARM_TYPES
from .i18n import LANGS, pick_lang, translator
from .pictures import alarm_media
from .security import (
    LOGIN_COOKIE,
    checked_form,
    client_of,
    cookie_name,
    is_secure,
    new_login_token,
    session_of,
    set_login_cookie,
)
from .views import alarm_detail, alarm_row, heatmap_view, lifecycle_row, single_alarm, transit_table
from .words import type_name

log = logging.getLogger(__name__)

__all__ = ["ROUTES", "SEARCH_ROLES", "SEVERITIES", "STATES", "parse_time"]

SEVERITIES = ("info", "warning", "critical")
#: the alarm list's state filter: open (no end event yet) or ended
STATES = ALARM_STATES
PLATE_RE = re.compile(r"^[A-Z0-9]{2,10}$")
EVIDENCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
SEARCH_ROLES = ("supervisor", "admin")
#: rows per page of the alarm list and per read of the live feed
PAGE_ROWS = 200
#: the live feed re-checks its session (and sends a keep-alive) this often
FEED_CHECK_S = 15.0
#: transit search times: epoch seconds from 0 up to this (the year 3000)
MAX_EPOCH_S = 32503680000.0
_EPOCH_RE = re.compile(r"^\d{1,12}(\.\d{1,9})?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(text: str, *, end_of_day: bool = False) -> float:
    """Epoch seconds from a ``/transits`` time (route docstring); ``ValueError`` otherwise.
    ``end_of_day``: a date alone is the last millisecond of that day (for ``until``)."""
    text = text.strip()
    if _EPOCH_RE.match(text):
        value = float(text)
    else:
        if len(text) > 40:
            raise ValueError(text)
        try:
            dt = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            if end_of_day and _DATE_RE.match(text):
                dt += timedelta(days=1, milliseconds=-1)
            value = dt.timestamp()
        except (OverflowError, OSError):
            raise ValueError(text) from None
    if not (math.isfinite(value) and 0.0 <= value <= MAX_EPOCH_S):
        raise ValueError(text)
    return value


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ---------------------------------------------------------------------- helpers
def lang_of(request: Request) -> str:
    return pick_lang(request.cookies.get("vigil_lang"), request.headers.get("accept-language"))


def render(request: Request, name: str, status_code: int = 200, **values) -> HTMLResponse:
    """The template ``name`` with the page-wide values (translator, language, path, roles)."""
    lang = lang_of(request)
    values.setdefault("session", None)
    html = (
        context_of(request)
        .templates.get_template(name)
        .render(
            t=translator(lang),
            lang=lang,
            langs=LANGS,
            path=request.url.path,
            query=request.url.query,
            search_roles=SEARCH_ROLES,
            **values,
        )
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def to_login(request: Request) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "not logged in"}, status_code=401)
    return RedirectResponse("/login", status_code=303)


def forbidden(request: Request, session: dict, what: str) -> HTMLResponse:
    context_of(request).db.audit(session["user"], "denied", what, f"role={session['role']}", client_of(request))
    return render(request, "error.html", 403, session=session, message_key="forbidden")


def error_page(request: Request, status_code: int, message_key: str, session: dict | None = None) -> HTMLResponse:
    return render(request, "error.html", status_code, session=session, message_key=message_key)


def login_form(request: Request, status_code: int = 200, **values) -> HTMLResponse:
    """The login page with a fresh double-submit CSRF token (in the form and its cookie)."""
    token = new_login_token()
    resp = render(request, "login.html", status_code, login_csrf=token, **values)
    set_login_cookie(request, resp, token)
    return resp


def filters_of(request: Request) -> dict[str, str | None]:
    """The alarm-list filters from the query string: ``site`` (a camera name's part before the
    first ``-`` or ``/``), ``camera``, ``type``, ``severity`` (highest seen), ``state``
    (``open`` | ``ended``), ``status`` (``new`` | ``acknowledged`` | ``closed``); unknown
    severities, states and statuses are ignored. ``sort`` (``priority`` | ``age``) is read by
    :func:`sort_of`."""
    q = request.query_params
    f = {k: (q.get(k) or None) for k in ("site", "camera", "type", "severity", "state", "status")}
    for key, allowed in (("severity", SEVERITIES), ("state", STATES), ("status", tuple(STATUSES))):
        if f[key] not in (None, *allowed):
            f[key] = None
    return f


def sort_of(request: Request) -> str:
    s = request.query_params.get("sort")
    return s if s in SORTS else SORTS[0]


# ---------------------------------------------------------------------- auth pages
async def login_page(request: Request) -> Response:
    if session_of(request):
        return RedirectResponse("/", status_code=303)
    return login_form(request, error=None)


async def login(request: Request) -> Response:
    ctx = context_of(request)
    db = ctx.db
    form = await checked_form(request, None, request.cookies.get(LOGIN_COOKIE, ""))
    if form is None:
        return error_page(request, 400, "csrf_failed")
    name = str(form.get("username", "")).strip()[:64]
    password = str(form.get("password", ""))
    client = client_of(request)
    now = time.monotonic()
    error = None
    refused = ctx.logins.refused(name, client, now)
    if refused:
        if ctx.logins.first_refusal(refused, name, client, now):
            db.audit(name or "-", "login_throttled", "", f"by={refused}", client)
        error = "login_throttled"
    else:
        user = await run_in_threadpool(db.check_login, name, password)
        if user is None:
            ctx.logins.record_failure(name, client, now)
            db.audit(name or "-", "login_failed", "", "", client)
            error = "login_failed"
    if error:
        return login_form(request, 401, error=error, username=name)
    ctx.logins.clear(name, client)
    token = db.new_session(user["name"], client)
    db.audit(user["name"], "login", "", f"role={user['role']}", client)
    resp = RedirectResponse("/", status_code=303)
    resp.set_cookie(cookie_name(request), token, httponly=True, samesite="strict", secure=is_secure(request), path="/")
    resp.delete_cookie(LOGIN_COOKIE)
    return resp


async def logout(request: Request) -> Response:
    db = context_of(request).db
    s = session_of(request)
    if s is None:
        return to_login(request)
    if await checked_form(request, s) is None:
        return error_page(request, 400, "csrf_failed", s)
    db.end_session(request.cookies.get(cookie_name(request), ""))
    db.audit(s["user"], "logout", "", "", client_of(request))
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(cookie_name(request), path="/")
    return resp


async def account_page(request: Request) -> Response:
    s = session_of(request)
    if s is None:
        return to_login(request)
    changed = request.query_params.get("changed") == "1"
    return render(request, "account.html", session=s, error=None, changed=changed)


async def change_password(request: Request) -> Response:
    """A user's own password change: the current password, the new one twice. Ends every
    other session of the user (this one is kept); audited either way."""
    ctx = context_of(request)
    db = ctx.db
    s = session_of(request)
    if s is None:
        return to_login(request)
    form = await checked_form(request, s)
    if form is None:
        return error_page(request, 400, "csrf_failed", s)
    client = client_of(request)
    current, new, repeat = (str(form.get(k, "")) for k in ("current", "new", "repeat"))
    now = time.monotonic()
    error = None
    if ctx.logins.refused(s["user"], client, now):
        error = "login_throttled"
    elif new != repeat:
        error = "password_mismatch"
    elif not 8 <= len(new) <= 1024:
        error = "password_invalid"
    elif await run_in_threadpool(db.check_login, s["user"], current) is None:
        ctx.logins.record_failure(s["user"], client, now)
        error = "password_wrong"
    if error is None:
        try:
            ended = db.set_password(s["user"], new, keep_token=request.cookies.get(cookie_name(request)))
        except ValueError:
            error = "password_invalid"
    if error is not None:
        db.audit(s["user"], "password_change_failed", s["user"], error, client)
        return render(request, "account.html", 400, session=s, error=error, changed=False)
    db.audit(s["user"], "password_change", s["user"], f"sessions_ended={ended}", client)
    return RedirectResponse("/account?changed=1", status_code=303)


async def set_lang(request: Request) -> Response:
    code = request.path_params["code"]
    nxt = request.query_params.get("next", "/")
    if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:  # "/\\x" is "//x" to browsers
        nxt = "/"
    resp = RedirectResponse(nxt, status_code=303)
    if code in LANGS:
        resp.set_cookie("vigil_lang", code, max_age=365 * 86400, samesite="lax", secure=is_secure(request))
    return resp


# ---------------------------------------------------------------------- alarms
async def alarms(request: Request) -> Response:
    """The alarm list: one row per alarm (not per event), filtered, by priority or age, with
    the number of open alarms matching the site, camera and type filters."""
    ctx = context_of(request)
    db = ctx.db
    s = session_of(request)
    if s is None:
        return to_login(request)
    f = filters_of(request)
    sort = sort_of(request)
    lang = lang_of(request)
    rows = await run_in_threadpool(lambda: db.alarms(**f, sort=sort, limit=PAGE_ROWS))
    items = [alarm_row(a, lang) for a in rows]
    n_open = await run_in_threadpool(lambda: db.open_count(camera=f["camera"], type=f["type"], site=f["site"]))
    return render(
        request,
        "alarms.html",
        session=s,
        items=items,
        filters=f,
        sort=sort,
        sorts=SORTS,
        open_count=n_open,
        sites=db.sites(),
        cameras=db.distinct("camera"),
        types=[x for x in db.distinct("type") if x not in NON_ALARM_TYPES],
        severities=SEVERITIES,
        states=STATES,
        statuses=tuple(STATUSES),
        type_name=lambda x: type_name(x, lang),
        cursor=max([ctx.hub.last_seq] + [i["stream_seq"] for i in items]),
    )


def _feed_batch(
    ctx: ConsoleContext, filters: dict[str, str | None], cursor: int, lang: str
) -> tuple[int, list[str], bool]:
    """One read of the live feed after ``cursor``: the new cursor, the messages (an ``alarm``
    per alarm its new events touched and the filters keep, a ``drop`` per one they no longer
    keep, then the ``count`` of open alarms when anything changed) and whether the read was
    full (more may follow at once)."""
    db = ctx.db
    touched = db.touched_after(cursor, PAGE_ROWS)
    full = len(touched) == PAGE_ROWS
    if not touched:
        return cursor, [], False
    keys: list[str] = []
    for _, key, camera, etype in touched:
        if filters.get("camera") and camera != filters.get("camera"):
            continue
        if filters.get("type") and etype != filters.get("type"):
            continue
        if filters.get("site") and site_of(camera) != filters.get("site"):
            continue
        if key not in keys:
            keys.append(key)
    cursor = touched[-1][0]
    if not keys:
        return cursor, [], full
    found = {a["id"]: a for a in db.alarms(**filters, keys=keys, limit=len(keys))}
    out = []
    for key in keys:
        if key in found:
            out.append(f"id: {cursor}\nevent: alarm\ndata: {json.dumps(alarm_row(found[key], lang))}\n\n")
        else:
            out.append(f"id: {cursor}\nevent: drop\ndata: {json.dumps({'id': key})}\n\n")
    n_open = db.open_count(camera=filters.get("camera"), type=filters.get("type"), site=filters.get("site"))
    out.append(f"id: {cursor}\nevent: count\ndata: {json.dumps({'open': n_open})}\n\n")
    return cursor, out, full


async def alarm_feed(
    ctx: ConsoleContext, filters: dict[str, str | None], since: int, token: str | None, lang: str = "it"
) -> AsyncIterator[str]:
    """Server-Sent Events: the alarms that events after ``since`` (``stream_seq``) touched, as
    whole rows (``alarm``: the browser replaces that alarm's row), ``drop`` for an alarm that
    no longer matches the filters, ``count`` (open alarms), then more as the hub signals new
    events; every :data:`FEED_CHECK_S` the session is checked (``logout`` event when it has
    ended) and a keep-alive carries the cursor."""
    hub, db = ctx.hub, ctx.db
    cursor = since
    yield "retry: 1000\n\n"
    next_check = time.monotonic() + FEED_CHECK_S
    while not hub.closing:
        target = hub.last_seq
        cursor, messages, full = await run_in_threadpool(_feed_batch, ctx, filters, cursor, lang)
        for m in messages:
            yield m
        if full:
            continue
        cursor = max(cursor, target)
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + FEED_CHECK_S
            if db.session(token) is None:
                yield "event: logout\ndata: {}\n\n"
                return
            yield f"id: {cursor}\n: keep-alive\n\n"
        await hub.wait(cursor, 1.0)


async def stream(request: Request) -> Response:
    ctx = context_of(request)
    s = session_of(request)
    if s is None:
        return to_login(request)
    f = filters_of(request)
    raw = request.headers.get("last-event-id") or request.query_params.get("since") or ""
    try:
        since = max(0, int(raw))
    except ValueError:
        since = ctx.hub.last_seq
    token = request.cookies.get(cookie_name(request))
    return StreamingResponse(
        alarm_feed(ctx, f, since, token, lang_of(request)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def alarm(request: Request) -> Response:
    """An alarm's page: ``/alarm/{alarm_id}``; an event's id redirects (303) to its alarm's page.
    Its current fields, all its events in order (lifecycle), the operator actions."""
    ctx = context_of(request)
    db = ctx.db
    s = session_of(request)
    if s is None:
        return to_login(request)
    some_id = request.path_params["event_id"]
    key = db.alarm_key(some_id)
    if key is not None and key != some_id:
        return RedirectResponse(f"/alarm/{key}", status_code=303)
    lang = lang_of(request)
    if key is not None:
        a = db.alarm(key)
        events = db.alarm_events(key) if a is not None else []
    else:
        ev = db.event(some_id)  # an event of no alarm (a heat map): shown on its own
        a = single_alarm(ev) if ev is not None else None
        events = [ev] if ev is not None else []
    if a is None:
        return error_page(request, 404, "not_found", s)
    ev = a["last"]
    detail = alarm_detail(ev, lang)
    evidence = detail["evidence"]
    evidence_url = None
    if evidence and EVIDENCE_RE.match(evidence) and ctx.evidence_path(evidence):
        evidence_url = f"/evidence/{evidence}"
    db.audit(s["user"], "alarm_view", a["id"], "", client_of(request))
    return render(
        request,
        "alarm.html",
        session=s,
        ev=ev,
        a=alarm_row(a, lang),
        d=detail,
        actions=db.actions(a["id"]) if key is not None else [],
        related=[lifecycle_row(r, lang) for r in events],
        evidence_url=evidence_url,
        media=alarm_media(events, ctx.evidence_root),
    )


async def alarm_action(request: Request) -> Response:
    """An operator action (ack, close, reopen, note) on the alarm an alarm id or an event id
    names; redirects to the alarm's page."""
    ctx = context_of(request)
    db = ctx.db
    s = session_of(request)
    if s is None:
        return to_login(request)
    form = await checked_form(request, s)
    if form is None:
        return error_page(request, 400, "csrf_failed", s)
    some_id = request.path_params["event_id"]
    action = str(form.get("action", ""))
    if action not in ACTIONS or db.alarm_key(some_id) is None:
        return error_page(request, 404, "not_found", s)
    key = db.add_action(some_id, s["user"], action, str(form.get("note", "")), client_of(request))
    ctx.hub.publish(ctx.hub.last_seq)
    return RedirectResponse(f"/alarm/{key}", status_code=303)


async def evidence(request: Request) -> Response:
    ctx = context_of(request)
    s = session_of(request)
    if s is None:
        return to_login(request)
    eid = request.path_params["evidence_id"]
    path = ctx.evidence_path(eid) if EVIDENCE_RE.match(eid) else None
    if path is None:
        return PlainTextResponse("not found", status_code=404)
    ctx.db.audit(s["user"], "evidence_view", eid, "", client_of(request))
    return FileResponse(path, headers={"Cache-Control": "private, no-store"})


# ---------------------------------------------------------------------- cameras, transits, audit
async def cameras(request: Request) -> Response:
    s = session_of(request)
    if s is None:
        return to_login(request)
    cams = context_of(request).db.camera_overview()
    for c in cams:
        c["heat"] = heatmap_view(c.pop("heatmap", None))
    return render(request, "cameras.html", session=s, cams=cams)


async def transits_page(request: Request) -> Response:
    ctx = context_of(request)
    db = ctx.db
    s = session_of(request)
    if s is None:
        return to_login(request)
    if s["role"] not in SEARCH_ROLES:
        return forbidden(request, s, "transits")
    q = request.query_params
    plate = re.sub(r"[\s-]", "", q.get("plate", "")).upper()
    since, until = (q.get("since") or "").strip(), (q.get("until") or "").strip()
    results, error, bad_field, status_code = None, None, None, 200
    bounds: dict[str, float | None] = {"since": None, "until": None}
    for field_name, text in (("since", since), ("until", until)):
        if text:
            try:
                bounds[field_name] = parse_time(text, end_of_day=field_name == "until")
            except ValueError:
                error, bad_field, status_code = "bad_time", field_name, 400
                break
    if error is None and plate:
        if not PLATE_RE.match(plate):
            error = "bad_plate"
        else:
            store = ctx.transit_store()
            window = {k: (_iso(v) if v is not None else None) for k, v in bounds.items()}
            db.audit(s["user"], "transit_search", plate, json.dumps(window), client_of(request))
            try:
                results = await run_in_threadpool(
                    store.search_plate, plate, since=bounds["since"], until=bounds["until"]
                )
            except TransitError as exc:  # no usable plate key: the search cannot be answered
                log.error("console: transit search refused: %s", exc)
                error, status_code = "search_unavailable", 503
    columns, rows = transit_table(results)
    return render(
        request,
        "transits.html",
        status_code,
        session=s,
        plate=plate,
        since=since[:40],
        until=until[:40],
        results=rows if results is not None else None,
        columns=columns,
        error=error,
        bad_field=bad_field,
        searches=db.audit_log(20, "transit_search") if s["role"] == "admin" else [],
    )


async def audit_page(request: Request) -> Response:
    s = session_of(request)
    if s is None:
        return to_login(request)
    if s["role"] not in SEARCH_ROLES:
        return forbidden(request, s, "audit")
    rows = context_of(request).db.audit_log(500, request.query_params.get("action") or None)
    return render(request, "audit.html", session=s, rows=rows)


async def healthz(request: Request) -> Response:
    """The container health check: ``200 ok`` when the database answers a trivial query,
    ``503 unavailable`` otherwise. No session, no CSRF, not audited."""
    ok = await run_in_threadpool(context_of(request).db.ping)
    return PlainTextResponse(
        "ok" if ok else "unavailable", status_code=200 if ok else 503, headers={"Cache-Control": "no-store"}
    )


#: the console's URL table (the static files are mounted by :func:`~.app.create_app`)
ROUTES = [
    Route("/login", login_page),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/account", account_page),
    Route("/account", change_password, methods=["POST"]),
    Route("/lang/{code}", set_lang),
    Route("/", alarms),
    Route("/api/stream", stream),
    Route("/alarm/{event_id}", alarm),
    Route("/alarm/{event_id}/action", alarm_action, methods=["POST"]),
    Route("/evidence/{evidence_id}", evidence),
    Route("/cameras", cameras),
    Route("/transits", transits_page),
    Route("/audit", audit_page),
    Route("/healthz", healthz),
]
