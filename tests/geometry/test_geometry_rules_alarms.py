"""Rules engine: alarm ids across a lifecycle, and the distance cases the removed
``geometry/distancing.py`` tests checked (occlusion gaps, flush, rate-limited updates, bad input)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import numpy as np
import pytest

from vigil.geometry.rules import RulesEngine
from vigil.geometry.rules.config import RulesConfig, ZoneConfig

NAN = float("nan")


def _rules(**kw) -> RulesConfig:
    return RulesConfig.model_validate(kw)


def _run(engine, frames):
    out = []
    for t, people in frames:
        ids = list(people)
        xy = np.array([people[i] for i in ids], float).reshape(-1, 2)
        out += [(t, c) for c in engine.update(t, ids, ["person"] * len(ids), xy)]
    return out


def test_alarm_id_is_shared_by_start_updates_and_end_and_new_per_alarm():
    eng = RulesEngine(
        _rules(distance={"min_duration_s": 0, "end_after_s": 0, "hysteresis_m": 0, "update_interval_s": 1.0})
    )
    # close for 0..3 s (start, updates at 1, 2, 3), apart at 4 (end), close again at 5 (a new alarm)
    dists = [0.5, 0.6, 0.7, 0.6, 2.0, 0.5]
    ch = _run(eng, [(float(t), {1: (0, 0), 2: (d, 0)}) for t, d in enumerate(dists)])
    assert [(t, c.state) for t, c in ch] == [
        (0.0, "start"),
        (1.0, "update"),
        (2.0, "update"),
        (3.0, "update"),
        (4.0, "end"),
        (5.0, "start"),
    ]
    first = {c.alarm_id for _, c in ch[:5]}
    assert len(first) == 1 and ch[5][1].alarm_id not in first
    for _, c in ch:
        assert uuid.UUID(c.alarm_id).version == 4
        assert (c.event_type, c.rule, c.key) == ("distance_violation", "distance", (1, 2))
    assert eng.lifecycles["distance"].alarm_id((1, 2)) == ch[5][1].alarm_id
    (end,) = eng.flush()
    assert end.alarm_id == ch[5][1].alarm_id and end.reason == "flush"


def test_zone_alarm_keeps_its_id_while_the_crowd_changes():
    zones = [ZoneConfig(name="shop", polygon=[(0, 0), (4, 0), (4, 2), (0, 2)], max_people=1)]
    eng = RulesEngine(
        _rules(distance={"enabled": False}, zones={"min_duration_s": 0, "end_after_s": 0, "update_interval_s": 1}),
        zones,
    )
    frames = [
        (0.0, {1: (0.5, 0.5), 2: (1.5, 0.5)}),
        (1.0, {2: (1.5, 0.5), 3: (2.5, 0.5)}),  # 1 left, 3 came in: same alarm
        (2.0, {3: (2.5, 0.5), 4: (3.5, 0.5), 5: (3.0, 1.5)}),
        (3.0, {5: (3.0, 1.5)}),
    ]
    ch = _run(eng, frames)
    assert [(t, c.state, c.tracks) for t, c in ch] == [
        (0.0, "start", (1, 2)),
        (1.0, "update", (2, 3)),
        (2.0, "update", (3, 4, 5)),
        (3.0, "end", (5,)),
    ]
    assert len({c.alarm_id for _, c in ch}) == 1
    assert all(c.event_type == "occupancy_limit" and c.key == ("shop",) for _, c in ch)


def test_short_occlusion_keeps_the_alarm_and_a_long_one_ends_it():
    eng = RulesEngine(_rules(distance={"min_duration_s": 0, "end_after_s": 1.5, "hysteresis_m": 0.25}))
    frames = [
        (0.0, {1: (0, 0), 2: (0.5, 0)}),
        (0.5, {1: (0, 0)}),  # 2 occluded
        (1.0, {1: (0, 0), 2: (NAN, NAN)}),  # 2 detected but not on the ground: dropped, counted
        (1.4, {1: (0, 0), 2: (0.6, 0)}),  # back within 1.5 s: the same alarm
        (2.0, {1: (0, 0)}),
        (2.5, {1: (0, 0)}),
        (3.0, {1: (0, 0)}),  # 2 unseen for 1.6 s >= end_after_s
    ]
    ch = _run(eng, frames)
    assert [(t, c.state, c.tracks, c.reason) for t, c in ch] == [
        (0.0, "start", (1, 2), None),
        (3.0, "end", (1, 2), "lost"),
    ]
    assert ch[0][1].alarm_id == ch[1][1].alarm_id and eng.stats["dropped_nonfinite"] == 1


def test_three_people_open_alarms_and_flush():
    eng = RulesEngine(_rules(distance={"min_duration_s": 0, "hysteresis_m": 0}))
    xy = np.array([[0.0, 0.0], [0.6, 0.0], [0.0, 0.8]])
    ch = eng.update(0.0, [5, 3, 9], ["person"] * 3, xy)
    assert [(c.state, c.pair) for c in ch] == [("start", (3, 5)), ("start", (5, 9))]  # 3-9 is exactly 1.0 m
    assert eng.open_alarms("distance") == [(3, 5), (5, 9)]
    assert eng.update(1.0, [5, 3, 9], ["person"] * 3, xy) == []  # no repeats
    ends = eng.flush(3.0)
    assert [(c.state, c.pair, c.reason, c.timestamp_s, c.duration_s) for c in ends] == [
        ("end", (3, 5), "flush", 3.0, 1.0),
        ("end", (5, 9), "flush", 3.0, 1.0),
    ]
    assert [c.alarm_id for c in ends] == [c.alarm_id for c in ch]
    assert eng.open_alarms("distance") == [] and eng.flush(4.0) == []


def test_rate_limited_updates():
    eng = RulesEngine(_rules(distance={"min_duration_s": 0, "update_interval_s": 1.0}))
    frames = [(t, {1: (0.0, 0.0), 2: (0.5, 0.0)}) for t in (0.0, 0.5, 1.0, 1.5, 2.0, 2.25, 2.5, 3.0)]
    assert [(t, c.state) for t, c in _run(eng, frames)] == [
        (0.0, "start"),
        (1.0, "update"),
        (2.0, "update"),
        (3.0, "update"),
    ]


def test_rejects_bad_input():
    eng = RulesEngine()
    eng.update(1.0, [1], ["person"], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="went backwards"):
        eng.update(0.5, [1], ["person"], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="duplicate track ids"):
        eng.update(2.0, [1, 1], ["person"] * 2, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="expected 2 entries"):
        eng.update(2.0, [1, 2, 3], ["person"] * 2, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="must be finite"):
        eng.update(NAN, [], [], np.zeros((0, 2)))
    assert eng.update(3.0, [], [], np.zeros((0, 2))) == []


def test_importing_vigil_geometry_does_not_load_scipy():
    code = "import sys, vigil.geometry; print('scipy' in sys.modules, 'vigil.geometry.metrics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
