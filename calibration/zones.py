"""``vigil calibrate zones``: draw a camera's zones and queue lines on its frame, saved into the node config.

The installer opens a local page (Starlette on uvicorn, 127.0.0.1 by default, self-contained: no
external scripts) showing one frame of the camera's source with its zones drawn over it. Clicks
on the image are image pixels; the page asks :func:`ZoneEditor.to_ground` to turn them into
ground metres through the camera's calibration (the calibration's world frame, the one the
rules use), so the polygon is shown with its vertices in metres and its area in square metres
while it is drawn. "Save" sends the zone (name, vertices in pixels, optional queue line in
pixels and the zone's limits) to :meth:`ZoneEditor.save`, which:

1. converts the vertices to metres (rounded to the millimetre);
2. puts the zone into the camera's ``zones`` list of the node config (a zone of the same name is
   replaced), editing the YAML file as a round trip (``ruamel.yaml``): comments, key order and
   the rest of the file are kept;
3. validates the whole new config exactly as ``vigil run`` would (:func:`vigil.edge.config.parse_config`
   then :func:`vigil.edge.validate.check_node` on this camera): a zone the camera does not see,
   a bad limit, a duplicate name... is refused with the messages, and the file is left untouched;
4. writes the file atomically, keeping the previous version as ``<config>.bak``.

Endpoints: ``GET /`` the page, ``GET /frame.jpg``, ``GET /api/state`` (image size, the camera's
zones with their vertices in metres and in pixels), ``POST /api/ground`` (``{"points_px": [[u, v],
...]}`` -> ``{"points_m": [[x, y], ...], "area_m2": ...}``), ``POST /api/zones`` (save one zone),
``POST /api/zones/delete`` (``{"name": ...}``). POSTs must be ``application/json`` from the page's
own origin (a page elsewhere in the installer's browser cannot write the config).
"""

from __future__ import annotations

import io
import json
import logging
import math
import shutil
import socket
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import uvicorn
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from vigil.edge.config import ConfigError, load_config, parse_config
from vigil.edge.validate import check_node
from vigil.fileio import atomic_write_text
from vigil.geometry.calibration_io import load_calibration
from vigil.geometry.camera import CalibrationError

from .frames import read_frame

__all__ = ["ZoneEditor", "ZoneEditError", "create_app", "serve"]

log = logging.getLogger("vigil.calibration.zones")

HERE = Path(__file__).parent / "static"

#: the Host names the editor answers writes to (it listens on loopback only)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")

#: limits a zone may carry (ZoneConfig fields besides the geometry), as the page sends them
ZONE_LIMITS = ("distance_threshold_m", "m2_per_person", "max_people", "max_density_per_m2", "voice")


class ZoneEditError(ValueError):
    """A zone the editor refuses (the message says why; the config file is left as it was)."""


