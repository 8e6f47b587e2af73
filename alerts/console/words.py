"""Alarms in words: one sentence per alarm in Italian or English, numbers and units in the
operator's language (``it``: decimal comma, ``0,76 m``; ``en``: decimal point, ``0.76 m``).

:func:`describe` turns an event type and a payload (as :func:`~.views.read_payload` left it: any
field may be missing) into a sentence such as ``2 persone a 0,76 m per 40 s — piazza`` or
``Targa AB123CD in lista A1 (rubata) — varco nord``; every type of
:data:`vigil.alerts.payloads.PAYLOADS` has its sentence, and a payload it cannot read (an unknown
type, a missing or wrong-typed field) gets a generic one (:func:`generic`). Sentences never show
a raw dictionary, a list's ``source`` (a server path) nor a keyed pseudonym. Pure functions.

Units: distances in metres (2 decimals), densities in people per m² (2 decimals), risk levels
(2 decimals), durations in seconds shown as ``40 s``, ``2 min 5 s``, ``1 h 3 min``.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["LANGS", "describe", "duration", "generic", "measures", "metres", "number", "type_name"]

LANGS = ("it", "en")

#: event type -> (it, en) short name
TYPE_NAMES: dict[str, tuple[str, str]] = {
    "distance_violation": ("Distanza ravvicinata", "People too close"),
    "contact_time": ("Contatto prolungato", "Prolonged contact"),
    "occupancy_limit": ("Troppe persone", "Over capacity"),
    "density_limit": ("Densità eccessiva", "Crowd density"),
    "queue_spacing": ("Coda troppo stretta", "Queue too tight"),
    "risk_level": ("Rischio elevato", "High risk"),
    "heatmap": ("Mappa di calore", "Heat map"),
    "plate_hit": ("Targa segnalata", "Plate hit"),
    "plate_transit": ("Transito veicolo", "Vehicle pass"),
    "camera_health": ("Stato telecamera", "Camera health"),
}
_CONDITIONS = {
    "blank": ("immagine uniforme (oscurata?)", "blank picture (covered?)"),
    "frozen": ("immagine bloccata", "frozen picture"),
    "garbled": ("immagine corrotta", "garbled picture"),
    "no_detections": ("nessun rilevamento", "no detections"),
}


def _i(lang: str) -> int:
    return 1 if lang == "en" else 0


def _num(v: Any) -> float | None:
    """A finite JSON number (not a bool), else ``None``."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def number(x: float, lang: str, decimals: int = 2) -> str:
    """``x`` with ``decimals`` decimals in ``lang``'s form: ``1.234,50`` (it), ``1,234.50`` (en)."""
    text = f"{x:,.{decimals}f}"
    if lang == "en":
        return text
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def metres(x: float, lang: str) -> str:
    """A distance in metres: ``0,76 m`` / ``0.76 m``."""
    return f"{number(x, lang, 2)} m"


