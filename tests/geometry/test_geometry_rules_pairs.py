"""The distance rule's array lifecycle (``geometry/rules/pairs.py``) against the generic one.

Random scenes (people random-walking on a small square, some unseen for a while, some leaving for
good, new ones coming, a few non-finite positions and class changes, irregular frame times, zones
with and without their own threshold, covariances with unknown rows) go through two engines: the
default one (``PairLifecycle``) and ``pair_arrays=False`` (every rule through ``Lifecycle``, the
reference). Every frame's changes must be identical field by field, alarm ids aside (mapped one to
one), and so must the flush at the end.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vigil.geometry.rules import RulesEngine
from vigil.geometry.rules.config import RulesConfig, ZoneConfig
from vigil.geometry.rules.pairs import PairLifecycle

SIDE_M = 6.0
ZONES = [
    ZoneConfig(name="bar", polygon=[(0, 0), (3, 0), (3, 3), (0, 3)], distance_threshold_m=1.4, max_people=4),
    ZoneConfig(name="hall", polygon=[(2, 2), (6, 2), (6, 6), (2, 6)]),
]
SETTINGS = [
    {"min_duration_s": 0, "end_after_s": 0, "hysteresis_m": 0},
    {"min_duration_s": 0.5, "end_after_s": 0.7, "hysteresis_m": 0.2, "critical_below_m": 0.5},
    {"min_duration_s": 0.3, "end_after_s": 0.4, "cooldown_s": 1.5, "update_interval_s": 0.5, "hysteresis_m": 0.3},
    {
        "min_duration_s": 0.2,
        "end_after_s": 0.5,
        "cooldown_s": 0.4,
        "update_interval_s": 1.0,
        "hysteresis_m": 0.2,
        "critical_below_m": 0.6,
        "decision": "sure",
        "confidence": 0.9,
        "pairs": [{"classes": ["person", "bicycle"], "threshold_m": 1.6}],
    },
    {"min_duration_s": 1.0, "end_after_s": 2.0, "hysteresis_m": 0.1, "classes": ["person", "bicycle"]},
]


def _scene(seed: int, frames: int, people: int, id_base: int = 1, covariances: bool = False):
    """``(t, ids, classes, xy (N, 2) m, cov (N, 2, 2) m^2 or None)`` per frame."""
    rng = np.random.default_rng(seed)
    next_id = id_base + people
    ids = list(range(id_base, id_base + people))
    xy = {i: rng.uniform(0, SIDE_M, 2) for i in ids}
    cls = {i: "person" for i in ids}
    hidden: dict[int, int] = {}  # id -> frames left unseen
    t = 0.0
    out = []
    for _ in range(frames):
        t += float(rng.choice([0.1, 0.1, 0.2, 0.25, 0.05]))
        for i in ids:
            xy[i] = np.clip(xy[i] + rng.normal(0, 0.15, 2), 0, SIDE_M)
            if rng.random() < 0.01:
                cls[i] = str(rng.choice(["person", "bicycle", "car"]))
            if i not in hidden and rng.random() < 0.03:
                hidden[i] = int(rng.integers(1, 12))
        if rng.random() < 0.2 and len(ids) > 4:  # someone leaves for good
            ids.remove(ids[int(rng.integers(len(ids)))])
        if rng.random() < 0.25:  # someone new arrives
            xy[next_id], cls[next_id] = rng.uniform(0, SIDE_M, 2), "person"
            ids.append(next_id)
            next_id += 1
        seen = [i for i in ids if hidden.get(i, 0) == 0]
        hidden = {i: k - 1 for i, k in hidden.items() if k > 1}
        order = rng.permutation(len(seen))
        f_ids = [seen[k] for k in order]
        f_xy = np.array([xy[i] for i in f_ids]).reshape(-1, 2)
        f_xy[rng.random(len(f_ids)) < 0.01] = np.nan
        cov = None
        if covariances:
            var = rng.uniform(0.0005, 0.02, (len(f_ids), 2))
            cov = np.zeros((len(f_ids), 2, 2))
            cov[:, 0, 0], cov[:, 1, 1] = var[:, 0], var[:, 1]
            cov[rng.random(len(f_ids)) < 0.05] = np.nan
        out.append((t, f_ids, [cls[i] for i in f_ids], f_xy, cov))
    return out


def _fields(change, ids: dict) -> tuple:
    """The change as a tuple of all its fields, its alarm id replaced by the first-seen order of ids."""
    d = dataclasses.asdict(change)
    d["alarm_id"] = ids.setdefault(change.alarm_id, len(ids))
    return tuple(d.items())


def _compare(distance: dict, scene, zones=ZONES) -> list:
    """The distance rule's changes (the same from both engines)."""
    rules = RulesConfig.model_validate({"distance": distance, "zones": {"min_duration_s": 0.2, "end_after_s": 0.2}})
    fast, ref = RulesEngine(rules, zones), RulesEngine(rules, zones, pair_arrays=False)
    assert isinstance(fast.lifecycles["distance"], PairLifecycle)
    assert not isinstance(ref.lifecycles["distance"], PairLifecycle)
    fast_ids: dict = {}
    ref_ids: dict = {}
    out = []
    for t, ids, cls, xy, cov in scene:
        a, b = fast.update(t, ids, cls, xy, cov), ref.update(t, ids, cls, xy, cov)
        assert [_fields(c, fast_ids) for c in a] == [_fields(c, ref_ids) for c in b], f"t = {t}"
        assert fast.open_alarms("distance") == ref.open_alarms("distance")
        out += [c for c in a if c.rule == "distance"]
    for key in ref.open_alarms("distance")[:5]:
        ref_id = ref.lifecycles["distance"].alarm_id(key)
        assert fast_ids[fast.lifecycles["distance"].alarm_id(key)] == ref_ids[ref_id]
    t_end = scene[-1][0] + 1.0
    assert [_fields(c, fast_ids) for c in fast.flush(t_end)] == [_fields(c, ref_ids) for c in ref.flush(t_end)]
    return out


