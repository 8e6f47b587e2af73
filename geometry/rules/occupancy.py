"""The ``occupancy`` rule: a zone holds more people than its capacity.

Metric ``people`` (a count); event ``occupancy_limit``. A zone's capacity is its
``max_people``, else ``floor(area / m2_per_person)``; zones with neither are not checked.
Configured, with the ``density`` rule, by ``rules.zones`` (:class:`ZoneRuleConfig`). Keys:
``(zone name,)``.
"""

from __future__ import annotations

from typing import Sequence

from pydantic import Field

from .base import FrameView, Rule, ZoneSpec
from .lifecycle import LifecycleConfig, Observation

__all__ = ["ZoneRuleConfig", "OccupancyRule"]


class ZoneRuleConfig(LifecycleConfig):
    """Occupancy and density alarms for zones that set a limit (see ZoneConfig)."""

    enabled: bool = Field(True, description="Raise occupancy/density alarms for zones with limits")
    classes: list[str] = Field(
        default_factory=lambda: ["person"], min_length=1, description="Detector class names counted as people"
    )
    min_duration_s: float = Field(
        2.0, ge=0, le=600, description="The limit must be exceeded this long before the alarm starts (seconds)"
    )
    end_after_s: float = Field(
        2.0, ge=0, le=600, description="An open alarm ends once the zone has been within its limit this long (seconds)"
    )


class OccupancyRule(Rule):
    name = "occupancy"
    config_field = "zones"
    event_type = "occupancy_limit"
    metric = "people"

    @classmethod
    def applies(cls, config: ZoneRuleConfig, zones: Sequence[ZoneSpec]) -> bool:
        return config.enabled and any(s.capacity is not None for s in zones)

    def observe(self, f: FrameView) -> dict:
        zc = self.config
        xy, tids = f.xy, f.tids
        obs = {}
        for s in self.zones:
            if s.capacity is None:
                continue
            inside = f.inside(s, zc.classes)
            obs[(s.name,)] = Observation(
                bad=len(inside) > s.capacity,
                value=float(len(inside)),
                threshold=float(s.capacity),
                severity=zc.severity,
                tracks=f.sorted_tids(inside),
                positions=lambda inside=inside: {tids[k]: xy[k] for k in inside},
                zone=s.name,
                extra={"area_m2": round(s.zone.area_m2, 3)},
            )
        return obs
