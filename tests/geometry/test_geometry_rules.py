"""Rules engine: alarm lifecycle, hysteresis, cooldown, severity, per-zone limits, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.geometry.camera import HomographyCamera
from vigil.geometry.rules import Lifecycle, Observation, RulesEngine
from vigil.geometry.rules.config import RulesConfig, ZoneConfig
from vigil.geometry.zones import ZoneError


def _rules(**kw) -> RulesConfig:
    return RulesConfig.model_validate(kw)


def _run(engine, frames):
    """frames: list of (t, {id: (x, y)}) with all people; returns [(t, change)]."""
    out = []
    for t, people in frames:
        ids = list(people)
        xy = np.array([people[i] for i in ids], float).reshape(-1, 2)
        cls = ["person"] * len(ids)
        out += [(t, c) for c in engine.update(t, ids, cls, xy)]
    return out


def test_distance_lifecycle_with_hysteresis_no_flapping():
    eng = RulesEngine(
        _rules(distance={"threshold_m": 1.0, "hysteresis_m": 0.2, "min_duration_s": 1.0, "end_after_s": 0.0})
    )
    # distance per second: 2.0, 0.9, 0.8, 1.1 (band: stays open), 0.95, 1.15 (band), 1.3 (clear -> end)
    dists = [2.0, 0.9, 0.8, 1.1, 0.95, 1.15, 1.3]
    ch = _run(eng, [(float(t), {1: (0, 0), 2: (d, 0)}) for t, d in enumerate(dists)])
    states = [(t, c.state) for t, c in ch]
    assert states == [(2.0, "start"), (6.0, "end")]
    start, end = ch[0][1], ch[1][1]
    assert start.rule == "distance" and start.tracks == (1, 2) and start.pair == (1, 2)
    assert start.started_at == 1.0 and start.value == pytest.approx(0.8) and start.threshold == 1.0
    assert start.positions == {1: (0.0, 0.0), 2: (0.8, 0.0)}
    assert end.reason == "clear" and end.worst == pytest.approx(0.8) and end.duration_s == pytest.approx(3.0)
    # the end reports the distance that cleared the alarm (1.3 m), not the last one in the band (1.15 m)
    assert end.value == pytest.approx(1.3) and end.positions == {1: (0.0, 0.0), 2: (1.3, 0.0)}


def test_min_duration_candidate_dropped_when_clear():
    eng = RulesEngine(_rules(distance={"min_duration_s": 2.0, "hysteresis_m": 0.0}))
    ch = _run(
        eng,
        [
            (0.0, {1: (0, 0), 2: (0.5, 0)}),
            (1.0, {1: (0, 0), 2: (1.5, 0)}),
            (2.0, {1: (0, 0), 2: (0.5, 0)}),
            (3.0, {1: (0, 0), 2: (0.5, 0)}),
        ],
    )
    assert ch == []  # the first close spell was interrupted; the second lasts only 1 s


def test_end_after_and_lost_tracks():
    eng = RulesEngine(_rules(distance={"min_duration_s": 0, "end_after_s": 1.5, "hysteresis_m": 0}))
    frames = [(0.0, {1: (0, 0), 2: (0.5, 0)}), (1.0, {1: (0, 0)}), (2.0, {1: (0, 0)}), (3.0, {1: (0, 0)})]
    ch = _run(eng, frames)
    assert [(t, c.state, c.reason) for t, c in ch] == [(0.0, "start", None), (2.0, "end", "lost")]


def test_cooldown_blocks_restart():
    eng = RulesEngine(_rules(distance={"min_duration_s": 0, "end_after_s": 0, "hysteresis_m": 0, "cooldown_s": 5.0}))
    close, far = {1: (0, 0), 2: (0.5, 0)}, {1: (0, 0), 2: (3, 0)}
    seq = [close, far, close, close, close, close, close, close]
    ch = _run(eng, [(float(t), p) for t, p in enumerate(seq)])
    # start at 0, end at 1, cooldown until 6: the restart happens at 6 with started_at 2
    assert [(t, c.state) for t, c in ch] == [(0.0, "start"), (1.0, "end"), (6.0, "start")]
    assert ch[2][1].started_at == 2.0


def test_update_interval_and_severity_change():
    eng = RulesEngine(_rules(distance={"min_duration_s": 0, "update_interval_s": 2.0, "critical_below_m": 0.5}))
    ds = [0.9, 0.9, 0.9, 0.4, 0.4]
    ch = _run(eng, [(float(t), {1: (0, 0), 2: (d, 0)}) for t, d in enumerate(ds)])
    assert [(t, c.state, c.severity) for t, c in ch] == [
        (0.0, "start", "warning"),
        (2.0, "update", "warning"),
        (3.0, "update", "critical"),
    ]


def test_person_bicycle_threshold_and_flush():
    eng = RulesEngine(
        _rules(distance={"min_duration_s": 0, "pairs": [{"classes": ["person", "bicycle"], "threshold_m": 1.5}]})
    )
    ch = eng.update(
        0.0, [1, 2, 3, 4], ["person", "bicycle", "bicycle", "person"], np.array([[0, 0], [1.2, 0], [1.2, 0.5], [20, 0]])
    )
    assert [(c.tracks, c.threshold, c.extra["classes"]) for c in ch] == [
        ((1, 2), 1.5, ("person", "bicycle")),
        ((1, 3), 1.5, ("person", "bicycle")),
    ]
    assert eng.classes == {"person", "bicycle"}
    ends = eng.flush()
    assert [(c.state, c.reason, c.tracks) for c in ends] == [("end", "flush", (1, 2)), ("end", "flush", (1, 3))]


def test_nan_positions_are_dropped_and_counted():
    eng = RulesEngine(_rules(distance={"min_duration_s": 0}))
    ch = eng.update(0.0, [1, 2, 3], ["person"] * 3, np.array([[0, 0], [np.nan, np.nan], [0.5, np.inf]]))
    assert ch == [] and eng.stats["dropped_nonfinite"] == 2
    assert eng.update(1.0, [], [], np.zeros((0, 2))) == []


def test_zone_occupancy_density_per_zone_and_distance_override():
    zones = [
        ZoneConfig(
            name="shop", polygon=[(0, 0), (4, 0), (4, 2), (0, 2)], m2_per_person=4.0, distance_threshold_m=2.0
        ),  # 8 m^2 -> 2 people
        ZoneConfig(name="hall", polygon=[(10, 0), (20, 0), (20, 10), (10, 10)], max_density_per_m2=0.02),  # 100 m^2
    ]
    eng = RulesEngine(_rules(distance={"min_duration_s": 0}, zones={"min_duration_s": 0, "end_after_s": 0}), zones)
    people = {1: (0.5, 0.5), 2: (2.0, 0.5), 3: (3.5, 1.5), 4: (11, 1), 5: (15, 5), 6: (19, 9)}
    ch = [c for _, c in _run(eng, [(0.0, people)])]
    by_rule = {c.rule: c for c in ch}
    occ = by_rule["occupancy"]
    assert occ.zone == "shop" and occ.value == 3 and occ.threshold == 2 and occ.tracks == (1, 2, 3)
    dens = by_rule["density"]
    assert dens.zone == "hall" and dens.value == pytest.approx(0.03) and dens.threshold == 0.02
    # 1-2 are 1.5 m apart: a violation only because the shop's threshold is 2 m
    dist = [c for c in ch if c.rule == "distance"]
    assert [(c.tracks, c.threshold, c.zone) for c in dist] == [((1, 2), 2.0, "shop"), ((2, 3), 2.0, "shop")]
    assert eng.zone_metrics["shop"]["capacity"] == 2 and eng.zone_metrics["hall"]["people"] == 3
    people.pop(3)
    ch = [c for _, c in _run(eng, [(1.0, people)])]
    assert [(c.rule, c.state) for c in ch if c.rule == "occupancy"] == [("occupancy", "end")]


def test_queue_spacing_alarm():
    zones = [
        ZoneConfig(
            name="counter",
            polygon=[(0, -2), (10, -2), (10, 2), (0, 2)],
            queue={"line": [[0, 0], [10, 0]], "corridor_m": 0.5, "min_spacing_m": 1.0},
        )
    ]
    eng = RulesEngine(_rules(queue={"min_duration_s": 0}), zones)
    ch = _run(eng, [(0.0, {1: (0.5, 0), 2: (2.0, 0), 3: (2.7, 0.1), 4: (5, 1.5)})])
    ((_, c),) = ch
    assert (
        c.rule == "queue" and c.tracks == (2, 3) and c.value == pytest.approx(np.hypot(0.7, 0.1)) and c.threshold == 1.0
    )
    assert c.extra["queue_length"] == 3


def test_contact_time_alarm():
    eng = RulesEngine(
        _rules(
            distance={"enabled": False},
            contact={"enabled": True, "threshold_m": 1.0, "window_s": 60, "limit_s": 3, "end_after_s": 0},
        )
    )
    frames = [(float(t), {1: (0, 0), 2: (0.5, 0)}) for t in range(6)] + [(6.0, {1: (0, 0), 2: (5, 0)})]
    ch = _run(eng, frames)
    # contact time: 1 s at t=1, ..., 4 s at t=4 > 3 -> start; it stays > limit within the window
    assert [(t, c.rule, c.state) for t, c in ch] == [(4.0, "contact", "start")]
    assert ch[0][1].value == pytest.approx(4.0) and ch[0][1].threshold == 3.0


def test_risk_rises_and_clears():
    eng = RulesEngine(
        _rules(
            distance={"enabled": False},
            risk={
                "enabled": True,
                "tau_s": 10,
                "e_ref": 2.0,
                "alarm_level": 0.5,
                "critical_level": 0.95,
                "hysteresis": 0.1,
                "end_after_s": 0,
            },
        )
    )
    close = {1: (0, 0), 2: (0.0, 0.0001)}
    ch = _run(eng, [(float(t), close) for t in range(5)] + [(float(t), {1: (0, 0), 2: (50, 0)}) for t in range(5, 40)])
    states = [(t, c.state, c.zone) for t, c in ch]
    # exposure after k s at contact: 10 (1 - e^{-k/10}); level > 0.5 once exposure > 2 ln 2 = 1.386 -> k = 2 (1.81)
    assert states[0] == (2.0, "start", None)
    # decays: level < 0.4 once exposure < 2 ln(1/0.6) = 1.0217; E(4) = 3.297 -> t = 4 + 10 ln(3.297/1.0217) = 15.7 -> 16
    assert states[1] == (16.0, "end", None)


def test_zone_outside_calibrated_area_is_an_error():
    # camera seeing ground x, y in [0, 10] with 100 px per metre on a 1000x1000 image
    cam = HomographyCamera(np.diag([0.01, 0.01, 1.0]), image_size=(1000, 1000))
    ok = ZoneConfig(name="in", polygon=[(1, 1), (9, 1), (9, 9)])
    RulesEngine(RulesConfig(), [ok], camera=cam)
    # partly outside (88 % of its area seen): allowed (check-config warns)
    RulesEngine(RulesConfig(), [ZoneConfig(name="part", polygon=[(1, 1), (12, 1), (9, 9)])], camera=cam)
    out = ZoneConfig(name="out", polygon=[(5, 5), (15, 5), (15, 15), (5, 15)])  # a quarter of it seen
    with pytest.raises(
        ZoneError,
        match=r"zone 'out': lies outside the calibrated area: only 25 % of its 100\.0 m\^2 is on the ground",
    ):
        RulesEngine(RulesConfig(), [out], camera=cam)


@pytest.mark.parametrize(
    "rules, message",
    [
        ({"distance": {"threshold_m": 0}}, "greater than 0"),
        ({"distance": {"threshold_m": -1}}, "greater than 0"),
        ({"contact": {"limit_s": 100, "window_s": 10}}, "must not exceed window_s"),
        ({"distance": {"pairs": [{"classes": ["person", "bicycle"], "threshold_m": 0}]}}, "greater than 0"),
    ],
)
def test_bad_rule_config(rules, message):
    with pytest.raises(ValueError, match=message):
        RulesConfig.model_validate(rules)


def test_lifecycle_direct():
    lc = Lifecycle("x", "m", min_duration_s=0, end_after_s=2.0)
    bad = {("z",): Observation(bad=True, value=5, threshold=3, severity="warning")}
    assert [c.state for c in lc.step(0.0, bad)] == ["start"]
    assert lc.step(1.0, {}, present=lambda k: True) == []  # clear for 0 s
    assert lc.step(2.0, {}, present=lambda k: True) == []  # clear for 1 s
    assert [c.reason for c in lc.step(3.0, {}, present=lambda k: True)] == ["clear"]
