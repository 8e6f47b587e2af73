"""Ground-plane metrics on hand-made positions and trajectories with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vigil.geometry.metrics import (
    ContactTimer,
    PairThresholds,
    pair_violations,
    pairs_within,
    queue_spacing,
    zone_capacity,
    zone_counts,
)
from vigil.geometry.zones import ZoneError, make_zone


def test_pairs_within_exact_and_skips_nan():
    xy = np.array([[0.0, 0.0], [0.6, 0.8], [np.nan, 0.0], [3.0, 4.0], [3.0, 4.5]])
    i, j, d = pairs_within(xy, 1.0)
    # (0,1) is exactly 1.0 apart: strict '<' excludes it, '<=' includes it
    assert list(zip(i.tolist(), j.tolist())) == [(3, 4)]
    np.testing.assert_allclose(d, [0.5])
    i, j, d = pairs_within(xy, 1.0, strict=False)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 1), (3, 4)]
    np.testing.assert_allclose(d, [1.0, 0.5], atol=1e-12)


def test_pairs_within_matches_brute_force():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 20, (300, 2))
    i, j, d = pairs_within(xy, 1.5)
    full = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    bi, bj = np.nonzero(np.triu(full < 1.5, 1))
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(bi.tolist(), bj.tolist()))


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_thresholds_must_be_positive(bad):
    with pytest.raises(ValueError, match="> 0"):
        pairs_within(np.zeros((2, 2)), bad)
    with pytest.raises(ValueError, match="> 0"):
        PairThresholds({("person", "person"): bad})


def test_class_pair_thresholds_and_zone_override():
    # person-person 1.0 m, person-bicycle 1.5 m, bicycle-bicycle not checked
    th = PairThresholds({("person", "person"): 1.0, ("bicycle", "person"): 1.5})
    xy = np.array(
        [
            [0.0, 0.0],
            [0.9, 0.0],  # person-person 0.9: violation
            [10.0, 0.0],
            [11.2, 0.0],  # person-bicycle 1.2: violation (1.5)
            [20.0, 0.0],
            [20.5, 0.0],  # bicycle-bicycle 0.5: not checked
            [30.0, 0.0],
            [31.2, 0.0],
        ]
    )  # person-person 1.2: fine
    cls = ["person", "person", "person", "bicycle", "bicycle", "bicycle", "person", "person"]
    i, j, d, t = pair_violations(xy, cls, th)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 1), (2, 3)]
    np.testing.assert_allclose(d, [0.9, 1.2])
    np.testing.assert_allclose(t, [1.0, 1.5])
    # a zone around x=30 raising the threshold to 2 m makes the last pair a violation
    zone = make_zone("entrance", [[29, -1], [33, -1], [33, 1], [29, 1]])
    th2 = PairThresholds(th.by_pair, [(zone, 2.0)])
    i, j, d, t = pair_violations(xy, cls, th2)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 1), (2, 3), (6, 7)]
    np.testing.assert_allclose(t, [1.0, 1.5, 2.0])
    # the hysteresis margin also returns pairs inside the band
    i, j, d, t = pair_violations(xy, cls, th, margin_m=0.25)
    assert (6, 7) in list(zip(i.tolist(), j.tolist()))


def test_zone_counts_density_and_capacity():
    room = make_zone("room", [[0, 0], [10, 0], [10, 4], [0, 4]])  # 40 m^2
    other = make_zone("corner", [[8, 2], [10, 2], [10, 4], [8, 4]])  # 4 m^2
    xy = np.array([[1, 1], [2, 2], [9, 3], [9.5, 3.5], [20, 20], [np.nan, 1]])
    counts = zone_counts(xy, [room, other])
    assert counts == {"room": (4, 0.1), "corner": (2, 0.5)}
    assert room.area_m2 == 40.0
    assert zone_capacity(room.area_m2, 4.0) == 10
    assert zone_capacity(40.0, 7.0) == 5  # floor(5.71)
    assert zone_capacity(12.0, 0.4) == 30  # exact despite float division


def test_bad_zones_are_clear_errors():
    with pytest.raises(ZoneError, match="self-intersecting"):
        make_zone("bowtie", [[0, 0], [1, 1], [1, 0], [0, 1]])
    with pytest.raises(ZoneError, match="at least 3"):
        make_zone("line", [[0, 0], [1, 1]])
    with pytest.raises(ZoneError, match="finite"):
        make_zone("nan", [[0, 0], [1, np.nan], [1, 0]])
    with pytest.raises(ZoneError, match="zero area|self-intersecting"):
        make_zone("flat", [[0, 0], [1, 1], [2, 2]])


def test_queue_spacing_orders_along_the_line():
    # queue axis from the counter at (0,0) along +x, 10 m long, corridor 0.5 m
    xy = np.array([[3.0, 0.1], [0.5, 0.0], [1.3, -0.2], [6.0, 3.0], [4.0, 0.0], [-1.0, 0.0]])
    res = queue_spacing(xy, (0, 0), (10, 0), corridor_m=0.5)
    assert res.order.tolist() == [1, 2, 0, 4]  # (6,3) is off the corridor, (-1,0) behind the counter
    np.testing.assert_allclose(res.along_m, [0.5, 1.3, 3.0, 4.0])
    np.testing.assert_allclose(res.gaps_m, [math.hypot(0.8, 0.2), math.hypot(1.7, 0.3), math.hypot(1.0, 0.1)])
    assert res.min_gap_m == pytest.approx(math.hypot(0.8, 0.2))
    assert queue_spacing(np.zeros((0, 2)), (0, 0), (1, 0), 1.0).min_gap_m == math.inf


def test_contact_timer_accumulates_within_window():
    t = ContactTimer(window_s=100.0, max_gap_s=2.0)
    pair = (1, 2)
    # close at t = 0..4, apart 5..9, close again 10..12 (1 s frames)
    for now in range(13):
        out = t.update(now, [pair] if (now <= 4 or now >= 10) else [])
    assert out[pair] == pytest.approx(4.0 + 2.0)
    # a 5-second window ending at 12 holds [7, 12]: only the 2 s of the second contact
    t2 = ContactTimer(window_s=5.0)
    for now in range(13):
        out = t2.update(now, [pair] if (now <= 4 or now >= 10) else [])
    assert out[pair] == pytest.approx(2.0)
    # partial overlap: window [6.5, 11.5] at 11.5 (half-second frames)
    t3 = ContactTimer(window_s=5.0)
    for now in np.arange(0, 12, 0.5):
        out = t3.update(now, [pair] if (now <= 7 or now >= 10) else [])
    assert out[pair] == pytest.approx(0.5 + 1.5)


def test_contact_timer_does_not_bridge_gaps_and_rejects_time_going_back():
    t = ContactTimer(window_s=100.0, max_gap_s=1.0)
    t.update(0.0, [(1, 2)])
    out = t.update(5.0, [(1, 2)])  # 5 s without an observation is not contact time
    assert out == {}
    assert t.update(6.0, [(1, 2)]) == {(1, 2): pytest.approx(1.0)}
    with pytest.raises(ValueError, match="backwards"):
        t.update(5.5, [])


@pytest.mark.parametrize("n, side, radius", [(300, 20.0, 1.5), (2000, 60.0, 1.2), (1500, 8.0, 1.0), (400, 1e7, 2.0)])
def test_pairs_within_grid_matches_brute_force(n, side, radius):
    # from 300 points the candidates come from a grid of cells (the k-d tree below, and for points spread
    # so far apart that the grid would be mostly empty: the last case); coordinates on a 0.1 m lattice
    # give pairs exactly `radius` apart
    rng = np.random.default_rng(n)
    xy = np.round(rng.uniform(-side, side, (n, 2)), 1)
    xy[rng.random(n) < 0.05] = np.nan
    dx = xy[:, None, 0] - xy[None, :, 0]
    dy = xy[:, None, 1] - xy[None, :, 1]
    full = np.sqrt(dx * dx + dy * dy)
    for strict in (True, False):
        i, j, d = pairs_within(xy, radius, strict=strict)
        with np.errstate(invalid="ignore"):
            bi, bj = np.nonzero(np.triu(full < radius if strict else full <= radius, 1))
        if strict or side < 1e6:  # the k-d tree may leave out a pair exactly `radius` apart
            assert list(zip(i.tolist(), j.tolist())) == list(zip(bi.tolist(), bj.tolist()))
            assert np.array_equal(d, full[bi, bj])
