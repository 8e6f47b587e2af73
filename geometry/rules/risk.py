"""The ``risk`` rule: a zone's dynamic risk level (docs/risk.md) rises above ``alarm_level``.

Metric ``risk_level`` (dimensionless, 0-1); event ``risk_level``. One
:class:`~vigil.geometry.risk.RiskModel` for the whole view (zone ``None``, key ``("*",)``)
and one per zone (key ``(zone name,)``); severity ``critical`` from ``critical_level``. The
alarm clears only below ``alarm_level - hysteresis``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from pydantic import Field

from vigil.geometry.risk import RiskModel, RiskParams, proximity

from .base import FrameView, Rule, ZoneSpec, pos
from .lifecycle import LifecycleConfig, Observation

__all__ = ["RiskRuleConfig", "RiskRule", "risk_params"]


class RiskRuleConfig(LifecycleConfig):
    """Dynamic risk level per zone (docs/risk.md)."""

    enabled: bool = Field(
        False, description="Compute the risk level per zone (and for the whole scene) and raise risk_level alarms"
    )
    classes: list[str] = Field(
        default_factory=lambda: ["person"], min_length=1, description="Detector class names taking part"
    )
    sigma_m: float = Field(1.0, gt=0, le=10, description="Proximity kernel width (metres)")
    cutoff_m: float = Field(3.0, gt=0, le=30, description="Pairs farther apart than this add no risk (metres)")
    tau_s: float = Field(
        120.0, gt=0, le=86400, description="Exposure memory: time constant of rise and decay (seconds)"
    )
    e_ref: float = Field(
        60.0,
        gt=0,
        le=1e6,
        description="Exposure that gives risk level 0.63 (pair-seconds at contact)",
        json_schema_extra={"unit": "pair-seconds"},
    )
    alarm_level: float = Field(0.5, gt=0, lt=1, description="Alarm while the risk level is above this")
    critical_level: float = Field(0.8, gt=0, lt=1, description="Severity critical while the risk level is above this")
    hysteresis: float = Field(0.05, ge=0, lt=1, description="The alarm clears only below alarm_level - hysteresis")
    min_duration_s: float = Field(
        0.0,
        ge=0,
        le=600,
        description="The level must stay above alarm_level this long before the alarm starts (seconds)",
    )


def risk_params(cfg: RiskRuleConfig) -> RiskParams:
    """The proximity/exposure parameters of ``cfg`` (also used by the heat map)."""
    return RiskParams(sigma_m=cfg.sigma_m, cutoff_m=cfg.cutoff_m, tau_s=cfg.tau_s, e_ref=cfg.e_ref)


class RiskRule(Rule):
    name = "risk"
    event_type = "risk_level"
    metric = "risk_level"

    def __init__(self, config: RiskRuleConfig, rules, zones: Sequence[ZoneSpec]) -> None:
        if config.critical_level < config.alarm_level:
            raise ValueError(
                f"risk.critical_level ({config.critical_level}) must be >= alarm_level ({config.alarm_level})"
            )
        super().__init__(config, rules, zones)
        self.params = risk_params(config)
        self.models: dict[str | None, RiskModel] = {None: RiskModel(self.params)} | {
            s.name: RiskModel(self.params) for s in zones
        }
        self._zone = {s.name: s for s in zones}

    def observe(self, f: FrameView) -> dict:
        r = self.config
        xy, tids = f.xy, f.tids
        sel = np.flatnonzero(f.of_classes(r.classes))
        obs = {}
        for name, model in self.models.items():
            idx = sel if name is None else sel[self._zone[name].zone.contains(xy[sel])]
            p, per = proximity(xy[idx], self.params)
            level = model.update(f.now, p)
            if name is not None:
                f.zone_metrics.setdefault(name, {})["risk_level"] = level
            involved = [k for k, w in zip(idx, per) if w > 0]
            obs[(name or "*",)] = Observation(
                bad=level > r.alarm_level,
                hold=level > r.alarm_level - r.hysteresis,
                value=level,
                threshold=r.alarm_level,
                severity="critical" if level >= r.critical_level else r.severity,
                tracks=tuple(sorted(tids[k] for k in involved)),
                positions={tids[k]: pos(xy[k]) for k in involved},
                zone=name,
                extra={"exposure": round(model.exposure, 3), "proximity": round(p, 4)},
            )
        return obs
