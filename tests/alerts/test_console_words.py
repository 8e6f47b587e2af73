"""Alarms in words (:mod:`vigil.alerts.console.words`): every event type's sentence, the
latest and worst values, in Italian and English, with exact expected text; unreadable payloads
get the generic sentence; nothing raw (a dictionary, a list's server path) is ever printed."""

from __future__ import annotations

import pytest

from vigil.alerts.console.words import describe, duration, measures, number, type_name
from vigil.alerts.payloads import PAYLOADS

A1_HIT = {
    "list": "A1",
    "list_name": "veicoli rubati",
    "plate": "AB123CD",
    "note": "rubata",
    "exact": True,
    "source": "/srv/vigil/lists/a1.csv",
    "line": 2,
}
PAYLOADS_BY_TYPE = {
    "distance_violation": {
        "tracks": [3, 7],
        "value": 1.2,
        "distance_m": 1.2,
        "min_distance_m": 0.76,
        "threshold_m": 1.5,
        "duration_s": 40.0,
        "zone": "piazza",
    },
    "contact_time": {
        "tracks": [1, 2],
        "value": 65.0,
        "worst": 125.0,
        "window_s": 300.0,
        "distance_m": 0.4,
        "contact_threshold_m": 1.5,
        "duration_s": 125.0,
        "zone": None,
    },
    "occupancy_limit": {"value": 14.0, "worst": 15.0, "threshold": 12.0, "duration_s": 125.4, "zone": "fontana"},
    "density_limit": {"value": 2.4, "worst": 3.13, "threshold": 2.0, "people": 30, "duration_s": 30.0, "zone": "varco"},
    "queue_spacing": {"value": 0.8, "worst": 0.6, "threshold": 1.0, "queue_length": 5, "zone": "sportello"},
    "risk_level": {"value": 0.8, "worst": 0.82, "threshold": 0.7, "duration_s": 3725.0, "zone": None},
    "heatmap": {"final": False},
    "plate_hit": {"plate": "AB123CD", "lists": ["A1"], "hits": [A1_HIT]},
    "plate_transit": {"plate": None, "direction": "in", "readings": 3},
    "camera_health": {"condition": "frozen", "health": "frozen", "value": 0.1, "duration_s": 125.0},
}
# (type) -> ((it sentence, it last, it worst), (en sentence, en last, en worst)); place "varco nord"
EXPECTED = {
    "distance_violation": (
        ("2 persone a 0,76 m per 40 s — piazza", "1,20 m", "0,76 m"),
        ("2 people 0.76 m apart for 40 s — piazza", "1.20 m", "0.76 m"),
    ),
    "contact_time": (
        ("2 persone a contatto per 2 min 5 s su 5 min (sotto 1,50 m) — varco nord", "1 min 5 s", "2 min 5 s"),
        ("2 people in contact for 2 min 5 s within 5 min (closer than 1.50 m) — varco nord", "1 min 5 s", "2 min 5 s"),
    ),
    "occupancy_limit": (
        ("15 persone (capienza 12) per 2 min 5 s — fontana", "14 persone", "15 persone"),
        ("15 people (capacity 12) for 2 min 5 s — fontana", "14 people", "15 people"),
    ),
    "density_limit": (
        ("densità 3,13 persone/m² (limite 2,00) per 30 s — varco", "2,40 /m²", "3,13 /m²"),
        ("density 3.13 people/m² (limit 2.00) for 30 s — varco", "2.40 /m²", "3.13 /m²"),
    ),
    "queue_spacing": (
        ("coda di 5 persone, distanza 0,60 m (minimo 1,00 m) — sportello", "0,80 m", "0,60 m"),
        ("queue of 5 people, gap 0.60 m (minimum 1.00 m) — sportello", "0.80 m", "0.60 m"),
    ),
    "risk_level": (
        ("livello di rischio 0,82 (soglia 0,70) per 1 h 2 min — varco nord", "0,80", "0,82"),
        ("risk level 0.82 (threshold 0.70) for 1 h 2 min — varco nord", "0.80", "0.82"),
    ),
    "heatmap": (("mappa di calore aggiornata", "", ""), ("heat map updated", "", "")),
    "plate_hit": (
        ("Targa AB123CD in lista A1 (rubata) — varco nord", "AB123CD", "A1 (rubata)"),
        ("Plate AB123CD on list A1 (rubata) — varco nord", "AB123CD", "A1 (rubata)"),
    ),
    "plate_transit": (
        ("Transito veicolo (targa non conservata), in entrata, 3 letture — varco nord", "", ""),
        ("Vehicle pass (plate not kept), in, 3 readings — varco nord", "", ""),
    ),
    "camera_health": (
        ("Telecamera: immagine bloccata da 2 min 5 s", "0,10", ""),
        ("Camera: frozen picture for 2 min 5 s", "0.10", ""),
    ),
}


