"""Interpersonal distance: per-frame close pairs and the violation lifecycle."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.geometry.distancing import ViolationMonitor, close_pairs

NAN = float("nan")


# ----------------------------------------------------------------------------- close_pairs
def test_close_pairs_exact():
    xy = np.array([[0.0, 0.0], [0.3, 0.4], [0.6, 0.8], [10.0, 10.0], [10.0, 10.6], [NAN, 0.0], [0.0, 0.1]])
    ids = np.array([7, 3, 5, 20, 11, 4, 9])
    got = close_pairs(xy, ids, 1.0)
    # 7-3: 0.5; 3-5: 0.5; 7-5: exactly 1.0 -> not a violation (strictly closer than 1 m);
    # 11-20: 0.6; 9 at (0, 0.1): 9-7 0.1, 9-3 sqrt(0.09+0.09)=0.42426..., 9-5 sqrt(0.36+0.49)=0.92195...
    expected = [
        (3, 5, 0.5),
        (3, 7, 0.5),
        (3, 9, np.sqrt(0.18)),
        (5, 9, np.sqrt(0.85)),
        (7, 9, 0.1),
        (11, 20, 0.6),
    ]
    assert [(a, b) for a, b, _ in got] == [(a, b) for a, b, _ in expected]
    np.testing.assert_allclose([d for *_, d in got], [d for *_, d in expected], atol=1e-12)
    assert all(type(a) is int and type(b) is int for a, b, _ in got)


@pytest.mark.parametrize(
    "xy, ids",
    [(np.zeros((0, 2)), np.zeros(0, int)), (np.array([[0.0, 0.0]]), [1]), (np.array([[NAN, NAN], [0.0, 0.0]]), [1, 2])],
)
def test_close_pairs_empty(xy, ids):
    assert close_pairs(xy, ids, 1.0) == []


@pytest.mark.parametrize(
    "xy, ids, threshold, message",
    [
        (np.zeros((2, 2)), [1, 1], 1.0, "duplicate ids"),
        (np.zeros((2, 3)), [1, 2], 1.0, r"expected shape \(N, 2\)"),
        (np.zeros((2, 2)), [1, 2, 3], 1.0, "ids: expected shape"),
        (np.zeros((2, 2)), [1, 2], 0.0, "threshold_m"),
        (np.zeros((2, 2)), [1, 2], NAN, "threshold_m"),
    ],
)
def test_close_pairs_rejects_bad_input(xy, ids, threshold, message):
    with pytest.raises(ValueError, match=message):
        close_pairs(xy, ids, threshold)


def test_close_pairs_many_points_matches_brute_force():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 30, size=(400, 2))
    ids = rng.permutation(1000)[:400]
    got = {(a, b): d for a, b, d in close_pairs(xy, ids, 1.0)}
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    i, j = np.nonzero(np.triu(d < 1.0, 1))
    expected = {(min(ids[a], ids[b]), max(ids[a], ids[b])): d[a, b] for a, b in zip(i, j)}
    assert got.keys() == expected.keys() and len(got) > 10
    for k in got:
        assert got[k] == pytest.approx(expected[k], abs=1e-12)


# ----------------------------------------------------------------------------- lifecycle
def _feed(monitor: ViolationMonitor, frames):
    """frames: list of (t, {id: (x, y)}); returns [(t, state, pair, reason)]."""
    out = []
    for t, pos in frames:
        ids = list(pos)
        xy = np.array([pos[i] for i in ids], float).reshape(-1, 2)
        for ch in monitor.update(t, ids, xy):
            out.append((t, ch.state, ch.pair, ch.reason))
    return out


def _pair_at(distances, dt=0.5):
    """Two people, 1 (fixed) and 2 at the given distances along x."""
    return [(k * dt, {2: (d, 0.0), 1: (0.0, 0.0)}) for k, d in enumerate(distances)]


HOVER = [1.5, 0.95, 1.02, 0.98, 1.1, 0.99, 1.2, 1.24, 1.3, 1.4, 0.9, 1.3]


def test_hysteresis_prevents_flapping():
    monitor = ViolationMonitor(threshold_m=1.0, hysteresis_m=0.25)
    events = _feed(monitor, _pair_at(HOVER))
    assert events == [
        (0.5, "start", (1, 2), None),
        (4.0, "end", (1, 2), "apart"),  # first distance > 1.25 m
        (5.0, "start", (1, 2), None),
        (5.5, "end", (1, 2), "apart"),
    ]


def test_without_hysteresis_it_would_flap():
    monitor = ViolationMonitor(threshold_m=1.0, hysteresis_m=0.0)
    states = [s for _, s, _, _ in _feed(monitor, _pair_at(HOVER))]
    assert states.count("start") == 4 and states.count("end") == 4


def test_change_contents():
    monitor = ViolationMonitor(threshold_m=1.0, hysteresis_m=0.25)
    frames = _pair_at([1.5, 0.8, 0.6, 0.7, 1.3])
    changes = []
    for t, pos in frames:
        changes += monitor.update(t, list(pos), np.array(list(pos.values())))
    start, end = changes
    assert start.state == "start" and start.pair == (1, 2)
    assert start.distance_m == pytest.approx(0.8) and start.started_at == 0.5 and start.duration_s == 0.0
    assert start.positions == {1: (0.0, 0.0), 2: (0.8, 0.0)}
    assert end.state == "end" and end.reason == "apart" and end.timestamp_s == 2.0
    assert end.min_distance_m == pytest.approx(0.6) and end.distance_m == pytest.approx(1.3)
    assert end.started_at == 0.5 and end.duration_s == pytest.approx(1.0)  # last seen in violation at 1.5 s
    assert end.positions == {1: (0.0, 0.0), 2: (1.3, 0.0)}


def test_min_duration():
    monitor = ViolationMonitor(threshold_m=1.0, min_duration_s=1.0, hysteresis_m=0.25)
    # Close at 0.0 and 0.5, interrupted at 1.0 (1.1 m >= threshold resets the wait), close again from 1.5.
    events = _feed(monitor, _pair_at([0.5, 0.5, 1.1, 0.5, 0.5, 0.5, 0.5]))
    assert events == [(2.5, "start", (1, 2), None)]
    monitor2 = ViolationMonitor(threshold_m=1.0, min_duration_s=1.0)
    changes = []
    for t, pos in _pair_at([0.5, 0.5, 0.5]):
        changes += monitor2.update(t, list(pos), np.array(list(pos.values())))
    assert [(c.state, c.started_at, c.duration_s) for c in changes] == [("start", 0.0, 1.0)]


def test_lost_track_ends_after_timeout_and_short_gaps_do_not():
    monitor = ViolationMonitor(threshold_m=1.0, end_after_s=1.0)
    frames = [
        (0.0, {1: (0, 0), 2: (0.5, 0)}),
        (0.5, {1: (0, 0)}),  # 2 occluded
        (1.0, {1: (0, 0), 2: (NAN, NAN)}),  # 2 detected but not on the ground
        (1.4, {1: (0, 0), 2: (0.6, 0)}),  # back within 1 s: same violation
        (2.0, {1: (0, 0)}),
        (2.4, {1: (0, 0)}),
        (2.5, {1: (0, 0)}),  # 2 unseen for 1.1 s > end_after_s
    ]
    events = _feed(monitor, frames)
    assert events == [(0.0, "start", (1, 2), None), (2.5, "end", (1, 2), "lost")]


def test_three_people_and_flush():
    monitor = ViolationMonitor(threshold_m=1.0)
    changes = monitor.update(0.0, [5, 3, 9], np.array([[0.0, 0.0], [0.6, 0.0], [0.0, 0.8]]))
    assert [(c.state, c.pair) for c in changes] == [("start", (3, 5)), ("start", (5, 9))]  # 3-9 is exactly 1.0 m
    assert monitor.open_pairs == [(3, 5), (5, 9)]
    assert monitor.update(1.0, [5, 3, 9], np.array([[0.0, 0.0], [0.6, 0.0], [0.0, 0.8]])) == []  # no repeats
    ends = monitor.flush(3.0)
    assert [(c.state, c.pair, c.reason, c.timestamp_s, c.duration_s) for c in ends] == [
        ("end", (3, 5), "flush", 3.0, 1.0),
        ("end", (5, 9), "flush", 3.0, 1.0),
    ]
    assert monitor.open_pairs == [] and monitor.flush(4.0) == []


def test_rate_limited_updates():
    monitor = ViolationMonitor(threshold_m=1.0, update_interval_s=1.0)
    frames = [(t, {1: (0.0, 0.0), 2: (0.5, 0.0)}) for t in (0.0, 0.5, 1.0, 1.5, 2.0, 2.25, 2.5, 3.0)]
    events = _feed(monitor, frames)
    assert [(t, s) for t, s, _, _ in events] == [(0.0, "start"), (1.0, "update"), (2.0, "update"), (3.0, "update")]


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="threshold_m"):
        ViolationMonitor(threshold_m=0)
    with pytest.raises(ValueError, match="hysteresis_m"):
        ViolationMonitor(hysteresis_m=-0.1)
    monitor = ViolationMonitor()
    monitor.update(1.0, [1], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="went backwards"):
        monitor.update(0.5, [1], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="duplicate ids"):
        monitor.update(2.0, [1, 1], np.zeros((2, 2)))
    assert monitor.update(3.0, [], np.zeros((0, 2))) == []
