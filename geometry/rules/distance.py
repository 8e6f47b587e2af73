"""The ``distance`` rule: two tracks closer than their class-pair (or zone) threshold.

Metric ``distance_m`` (metres, smaller is worse); event ``distance_violation``. An open alarm
stays open while the pair is closer than ``threshold + hysteresis_m``; severity ``critical``
while closer than ``critical_below_m``. Keys: ``(lower track id, higher track id)``.

Decisions with confidence (``docs/rules.md``). With the ground stage on (``tracker.ground``),
each row has a position covariance (``FrameView.cov``, ``(N, 2, 2)`` m^2) and each candidate
pair (only the pairs within ``threshold + hysteresis_m``, from the neighbour search) gets the first-order
standard deviation of its distance, ``sigma_d`` metres, and the probability that the true
distance is below the threshold, ``P = Phi((threshold - d) / sigma_d)``
(:func:`~vigil.geometry.uncertainty.pair_distance_with_sigma`,
:func:`~vigil.geometry.uncertainty.prob_distance_below`, vectorised over the candidates).
``decision``:

- ``point`` (default): in violation while ``d < threshold``; held while ``d < threshold +
  hysteresis_m``, as without covariances;
- ``sure`` (enforcement): in violation only while ``P(d_true < threshold) >= confidence``,
  i.e. the upper end of the one-sided interval ``d + z sigma_d < threshold`` with
  ``z = Phi^-1(confidence)``; held while ``P(d_true < threshold + hysteresis_m) >= confidence``.
  A pair whose sigma is unknown (a row without covariance) is decided on its point estimate
  (sigma 0), and its event says so (``confidence`` null); the node config refuses ``sure``
  without the ground stage (``vigil.edge.config``).

A ``probable`` mode (``P >= 0.5``) is not offered: under this normal approximation it is
exactly ``d <= threshold``, the point decision.

Every observation's ``extra`` carries ``classes``, ``decision`` and, with covariances,
``distance_sigma_m``, ``distance_interval_m`` (``[lo, hi]`` metres, the two-sided 95 % normal
interval ``d -+ 1.96 sigma_d``, ``lo`` clipped at 0) and ``confidence`` (``P``, 0..1); each is
``None`` for a pair whose sigma is unknown. :meth:`DistanceRule.measure` gives the distance of
an open alarm's pair once it is outside the band, so the end reports the clearing distance.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Literal, Sequence

import numpy as np
from pydantic import Field

from vigil.geometry.metrics import PairThresholds, pair_violations
from vigil.geometry.uncertainty import pair_distance_with_sigma, prob_distance_below

from .base import FrameView, Rule, ZoneSpec, pos, zone_names
from .lifecycle import LifecycleConfig, Observation, StrictConfig
from .pairs import SEVERITY_CODE, PairBatch

__all__ = ["PairThresholdConfig", "DistanceRuleConfig", "DistanceRule", "Decision", "Z95"]

Decision = Literal["point", "sure"]
#: the data columns of the rule's :class:`~.pairs.PairBatch` (lower track id's position first): distance and
#: threshold (m), positions (m), classes (indices into the rule's class names), sigma (m) and P (NaN where
#: unknown), and 1 where the frame had covariances (the uncertainty fields are then reported)
_COLUMNS = ("distance_m", "threshold_m", "xa", "ya", "xb", "yb", "class_a", "class_b", "sigma_m", "p", "with_cov")
#: the two-sided 95 % quantile of the standard normal, Phi^-1(0.975)
Z95 = 1.959963984540054


class PairThresholdConfig(StrictConfig):
    """A distance threshold for one pair of classes (e.g. person–bicycle)."""

    classes: tuple[str, str] = Field(description="The two detector class names, e.g. [person, bicycle]")
    threshold_m: float = Field(
        gt=0, le=20, description="Pairs of these classes closer than this (metres) are in violation"
    )


class DistanceRuleConfig(LifecycleConfig):
    """Interpersonal distance rule (the Italian rule is 1 m between people)."""

    enabled: bool = Field(True, description="Raise distance_violation alarms")
    threshold_m: float = Field(
        1.0, gt=0, le=20, description="Pairs of `classes` closer than this (metres) are in violation"
    )
    hysteresis_m: float = Field(
        0.2,
        ge=0,
        le=5,
        description="A violation clears only once the pair is farther than threshold + hysteresis (metres;"
        " decision sure: once it is no longer surely closer than that)",
    )
    classes: list[str] = Field(
        default_factory=lambda: ["person"],
        min_length=1,
        description="Detector class names checked pairwise at threshold_m",
    )
    pairs: list[PairThresholdConfig] = Field(
        default_factory=list, description="Extra or overriding thresholds per class pair, e.g. person–bicycle"
    )
    critical_below_m: float | None = Field(
        None, gt=0, le=20, description="Raise severity to critical while the pair is closer than this (metres)"
    )
    decision: Decision = Field(
        "point",
        description="point: a violation while the measured distance is below the threshold; sure (enforcement):"
        " only while P(true distance < threshold) >= confidence, i.e. d + z * sigma_d < threshold, with sigma_d"
        " from the ground stage's position covariances (needs tracker.ground; a pair whose sigma is unknown is"
        " decided on its measured distance, sigma 0). An open alarm holds while the same decision holds at"
        " threshold + hysteresis_m",
    )
    confidence: float = Field(
        0.95,
        gt=0.5,
        lt=1,
        description="decision sure: the probability P(true distance < threshold) a violation needs (0.5 < p < 1)",
    )

    @property
    def all_classes(self) -> list[str]:
        return sorted(set(self.classes) | {c for p in self.pairs for c in p.classes})

    def by_pair(self) -> dict[tuple[str, str], float]:
        out = {}
        for i, a in enumerate(self.classes):
            for b in self.classes[i:]:
                out[tuple(sorted((a, b)))] = self.threshold_m
        for p in self.pairs:
            out[tuple(sorted(p.classes))] = p.threshold_m
        return out


class DistanceRule(Rule):
    name = "distance"
    event_type = "distance_violation"
    metric = "distance_m"
    higher_is_worse = False
    pair_subjects = True
    measures_clear = True
    pair_arrays = True
    pair_columns = len(_COLUMNS)

    def __init__(self, config: DistanceRuleConfig, rules, zones: Sequence[ZoneSpec]) -> None:
        super().__init__(config, rules, zones)
        self.thresholds = PairThresholds(
            config.by_pair(), [(s.zone, s.config.distance_threshold_m) for s in zones if s.config.distance_threshold_m]
        )
        self._class_names = self.thresholds.classes
        self._class_names_array = np.array(self._class_names, object)

    @property
    def classes(self) -> set[str]:
        return set(self.thresholds.classes)

    def observe(self, f: FrameView) -> dict:
        return self._observations(f, *self._candidates(f))

    def observe_pairs(self, f: FrameView) -> PairBatch:
        """The candidate pairs as one :class:`~.pairs.PairBatch` (the array form of :meth:`observe`)."""
        return self._batch(f, *self._candidates(f))

    def _candidates(self, f: FrameView) -> tuple:
        """``(i, j, dist, thr, bad, hold, sigma, p)`` ``(M,)`` of the pairs of rows ``(i[m], j[m])``
        within ``threshold + hysteresis_m``: distance and threshold (metres), the decisions, and
        sigma (metres) and ``P(d_true < thr)`` (see :meth:`_uncertainty`)."""
        d = self.config
        codes = f.class_codes(self._class_names)
        i, j, dist, thr = pair_violations(f.xy, f.cls, self.thresholds, margin_m=d.hysteresis_m, codes=codes)
        sigma, p = self._uncertainty(f, i, j, dist, thr)
        bad = dist < thr
        hold = ~bad  # every candidate is within threshold + hysteresis_m
        if d.decision == "sure" and p is not None:
            known = np.isfinite(p)  # unknown sigma: the point decision above
            p_hold = prob_distance_below(dist - (thr + d.hysteresis_m), sigma, 0.0)
            bad = np.where(known, p >= d.confidence, bad)
            hold = ~bad & np.where(known, p_hold >= d.confidence, hold)
        return i, j, dist, thr, bad, hold, sigma, p

    def measure(self, f: FrameView, keys: list) -> dict:
        """Clear observations of open alarms' pairs outside the band (see :meth:`Rule.measure`)."""
        row = f.row_of()
        ab = np.array([(row[a], row[b]) for a, b in keys], np.int64).reshape(-1, 2)
        return self._observations(f, *self._measured(f, ab[:, 0], ab[:, 1]))

    def measure_pairs(self, f: FrameView, lo: np.ndarray, hi: np.ndarray) -> PairBatch:
        """The array form of :meth:`measure`, for the pairs of rows ``(lo[m], hi[m])``."""
        return self._batch(f, *self._measured(f, lo, hi))

    def _measured(self, f: FrameView, i: np.ndarray, j: np.ndarray) -> tuple:
        """:meth:`_candidates`' tuple for the pairs of rows ``(i[m], j[m])``, all clear; a pair whose
        class pair is not checked (a track's class changed) is left out."""
        xy = f.xy
        diff = xy[i] - xy[j]
        dist = np.hypot(diff[:, 0], diff[:, 1])
        thr = self.thresholds.resolve(f.cls[i], f.cls[j], (xy[i] + xy[j]) / 2.0)
        ok = np.isfinite(thr)  # a track whose class changed to one not checked: no value
        i, j, dist, thr = i[ok], j[ok], dist[ok], thr[ok]
        sigma, p = self._uncertainty(f, i, j, dist, thr)
        clear = np.zeros(len(i), bool)
        return i, j, dist, thr, clear, clear, sigma, p

    @staticmethod
    def _uncertainty(f: FrameView, i, j, dist, thr) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(sigma_d, P)`` ``(M,)`` for the pairs ``(i[m], j[m])``: the distance's standard
        deviation (metres) and ``P(d_true < thr)``, NaN where a row's covariance is unknown;
        ``(None, None)`` when the frame has no covariances."""
        if f.cov is None or not len(i):
            return None, None
        cov = f.cov
        sigma = np.full(len(i), np.nan)
        known = np.isfinite(cov[i, 0, 0]) & np.isfinite(cov[j, 0, 0])  # the engine makes unknown rows all-NaN
        if np.any(known):
            a, b = i[known], j[known]
            sigma[known] = pair_distance_with_sigma(f.xy[a], cov[a], f.xy[b], cov[b])[1]
        # P(d_true < thr) = Phi((thr - d) / sigma) = prob_distance_below(d - thr, sigma, 0): one call for
        # per-pair thresholds; d - thr < 0 exactly when d < thr, so sigma = 0 gives the point decision.
        return sigma, prob_distance_below(dist - thr, sigma, 0.0)

    def _observations(self, f: FrameView, i, j, dist, thr, bad, hold, sigma, p) -> dict:
        """``{(lower id, higher id): Observation}`` of the pairs ``(i[m], j[m])`` (rows of ``f``);
        positions and extra fields are built only for the pairs whose change is reported."""
        d = self.config
        xy, cls = f.xy, f.cls
        zones = f.zone_of((xy[i] + xy[j]) / 2.0) if self.zones and len(i) else [None] * len(i)
        crit = d.critical_below_m
        sev0 = d.severity
        tid = f.tid_array()
        swap = tid[j] < tid[i]  # each key is (lower track id, higher track id)
        i, j = np.where(swap, j, i), np.where(swap, i, j)
        pairs = _Pairs(tid[i].tolist(), tid[j].tolist(), xy[i], xy[j], cls[i], cls[j], d.decision, dist, sigma, p)
        pos_of, extra_of = pairs.positions, pairs.extra
        obs = {}
        for m, (ta, tb, dd, t, zn, bd, hd) in enumerate(
            zip(pairs.ta, pairs.tb, dist.tolist(), thr.tolist(), zones, bad.tolist(), hold.tolist())
        ):
            key = (ta, tb)
            obs[key] = Observation(
                bd,
                dd,
                t,
                "critical" if crit is not None and dd < crit else sev0,
                hd,
                key,
                partial(pos_of, m),
                zn,
                partial(extra_of, m),
            )
        return obs

    def _batch(self, f: FrameView, i, j, dist, thr, bad, hold, sigma, p) -> PairBatch:
        """The pairs ``(i[m], j[m])`` (rows of ``f``) as a :class:`~.pairs.PairBatch`; its data columns
        are :data:`_COLUMNS` (metres; classes as indices into the rule's class names)."""
        d = self.config
        tid = f.tid_array()
        swap = tid[j] < tid[i]  # lower track id first
        i, j = np.where(swap, j, i), np.where(swap, i, j)
        data = np.empty((len(i), len(_COLUMNS)))
        data[:, 0], data[:, 1] = dist, thr
        data[:, 2:4], data[:, 4:6] = f.xy[i], f.xy[j]
        codes = f.class_codes(self._class_names)
        data[:, 6], data[:, 7] = codes[i], codes[j]
        data[:, 8], data[:, 9] = (np.nan, np.nan) if sigma is None else (sigma, p)
        data[:, 10] = sigma is not None
        sev = np.full(len(i), SEVERITY_CODE[d.severity], np.int8)
        if d.critical_below_m is not None:
            sev[dist < d.critical_below_m] = SEVERITY_CODE["critical"]
        return PairBatch(i, j, bad, hold, sev, data)

    def report_pairs(self, data: np.ndarray, lo: list, hi: list) -> tuple[list, list, list]:
        """Positions, zones and ``distance_violation`` fields of reported pairs (see :meth:`Rule.report_pairs`),
        as :meth:`_observations` builds them."""
        zones = zone_names(self.zones, (data[:, 2:4] + data[:, 4:6]) / 2.0) if self.zones else [None] * len(data)
        decision = self.config.decision
        classes = self._class_names_array[data[:, 6:8].astype(np.int64)].tolist()
        rows = data.tolist()
        positions = [{a: (r[2], r[3]), b: (r[4], r[5])} for r, a, b in zip(rows, lo, hi)]
        extras = [{"classes": tuple(c), "decision": decision} for c in classes]
        for r, extra in zip(rows, extras):
            if r[10]:  # the frame had covariances
                dd, s = r[0], r[8]
                known = math.isfinite(s)
                extra["distance_sigma_m"] = s if known else None
                extra["distance_interval_m"] = (max(dd - Z95 * s, 0.0), dd + Z95 * s) if known else None
                extra["confidence"] = r[9] if known else None
        return positions, zones, extras


class _Pairs:
    """One frame's observed pairs as arrays (M pairs): track ids ``ta``, ``tb`` (lists),
    positions ``xa``, ``xb`` ``(M, 2)`` metres, classes ``ca``, ``cb``, distances ``d`` and, with
    covariances, ``sigma`` (metres) and ``p`` (``P(d_true < threshold)``), NaN where unknown.
    :meth:`positions` and :meth:`extra` give the m-th pair's, for the changes reported."""

    __slots__ = ("ta", "tb", "xa", "xb", "ca", "cb", "decision", "d", "sigma", "p")

    def __init__(self, ta, tb, xa, xb, ca, cb, decision, d, sigma, p) -> None:
        self.ta, self.tb, self.xa, self.xb, self.ca, self.cb = ta, tb, xa, xb, ca, cb
        self.decision, self.d, self.sigma, self.p = decision, d, sigma, p

    def positions(self, m: int) -> tuple:
        """``((id a, (x, y)), (id b, (x, y)))`` metres."""
        return ((self.ta[m], pos(self.xa[m])), (self.tb[m], pos(self.xb[m])))

    def extra(self, m: int) -> dict:
        """The m-th pair's ``distance_violation`` fields (see the module docstring)."""
        out = {"classes": (str(self.ca[m]), str(self.cb[m])), "decision": self.decision}
        if self.sigma is not None:
            s = float(self.sigma[m])
            known = math.isfinite(s)
            d = float(self.d[m])
            out["distance_sigma_m"] = s if known else None
            out["distance_interval_m"] = (max(d - Z95 * s, 0.0), d + Z95 * s) if known else None
            out["confidence"] = float(self.p[m]) if known else None
        return out