@pytest.mark.parametrize("settings", SETTINGS, ids=[f"settings{k}" for k in range(len(SETTINGS))])
@pytest.mark.parametrize("covariances", [False, True], ids=["no-cov", "cov"])
def test_array_lifecycle_gives_the_changes_of_the_generic_one(settings, covariances):
    scene = _scene(seed=len(str(settings)) + covariances, frames=300, people=30, covariances=covariances)
    changes = _compare(settings, scene)
    assert len(changes) > 50
    assert {c.zone for c in changes} == {None, "bar", "hall"}
    if covariances:  # the uncertainty fields were compared too, known and unknown
        assert {c.extra["confidence"] is None for c in changes} == {True, False}


def test_without_zones_and_with_every_state_in_the_sequence():
    scene = _scene(seed=7, frames=300, people=30)
    states = set()
    rules = RulesConfig.model_validate({"distance": SETTINGS[2]})
    eng = RulesEngine(rules)
    for t, ids, cls, xy, _ in scene:
        states |= {(c.state, c.reason) for c in eng.update(t, ids, cls, xy)}
    assert {("start", None), ("update", None), ("end", "clear"), ("end", "lost")} <= states
    assert len(_compare(SETTINGS[2], scene, zones=[])) > 50


@pytest.mark.parametrize("id_base", [-20, 2**40, 2**31 - 10], ids=["negative", "beyond-31-bits", "crossing-31-bits"])
def test_ids_that_are_not_small_integers_use_the_code_table(id_base):
    # 2**31 - 10: the first ids fit (the ids themselves are the codes), later ones do not (the switch)
    scene = _scene(seed=3, frames=200, people=30, id_base=id_base)
    assert len(_compare(SETTINGS[1], scene)) > 20


def test_code_table_forgets_tracks_long_gone():
    eng = RulesEngine(RulesConfig.model_validate({"distance": {"min_duration_s": 0, "end_after_s": 0}}))
    lc = eng.lifecycles["distance"]
    for k in range(3000):  # two new tracks a frame, close together, ids beyond 31 bits
        ids = [2**40 + 2 * k, 2**40 + 2 * k + 1]
        eng.update(float(k), ids, ["person"] * 2, np.array([[0.0, 0.0], [0.5, 0.0]]))
    assert len(lc._ids) < 5000
    assert eng.open_alarms("distance") == [(2**40 + 5998, 2**40 + 5999)]


def test_the_callers_arrays_are_left_alone():
    eng = RulesEngine(RulesConfig.model_validate({"distance": {"min_duration_s": 0, "end_after_s": 0}}))
    xy = np.array([[0.0, 0.0], [0.5, 0.0], [4.0, 0.0]])
    cov = np.array([np.eye(2) * 0.01, [[0.01, np.nan], [0.0, 0.01]], np.eye(2) * 0.01])
    xy0, cov0 = xy.copy(), cov.copy()
    (start,) = eng.update(0.0, np.array([1, 2, 3]), ["person"] * 3, xy, world_cov=cov)
    assert start.extra["confidence"] is None  # row 2's covariance is unknown
    np.testing.assert_array_equal(xy, xy0)
    np.testing.assert_array_equal(cov, cov0)  # not the NaN row the engine makes of it
