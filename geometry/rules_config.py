"""Configuration models of the ground-plane rules and zones (pydantic, unknown keys forbidden).

``vigil.edge.config`` imports these into the node configuration (``cameras[i].rules`` and
``cameras[i].zones``). Validators raise; nothing here reads files. Whether a zone lies inside
the calibrated area needs the calibration, so that check runs when the rules engine is built
(:func:`vigil.geometry.zones.check_zone_visible`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Severity",
    "PairThresholdConfig",
    "DistanceRuleConfig",
    "ContactRuleConfig",
    "ZoneRuleConfig",
    "QueueRuleConfig",
    "RiskRuleConfig",
    "HeatmapConfig",
    "VoiceConfig",
    "RulesConfig",
    "QueueLineConfig",
    "ZoneConfig",
]

Severity = Literal["info", "warning", "critical"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Lifecycle(_Strict):
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
        description="After an alarm ends, the same alarm (same pair or zone) cannot start again for this long (seconds)",
    )
    update_interval_s: float | None = Field(
        None,
        gt=0,
        le=3600,
        description="Report an 'update' of an open alarm at most this often (seconds); none: only start and end (and severity changes)",
    )
    severity: Severity = Field("warning", description="Severity of the alarm events")


class PairThresholdConfig(_Strict):
    """A distance threshold for one pair of classes (e.g. person–bicycle)."""

    classes: tuple[str, str] = Field(description="The two detector class names, e.g. [person, bicycle]")
    threshold_m: float = Field(
        gt=0, le=20, description="Pairs of these classes closer than this (metres) are in violation"
    )


class DistanceRuleConfig(_Lifecycle):
    """Interpersonal distance rule (the Italian rule is 1 m between people)."""

    enabled: bool = Field(True, description="Raise distance_violation alarms")
    threshold_m: float = Field(
        1.0, gt=0, le=20, description="Pairs of `classes` closer than this (metres) are in violation"
    )
    hysteresis_m: float = Field(
        0.2,
        ge=0,
        le=5,
        description="A violation clears only once the pair is farther than threshold + hysteresis (metres)",
    )
    classes: list[str] = Field(
        default_factory=lambda: ["person"],
        min_length=1,
        description="Detector class names checked pairwise at threshold_m",
    )
    pairs: list[PairThresholdConfig] = Field(
        default_factory=list, description="Extra or overriding thresholds per class pair, e.g. person–bicycle"
    )
    critical_below_m: float | None = Field(
        None, gt=0, le=20, description="Raise severity to critical while the pair is closer than this (metres)"
    )

    @property
    def all_classes(self) -> list[str]:
        return sorted(set(self.classes) | {c for p in self.pairs for c in p.classes})

    def by_pair(self) -> dict[tuple[str, str], float]:
        out = {}
        for i, a in enumerate(self.classes):
            for b in self.classes[i:]:
                out[tuple(sorted((a, b)))] = self.threshold_m
        for p in self.pairs:
            out[tuple(sorted(p.classes))] = p.threshold_m
        return out


class ContactRuleConfig(_Lifecycle):
    """Contact time: seconds a pair spends under the threshold within a time window."""

    enabled: bool = Field(False, description="Raise contact_time alarms")
    classes: list[str] = Field(
        default_factory=lambda: ["person"], min_length=1, description="Detector class names the rule applies to"
    )
    threshold_m: float = Field(1.0, gt=0, le=20, description="A pair is in contact while closer than this (metres)")
    window_s: float = Field(
        900.0, gt=0, le=86400, description="Contact time is summed over this sliding window (seconds)"
    )
    limit_s: float = Field(
        60.0, gt=0, le=86400, description="Alarm once a pair's contact time within the window exceeds this (seconds)"
    )
    max_gap_s: float = Field(
        2.0, gt=0, le=60, description="Frames further apart than this do not accrue contact time (seconds)"
    )
    min_duration_s: float = Field(
        0.0, ge=0, le=600, description="The condition must hold this long before the alarm starts (seconds)"
    )
    end_after_s: float = Field(
        5.0,
        ge=0,
        le=600,
        description="An open alarm ends once the pair has been under the limit (or lost) this long (seconds)",
    )

    @model_validator(mode="after")
    def _limit_within_window(self) -> "ContactRuleConfig":
        if self.limit_s > self.window_s:
            raise ValueError(
                f"limit_s ({self.limit_s}) must not exceed window_s ({self.window_s}): the alarm could never start"
            )
        return self


class ZoneRuleConfig(_Lifecycle):
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


class QueueRuleConfig(_Lifecycle):
    """Spacing alarms along the queue lines of zones (see ZoneConfig.queue)."""

    enabled: bool = Field(True, description="Raise queue_spacing alarms for zones with a queue line")
    classes: list[str] = Field(
        default_factory=lambda: ["person"], min_length=1, description="Detector class names queueing"
    )


class RiskRuleConfig(_Lifecycle):
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
        60.0, gt=0, le=1e6, description="Exposure that gives risk level 0.63 (pair-seconds at contact)"
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


class HeatmapConfig(_Strict):
    enabled: bool = Field(
        False,
        description="Accumulate a risk/occupancy heat map on a ground grid (saved as PNG and .npy at the end of a replay)",
    )
    cell_m: float = Field(0.5, gt=0, le=50, description="Grid cell size (metres)")
    bounds: tuple[float, float, float, float] | None = Field(
        None, description="[x_min, x_max, y_min, y_max] metres; default: the zones' bounding box"
    )
    decay_tau_s: float | None = Field(
        None, gt=0, description="If set, the map fades with this time constant (seconds); otherwise it accumulates"
    )
    publish_interval_s: float = Field(
        30.0,
        ge=0,
        le=86400,
        description="Send the map to the aggregator as a `heatmap` event (compact 0-255 grid) every this many seconds; 0: never",
    )
    publish_max_cells: int = Field(
        2500,
        ge=16,
        le=4096,
        description="Largest grid sent per layer; a larger map is downsampled by summing blocks of cells",
    )

    @field_validator("bounds")
    @classmethod
    def _bounds(cls, v):
        if v is not None and not (v[1] > v[0] and v[3] > v[2]):
            raise ValueError("bounds must be [x_min, x_max, y_min, y_max] with x_min < x_max and y_min < y_max")
        return v


class VoiceConfig(_Strict):
    """Spoken reminder at the node's audio output (espeak-ng) when an alarm starts."""

    enabled: bool = Field(False, description="Speak the message when an alarm of `rules` starts")
    message: str = Field(
        "Attenzione: mantenete la distanza di almeno un metro.",
        min_length=1,
        max_length=500,
        description="Text to speak",
    )
    voice: str = Field("it", min_length=1, max_length=40, description="espeak-ng voice (-v)")
    speed_wpm: int = Field(150, ge=80, le=450, description="Speaking rate, words per minute (-s)")
    min_interval_s: float = Field(
        30.0, ge=0, le=86400, description="At most one reminder per zone per this interval (seconds)"
    )
    rules: list[str] = Field(
        default_factory=lambda: ["distance"], min_length=1, description="Rules whose alarm starts trigger the reminder"
    )


