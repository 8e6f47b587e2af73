"""Event schema 2: one typed payload model per event type, alarm ids, the schema-1 upgrade,
the generic AlarmChange -> Event conversion, and a bad payload refused at the aggregator."""

from __future__ import annotations

import json
import uuid

import pytest

from vigil.alarm import AlarmChange
from vigil.alerts.events import SCHEMA_VERSION, Event, EventError, alarm_id_of, event_from_change, schema1_alarm_id
from vigil.alerts.payloads import ALARM_TYPES, PAYLOADS
from vigil.alerts.publisher import EventPublisher
from vigil.alerts.tail import summarize_payload
from vigil.alerts.transport import decode_reply

TIME = "2026-11-23T07:00:00.000000Z"


def _event(type: str, payload: dict, **kw) -> dict:
    return {"schema": 2, "id": str(uuid.uuid4()), "type": type, "camera": "cam1", "seq": 1, "time": TIME, **kw} | {
        "payload": payload
    }


@pytest.mark.parametrize("type", sorted(PAYLOADS))
def test_each_type_round_trips(type, sample_payload):
    ev = Event.from_json(json.dumps(_event(type, sample_payload(type))))
    assert ev.schema_ == SCHEMA_VERSION == 2 and ev.type == type
    assert Event.from_json(ev.to_bytes()) == ev
    assert PAYLOADS[type].model_validate(ev.payload).model_dump(exclude_unset=True) == ev.payload
    assert (alarm_id_of(ev) is not None) == (type in ALARM_TYPES)


@pytest.mark.parametrize("type", sorted(PAYLOADS))
def test_extra_missing_and_wrong_typed_fields_are_named(type, sample_payload):
    good = sample_payload(type)
    with pytest.raises(EventError, match=r"payload\.surplus: Extra inputs are not permitted"):
        Event.from_json(json.dumps(_event(type, {**good, "surplus": 1})))
    field = "frame"
    with pytest.raises(EventError, match=rf"payload\.{field}: Field required"):
        Event.from_json(json.dumps(_event(type, {k: v for k, v in good.items() if k != field})))
    with pytest.raises(EventError, match=rf"payload\.{field}: Input should be a valid integer"):
        Event.from_json(json.dumps(_event(type, {**good, field: "12"})))


def test_specific_field_errors(sample_payload):
    p = sample_payload("distance_violation")
    cases = [
        ({**p, "distance_m": "0.8"}, r"payload\.distance_m: Input should be a valid number"),
        ({**p, "tracks": [3, "x"]}, r"payload\.tracks\.1: Input should be a valid integer"),
        ({**p, "positions_m": {"3": [1.0]}}, r"payload\.positions_m\.3: List should have at least 2 items"),
        ({k: v for k, v in p.items() if k != "alarm_id"}, r"payload\.alarm_id: Field required"),
        ({**p, "alarm_id": "not-a-uuid"}, r"payload\.alarm_id: String should match pattern"),
        ({**p, "reason": "because"}, r"payload\.reason: Input should be 'clear', 'lost' or 'flush'"),
    ]
    for payload, message in cases:
        with pytest.raises(EventError, match=message):
            Event.from_json(json.dumps(_event("distance_violation", payload)))
    with pytest.raises(
        EventError, match=r"invalid event: type: unknown event type 'crowd' \(known: camera_health, contact_time, "
    ):
        Event.from_json(json.dumps(_event("crowd", {})))


# a schema-1 event exactly as today's edge worker wrote them (before alarm ids)
SCHEMA1_DISTANCE = {
    "schema": 1,
    "id": "0190f3a2-7b1c-7d2e-8f3a-4b5c6d7e8f90",
    "type": "distance_violation",
    "camera": "piazza",
    "seq": 41,
    "time": "2026-11-23T07:00:02.500000Z",
    "severity": "warning",
    "state": "start",
    "payload": {
        "rule": "distance",
        "tracks": [7, 3],
        "positions_m": {"3": [1.0, 2.0], "7": [1.8, 2.0]},
        "metric": "distance_m",
        "value": 0.8,
        "threshold": 1.0,
        "zone": "fountain",
        "duration_s": 1.0,
        "frame": 25,
        "distance_m": 0.8,
        "min_distance_m": 0.8,
        "threshold_m": 1.0,
        "classes": ["person", "person"],
    },
}


