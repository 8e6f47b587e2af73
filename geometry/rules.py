"""Rules engine: ground-plane metrics -> alarms with a lifecycle (start, update, end).

:class:`RulesEngine` takes one frame at a time (track ids, class names, ground positions in
metres) and returns plain :class:`RuleChange` records; the edge worker turns them into
events. Geometry never imports ``vigil.edge`` or ``vigil.alerts``.

Rules (``rule`` field of a change, the metric it compares with its threshold):

=============  ==================  ================================================
rule           metric              alarm while
=============  ==================  ================================================
``distance``   ``distance_m``      a pair is closer than its class-pair/zone threshold
``contact``    ``contact_s``       a pair's contact time in the window exceeds the limit
``occupancy``  ``people``          a zone holds more people than its limit
``density``    ``density_per_m2``  a zone's people per m^2 exceed its limit
``queue``      ``min_spacing_m``   two neighbours on a queue line stand too close
``risk``       ``risk_level``      a zone's dynamic risk level exceeds ``alarm_level``
=============  ==================  ================================================

Lifecycle (per alarm key: a pair of tracks, or a zone), the same for every rule:

- the condition must hold for ``min_duration_s`` before ``start`` (a candidate is dropped
  as soon as the condition is seen clear);
- an open alarm stays open while the metric is beyond the threshold *or inside the
  hysteresis band* (distance: ``< threshold + hysteresis_m``; risk: ``> alarm_level -
  hysteresis``); it ends (``reason="clear"``) once clear for ``end_after_s``, or
  (``reason="lost"``) when its tracks have not been seen for ``end_after_s``;
- after an end, the same key cannot start again for ``cooldown_s``;
- ``update`` at most every ``update_interval_s`` (if set) and whenever the severity changes.

Rows with a non-finite position are dropped and counted in ``stats["dropped_nonfinite"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Hashable, Literal, Sequence

import numpy as np

from vigil.geometry.metrics import (
    ContactTimer,
    PairThresholds,
    pair_violations,
    pairs_within,
    queue_spacing,
    zone_capacity,
)
from vigil.geometry.risk import HeatMap, RiskModel, RiskParams, proximity
from vigil.geometry.rules_config import RulesConfig, ZoneConfig
from vigil.geometry.zones import Zone, ZoneError, check_zone_visible, make_zone

__all__ = ["RuleChange", "Observation", "Lifecycle", "RulesEngine", "ZoneSpec", "visible_ground_bounds"]

State = Literal["start", "update", "end"]
_STATE_ORDER = {"end": 0, "start": 1, "update": 2}


@dataclass(frozen=True)
class RuleChange:
    """One step of an alarm's lifecycle.

    ``tracks`` and ``positions`` (track id -> ``(x, y)`` metres) are the subjects;
    ``value`` is the latest metric, ``worst`` the most extreme since the start;
    ``duration_s`` runs from ``started_at`` (when the condition first held) to the last time
    it was seen holding.
    """

    rule: str
    state: State
    key: tuple
    metric: str
    value: float
    threshold: float
    severity: str
    started_at: float
    duration_s: float
    timestamp_s: float
    worst: float
    tracks: tuple = ()
    positions: dict = field(default_factory=dict)
    zone: str | None = None
    reason: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def pair(self) -> tuple | None:
        """The two tracks of a pair rule (``distance``, ``contact``), else None."""
        return self.tracks if self.rule in ("distance", "contact") else None


def _KEY_ORDER(change: "RuleChange"):
    return change.key


class Observation:
    """A key's metric in one frame. ``bad``: beyond the threshold; ``hold``: not beyond it
    but inside the hysteresis band (an open alarm stays open, a new one does not start).
    ``positions`` and ``extra`` may be mappings or sequences of ``(key, value)`` pairs
    (turned into dicts only when a change is reported: cheap for thousands of pairs)."""

    __slots__ = ("bad", "value", "threshold", "severity", "hold", "tracks", "positions", "zone", "extra")

    def __init__(
        self,
        bad: bool,
        value: float,
        threshold: float,
        severity: str,
        hold: bool = False,
        tracks: tuple = (),
        positions=(),
        zone: str | None = None,
        extra=(),
    ) -> None:
        self.bad, self.value, self.threshold, self.severity, self.hold = bad, value, threshold, severity, hold
        self.tracks, self.positions, self.zone, self.extra = tracks, positions, zone, extra


@dataclass
class _Alarm:
    started_at: float
    last_bad: float
    last_seen: float
    last_reported: float
    obs: Observation
    worst: float
    clear_since: float | None = None


class Lifecycle:
    """The alarm lifecycle of one rule (see module docstring)."""

    def __init__(
        self,
        rule: str,
        metric: str,
        *,
        min_duration_s: float = 0.0,
        end_after_s: float = 0.0,
        cooldown_s: float = 0.0,
        update_interval_s: float | None = None,
        higher_is_worse: bool = True,
    ) -> None:
        for name, v in (("min_duration_s", min_duration_s), ("end_after_s", end_after_s), ("cooldown_s", cooldown_s)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{rule}.{name}: must be a finite number >= 0, got {v!r}")
        if update_interval_s is not None and not (math.isfinite(update_interval_s) and update_interval_s > 0):
            raise ValueError(f"{rule}.update_interval_s: must be > 0, got {update_interval_s!r}")
        self.rule, self.metric = rule, metric
        self.min_duration_s, self.end_after_s, self.cooldown_s = (
            float(min_duration_s),
            float(end_after_s),
            float(cooldown_s),
        )
        self.update_interval_s = update_interval_s
        self.higher_is_worse = higher_is_worse
        self._pending: dict[Hashable, tuple[float, float]] = {}  # key -> (since, last seen bad)
        self._open: dict[Hashable, _Alarm] = {}
        self._ended: dict[Hashable, float] = {}

    @property
    def open_keys(self) -> list:
        return sorted(self._open)

    def _worse(self, a: float, b: float) -> float:
        return max(a, b) if self.higher_is_worse else min(a, b)

    def _change(self, state: State, key, rec: _Alarm, now: float, reason: str | None = None) -> RuleChange:
        o = rec.obs
        return RuleChange(
            rule=self.rule,
            state=state,
            key=key,
            metric=self.metric,
            value=float(o.value),
            threshold=float(o.threshold),
            severity=o.severity,
            started_at=rec.started_at,
            duration_s=max(0.0, rec.last_bad - rec.started_at),
            timestamp_s=now,
            worst=float(rec.worst),
            tracks=tuple(o.tracks),
            positions={k: _pos(v) for k, v in dict(o.positions() if callable(o.positions) else o.positions).items()},
            zone=o.zone,
            reason=reason,
            extra=dict(o.extra),
        )

    def step(self, now: float, obs: dict, present: Callable[[Hashable], bool] = lambda key: False) -> list[RuleChange]:
        """Feed one frame's observations; keys missing from ``obs`` are *clear* if
        ``present(key)`` (their subjects were seen) and *lost* otherwise."""
        ends, starts, updates = [], [], []
        # Keys are visited in dict order and the changes sorted by key at the end: the same
        # output as visiting sorted keys, without sorting every open alarm each frame.
        for key in list(self._open):
            rec = self._open[key]
            o = obs.get(key)
            if o is None and not present(key):
                if now - rec.last_seen >= self.end_after_s:
                    ends.append(self._change("end", key, rec, now, "lost"))
                    del self._open[key]
                    self._ended[key] = now
                continue
            rec.last_seen = now
            if o is not None:
                prev_sev = rec.obs.severity
                rec.obs = o
                rec.worst = self._worse(rec.worst, o.value)
            if o is not None and (o.bad or o.hold):
                rec.clear_since = None
                if o.bad:
                    rec.last_bad = now
                if o.severity != prev_sev or (
                    self.update_interval_s is not None and now - rec.last_reported >= self.update_interval_s
                ):
                    rec.last_reported = now
                    updates.append(self._change("update", key, rec, now))
                continue
            if rec.clear_since is None:
                rec.clear_since = now
            if now - rec.clear_since >= self.end_after_s:
                ends.append(self._change("end", key, rec, now, "clear"))
                del self._open[key]
                self._ended[key] = now

        for key in list(self._pending):
            o = obs.get(key)
            since, seen = self._pending[key]
            if o is not None:
                if not o.bad:
                    del self._pending[key]
            elif present(key) or now - seen > self.end_after_s:
                del self._pending[key]
        for key in [k for k, o in obs.items() if o.bad and k not in self._open]:
            o = obs[key]
            since, _ = self._pending.get(key, (now, now))
            self._pending[key] = (since, now)
            ended = self._ended.get(key)
            if ended is not None and now - ended < self.cooldown_s:
                continue
            if now - since >= self.min_duration_s:
                del self._pending[key]
                self._ended.pop(key, None)
                rec = _Alarm(started_at=since, last_bad=now, last_seen=now, last_reported=now, obs=o, worst=o.value)
                self._open[key] = rec
                starts.append(self._change("start", key, rec, now))
        for key in [k for k, t in self._ended.items() if now - t >= self.cooldown_s]:
            del self._ended[key]
        by_key = _KEY_ORDER
        return sorted(ends, key=by_key) + sorted(starts, key=by_key) + sorted(updates, key=by_key)

    def flush(self, now: float) -> list[RuleChange]:
        out = [self._change("end", key, self._open[key], now, "flush") for key in sorted(self._open)]
        self._open.clear()
        self._pending.clear()
        self._ended.clear()
        return out


@dataclass(frozen=True)
class ZoneSpec:
    """A zone with its limits (built from a :class:`ZoneConfig`)."""

    zone: Zone
    config: ZoneConfig
    capacity: int | None

    @property
    def name(self) -> str:
        return self.zone.name


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


def _tid(x):
    return x.item() if hasattr(x, "item") else x


def _pos(p) -> tuple[float, float]:
    return (float(p[0]), float(p[1]))


class RulesEngine:
    """All rules of one camera (see module docstring).

    ``zones``: :class:`ZoneConfig` models; ``camera`` (optional): the camera model, to check
    that every zone lies inside the calibrated area (:class:`ZoneError` otherwise).
    """

    def __init__(
        self,
        rules: RulesConfig | None = None,
        zones: Sequence[ZoneConfig] = (),
        camera=None,
        image_size: tuple[int, int] | None = None,
    ) -> None:
        self.config = rules = rules or RulesConfig()
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

        d = rules.distance
        self.thresholds = PairThresholds(
            d.by_pair(), [(s.zone, s.config.distance_threshold_m) for s in self.zones if s.config.distance_threshold_m]
        )
        lc = lambda cfg, rule, metric, hiw=True: Lifecycle(
            rule,
            metric,
            min_duration_s=cfg.min_duration_s,
            end_after_s=cfg.end_after_s,  # noqa: E731
            cooldown_s=cfg.cooldown_s,
            update_interval_s=cfg.update_interval_s,
            higher_is_worse=hiw,
        )
        self.lifecycles: dict[str, Lifecycle] = {}
        if d.enabled:
            self.lifecycles["distance"] = lc(d, "distance", "distance_m", False)
        c = rules.contact
        if c.enabled:
            self.lifecycles["contact"] = lc(c, "contact", "contact_s")
            self.contact_timer = ContactTimer(c.window_s, c.max_gap_s)
        z = rules.zones
        if z.enabled and any(s.capacity is not None for s in self.zones):
            self.lifecycles["occupancy"] = lc(z, "occupancy", "people")
        if z.enabled and any(s.config.max_density_per_m2 for s in self.zones):
            self.lifecycles["density"] = lc(z, "density", "density_per_m2")
        q = rules.queue
        if q.enabled and any(s.config.queue is not None for s in self.zones):
            self.lifecycles["queue"] = lc(q, "queue", "min_spacing_m", False)
        r = rules.risk
        self.risk_params = RiskParams(sigma_m=r.sigma_m, cutoff_m=r.cutoff_m, tau_s=r.tau_s, e_ref=r.e_ref)
        self.risk_models: dict[str | None, RiskModel] = {}
        if r.enabled:
            if r.critical_level < r.alarm_level:
                raise ValueError(f"risk.critical_level ({r.critical_level}) must be >= alarm_level ({r.alarm_level})")
            self.lifecycles["risk"] = lc(r, "risk", "risk_level")
            self.risk_models = {None: RiskModel(self.risk_params)} | {
                s.name: RiskModel(self.risk_params) for s in self.zones
            }
        self.heatmap: HeatMap | None = None
        h = rules.heatmap
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
        #: latest per-zone metrics: {zone: {"people", "density_per_m2", "capacity", "risk_level", "min_queue_gap_m"}}
        self.zone_metrics: dict[str, dict] = {}
        self._now: float | None = None

    @property
    def classes(self) -> set[str]:
        """Every class name some enabled rule looks at."""
        cfg = self.config
        out = set(self.thresholds.classes) if "distance" in self.lifecycles else set()
        for name, rc in (
            ("contact", cfg.contact),
            ("occupancy", cfg.zones),
            ("density", cfg.zones),
            ("queue", cfg.queue),
            ("risk", cfg.risk),
        ):
            if name in self.lifecycles:
                out |= set(rc.classes)
        if self.heatmap is not None:
            out |= set(cfg.risk.classes)
        return out

    def open_alarms(self, rule: str) -> list:
        lc = self.lifecycles.get(rule)
        return lc.open_keys if lc else []

    def _zone_of(self, xy: np.ndarray) -> list[str | None]:
        names: list[str | None] = [None] * len(xy)
        for s in reversed(self.zones):  # first listed zone wins
            for k in np.flatnonzero(s.zone.contains(xy)):
                names[k] = s.name
        return names

    # ------------------------------------------------------------------------------------
    def update(self, timestamp_s: float, ids, classes, world_xy) -> list[RuleChange]:
        """One frame: ``ids (N,)`` unique track ids, ``classes (N,)`` class names,
        ``world_xy (N, 2)`` metres. Returns ends, then starts, then updates."""
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
        finite = np.all(np.isfinite(xy), axis=1)
        self.stats["frames"] += 1
        self.stats["dropped_nonfinite"] += int((~finite).sum())
        xy, ids_a, cls = xy[finite], ids_a[finite], cls[finite]
        tids = ids_a.tolist()
        present = set(tids)
        pair_present = lambda key: key[0] in present and key[1] in present  # noqa: E731
        zone_present = lambda key: True  # noqa: E731
        changes: list[RuleChange] = []

        if "distance" in self.lifecycles:
            changes += self.lifecycles["distance"].step(now, self._distance_obs(xy, tids, cls), pair_present)
        if "contact" in self.lifecycles:
            changes += self.lifecycles["contact"].step(now, self._contact_obs(now, xy, tids, cls), pair_present)
        self.zone_metrics = {}
        if self.zones:
            zobs = self._zone_obs(xy, tids, cls)
            for rule in ("occupancy", "density", "queue"):
                if rule in self.lifecycles:
                    changes += self.lifecycles[rule].step(now, zobs[rule], zone_present)
        if "risk" in self.lifecycles:
            changes += self.lifecycles["risk"].step(now, self._risk_obs(now, xy, tids, cls), zone_present)
        if self.heatmap is not None:
            self.heatmap.update(now, xy[np.isin(cls, list(self.config.risk.classes))])
        changes.sort(key=lambda c: _STATE_ORDER[c.state])  # stable: rule order, then key order
        return changes

    def flush(self, timestamp_s: float | None = None) -> list[RuleChange]:
        """End every open alarm (end of stream)."""
        now = self._now if timestamp_s is None else float(timestamp_s)
        now = 0.0 if now is None else now
        out = []
        for lc in self.lifecycles.values():
            out += lc.flush(now)
        return out

    # ------------------------------------------------------------------------------------
    def _distance_obs(self, xy, tids, cls) -> dict:
        d = self.config.distance
        i, j, dist, thr = pair_violations(xy, cls, self.thresholds, margin_m=d.hysteresis_m)
        zones = self._zone_of((xy[i] + xy[j]) / 2.0) if self.zones and len(i) else [None] * len(i)
        crit = d.critical_below_m
        sev0 = d.severity
        pts = xy.tolist()
        names = cls.tolist()
        tid = np.asarray(tids)
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

    def _contact_obs(self, now, xy, tids, cls) -> dict:
        c = self.config.contact
        sel = np.flatnonzero(np.isin(cls, list(c.classes)))
        i, j, _ = pairs_within(xy[sel], c.threshold_m)
        close = set()
        for a, b in zip(sel[i], sel[j]):
            close.add(tuple(sorted((tids[a], tids[b]))))
        totals = self.contact_timer.update(now, close)
        index = {t: k for k, t in enumerate(tids)}
        obs = {}
        for key, total in totals.items():
            ka, kb = index.get(key[0]), index.get(key[1])
            if ka is None or kb is None:
                continue
            zn = self._zone_of((xy[[ka]] + xy[[kb]]) / 2.0)[0] if self.zones else None
            obs[key] = Observation(
                bad=total > c.limit_s,
                value=float(total),
                threshold=float(c.limit_s),
                severity=c.severity,
                tracks=key,
                positions={key[0]: _pos(xy[ka]), key[1]: _pos(xy[kb])},
                zone=zn,
                extra={
                    "window_s": c.window_s,
                    "distance_m": float(np.linalg.norm(xy[ka] - xy[kb])),
                    "contact_threshold_m": c.threshold_m,
                },
            )
        return obs

    def _zone_obs(self, xy, tids, cls) -> dict[str, dict]:
        zc = self.config.zones
        people = np.isin(cls, list(zc.classes))
        qsel = np.flatnonzero(np.isin(cls, list(self.config.queue.classes)))
        out: dict[str, dict] = {"occupancy": {}, "density": {}, "queue": {}}
        for s in self.zones:
            inside = np.flatnonzero(s.zone.contains(xy) & people)
            n = len(inside)
            dens = n / s.zone.area_m2
            tracks = tuple(sorted(tids[k] for k in inside))
            positions = lambda inside=inside: {tids[k]: xy[k] for k in inside}
            m = {"people": n, "density_per_m2": dens, "capacity": s.capacity, "area_m2": s.zone.area_m2}
            key = (s.name,)
            if s.capacity is not None:
                out["occupancy"][key] = Observation(
                    bad=n > s.capacity,
                    value=float(n),
                    threshold=float(s.capacity),
                    severity=zc.severity,
                    tracks=tracks,
                    positions=positions,
                    zone=s.name,
                    extra={"area_m2": round(s.zone.area_m2, 3)},
                )
            if s.config.max_density_per_m2:
                out["density"][key] = Observation(
                    bad=dens > s.config.max_density_per_m2,
                    value=dens,
                    threshold=s.config.max_density_per_m2,
                    severity=zc.severity,
                    tracks=tracks,
                    positions=positions,
                    zone=s.name,
                    extra={"people": n, "area_m2": round(s.zone.area_m2, 3)},
                )
            if s.config.queue is not None:
                ql = s.config.queue
                res = queue_spacing(xy[qsel], ql.line[0], ql.line[1], ql.corridor_m)
                m["min_queue_gap_m"] = res.min_gap_m if len(res.gaps_m) else None
                if len(res.gaps_m):
                    close = np.flatnonzero(res.gaps_m < ql.min_spacing_m)
                    members = sorted({int(k) for g in close for k in (res.order[g], res.order[g + 1])})
                    out["queue"][key] = Observation(
                        bad=len(close) > 0,
                        value=res.min_gap_m,
                        threshold=ql.min_spacing_m,
                        severity=self.config.queue.severity,
                        tracks=tuple(sorted(tids[qsel[k]] for k in members)),
                        positions={tids[qsel[k]]: _pos(xy[qsel[k]]) for k in members},
                        zone=s.name,
                        extra={"queue_length": int(len(res.order)), "gaps_m": [round(float(g), 3) for g in res.gaps_m]},
                    )
            self.zone_metrics[s.name] = m
        return out

    def _risk_obs(self, now, xy, tids, cls) -> dict:
        r = self.config.risk
        sel = np.flatnonzero(np.isin(cls, list(r.classes)))
        obs = {}
        for name, model in self.risk_models.items():
            idx = sel if name is None else sel[next(s for s in self.zones if s.name == name).zone.contains(xy[sel])]
            p, per = proximity(xy[idx], self.risk_params)
            level = model.update(now, p)
            if name is not None:
                self.zone_metrics.setdefault(name, {})["risk_level"] = level
            involved = [k for k, w in zip(idx, per) if w > 0]
            obs[(name or "*",)] = Observation(
                bad=level > r.alarm_level,
                hold=level > r.alarm_level - r.hysteresis,
                value=level,
                threshold=r.alarm_level,
                severity="critical" if level >= r.critical_level else r.severity,
                tracks=tuple(sorted(tids[k] for k in involved)),
                positions={tids[k]: _pos(xy[k]) for k in involved},
                zone=name,
                extra={"exposure": round(model.exposure, 3), "proximity": round(p, 4)},
            )
        return obs
