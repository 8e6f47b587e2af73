"""What the console's pages draw, computed from stored events: the one reading of a stored row
(:func:`stored_event`), the alarm-list row, the alarm detail, the bird's-eye shapes of an alarm,
the heat-map layers of the camera overview and the transit-search table.

Pure functions of stored rows and event dictionaries (no request, no database): :mod:`.db`
reads every event row through :func:`stored_event`, the route handlers in :mod:`.routes` call
the rest and hand the results to the templates.

**The console never trusts what it stored.** Payloads are validated at ingest (schema 2), but
the table may hold rows of an older build, of a restore, or written straight into the
database. :func:`stored_event` never raises: identity comes from the row's own columns (what
the store indexes and filters on), the JSON is parsed with every failure caught, and
:func:`read_payload` keeps of the payload only what can be shown safely: JSON values within
bounds (finite numbers within ``±1e12``, strings cut at 500 characters, at most 100 items
per list or object, nesting at most 6 deep), then each field its type's model
(:data:`vigil.alerts.payloads.PAYLOADS`) finds wrong-typed is left out, positions beyond
``±100 km`` too. What was left out is named in the event's ``unreadable`` text, which the pages
show as an "unreadable payload" marker beside whatever could be read.

**Keyed pseudonyms are never shown.** ``plate_hash`` (the keyed pseudonym a no-hit transit
carries instead of its plate) is dropped on reading (:data:`HIDDEN_FIELDS`): with it an
operator could follow a vehicle across cameras without a search; linking passes of one plate
is the audited transit search's job (``/transits``, supervisors and admins), whose result
table leaves it out too.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..events import alarm_id_of
from ..payloads import PAYLOADS
from ..tail import summarize_payload
from . import words
from .fields import field_row, field_value

__all__ = [
    "HIDDEN_FIELDS",
    "alarm_detail",
    "alarm_row",
    "single_alarm",
    "birdseye",
    "heatmap_layer",
    "heatmap_view",
    "lifecycle_row",
    "public_alarm",
    "read_payload",
    "show",
    "stored_event",
    "transit_table",
]

#: payload fields never shown on any page (keyed pseudonyms: linking is the audited search's job)
HIDDEN_FIELDS = frozenset(("plate_hash",))
#: bounds of what is read from a stored payload
MAX_TEXT = 500
MAX_ITEMS = 100
MAX_DEPTH = 6
MAX_ABS = 1e12
MAX_JSON_CHARS = 2_000_000
#: positions farther than this from the ground origin are not drawn (metres)
MAX_COORD_M = 1e5
#: the identity columns of an event row, as :func:`stored_event` takes them
COLUMNS = ("id", "camera", "seq", "type", "time", "severity", "state")
_HEAT_MAX_CELLS = 16384
#: a heat map's grids are base64 text of up to _HEAT_MAX_CELLS bytes
_HEAT_TEXT = 4 * _HEAT_MAX_CELLS // 3 + 8
_DROP = object()


def _finite(v: Any, bound: float = MAX_ABS) -> bool:
    """A JSON number (not a bool), finite and within ``±bound``."""
    return (
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        and (isinstance(v, int) or math.isfinite(v))
        and -bound <= v <= bound
    )


def _text(v: Any, limit: int = MAX_TEXT) -> str:
    """Any stored value as display text of at most ``limit`` characters."""
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    elif v is None:
        v = ""
    elif not isinstance(v, str):
        v = str(v) if isinstance(v, (int, float)) and _finite(v) else ""
    return v if len(v) <= limit else v[: limit - 1] + "…"


def _clean(v: Any, path: str, problems: list[str], depth: int = 0, max_text: int = MAX_TEXT) -> Any:
    """A JSON value within the bounds (module docstring); ``_DROP`` for one that is not."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        if _finite(v):
            return v
        problems.append(f"{path}: number out of range")
        return _DROP
    if isinstance(v, str):
        return v if len(v) <= max_text else v[: max_text - 1] + "…"
    if depth >= MAX_DEPTH:
        problems.append(f"{path}: nested too deep")
        return _DROP
    if isinstance(v, list):
        out = []
        for i, x in enumerate(v[:MAX_ITEMS]):
            c = _clean(x, f"{path}[{i}]", problems, depth + 1, max_text)
            if c is not _DROP:
                out.append(c)
        return out
    if isinstance(v, dict):
        out_d = {}
        for k, x in list(v.items())[:MAX_ITEMS]:
            key = _text(k, 64)
            c = _clean(x, f"{path}.{key}", problems, depth + 1, max_text)
            if c is not _DROP:
                out_d[key] = c
        return out_d
    problems.append(f"{path}: not a JSON value")
    return _DROP


