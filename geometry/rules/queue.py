"""The ``queue`` rule: two neighbours on a zone's queue line stand too close.

Metric ``min_spacing_m`` (metres, smaller is worse); event ``queue_spacing``. People within
``corridor_m`` of the line are ordered along it (:func:`~vigil.geometry.metrics.queue_spacing`);
the alarm's subjects are the people of every too-close neighbour pair. Keys: ``(zone name,)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from pydantic import Field, field_validator

from .base import FrameView, Rule, ZoneSpec, pos
from .lifecycle import LifecycleConfig, Observation, StrictConfig

__all__ = ["QueueRuleConfig", "QueueLineConfig", "QueueRule"]


class QueueRuleConfig(LifecycleConfig):
    """Spacing alarms along the queue lines of zones (see ZoneConfig.queue)."""

    enabled: bool = Field(True, description="Raise queue_spacing alarms for zones with a queue line")
    classes: list[str] = Field(
        default_factory=lambda: ["person"], min_length=1, description="Detector class names queueing"
    )


class QueueLineConfig(StrictConfig):
    line: tuple[tuple[float, float], tuple[float, float]] = Field(
        description="Queue axis [[x, y], [x, y]] from the counter outwards (metres)"
    )
    corridor_m: float = Field(
        0.75, gt=0, le=10, description="People within this distance of the axis are in the queue (metres)"
    )
    min_spacing_m: float = Field(
        1.0, gt=0, le=20, description="Alarm when two neighbours in the queue are closer than this (metres)"
    )

    @field_validator("line")
    @classmethod
    def _distinct(cls, v):
        if v[0] == v[1]:
            raise ValueError("queue line start and end must differ")
        return v


class QueueRule(Rule):
    name = "queue"
    event_type = "queue_spacing"
    metric = "min_spacing_m"
    higher_is_worse = False

    @classmethod
    def applies(cls, config: QueueRuleConfig, zones: Sequence[ZoneSpec]) -> bool:
        return config.enabled and any(s.config.queue is not None for s in zones)

    def observe(self, f: FrameView) -> dict:
        q = self.config
        xy, tids = f.xy, f.tids
        obs = {}
        for s in self.zones:
            ql = s.config.queue
            if ql is None:
                continue
            qsel, res = f.queue(s, q.classes)
            if not len(res.gaps_m):
                continue
            close = np.flatnonzero(res.gaps_m < ql.min_spacing_m)
            members = sorted({int(k) for g in close for k in (res.order[g], res.order[g + 1])})
            obs[(s.name,)] = Observation(
                bad=len(close) > 0,
                value=res.min_gap_m,
                threshold=ql.min_spacing_m,
                severity=q.severity,
                tracks=tuple(sorted(tids[qsel[k]] for k in members)),
                positions={tids[qsel[k]]: pos(xy[qsel[k]]) for k in members},
                zone=s.name,
                extra={"queue_length": int(len(res.order)), "gaps_m": [round(float(g), 3) for g in res.gaps_m]},
            )
        return obs
