"""The one alarm-change type every alarm source emits (geometry rules, the plate pipeline).

An :class:`AlarmChange` is one step of one alarm's lifecycle: ``start``, ``update`` (at most
every ``update_interval_s`` and whenever the severity changes) or ``end``. Every step of the
same alarm carries the same ``alarm_id`` (a UUID string made when the alarm starts: by the
rules lifecycle in ``vigil.geometry.rules``, by the plate pass in ``vigil.plates``). The
conversion to a wire event (``vigil.alerts.events.event_from_change``) is generic: it reads
the common fields below and the type-specific ``extra`` mapping, with no per-rule cases.

This module is a helper layer: it imports nothing from the other ``vigil`` packages.

Units: ``timestamp_s``, ``started_at`` and ``duration_s`` are stream seconds (the source's
clock, not wall time); ``positions`` are ground-plane metres ``(x, y)``; ``value``,
``threshold`` and ``worst`` are in the unit of ``metric`` (``distance_m``: metres,
``contact_s``: seconds, ``people``: a count, ``density_per_m2``: people per m^2,
``min_spacing_m``: metres, ``risk_level``: dimensionless).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

__all__ = ["AlarmChange", "AlarmState", "new_alarm_id"]

AlarmState = Literal["start", "update", "end"]


def new_alarm_id() -> str:
    """A new alarm id: a random UUID (version 4) as its canonical string."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class AlarmChange:
    """One step of an alarm's lifecycle (see module docstring).

    - ``event_type``: the wire event type (``distance_violation``, ``plate_hit``, ...);
    - ``rule``: the rule (or source) that raised it (``distance``, ``queue``, ``plate``, ...);
    - ``state``: ``start`` | ``update`` | ``end``; ``alarm_id``: shared by all steps of one alarm;
    - ``severity``: ``info`` | ``warning`` | ``critical``;
    - ``timestamp_s``: stream time of this step (seconds); ``started_at``: stream time the
      condition first held; ``duration_s``: from ``started_at`` to the last time it held;
    - ``key``: what identifies the alarm inside its rule (a pair of track ids, a zone name, a
      plate pass id);
    - ``tracks`` and ``positions`` (track id -> ``(x, y)`` metres): the subjects;
    - ``metric``, ``value`` (this step's; at an ``end`` the one that ended the alarm: for
      ``clear`` the first value outside the hysteresis band, else the last known one),
      ``threshold``, ``worst`` (most extreme while the alarm held): the measurement, ``None``
      for alarms without one (plates);
    - ``zone``: the zone name, if any; ``reason``: why an ``end`` happened (``clear``,
      ``lost``, ``flush``);
    - ``extra``: the event type's own payload fields (JSON-ready values, see
      ``vigil.alerts.events``).
    """

    event_type: str
    rule: str
    state: AlarmState
    alarm_id: str
    severity: str
    timestamp_s: float
    started_at: float = 0.0
    duration_s: float = 0.0
    key: tuple = ()
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    worst: float | None = None
    tracks: tuple = ()
    positions: Mapping[Any, tuple[float, float]] = field(default_factory=dict)
    zone: str | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def pair(self) -> tuple | None:
        """The two tracks of a pair rule (``distance``, ``contact``), else None."""
        return self.tracks if self.rule in ("distance", "contact") else None
