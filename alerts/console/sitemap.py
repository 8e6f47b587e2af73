"""The console's site map: areas drawn on a plan image, cameras placed on it, alarms where they are.

A *sites file* (YAML, ``vigil console --sites FILE``) lists areas; each has a plan image (PNG or
JPEG) with its ``scale`` (metres per plan pixel), optionally the latitude/longitude of two plan
points (stored and shown only: the console reaches no tile server), and its cameras::

    vigil_sites: 1
    max_rms_m: 0.5                 # optional: reject a camera fit worse than this (metres)
    max_scale_deviation: 0.1       # optional: reject a fit whose scale differs more (fraction)
    areas:
      - name: piazza               # [A-Za-z0-9_-], used in URLs (/map/piazza)
        title: Piazza Duomo        # optional display name
        plan: piazza.png           # relative to the sites file
        scale: 0.05                # metres per plan pixel
        georeference:              # optional, exactly two points
          - {plan: [0, 0], lat: 45.46, lon: 9.19}
          - {plan: [1000, 800], lat: 45.459, lon: 9.192}
        cameras:
          - name: pets-view001     # the ``camera`` of its events
            calibration: cam.calib.yaml   # optional: draws the field of view
            max_range_m: 40        # optional: where the field of view is cut (metres)
            points:                # >= 2: camera ground metres (x, y) -> plan pixels (u, v)
              - {ground: [0, 0], plan: [100, 700]}
              - {ground: [20, 0], plan: [500, 700]}

Placement (:func:`fit_similarity`): the camera's ground frame (metres, right-handed, ``Z`` up, as
every Vigil calibration) goes onto the plan (pixels, ``v`` down) by a similarity that includes
the one reflection between those two handednesses: ``u + i v = a (x - i y) + b`` with complex
``a = s e^{i theta}`` (``s``: plan pixels per metre) and ``b``. Two points give it exactly;
three or more by least squares, with each point's residual in metres. A fit whose RMS residual
exceeds ``max_rms_m``, or whose scale ``1 / s`` differs from the area's ``scale`` by more than
``max_scale_deviation``, is rejected at start with an error naming file, area and camera.

Field of view (:func:`fov_ground`): the part of the image whose pixels see the ground within
``max_range_m`` of the camera (its foot point; for a homography, which knows no centre, the
ground point of the image's bottom centre), as a polygon in ground metres; in plan pixels
through the camera's fit. Errors (:class:`SitesError`) start with the file name, then the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vigil.errors import UserError
from vigil.geometry.calibration_io import load_camera
from vigil.geometry.camera import CalibrationError, CameraModel

from ..payloads import ALARM_TYPES

__all__ = [
    "Similarity",
    "SitesError",
    "SiteMap",
    "Area",
    "PlacedCamera",
    "fit_similarity",
    "fov_ground",
    "MAP_TYPES",
    "load_sites",
    "marker_of",
    "parse_sites",
]

FORMAT_VERSION = 1
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
PLAN_SUFFIXES = (".png", ".jpg", ".jpeg")
#: the field of view's range cut: a regular polygon of this many sides inscribed in the circle
DISC_SIDES = 72
#: image points seeing the ground farther than this many times the range count as above the horizon
HORIZON_FACTOR = 100.0


class SitesError(UserError, ValueError):
    """A sites file that cannot be used; the message names the file and the field."""


# ---------------------------------------------------------------------------- file format
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


def _finite(values: tuple[float, ...]) -> tuple[float, ...]:
    if not all(math.isfinite(v) for v in values):
        raise ValueError("must be finite numbers")
    return values


class RefPoint(_Strict):
    ground: tuple[float, float] = Field(description="camera ground-plane point (x, y), metres")
    plan: tuple[float, float] = Field(description="the same point on the plan (u, v), pixels")

    _ok = field_validator("ground", "plan")(_finite)


class GeoPoint(_Strict):
    plan: tuple[float, float] = Field(description="plan point (u, v), pixels")
    lat: float = Field(ge=-90, le=90, description="latitude, degrees (WGS 84)")
    lon: float = Field(ge=-180, le=180, description="longitude, degrees (WGS 84)")


class CameraSpec(_Strict):
    name: str = Field(min_length=1, max_length=128, description="the camera name its events carry")
    points: list[RefPoint] = Field(min_length=2, description="camera ground (m) -> plan (px) pairs")
    calibration: str | None = Field(None, description="the camera's calibration file (draws its field of view)")
    max_range_m: float = Field(40.0, gt=0, le=1000, description="field of view cut at this ground range, metres")


class AreaSpec(_Strict):
    name: str = Field(pattern=NAME_RE, description="the area's key (URL)")
    title: str | None = Field(None, max_length=200, description="display name")
    plan: str = Field(description="plan image, PNG or JPEG (relative to the sites file)")
    scale: float = Field(gt=0, description="metres per plan pixel")
    georeference: list[GeoPoint] | None = Field(None, min_length=2, max_length=2)
    cameras: list[CameraSpec] = Field(default_factory=list)


class SitesSpec(_Strict):
    vigil_sites: int
    max_rms_m: float = Field(0.5, gt=0, description="largest RMS residual of a camera fit, metres")
    max_scale_deviation: float = Field(0.1, gt=0, description="largest |fitted / configured scale - 1|")
    areas: list[AreaSpec] = Field(min_length=1)


# ---------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Similarity:
    """Ground metres -> plan pixels: ``u + i v = a (x - i y) + b`` (module docstring).

    ``residuals_m``: each reference point's fit error in metres (zeros for two points)."""

    a: complex
    b: complex
    residuals_m: tuple[float, ...] = ()

    @property
    def px_per_m(self) -> float:
        return abs(self.a)

    @property
    def rotation_deg(self) -> float:
        return math.degrees(math.atan2(self.a.imag, self.a.real))

    @property
    def rms_m(self) -> float:
        r = self.residuals_m
        return math.sqrt(sum(x * x for x in r) / len(r)) if r else 0.0

    def apply(self, points_m: Any) -> np.ndarray:
        """``(N, 2)`` ground metres -> ``(N, 2) float64`` plan pixels (NaN rows stay NaN)."""
        p = np.asarray(points_m, dtype=np.float64).reshape(-1, 2)
        w = self.a * (p[:, 0] - 1j * p[:, 1]) + self.b
        return np.c_[w.real, w.imag]