def test_every_payload_type_has_its_expected_sentences():
    assert set(EXPECTED) == set(PAYLOADS) == set(PAYLOADS_BY_TYPE)


@pytest.mark.parametrize("event_type", sorted(EXPECTED))
@pytest.mark.parametrize("lang", ["it", "en"])
def test_sentence_and_values_per_type(event_type, lang):
    sentence, last, worst = EXPECTED[event_type][0 if lang == "it" else 1]
    payload = PAYLOADS_BY_TYPE[event_type]
    assert describe(event_type, payload, lang, "varco nord") == sentence
    assert measures(event_type, payload, lang) == (last, worst)


def test_the_issue_examples():
    assert describe(
        "distance_violation", {"tracks": [1, 2], "min_distance_m": 0.76, "duration_s": 40, "zone": "piazza"}, "it"
    ) == ("2 persone a 0,76 m per 40 s — piazza")
    assert describe("plate_hit", {"plate": "AB123CD", "hits": [A1_HIT]}, "it", "varco nord") == (
        "Targa AB123CD in lista A1 (rubata) — varco nord"
    )


def test_plate_hits_in_several_lists_approximate_matches_and_list_names():
    hits = [dict(A1_HIT, note=""), dict(A1_HIT, list="C", note="revisione scaduta", exact=False, plate="AB128CD")]
    assert describe("plate_hit", {"plate": "AB123CD", "hits": hits}, "en") == (
        "Plate AB123CD on lists A1 (veicoli rubati), C (revisione scaduta) ≈ AB128CD"
    )
    # without hit details: the list names of the payload; never a dictionary nor a path
    assert describe("plate_hit", {"plate": "AB123CD", "lists": ["A1"]}, "it") == "Targa AB123CD in lista A1"
    text = describe("plate_hit", {"plate": "AB123CD", "hits": [A1_HIT, {"x": 1}]}, "it")
    assert "/srv" not in text and "{" not in text and "a1.csv" not in text


@pytest.mark.parametrize(
    "event_type, payload",
    [
        ("distance_violation", {}),
        ("distance_violation", {"min_distance_m": "0.7"}),
        ("occupancy_limit", {"worst": True}),
        ("plate_hit", {"plate": 12345}),
        ("camera_health", {"condition": "melted"}),
        ("risk_level", [1, 2]),
        ("no_such_type", {"value": 1}),
        (None, None),
    ],
)
def test_unreadable_payloads_get_the_generic_sentence(event_type, payload):
    it, en = describe(event_type, payload, "it"), describe(event_type, payload, "en")
    assert it.endswith(": dettagli non leggibili") and en.endswith(": details unreadable")
    assert it.split(":")[0] == type_name(event_type, "it")


def test_numbers_and_durations_in_each_locale():
    assert (number(1234.5, "it"), number(1234.5, "en"), number(0.756, "it")) == ("1.234,50", "1,234.50", "0,76")
    assert [duration(s, "it") for s in (0, 4.4, 40, 60, 125, 3600, 3725)] == [
        "0 s",
        "4 s",
        "40 s",
        "1 min",
        "2 min 5 s",
        "1 h",
        "1 h 2 min",
    ]
    assert describe("distance_violation", {"tracks": [1, 2, 3], "distance_m": 0.5}, "en") == "3 people 0.50 m apart"
    assert describe("camera_health", {"condition": "blank", "health": "ok", "duration_s": 5}, "it") == (
        "Telecamera: immagine uniforme (oscurata?) da 5 s (tornata normale)"
    )
