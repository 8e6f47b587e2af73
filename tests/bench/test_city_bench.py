"""``vigil bench city`` (issue 17): the load model's arithmetic, its schedule, and short runs
against the real aggregator on SQLite and on PostgreSQL (the figures are in bench/README.md)."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from fractions import Fraction

import pytest

from vigil.alerts.events import Event
from vigil.bench.city_load import KINDS, CitySchedule, LoadModel, camera_names, lane_names
from vigil.cli import main


# ---------------------------------------------------------------------------------- load model
def test_modena_peak_is_the_formula():
    m = LoadModel(cameras=300, gates=16)
    # crowd alarms 300 * (12 + 2 + 4) alarms/h * 6 events / 3600 s = 9; heat maps 300 / 60 s = 5;
    # health 300 * 4 alarms/day * 2 events / 86400 s = 1/36; plates 16 lanes * 1 car/s * (1 + 1/200)
    expected = Fraction(9) + Fraction(5) + Fraction(1, 36) + Fraction(16) * Fraction(201, 200)
    assert m.peak_events_per_s() == expected
    assert float(m.peak_events_per_s()) == 30.107777777777777
    rates = m.peak_rates()
    assert set(rates) == set(KINDS)
    assert rates["distance_violation"] == 6 and rates["heatmap"] == 5 and rates["plate_hit"] == Fraction(2, 25)


def test_other_parameters_follow_the_formula():
    m = LoadModel(
        cameras=7,
        gates=3,
        lanes_per_gate=2,
        distance_alarms_per_camera_h=5,
        occupancy_alarms_per_camera_h=1,
        risk_alarms_per_camera_h=0,
        updates_per_alarm=2,
        heatmap_interval_s=30,
        health_alarms_per_camera_day=6,
        cars_per_lane_s=0.5,
        hit_every=100,
    )
    expected = (
        Fraction(7 * (5 + 1 + 0) * (2 + 2), 3600)
        + Fraction(7, 30)
        + Fraction(7 * 6 * 2, 86400)
        + Fraction(6, 2) * Fraction(101, 100)
    )
    assert m.peak_events_per_s() == expected


def test_daily_volume_is_ten_busiest_hours_or_a_flat_day():
    m = LoadModel(cameras=300, gates=16)
    daily = m.daily_events()
    assert daily["distance_violation"] == 6 * 3600 * 10
    assert daily["plate_transit"] == Fraction(1592, 100) * 3600 * 10
    assert daily["heatmap"] == 300 * 1440
    assert daily["camera_health"] == 300 * 4 * 2
    assert sum(daily.values()) == 1_337_280


def test_the_schedule_offers_exactly_the_model_rates_over_a_common_period():
    m = LoadModel(cameras=6, gates=1)
    sched = CitySchedule(m, camera_names(6), lane_names(1, 1), seed=3)
    horizon = 21600.0  # a multiple of every stream's period: each stream fires exactly horizon / period times
    got, seqs, alarms = Counter(), defaultdict(list), defaultdict(list)
    for kind, _cam, events in sched.due(horizon):
        got[kind] += 1 if kind == "plate_hit" else len(events)
        if kind == "plate_hit":
            got["plate_transit_hit"] += 1
        for e in events:
            seqs[e.camera].append(e.seq)
            if e.type not in ("heatmap", "plate_transit", "plate_hit"):
                alarms[e.payload["alarm_id"]].append(e.state)
    for kind, rate in m.peak_rates().items():
        assert got[kind] == rate * Fraction(int(horizon)), kind
    for cam, s in seqs.items():
        assert s == list(range(1, len(s) + 1)), cam  # per camera seq from 1, in order, no gap
    complete = [states for states in alarms.values() if states[0] == "start" and states[-1] == "end"]
    assert complete and all(len(s) == 2 + m.updates_per_alarm or s == ["start", "end"] for s in complete)


def test_scheduled_events_are_valid_schema_2_events():
    sched = CitySchedule(LoadModel(cameras=3, gates=1), camera_names(3), lane_names(1, 1))
    seen = set()
    for _kind, _cam, events in sched.due(3600.0):
        for e in events:
            if e.type not in seen or e.type == "plate_hit":
                back = Event.from_json(e.to_bytes())
                assert back.schema_ == 2 and back.type == e.type
                seen.add(e.type)
    assert seen >= {"distance_violation", "occupancy_limit", "risk_level", "heatmap", "plate_transit", "plate_hit"}


# ---------------------------------------------------------------------------------- short runs
_SMALL = ["--cameras", "6", "--gates", "1", "--minutes", "0.05", "--step-seconds", "1", "--refine", "1"]
_SMALL += ["--storage-events", "100", "--json"]


def _check_report(r: dict) -> None:
    for key in (
        "peak_events_per_s",
        "max_sustained_events_per_s",
        "headroom",
        "storage_bytes_per_day",
        "storage_bytes_15_days",
        "alarm_latency_p99_ms",
        "load_model",
        "storage_bytes_per_event",
        "steps",
    ):
        assert key in r, key
    assert r["peak_events_per_s"] == float(LoadModel(cameras=6, gates=1).peak_events_per_s())
    assert r["headroom"] == round(r["max_sustained_events_per_s"] / r["peak_events_per_s"], 3)
    assert r["max_sustained_events_per_s"] > 0
    assert r["storage_bytes_per_day"] > 0
    # after 15 days under the default retention: heat maps 7 days, everything else all 15
    kept = r["storage_days_kept_of_15"]
    assert kept["heatmap"] == 7 and {v for k, v in kept.items() if k != "heatmap"} == {15}
    sizes, daily = r["storage_bytes_per_event"], r["daily_events"]
    expected = sum(daily[k] * sizes[k] * kept[k] for k in sizes if sizes[k] is not None)
    assert r["storage_bytes_15_days"] == pytest.approx(expected, rel=1e-3)  # sizes are printed rounded
    assert 7 * r["storage_bytes_per_day"] < r["storage_bytes_15_days"] < 15 * r["storage_bytes_per_day"]
    assert all(v > 0 for v in r["storage_bytes_per_event"].values())
    assert 0 < r["alarm_latency_p99_ms"] < 1000
    assert r["complete"] and r["aggregator_alive"] and r["undelivered"] == 0
    assert r["stored"] == r["stored_distinct"] == r["offered"] > 0
    assert r["console_received"] == [r["offered"]] * 4


def test_a_small_city_on_sqlite_stores_every_event_once(tmp_path, capsys):
    db = tmp_path / "events.db"
    rc = main(["bench", "city", *_SMALL, "--db", str(db)])
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0
    _check_report(r)
    assert r["database"] == "sqlite" and r["transport"] == "curve"
    with sqlite3.connect(db) as conn:
        n, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM events").fetchone()
        transits = conn.execute("SELECT COUNT(*) FROM transits").fetchone()[0]
    assert n == distinct == r["offered"]
    assert transits == r["transits_offered"] > 0


def test_a_small_city_on_postgresql_stores_every_event_once(dsn, capsys):
    psycopg = pytest.importorskip("psycopg")
    rc = main(["bench", "city", *_SMALL, "--dsn", dsn, "--insecure-dev"])
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0
    _check_report(r)
    assert r["database"] == "postgresql" and r["transport"].startswith("insecure")
    with psycopg.connect(dsn) as conn:
        n, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM events").fetchone()
        transits = conn.execute("SELECT COUNT(*) FROM transits").fetchone()[0]
    assert n == distinct == r["offered"]
    assert transits == r["transits_offered"] > 0
