"""The ``density`` rule: a zone's people per m^2 exceed its ``max_density_per_m2``.

Metric ``density_per_m2`` (people per square metre); event ``density_limit``. Configured,
with the ``occupancy`` rule, by ``rules.zones`` (:class:`~.occupancy.ZoneRuleConfig`). Keys:
``(zone name,)``.
"""

from __future__ import annotations

from typing import Sequence

from .base import FrameView, Rule, ZoneSpec
from .lifecycle import Observation
from .occupancy import ZoneRuleConfig

__all__ = ["DensityRule"]


class DensityRule(Rule):
    name = "density"
    config_field = "zones"
    event_type = "density_limit"
    metric = "density_per_m2"

    @classmethod
    def applies(cls, config: ZoneRuleConfig, zones: Sequence[ZoneSpec]) -> bool:
        return config.enabled and any(s.config.max_density_per_m2 for s in zones)

    def observe(self, f: FrameView) -> dict:
        zc = self.config
        xy, tids = f.xy, f.tids
        obs = {}
        for s in self.zones:
            limit = s.config.max_density_per_m2
            if not limit:
                continue
            inside = f.inside(s, zc.classes)
            n = len(inside)
            dens = n / s.zone.area_m2
            obs[(s.name,)] = Observation(
                bad=dens > limit,
                value=dens,
                threshold=limit,
                severity=zc.severity,
                tracks=f.sorted_tids(inside),
                positions=lambda inside=inside: {tids[k]: xy[k] for k in inside},
                zone=s.name,
                extra={"people": n, "area_m2": round(s.zone.area_m2, 3)},
            )
        return obs
