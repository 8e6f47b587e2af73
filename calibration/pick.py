"""``vigil calibrate pick``: a local web page to pick ground points on a camera frame.

The page shows one frame of the source. The installer clicks a point on the image (the
pixel fills in, and can be corrected by typing), types its ground coordinates in metres
and adds it; after 4 points the fit runs on every change and each point shows its
residual (metres on the ground, pixels in the image; outliers in red), with the model's
1 m grid drawn over the frame. "Save" writes the Vigil calibration file (atomically) and a
points file beside it (``<output>.points.yaml``) so the session can be resumed with
``--points``.

Served by Starlette on uvicorn, on 127.0.0.1 by default. The page is self-contained (no
external scripts or fonts: edge boxes are often offline).

Endpoints: ``GET /`` the page, ``GET /frame.jpg``, ``GET /api/state``, ``POST /api/fit``
(``{"points": [{name, image, ground}]}`` -> residuals or an error), ``POST /api/save``
(same body -> written paths and residuals).
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import cv2
import numpy as np
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from vigil.fileio import atomic_write_text
from vigil.geometry.camera import CalibrationError

from .check import ground_extent, polyline_segments
from .frames import read_frame
from .ground import fit_ground, load_points, parse_points, write_ground_calibration
from .intrinsics import load_intrinsics

__all__ = ["create_app", "serve"]

log = logging.getLogger("vigil.calibration.pick")


def _grid_lines(camera, image_size) -> list[list[list[float]]]:
    """1 m grid polylines in image pixels, for the overlay."""

    try:
        xmin, xmax, ymin, ymax = ground_extent(camera, image_size)
    except CalibrationError:
        return []
    lines = []
    x0, x1, y0, y1 = np.floor(xmin), np.ceil(xmax), np.floor(ymin), np.ceil(ymax)
    if (x1 - x0) * (y1 - y0) > 40000:
        return []
    for x in np.arange(x0, x1 + 0.5):
        t = np.linspace(y0, y1, 60)
        lines += [
            s.round(1).tolist()
            for s in polyline_segments(camera.ground_to_image(np.c_[np.full_like(t, x), t]), image_size)
        ]
    for y in np.arange(y0, y1 + 0.5):
        t = np.linspace(x0, x1, 60)
        lines += [
            s.round(1).tolist()
            for s in polyline_segments(camera.ground_to_image(np.c_[t, np.full_like(t, y)]), image_size)
        ]
    return lines


def create_app(
    frame: np.ndarray,
    output: str | Path,
    *,
    intrinsics=None,
    name: str | None = None,
    points: list[dict] | None = None,
    source: str = "",
):
    """The Starlette application for one frame; saving writes ``output``."""

    output = Path(output)
    h, w = frame.shape[:2]
    ok, jpg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:  # pragma: no cover
        raise CalibrationError("cannot encode the frame as JPEG")
    jpg_bytes = jpg.tobytes()
    cam_name = name or output.name.split(".")[0]
    points_path = output.with_name(output.name.split(".")[0] + ".points.yaml")
    state = {"points": list(points or [])}

    def _fit(body) -> tuple[dict, object]:
        names, img, gnd = parse_points(body, "request")
        fit = fit_ground(img, gnd, names=names, image_size=(w, h), intrinsics=intrinsics)
        d = fit.as_dict()
        d["grid"] = _grid_lines(fit.camera, (w, h))
        return d, fit

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(
            _PAGE.replace("__W__", str(w)).replace("__H__", str(h)).replace("__OUT__", _html_escape(str(output)))
        )

    async def frame_jpg(request: Request) -> Response:
        return Response(jpg_bytes, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def api_state(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "image_size": [w, h],
                "points": state["points"],
                "output": str(output),
                "model": "pinhole" if intrinsics is not None else "homography",
            }
        )

    async def _body(request: Request):
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CalibrationError("request body is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("points"), list):
            raise CalibrationError('expected {"points": [...]}')
        return body

    async def api_fit(request: Request) -> JSONResponse:
        try:
            body = await _body(request)
            state["points"] = body["points"]
            if len(body["points"]) < 4:
                return JSONResponse({"ok": False, "error": f"{len(body['points'])} point(s): add at least 4 to fit"})
            d, _ = _fit(body)
            return JSONResponse({"ok": True, **d})
        except CalibrationError as exc:
            return JSONResponse({"ok": False, "error": str(exc)})

    async def api_save(request: Request) -> JSONResponse:
        try:
            body = await _body(request)
            d, fit = _fit(body)
            write_ground_calibration(fit, output, cam_name, source=f"vigil calibrate pick on {source}")

            atomic_write_text(
                points_path, yaml.safe_dump({"points": body["points"]}, sort_keys=False, default_flow_style=None)
            )
            log.info("saved %s and %s", output, points_path)
            return JSONResponse({"ok": True, "saved": str(output), "points_file": str(points_path), **d})
        except CalibrationError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)

    return Starlette(
        routes=[
            Route("/", page),
            Route("/frame.jpg", frame_jpg),
            Route("/api/state", api_state),
            Route("/api/fit", api_fit, methods=["POST"]),
            Route("/api/save", api_save, methods=["POST"]),
        ]
    )


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def serve(
    source: str,
    *,
    output: Path,
    port: int = 8765,
    host: str = "127.0.0.1",
    frame: int = 0,
    intrinsics: str | None = None,
    name: str | None = None,
    points: str | None = None,
) -> int:
    """Run the page until interrupted (Ctrl-C)."""

    img = read_frame(source, frame)
    intr = load_intrinsics(intrinsics) if intrinsics else None
    start = []
    if points:
        names, ip, gp = load_points(points)
        start = [
            {"name": n, "image": list(map(float, a)), "ground": list(map(float, b))} for n, a, b in zip(names, ip, gp)
        ]
    app = create_app(img, output, intrinsics=intr, name=name, points=start, source=source)

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise CalibrationError(f"--port {port}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    actual = sock.getsockname()[1]
    print(
        f"open http://{host}:{actual}/ in a browser; click points, type their ground metres, Save writes {output}. "
        "Ctrl-C to stop.",
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
    return 0


_PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vigil: pick ground points</title>
<style>
body{font:14px system-ui,sans-serif;margin:12px;background:#f4f4f4;color:#222}
#wrap{display:flex;gap:16px;align-items:flex-start}
#stage{position:relative;flex:none}
#stage canvas{position:absolute;left:0;top:0;cursor:crosshair}
#frame{display:block}
table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
tr.outlier td{background:#fdd}
input{width:6em}
#status{margin:8px 0;padding:6px;background:#fff;border:1px solid #ccc;min-height:1.2em;
  white-space:pre-wrap;max-width:560px}
#status.err{border-color:#c00;color:#a00}
button{margin:2px}
</style></head><body>
<h3>Vigil: pick ground points (frame __W__×__H__)</h3>
<div id="wrap">
<div id="stage" style="width:__W__px;height:__H__px">
<img id="frame" src="/frame.jpg" width="__W__" height="__H__" alt="camera frame">
<canvas id="overlay" width="__W__" height="__H__"></canvas></div>
<div>
<p>1. Click a point on the ground whose position you know.<br>2. Type its ground coordinates (metres) and press Add.<br>
3. Add at least 4 points spread over the area (8 or more to spot mistakes), then Save.</p>
<fieldset><legend>point</legend>
name <input id="pname" placeholder="auto">
u <input id="pu" type="number" step="0.1"> v <input id="pv" type="number" step="0.1"> px<br>
x <input id="gx" type="number" step="0.001"> y <input id="gy" type="number" step="0.001"> m
<button id="add">Add</button></fieldset>
<div id="status">Click the image to start.</div>
<table id="points"><thead><tr><th>name</th><th>u</th><th>v</th><th>x m</th><th>y m</th><th>residual m</th><th>px</th>
<th></th></tr></thead><tbody></tbody></table>
<p><button id="save">Save calibration</button> → <code>__OUT__</code></p>
<div id="summary"></div>
</div></div>
<script>
"use strict";
let points = [], lastFit = null, pending = null, seq = 0;
const cv = document.getElementById("overlay"), ctx = cv.getContext("2d");
const $ = id => document.getElementById(id);
function status(msg, err) { const s = $("status"); s.textContent = msg; s.className = err ? "err" : ""; }
function draw() {
  ctx.clearRect(0, 0, cv.width, cv.height);
  if (lastFit && lastFit.grid) {
    ctx.strokeStyle = "rgba(0,255,255,0.55)"; ctx.lineWidth = 1;
    for (const line of lastFit.grid) {
      ctx.beginPath(); line.forEach((p, i) => i ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])); ctx.stroke();
    }
  }
  const res = lastFit && lastFit.points ? lastFit.points : [];
  points.forEach((p, i) => {
    const r = res[i]; const bad = r && r.outlier;
    ctx.strokeStyle = bad ? "#f00" : "#0f0"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(p.image[0], p.image[1], 6, 0, 2 * Math.PI); ctx.stroke();
    ctx.fillStyle = "#fff"; ctx.font = "12px sans-serif"; ctx.fillText(p.name, p.image[0] + 8, p.image[1] - 8);
  });
  if (pending) { ctx.strokeStyle = "#ff0"; ctx.beginPath();
    ctx.moveTo(pending[0] - 8, pending[1]); ctx.lineTo(pending[0] + 8, pending[1]);
    ctx.moveTo(pending[0], pending[1] - 8); ctx.lineTo(pending[0], pending[1] + 8); ctx.stroke(); }
}
function table() {
  const tb = document.querySelector("#points tbody"); tb.innerHTML = "";
  const res = lastFit && lastFit.points ? lastFit.points : [];
  points.forEach((p, i) => {
    const r = res[i] || {}; const tr = document.createElement("tr"); if (r.outlier) tr.className = "outlier";
    const f = (v, n) => v === undefined || v === null ? "" : Number(v).toFixed(n);
    const cells = [p.name, f(p.image[0], 1), f(p.image[1], 1), f(p.ground[0], 3), f(p.ground[1], 3),
                   f(r.residual_m, 3), f(r.residual_px, 2)];
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
    const td = document.createElement("td"); const b = document.createElement("button"); b.textContent = "delete";
    b.className = "del"; b.onclick = () => { points.splice(i, 1); refit(); }; td.appendChild(b); tr.appendChild(td);
    tb.appendChild(tr);
  });
}
async function post(url) {
  const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                              body: JSON.stringify({points})});
  return r.json();
}
async function refit() {
  lastFit = null;
  if (points.length >= 4) {
    const d = await post("/api/fit");
    if (d.ok) { lastFit = d;
      status(`${d.model}: ${d.inliers} of ${points.length} points used, ` +
             `residual RMS ${d.rms_m.toFixed(3)} m, max ${d.max_m.toFixed(3)} m` +
             (d.outliers.length ? `\noutliers (not used): ${d.outliers.join(", ")}` : ""), false);
    } else status(d.error, true);
  } else { await post("/api/fit"); status(`${points.length} point(s): add at least 4 to fit`, false); }
  table(); draw();
}
cv.addEventListener("click", ev => {
  const rect = cv.getBoundingClientRect();
  const u = (ev.clientX - rect.left) * cv.width / rect.width, v = (ev.clientY - rect.top) * cv.height / rect.height;
  pending = [u, v]; $("pu").value = u.toFixed(1); $("pv").value = v.toFixed(1); $("gx").focus(); draw();
  status(`pixel ${u.toFixed(1)}, ${v.toFixed(1)}: type its ground x, y (metres) and press Add`, false);
});
$("add").addEventListener("click", () => {
  const u = parseFloat($("pu").value), v = parseFloat($("pv").value);
  const x = parseFloat($("gx").value), y = parseFloat($("gy").value);
  if (![u, v].every(Number.isFinite)) { status("click the image first (or type u, v)", true); return; }
  if (![x, y].every(Number.isFinite)) { status("type the ground coordinates x, y in metres", true); return; }
  let name = $("pname").value.trim();
  if (!name) { do { seq += 1; name = "P" + seq; } while (points.some(p => p.name === name)); }
  if (points.some(p => p.name === name)) { status(`a point named ${name} exists already`, true); return; }
  points.push({name, image: [u, v], ground: [x, y]}); pending = null;
  for (const id of ["pname", "pu", "pv", "gx", "gy"]) $(id).value = "";
  refit();
});
for (const id of ["gx", "gy"]) $(id).addEventListener("keydown", e => { if (e.key === "Enter") $("add").click(); });
$("save").addEventListener("click", async () => {
  const d = await post("/api/save");
  if (d.ok) { lastFit = d; table(); draw();
    status(`saved ${d.saved} (${d.model}, residual RMS ${d.rms_m.toFixed(3)} m); points in ${d.points_file}`, false);
    $("status").dataset.saved = d.saved; }
  else status("not saved: " + d.error, true);
});
fetch("/api/state").then(r => r.json()).then(s => { points = s.points || []; seq = points.length; refit(); });
</script></body></html>
"""