def fit_similarity(ground_m: Any, plan_px: Any) -> Similarity:
    """The reflecting similarity (module docstring) taking ``(N, 2)`` ground metres onto
    ``(N, 2)`` plan pixels, ``N >= 2``: exact for two points, least squares for more.
    ``ValueError`` when the ground points coincide."""
    g = np.asarray(ground_m, dtype=np.float64).reshape(-1, 2)
    p = np.asarray(plan_px, dtype=np.float64).reshape(-1, 2)
    if len(g) < 2 or len(g) != len(p):
        raise ValueError("need at least two (ground, plan) pairs")
    z = g[:, 0] - 1j * g[:, 1]
    w = p[:, 0] + 1j * p[:, 1]
    zc, wc = z - z.mean(), w - w.mean()
    den = float(np.sum(np.abs(zc) ** 2))
    if den < 1e-18:
        raise ValueError("the ground points coincide")
    a = complex(np.sum(wc * np.conj(zc)) / den)
    if abs(a) < 1e-12:
        raise ValueError("the plan points coincide")
    b = complex(w.mean() - a * z.mean())
    res = np.abs(a * z + b - w) / abs(a)
    return Similarity(a, b, tuple(float(r) for r in res))


def _camera_foot(camera: CameraModel) -> np.ndarray | None:
    """Ground ``(x, y)`` metres below the camera, when the model knows its centre."""
    centre = getattr(camera, "centre_m", None)
    if centre is None:
        centre = getattr(camera, "centre", None)
    if centre is None:
        return None
    return np.asarray(centre, dtype=np.float64).reshape(-1)[:2]


