"""The ``contact`` rule: a pair's contact time within a sliding window exceeds the limit.

Metric ``contact_s`` (seconds); event ``contact_time``. Contact time accrues while the pair is
closer than ``threshold_m`` (:class:`~vigil.geometry.metrics.ContactTimer`). Keys:
``(lower track id, higher track id)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from pydantic import Field, model_validator

from vigil.geometry.metrics import ContactTimer, pairs_within

from .base import FrameView, Rule, ZoneSpec, pos
from .lifecycle import LifecycleConfig, Observation

__all__ = ["ContactRuleConfig", "ContactRule"]


class ContactRuleConfig(LifecycleConfig):
    """Contact time: seconds a pair spends under the threshold within a time window."""

    enabled: bool = Field(False, description="Raise contact_time alarms")
    classes: list[str] = Field(
        default_factory=lambda: ["person"], min_length=1, description="Detector class names the rule applies to"
    )
    threshold_m: float = Field(1.0, gt=0, le=20, description="A pair is in contact while closer than this (metres)")
    window_s: float = Field(
        900.0, gt=0, le=86400, description="Contact time is summed over this sliding window (seconds)"
    )
    limit_s: float = Field(
        60.0, gt=0, le=86400, description="Alarm once a pair's contact time within the window exceeds this (seconds)"
    )
    max_gap_s: float = Field(
        2.0, gt=0, le=60, description="Frames further apart than this do not accrue contact time (seconds)"
    )
    min_duration_s: float = Field(
        0.0, ge=0, le=600, description="The condition must hold this long before the alarm starts (seconds)"
    )
    end_after_s: float = Field(
        5.0,
        ge=0,
        le=600,
        description="An open alarm ends once the pair has been under the limit (or lost) this long (seconds)",
    )

    @model_validator(mode="after")
    def _limit_within_window(self) -> "ContactRuleConfig":
        if self.limit_s > self.window_s:
            raise ValueError(
                f"limit_s ({self.limit_s}) must not exceed window_s ({self.window_s}): the alarm could never start"
            )
        return self


class ContactRule(Rule):
    name = "contact"
    event_type = "contact_time"
    metric = "contact_s"
    pair_subjects = True

    def __init__(self, config: ContactRuleConfig, rules, zones: Sequence[ZoneSpec]) -> None:
        super().__init__(config, rules, zones)
        self.timer = ContactTimer(config.window_s, config.max_gap_s)

    def observe(self, f: FrameView) -> dict:
        c = self.config
        xy, tids = f.xy, f.tids
        sel = np.flatnonzero(f.of_classes(c.classes))
        i, j, _ = pairs_within(xy[sel], c.threshold_m)
        close = set()
        for a, b in zip(sel[i], sel[j]):
            close.add(tuple(sorted((tids[a], tids[b]))))
        totals = self.timer.update(f.now, close)
        index = {t: k for k, t in enumerate(tids)}
        obs = {}
        for key, total in totals.items():
            ka, kb = index.get(key[0]), index.get(key[1])
            if ka is None or kb is None:
                continue
            zn = f.zone_of((xy[[ka]] + xy[[kb]]) / 2.0)[0] if self.zones else None
            obs[key] = Observation(
                bad=total > c.limit_s,
                value=float(total),
                threshold=float(c.limit_s),
                severity=c.severity,
                tracks=key,
                positions={key[0]: pos(xy[ka]), key[1]: pos(xy[kb])},
                zone=zn,
                extra={
                    "window_s": c.window_s,
                    "distance_m": float(np.linalg.norm(xy[ka] - xy[kb])),
                    "contact_threshold_m": c.threshold_m,
                },
            )
        return obs
