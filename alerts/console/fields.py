"""The alarm page's field rows in words: a label per payload field in Italian and English, and its
value in the operator's locale with its unit (``0,76 m``, ``40 s``, ``12,5 m²``).

:func:`field_row` names a field and formats its value; the unit comes from the field's name
(``*_m`` metres, ``*_s`` seconds, ``*_m2`` square metres), as the payload models
(:mod:`vigil.alerts.payloads`) name them. A field with no label here keeps its name (a payload
of a newer edge), never a raw structure: lists are joined, objects summarised.
"""

from __future__ import annotations

from typing import Any

from .words import duration, metres, number

__all__ = ["FIELD_LABELS", "field_row", "field_value"]

FIELD_LABELS: dict[str, tuple[str, str]] = {  # field: (it, en)
    "rule": ("Regola", "Rule"),
    "duration_s": ("Durata", "Duration"),
    "frame": ("Fotogramma", "Frame"),
    "min_distance_m": ("Distanza minima", "Closest distance"),
    "distance_m": ("Distanza", "Distance"),
    "distance_sigma_m": ("Incertezza della distanza", "Distance uncertainty"),
    "distance_interval_m": ("Intervallo della distanza", "Distance interval"),
    "contact_threshold_m": ("Soglia di contatto", "Contact threshold"),
    "threshold_m": ("Soglia", "Threshold"),
    "classes": ("Classi", "Classes"),
    "reason": ("Motivo", "Reason"),
    "worst": ("Valore peggiore", "Worst value"),
    "exposure": ("Esposizione", "Exposure"),
    "proximity": ("Prossimità", "Proximity"),
    "people": ("Persone", "People"),
    "area_m2": ("Area", "Area"),
    "queue_length": ("Persone in coda", "People in the queue"),
    "gaps_m": ("Distanze in coda", "Gaps in the queue"),
    "window_s": ("Finestra", "Window"),
    "decay_tau_s": ("Decadimento", "Decay time"),
    "condition": ("Condizione", "Condition"),
    "confidence": ("Confidenza", "Confidence"),
    "country": ("Paese", "Country"),
    "vehicle_class": ("Veicolo", "Vehicle"),
    "direction": ("Direzione", "Direction"),
    "decision": ("Decisione", "Decision"),
    "transit_id": ("Transito", "Transit"),
    "mode": ("Modalità", "Mode"),
    "violation": ("Violazione", "Violation"),
    "final": ("Finale", "Final"),
    "exact": ("Esatto", "Exact"),
    "note": ("Nota", "Note"),
    "kind": ("Tipo", "Kind"),
}

_YES_NO = {True: ("sì", "yes"), False: ("no", "no")}
_REASONS = {
    "clear": ("condizione rientrata", "condition cleared"),
    "lost": ("persone non più viste", "people no longer seen"),
    "flush": ("fine del flusso video", "end of the video stream"),
}


def _i(lang: str) -> int:
    return 1 if lang == "en" else 0


def field_value(key: str, v: Any, lang: str) -> str:
    """``v`` of payload field ``key`` as display text in ``lang`` (``it`` | ``en``)."""
    if isinstance(v, bool):
        return _YES_NO[v][_i(lang)]
    if isinstance(v, (int, float)):
        if key.endswith("_s"):
            return duration(float(v), lang)
        if key.endswith("_m2"):
            return f"{number(float(v), lang)} m²"
        if key.endswith("_m"):
            return metres(float(v), lang)
        if key == "frame" or isinstance(v, int):
            return str(v)
        return number(float(v), lang)
    if isinstance(v, str):
        if key == "reason" and v in _REASONS:
            return _REASONS[v][_i(lang)]
        return v[:200]
    if isinstance(v, list):
        items = [field_value(key, x, lang) for x in v[:20] if isinstance(x, (str, int, float, bool))]
        more = " …" if len(v) > 20 else ""
        return ", ".join(items) + more
    if isinstance(v, dict):
        return f"({len(v)})"
    return ""


def field_row(key: str, v: Any, lang: str) -> tuple[str, str]:
    """``(label, value)`` of one payload field for the alarm page."""
    label = FIELD_LABELS.get(key)
    return (label[_i(lang)] if label else key), field_value(key, v, lang)