class RulesConfig(_Strict):
    """Rules that raise alarms; all work on ground positions in metres."""

    distance: DistanceRuleConfig = Field(
        default_factory=DistanceRuleConfig, description="Interpersonal distance violations per class pair"
    )
    contact: ContactRuleConfig = Field(
        default_factory=ContactRuleConfig, description="Time spent at close range per pair"
    )
    zones: ZoneRuleConfig = Field(default_factory=ZoneRuleConfig, description="Occupancy and density limits of zones")
    queue: QueueRuleConfig = Field(default_factory=QueueRuleConfig, description="Spacing along queue lines")
    risk: RiskRuleConfig = Field(default_factory=RiskRuleConfig, description="Dynamic risk level per zone")
    heatmap: HeatmapConfig = Field(default_factory=HeatmapConfig, description="Risk/occupancy heat map")
    voice: VoiceConfig = Field(default_factory=VoiceConfig, description="Voice reminder when alarms start")


class QueueLineConfig(_Strict):
    line: tuple[tuple[float, float], tuple[float, float]] = Field(
        description="Queue axis [[x, y], [x, y]] from the counter outwards (metres)"
    )
    corridor_m: float = Field(
        0.75, gt=0, le=10, description="People within this distance of the axis are in the queue (metres)"
    )
    min_spacing_m: float = Field(
        1.0, gt=0, le=20, description="Alarm when two neighbours in the queue are closer than this (metres)"
    )

    @field_validator("line")
    @classmethod
    def _distinct(cls, v):
        if v[0] == v[1]:
            raise ValueError("queue line start and end must differ")
        return v


class ZoneConfig(_Strict):
    """A named region of the ground plane (metres, calibration world frame) with its limits."""

    name: str = Field(min_length=1, max_length=64, description="Zone name, unique per camera")
    polygon: list[tuple[float, float]] = Field(min_length=3, description="Ground polygon vertices [x, y] in metres")
    distance_threshold_m: float | None = Field(
        None,
        gt=0,
        le=20,
        description="Distance threshold for pairs whose midpoint is in this zone (metres); overrides the rule's",
    )
    m2_per_person: float | None = Field(
        None,
        gt=0,
        le=10000,
        description="Occupancy limit = floor(area / this): square metres per person (entry regulation)",
    )
    max_people: int | None = Field(None, ge=0, description="Explicit occupancy limit (people); overrides m2_per_person")
    max_density_per_m2: float | None = Field(
        None, gt=0, le=20, description="Alarm when people per square metre exceed this"
    )
    queue: QueueLineConfig | None = Field(None, description="A queue line in this zone whose spacing is checked")
    voice: bool = Field(True, description="Allow voice reminders for alarms in this zone")

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        from vigil.geometry.zones import ZoneError, make_zone

        try:
            make_zone("zone", v)
        except ZoneError as exc:
            raise ValueError(str(exc).removeprefix("zone 'zone': ")) from None
        return v