def duration(seconds: float, lang: str) -> str:
    """Seconds as ``40 s``, ``2 min 5 s``, ``1 h 3 min`` (whole seconds, rounded; same in both
    languages: the units are international)."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{m} min {r} s" if r else f"{m} min"
    h, r = divmod(s, 3600)
    m = r // 60
    return f"{h} h {m} min" if m else f"{h} h"


def type_name(event_type: Any, lang: str) -> str:
    """The short name of an event type (the type itself, cut, for an unknown one)."""
    names = TYPE_NAMES.get(event_type) if isinstance(event_type, str) else None
    if names:
        return names[_i(lang)]
    return str(event_type)[:64] if isinstance(event_type, str) else "?"


def generic(event_type: Any, lang: str) -> str:
    """The sentence of an alarm whose details cannot be read."""
    name = type_name(event_type, lang)
    return f"{name}: dettagli non leggibili" if lang != "en" else f"{name}: details unreadable"


def _where(payload: dict, place: str | None) -> str:
    zone = payload.get("zone")
    where = zone if isinstance(zone, str) and zone else place
    return f" — {where}" if where else ""


def _people(n: int, lang: str) -> str:
    if lang == "en":
        return f"{n} {'person' if n == 1 else 'people'}"
    return f"{n} {'persona' if n == 1 else 'persone'}"


def _for(payload: dict, lang: str) -> str:
    d = _num(payload.get("duration_s"))
    if d is None:
        return ""
    return f" per {duration(d, lang)}" if lang != "en" else f" for {duration(d, lang)}"


def _distance(p: dict, lang: str) -> str | None:
    d = next((x for x in (_num(p.get(k)) for k in ("min_distance_m", "distance_m", "value")) if x is not None), None)
    tracks = p.get("tracks")
    if d is None:
        return None
    n = len(tracks) if isinstance(tracks, list) and tracks else 2
    if lang == "en":
        return f"{_people(n, lang)} {metres(d, lang)} apart{_for(p, lang)}"
    return f"{_people(n, lang)} a {metres(d, lang)}{_for(p, lang)}"


def _contact(p: dict, lang: str) -> str | None:
    worst, window = _num(p.get("worst")), _num(p.get("window_s"))
    if worst is None:
        return None
    within = ""
    if window is not None:
        within = f" su {duration(window, lang)}" if lang != "en" else f" within {duration(window, lang)}"
    limit = _num(p.get("contact_threshold_m"))
    under = ""
    if limit is not None:
        under = f" (sotto {metres(limit, lang)})" if lang != "en" else f" (closer than {metres(limit, lang)})"
    if lang == "en":
        return f"2 people in contact for {duration(worst, lang)}{within}{under}"
    return f"2 persone a contatto per {duration(worst, lang)}{within}{under}"


def _occupancy(p: dict, lang: str) -> str | None:
    n = _num(p.get("worst")) if _num(p.get("worst")) is not None else _num(p.get("value"))
    cap = _num(p.get("threshold"))
    if n is None:
        return None
    out = _people(int(round(n)), lang)
    if cap is not None:
        out += f" (capienza {int(round(cap))})" if lang != "en" else f" (capacity {int(round(cap))})"
    return out + _for(p, lang)


def _density(p: dict, lang: str) -> str | None:
    d = _num(p.get("worst")) if _num(p.get("worst")) is not None else _num(p.get("value"))
    if d is None:
        return None
    unit = "persone/m²" if lang != "en" else "people/m²"
    out = f"{'densità' if lang != 'en' else 'density'} {number(d, lang)} {unit}"
    limit = _num(p.get("threshold"))
    if limit is not None:
        out += f" (limite {number(limit, lang)})" if lang != "en" else f" (limit {number(limit, lang)})"
    return out + _for(p, lang)


def _queue(p: dict, lang: str) -> str | None:
    gap = _num(p.get("worst")) if _num(p.get("worst")) is not None else _num(p.get("value"))
    if gap is None:
        return None
    n = p.get("queue_length")
    count = n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None
    minimum = _num(p.get("threshold"))
    if lang == "en":
        out = (f"queue of {_people(count, lang)}, " if count is not None else "queue, ") + f"gap {metres(gap, lang)}"
        return out + (f" (minimum {metres(minimum, lang)})" if minimum is not None else "")
    out = (f"coda di {_people(count, lang)}, " if count is not None else "coda, ") + f"distanza {metres(gap, lang)}"
    return out + (f" (minimo {metres(minimum, lang)})" if minimum is not None else "")


def _risk(p: dict, lang: str) -> str | None:
    r = _num(p.get("worst")) if _num(p.get("worst")) is not None else _num(p.get("value"))
    if r is None:
        return None
    limit = _num(p.get("threshold"))
    out = f"{'livello di rischio' if lang != 'en' else 'risk level'} {number(r, lang)}"
    if limit is not None:
        out += f" (soglia {number(limit, lang)})" if lang != "en" else f" (threshold {number(limit, lang)})"
    return out + _for(p, lang)


def _heatmap(p: dict, lang: str) -> str | None:
    final = p.get("final") is True
    if lang == "en":
        return "heat map, final" if final else "heat map updated"
    return "mappa di calore finale" if final else "mappa di calore aggiornata"


def _hit_text(hit: Any, lang: str) -> str | None:
    """``A1 (rubata)`` of one watch-list hit: its code and its note (or list name); never its source."""
    if not isinstance(hit, dict) or not isinstance(hit.get("list"), str) or not hit["list"]:
        return None
    what = next((hit[k] for k in ("note", "list_name") if isinstance(hit.get(k), str) and hit[k].strip()), None)
    out = hit["list"] + (f" ({what.strip()})" if what else "")
    if hit.get("exact") is False:
        out += " ≈" + (f" {hit['plate']}" if isinstance(hit.get("plate"), str) else "")
    return out


def _plate_hit(p: dict, lang: str) -> str | None:
    plate = p.get("plate")
    if not isinstance(plate, str) or not plate:
        return None
    hits = p.get("hits")
    parts = [t for t in (_hit_text(h, lang) for h in hits) if t] if isinstance(hits, list) else []
    if not parts and isinstance(p.get("lists"), list):
        parts = [x for x in p["lists"] if isinstance(x, str) and x]
    word = ("in lista", "on list") if len(parts) <= 1 else ("nelle liste", "on lists")
    label = "Targa" if lang != "en" else "Plate"
    return f"{label} {plate} {word[_i(lang)]} {', '.join(parts)}" if parts else f"{label} {plate}"


def _plate_transit(p: dict, lang: str) -> str | None:
    plate = p.get("plate") if isinstance(p.get("plate"), str) and p.get("plate") else None
    direction = {"in": ("in entrata", "in"), "out": ("in uscita", "out")}.get(p.get("direction"))
    n = p.get("readings")
    if lang == "en":
        out = f"Vehicle pass {plate}" if plate else "Vehicle pass (plate not kept)"
        out += f", {direction[1]}" if direction else ""
        return out + (f", {n} readings" if isinstance(n, int) and not isinstance(n, bool) else "")
    out = f"Transito veicolo {plate}" if plate else "Transito veicolo (targa non conservata)"
    out += f", {direction[0]}" if direction else ""
    return out + (f", {n} letture" if isinstance(n, int) and not isinstance(n, bool) else "")


def _health(p: dict, lang: str) -> str | None:
    cond = _CONDITIONS.get(p.get("condition"))
    if cond is None:
        return None
    d = _num(p.get("duration_s"))
    since = f" da {duration(d, lang)}" if lang != "en" else f" for {duration(d, lang)}"
    out = ("Telecamera: " if lang != "en" else "Camera: ") + cond[_i(lang)] + (since if d is not None else "")
    if p.get("health") == "ok":
        out += " (tornata normale)" if lang != "en" else " (back to normal)"
    return out


_SENTENCES = {
    "distance_violation": _distance,
    "contact_time": _contact,
    "occupancy_limit": _occupancy,
    "density_limit": _density,
    "queue_spacing": _queue,
    "risk_level": _risk,
    "heatmap": _heatmap,
    "plate_hit": _plate_hit,
    "plate_transit": _plate_transit,
    "camera_health": _health,
}


def describe(event_type: Any, payload: Any, lang: str, place: str | None = None) -> str:
    """One sentence for an event of ``event_type`` with ``payload`` in ``lang`` (``it`` | ``en``),
    ending with ``— <zone>`` (or ``— <place>``, e.g. the camera, when the payload names no zone);
    :func:`generic` when the payload cannot be read. Never raises."""
    lang = lang if lang in LANGS else "it"
    fn = _SENTENCES.get(event_type) if isinstance(event_type, str) else None
    p = payload if isinstance(payload, dict) else {}
    try:
        body = fn(p, lang) if fn is not None else None
    except Exception:  # noqa: BLE001 - a sentence must never break a page
        body = None
    if body is None:
        return generic(event_type, lang)
    if event_type in ("heatmap", "camera_health"):
        return body
    return body + _where(p, place)


def _fmt(kind: str, v: Any, lang: str) -> str | None:
    x = _num(v)
    if x is None:
        return None
    if kind == "m":
        return metres(x, lang)
    if kind == "s":
        return duration(x, lang)
    if kind == "people":
        return _people(int(round(x)), lang)
    if kind == "density":
        return f"{number(x, lang)} /m²"
    return number(x, lang)


#: event type -> (unit kind, last-value field(s), worst-value field)
_MEASURES: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "distance_violation": ("m", ("distance_m", "value"), "min_distance_m"),
    "contact_time": ("s", ("value",), "worst"),
    "occupancy_limit": ("people", ("value",), "worst"),
    "density_limit": ("density", ("value",), "worst"),
    "queue_spacing": ("m", ("value",), "worst"),
    "risk_level": ("n", ("value",), "worst"),
    "camera_health": ("n", ("value",), None),
}


def value_text(event_type: Any, v: Any, lang: str) -> str | None:
    """A rule alarm's ``value`` in its type's unit (``0,80 m`` for a distance), ``None`` when
    the type has no known unit or ``v`` is not a finite number."""
    spec = _MEASURES.get(event_type) if isinstance(event_type, str) else None
    return _fmt(spec[0], v, lang) if spec is not None else None


def measures(event_type: Any, payload: Any, lang: str) -> tuple[str, str]:
    """``(last value, worst value)`` of an alarm's latest payload as display text in ``lang``
    (``""`` when unknown): the metric in its unit for rule alarms (``0,76 m``, ``14 persone``,
    ``2,40 /m²``, ``40 s``), the plate and its lists for plate hits."""
    p = payload if isinstance(payload, dict) else {}
    lang = lang if lang in LANGS else "it"
    if event_type in ("plate_hit", "plate_transit"):
        plate = p.get("plate") if isinstance(p.get("plate"), str) else ""
        hits = p.get("hits")
        parts = [t for t in (_hit_text(h, lang) for h in hits) if t] if isinstance(hits, list) else []
        return plate, ", ".join(parts)
    spec = _MEASURES.get(event_type) if isinstance(event_type, str) else None
    if spec is None:
        return "", ""
    kind, last_fields, worst_field = spec
    last = next((t for t in (_fmt(kind, p.get(f), lang) for f in last_fields) if t is not None), "")
    worst = (_fmt(kind, p.get(worst_field), lang) or "") if worst_field else ""
    return last, worst