def _drop_collinear(poly: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """``poly`` without repeated vertices and vertices on the straight line of their neighbours
    (``tol``: relative to the polygon's size)."""
    size = float(np.max(np.ptp(poly, axis=0))) if len(poly) else 0.0
    eps = tol * max(size, 1.0)
    pts = [q for i, q in enumerate(poly) if i == 0 or np.hypot(*(q - poly[i - 1])) > eps]
    if len(pts) > 1 and np.hypot(*(pts[0] - pts[-1])) <= eps:
        pts.pop()
    changed = True
    while changed and len(pts) > 3:
        changed = False
        for i in range(len(pts)):
            a, b, c = pts[i - 1], pts[i], pts[(i + 1) % len(pts)]
            ab, ac = b - a, c - a
            cross = abs(ab[0] * ac[1] - ab[1] * ac[0])
            if cross <= eps * max(np.hypot(*ac), eps):
                pts.pop(i)
                changed = True
                break
    return np.array(pts, dtype=np.float64).reshape(-1, 2)


def _clip_convex(poly: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman: ``(N, 2)`` polygon ``poly`` cut to the convex counter-clockwise
    ``(M, 2)`` polygon ``clip``."""
    out = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    for i in range(len(clip)):
        if not len(out):
            break
        a, b = clip[i - 1], clip[i]
        ex, ey = b - a
        sides = ex * (out[:, 1] - a[1]) - ey * (out[:, 0] - a[0])  # >= 0: inside (left of a -> b)
        kept: list[np.ndarray] = []
        for j in range(len(out)):
            p, q, sp, sq = out[j - 1], out[j], sides[j - 1], sides[j]
            if (sp >= 0) != (sq >= 0):
                kept.append(p + (sp / (sp - sq)) * (q - p))
            if sq >= 0:
                kept.append(q)
        out = np.array(kept, dtype=np.float64).reshape(-1, 2)
    return out


def fov_ground(camera: CameraModel, max_range_m: float = 40.0, samples: int = 32) -> np.ndarray:
    """The camera's field of view on the ground: ``(K, 2) float64`` metres, a counter-clockwise
    polygon (no repeated closing vertex; empty ``(0, 2)`` when no pixel sees the ground in range).

    The image's outline is walked (``samples`` steps per edge); where a column's top pixels
    look above the horizon (or more than ``HORIZON_FACTOR * max_range_m`` away), the outline
    follows the highest pixel of that column that still sees the ground, found by bisection
    (an upright camera: the ground is seen towards the image's bottom). That outline on the
    ground is then cut to the disc of radius ``max_range_m`` around the camera's foot point
    (a regular :data:`DISC_SIDES`-gon inscribed in it); straight runs are merged.
    ``ValueError`` when the model has no ``image_size``."""
    if camera.image_size is None:
        raise ValueError("the calibration has no image_size: no field of view")
    w, h = (float(x) for x in camera.image_size)
    foot = _camera_foot(camera)
    if foot is None:
        foot = camera.image_to_ground(np.array([[w / 2.0, h]]))[0]
    far = HORIZON_FACTOR * max_range_m

    def ok(px: np.ndarray) -> np.ndarray:
        g = camera.image_to_ground(px)
        d = np.hypot(g[:, 0] - foot[0], g[:, 1] - foot[1])
        return np.isfinite(d) & (d <= far)

    us = np.linspace(0.0, w, samples + 1)
    top = np.full(len(us), np.nan)
    good_top = ok(np.c_[us, np.zeros(len(us))])
    good_bottom = ok(np.c_[us, np.full(len(us), h)])
    top[good_top] = 0.0
    lo = np.zeros(len(us))
    hi = np.full(len(us), h)
    search = ~good_top & good_bottom
    for _ in range(60):  # bisection, all columns at once: lo fails, hi succeeds
        if not np.any(search) or np.max((hi - lo)[search]) < 1e-4:
            break
        mid = (lo + hi) / 2.0
        m = ok(np.c_[us, mid])
        hi = np.where(search & m, mid, hi)
        lo = np.where(search & ~m, mid, lo)
    top[search] = hi[search]
    cols = np.flatnonzero(np.isfinite(top))
    if len(cols) < 2:
        return np.zeros((0, 2))
    first, last = cols[0], cols[-1]
    side = np.linspace(0.0, 1.0, samples + 1)[1:-1]
    ring = [np.c_[us[cols], top[cols]]]
    ring.append(np.c_[np.full(len(side), us[last]), top[last] + (h - top[last]) * side])
    ring.append(np.c_[us[cols][::-1], np.full(len(cols), h)])
    ring.append(np.c_[np.full(len(side), us[first]), h - (h - top[first]) * side])
    ground = camera.image_to_ground(np.vstack(ring))
    ground = ground[np.all(np.isfinite(ground), axis=1)]
    if len(ground) < 3:
        return np.zeros((0, 2))
    x, y = ground[:, 0], ground[:, 1]
    if np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) < 0:  # make it counter-clockwise
        ground = ground[::-1]
    angles = np.linspace(0.0, 2.0 * math.pi, DISC_SIDES, endpoint=False)
    disc = foot + max_range_m * np.c_[np.cos(angles), np.sin(angles)]
    return _drop_collinear(_clip_convex(ground, disc))


# ---------------------------------------------------------------------------- the loaded map
@dataclass
class PlacedCamera:
    """A camera on its area's plan. ``at_px``: its icon's plan pixel (the camera's foot point
    when the calibration knows it, else the centroid of its reference points); ``fov_px``:
    ``(K, 2)`` plan pixels (empty without a calibration)."""

    name: str
    fit: Similarity
    scale_deviation: float
    at_px: tuple[float, float]
    fov_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


@dataclass
class Area:
    """One plan with its cameras. ``size_px``: ``(width, height)`` of the plan image."""

    name: str
    title: str
    plan: Path
    scale: float
    size_px: tuple[int, int]
    georeference: list[dict]
    cameras: dict[str, PlacedCamera]


@dataclass
class SiteMap:
    """All areas of a sites file, in file order; :meth:`area_of_camera` finds a camera's."""

    areas: dict[str, Area]
    source: str = ""

    def area_of_camera(self, camera: str) -> Area | None:
        return next((a for a in self.areas.values() if camera in a.cameras), None)


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of a PNG or JPEG from its header (``ValueError`` otherwise)."""
    data = path.read_bytes()[: 1 << 20]
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            i += 2 + length
    raise ValueError("not a PNG or JPEG image")


def _errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = "".join(f"[{k}]" if isinstance(k, int) else (f".{k}" if i else str(k)) for i, k in enumerate(err["loc"]))
        parts.append(f"{loc or '(top level)'}: {err['msg']}")
    return "; ".join(parts)


def parse_sites(data: Any, base: Path, source: str) -> SiteMap:
    """A :class:`SiteMap` from the sites file's parsed YAML ``data`` (paths relative to ``base``).
    Raises :class:`SitesError` naming ``source`` and the field."""
    if not isinstance(data, dict):
        raise SitesError(f"{source}: expected a mapping at the top level")
    if data.get("vigil_sites") != FORMAT_VERSION:
        raise SitesError(f"{source}: vigil_sites: expected {FORMAT_VERSION}, got {data.get('vigil_sites')!r}")
    try:
        spec = SitesSpec.model_validate(data)
    except ValidationError as exc:
        raise SitesError(f"{source}: {_errors(exc)}") from None
    areas: dict[str, Area] = {}
    seen_cams: dict[str, str] = {}
    for i, a in enumerate(spec.areas):
        where = f"{source}: areas[{i}] ({a.name})"
        if a.name in areas:
            raise SitesError(f"{where}.name: duplicate area name")
        plan = (base / a.plan).resolve()
        if plan.suffix.lower() not in PLAN_SUFFIXES:
            raise SitesError(f"{where}.plan: {a.plan}: not a .png/.jpg/.jpeg file")
        try:
            size = _image_size(plan)
        except OSError as exc:
            raise SitesError(f"{where}.plan: cannot read {plan}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise SitesError(f"{where}.plan: {plan}: {exc}") from None
        cams: dict[str, PlacedCamera] = {}
        for j, c in enumerate(a.cameras):
            cwhere = f"{where}.cameras[{j}] ({c.name})"
            if c.name in seen_cams:
                raise SitesError(f"{cwhere}.name: camera already placed in area {seen_cams[c.name]}")
            seen_cams[c.name] = a.name
            try:
                fit = fit_similarity([p.ground for p in c.points], [p.plan for p in c.points])
            except ValueError as exc:
                raise SitesError(f"{cwhere}.points: {exc}") from None
            if fit.rms_m > spec.max_rms_m:
                res = ", ".join(f"{r:.3f}" for r in fit.residuals_m)
                raise SitesError(
                    f"{cwhere}.points: the fit's RMS residual {fit.rms_m:.3f} m exceeds max_rms_m "
                    f"{spec.max_rms_m} m (residuals, m: {res})"
                )
            deviation = (1.0 / fit.px_per_m) / a.scale - 1.0
            if abs(deviation) > spec.max_scale_deviation:
                raise SitesError(
                    f"{cwhere}.points: the fitted scale {1.0 / fit.px_per_m:.5g} m/px differs from the area's "
                    f"scale {a.scale:g} m/px by {deviation * 100:+.1f}% (max_scale_deviation "
                    f"{spec.max_scale_deviation:g})"
                )
            fov = np.zeros((0, 2))
            foot = None
            if c.calibration:
                try:
                    model = load_camera(base / c.calibration)
                    fov = fit.apply(fov_ground(model, c.max_range_m))
                except (CalibrationError, ValueError) as exc:
                    raise SitesError(f"{cwhere}.calibration: {exc}") from None
                foot = _camera_foot(model)
            at = fit.apply(foot)[0] if foot is not None else fit.apply([p.ground for p in c.points]).mean(axis=0)
            cams[c.name] = PlacedCamera(c.name, fit, deviation, (float(at[0]), float(at[1])), fov)
        areas[a.name] = Area(
            name=a.name,
            title=a.title or a.name,
            plan=plan,
            scale=a.scale,
            size_px=size,
            georeference=[g.model_dump() for g in a.georeference or []],
            cameras=cams,
        )
    return SiteMap(areas, source)


def load_sites(path: str | Path) -> SiteMap:
    """Read and check a sites file (module docstring); :class:`SitesError` names file and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SitesError(f"{path}: cannot read the sites file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SitesError(f"{path}: not valid YAML: {exc}") from None
    return parse_sites(data, path.parent, str(path))


# ---------------------------------------------------------------------------- alarms on the map
_ALARM_ID = re.compile(r"^[0-9a-fA-F-]{32,36}$")
#: event types drawn on the map (a plain transit is no alarm; a heatmap is none either)
MAP_TYPES = frozenset(ALARM_TYPES - {"plate_transit"})


def marker_of(area: Area, ev: dict) -> dict | None:
    """Where a stored event (:func:`~.views.stored_event` dict) goes on ``area``'s plan, or
    ``None`` when its camera is not placed there or its type is not in :data:`MAP_TYPES`.

    ``{"id", "alarm", "camera", "type", "severity", "state", "time", "at": [u, v],
    "people": [[u, v], ...], "at_camera"}``: ``people`` the plan pixels of its ``positions_m`` (through the
    camera's fit), ``at`` their mean, or the camera's icon point when it has none (a plate hit,
    a zone alarm without positions; ``at_camera`` then). ``alarm``: its ``alarm_id`` (else its event id)."""
    cam = area.cameras.get(str(ev.get("camera", "")))
    if cam is None or ev.get("type") not in MAP_TYPES:
        return None
    p = ev.get("payload") if isinstance(ev.get("payload"), dict) else {}
    pos = p.get("positions_m")
    ground = []
    if isinstance(pos, dict):
        for key in sorted(pos, key=str):
            v = pos[key]
            if (
                isinstance(v, (list, tuple))
                and len(v) == 2
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
            ):
                ground.append((float(v[0]), float(v[1])))
    people = cam.fit.apply(ground) if ground else np.zeros((0, 2))
    at = people.mean(axis=0) if len(people) else np.array(cam.at_px)
    alarm = ev.get("alarm_id") or p.get("alarm_id")
    return {
        "id": str(ev.get("id", "")),
        "alarm": alarm if isinstance(alarm, str) and _ALARM_ID.match(alarm) else str(ev.get("id", "")),
        "camera": cam.name,
        "type": str(ev.get("type", "")),
        "severity": str(ev.get("severity", "")),
        "state": str(ev.get("state", "")),
        "time": str(ev.get("time", "")),
        "at": [round(float(at[0]), 2), round(float(at[1]), 2)],
        "people": [[round(float(u), 2), round(float(v), 2)] for u, v in people],
        "at_camera": not len(people),
    }
