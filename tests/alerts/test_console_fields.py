"""The alarm page's field rows in words (vigil.alerts.console.fields): labels in Italian and
English, values in the operator's locale with the unit the field's name gives."""

from __future__ import annotations

from vigil.alerts.console.fields import field_row, field_value
from vigil.alerts.console.views import alarm_detail


def test_units_come_from_the_field_name_in_each_locale():
    assert field_row("min_distance_m", 0.764, "it") == ("Distanza minima", "0,76 m")
    assert field_row("min_distance_m", 0.764, "en") == ("Closest distance", "0.76 m")
    assert field_row("duration_s", 125.0, "it") == ("Durata", "2 min 5 s")
    assert field_row("area_m2", 1234.5, "it") == ("Area", "1.234,50 m²")
    assert field_row("area_m2", 1234.5, "en") == ("Area", "1,234.50 m²")
    assert field_row("proximity", 0.8125, "en") == ("Proximity", "0.81")
    assert field_row("frame", 41, "en") == ("Frame", "41")


def test_words_for_values_lists_and_unknown_fields():
    assert field_row("reason", "clear", "it") == ("Motivo", "condizione rientrata")
    assert field_row("reason", "lost", "en") == ("Reason", "people no longer seen")
    assert field_row("classes", ["person", "bicycle"], "en") == ("Classes", "person, bicycle")
    assert field_row("exact", True, "it") == ("Esatto", "sì")
    assert field_row("brand_new_field", "x", "en") == ("brand_new_field", "x")  # a newer edge's field: its name
    assert field_value("hits", {"A1": {"path": "/srv/lists/a1.csv"}}, "en") == "(1)"  # never a raw dict or a path


def test_the_detail_shows_measurements_with_units_and_hides_ids():
    ev = {
        "type": "distance_violation",
        "payload": {
            "alarm_id": "5f0c2d4e-7a8b-4c1d-9e2f-3a4b5c6d7e02",
            "metric": "distance_m",
            "value": 1.9,
            "distance_m": 1.9,
            "threshold_m": 1.5,
            "min_distance_m": 0.76,
            "snapshot_id": "fedcba9876543210fedcba9876543210",
            "reason": "clear",
        },
    }
    d = alarm_detail(ev, "it")
    assert (d["metric_label"], d["value_text"], d["threshold_text"], d["distance_text"]) == (
        "Distanza", "1,90 m", "1,50 m", None,
    )  # fmt: skip
    assert d["extra"] == [("Distanza minima", "0,76 m"), ("Motivo", "condizione rientrata")]
