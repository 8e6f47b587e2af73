"""Configuration models of the ground-plane rules and zones (pydantic, unknown keys forbidden).

``vigil.edge.config`` imports these into the node configuration (``cameras[i].rules`` and
``cameras[i].zones``). Each rule's own model lives in the rule's file (``distance.py``,
``contact.py``, ...); this module assembles them into :class:`RulesConfig` and defines the
zone, heat-map and voice settings. Validators raise; nothing here reads files. Whether a zone
lies inside the calibrated area needs the calibration, so that check runs when the rules
engine is built (:func:`vigil.geometry.zones.check_zone_visible`) and in ``vigil check-config``
(:mod:`vigil.edge.validate`). ``voice.rules`` may name only :data:`RULE_NAMES`.
"""

from __future__ import annotations

import difflib

from pydantic import Field, field_validator

from vigil.geometry.zones import ZoneError, make_zone

from .contact import ContactRuleConfig
from .distance import DistanceRuleConfig, PairThresholdConfig
from .lifecycle import LifecycleConfig, Severity, StrictConfig
from .occupancy import ZoneRuleConfig
from .queue import QueueLineConfig, QueueRuleConfig
from .risk import RiskRuleConfig

__all__ = [
    "Severity",
    "LifecycleConfig",
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
    "RULE_NAMES",
]

#: names of the engine's rules (``RulesEngine.RULES``, in its order; a test keeps them equal):
#: what ``voice.rules`` may name
RULE_NAMES = ("distance", "contact", "occupancy", "density", "queue", "risk")


class HeatmapConfig(StrictConfig):
    """A risk and occupancy heat map of the camera's ground, on a grid of square cells."""

    enabled: bool = Field(
        False,
        description="Accumulate a risk/occupancy heat map on a ground grid"
        " (saved as PNG and .npy at the end of a replay)",
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
        description="Send the map to the aggregator as a `heatmap` event (compact 0-255 grid)"
        " every this many seconds; 0: never",
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


class VoiceConfig(StrictConfig):
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
        default_factory=lambda: ["distance"],
        min_length=1,
        description="Rules whose alarm starts trigger the reminder: distance, contact, occupancy, density, queue, risk",
        json_schema_extra={"items": {"enum": list(RULE_NAMES)}},
    )

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in RULE_NAMES:
                close = difflib.get_close_matches(name, RULE_NAMES, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(f"unknown rule {name!r}: {hint}known rules: {', '.join(RULE_NAMES)}")
        return v


class RulesConfig(StrictConfig):
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


class ZoneConfig(StrictConfig):
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
        try:
            make_zone("zone", v)
        except ZoneError as exc:
            raise ValueError(str(exc).removeprefix("zone 'zone': ")) from None
        return v
