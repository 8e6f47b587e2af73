"""The alarm lifecycle shared by every rule: start, update, end, with alarm ids.

One :class:`Lifecycle` per rule keeps the alarms of that rule by key (a pair of tracks, a
zone) and turns each frame's :class:`Observation` values into
:class:`~vigil.alarm.AlarmChange` steps:

- the condition must hold for ``min_duration_s`` before ``start`` (a candidate is dropped
  as soon as the condition is seen clear);
- an open alarm stays open while the metric is beyond the threshold *or inside the
  hysteresis band* (the observation's ``hold``); it ends (``reason="clear"``) once clear for
  ``end_after_s``, or (``reason="lost"``) when its subjects have not been seen for
  ``end_after_s``; ``flush`` ends every open alarm (``reason="flush"``);
- what a change reports (``value``, positions, ``extra``): a start or an update the
  observation of that frame; an end with ``reason="clear"`` the *clearing* observation, the
  first one of the final clear stretch (outside the hold band: the value that cleared the
  alarm, not the last one inside the violation); ``lost`` and ``flush`` the latest observation
  (the last known value). A key cleared by its absence from the observations (a pair rule
  reports only pairs inside the band) has a clearing observation only if the rule measured it
  (:meth:`~vigil.geometry.rules.base.Rule.measure`: the engine asks once, at the first frame of
  the clear stretch, see :meth:`Lifecycle.unobserved`; that measurement then stays the latest
  observation until the key is observed again); otherwise its latest observed one is
  reported. ``worst`` is the most extreme value over the observations that held the alarm
  (bad or hold), so a clearing value never counts; ``severity`` the one last reported;
- after an end, the same key cannot start again for ``cooldown_s``;
- ``update`` at most every ``update_interval_s`` (if set) and whenever the severity changes.

Each alarm gets a new ``alarm_id`` (:func:`vigil.alarm.new_alarm_id`) when it starts; its
updates and its end carry the same id. A restart of the same key after its end is a new alarm
with a new id.

A pair rule with thousands of keys a frame (the distance rule) runs through
:class:`~vigil.geometry.rules.pairs.PairLifecycle` instead: these semantics in numpy arrays
(tested against this class on random scenes, ``tests/geometry/test_geometry_rules_pairs.py``).

:class:`LifecycleConfig` is the pydantic base of every rule's configuration (these settings
plus ``severity``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Hashable, Literal

from pydantic import BaseModel, ConfigDict, Field

from vigil.alarm import AlarmChange, AlarmState, new_alarm_id

__all__ = ["Severity", "StrictConfig", "LifecycleConfig", "Observation", "Lifecycle", "LifecycleSettings"]

Severity = Literal["info", "warning", "critical"]


class StrictConfig(BaseModel):
    """Base of the rule configuration models: unknown keys forbidden, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LifecycleConfig(StrictConfig):
    """Alarm lifecycle settings shared by every rule."""

    min_duration_s: float = Field(
        1.0, ge=0, le=600, description="The condition must hold this long before the alarm starts (seconds)"
    )
    end_after_s: float = Field(
        1.0,
        ge=0,
        le=600,
        description="An open alarm ends once its condition has been clear (or its tracks lost) this long (seconds)",
    )
    cooldown_s: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="After an alarm ends, the same alarm (same pair or zone) cannot start again"
        " for this long (seconds)",
    )
    update_interval_s: float | None = Field(
        None,
        gt=0,
        le=3600,
        description="Report an 'update' of an open alarm at most this often (seconds);"
        " none: only start and end (and severity changes)",
    )
    severity: Severity = Field("warning", description="Severity of the alarm events")


class Observation:
    """A key's metric in one frame. ``bad``: beyond the threshold; ``hold``: not beyond it
    but inside the hysteresis band (an open alarm stays open, a new one does not start).
    ``positions`` (track id -> ``(x, y)`` metres) may be a mapping, a sequence of ``(key,
    value)`` pairs or a callable returning either; ``extra`` (the event type's own payload
    fields) likewise. Both are turned into dicts only when a change is reported: cheap for
    thousands of pairs."""

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
    alarm_id: str
    started_at: float
    last_bad: float
    last_seen: float
    last_reported: float
    obs: Observation  #: the latest observation (held or clear)
    worst: float  #: the most extreme value over the held observations
    severity: str  #: the severity last reported
    clear_since: float | None = None
    clear_obs: Observation | None = None  #: the first observation of the current clear stretch


