"""The typed event payloads (schema 2): one pydantic model per event type, defined once.

``PAYLOADS`` maps each event type to its model; :class:`~vigil.alerts.events.Event` checks
its ``payload`` against the model of its ``type`` (an unknown type, a missing, extra or
wrong-typed field is an error naming the field). The models are strict (``"1.5"`` is not a
number, a number is not a string) and ``extra="forbid"``: every field an emitter writes is
listed here. Edge, aggregator, tail and console all read payloads through these models.

Event types and what raises them:

======================  ==================  =====================================================
type                    rule (``payload``)  extra fields beside the common alarm fields
======================  ==================  =====================================================
``distance_violation``  ``distance``        ``distance_m``, ``min_distance_m``, ``threshold_m``,
                                            ``classes``, ``decision``, ``distance_sigma_m``,
                                            ``distance_interval_m``, ``confidence``
``contact_time``        ``contact``         ``worst``, ``window_s``, ``distance_m``,
                                            ``contact_threshold_m``
``occupancy_limit``     ``occupancy``       ``worst``, ``area_m2``
``density_limit``       ``density``         ``worst``, ``people``, ``area_m2``
``queue_spacing``       ``queue``           ``worst``, ``queue_length``, ``gaps_m``
``risk_level``          ``risk``            ``worst``, ``exposure``, ``proximity``
``heatmap``             ``heatmap``         (not an alarm: no ``alarm_id``) ``layers``, ...
``plate_hit``           --                  plate pass fields (see :class:`PlateHitPayload`)
``plate_transit``       --                  plate pass fields (see :class:`PlateTransitPayload`)
``camera_health``       ``health``          ``condition``, ``health``, ``metric``, ``value``,
                                            ``threshold``, ``duration_s``, ``reason``
                                            (see :class:`CameraHealthPayload`)
======================  ==================  =====================================================

Common rule-alarm fields (:class:`RuleAlarmPayload`): ``alarm_id`` (UUID shared by the
alarm's start, updates and end), ``rule``, ``tracks`` (track ids), ``positions_m`` (track id
as a string -> ``[x, y]`` metres), ``metric``, ``value``, ``threshold`` (in the metric's
unit), ``zone`` (or null), ``duration_s``, ``frame`` (frame index), ``reason`` (ends only:
``clear`` | ``lost`` | ``flush``). An end's ``value`` is the one that ended the alarm (reason
``clear``: the first value seen outside the hysteresis band; ``lost`` and ``flush``: the last
known one), not the last one inside the violation; ``worst`` the most extreme while it held.

A ``distance_violation`` payload is one distance told several ways: ``distance_m`` equals
``value``, ``min_distance_m`` is not above it, ``distance_interval_m`` holds it and the two
tracks' ``positions_m`` are that far apart (to :data:`DISTANCE_TOLERANCE_M`); a payload whose
fields disagree is refused, naming them (at ingest and at the edge; not on events read back from
the store, which older versions may have accepted: ``Event.from_json(..., stored=True)``).

How an :class:`~vigil.alarm.AlarmChange` becomes a payload is the model's own business
(:meth:`RuleAlarmPayload.from_change`), so the conversion in :mod:`vigil.alerts.events` has no
per-type cases. Adding an event type: a model here, an entry in ``PAYLOADS``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from vigil.alarm import AlarmChange

__all__ = [
    "PAYLOADS",
    "ALARM_TYPES",
    "Payload",
    "AlarmPayload",
    "RuleAlarmPayload",
    "DistanceViolationPayload",
    "ContactTimePayload",
    "OccupancyLimitPayload",
    "DensityLimitPayload",
    "QueueSpacingPayload",
    "RiskLevelPayload",
    "HeatmapPayload",
    "CompactGrid",
    "WatchListHit",
    "PlateHitPayload",
    "PlateTransitPayload",
    "CameraHealthPayload",
    "payload_model",
]

UUIDStr = Annotated[
    str, Field(pattern=r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
]
#: an evidence object's id (``vigil.plates.evidence.EvidenceStore``: 32 hex digits)
EvidenceId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
PositionM = Annotated[list[float], Field(min_length=2, max_length=2, description="[x, y] metres")]
Reason = Literal["clear", "lost", "flush"]
_PAIR_SUMMARY = ("tracks", "zone", "value", "threshold", "worst", "duration_s", "reason")
_ZONE_SUMMARY = ("zone", "value", "threshold", "worst", "tracks", "duration_s", "reason")


#: how far a distance_violation payload's distances may differ (metres): each is rounded to 1 mm,
#: and a distance from two rounded positions is off by up to 1.5 mm
DISTANCE_TOLERANCE_M = 0.002


def _r3(x) -> float | None:
    return None if x is None else round(float(x), 3)


def _jsonable(v: Any) -> Any:
    """Tuples (and numpy scalars) from the rule code as JSON-ready lists and numbers."""
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        return v.item()
    return v


class Payload(BaseModel):
    """Base of every payload model: strict, no unknown fields, finite numbers only (NaN and
    infinities are refused: JSON has no such numbers)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    #: the event type whose payload this is
    event_type: ClassVar[str] = ""
    #: the fields a one-line summary shows (``vigil tail``, the console's alarm list), in order
    summary_fields: ClassVar[tuple[str, ...]] = ()


