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

__all__ = ["Rule", "FrameView", "ZoneSpec", "pos", "zone_names"]


def pos(p) -> tuple[float, float]:
    """A ground position as a plain ``(x, y)`` float tuple (metres)."""
    return (float(p[0]), float(p[1]))


def zone_names(zones: Sequence["ZoneSpec"], pts: np.ndarray) -> list[str | None]:
    """The zone name of each point of ``pts (M, 2)`` metres (the first of ``zones`` that holds it), or None."""
    names: list[str | None] = [None] * len(pts)
    for s in reversed(zones):
        for k in np.flatnonzero(s.zone.contains(pts)).tolist():
            names[k] = s.name
    return names


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
    (object array), ``cov`` (``(N, 2, 2)`` m^2 covariances of ``xy``, a NaN row where one is
    unknown; ``None`` when the frame has none at all: the ground stage is off), the camera's
    zones, and ``zone_metrics`` (per-zone figures the rules add to). Per-frame results several
    rules need (who is inside a zone, a queue's gaps) are computed once and cached; ``tid_array``
    (optional) is ``tids`` as an ``(N,)`` array, when the caller has it."""

    __slots__ = ("now", "xy", "tids", "cls", "cov", "zones", "zone_metrics", "_cache")

    def __init__(
        self,
        now: float,
        xy: np.ndarray,
        tids: list,
        cls: np.ndarray,
        zones: Sequence[ZoneSpec],
        cov: np.ndarray | None = None,
        tid_array: np.ndarray | None = None,
    ) -> None:
        self.now, self.xy, self.tids, self.cls, self.zones, self.cov = now, xy, tids, cls, zones, cov
        self.zone_metrics: dict[str, dict] = {}
        self._cache: dict = {} if tid_array is None else {"tid_array": tid_array}

    def tid_array(self) -> np.ndarray:
        """``(N,)`` the track ids as an array (built once, on first use)."""
        hit = self._cache.get("tid_array")
        if hit is None:
            hit = self._cache["tid_array"] = np.asarray(self.tids)
        return hit

    def row_of(self) -> dict:
        """``{track id: row}`` of this frame (built once, on first use)."""
        hit = self._cache.get("row_of")
        if hit is None:
            hit = self._cache["row_of"] = dict(zip(self.tids, range(len(self.tids))))
        return hit

    def zone_of(self, pts: np.ndarray) -> list[str | None]:
        """The zone name of each point of ``pts (M, 2)`` metres (first listed zone wins), or None."""
        return zone_names(self.zones, pts)

    def class_codes(self, names: Sequence[str]) -> np.ndarray:
        """``(N,)`` int64: the index in ``names`` of each row's class, -1 for another class (cached)."""
        key = ("class_codes", tuple(names))
        hit = self._cache.get(key)
        if hit is None:
            hit = np.full(len(self.cls), -1, np.int64)
            for k, name in enumerate(names):
                hit[self.cls == name] = k
            self._cache[key] = hit
        return hit

    def sorted_tids(self, rows: np.ndarray) -> tuple:
        """The track ids of ``rows`` (indices), sorted, as a tuple of Python values."""
        tid = self.tid_array()
        if tid.dtype == object:
            return tuple(sorted(self.tids[k] for k in rows))
        return tuple(np.sort(tid[rows]).tolist())

    def of_classes(self, classes) -> np.ndarray:
        """``(N,)`` bool: rows whose class is one of ``classes``."""
        key = ("classes", tuple(classes))
        hit = self._cache.get(key)
        if hit is None:
            names = list(classes)
            if len(names) <= 4:  # a comparison per name is cheaper than np.isin on an object array
                hit = np.zeros(len(self.cls), bool)
                for name in names:
                    hit |= self.cls == name
            else:
                hit = np.isin(self.cls, names)
            self._cache[key] = hit
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

    #: True when :meth:`measure` is implemented (the engine then asks it for the clearing values)
    measures_clear: ClassVar[bool] = False

    def measure(self, frame: FrameView, keys: list) -> dict:
        """``{key: Observation}`` (neither ``bad`` nor ``hold``) for ``keys``: open alarms that
        :meth:`observe` left out this frame although their subjects were seen (a pair farther
        apart than the hysteresis band), asked once per clear stretch, at its first frame. Their
        values are what cleared the alarm, reported by its end. Only called when
        :attr:`measures_clear`; a rule without it ends such an alarm with its last observed value."""
        return {}

    #: True when the rule also implements :meth:`observe_pairs`, :meth:`measure_pairs` and
    #: :meth:`report_pairs` (a pair rule): the engine then runs it through the array lifecycle
    #: (:class:`~vigil.geometry.rules.pairs.PairLifecycle`) instead of :meth:`observe`
    pair_arrays: ClassVar[bool] = False
    #: the columns of the rule's :class:`~vigil.geometry.rules.pairs.PairBatch` data (with pair_arrays)
    pair_columns: ClassVar[int] = 2

    def observe_pairs(self, frame: FrameView):
        """The :meth:`observe` of a pair rule as one ``PairBatch`` (:mod:`vigil.geometry.rules.pairs`)."""
        raise NotImplementedError

    def measure_pairs(self, frame: FrameView, lo: np.ndarray, hi: np.ndarray):
        """The :meth:`measure` of a pair rule as one ``PairBatch`` (neither ``bad`` nor ``hold``) for the
        pairs of frame rows ``lo[m]`` (lower track id), ``hi[m]``; pairs it cannot measure are left out."""
        raise NotImplementedError

    def report_pairs(self, data: np.ndarray, lo: list, hi: list) -> tuple[list, list, list]:
        """``(positions, zones, extras)``, lists of k, of k reported pairs from their stored ``PairBatch``
        data rows ``(k, pair_columns)`` and track ids ``lo``, ``hi`` (lists, lower id first): each pair's
        ``{track id: (x, y)}`` metres, zone name (or None) and the event type's own payload fields."""
        raise NotImplementedError