def test_schema1_event_is_upgraded_keeping_its_fields():
    ev = Event.from_json(json.dumps(SCHEMA1_DISTANCE))
    assert ev.schema_ == 2
    expected_id = str(
        uuid.uuid5(uuid.UUID("5f0c8e2a-3b1d-4c6e-9a7f-2d4b6c8e0a13"), "piazza\ndistance_violation\ntracks=3,7")
    )
    assert ev.payload == {"alarm_id": expected_id, **SCHEMA1_DISTANCE["payload"]}
    for k in ("id", "type", "camera", "seq", "time", "severity", "state"):
        assert getattr(ev, k) == SCHEMA1_DISTANCE[k]
    # stored again it is schema 2, and reads back the same
    again = json.loads(ev.to_json())
    assert again["schema"] == 2 and Event.from_json(ev.to_json()) == ev
    # the end of the same alarm (schema 1) gets the same id; another pair does not
    end = {**SCHEMA1_DISTANCE, "id": str(uuid.uuid4()), "seq": 45, "state": "end"}
    end["payload"] = {**SCHEMA1_DISTANCE["payload"], "tracks": [3, 7], "zone": None, "reason": "clear"}
    assert alarm_id_of(Event.from_json(json.dumps(end))) == expected_id
    assert alarm_id_of(end) == expected_id  # a stored event's JSON object, as the console reads it
    other = {**SCHEMA1_DISTANCE["payload"], "tracks": [3, 8]}
    assert schema1_alarm_id("piazza", "distance_violation", other) != expected_id


def test_schema1_zone_and_plate_alarm_ids(sample_payload):
    occ = {k: v for k, v in sample_payload("occupancy_limit").items() if k != "alarm_id"}
    a = schema1_alarm_id("cam", "occupancy_limit", {**occ, "tracks": [1, 2]})
    assert a == schema1_alarm_id("cam", "occupancy_limit", {**occ, "tracks": [1, 2, 5]})  # the crowd changed
    assert a != schema1_alarm_id("cam", "occupancy_limit", {**occ, "zone": "other"})
    hit = {k: v for k, v in sample_payload("plate_hit").items() if k != "alarm_id"}
    assert schema1_alarm_id("gate", "plate_hit", hit) == hit["transit_id"]
    ev = Event.from_json(json.dumps({**_event("plate_hit", hit), "schema": 1}))
    assert ev.payload["alarm_id"] == hit["transit_id"]
    assert schema1_alarm_id("cam", "heatmap", {}) is None
    with pytest.raises(EventError, match="unsupported event schema 3"):
        Event.from_json(json.dumps({**SCHEMA1_DISTANCE, "schema": 3}))


def test_event_from_change_distance_and_zone():
    aid = str(uuid.uuid4())
    ch = AlarmChange(
        event_type="distance_violation",
        rule="distance",
        state="end",
        alarm_id=aid,
        severity="warning",
        timestamp_s=6.0,
        started_at=1.0,
        duration_s=3.0,
        key=(1, 2),
        metric="distance_m",
        value=1.3004,
        threshold=1.0,
        worst=0.80001,
        tracks=(1, 2),
        positions={1: (0.0, 0.0), 2: (1.3004, 0.0)},
        reason="clear",
        extra={"classes": ("person", "person")},
    )
    ev = event_from_change(ch, camera="cam1", seq=9, time=TIME, frame=60)
    assert (ev.type, ev.state, ev.severity, ev.seq, ev.time) == ("distance_violation", "end", "warning", 9, TIME)
    assert ev.payload == {
        "alarm_id": aid,
        "rule": "distance",
        "tracks": [1, 2],
        "positions_m": {"1": [0.0, 0.0], "2": [1.3, 0.0]},
        "metric": "distance_m",
        "value": 1.3,
        "threshold": 1.0,
        "zone": None,
        "duration_s": 3.0,
        "frame": 60,
        "distance_m": 1.3,
        "min_distance_m": 0.8,
        "threshold_m": 1.0,
        "reason": "clear",
        "classes": ["person", "person"],
    }
    occ = AlarmChange(
        event_type="occupancy_limit",
        rule="occupancy",
        state="start",
        alarm_id=aid,
        severity="warning",
        timestamp_s=0.0,
        metric="people",
        value=3.0,
        threshold=2.0,
        worst=3.0,
        tracks=(1, 2, 3),
        positions={1: (0.5, 0.5), 2: (2.0, 0.5), 3: (3.5, 1.5)},
        zone="shop",
        extra={"area_m2": 8.0},
    )
    p = event_from_change(occ, camera="cam1", seq=10, time=TIME, frame=0).payload
    assert p["worst"] == 3.0 and p["area_m2"] == 8.0 and "reason" not in p and p["zone"] == "shop"
    with pytest.raises(EventError, match="not an alarm event type"):
        event_from_change(
            AlarmChange("heatmap", "heatmap", "update", aid, "info", 0.0), camera="c", seq=1, time=TIME, frame=0
        )