class AlarmPayload(Payload):
    """A payload of an alarm event: carries the alarm's id and, on a start, what was recorded of it
    (``snapshot_id``, ``clip_id``, ``recording``; all optional: absent on updates, ends and events
    of nodes that record nothing; see ``vigil.edge.media``)."""

    alarm_id: UUIDStr = Field(description="UUID shared by the alarm's start, updates and end")
    snapshot_id: EvidenceId | None = Field(
        None, description="Evidence id of the privacy-masked snapshot taken at the alarm's start (JPEG)"
    )
    clip_id: EvidenceId | None = Field(
        None, description="Evidence id of the clip of the seconds before a plate hit (H.264 MP4)"
    )
    recording: Literal["on", "off"] | None = Field(
        None,
        description="off: the site records no pictures ('nothing is recorded' mode), so this alarm has none; "
        "on: pictures are kept when stored (snapshot_id, clip_id); null: not said",
    )

    @classmethod
    def from_change(cls, change: AlarmChange, frame: int) -> dict[str, Any]:
        """The payload (a JSON-ready dict) of one :class:`AlarmChange` seen at frame ``frame``."""
        return {"alarm_id": change.alarm_id, **_jsonable(dict(change.extra)), "frame": int(frame)}


class RuleAlarmPayload(AlarmPayload):
    """The fields every geometry rule's alarm carries (see module docstring)."""

    rule: str = Field(description="Rule that raised the alarm (vigil.geometry.rules)")
    tracks: list[int] = Field(description="Track ids of the subjects")
    positions_m: dict[str, PositionM] = Field(description="Track id -> [x, y] ground position, metres")
    metric: str = Field(description="Name of the measured quantity (its unit is in its name)")
    value: float = Field(description="Latest value of the metric")
    threshold: float = Field(description="Threshold the metric is compared with")
    zone: str | None = Field(description="Zone name, or null")
    duration_s: float = Field(description="Seconds from the condition's first hold to its last")
    frame: int = Field(description="Frame index of the step")
    reason: Reason | None = Field(None, description="Why the alarm ended (end events only)")

    #: the payload field that holds ``AlarmChange.worst`` (the most extreme value since the start)
    worst_field: ClassVar[str] = "worst"
    summary_fields: ClassVar[tuple[str, ...]] = _PAIR_SUMMARY

    @classmethod
    def from_change(cls, change: AlarmChange, frame: int) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "alarm_id": change.alarm_id,
            "rule": change.rule,
            "tracks": [int(t) for t in change.tracks],
            "positions_m": {str(k): [_r3(v[0]), _r3(v[1])] for k, v in change.positions.items()},
            "metric": change.metric,
            "value": _r3(change.value),
            "threshold": _r3(change.threshold),
            "zone": change.zone,
            "duration_s": round(float(change.duration_s), 2),
            "frame": int(frame),
        }
        payload.update(cls.specific(change))
        if change.reason:
            payload["reason"] = change.reason
        for k, v in change.extra.items():
            if k not in payload:
                payload[k] = _jsonable(v)
        return payload

    @classmethod
    def specific(cls, change: AlarmChange) -> dict[str, Any]:
        """Type-specific fields derived from the common ones (default: ``worst``)."""
        return {cls.worst_field: _r3(change.worst)}


