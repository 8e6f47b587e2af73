"""The ``distance`` rule: two tracks closer than their class-pair (or zone) threshold.

Metric ``distance_m`` (metres, smaller is worse); event ``distance_violation``. An open alarm
stays open while the pair is closer than ``threshold + hysteresis_m``; severity ``critical``
while closer than ``critical_below_m``. Keys: ``(lower track id, higher track id)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from pydantic import Field

from vigil.geometry.metrics import PairThresholds, pair_violations

from .base import FrameView, Rule, ZoneSpec
from .lifecycle import LifecycleConfig, Observation, StrictConfig

__all__ = ["PairThresholdConfig", "DistanceRuleConfig", "DistanceRule"]


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
        description="A violation clears only once the pair is farther than threshold + hysteresis (metres)",
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

    def __init__(self, config: DistanceRuleConfig, rules, zones: Sequence[ZoneSpec]) -> None:
        super().__init__(config, rules, zones)
        self.thresholds = PairThresholds(
            config.by_pair(), [(s.zone, s.config.distance_threshold_m) for s in zones if s.config.distance_threshold_m]
        )

    @property
    def classes(self) -> set[str]:
        return set(self.thresholds.classes)

    def observe(self, f: FrameView) -> dict:
        d = self.config
        xy, cls = f.xy, f.cls
        i, j, dist, thr = pair_violations(xy, cls, self.thresholds, margin_m=d.hysteresis_m)
        zones = f.zone_of((xy[i] + xy[j]) / 2.0) if self.zones and len(i) else [None] * len(i)
        crit = d.critical_below_m
        sev0 = d.severity
        pts = xy.tolist()
        names = cls.tolist()
        tid = np.asarray(f.tids)
        swap = tid[j] < tid[i]  # each key is (lower track id, higher track id)
        i, j = np.where(swap, j, i), np.where(swap, i, j)
        ta_all, tb_all = tid[i].tolist(), tid[j].tolist()
        obs = {}
        for a, b, ta, tb, dd, t, zn in zip(i.tolist(), j.tolist(), ta_all, tb_all, dist.tolist(), thr.tolist(), zones):
            obs[(ta, tb)] = Observation(
                dd < t,
                dd,
                t,
                "critical" if crit is not None and dd < crit else sev0,
                dd >= t,
                (ta, tb),
                ((ta, pts[a]), (tb, pts[b])),
                zn,
                (("classes", (names[a], names[b])),),
            )
        return obs