def polygon_area_m2(points_m: np.ndarray) -> float:
    """Area of a simple polygon ``(N, 2)`` in metres (shoelace), square metres."""
    x, y = points_m[:, 0], points_m[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _yaml():
    y = YAML()  # round trip: comments and key order kept
    y.preserve_quotes = True
    y.width = 4096
    return y


def _flow(seq: list) -> Any:
    """A list written inline (``[1.0, 2.0]``), as a person writes a point."""
    s = CommentedSeq(seq)
    s.fa.set_flow_style()
    return s


class ZoneEditor:
    """The zones of camera ``camera`` of the node config ``config_path`` (a YAML file).

    ``frame``: the image the zones are drawn on, ``(H, W, 3)`` uint8 BGR (default: frame
    ``frame_index`` of the camera's source). Raises :class:`ConfigError` / :class:`CalibrationError`
    when the config or the camera's calibration cannot be used.
    """

    def __init__(
        self,
        config_path: str | Path,
        camera: str | None = None,
        *,
        frame: np.ndarray | None = None,
        frame_index: int = 0,
    ) -> None:
        self.path = Path(config_path)
        cfg = load_config(self.path)
        cam = cfg.camera(camera)
        self.camera_name = cam.name
        if cam.calibration is None:
            raise ConfigError(f"{self.path}: camera {cam.name!r} has no calibration: zones are in ground metres")
        _, self.model = load_calibration(cam.calibration)
        self.frame = read_frame(str(cam.source), frame_index) if frame is None else frame
        self.image_size = (int(self.frame.shape[1]), int(self.frame.shape[0]))

    # -------------------------------------------------------------- geometry
    def to_ground(self, points_px: Any) -> np.ndarray:
        """Image pixels ``(N, 2)`` (u right, v down) -> ground metres ``(N, 2)`` (NaN where a pixel
        sees no ground: above the horizon)."""
        try:
            pts = np.asarray(points_px, dtype=np.float64)
        except (TypeError, ValueError):
            raise ZoneEditError("points_px: expected [[u, v], ...] of finite numbers (pixels)") from None
        if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
            raise ZoneEditError("points_px: expected [[u, v], ...] of finite numbers (pixels)")
        if len(pts) == 0:
            return np.zeros((0, 2))
        return np.asarray(self.model.image_to_ground(pts), dtype=np.float64).reshape(-1, 2)

    def to_image(self, points_m: Any) -> list[list[float] | None]:
        """Ground metres ``(N, 2)`` -> image pixels (``None`` for a point behind the camera)."""
        pts = np.asarray(points_m, dtype=np.float64).reshape(-1, 2)
        px = np.asarray(self.model.ground_to_image(pts), dtype=np.float64).reshape(-1, 2)
        return [[round(float(u), 1), round(float(v), 1)] if np.isfinite([u, v]).all() else None for u, v in px]

    def _metres(self, points_px: Any, what: str) -> list[list[float]]:
        m = self.to_ground(points_px)
        bad = [i for i, p in enumerate(m) if not np.isfinite(p).all()]
        if bad:
            raise ZoneEditError(
                f"{what}: point(s) {', '.join(str(i + 1) for i in bad)} see no ground (above the horizon)"
            )
        return [[round(float(x), 3), round(float(y), 3)] for x, y in m]

    # -------------------------------------------------------------- config
    def _load_yaml(self) -> tuple[Any, Any]:
        text = self.path.read_text(encoding="utf-8")
        doc = _yaml().load(text)
        cams = doc.get("cameras") if hasattr(doc, "get") else None
        for cam in cams or []:
            if hasattr(cam, "get") and cam.get("name") == self.camera_name:
                return doc, cam
        raise ZoneEditError(f"{self.path}: camera {self.camera_name!r} is no longer in the file")

    def zones(self) -> list[dict]:
        """The camera's zones as the file holds them now: name, vertices in metres and pixels,
        area, queue line, limits."""
        cam = load_config(self.path).camera(self.camera_name)
        out = []
        for z in cam.zones:
            poly = np.asarray(z.polygon, dtype=np.float64)
            item = {
                "name": z.name,
                "polygon_m": poly.tolist(),
                "polygon_px": self.to_image(poly),
                "area_m2": round(polygon_area_m2(poly), 2),
                **{k: getattr(z, k) for k in ZONE_LIMITS},
            }
            if z.queue is not None:
                item["queue_m"] = [list(p) for p in z.queue.line]
                item["queue_px"] = self.to_image(z.queue.line)
            out.append(item)
        return out

    def _write(self, doc: Any) -> list[str]:
        """Validate ``doc`` as ``run`` would, then write it (previous file kept as ``.bak``);
        the warnings. :class:`ZoneEditError` (file untouched) when it is refused."""
        buf = io.StringIO()
        _yaml().dump(doc, buf)
        text = buf.getvalue()
        try:
            cfg = parse_config(text, str(self.path), base_dir=self.path.parent)
        except ConfigError as exc:
            raise ZoneEditError(str(exc)) from None
        problems = check_node(cfg, None, cameras=[self.camera_name])
        errors = [p for p in problems if p.level == "error"]
        if errors:
            raise ZoneEditError("\n".join(str(p) for p in errors))
        shutil.copy2(self.path, self.path.with_name(self.path.name + ".bak"))
        atomic_write_text(self.path, text)
        return [str(p) for p in problems if p.level == "warning"]

    def save(self, body: dict) -> dict:
        """Save one zone: ``{"name", "polygon_px": [[u, v], ...] (>= 3), "queue_px": [[u, v], [u, v]]
        (optional), "corridor_m", "min_spacing_m" (optional, with the queue), and any of
        :data:`ZONE_LIMITS`}``. Returns the zone as stored (metres) and the warnings."""
        if not isinstance(body, dict):
            raise ZoneEditError("expected a JSON object")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ZoneEditError("name: a zone needs a name")
        poly_px = body.get("polygon_px")
        if not isinstance(poly_px, list) or len(poly_px) < 3:
            raise ZoneEditError("polygon_px: a zone needs at least 3 points")
        zone: dict[str, Any] = {
            "name": name.strip(),
            "polygon": _flow([_flow(p) for p in self._metres(poly_px, "polygon")]),
        }
        for key in ZONE_LIMITS:
            v = body.get(key)
            if v is not None and v != "":
                zone[key] = v
        queue_px = body.get("queue_px")
        if queue_px:
            if not isinstance(queue_px, list) or len(queue_px) != 2:
                raise ZoneEditError("queue_px: a queue line is 2 points")
            q: dict[str, Any] = {"line": _flow([_flow(p) for p in self._metres(queue_px, "queue line")])}
            for key in ("corridor_m", "min_spacing_m"):
                if body.get(key) not in (None, ""):
                    q[key] = body[key]
            zone["queue"] = q
        doc, cam = self._load_yaml()
        zones = cam.get("zones")
        if zones is None:
            cam["zones"] = zones = []
        for i, z in enumerate(zones):
            if hasattr(z, "get") and z.get("name") == zone["name"]:
                zones[i] = zone
                break
        else:
            zones.append(zone)
        warnings = self._write(doc)
        log.info("%s: camera %s: zone %r saved", self.path, self.camera_name, zone["name"])
        return {"zone": json.loads(json.dumps(zone)), "warnings": warnings}

    def delete(self, name: Any) -> dict:
        """Remove the zone ``name`` from the camera (validated and written like :meth:`save`)."""
        doc, cam = self._load_yaml()
        zones = cam.get("zones") or []
        keep = [z for z in zones if not (hasattr(z, "get") and z.get("name") == name)]
        if len(keep) == len(zones):
            raise ZoneEditError(f"no zone named {name!r} on camera {self.camera_name!r}")
        zones[:] = keep
        return {"deleted": name, "warnings": self._write(doc)}


# ------------------------------------------------------------------------------ web page
def create_app(editor: ZoneEditor) -> Starlette:
    """The page and its JSON endpoints over one :class:`ZoneEditor`."""
    ok, jpg = cv2.imencode(".jpg", editor.frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:  # pragma: no cover
        raise CalibrationError("cannot encode the frame as JPEG")
    jpg_bytes = jpg.tobytes()

    async def body_of(request: Request) -> Any:
        host = (request.url.hostname or "").lower()
        if host not in LOOPBACK_NAMES:  # a page elsewhere reaching us by DNS rebinding names its own host
            raise ZoneEditError(f"refused: Host {host!r} (the editor answers only as localhost)")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise ZoneEditError(f"refused: a request from {origin} (only this page may write the config)")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise ZoneEditError("refused: expected Content-Type application/json")
        try:
            return json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ZoneEditError("request body is not JSON") from None

    def answer(fn):
        async def handler(request: Request) -> JSONResponse:
            try:
                return JSONResponse({"ok": True, **fn(await body_of(request))})
            except (ZoneEditError, ConfigError, CalibrationError) as exc:
                return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)

        return handler

    def ground(body: Any) -> dict:
        pts = body.get("points_px") if isinstance(body, dict) else None
        m = editor.to_ground(pts if pts is not None else [])
        finite = [[round(float(x), 3), round(float(y), 3)] if np.isfinite([x, y]).all() else None for x, y in m]
        area = polygon_area_m2(m) if len(m) >= 3 and np.isfinite(m).all() else None
        return {"points_m": finite, "area_m2": None if area is None or math.isnan(area) else round(area, 2)}

    async def page(request: Request) -> Response:
        return FileResponse(HERE / "zones.html", headers={"Cache-Control": "no-store"})

    async def script(request: Request) -> Response:
        return FileResponse(HERE / "zones.js", media_type="text/javascript")

    async def frame_jpg(request: Request) -> Response:
        return Response(jpg_bytes, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def state(request: Request) -> JSONResponse:
        try:
            zones = editor.zones()
        except (ConfigError, CalibrationError) as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        return JSONResponse(
            {
                "ok": True,
                "config": str(editor.path),
                "camera": editor.camera_name,
                "image_size": list(editor.image_size),
                "zones": zones,
            }
        )

    return Starlette(
        routes=[
            Route("/", page),
            Route("/zones.js", script),
            Route("/frame.jpg", frame_jpg),
            Route("/api/state", state),
            Route("/api/ground", answer(ground), methods=["POST"]),
            Route("/api/zones", answer(editor.save), methods=["POST"]),
            Route(
                "/api/zones/delete",
                answer(lambda b: editor.delete(b.get("name") if isinstance(b, dict) else None)),
                methods=["POST"],
            ),
        ]
    )


def serve(config: str | Path, camera: str | None, *, port: int = 8766, host: str = "127.0.0.1", frame: int = 0) -> int:
    """Run the editor page until interrupted (Ctrl-C). It has no login: it listens on loopback
    only (``host`` another address is refused); reach it from elsewhere through an SSH tunnel."""
    if host not in LOOPBACK_NAMES:
        raise CalibrationError(
            f"--host {host}: the zone editor has no login, so it listens on loopback only "
            "(127.0.0.1 or ::1); use an SSH tunnel (ssh -L 8766:127.0.0.1:8766 NODE)"
        )
    editor = ZoneEditor(config, camera, frame_index=frame)
    app = create_app(editor)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise CalibrationError(f"--port {port}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    print(
        f"open http://{host}:{sock.getsockname()[1]}/ in a browser: draw the zones of camera {editor.camera_name}; "
        f"Save writes them into {editor.path} (previous version kept as .bak). Ctrl-C to stop.",
        flush=True,
    )
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0
