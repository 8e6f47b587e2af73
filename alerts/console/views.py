"""What the console's pages draw, computed from stored events: the alarm-list row, the
bird's-eye shapes of an alarm and the heat-map layers of the camera overview.

Pure functions of event dictionaries (no request, no database): the route handlers in
:mod:`.routes` call them and hand the results to the templates.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from ..tail import summarize_payload

__all__ = ["birdseye", "heatmap_layer", "heatmap_view", "public_alarm"]


#: payload keys left out of the one-line summary: drawn elsewhere, or ids nobody reads in a list
_NOT_SUMMARISED = frozenset(("positions_m", "frame", "rule", "metric", "alarm_id", "transit_id"))


def _summary(payload: dict, event_type: str | None) -> str:
    """The payload's one-line summary: its type's ``summary_fields`` (as ``vigil tail`` shows them)."""
    return summarize_payload({k: v for k, v in payload.items() if k not in _NOT_SUMMARISED}, 90, event_type=event_type)


def public_alarm(ev: dict, status: dict | None) -> dict:
    """An alarm-list row (the HTML table and the live feed's JSON): the event's identity, a
    one-line summary of its payload, its plate if any and its operator status (default new)."""
    p = ev.get("payload") or {}
    return {
        "stream_seq": ev["stream_seq"],
        "id": ev["id"],
        "time": ev["time"],
        "camera": ev["camera"],
        "type": ev["type"],
        "severity": ev["severity"],
        "state": ev["state"],
        "summary": _summary(p, ev.get("type")),
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