class LifecycleSettings:
    """What every alarm lifecycle of one rule shares (:class:`Lifecycle`, and
    :class:`~.pairs.PairLifecycle` for pair rules in arrays): the rule and metric names, the event
    type (default: the rule name), the :class:`LifecycleConfig` durations (seconds, checked: finite
    and >= 0; ``update_interval_s`` None or > 0) and whether a higher metric is worse."""

    def __init__(
        self,
        rule: str,
        metric: str,
        *,
        event_type: str | None = None,
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
        self.event_type = event_type or rule
        self.min_duration_s, self.end_after_s, self.cooldown_s = (
            float(min_duration_s),
            float(end_after_s),
            float(cooldown_s),
        )
        self.update_interval_s = update_interval_s
        self.higher_is_worse = higher_is_worse

    @staticmethod
    def settings_of(cfg: LifecycleConfig) -> dict:
        """The lifecycle keyword arguments of a rule configured by ``cfg``."""
        return {
            "min_duration_s": cfg.min_duration_s,
            "end_after_s": cfg.end_after_s,
            "cooldown_s": cfg.cooldown_s,
            "update_interval_s": cfg.update_interval_s,
        }


def _pos(p) -> tuple[float, float]:
    return (float(p[0]), float(p[1]))


def _by_key(change: AlarmChange):
    return change.key


class Lifecycle(LifecycleSettings):
    """The alarm lifecycle of one rule (see module docstring); the settings of
    :class:`LifecycleSettings`."""

    def __init__(self, rule: str, metric: str, **settings) -> None:
        super().__init__(rule, metric, **settings)
        self._pending: dict[Hashable, tuple[float, float]] = {}  # key -> (since, last seen bad)
        self._open: dict[Hashable, _Alarm] = {}
        self._ended: dict[Hashable, float] = {}

    @classmethod
    def from_config(
        cls, cfg: LifecycleConfig, rule: str, metric: str, *, event_type: str, higher_is_worse: bool = True
    ) -> "Lifecycle":
        """The lifecycle of a rule configured by ``cfg``."""
        return cls(rule, metric, event_type=event_type, higher_is_worse=higher_is_worse, **cls.settings_of(cfg))

    @property
    def open_keys(self) -> list:
        return sorted(self._open)

    def alarm_id(self, key) -> str | None:
        """The id of the open alarm of ``key``, or None."""
        rec = self._open.get(key)
        return rec.alarm_id if rec is not None else None

    def _worse(self, a: float, b: float) -> float:
        return max(a, b) if self.higher_is_worse else min(a, b)

    def unobserved(self, obs: dict, present: Callable[[Hashable], bool]) -> list:
        """Keys of open alarms missing from ``obs`` whose subjects were seen (``present``) and that
        are not yet in a clear stretch: the ones a rule may
        :meth:`~vigil.geometry.rules.base.Rule.measure`, once, for the value that clears them."""
        return [k for k, rec in self._open.items() if k not in obs and rec.clear_since is None and present(k)]

    def _change(
        self, state: AlarmState, key, rec: _Alarm, now: float, reason: str | None = None, obs: Observation | None = None
    ) -> AlarmChange:
        o = rec.obs if obs is None else obs
        positions = o.positions() if callable(o.positions) else o.positions
        return AlarmChange(
            event_type=self.event_type,
            rule=self.rule,
            state=state,
            alarm_id=rec.alarm_id,
            severity=rec.severity,
            timestamp_s=now,
            started_at=rec.started_at,
            duration_s=max(0.0, rec.last_bad - rec.started_at),
            key=key,
            metric=self.metric,
            value=float(o.value),
            threshold=float(o.threshold),
            worst=float(rec.worst),
            tracks=tuple(o.tracks),
            positions={k: _pos(v) for k, v in dict(positions).items()},
            zone=o.zone,
            reason=reason,
            extra=dict(o.extra() if callable(o.extra) else o.extra),
        )

    def step(self, now: float, obs: dict, present: Callable[[Hashable], bool] = lambda key: False) -> list[AlarmChange]:
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
                rec.obs = o
            if o is not None and (o.bad or o.hold):
                rec.clear_since = rec.clear_obs = None
                rec.worst = self._worse(rec.worst, o.value)
                if o.bad:
                    rec.last_bad = now
                if o.severity != rec.severity or (
                    self.update_interval_s is not None and now - rec.last_reported >= self.update_interval_s
                ):
                    rec.last_reported = now
                    rec.severity = o.severity
                    updates.append(self._change("update", key, rec, now))
                continue
            if rec.clear_since is None:
                rec.clear_since = now
                rec.clear_obs = rec.obs  # this frame's clear observation, or the latest one if none
            if now - rec.clear_since >= self.end_after_s:
                ends.append(self._change("end", key, rec, now, "clear", rec.clear_obs))
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
                rec = _Alarm(
                    alarm_id=new_alarm_id(),
                    started_at=since,
                    last_bad=now,
                    last_seen=now,
                    last_reported=now,
                    obs=o,
                    worst=o.value,
                    severity=o.severity,
                )
                self._open[key] = rec
                starts.append(self._change("start", key, rec, now))
        for key in [k for k, t in self._ended.items() if now - t >= self.cooldown_s]:
            del self._ended[key]
        return sorted(ends, key=_by_key) + sorted(starts, key=_by_key) + sorted(updates, key=_by_key)

    def flush(self, now: float) -> list[AlarmChange]:
        """End every open alarm (``reason="flush"``) and forget candidates and cooldowns."""
        out = [self._change("end", key, self._open[key], now, "flush") for key in sorted(self._open)]
        self._open.clear()
        self._pending.clear()
        self._ended.clear()
        return out