def _positions(v: Any, problems: list[str]) -> Any:
    """``positions_m`` as ``{track id: [x, y]}``, keeping the entries that are two numbers
    within :data:`MAX_COORD_M`; ``_DROP`` when it is not an object at all."""
    if not isinstance(v, dict):
        problems.append("positions_m: not an object of positions")
        return _DROP
    out = {}
    for k, xy in v.items():
        if isinstance(xy, list) and len(xy) == 2 and all(_finite(c, MAX_COORD_M) for c in xy):
            out[k] = xy
    if len(out) < len(v):
        problems.append(f"positions_m: {len(v) - len(out)} position(s) unreadable")
    return out


def read_payload(event_type: Any, payload: Any) -> tuple[dict[str, Any], list[str]]:
    """What can be shown of a stored payload, and what could not be read (empty: all of it).

    Never raises. Bounds first (module docstring), then the type's model: a field present
    with the wrong type or value is left out (a wrong entry of an object field: that entry);
    missing fields are not problems (older schemas lack some), nor fields the model does not
    know (shown as they are). :data:`HIDDEN_FIELDS` are dropped."""
    problems: list[str] = []
    if not isinstance(payload, dict):
        return {}, [f"payload is {_kind(payload)}, not an object"]
    out: dict[str, Any] = {}
    for k, v in list(payload.items())[:MAX_ITEMS]:
        key = _text(k, 64)
        if key in HIDDEN_FIELDS:
            continue
        limit = _HEAT_TEXT if key == "layers" and event_type == "heatmap" else MAX_TEXT
        c = _clean(v, key, problems, max_text=limit)
        if c is not _DROP and key == "positions_m":
            c = _positions(c, problems)
        if c is not _DROP:
            out[key] = c
    if len(payload) > MAX_ITEMS:
        problems.append(f"{len(payload) - MAX_ITEMS} field(s) left out")
    model = PAYLOADS.get(event_type) if isinstance(event_type, str) else None
    if model is not None:
        try:
            model.model_validate(out)
        except ValidationError as exc:
            dropped: set[tuple] = set()
            for err in exc.errors():
                loc = tuple(err.get("loc") or ())
                if err.get("type") in ("missing", "extra_forbidden") or not loc:
                    continue
                field, msg = loc[0], err.get("msg", "unreadable")
                inner = out.get(field, _DROP)
                if isinstance(inner, dict) and len(loc) > 1 and isinstance(loc[1], str):
                    if (field, loc[1]) not in dropped and loc[1] in inner:
                        dropped.add((field, loc[1]))
                        inner.pop(loc[1])
                        problems.append(f"{field}.{loc[1]}: {msg}")
                elif field in out:
                    out.pop(field)
                    problems.append(f"{field}: {msg}")
        except Exception as exc:  # noqa: BLE001 - a model that cannot even check this must not fail a page
            problems.append(f"payload not checked: {type(exc).__name__}")
    return out, problems


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    return {list: "a list", str: "text", bool: "a boolean", int: "a number", float: "a number"}.get(type(v), "odd")


