"""The console's pictures of the scene: live tiles and alarm clips.

* ``/tiles``: a grid of the cameras' live tiles (``static/tiles.js`` reloads each picture every
  :data:`TILE_REFRESH_MS`); the cameras are those with a tile in the tiles folder;
* ``/tile/{camera}``: the camera's latest tile (``<tiles_dir>/<camera>.jpg``, written by the edge
  node's :mod:`vigil.edge.media`: privacy-masked, with the overlay), ``Cache-Control: no-store``,
  404 when there is none. Tiles are not evidence (overwritten every second, no history), so
  fetching one is not logged: the page view is (``tiles_view``);
* ``/clip/{id}``: a plate hit's clip (``<evidence_dir>/<id>.mp4``, H.264), logged like every
  evidence view (``evidence_view``, detail ``clip``), ``private, no-store``; Starlette answers
  HTTP range requests, so browsers can seek.

All need a session (a page redirects to ``/login``). Alarm snapshots are evidence images like
the plate crops: ``/evidence/{snapshot_id}`` serves them (:mod:`.routes`); which pictures an
alarm has: :func:`.pictures.alarm_media`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from .context import context_of
from .pictures import CAMERA_RE, EVIDENCE_ID_RE, file_inside, tile_cameras
from .routes import render, to_login
from .security import client_of, session_of

__all__ = ["MEDIA_ROUTES", "TILE_REFRESH_MS"]

#: how often the tiles page reloads each tile, milliseconds
TILE_REFRESH_MS = 2000


async def tiles_page(request: Request) -> Response:
    s = session_of(request)
    if s is None:
        return to_login(request)
    ctx = context_of(request)
    root = getattr(ctx, "tiles_root", None)
    ctx.db.audit(s["user"], "tiles_view", "", "", client_of(request))
    return render(
        request,
        "tiles.html",
        session=s,
        cams=tile_cameras(root),
        configured=root is not None,
        refresh_ms=TILE_REFRESH_MS,
    )


async def tile(request: Request) -> Response:
    s = session_of(request)
    if s is None:
        return to_login(request)
    camera = request.path_params["camera"]
    path = (
        file_inside(getattr(context_of(request), "tiles_root", None), f"{camera}.jpg")
        if CAMERA_RE.match(camera)
        else None
    )
    if path is None:
        return PlainTextResponse("no tile", status_code=404, headers={"Cache-Control": "no-store"})
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


async def clip(request: Request) -> Response:
    ctx = context_of(request)
    s = session_of(request)
    if s is None:
        return to_login(request)
    cid = request.path_params["clip_id"]
    path = file_inside(ctx.evidence_root, f"{cid}.mp4") if EVIDENCE_ID_RE.match(cid) else None
    if path is None:
        return PlainTextResponse("not found", status_code=404)
    if "range" not in request.headers or request.headers["range"].startswith("bytes=0-"):
        ctx.db.audit(s["user"], "evidence_view", cid, "clip", client_of(request))  # once per playback, not per range
    return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, no-store"})


MEDIA_ROUTES = [
    Route("/tiles", tiles_page),
    Route("/tile/{camera}", tile),
    Route("/clip/{clip_id}", clip),
]
