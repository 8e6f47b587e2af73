"""Decisions with confidence (issue 14): each pair's distance sigma, 95 % interval and P(d < threshold)
from the position covariances, ``decision: sure``, and ends that carry the distance that cleared the
alarm and the worst one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from vigil.alerts.events import event_from_change
from vigil.alerts.payloads import DistanceViolationPayload
from vigil.geometry.rules import Lifecycle, Observation, RulesEngine
from vigil.geometry.rules.config import RulesConfig

TIME = "2026-11-23T07:00:00.000000Z"


def _engine(**distance) -> RulesEngine:
    return RulesEngine(RulesConfig.model_validate({"distance": {"min_duration_s": 0, "end_after_s": 0, **distance}}))


def _cov(var_a: tuple[float, float], var_b: tuple[float, float]) -> np.ndarray:
    """``(2, 2, 2)`` m^2: diagonal covariances of the two rows (per-axis variances x, y)."""
    return np.array([np.diag(var_a), np.diag(var_b)], float)


def _run(engine, dists, cov=None, t0=0.0, dt=1.0):
    """Track 1 at the origin, track 2 at ``(d, 0)`` metres for each d (None: track 2 unseen)."""
    out = []
    for k, d in enumerate(dists):
        t = t0 + k * dt
        if d is None:
            out += [(t, c) for c in engine.update(t, [1], ["person"], np.zeros((1, 2)), world_cov=None)]
            continue
        xy = np.array([[0.0, 0.0], [d, 0.0]])
        out += [(t, c) for c in engine.update(t, [1, 2], ["person"] * 2, xy, world_cov=cov)]
    return out


def _payload(change) -> dict:
    return event_from_change(change, camera="cam1", seq=1, time=TIME, frame=0).payload


def test_known_covariances_give_sigma_interval_and_confidence_in_the_payload():
    # pair along x, d = 0.8 m; cov_a + cov_b = diag(0.0225, 0.05): only the x variance counts,
    # sigma_d = sqrt(0.0225) = 0.15 m; P(d_true < 1) = Phi(0.2 / 0.15) = Phi(4/3) = 0.908789
    cov = _cov((0.01, 0.04), (0.0125, 0.01))
    ((_, start),) = _run(_engine(), [0.8], cov)
    p = _payload(start)
    assert p["distance_m"] == 0.8 and p["threshold_m"] == 1.0 and p["decision"] == "point"
    assert p["distance_sigma_m"] == 0.15
    assert p["distance_interval_m"] == [0.506, 1.094]  # 0.8 -+ 1.959964 * 0.15
    assert p["confidence"] == 0.9088
    assert start.extra["confidence"] == pytest.approx(0.5 * (1 + math.erf((0.2 / 0.15) / math.sqrt(2))), abs=1e-12)
    assert DistanceViolationPayload.model_validate(p).confidence == 0.9088


def test_direction_of_the_pair_selects_the_variance():
    # the same covariances, the pair along y: sigma_d = sqrt(0.04 + 0.01) = 0.2236 m
    eng = _engine()
    (start,) = eng.update(
        0.0, [1, 2], ["person"] * 2, np.array([[0.0, 0.0], [0.0, 0.8]]), world_cov=_cov((0.01, 0.04), (0.0125, 0.01))
    )
    assert start.extra["distance_sigma_m"] == pytest.approx(math.sqrt(0.05), abs=1e-12)
    assert _payload(start)["distance_sigma_m"] == 0.224


def test_interval_is_clipped_at_zero():
    # d = 0.1 m, sigma_d = 0.2 m: lo = 0.1 - 0.392 < 0 -> 0
    ((_, start),) = _run(_engine(), [0.1], _cov((0.02, 0.02), (0.02, 0.02)))
    assert _payload(start)["distance_interval_m"] == [0.0, 0.492]


def test_without_covariances_the_uncertainty_fields_are_absent():
    ((_, start),) = _run(_engine(), [0.8])
    p = _payload(start)
    assert p["decision"] == "point" and "distance_sigma_m" not in p and "confidence" not in p
    model = DistanceViolationPayload.model_validate(p)
    assert (model.distance_sigma_m, model.distance_interval_m, model.confidence) == (None, None, None)


def test_unknown_covariance_row_gives_nulls():
    cov = _cov((0.01, 0.01), (0.01, 0.01))
    cov[1] = np.nan
    ((_, start),) = _run(_engine(), [0.8], cov)
    p = _payload(start)
    assert (p["distance_sigma_m"], p["distance_interval_m"], p["confidence"]) == (None, None, None)


@pytest.mark.parametrize(
    "var, fires",
    [
        # d = 0.9 m, threshold 1 m, confidence 0.95 (z = 1.645): sigma_d 0.05 -> P = Phi(2) = 0.977 >= 0.95
        (0.00125, True),
        # sigma_d 0.1 -> P = Phi(1) = 0.841 < 0.95: the upper end 0.9 + 0.164 = 1.064 m is above 1 m
        (0.005, False),
    ],
)
def test_sure_fires_only_when_the_interval_is_below_the_threshold(var, fires):
    cov = _cov((var, var), (var, var))
    sure = _run(_engine(decision="sure"), [0.9], cov)
    point = _run(_engine(), [0.9], cov)
    assert [c.state for _, c in point] == ["start"]  # the point estimate is below 1 m either way
    assert [c.state for _, c in sure] == (["start"] if fires else [])
    if fires:
        p = _payload(sure[0][1])
        assert p["decision"] == "sure" and p["confidence"] == 0.9772 and p["distance_sigma_m"] == 0.05


def test_sure_holds_with_the_same_confidence_at_threshold_plus_hysteresis():
    # sigma_d 0.05 m, hysteresis 0.2: held while d + 1.645 * 0.05 < 1.2, i.e. d < 1.1178 m
    cov = _cov((0.00125, 0.00125), (0.00125, 0.00125))
    ch = _run(_engine(decision="sure", hysteresis_m=0.2), [0.9, 1.1, 1.15], cov)
    assert [(t, c.state) for t, c in ch] == [(0.0, "start"), (2.0, "end")]
    end = ch[1][1]
    # 1.15 m is inside the point band (< 1.2) but not surely: it cleared the alarm
    assert end.reason == "clear" and end.value == pytest.approx(1.15) and end.worst == pytest.approx(0.9)
    point = _run(_engine(hysteresis_m=0.2), [0.9, 1.1, 1.15], cov)
    assert [c.state for _, c in point] == ["start"]  # the point decision still holds it


def test_sure_without_covariances_is_the_point_decision():
    assert [c.state for _, c in _run(_engine(decision="sure"), [0.9])] == ["start"]


def test_confidence_must_be_between_one_half_and_one():
    for bad in (0.5, 1.0, 0.3):
        with pytest.raises(ValidationError, match="confidence"):
            RulesConfig.model_validate({"distance": {"confidence": bad}})
    with pytest.raises(ValidationError, match="decision"):
        RulesConfig.model_validate({"distance": {"decision": "probable"}})


def test_end_carries_the_clearing_distance_and_the_worst():
    # threshold 1.0, hysteresis 0.2: 0.8 (start), 0.6, 0.9 (held), 1.5 (outside 1.2: clear -> end)
    cov = _cov((0.01, 0.01), (0.01, 0.01))
    ch = _run(_engine(hysteresis_m=0.2), [0.8, 0.6, 0.9, 1.5], cov)
    assert [(t, c.state, c.reason) for t, c in ch] == [(0.0, "start", None), (3.0, "end", "clear")]
    end = ch[1][1]
    assert end.positions == {1: (0.0, 0.0), 2: (1.5, 0.0)}
    p = _payload(end)
    assert p["distance_m"] == 1.5 and p["value"] == 1.5 and p["min_distance_m"] == 0.6
    # the clearing distance's own uncertainty: sigma sqrt(0.02) = 0.1414, P(d < 1) = Phi(-0.5 / 0.1414)
    assert p["distance_sigma_m"] == 0.141 and p["confidence"] == 0.0002


def test_end_after_s_reports_the_first_distance_outside_the_band():
    # clear from t = 3 (1.5 m) on; the end comes at t = 4 (end_after_s 1) and reports 1.5, not 1.7
    ch = _run(_engine(hysteresis_m=0.2, end_after_s=1.0), [0.8, 0.6, 0.9, 1.5, 1.7, 2.0])
    assert [(t, c.state) for t, c in ch] == [(0.0, "start"), (4.0, "end")]
    assert ch[1][1].value == pytest.approx(1.5) and ch[1][1].worst == pytest.approx(0.6)


def test_back_into_the_band_restarts_the_clear_stretch():
    # 1.5 clears, 1.1 is back in the band (held), 1.4 clears again: the end reports 1.4
    ch = _run(_engine(hysteresis_m=0.2, end_after_s=1.5), [0.8, 1.5, 1.1, 1.4, 1.6, 1.8])
    assert [(t, c.state) for t, c in ch] == [(0.0, "start"), (5.0, "end")]
    assert ch[1][1].value == pytest.approx(1.4)


def test_lost_end_carries_the_last_known_distance():
    ch = _run(_engine(hysteresis_m=0.2, end_after_s=1.5), [0.8, 0.7, None, None, None])
    assert [(t, c.state, c.reason) for t, c in ch] == [(0.0, "start", None), (3.0, "end", "lost")]
    assert ch[1][1].value == pytest.approx(0.7) and ch[1][1].worst == pytest.approx(0.7)


def test_lifecycle_end_reports_the_first_clear_observation_and_worst_of_held_ones():
    lc = Lifecycle("x", "m", min_duration_s=0, end_after_s=2.0)

    def o(bad, value, hold=False, severity="warning"):
        return {("z",): Observation(bad=bad, value=value, threshold=3, severity=severity, hold=hold)}

    assert [c.state for c in lc.step(0.0, o(True, 5, severity="critical"))] == ["start"]
    assert lc.step(1.0, o(False, 2.5, hold=True, severity="critical")) == []  # held
    assert lc.step(2.0, o(False, 1.0)) == []  # clear for 0 s: the clearing observation
    assert lc.step(3.0, o(False, 9.0)) == []  # a clear value is never the worst (higher is worse here)
    (end,) = lc.step(4.0, o(False, 0.5))
    assert (end.reason, end.value, end.worst, end.severity) == ("clear", 1.0, 5.0, "critical")


def test_world_cov_shape_is_checked():
    eng = _engine()
    with pytest.raises(ValueError, match=r"world_cov: expected shape \(2, 2, 2\)"):
        eng.update(0.0, [1, 2], ["person"] * 2, np.zeros((2, 2)), world_cov=np.zeros((2, 2)))


def test_rows_dropped_for_position_drop_their_covariance_too():
    eng = _engine()
    xy = np.array([[np.nan, np.nan], [0.0, 0.0], [0.8, 0.0]])
    cov = np.array([np.eye(2) * 9.0, np.diag([0.01, 0.04]), np.diag([0.0125, 0.01])])
    (start,) = eng.update(0.0, [7, 1, 2], ["person"] * 3, xy, world_cov=cov)
    assert start.tracks == (1, 2) and start.extra["distance_sigma_m"] == pytest.approx(0.15, abs=1e-12)