def test_camera_health_events_from_the_stream_health_check():
    """``camera_health`` (vigil.edge.health): an alarm type; its start and end share the alarm
    id, the payload is the typed model's, a wrong condition or a missing field is named."""
    aid = str(uuid.uuid4())
    start = AlarmChange(
        event_type="camera_health",
        rule="health",
        state="start",
        alarm_id=aid,
        severity="warning",
        timestamp_s=42.0,
        started_at=22.0,
        duration_s=20.0,
        key=("frozen",),
        metric="frame_change",
        value=0.01234,
        threshold=0.25,
        extra={"condition": "frozen", "health": "frozen"},
    )
    ev = event_from_change(start, camera="cam1", seq=3, time=TIME, frame=420)
    assert "camera_health" in ALARM_TYPES and (ev.type, ev.state, ev.severity) == ("camera_health", "start", "warning")
    assert ev.payload == {
        "alarm_id": aid,
        "rule": "health",
        "condition": "frozen",
        "health": "frozen",
        "metric": "frame_change",
        "value": 0.012,
        "threshold": 0.25,
        "duration_s": 20.0,
        "frame": 420,
    }
    assert Event.from_json(ev.to_bytes()) == ev and alarm_id_of(ev) == aid
    assert summarize_payload(ev.payload, event_type="camera_health").startswith("condition=frozen health=frozen")
    end = AlarmChange(
        "camera_health",
        "health",
        "end",
        aid,
        "info",
        50.0,
        started_at=22.0,
        duration_s=28.0,
        metric="frame_change",
        value=3.5,
        threshold=0.25,
        reason="clear",
        extra={"condition": "frozen", "health": "ok"},
    )
    ev_end = event_from_change(end, camera="cam1", seq=4, time=TIME, frame=500)
    assert ev_end.severity == "info" and ev_end.payload["reason"] == "clear" and ev_end.payload["health"] == "ok"
    assert alarm_id_of(ev_end) == aid
    bad = {**ev.payload, "condition": "sleepy"}
    with pytest.raises(EventError, match=r"payload\.condition"):
        Event.from_json(json.dumps(_event("camera_health", bad)))
    with pytest.raises(EventError, match=r"payload\.metric: Field required"):
        Event.from_json(json.dumps(_event("camera_health", {k: v for k, v in ev.payload.items() if k != "metric"})))


def test_bad_payload_is_rejected_at_the_aggregator_counted_not_stored(
    tmp_path, make_event, running_aggregator, dealer, wait_until
):
    """A schema-2 event whose payload misses a field: nacked with the reason naming the field,
    counted as malformed, never stored; the good events around it are stored."""
    good = [make_event(seq=1), make_event(seq=3)]
    bad = json.loads(make_event(seq=2).to_json())
    del bad["payload"]["threshold_m"]
    with running_aggregator(tmp_path / "e.db") as agg:
        sock = dealer(agg.ingest_endpoint)
        sock.send(json.dumps(bad).encode())
        reply = decode_reply(sock.recv())
        assert reply["nack"] == bad["id"]
        assert "payload.threshold_m: Field required" in reply["error"]
        with EventPublisher(agg.ingest_endpoint) as pub:
            pub.publish_many(good)
            assert pub.flush(5).complete
        assert wait_until(lambda: agg.stats()["stored"] == 2)
        stats = agg.stats()
        assert [s.event for s in agg.store.iter_events()] == good
    assert (stats["malformed"], stats["nacked"], stats["stored"]) == (1, 1, 2)