class DistanceViolationPayload(RuleAlarmPayload):
    """``distance_violation``: two tracks closer than their threshold.

    ``distance_m`` (= ``value``) is the distance at this step: at a start or an update the
    frame's; at an **end** the distance that ended the alarm, not the last one inside the
    violation: reason ``clear``, the first distance seen outside the hysteresis band (the pair
    farther apart than ``threshold_m + hysteresis_m``, or no longer "sure" to be in it); ``lost``,
    the last known one; ``flush``, the latest. ``min_distance_m`` is the worst (smallest) distance
    while the alarm held. One field, redefined at the end, rather than a separate clearing field:
    an end has one current distance, and the last distance inside the violation was no
    information the start, updates and ``min_distance_m`` do not already give.

    Decisions with confidence (``docs/rules.md``; optional, default null: events stored before
    them stay valid): ``decision`` is the rule's mode (``point``: the measured distance below the
    threshold; ``sure``: ``confidence`` at least the rule's required level); with the ground
    stage's position covariances, ``distance_sigma_m`` is the distance's first-order standard
    deviation (metres), ``distance_interval_m`` its two-sided 95 % normal interval
    ``[max(0, d - 1.96 sigma), d + 1.96 sigma]`` (metres) and ``confidence`` the probability
    ``P(true distance < threshold_m)`` (0..1, 4 decimals); all three absent (read as null) when
    the frame had no covariances (the ground stage off), null when this pair's are unknown.
    """

    event_type: ClassVar[str] = "distance_violation"
    summary_fields: ClassVar[tuple[str, ...]] = (
        "tracks",
        "distance_m",
        "threshold_m",
        "min_distance_m",
        "confidence",
        "zone",
        "duration_s",
        "reason",
    )
    distance_m: float = Field(
        description="Distance between the two tracks at this step, metres (an end: the one that ended the alarm)"
    )
    min_distance_m: float = Field(description="Smallest distance while the alarm held, metres")
    threshold_m: float = Field(description="Distance threshold of the class pair / zone, metres")
    classes: list[str] = Field(description="Class names of the two tracks")
    decision: Literal["point", "sure"] | None = Field(None, description="The rule's decision mode; null: unknown")
    distance_sigma_m: float | None = Field(
        None, ge=0, description="First-order standard deviation of distance_m, metres; null: no covariance"
    )
    distance_interval_m: Annotated[list[float], Field(min_length=2, max_length=2)] | None = Field(
        None, description="[lo, hi] two-sided 95 % normal interval of the distance (lo >= 0), metres; null: unknown"
    )
    confidence: float | None = Field(
        None, ge=0, le=1, description="P(true distance < threshold_m), normal approximation; null: no covariance"
    )

    @model_validator(mode="after")
    def _one_distance(self, info: ValidationInfo) -> "DistanceViolationPayload":
        """The payload's distances are one measurement told several ways; a payload whose fields
        disagree (a distance that is not ``value``, a worst distance above the current one, an
        interval that does not hold the distance, positions another distance apart) is refused,
        naming the fields: a console would otherwise show two distances for one alarm. Not
        checked on events read back from the store (``stored`` context): they were accepted
        before this rule and must stay readable."""
        if info.context and info.context.get("stored"):
            return self
        tol = DISTANCE_TOLERANCE_M
        if abs(self.distance_m - self.value) > tol:
            raise ValueError(f"distance_m {self.distance_m} and value {self.value} differ: they are one distance")
        if self.min_distance_m > self.distance_m + tol:
            raise ValueError(
                f"min_distance_m {self.min_distance_m} is above distance_m {self.distance_m}: "
                "the worst distance is the smallest"
            )
        iv = self.distance_interval_m
        if iv is not None and not iv[0] - tol <= self.distance_m <= iv[1] + tol:
            raise ValueError(f"distance_interval_m {iv} does not hold distance_m {self.distance_m}")
        if len(self.tracks) == 2:
            a, b = (self.positions_m.get(str(t)) for t in self.tracks)
            if a is not None and b is not None:
                d = ((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5
                if abs(d - self.distance_m) > 2 * tol:
                    raise ValueError(
                        f"positions_m of tracks {self.tracks[0]} and {self.tracks[1]} are {d:.3f} m apart, "
                        f"distance_m says {self.distance_m}"
                    )
        return self

    @classmethod
    def specific(cls, change: AlarmChange) -> dict[str, Any]:
        out: dict[str, Any] = {
            "distance_m": _r3(change.value),
            "min_distance_m": _r3(change.worst),
            "threshold_m": float(change.threshold),
        }
        ex = change.extra
        if "distance_sigma_m" in ex:  # the frame had covariances (the pair's may still be unknown: None)
            iv, p = ex.get("distance_interval_m"), ex.get("confidence")
            out["distance_sigma_m"] = _r3(ex["distance_sigma_m"])
            out["distance_interval_m"] = None if iv is None else [_r3(iv[0]), _r3(iv[1])]
            out["confidence"] = None if p is None else round(float(p), 4)
        return out


class ContactTimePayload(RuleAlarmPayload):
    """``contact_time``: a pair's contact time within the window exceeds the limit."""

    event_type: ClassVar[str] = "contact_time"
    worst: float = Field(description="Longest contact time since the start, seconds")
    window_s: float = Field(description="Sliding window the contact time is summed over, seconds")
    distance_m: float = Field(description="Latest distance between the two tracks, metres")
    contact_threshold_m: float = Field(description="Distance under which two tracks are in contact, metres")


class OccupancyLimitPayload(RuleAlarmPayload):
    """``occupancy_limit``: a zone holds more people than its capacity."""

    event_type: ClassVar[str] = "occupancy_limit"
    summary_fields: ClassVar[tuple[str, ...]] = _ZONE_SUMMARY
    worst: float = Field(description="Most people since the start")
    area_m2: float = Field(description="Zone area, m^2")


class DensityLimitPayload(RuleAlarmPayload):
    """``density_limit``: a zone's people per m^2 exceed its limit."""

    event_type: ClassVar[str] = "density_limit"
    summary_fields: ClassVar[tuple[str, ...]] = _ZONE_SUMMARY
    worst: float = Field(description="Highest density since the start, people per m^2")
    people: int = Field(description="People in the zone")
    area_m2: float = Field(description="Zone area, m^2")


class QueueSpacingPayload(RuleAlarmPayload):
    """``queue_spacing``: two neighbours on a queue line stand too close."""

    event_type: ClassVar[str] = "queue_spacing"
    summary_fields: ClassVar[tuple[str, ...]] = _ZONE_SUMMARY
    worst: float = Field(description="Smallest gap since the start, metres")
    queue_length: int = Field(description="People on the queue line")
    gaps_m: list[float] = Field(description="Gaps between neighbours along the line, metres")


class RiskLevelPayload(RuleAlarmPayload):
    """``risk_level``: a zone's (or the whole view's, zone null) dynamic risk level is high."""

    event_type: ClassVar[str] = "risk_level"
    summary_fields: ClassVar[tuple[str, ...]] = _ZONE_SUMMARY
    worst: float = Field(description="Highest risk level since the start")
    exposure: float = Field(description="Accumulated exposure of the risk model")
    proximity: float = Field(description="Instantaneous proximity term")


class CompactGrid(Payload):
    """One heat-map layer as :func:`vigil.geometry.risk.compact_grid` writes it."""

    origin_m: PositionM
    cell_m: float
    shape: Annotated[list[int], Field(min_length=2, max_length=2)]
    downsample: int
    scale: float
    unit: str
    encoding: Literal["u8-b64"]
    data: str


class HeatmapPayload(Payload):
    """``heatmap`` (state, not an alarm): occupancy and risk layers every ``publish_interval_s``."""

    event_type: ClassVar[str] = "heatmap"
    summary_fields: ClassVar[tuple[str, ...]] = ("final", "frame", "decay_tau_s")
    rule: Literal["heatmap"]
    layers: dict[str, CompactGrid] = Field(description="occupancy and risk grids")
    bounds_m: Annotated[list[float], Field(min_length=4, max_length=4)] = Field(description="[x0, x1, y0, y1] metres")
    decay_tau_s: float | None = Field(description="Fade time constant of the map, seconds; null: it accumulates")
    final: bool = Field(description="The last snapshot of the stream")
    frame: int


class WatchListHit(Payload):
    """One watch-list entry a plate matched (``vigil.plates.watchlists.ListHit.to_dict()``)."""

    list: str = Field(description="List code: A1, C, A2, UNINSURED, ...")
    list_name: str
    plate: str = Field(description="The list's plate")
    note: str
    exact: bool = Field(description="False: matched through confusable characters")
    source: str
    line: int


class _PlatePayload(AlarmPayload):
    transit_id: UUIDStr = Field(description="Id of the vehicle pass")
    confidence: float
    hits: list[WatchListHit] = Field(description="Watch-list entries matched")
    vehicle_class: str | None
    evidence_id: str | None = Field(None, description="Id of the stored plate crop (hits only)")
    frame: int


class PlateHitPayload(_PlatePayload):
    """``plate_hit``: a plate on a watch list, while the vehicle is still in view (once per pass)."""

    event_type: ClassVar[str] = "plate_hit"
    summary_fields: ClassVar[tuple[str, ...]] = ("plate", "lists", "confidence", "vehicle_class")
    plate: str
    lists: list[str] = Field(description="Names of the lists hit")


class PlateTransitPayload(_PlatePayload):
    """``plate_transit``: a vehicle pass ended. The aggregator stores a no-hit transit without
    any copy of its plate (no ``plate``, ``plate_hash``, ``votes``, ``evidence_id``): the transit
    table keeps a keyed pseudonym, linked by ``transit_id``, for audited searches."""

    event_type: ClassVar[str] = "plate_transit"
    summary_fields: ClassVar[tuple[str, ...]] = (
        "plate",
        "direction",
        "confidence",
        "readings",
        "vehicle_class",
        "duration_s",
    )
    plate: str | None = None
    plate_hash: str | None = None
    readings: int
    votes: dict[str, float] | None = None
    direction: Literal["in", "out"] | None
    kind: str | None
    country: str | None
    duration_s: float
    mode: str


HealthState = Literal["ok", "blank", "frozen", "garbled", "no_detections"]


class CameraHealthPayload(AlarmPayload):
    """``camera_health``: the camera's stream is not delivering real pictures (``vigil.edge.health``).

    A bad state's ``start`` (severity warning) and its ``end`` (severity info) share an
    ``alarm_id``. ``condition``: the bad state the alarm is about (``blank``, ``frozen``,
    ``garbled``, ``no_detections``); ``health``: the camera's state after this step (at a start
    the condition itself; at an end ``ok``, or the next bad state when one replaces it).
    ``metric`` / ``value`` / ``threshold``: the measurement that tells the condition
    (``uniform_fraction``, ``frame_change`` in grey levels, ``broken_block_fraction``,
    ``seconds_without_detections``), null when unknown; ``duration_s``: stream seconds since the
    condition began; ``reason`` (ends only): ``clear`` (the picture is back) or ``flush`` (the
    stream ended).
    """

    event_type: ClassVar[str] = "camera_health"
    summary_fields: ClassVar[tuple[str, ...]] = ("condition", "health", "value", "threshold", "duration_s", "reason")
    rule: Literal["health"] = "health"
    condition: Literal["blank", "frozen", "garbled", "no_detections"] = Field(description="The bad state")
    health: HealthState = Field(description="The camera's health state after this step")
    metric: str = Field(description="Name of the measured quantity")
    value: float | None = Field(description="Latest value of the metric, or null")
    threshold: float | None = Field(description="Threshold the metric is compared with, or null")
    duration_s: float = Field(ge=0, description="Stream seconds since the condition began")
    frame: int = Field(description="Frame index of the step")
    reason: Literal["clear", "flush"] | None = Field(None, description="Why the state ended (end events only)")

    @classmethod
    def from_change(cls, change: AlarmChange, frame: int) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "alarm_id": change.alarm_id,
            "rule": "health",
            "condition": change.extra.get("condition"),
            "health": change.extra.get("health"),
            "metric": change.metric or "none",
            "value": _r3(change.value),
            "threshold": _r3(change.threshold),
            "duration_s": round(float(change.duration_s), 2),
            "frame": int(frame),
        }
        if change.reason:
            payload["reason"] = change.reason
        return payload


PAYLOADS: dict[str, type[Payload]] = {
    m.event_type: m
    for m in (
        DistanceViolationPayload,
        ContactTimePayload,
        OccupancyLimitPayload,
        DensityLimitPayload,
        QueueSpacingPayload,
        RiskLevelPayload,
        HeatmapPayload,
        PlateHitPayload,
        PlateTransitPayload,
        CameraHealthPayload,
    )
}
#: event types that are alarms (their payload carries an ``alarm_id``)
ALARM_TYPES = frozenset(t for t, m in PAYLOADS.items() if issubclass(m, AlarmPayload))


def payload_model(event_type: str) -> type[Payload]:
    """The payload model of ``event_type``; ``KeyError`` naming the known types if none."""
    try:
        return PAYLOADS[event_type]
    except KeyError:
        raise KeyError(f"unknown event type {event_type!r} (known: {', '.join(sorted(PAYLOADS))})") from None