def stored_event(stream_seq: Any, received_at: Any, text: Any, columns: dict[str, Any]) -> dict[str, Any]:
    """One stored event row as every page reads it; never raises.

    ``columns``: the row's :data:`COLUMNS` (identity comes from them, not from the JSON: they
    are what the store filters on). The result has those (strings, ``seq`` an int),
    ``stream_seq``, ``received_at``, ``schema``, ``payload`` (:func:`read_payload`: always an
    object), ``alarm_id`` (the payload's; a schema-1 event's derived as on upgrade; else
    ``None``: an event whose id is unreadable is an alarm of its own) and
    ``unreadable`` (``""``, or what could not be read, for the "unreadable payload" marker)."""
    problems: list[str] = []
    doc: Any = None
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            problems.append("stored JSON is not text")
            text = None
    if isinstance(text, str):
        if len(text) > MAX_JSON_CHARS:
            problems.append("stored JSON too large")
        else:
            try:
                doc = json.loads(text)
            except (ValueError, RecursionError, MemoryError):
                problems.append("stored JSON unreadable")
    elif text is not None:
        problems.append("stored JSON is not text")
    if doc is not None and not isinstance(doc, dict):
        problems.append(f"stored JSON is {_kind(doc)}, not an event object")
        doc = None
    ev: dict[str, Any] = {k: _text(columns.get(k), 128) for k in COLUMNS if k != "seq"}
    seq = columns.get("seq")
    ev["seq"] = seq if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 2**63 else 0
    ev["stream_seq"] = int(stream_seq) if _finite(stream_seq, 2**63) else 0
    ev["received_at"] = _text(received_at, 64)
    payload: dict[str, Any] = {}
    if doc is not None:
        schema = doc.get("schema")
        ev["schema"] = schema if isinstance(schema, int) and not isinstance(schema, bool) else None
        if "payload" not in doc:
            problems.append("no payload")
        else:
            payload, more = read_payload(ev["type"], doc["payload"])
            problems.extend(more)
    else:
        ev["schema"] = None
    ev["payload"] = payload
    alarm = payload.get("alarm_id")
    if not isinstance(alarm, str) and ev["schema"] == 1:  # schema 1 had none: derived as on upgrade
        try:
            alarm = alarm_id_of({"camera": ev["camera"], "type": ev["type"], "payload": payload})
        except Exception:  # noqa: BLE001 - a payload alarm_id_of cannot read has no alarm id
            alarm = None
    ev["alarm_id"] = alarm if isinstance(alarm, str) else None
    ev["unreadable"] = _text("; ".join(problems), 300)
    return ev


