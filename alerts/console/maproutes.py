"""The site-map pages: ``/map``, ``/map/{area}``, the plan image and the live markers' JSON.

* ``/map``: the first area of the sites file (a note when the console has none);
* ``/map/{area}``: the plan with an SVG overlay (cameras, fields of view, scale bar, alarm
  markers); ``static/map.js`` follows ``/api/stream`` (the alarm list's feed) and, for each
  event of a camera on this area, asks ``/api/map/{area}/marker/{event_id}`` where it goes;
* ``/map/plan/{area}``: the plan image file (logged-in only, never cached by proxies);
* ``/api/map/{area}/marker/{event_id}``: ``{"marker": ...}`` (:func:`~.sitemap.marker_of`, or
  ``null`` when the event is not drawn on this area).

All need a session (a page redirects to ``/login``, an ``/api/`` URL answers 401). The map is
in plan pixels throughout: the SVG's ``viewBox`` is the plan image's size, so a marker at plan
pixel ``(u, v)`` is drawn where the plan shows that point, whatever the page's zoom.
"""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .context import context_of
from .routes import error_page, render, to_login
from .security import session_of
from .sitemap import Area, SiteMap, marker_of

__all__ = ["MAP_ROUTES", "initial_markers", "scale_bar"]

#: events read per camera for the markers a page starts with (newest first)
START_EVENTS = 100
#: scale-bar lengths tried, metres (the longest under a fifth of the plan's width is drawn)
BAR_STEPS_M = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000)


def sites_of(request: Request) -> SiteMap | None:
    return context_of(request).sites


def scale_bar(area: Area) -> dict:
    """The scale bar: ``{"m": length in metres, "px": length in plan pixels}``."""
    width_m = area.size_px[0] * area.scale
    m = next((s for s in reversed(BAR_STEPS_M) if s <= width_m / 5.0), BAR_STEPS_M[0])
    return {"m": m, "px": round(m / area.scale, 2)}


def initial_markers(db, area: Area) -> list[dict]:
    """The markers of the alarms of ``area``'s cameras whose latest event (among each camera's
    last :data:`START_EVENTS`) is not an end, one per alarm (its latest event), oldest first."""
    latest: dict[str, dict] = {}
    for name in area.cameras:
        for ev in db.events(camera=name, limit=START_EVENTS):
            m = marker_of(area, ev)
            if m is not None and m["alarm"] not in latest:
                latest[m["alarm"]] = {**m, "_seq": ev.get("stream_seq", 0)}
    live = [m for m in latest.values() if m["state"] != "end"]
    live.sort(key=lambda m: m["_seq"])
    for m in live:
        m.pop("_seq")
    return live


def _points(poly) -> str:
    return " ".join(f"{u:.1f},{v:.1f}" for u, v in poly if math.isfinite(u) and math.isfinite(v))


async def map_page(request: Request) -> Response:
    s = session_of(request)
    if s is None:
        return to_login(request)
    sites = sites_of(request)
    name = request.path_params.get("area")
    if name is None and sites is not None and sites.areas:
        name = next(iter(sites.areas))
    area = sites.areas.get(name) if sites is not None and name is not None else None
    if area is None and name is not None:
        return error_page(request, 404, "not_found", s)
    ctx = context_of(request)
    cams = []
    markers = []
    if area is not None:
        for c in area.cameras.values():
            cams.append({"name": c.name, "at": c.at_px, "fov": _points(c.fov_px) if len(c.fov_px) else ""})
        markers = initial_markers(ctx.db, area)
    return render(
        request,
        "map.html",
        session=s,
        area=area,
        areas=list(sites.areas.values()) if sites is not None else [],
        cams=cams,
        markers=markers,
        bar=scale_bar(area) if area is not None else None,
        cursor=ctx.hub.last_seq,
    )


async def plan_image(request: Request) -> Response:
    s = session_of(request)
    if s is None:
        return to_login(request)
    sites = sites_of(request)
    area = sites.areas.get(request.path_params["area"]) if sites is not None else None
    if area is None or not area.plan.is_file():
        return JSONResponse({"error": "not found"}, status_code=404)
    return FileResponse(area.plan, headers={"Cache-Control": "private, max-age=300"})


async def marker(request: Request) -> Response:
    s = session_of(request)
    if s is None:
        return to_login(request)
    sites = sites_of(request)
    area = sites.areas.get(request.path_params["area"]) if sites is not None else None
    if area is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    ev = context_of(request).db.event(request.path_params["event_id"])
    m = marker_of(area, ev) if ev is not None else None
    return JSONResponse({"marker": m}, headers={"Cache-Control": "no-store"})


async def map_root(request: Request) -> Response:
    return RedirectResponse("/map", status_code=303)


#: the site-map URL table (appended to :data:`~.routes.ROUTES` by :func:`~.app.create_app`)
MAP_ROUTES = [
    Route("/map", map_page),
    Route("/map/", map_root),
    Route("/map/plan/{area}", plan_image),
    Route("/map/{area}", map_page),
    Route("/api/map/{area}/marker/{event_id}", marker),
]
