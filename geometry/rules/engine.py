"""Rules engine: ground-plane metrics -> alarms with a lifecycle (start, update, end).

:class:`RulesEngine` takes one frame at a time (track ids, class names, ground positions in
metres) and returns :class:`~vigil.alarm.AlarmChange` records, each with its ``alarm_id``;
``vigil.alerts.events.event_from_change`` turns them into events. Geometry never imports
``vigil.edge`` or ``vigil.alerts``.

Rules (``rule`` field of a change, the metric it compares with its threshold), run in this
order, each in its own module of this package:

=============  ==================  ======================  ==========================================
rule           metric              event type              alarm while
=============  ==================  ======================  ==========================================
``distance``   ``distance_m``      ``distance_violation``  a pair is closer than its class-pair/zone threshold
``contact``    ``contact_s``       ``contact_time``        a pair's contact time in the window exceeds the limit
``occupancy``  ``people``          ``occupancy_limit``     a zone holds more people than its limit
``density``    ``density_per_m2``  ``density_limit``       a zone's people per m^2 exceed its limit
``queue``      ``min_spacing_m``   ``queue_spacing``       two neighbours on a queue line stand too close
``risk``       ``risk_level``      ``risk_level``          a zone's dynamic risk level exceeds ``alarm_level``
=============  ==================  ======================  ==========================================

The lifecycle (:mod:`.lifecycle`) is the same for every rule; a rule with ``pair_arrays`` (the
distance rule) runs it in arrays (:mod:`.pairs`: observations, starts, updates and ends of all
its pairs in numpy, Python objects only for the changes reported). Rows with a non-finite position
are dropped and counted in ``stats["dropped_nonfinite"]``. ``world_cov`` (optional, the ground
stage's ``(N, 2, 2)`` m^2 position covariances) gives the distance rule each pair's sigma and
confidence, and its ``decision: sure`` (:mod:`.distance`, ``docs/rules.md``). An open alarm a
rule left out of a frame although its subjects were seen is measured by the rule
(:meth:`~.base.Rule.measure`) so that its end reports the value that cleared it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from vigil.alarm import AlarmChange
from vigil.geometry.metrics import zone_capacity
from vigil.geometry.risk import HeatMap
from vigil.geometry.zones import ZoneError, check_zone_visible, make_zone

from .base import FrameView, Rule, ZoneSpec
from .config import RulesConfig, ZoneConfig
from .contact import ContactRule
from .density import DensityRule
from .distance import DistanceRule
from .lifecycle import Lifecycle
from .occupancy import OccupancyRule
from .pairs import PairLifecycle
from .queue import QueueRule
from .risk import RiskRule, risk_params

__all__ = ["RULES", "RulesEngine", "visible_ground_bounds"]

#: every rule, in the order the engine runs them (and reports changes of the same state)
RULES: tuple[type[Rule], ...] = (DistanceRule, ContactRule, OccupancyRule, DensityRule, QueueRule, RiskRule)

_STATE_ORDER = {"end": 0, "start": 1, "update": 2}


def visible_ground_bounds(
    camera, image_size: tuple[int, int] | None = None, max_range_m: float = 100.0
) -> tuple[float, float, float, float] | None:
    """Bounding box ``[x0, x1, y0, y1]`` (metres) of the ground seen by the camera (a pixel
    grid projected to the ground), clipped to ``max_range_m`` around the median point."""
    size = image_size or getattr(camera, "image_size", None)
    if size is None:
        return None
    w, h = size
    u, v = np.meshgrid(np.linspace(0, w, 41), np.linspace(0, h, 41))
    g = camera.image_to_ground(np.c_[u.ravel(), v.ravel()])
    g = g[np.all(np.isfinite(g), axis=1)]
    if len(g) < 3:
        return None
    m = np.median(g, axis=0)
    g = g[np.all(np.abs(g - m) <= max_range_m, axis=1)]
    x0, y0 = np.floor(g.min(axis=0))
    x1, y1 = np.ceil(g.max(axis=0))
    return (float(x0), float(x1), float(y0), float(y1))


class RulesEngine:
    """All rules of one camera (see module docstring).

    ``zones``: :class:`ZoneConfig` models; ``camera`` (optional): the camera model, to check
    that at least half of every zone's area lies on the ground the camera sees
    (:func:`~vigil.geometry.zones.check_zone_visible`; :class:`ZoneError` otherwise).
    ``rules`` maps each active rule's name to its :class:`Rule`, ``lifecycles`` to its
    :class:`Lifecycle` (a pair rule's :class:`~.pairs.PairLifecycle`, the same lifecycle in
    arrays; ``pair_arrays=False``: the generic :class:`Lifecycle` for every rule, the reference
    the array one is tested against).
    """

    def __init__(
        self,
        rules: RulesConfig | None = None,
        zones: Sequence[ZoneConfig] = (),
        camera=None,
        image_size: tuple[int, int] | None = None,
        *,
        pair_arrays: bool = True,
    ) -> None:
        self.config = cfg = rules or RulesConfig()
        self.zones: list[ZoneSpec] = []
        for zc in zones:
            z = make_zone(zc.name, zc.polygon)
            if camera is not None:
                check_zone_visible(z, camera, image_size)
            cap = (
                zc.max_people
                if zc.max_people is not None
                else (zone_capacity(z.area_m2, zc.m2_per_person) if zc.m2_per_person else None)
            )
            self.zones.append(ZoneSpec(z, zc, cap))
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ZoneError(f"duplicate zone names: {sorted({n for n in names if names.count(n) > 1})}")

        self.rules: dict[str, Rule] = {}
        self.lifecycles: dict[str, Lifecycle | PairLifecycle] = {}
        for rule_cls in RULES:
            rc = rule_cls.config_of(cfg)
            if not rule_cls.applies(rc, self.zones):
                continue
            rule = self.rules[rule_cls.name] = rule_cls(rc, cfg, self.zones)
            kw = {"event_type": rule_cls.event_type, "higher_is_worse": rule_cls.higher_is_worse}
            if rule_cls.pair_arrays and pair_arrays:
                lc = PairLifecycle.from_config(
                    rc, rule_cls.name, rule_cls.metric, rule.report_pairs, rule_cls.pair_columns, **kw
                )
            else:
                lc = Lifecycle.from_config(rc, rule_cls.name, rule_cls.metric, **kw)
            self.lifecycles[rule_cls.name] = lc
        self.risk_params = risk_params(cfg.risk)
        self.heatmap: HeatMap | None = None
        h = cfg.heatmap
        if h.enabled:
            bounds = h.bounds
            if bounds is None and self.zones:
                b = np.array([s.zone.polygon.bounds for s in self.zones])
                bounds = (b[:, 0].min() - 1, b[:, 2].max() + 1, b[:, 1].min() - 1, b[:, 3].max() + 1)
            if bounds is None and camera is not None:
                bounds = visible_ground_bounds(camera, image_size)
            if bounds is None:
                raise ValueError("rules.heatmap: set bounds (no zones and no camera image size to derive them from)")
            self.heatmap = HeatMap(bounds, h.cell_m, h.decay_tau_s, self.risk_params)
        self.stats = {"frames": 0, "dropped_nonfinite": 0}
        #: latest per-zone metrics:
        #: {zone: {"people", "density_per_m2", "capacity", "area_m2", "min_queue_gap_m", "risk_level"}}
        self.zone_metrics: dict[str, dict] = {}
        self._now: float | None = None

    @property
    def classes(self) -> set[str]:
        """Every class name some active rule (or the heat map) looks at."""
        out: set[str] = set()
        for rule in self.rules.values():
            out |= rule.classes
        if self.heatmap is not None:
            out |= set(self.config.risk.classes)
        return out

    def open_alarms(self, rule: str) -> list:
        lc = self.lifecycles.get(rule)
        return lc.open_keys if lc else []

    # ------------------------------------------------------------------------------------
    def update(self, timestamp_s: float, ids, classes, world_xy, world_cov=None) -> list[AlarmChange]:
        """One frame: ``ids (N,)`` unique track ids, ``classes (N,)`` class names,
        ``world_xy (N, 2)`` metres, ``world_cov`` ``(N, 2, 2)`` m^2 covariances of the positions
        (optional; a row with a non-finite entry counts as unknown; ``None``: none known).
        Returns ends, then starts, then updates."""
        now = float(timestamp_s)
        if not math.isfinite(now):
            raise ValueError(f"timestamp_s: must be finite, got {timestamp_s!r}")
        if self._now is not None and now < self._now:
            raise ValueError(f"timestamp_s: went backwards ({now} < {self._now})")
        self._now = now
        xy = np.asarray(world_xy, np.float64)
        xy = xy.reshape(-1, 2) if xy.size or xy.ndim != 2 else xy
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise ValueError(f"world_xy: expected shape (N, 2), got {xy.shape}")
        ids_a = np.asarray(ids).reshape(-1)
        cls = np.asarray(classes, dtype=object).reshape(-1)
        if len(ids_a) != len(xy) or len(cls) != len(xy):
            raise ValueError(f"ids and classes: expected {len(xy)} entries, got {len(ids_a)} and {len(cls)}")
        if len(np.unique(ids_a)) != len(ids_a):
            raise ValueError("ids: duplicate track ids in one frame")
        cov = None
        if world_cov is not None:
            cov = np.asarray(world_cov, np.float64)
            if cov.shape != (len(xy), 2, 2):
                raise ValueError(f"world_cov: expected shape ({len(xy)}, 2, 2), got {cov.shape}")
        finite = np.isfinite(xy[:, 0]) & np.isfinite(xy[:, 1])  # (column-wise: reducing (N, 2) rows is slow)
        dropped = len(xy) - int(np.count_nonzero(finite))
        self.stats["frames"] += 1
        self.stats["dropped_nonfinite"] += dropped
        if dropped:
            xy, ids_a, cls = xy[finite], ids_a[finite], cls[finite]
            cov = None if cov is None else cov[finite]
        if cov is not None and not np.isfinite(cov.sum()):  # some entry is not finite
            unknown = ~np.all(np.isfinite(cov), axis=(1, 2))
            cov = cov.copy() if not dropped else cov  # never the caller's array
            cov[unknown] = np.nan
        tids = ids_a.tolist()
        present: set | None = None
        pair_present = lambda key: key[0] in present and key[1] in present  # noqa: E731
        zone_present = lambda key: True  # noqa: E731

        frame = FrameView(now, xy, tids, cls, self.zones, cov, tid_array=ids_a if ids_a.dtype != object else None)
        self._zone_metrics(frame)
        self.zone_metrics = frame.zone_metrics
        changes: list[AlarmChange] = []
        for name, rule in self.rules.items():
            lc = self.lifecycles[name]
            if isinstance(lc, PairLifecycle):
                changes += self._pair_step(lc, rule, frame)
                continue
            obs = rule.observe(frame)
            if rule.pair_subjects and present is None:
                present = set(tids)
            seen = pair_present if rule.pair_subjects else zone_present
            if rule.measures_clear:
                missing = lc.unobserved(obs, seen)
                if missing:
                    obs.update(rule.measure(frame, missing))
            changes += lc.step(now, obs, seen)
        if self.heatmap is not None:
            self.heatmap.update(now, xy[frame.of_classes(self.config.risk.classes)])
        changes.sort(key=lambda c: _STATE_ORDER[c.state])  # stable: rule order, then key order
        return changes

    @staticmethod
    def _pair_step(lc: PairLifecycle, rule: Rule, frame: FrameView) -> list[AlarmChange]:
        """One frame of a pair rule in arrays: observe, measure the open alarms left out, step."""
        batch = lc.keyed(frame, rule.observe_pairs(frame))
        measured = None
        if rule.measures_clear:
            lo, hi = lc.unobserved(batch, frame)
            if len(lo):
                measured = lc.keyed(frame, rule.measure_pairs(frame, lo, hi))
        return lc.step(frame.now, batch, frame, measured)

    def _zone_metrics(self, frame: FrameView) -> None:
        """People, density, capacity, area (and the queue's smallest gap) of every zone."""
        zc, qc = self.config.zones, self.config.queue
        for s in self.zones:
            n = len(frame.inside(s, zc.classes))
            m = {"people": n, "density_per_m2": n / s.zone.area_m2, "capacity": s.capacity, "area_m2": s.zone.area_m2}
            if s.config.queue is not None:
                res = frame.queue(s, qc.classes)[1]
                m["min_queue_gap_m"] = res.min_gap_m if len(res.gaps_m) else None
            frame.zone_metrics[s.name] = m

    def flush(self, timestamp_s: float | None = None) -> list[AlarmChange]:
        """End every open alarm (end of stream)."""
        now = self._now if timestamp_s is None else float(timestamp_s)
        now = 0.0 if now is None else now
        out = []
        for lc in self.lifecycles.values():
            out += lc.flush(now)
        return out
