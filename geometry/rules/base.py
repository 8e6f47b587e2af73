"""What every rule implements (:class:`Rule`) and the per-frame view rules observe (:class:`FrameView`).

A rule is one file of this package: its configuration model (a
:class:`~vigil.geometry.rules.lifecycle.LifecycleConfig`), a :class:`Rule` subclass that
declares its ``name`` (the ``rule`` field of its changes and its key in ``RulesConfig``),
``event_type`` (the wire event it raises; its payload model is in
:mod:`vigil.alerts.payloads`), ``metric`` and whether its subjects are a pair of tracks or
a zone, and :meth:`Rule.observe`, the metric of one frame. The engine
(:mod:`vigil.geometry.rules.engine`) runs every rule through the same lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from vigil.geometry.metrics import QueueResult, queue_spacing
from vigil.geometry.zones import Zone

__all__ = ["Rule", "FrameView", "ZoneSpec", "pos"]


def pos(p) -> tuple[float, float]:
    """A ground position as a plain ``(x, y)`` float tuple (metres)."""
    return (float(p[0]), float(p[1]))


@dataclass(frozen=True)
class ZoneSpec:
    """A zone with its limits (built from a :class:`~vigil.geometry.rules.config.ZoneConfig`)."""

    zone: Zone
    config: Any  #: the zone's ZoneConfig (vigil.geometry.rules.config imports this module, not the reverse)
    capacity: int | None

    @property
    def name(self) -> str:
        return self.zone.name


class FrameView:
    """One frame as the rules see it: ``now`` (stream seconds), ``xy (N, 2)`` finite ground
    positions (metres), ``tids`` (N track ids, Python ints), ``cls (N,)`` class names
    (object array), the camera's zones, and ``zone_metrics`` (per-zone figures the rules add
    to). Per-frame results several rules need (who is inside a zone, a queue's gaps) are
    computed once and cached."""

    __slots__ = ("now", "xy", "tids", "cls", "zones", "zone_metrics", "_cache")

    def __init__(self, now: float, xy: np.ndarray, tids: list, cls: np.ndarray, zones: Sequence[ZoneSpec]) -> None:
        self.now, self.xy, self.tids, self.cls, self.zones = now, xy, tids, cls, zones
        self.zone_metrics: dict[str, dict] = {}
        self._cache: dict = {}

    def zone_of(self, pts: np.ndarray) -> list[str | None]:
        """The zone name of each point of ``pts (M, 2)`` metres (first listed zone wins), or None."""
        names: list[str | None] = [None] * len(pts)
        for s in reversed(self.zones):
            for k in np.flatnonzero(s.zone.contains(pts)):
                names[k] = s.name
        return names

    def of_classes(self, classes) -> np.ndarray:
        """``(N,)`` bool: rows whose class is one of ``classes``."""
        key = ("classes", tuple(classes))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = np.isin(self.cls, list(classes))
        return hit

    def inside(self, spec: ZoneSpec, classes) -> np.ndarray:
        """Row indices of the rows of ``classes`` inside ``spec``'s zone."""
        key = ("inside", spec.name, tuple(classes))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = np.flatnonzero(spec.zone.contains(self.xy) & self.of_classes(classes))
        return hit

    def queue(self, spec: ZoneSpec, classes) -> tuple[np.ndarray, QueueResult]:
        """``(rows, result)``: the rows of ``classes`` and the spacing along ``spec``'s queue line
        (indices in ``result`` are into ``rows``)."""
        key = ("queue", spec.name, tuple(classes))
        hit = self._cache.get(key)
        if hit is None:
            ql = spec.config.queue
            sel = np.flatnonzero(self.of_classes(classes))
            hit = self._cache[key] = (sel, queue_spacing(self.xy[sel], ql.line[0], ql.line[1], ql.corridor_m))
        return hit


class Rule:
    """One alarm rule (see module docstring). Subclasses set the class attributes and
    implement :meth:`observe`; ``config`` is the rule's own configuration model."""

    #: rule name: the ``rule`` of its changes, its key in ``RulesConfig``
    name: ClassVar[str]
    #: the field of ``RulesConfig`` holding its configuration (default: ``name``)
    config_field: ClassVar[str | None] = None
    #: the wire event type its changes become (payload model in vigil.alerts.payloads)
    event_type: ClassVar[str]
    #: the metric compared with the threshold (unit in its name)
    metric: ClassVar[str]
    #: False when a smaller metric is worse (distances, gaps)
    higher_is_worse: ClassVar[bool] = True
    #: True: the subjects are a pair of tracks (lost when either is unseen); False: a zone
    pair_subjects: ClassVar[bool] = False

    def __init__(self, config: Any, rules: Any, zones: Sequence[ZoneSpec]) -> None:
        """``config``: the rule's own model; ``rules``: the camera's whole ``RulesConfig``."""
        self.config, self.rules, self.zones = config, rules, zones

    @classmethod
    def config_of(cls, rules: Any):
        """The rule's own model inside ``rules`` (a ``RulesConfig``)."""
        return getattr(rules, cls.config_field or cls.name)

    @classmethod
    def applies(cls, config: Any, zones: Sequence[ZoneSpec]) -> bool:
        """Whether the rule runs for this camera (default: enabled in its config)."""
        return bool(config.enabled)

    @property
    def classes(self) -> set[str]:
        """Class names the rule looks at."""
        return set(self.config.classes)

    def observe(self, frame: FrameView) -> dict:
        """``{key: Observation}`` for this frame (keys: a pair of track ids, or ``(zone,)``)."""
        raise NotImplementedError