def test_distance_uncertainty_fields(sample_payload):
    ch = AlarmChange(
        event_type="distance_violation",
        rule="distance",
        state="start",
        alarm_id=str(uuid.uuid4()),
        severity="warning",
        timestamp_s=0.0,
        key=(1, 2),
        metric="distance_m",
        value=0.8,
        threshold=1.0,
        worst=0.8,
        tracks=(1, 2),
        positions={1: (0.0, 0.0), 2: (0.8, 0.0)},
        extra={
            "classes": ("person", "person"),
            "decision": "sure",
            "distance_sigma_m": 0.15,
            "distance_interval_m": (0.5060054023189919, 1.0939945976810082),
            "confidence": 0.9087887802741321,
        },
    )
    p = event_from_change(ch, camera="cam1", seq=1, time=TIME, frame=0).payload
    assert (p["decision"], p["distance_sigma_m"], p["distance_interval_m"], p["confidence"]) == (
        "sure",
        0.15,
        [0.506, 1.094],
        0.9088,
    )
    assert summarize_payload(p, event_type="distance_violation").startswith(
        "tracks=1,2 distance_m=0.8 threshold_m=1 min_distance_m=0.8 confidence=0.91 "
    )
    # a schema-2 event stored before these fields is still valid: they read as null
    old = Event.from_json(json.dumps(_event("distance_violation", sample_payload("distance_violation"))))
    model = PAYLOADS["distance_violation"].model_validate(old.payload)
    assert (model.decision, model.distance_sigma_m, model.distance_interval_m, model.confidence) == (None,) * 4
    good = sample_payload("distance_violation")
    cases = [
        ({**good, "confidence": 1.5}, r"payload\.confidence: Input should be less than or equal to 1"),
        ({**good, "distance_sigma_m": -0.1}, r"payload\.distance_sigma_m: Input should be greater than or equal to 0"),
        ({**good, "distance_interval_m": [1.0]}, r"payload\.distance_interval_m: List should have at least 2 items"),
        ({**good, "decision": "probable"}, r"payload\.decision: Input should be 'point' or 'sure'"),
    ]
    for payload, message in cases:
        with pytest.raises(EventError, match=message):
            Event.from_json(json.dumps(_event("distance_violation", payload)))


def test_a_distance_payload_is_one_distance(sample_payload):
    """distance_m, value, min_distance_m, the interval and the two positions tell one distance;
    a payload whose fields disagree is refused with the fields named (a console would show two
    distances for one alarm), and rounding to 1 mm is not a disagreement."""
    good = sample_payload("distance_violation", value=0.76)  # people 3 and 7 at (1, 2) and (1.456, 2.608)
    assert Event.from_json(json.dumps(_event("distance_violation", good))).payload["distance_m"] == 0.76
    # an end: the distance that cleared the alarm above the worst one; positions from 1 mm roundings
    end = {**good, "value": 1.8, "distance_m": 1.8, "positions_m": {"3": [0.0, 0.0], "7": [1.273, 1.273]}}
    assert Event.from_json(json.dumps(_event("distance_violation", {**end, "reason": "clear"})))
    cases = [
        ({**good, "distance_m": 1.2}, r"distance_m 1\.2 and value 0\.76 differ"),
        ({**good, "min_distance_m": 0.9}, r"min_distance_m 0\.9 is above distance_m 0\.76"),
        (
            {**good, "distance_interval_m": [0.8, 1.1]},
            r"distance_interval_m \[0\.8, 1\.1\] does not hold distance_m 0\.76",
        ),
        (
            {**good, "positions_m": {"3": [1.0, 2.0], "7": [1.9, 2.4]}},
            r"positions_m of tracks 3 and 7 are 0\.985 m apart, distance_m says 0\.76",
        ),
    ]
    for payload, message in cases:
        with pytest.raises(EventError, match=message):
            Event.from_json(json.dumps(_event("distance_violation", payload)))
    # one person's position only (the other was lost): nothing to compare, accepted
    lost = {**good, "positions_m": {"3": [1.0, 2.0]}, "reason": "lost"}
    assert Event.from_json(json.dumps(_event("distance_violation", lost))).payload["reason"] == "lost"


def test_a_stored_distance_event_from_before_the_agreement_rule_stays_readable(tmp_path, sample_payload):
    """An older version stored a distance payload whose positions disagree with its distance: the
    store still reads it back (export, replay), while ingest would refuse it today."""
    from vigil.alerts.store import EventStore

    odd = {**sample_payload("distance_violation", value=0.76), "positions_m": {"3": [1.0, 2.0], "7": [1.9, 2.4]}}
    raw = json.dumps(_event("distance_violation", odd))
    with pytest.raises(EventError, match="0.985 m apart"):
        Event.from_json(raw)
    old = Event.from_json(raw, stored=True)  # as the older version accepted it
    with EventStore(tmp_path / "ev.db") as store:
        assert store.add(old)
        back = [s.event for s in store.iter_events()]
    assert back == [old] and back[0].payload["positions_m"]["7"] == [1.9, 2.4]
