"""The console's Starlette application and :func:`serve` (uvicorn).

Pages (all but ``/login`` and ``/healthz`` need a session): ``/`` live alarm list with
filters; ``/alarm/{id}`` detail, actions and history; ``/cameras`` per-camera overview;
``/transits`` plate search (supervisor, admin); ``/audit`` the access log (supervisor,
admin). ``/api/stream`` is the Server-Sent-Events feed of new alarms (``Last-Event-ID``
resumes). ``/evidence/{id}`` serves an evidence crop from ``evidence_dir`` to logged-in users.

Security: accounts with scrypt-hashed passwords and roles; server-side sessions (random
token in an ``HttpOnly``, ``SameSite=Strict`` cookie, stored by digest; idle and absolute
expiry); CSRF: a per-session token in every form, checked with the ``Origin`` header on
every POST (login uses a double-submit cookie); failed logins throttled per user and
client; a strict Content-Security-Policy (no inline script), ``X-Frame-Options: DENY``.
Behind an HTTPS reverse proxy (which must pass ``Host`` and ``X-Forwarded-Proto``), uvicorn's
proxy headers make the request scheme ``https``: cookies then get ``Secure`` and the
``__Host-`` prefix (``secure_cookies=True`` forces that).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from .db import ACTIONS, NON_ALARM_TYPES, ConsoleDB
from .i18n import LANGS, pick_lang, translator
from .live import Hub, StreamFollower

__all__ = ["create_app", "serve", "heatmap_layer", "heatmap_view"]

log = logging.getLogger("vigil.alerts.console")

HERE = Path(__file__).parent
SEVERITIES = ("info", "warning", "critical")
STATES = ("start", "update", "end")
PLATE_RE = re.compile(r"^[A-Z0-9]{2,10}$")
EVIDENCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
SEARCH_ROLES = ("supervisor", "admin")
_LOGIN_WINDOW_S, _LOGIN_MAX_FAILURES = 300.0, 5


def _summary(payload: dict) -> str:
    from ..tail import summarize_payload

    return summarize_payload(
        {k: v for k, v in payload.items() if k not in ("positions_m", "frame", "rule", "metric")}, 90
    )


def _public(ev: dict, status: dict | None) -> dict:
    p = ev.get("payload") or {}
    return {
        "stream_seq": ev["stream_seq"],
        "id": ev["id"],
        "time": ev["time"],
        "camera": ev["camera"],
        "type": ev["type"],
        "severity": ev["severity"],
        "state": ev["state"],
        "summary": _summary(p),
        "plate": p.get("plate"),
        "status": (status or {}).get("status", "new"),
    }


def birdseye(payload: dict, size: int = 320) -> dict | None:
    """Shapes for the bird's-eye SVG (world metres, y up, drawn y down): people, pair lines, grid."""
    pos = payload.get("positions_m") or {}
    pts = {}
    for k, v in pos.items():
        if (
            isinstance(v, (list, tuple))
            and len(v) == 2
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in v)
        ):
            pts[str(k)] = (float(v[0]), float(v[1]))
    if not pts:
        return None
    xs, ys = [p[0] for p in pts.values()], [p[1] for p in pts.values()]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    span = max(max(xs) - min(xs), max(ys) - min(ys), 4.0) * 1.4
    scale = size / span
    x0, y0 = cx - span / 2, cy - span / 2

    def to_px(x: float, y: float) -> tuple[float, float]:
        return round((x - x0) * scale, 1), round(size - (y - y0) * scale, 1)

    grid = []
    if span <= 60:
        import math

        for gx in range(math.ceil(x0), math.floor(x0 + span) + 1):
            grid.append((to_px(gx, y0)[0], 0, to_px(gx, y0)[0], size))
        for gy in range(math.ceil(y0), math.floor(y0 + span) + 1):
            grid.append((0, to_px(x0, gy)[1], size, to_px(x0, gy)[1]))
    people = [{"id": k, "px": to_px(*v), "m": v} for k, v in pts.items()]
    lines = []
    thr = payload.get("threshold_m", payload.get("threshold"))
    ids = list(pts)
    if len(ids) >= 2 and len(ids) <= 8:
        for i in range(len(ids)):
            for j in range(i + 1, len(ids)):
                a, b = pts[ids[i]], pts[ids[j]]
                d = ((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5
                close = isinstance(thr, (int, float)) and d < thr
                pa, pb = to_px(*a), to_px(*b)
                lines.append(
                    {
                        "a": pa,
                        "b": pb,
                        "d": round(d, 2),
                        "close": close,
                        "mid": ((pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2),
                    }
                )
    return {"size": size, "grid": grid, "people": people, "lines": lines, "scale_m": round(span, 1)}


#: heat map colour ramp (value 0..1 -> colour), yellow to dark red
_HEAT_STOPS = (
    (0.0, (255, 255, 204)),
    (0.25, (254, 217, 118)),
    (0.5, (253, 141, 60)),
    (0.75, (227, 26, 28)),
    (1.0, (128, 0, 38)),
)
_HEAT_MAX_CELLS = 16384


def _heat_colour(q: int) -> str:
    v = q / 255.0
    for (a, ca), (b, cb) in zip(_HEAT_STOPS, _HEAT_STOPS[1:]):
        if v <= b:
            f = (v - a) / (b - a)
            return "#%02x%02x%02x" % tuple(round(x + (y - x) * f) for x, y in zip(ca, cb))
    return "#%02x%02x%02x" % _HEAT_STOPS[-1][1]


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def heatmap_layer(grid: Any, size: int = 240) -> dict | None:
    """Shapes for one layer of a ``heatmap`` event (a compact grid from
    ``vigil.geometry.risk.compact_grid``) as an SVG: cells with a value > 0 (row 0 at the
    bottom: y up), the legend ramp and the scale. ``None`` if the grid is malformed."""
    import base64
    import binascii

    if not isinstance(grid, dict) or grid.get("encoding") != "u8-b64":
        return None
    shape, data, scale, cell = grid.get("shape"), grid.get("data"), grid.get("scale"), grid.get("cell_m")
    origin = grid.get("origin_m")
    if not (
        isinstance(shape, list)
        and len(shape) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
    ):
        return None
    rows, cols = shape
    if rows * cols > _HEAT_MAX_CELLS or not isinstance(data, str) or not _num(scale) or not _num(cell) or cell <= 0:
        return None
    if not (isinstance(origin, list) and len(origin) == 2 and all(_num(v) for v in origin)):
        return None
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != rows * cols:
        return None
    px = size / max(rows, cols)
    w, h = round(cols * px, 1), round(rows * px, 1)
    cells = []
    for i, q in enumerate(raw):
        if q:
            r, c = divmod(i, cols)
            cells.append(
                {
                    "x": round(c * px, 2),
                    "y": round((rows - 1 - r) * px, 2),
                    "fill": _heat_colour(q),
                    "value": round(q / 255.0 * float(scale), 3),
                }
            )
    return {
        "rows": rows,
        "cols": cols,
        "w": w,
        "h": h,
        "px": round(px, 2),
        "cells": cells,
        "scale": round(float(scale), 3),
        "unit": str(grid.get("unit", ""))[:60],
        "cell_m": round(float(cell), 3),
        "origin": [round(float(v), 2) for v in origin],
        "extent": [round(float(origin[0]) + cols * float(cell), 2), round(float(origin[1]) + rows * float(cell), 2)],
        "stops": [{"offset": round(o * 100), "colour": "#%02x%02x%02x" % c} for o, c in _HEAT_STOPS],
    }


def heatmap_view(ev: dict | None, size: int = 240) -> dict | None:
    """The layers of a stored ``heatmap`` event ready for the template, with its time."""
    if not ev:
        return None
    layers = (ev.get("payload") or {}).get("layers")
    if not isinstance(layers, dict):
        return None
    out = []
    for name in ("occupancy", "risk"):
        layer = heatmap_layer(layers.get(name), size)
        if layer is not None:
            out.append({"name": name, **layer})
    return {"time": str(ev.get("time", "")), "id": ev.get("id"), "layers": out} if out else None


def create_app(
    db: ConsoleDB,
    *,
    stream_endpoint: str | None = None,
    configure_socket=None,
    transits: Any = None,
    transits_db: str | Path | None = None,
    evidence_dir: str | Path | None = None,
    secure_cookies: bool = False,
    follow: bool = True,
):
    """The Starlette application over an open :class:`ConsoleDB`.

    ``stream_endpoint``: the aggregator's operator stream (``None``: poll the database).
    ``transits``: an object with ``search_plate(plate, since=None, until=None) -> list[dict]``;
    without one, ``vigil.alerts.transits.TransitStore(transits_db or the events database)`` is
    opened lazily on the first search, if that module exists.
    """
    from contextlib import asynccontextmanager

    import jinja2
    from starlette.applications import Starlette
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
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True, undefined=jinja2.StrictUndefined
    )
    hub = Hub()
    follower = StreamFollower(
        hub,
        endpoint=stream_endpoint,
        start_seq=db.last_stream_seq(),
        configure_socket=configure_socket,
        last_seq_in_db=db.last_stream_seq,
    )
    failures: dict[tuple[str, str], list[float]] = {}
    evidence_root = Path(evidence_dir).resolve() if evidence_dir else None
    transit_state: dict[str, Any] = {"obj": transits}

    def _transits():
        if transit_state["obj"] is None:
            try:
                from ..transits import TransitStore  # built beside the console; optional
            except ImportError:
                return None
            transit_state["obj"] = TransitStore(str(transits_db or db.events_path))
        return transit_state["obj"]

    # ------------------------------------------------------------------ helpers
    def client_of(request: Request) -> str:
        return request.client.host if request.client else ""

    def is_secure(request: Request) -> bool:
        return secure_cookies or request.url.scheme == "https"

    def cookie_name(request: Request) -> str:
        return "__Host-vigil_session" if is_secure(request) else "vigil_session"

    def lang_of(request: Request) -> str:
        return pick_lang(request.cookies.get("vigil_lang"), request.headers.get("accept-language"))

    def session_of(request: Request) -> dict | None:
        return db.session(request.cookies.get(cookie_name(request)))

    def render(request: Request, name: str, status_code: int = 200, **ctx) -> HTMLResponse:
        lang = lang_of(request)
        ctx.setdefault("session", None)
        html = env.get_template(name).render(
            t=translator(lang),
            lang=lang,
            langs=LANGS,
            path=request.url.path,
            query=request.url.query,
            search_roles=SEARCH_ROLES,
            **ctx,
        )
        return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})

    def to_login(request: Request) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "not logged in"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return origin is None  # an old browser without Origin: the token alone decides
        return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"

    async def checked_form(request: Request, session: dict | None, expected: str | None = None):
        form = await request.form()
        token = str(form.get("csrf", ""))
        want = expected if expected is not None else (session or {}).get("csrf", "")
        if not want or not hmac.compare_digest(token.encode(), want.encode()) or not same_origin(request):
            db.audit((session or {}).get("user", "-"), "csrf_refused", request.url.path, "", client_of(request))
            return None
        return form

    def forbidden(request: Request, session: dict, what: str) -> HTMLResponse:
        db.audit(session["user"], "denied", what, f"role={session['role']}", client_of(request))
        return render(request, "error.html", 403, session=session, message_key="forbidden")

    # ------------------------------------------------------------------ auth pages
    async def login_page(request: Request) -> Response:
        if session_of(request):
            return RedirectResponse("/", status_code=303)
        from .auth import new_token

        token = new_token()
        resp = render(request, "login.html", login_csrf=token, error=None)
        resp.set_cookie("vigil_login", token, httponly=True, samesite="strict", secure=is_secure(request), max_age=3600)
        return resp

    async def login(request: Request) -> Response:
        form = await checked_form(request, None, request.cookies.get("vigil_login", ""))
        if form is None:
            return render(request, "error.html", 400, message_key="csrf_failed")
        name = str(form.get("username", "")).strip()[:64]
        password = str(form.get("password", ""))
        key = (name.lower(), client_of(request))
        now = time.monotonic()
        recent = [t for t in failures.get(key, []) if now - t < _LOGIN_WINDOW_S]
        failures[key] = recent
        error = None
        if len(recent) >= _LOGIN_MAX_FAILURES:
            db.audit(name or "-", "login_throttled", "", "", client_of(request))
            error = "login_throttled"
        else:
            user = await run_in_threadpool(db.check_login, name, password)
            if user is None:
                recent.append(now)
                db.audit(name or "-", "login_failed", "", "", client_of(request))
                error = "login_failed"
        if error:
            from .auth import new_token

            token = new_token()
            resp = render(request, "login.html", 401, login_csrf=token, error=error, username=name)
            resp.set_cookie(
                "vigil_login", token, httponly=True, samesite="strict", secure=is_secure(request), max_age=3600
            )
            return resp
        failures.pop(key, None)
        token = db.new_session(user["name"], client_of(request))
        db.audit(user["name"], "login", "", f"role={user['role']}", client_of(request))
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(
            cookie_name(request), token, httponly=True, samesite="strict", secure=is_secure(request), path="/"
        )
        resp.delete_cookie("vigil_login")
        return resp

    async def logout(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return to_login(request)
        if await checked_form(request, s) is None:
            return render(request, "error.html", 400, session=s, message_key="csrf_failed")
        db.end_session(request.cookies.get(cookie_name(request), ""))
        db.audit(s["user"], "logout", "", "", client_of(request))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(cookie_name(request), path="/")
        return resp

    async def set_lang(request: Request) -> Response:
        code = request.path_params["code"]
        nxt = request.query_params.get("next", "/")
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"
        resp = RedirectResponse(nxt, status_code=303)
        if code in LANGS:
            resp.set_cookie("vigil_lang", code, max_age=365 * 86400, samesite="lax", secure=is_secure(request))
        return resp

    # ------------------------------------------------------------------ alarms
    def filters_of(request: Request) -> dict[str, str | None]:
        q = request.query_params
        f = {k: (q.get(k) or None) for k in ("camera", "type", "severity", "state")}
        if f["severity"] not in (None, *SEVERITIES):
            f["severity"] = None
        if f["state"] not in (None, *STATES):
            f["state"] = None
        return f

    async def alarms(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return to_login(request)
        f = filters_of(request)
        rows = db.events(**f, limit=200, exclude_types=NON_ALARM_TYPES)
        st = db.statuses([r["id"] for r in rows])
        items = [_public(r, st.get(r["id"])) for r in rows]
        return render(
            request,
            "alarms.html",
            session=s,
            items=items,
            filters=f,
            cameras=db.distinct("camera"),
            types=[x for x in db.distinct("type") if x not in NON_ALARM_TYPES],
            severities=SEVERITIES,
            states=STATES,
            cursor=max([hub.last_seq] + [i["stream_seq"] for i in items]),
        )

    async def stream(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return to_login(request)
        f = filters_of(request)
        raw = request.headers.get("last-event-id") or request.query_params.get("since") or ""
        try:
            since = max(0, int(raw))
        except ValueError:
            since = hub.last_seq
        token = request.cookies.get(cookie_name(request))

        async def gen():
            cursor = since
            yield "retry: 1000\n\n"
            next_check = time.monotonic() + 15
            while not hub.closing:
                target = hub.last_seq
                rows = db.events(**f, after=cursor, limit=200, exclude_types=NON_ALARM_TYPES)
                st = db.statuses([r["id"] for r in rows]) if rows else {}
                for r in rows:
                    cursor = r["stream_seq"]
                    yield f"id: {cursor}\nevent: alarm\ndata: {json.dumps(_public(r, st.get(r['id'])))}\n\n"
                if len(rows) == 200:
                    continue
                cursor = max(cursor, target)
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + 15
                    if db.session(token) is None:
                        yield "event: logout\ndata: {}\n\n"
                        return
                    yield f"id: {cursor}\n: keep-alive\n\n"
                await hub.wait(cursor, 1.0)

        return StreamingResponse(
            gen(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    async def alarm(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return to_login(request)
        ev = db.event(request.path_params["event_id"])
        if ev is None:
            return render(request, "error.html", 404, session=s, message_key="not_found")
        p = ev.get("payload") or {}
        evidence = p.get("evidence") or p.get("evidence_id")
        evidence_url = None
        if isinstance(evidence, str) and EVIDENCE_RE.match(evidence) and _evidence_path(evidence):
            evidence_url = f"/evidence/{evidence}"
        actions = db.actions(ev["id"])
        status = db.statuses([ev["id"]]).get(ev["id"], {"status": "new"})
        db.audit(s["user"], "alarm_view", ev["id"], "", client_of(request))
        return render(
            request,
            "alarm.html",
            session=s,
            ev=ev,
            p=p,
            status=status,
            actions=actions,
            related=db.related(ev),
            svg=birdseye(p),
            evidence_url=evidence_url,
            extra={k: v for k, v in p.items() if k not in ("positions_m",)},
            lists=p.get("lists") or ([p["list"]] if p.get("list") else []),
        )

    async def alarm_action(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return to_login(request)
        form = await checked_form(request, s)
        if form is None:
            return render(request, "error.html", 400, session=s, message_key="csrf_failed")
        event_id = request.path_params["event_id"]
        action = str(form.get("action", ""))
        if db.event(event_id) is None or action not in ACTIONS:
            return render(request, "error.html", 404, session=s, message_key="not_found")
        db.add_action(event_id, s["user"], action, str(form.get("note", "")), client_of(request))
        hub.publish(hub.last_seq)
        return RedirectResponse(f"/alarm/{event_id}", status_code=303)

    def _evidence_path(evidence_id: str) -> Path | None:
        if evidence_root is None:
            return None
        for ext in (".jpg", ".jpeg", ".png", ".webp"):
            path = (evidence_root / f"{evidence_id}{ext}").resolve()
            if path.parent == evidence_root and path.is_file():
                return path
        return None

    async def evidence(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return to_login(request)
        eid = request.path_params["evidence_id"]
        path = _evidence_path(eid) if EVIDENCE_RE.match(eid) else None
        if path is None:
            return PlainTextResponse("not found", status_code=404)
        db.audit(s["user"], "evidence_view", eid, "", client_of(request))
        return FileResponse(path, headers={"Cache-Control": "private, no-store"})

    # ------------------------------------------------------------------ cameras, transits, audit
    async def cameras(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return to_login(request)
        cams = db.camera_overview()
        for c in cams:
            c["heat"] = heatmap_view(c.pop("heatmap", None))
        return render(request, "cameras.html", session=s, cams=cams)

    async def transits_page(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return to_login(request)
        if s["role"] not in SEARCH_ROLES:
            return forbidden(request, s, "transits")
        q = request.query_params
        plate = re.sub(r"[\s-]", "", q.get("plate", "")).upper()
        since, until = q.get("since") or None, q.get("until") or None
        results, error = None, None
        if plate:
            if not PLATE_RE.match(plate):
                error = "bad_plate"
            else:
                store = _transits()
                db.audit(
                    s["user"], "transit_search", plate, json.dumps({"since": since, "until": until}), client_of(request)
                )
                if store is None:
                    error = "transits_unavailable"
                else:
                    results = await run_in_threadpool(store.search_plate, plate, since=since, until=until)
        columns = []
        for r in results or []:
            for k in r:
                if k not in columns:
                    columns.append(k)
        return render(
            request,
            "transits.html",
            session=s,
            plate=plate,
            since=since or "",
            until=until or "",
            results=results,
            columns=columns,
            error=error,
            searches=db.audit_log(20, "transit_search") if s["role"] == "admin" else [],
        )

    async def audit_page(request: Request) -> Response:
        s = session_of(request)
        if s is None:
            return to_login(request)
        if s["role"] not in SEARCH_ROLES:
            return forbidden(request, s, "audit")
        return render(
            request, "audit.html", session=s, rows=db.audit_log(500, request.query_params.get("action") or None)
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "last_stream_seq": hub.last_seq})

    @asynccontextmanager
    async def lifespan(app):
        if follow:
            follower.start()
        try:
            yield
        finally:
            hub.close()
            if follow:
                follower.stop()

    app = Starlette(
        routes=[
            Route("/login", login_page),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
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
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.follower = follower
    app.state.db = db
    return _SecurityHeaders(app)


_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class _SecurityHeaders:
    """Pure ASGI wrapper (streaming responses untouched) adding the security headers; HSTS on https."""

    def __init__(self, app) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + _HEADERS
                if scope.get("scheme") == "https":
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def serve(
    db: ConsoleDB, *, host: str = "127.0.0.1", port: int = 8080, forwarded_allow_ips: str | None = None, **kwargs
) -> int:
    """Run the console until interrupted. ``forwarded_allow_ips``: the reverse proxy's address(es)
    whose ``X-Forwarded-Proto``/``-For`` are trusted (default: loopback only)."""
    import uvicorn

    app = create_app(db, **kwargs)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips or "127.0.0.1",
        timeout_graceful_shutdown=3,
        server_header=False,
    )
    return 0