def show(v: Any, limit: int = 200) -> str:
    """A payload value as one line of text: scalars as they are, lists and objects as compact JSON."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (str, int, float)):
        return _text(v, limit)
    try:
        return _text(json.dumps(v, ensure_ascii=False, separators=(", ", ": "), allow_nan=False), limit)
    except (TypeError, ValueError, RecursionError):
        return ""


#: payload keys left out of the one-line summary: drawn elsewhere, or ids nobody reads in a list
_NOT_SUMMARISED = frozenset(("positions_m", "frame", "rule", "metric", "alarm_id", "transit_id", *HIDDEN_FIELDS))


def _summary(payload: dict, event_type: str | None) -> str:
    """The payload's one-line summary: its type's ``summary_fields`` (as ``vigil tail`` shows them)."""
    try:
        return summarize_payload(
            {k: v for k, v in payload.items() if k not in _NOT_SUMMARISED}, 90, event_type=event_type
        )
    except Exception:  # noqa: BLE001 - the summary is a convenience; the detail page shows the fields
        return ""


def public_alarm(ev: dict, status: dict | None) -> dict:
    """An alarm-list row (the HTML table and the live feed's JSON) of a :func:`stored_event`:
    the event's identity, a one-line summary of its payload, its plate if any, whether part of
    it was unreadable and its operator status (default new)."""
    p = ev.get("payload") if isinstance(ev.get("payload"), dict) else {}
    plate = p.get("plate")
    return {
        "stream_seq": ev.get("stream_seq", 0),
        "id": ev.get("id", ""),
        "time": ev.get("time", ""),
        "camera": ev.get("camera", ""),
        "type": ev.get("type", ""),
        "severity": ev.get("severity", ""),
        "state": ev.get("state", ""),
        "summary": _summary(p, ev.get("type")),
        "plate": plate if isinstance(plate, str) else None,
        "unreadable": bool(ev.get("unreadable")),
        "status": (status or {}).get("status", "new"),
    }


def _seconds_between(t0: Any, t1: Any) -> float | None:
    try:
        a = datetime.fromisoformat(str(t0).replace("Z", "+00:00"))
        b = datetime.fromisoformat(str(t1).replace("Z", "+00:00"))
        return max(0.0, (b - a).total_seconds())
    except (ValueError, TypeError, OverflowError):
        return None


def alarm_row(alarm: dict, lang: str) -> dict[str, Any]:
    """An alarm-list row (the HTML table and the live feed's JSON) of an
    :meth:`~.alarmdb.AlarmReads.alarms` row, in ``lang``: its identity, state and severities,
    times and duration (the latest payload's ``duration_s`` when it has one, else the span of
    its events' times; seconds, and as text), the sentence (:func:`.words.describe`), the
    latest and worst values in their units, the event count and the operator status."""
    last = alarm.get("last") if isinstance(alarm.get("last"), dict) else {}
    p = last.get("payload") if isinstance(last.get("payload"), dict) else {}
    etype = alarm.get("type", "")
    dur = p.get("duration_s")
    if not (_finite(dur) and dur >= 0):
        dur = _seconds_between(alarm.get("first_time"), alarm.get("last_time"))
    value, worst = words.measures(etype, p, lang)
    plate = p.get("plate")
    return {
        "id": alarm.get("id", ""),
        "stream_seq": last.get("stream_seq", 0),
        "event_id": last.get("id", ""),
        "camera": alarm.get("camera", ""),
        "type": etype,
        "type_name": words.type_name(etype, lang),
        "zone": alarm.get("zone"),
        "state": alarm.get("state", "open"),
        "severity": alarm.get("severity", ""),
        "max_severity": alarm.get("max_severity", ""),
        "first_time": alarm.get("first_time", ""),
        "last_time": alarm.get("last_time", ""),
        "duration_s": round(float(dur), 1) if dur is not None else None,
        "duration": words.duration(float(dur), lang) if dur is not None else "",
        "text": words.describe(etype, p, lang, alarm.get("camera") or None),
        "value": value,
        "worst": worst,
        "events": alarm.get("events", 0),
        "plate": plate if isinstance(plate, str) else None,
        "unreadable": bool(last.get("unreadable")),
        "status": alarm.get("status", "new"),
        "status_user": alarm.get("status_user"),
        "status_time": alarm.get("status_time"),
    }


def single_alarm(ev: dict) -> dict[str, Any]:
    """A stored event that is not part of an alarm row (a ``heatmap``) as a one-event alarm, for
    the detail page."""
    return {
        "id": ev.get("id", ""),
        "camera": ev.get("camera", ""),
        "type": ev.get("type", ""),
        "zone": None,
        "state": "ended" if ev.get("state") == "end" else "open",
        "severity": ev.get("severity", ""),
        "max_severity": ev.get("severity", ""),
        "first_time": ev.get("time", ""),
        "last_time": ev.get("time", ""),
        "events": 1,
        "status": "new",
        "status_user": None,
        "status_time": None,
        "last": ev,
    }


#: fields the detail page shows in rows of their own (the rest are listed as they are)
_DETAIL_FIELDS = ("metric", "value", "distance_m", "threshold", "threshold_m", "zone", "tracks", "plate")
#: shown elsewhere on the page (the pictures) or not meant for operators (ids)
_MEDIA_FIELDS = ("snapshot_id", "clip_id", "recording", "alarm_id")
_DETAIL_SKIP = frozenset((*_DETAIL_FIELDS, "positions_m", "list", "lists", *_MEDIA_FIELDS, *HIDDEN_FIELDS))


def alarm_detail(ev: dict, lang: str = "it") -> dict[str, Any]:
    """What the alarm page shows of a :func:`stored_event`'s payload, as display text: the
    measurement rows, the plate and its lists, the other fields, the evidence id (checked by
    the caller) and the bird's-eye shapes."""
    p = ev.get("payload") if isinstance(ev.get("payload"), dict) else {}
    threshold = p.get("threshold_m", p.get("threshold"))
    tracks = p.get("tracks")
    lists = p.get("lists")
    if isinstance(lists, list):
        lists = [x for x in lists if isinstance(x, str)]
    elif isinstance(p.get("list"), str) and p.get("list"):
        lists = [p["list"]]
    else:
        lists = []
    evidence = p.get("evidence") or p.get("evidence_id")
    return {
        "metric": show(p.get("metric")),
        "value": show(p["value"]) if "value" in p and p["value"] is not None else None,
        "distance_m": show(p["distance_m"]) if "distance_m" in p else None,
        "threshold": show(threshold) if "threshold_m" in p or "threshold" in p else None,
        "zone": show(p.get("zone")),
        "tracks": ", ".join(show(t) for t in tracks) if isinstance(tracks, list) else None,
        "plate": show(p["plate"]) if "plate" in p else None,
        "lists": ", ".join(lists),
        "extra": [field_row(k, v, lang) for k, v in p.items() if k not in _DETAIL_SKIP and field_value(k, v, lang)],
        "metric_label": field_row(p["metric"], None, lang)[0] if isinstance(p.get("metric"), str) else None,
        "value_text": _measured(p, "value", lang, ev.get("type")),
        "distance_text": _measured(p, "distance_m", lang) if p.get("distance_m") != p.get("value") else None,
        "threshold_text": _measured(p, "threshold_m" if "threshold_m" in p else "threshold", lang, ev.get("type")),
        "evidence": evidence if isinstance(evidence, str) else None,
        "svg": birdseye(p),
    }


def _measured(p: dict, key: str, lang: str, event_type: Any = None) -> str | None:
    """A measurement of the payload in words, its unit from the field's or the metric's name
    (``threshold_m``, ``distance_m`` -> metres), else from the event type; ``None`` when absent."""
    v = p.get(key)
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not _finite(v):
        return None
    unit_key = key if key.endswith(("_m", "_s", "_m2")) else str(p.get("metric") or key)
    if not unit_key.endswith(("_m", "_s", "_m2")):
        by_type = words.value_text(event_type, v, lang)
        if by_type is not None:
            return by_type
    return field_value(unit_key, v, lang)


def lifecycle_row(ev: dict, lang: str = "it") -> dict[str, Any]:
    """A row of the alarm page's lifecycle table (events of the same alarm), with its sentence."""
    p = ev.get("payload") if isinstance(ev.get("payload"), dict) else {}
    return {
        "text": words.describe(ev.get("type"), p, lang),
        "id": ev.get("id", ""),
        "time": ev.get("time", ""),
        "seq": ev.get("seq", 0),
        "state": ev.get("state", ""),
        "severity": ev.get("severity", ""),
        "value": words.measures(ev.get("type"), p, lang)[0] or show(p.get("value")),
        "unreadable": bool(ev.get("unreadable")),
    }


#: at most this many people are drawn on the bird's-eye view
_MAX_PEOPLE = 64


def birdseye(payload: Any, size: int = 320) -> dict | None:
    """Shapes for the bird's-eye SVG (world metres, y up, drawn y down): people, pair lines, grid.
    ``None`` when the payload has no drawable position (each must be two finite numbers within
    :data:`MAX_COORD_M`)."""
    pos = payload.get("positions_m") if isinstance(payload, dict) else None
    if not isinstance(pos, dict):
        return None
    pts = {}
    for k, v in list(pos.items())[:_MAX_PEOPLE]:
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(_finite(c, MAX_COORD_M) for c in v):
            pts[_text(k, 16)] = (float(v[0]), float(v[1]))
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
                close = _finite(thr) and d < thr
                pa, pb = to_px(*a), to_px(*b)
                lines.append({"a": pa, "b": pb, "d": round(d, 2), "close": close, **_pair_label(pa, pb)})
    return {"size": size, "grid": grid, "people": people, "lines": lines, "scale_m": round(span, 1)}


def _pair_label(pa: tuple[float, float], pb: tuple[float, float], gap: float = 12.0) -> dict:
    """Where a pair's distance is written (SVG pixels): ``gap`` px off the segment's middle,
    perpendicular to it, on the side away from the people's labels (drawn right of each dot) or,
    for a level pair, above it; ``anchor``: the SVG text-anchor that keeps it off the segment."""
    dx, dy = pb[0] - pa[0], pb[1] - pa[1]
    n = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / n, dx / n
    if nx > 1e-9 or (abs(nx) <= 1e-9 and ny > 0):
        nx, ny = -nx, -ny
    mx, my = (pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2
    anchor = "end" if nx < -0.3 else "middle"
    return {"mid": (mx, my), "label": (round(mx + gap * nx, 1), round(my + gap * ny + 4, 1)), "anchor": anchor}


#: heat map colour ramp (value 0..1 -> colour), yellow to dark red
_HEAT_STOPS = (
    (0.0, (255, 255, 204)),
    (0.25, (254, 217, 118)),
    (0.5, (253, 141, 60)),
    (0.75, (227, 26, 28)),
    (1.0, (128, 0, 38)),
)


def _heat_colour(q: int) -> str:
    v = q / 255.0
    for (a, ca), (b, cb) in zip(_HEAT_STOPS, _HEAT_STOPS[1:]):
        if v <= b:
            f = (v - a) / (b - a)
            return "#%02x%02x%02x" % tuple(round(x + (y - x) * f) for x, y in zip(ca, cb))
    return "#%02x%02x%02x" % _HEAT_STOPS[-1][1]


def heatmap_layer(grid: Any, size: int = 240) -> dict | None:
    """Shapes for one layer of a ``heatmap`` event (a compact grid from
    ``vigil.geometry.risk.compact_grid``) as an SVG: cells with a value > 0 (row 0 at the
    bottom: y up), the legend ramp and the scale. ``None`` if the grid is malformed (sizes,
    scale, cell and origin must be finite and within sane bounds)."""
    if not isinstance(grid, dict) or grid.get("encoding") != "u8-b64":
        return None
    shape, data, scale, cell = grid.get("shape"), grid.get("data"), grid.get("scale"), grid.get("cell_m")
    origin = grid.get("origin_m")
    if not (
        isinstance(shape, list)
        and len(shape) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= _HEAT_MAX_CELLS for v in shape)
    ):
        return None
    rows, cols = shape
    if rows * cols > _HEAT_MAX_CELLS or not isinstance(data, str) or not _finite(scale) or scale < 0:
        return None
    if not _finite(cell, 1e4) or cell <= 0:
        return None
    if not (isinstance(origin, list) and len(origin) == 2 and all(_finite(v, MAX_COORD_M) for v in origin)):
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
        "unit": _text(grid.get("unit", ""), 60),
        "cell_m": round(float(cell), 3),
        "origin": [round(float(v), 2) for v in origin],
        "extent": [round(float(origin[0]) + cols * float(cell), 2), round(float(origin[1]) + rows * float(cell), 2)],
        "stops": [{"offset": round(o * 100), "colour": "#%02x%02x%02x" % c} for o, c in _HEAT_STOPS],
    }


def heatmap_view(ev: dict | None, size: int = 240) -> dict | None:
    """The layers of a stored ``heatmap`` event ready for the template, with its time."""
    if not isinstance(ev, dict):
        return None
    payload = ev.get("payload")
    layers = payload.get("layers") if isinstance(payload, dict) else None
    if not isinstance(layers, dict):
        return None
    out = []
    for name in ("occupancy", "risk"):
        try:
            layer = heatmap_layer(layers.get(name), size)
        except (ValueError, OverflowError, TypeError):
            layer = None
        if layer is not None:
            out.append({"name": name, **layer})
    return {"time": _text(ev.get("time", ""), 64), "id": ev.get("id"), "layers": out} if out else None


def transit_table(results: Any) -> tuple[list[str], list[list[str]]]:
    """The transit-search result table: column names (first seen first, without
    :data:`HIDDEN_FIELDS`) and one row of display text per result."""
    rows = [r for r in (results or []) if isinstance(r, dict)]
    columns: list[str] = []
    for r in rows:
        for k in r:
            key = _text(k, 64)
            if key not in columns and key not in HIDDEN_FIELDS:
                columns.append(key)
    return columns, [[show(r.get(c)) for c in columns] for r in rows]
