"""Node configuration: one YAML file per node, validated at start.

Every model forbids unknown keys and every field carries a description. Relative paths to
video sources and calibration files are resolved against the folder of the YAML file, so a
config and its calibration travel together; the output folder is relative to the working
directory.

:func:`load_config` raises :class:`ConfigError` whose message names the file, the camera
(when the error is inside ``cameras[i]``), the field path and the line of the YAML file.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vigil.alerts.transport import is_local_endpoint
from vigil.detectors.registry import DetectorConfig, parse_detector_config
from vigil.errors import UserError
from vigil.geometry.rules.config import RulesConfig, ZoneConfig  # rule and zone models describe the ground plane
from vigil.plates.formats import region_code

__all__ = [
    "ConfigError",
    "NodeConfig",
    "CameraConfig",
    "StreamHealthConfig",
    "MAX_YAML_DEPTH",
    "load_config",
    "parse_config",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigError(UserError, ValueError):
    """The node configuration is unreadable or invalid; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GroundConfig(_Strict):
    """Ground-plane state per track (vigil.geometry.ground_filter, docs/feet.md); on by default.

    With either option on, each tracked row also carries data['world_cov'] (N, 2, 2), m^2: the
    covariance of its ground position, and the positions in events, MOT output and pictures are
    the filtered ones. Both off: the box bottom centre projected, unfiltered (the first wave).
    """

    filter: bool = Field(
        True, description="Filter each track's ground position with a constant-velocity Kalman filter (metres)"
    )
    occlusion_feet: bool = Field(
        True,
        description="Estimate the feet of people whose box bottom is not the feet (occluded by a nearer box, cut "
        "by the frame, too short) from the box top and a height prior (docs/feet.md)",
    )
    height_prior_m: float = Field(1.75, ge=1.5, le=1.9, description="Assumed height of a person, metres")
    min_person_height_m: float = Field(
        1.5, ge=1.0, le=1.9, description="A box shorter than a person this tall at its position is 'too short', metres"
    )
    max_person_height_m: float | None = Field(
        2.0,
        ge=1.8,
        le=2.5,
        description="A box taller than a person this tall at its bottom position is 'too tall' (two people merged, "
        "or a person and what stands in front): its feet are estimated from the head; null: no such test, metres",
    )
    amodal_boxes: bool = Field(
        True,
        description="Report a person's box down to the estimated feet where they were corrected (the full extent, "
        "as if unoccluded); data['visible_xyxy'] keeps the detector's box",
    )
    use_track_height: bool = Field(
        True, description="Estimate hidden feet from the track's recent unoccluded box height when known"
    )
    sigma_px: float = Field(2.0, gt=0, le=50, description="Least standard deviation of a foot point, pixels")
    sigma_box_fraction: float = Field(
        0.02, ge=0, le=0.5, description="Foot-point standard deviation as a fraction of the box height (the larger)"
    )
    corrected_sigma_factor: float = Field(
        2.0, ge=1, le=10, description="Multiplier of the pixel standard deviation of an estimated (hidden) foot"
    )
    accel_noise_m2_s3: float = Field(
        1.0, ge=0, le=100, description="Spectral density of the white-noise acceleration of a person, m^2/s^3"
    )
    forget_after_s: float = Field(2.0, gt=0, le=60, description="Forget a track's ground state after this long unseen")
    outlier_frames: int = Field(
        1,
        ge=0,
        le=10,
        description="A measured position far outside the filter's prediction (chi-square gate) is kept out for up to "
        "this many frames in a row (a box merged with a neighbour for a frame); the next one restarts the track there",
    )

    @model_validator(mode="after")
    def _heights_ordered(self) -> "GroundConfig":
        top = self.max_person_height_m
        if not self.min_person_height_m <= self.height_prior_m <= (top if top is not None else math.inf):
            raise ValueError(
                f"tracker.ground: need min_person_height_m ({self.min_person_height_m}) <= height_prior_m "
                f"({self.height_prior_m}) <= max_person_height_m ({top})"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.filter or self.occlusion_feet


class TrackerConfig(_Strict):
    """ByteTrack parameters (supervision's implementation)."""

    track_activation_threshold: float = Field(
        0.25, ge=0, le=1, description="Detections above this confidence may start a track"
    )
    lost_track_buffer_s: float = Field(
        3.0, gt=0, le=60, description="How long a lost track is kept for re-association (seconds)"
    )
    minimum_matching_threshold: float = Field(
        0.95,
        gt=0,
        le=1,
        description="Association cost limit (cost = 1 - IoU): 0.95 accepts matches down to IoU 0.05, which "
        "low-frame-rate cameras (people move a third of their width between frames at 7 fps) need",
    )
    minimum_consecutive_frames: int = Field(
        2, ge=1, le=30, description="Frames a track must be seen before it is reported"
    )
    coast_s: float = Field(
        0.6,
        ge=0,
        le=10,
        description="Keep reporting a track the detector lost (a person hidden behind another) at its predicted "
        "position for this long (seconds); such rows carry data['coasting'] = True",
    )
    coast_occluded_only: bool = Field(
        True,
        description="Coast a lost track only while a nearer detected box (lower bottom edge) covers at least "
        "coast_min_cover of its predicted box: the loss is explained by an occluder, not by the person leaving",
    )
    coast_min_cover: float = Field(
        0.3, gt=0, le=1, description="Fraction of a lost track's predicted box a nearer box must cover to coast it"
    )
    ground: GroundConfig = Field(
        default_factory=GroundConfig, description="Ground-plane state per track: filter, occlusion-aware feet"
    )


class PlatesConfig(_Strict):
    """Licence-plate reading on this camera (transits, watch lists); disabled by default."""

    enabled: bool = Field(False, description="Read plates on this camera")
    mode: Literal["gate", "traffic"] = Field(
        "gate",
        description="gate: search the ROI with no vehicle detector (plates large in frame); traffic: search inside "
        "tracked car/motorcycle/bus/truck detections",
    )
    roi: list[float] | None = Field(
        None,
        min_length=4,
        max_length=4,
        description="gate mode: region searched, [x1, y1, x2, y2] pixels (default: the whole frame)",
    )
    line: list[list[float]] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="Direction line [[xa, ya], [xb, yb]] in pixels: crossing from the right of A->B to its left is "
        "'in', the reverse 'out'",
    )
    vehicle_classes: list[str] = Field(
        default_factory=lambda: ["car", "motorcycle", "bus", "truck"],
        description="traffic mode: detector classes searched for plates",
    )
    region: str = Field(
        "IT",
        description="The camera's country: its plate formats are preferred (IT: Italian; any country code of "
        "vigil.plates.formats, e.g. SK, DE, BR), or auto (European traffic, no home country)",
    )
    watchlists: list[Path] = Field(
        default_factory=list,
        description="Watch-list CSV files (plate,list,note,valid_until), reloaded on change; relative to the YAML file",
    )
    watchlist_check_s: float = Field(
        1.0, ge=0, le=3600, description="How often the watch-list files are checked for changes (seconds)"
    )
    evidence_dir: Path | None = Field(
        None, description="Access-controlled folder for plate crops of list hits (default: none stored)"
    )
    every_n_frames: int = Field(1, ge=1, le=100, description="Read plates on every Nth frame")
    min_readings: int = Field(
        2, ge=1, le=50, description="Readings of the leading text needed for a hit alarm and a transit"
    )
    close_after_s: float = Field(
        1.0, gt=0, le=60, description="A pass ends when its plate/vehicle is not seen for this long"
    )
    min_confidence: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Readings below this calibrated plate confidence are ignored (a reading fitting no "
        "plate format scores at most half; see docs/plates.md)",
    )
    max_plates_per_frame: int = Field(4, ge=1, le=32, description="gate mode: plates read per frame")
    max_vehicles_per_frame: int = Field(
        4, ge=1, le=64, description="traffic mode: vehicles searched per frame (largest first)"
    )
    min_vehicle_px: float = Field(80, ge=8, description="traffic mode: vehicles narrower than this are not searched")
    det_max_side: int = Field(
        640, ge=64, le=2048, description="Text detector input size (longest side, pixels; small plates need 640)"
    )
    threads: int = Field(2, ge=1, le=64, description="onnxruntime threads for plate OCR")
    queue_size: int = Field(
        8,
        ge=0,
        le=1024,
        description="Plate OCR runs in a worker thread fed by a queue of this many frames; when it is full the new "
        "frame's reading is dropped (counted) instead of blocking the video loop. 0: read inline in the "
        "video loop (deterministic; for tests and benchmarks)",
    )
    detector_model: Path | None = Field(
        None,
        description="ONNX plate/text detector with the PP-OCR DB layout (input (1, 3, H, W) float, (x/255 - 0.5)/0.5, "
        "BGR; output (1, 1, H, W) text probability); default: the PP-OCRv4 detector of "
        "rapidocr-onnxruntime; relative to the YAML file",
    )
    recognizer_format: Literal["ppocr", "fast_plate_ocr"] = Field(
        "ppocr",
        description="ppocr: CTC recogniser (input (N, 3, 48, W) float; output (N, T, 1 + len(alphabet) [+ 1]), class "
        "0 the blank); fast_plate_ocr: fixed-size crop in, per-slot class probabilities over "
        "recognizer_alphabet out (fast-plate-ocr / fast-alpr / open-image-models)",
    )
    recognizer_model: Path | None = Field(
        None,
        description="ONNX plate recogniser (see recognizer_format); default: the PP-OCRv4 recogniser of "
        "rapidocr-onnxruntime; relative to the YAML file",
    )
    recognizer_alphabet: str | None = Field(
        None,
        description="ppocr: the characters after the CTC blank (default: the model's metadata); fast_plate_ocr "
        "(required): one character per output class in order, the pad character included, e.g. "
        "'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_'",
    )
    recognizer_pad: str = Field(
        "_",
        min_length=1,
        max_length=1,
        description="fast_plate_ocr: the pad character (empty slot) of recognizer_alphabet",
    )
    recognizer_input: list[int] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="fast_plate_ocr: input [height, width] in pixels (default: the model's input shape, else [64, "
        "128])",
    )
    recognizer_channels: Literal[1, 3] = Field(
        1,
        description="fast_plate_ocr: 1 (grayscale) or 3 (RGB) input channels; uint8 0-255 (float32 with the same "
        "values if the model's input is float), NHWC (NCHW when the model's shape says so)",
    )

    @field_validator("region")
    @classmethod
    def _known_region(cls, v: str) -> str:
        return region_code(v)

    @model_validator(mode="after")
    def _recognizer(self) -> "PlatesConfig":
        if self.recognizer_format == "fast_plate_ocr":
            if self.recognizer_model is None or not self.recognizer_alphabet:
                raise ValueError(
                    "plates.recognizer_format fast_plate_ocr needs recognizer_model and recognizer_alphabet"
                )
            if self.recognizer_pad not in self.recognizer_alphabet:
                raise ValueError(f"plates.recognizer_pad {self.recognizer_pad!r} is not in recognizer_alphabet")
        if self.recognizer_alphabet and len(set(self.recognizer_alphabet)) != len(self.recognizer_alphabet):
            raise ValueError("plates.recognizer_alphabet has repeated characters")
        if self.recognizer_input is not None and min(self.recognizer_input) < 8:
            raise ValueError(
                f"plates.recognizer_input must be [height, width] of at least 8 pixels, got {self.recognizer_input}"
            )
        return self

    @model_validator(mode="after")
    def _roi(self) -> "PlatesConfig":
        if self.roi is not None and (self.roi[2] <= self.roi[0] or self.roi[3] <= self.roi[1]):
            raise ValueError(f"plates.roi must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1, got {self.roi}")
        if self.line is not None and any(len(pt) != 2 for pt in self.line):
            raise ValueError("plates.line must be two points [[xa, ya], [xb, yb]]")
        return self


class StreamHealthConfig(_Strict):
    """Stream-health checks on the decoded frames (vigil.edge.health): blank, frozen and garbled
    pictures, and no detections for a long time, reported as camera_health events and in the
    status. The defaults were chosen by measurement (vtest.avi and corrupted copies of it: see
    vigil.edge.health); no clean frame of those trips them."""

    enabled: bool = Field(True, description="Check the stream's health")
    check_interval_s: float = Field(
        0.5, gt=0, le=60, description="Measure a frame every this many seconds of stream time (about 3 ms each)"
    )
    blank_after_s: float = Field(5.0, gt=0, le=3600, description="A blank picture for this long is reported (s)")
    blank_uniform: float = Field(
        0.95,
        gt=0,
        le=1,
        description="Blank: at least this fraction of a grey thumbnail within +-4 grey levels of its median",
    )
    blank_std: float = Field(
        2.0, ge=0, le=255, description="Blank: also a thumbnail standard deviation below this (grey levels)"
    )
    frozen_after_s: float = Field(
        20.0,
        gt=0,
        le=86400,
        description="A picture that does not change for this long is reported (s); above a codec's key-frame interval",
    )
    frozen_change: float = Field(
        0.25,
        ge=0,
        le=255,
        description="Frozen: mean absolute difference between two checks' thumbnails below this (grey levels)",
    )
    frozen_fraction: float = Field(
        0.8, gt=0, le=1, description="Frozen: at least this fraction of the checks within frozen_after_s"
    )
    garbled_after_s: float = Field(5.0, gt=0, le=3600, description="Window of the garbled vote (s)")
    garbled_blocks: float = Field(
        0.15,
        gt=0,
        le=1,
        description="Garbled frame: at least this fraction of its 16x16 blocks flat, smeared or with block-edge steps",
    )
    garbled_fraction: float = Field(
        0.25, gt=0, le=1, description="Garbled: at least this fraction of the checks within garbled_after_s"
    )
    no_detections_after_s: float | None = Field(
        600.0,
        gt=0,
        le=7 * 86400,
        description="No detection of any class for this long is reported (s); null: off (e.g. a scene that is "
        "legitimately empty for hours)",
    )
    clear_after_s: float = Field(
        5.0, ge=0, le=3600, description="A bad state ends when its condition has not held for this long (s)"
    )


class CameraConfig(_Strict):
    """One camera served by this node."""

    name: str = Field(description="Camera name: letters, digits, '_', '.', '-'; unique on the node")
    source: str = Field(description="Video file path, rtsp:// or http(s):// URL, or a device index / /dev/videoN")
    fps: float | None = Field(
        None, gt=0, le=240, description="Frame rate to assume for a recorded file (overrides the container header)"
    )
    calibration: Path = Field(description="Vigil calibration file (YAML) mapping image pixels to ground metres")
    zones: list[ZoneConfig] = Field(default_factory=list, description="Ground-plane zones (metres)")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Rules that raise alarms")
    enabled: bool = Field(True, description="Set false to keep a camera in the file without running it")
    loop: bool = Field(
        False, description="Replay a recorded file again from the start when it ends (soak tests, demos)"
    )
    plates: PlatesConfig = Field(
        default_factory=PlatesConfig,
        description="Licence-plate reading (gate or traffic mode), transits and watch lists",
    )
    health: StreamHealthConfig = Field(
        default_factory=StreamHealthConfig,
        description="Stream-health checks: blank, frozen, garbled pictures, no detections (camera_health events)",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"invalid camera name {v!r}: use letters, digits, '_', '.', '-' (max 64)")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("source is empty")
        return v

    @model_validator(mode="after")
    def _unique_zones(self) -> "CameraConfig":
        names = [z.name for z in self.zones]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate zone names: {dupes}")
        return self


class AggregatorLinkConfig(_Strict):
    endpoint: str = Field("tcp://127.0.0.1:5555", description="ZeroMQ endpoint of the aggregator's ingest socket")
    publish: bool = Field(True, description="Send events to the aggregator (false: only local outputs)")
    flush_timeout_s: float = Field(
        5.0, ge=0, le=600, description="At the end of a replay, wait this long for acknowledgements"
    )
    outbox_dir: Path | None = Field(
        None,
        description="Folder of the durable event outboxes (one SQLite file per camera, CAMERA.outbox.db): events wait "
        "there until the aggregator acknowledges them, across restarts, and each camera's seq continues "
        "from it; default <output.dir>/outbox; relative to the working directory",
    )
    keys_dir: Path | None = Field(
        None,
        description="CURVE keys folder holding KEY_NAME.key_secret and aggregator.key (see `vigil keys new`); "
        "required for a non-loopback endpoint; relative to the working directory",
    )
    key_name: str | None = Field(None, description="This node's key name in keys_dir (default: the node name)")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not re.match(r"^(tcp|ipc|inproc)://\S+$", v):
            raise ValueError(f"not a ZeroMQ endpoint: {v!r} (expected tcp://host:port or ipc://path)")
        return v

    @model_validator(mode="after")
    def _security(self) -> "AggregatorLinkConfig":
        if self.publish and self.keys_dir is None and not is_local_endpoint(self.endpoint):
            raise ValueError(f"endpoint {self.endpoint} is not loopback: set keys_dir (CURVE keys) to reach it")
        if self.key_name is not None and self.keys_dir is None:
            raise ValueError("key_name needs keys_dir")
        return self


class OutputConfig(_Strict):
    dir: Path = Field(
        Path("out"),
        description="Folder for replay outputs (annotated video, bird's-eye PNG); relative to the working directory",
    )
    annotated_video: bool = Field(True, description="Write an annotated video for recorded replays")
    birdseye: bool = Field(True, description="Write a bird's-eye PNG of tracks and violations for recorded replays")


class OperationsConfig(_Strict):
    """How the node supervises its workers and reports its health."""

    status_dir: Path = Field(
        Path("out/status"),
        description="Folder where each camera worker writes its status (CAMERA.json) for `vigil status` and the "
        "metrics endpoint; relative to the working directory",
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Serve Prometheus metrics on this port (null: no endpoint)"
    )
    metrics_host: str = Field("127.0.0.1", description="Address the metrics endpoint binds to")
    max_restarts: int = Field(
        5,
        ge=0,
        le=1000,
        description="Restarts of a crashed or stuck worker allowed within restart_window_s; then the camera is marked "
        "failed",
    )
    restart_window_s: float = Field(300.0, gt=0, le=86400, description="Window for max_restarts (seconds)")
    restart_backoff_s: float = Field(
        2.0,
        ge=0,
        le=600,
        description="Wait before restarting a worker, doubled after each restart in the window (seconds)",
    )
    stuck_after_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="A connected worker that processes no frame for this long is restarted (seconds)",
    )
    shutdown_timeout_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="On stop, how long workers get to finish their frame and flush their outboxes (seconds)",
    )
    shared_detector: bool = Field(
        True,
        description="With several cameras, run one detector process shared by all of them (frames through shared "
        "memory, batches across cameras) instead of one model per worker",
    )
    detector_max_batch: int = Field(
        2,
        ge=1,
        le=64,
        description="Largest batch the shared detector forms across cameras (CPU: 1-2; GPU: up to the number of "
        "cameras)",
    )
    detector_max_wait_ms: float = Field(
        5.0, ge=0, le=1000, description="How long the shared detector waits to fill a batch (milliseconds)"
    )


class NodeConfig(_Strict):
    """A Vigil edge node: its cameras, detector, tracker, rules and aggregator link."""

    version: Literal[1] = Field(1, description="Config format version")
    node: str = Field("vigil-node", description="Node name, used in logs")
    detector: DetectorConfig = Field(
        default_factory=parse_detector_config, description="Detector backend and its settings"
    )
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Multi-object tracker")
    aggregator: AggregatorLinkConfig = Field(default_factory=AggregatorLinkConfig, description="Where alarm events go")
    output: OutputConfig = Field(default_factory=OutputConfig, description="Replay outputs")
    operations: OperationsConfig = Field(
        default_factory=OperationsConfig, description="Supervision, status and metrics"
    )
    cameras: list[CameraConfig] = Field(min_length=1, description="Cameras served by this node")

    @model_validator(mode="after")
    def _unique_cameras(self) -> "NodeConfig":
        names = [c.name for c in self.cameras]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate camera names: {dupes}")
        return self

    @model_validator(mode="after")
    def _sure_needs_ground(self) -> "NodeConfig":
        """``rules.distance.decision: sure`` decides on each pair's distance sigma, which only the
        ground stage (``tracker.ground``) gives: refused without it (naming every such camera)."""
        if self.tracker.ground.enabled:
            return self
        sure = [c.name for c in self.cameras if c.rules.distance.enabled and c.rules.distance.decision == "sure"]
        if sure:
            cams = ("camera " if len(sure) == 1 else "cameras ") + ", ".join(repr(n) for n in sure)
            raise ValueError(
                f"{cams}: rules.distance.decision: 'sure' needs the position covariances of the ground"
                " stage; enable tracker.ground (filter: true or occlusion_feet: true) or use decision: point"
            )
        return self

    def camera(self, name: str | None = None) -> CameraConfig:
        """The named camera, or the first enabled one."""
        for cam in self.cameras:
            if (name is None and cam.enabled) or cam.name == name:
                return cam
        raise ConfigError(f"no camera named {name!r}; cameras: {[c.name for c in self.cameras]}")


# ---------------------------------------------------------------------------- loading
#: deepest nesting of mappings and lists a config may have (a real one has fewer than 10 levels); deeper is refused
#: before PyYAML's recursive composer and constructor would overflow Python's stack
MAX_YAML_DEPTH = 64


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key (for error messages) and refuses
    nesting deeper than :data:`MAX_YAML_DEPTH`."""

    _depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201 - PyYAML's signature
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(
                    f"line {mark.line + 1}: nested deeper than {MAX_YAML_DEPTH} levels (lists or mappings); "
                    "a node config has no such nesting"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    mapping = {}
    lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        mapping[key] = loader.construct_object(value_node, deep=deep)
        lines[key] = key_node.start_mark.line + 1
    loader.key_lines[id(mapping)] = lines
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_of(data: Any, loc: tuple, key_lines: dict) -> int | None:
    line = None
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            line = key_lines.get(id(node), {}).get(part, line)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            break
    return line


def _format_errors(exc: ValidationError, data: Any, source: str, key_lines: dict) -> str:
    lines = [f"{source}: invalid configuration ({exc.error_count()} error{'s' if exc.error_count() > 1 else ''})"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
            cams = data.get("cameras") if isinstance(data, dict) else None
            name = (
                cams[loc[1]].get("name")
                if isinstance(cams, list) and loc[1] < len(cams) and isinstance(cams[loc[1]], dict)
                else None
            )
            where = f"camera {name!r}: " if name else f"camera #{loc[1] + 1}: "
        # discriminated unions put the tag in the path; hide it
        field_path = ".".join(str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-")))
        line = _line_of(data, loc, key_lines)
        at = f" (line {line})" if line else ""
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        if where or field_path:
            lines.append(f"  {where}{field_path}{at}: {msg}")
        else:  # a whole-config check (NodeConfig's validators): the message names camera and field
            lines.append(f"  {msg.removeprefix('Value error, ')}")
    return "\n".join(lines)


def parse_config(text: str, source: str = "<config>", base_dir: Path | None = None) -> NodeConfig:
    """Validate YAML text; relative paths resolve against ``base_dir``."""
    loader = _LineLoader(text)
    loader.key_lines = {}
    try:
        data = loader.get_single_data()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:  # a backstop: the depth limit above comes first
        raise ConfigError(f"{source}: not valid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        cfg = NodeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, data, source, loader.key_lines)) from None
    if base_dir is not None:
        cfg = _resolve_paths(cfg, base_dir)
    return cfg


def _resolve_path(p: Path, base: Path) -> Path:
    p = p.expanduser()
    return p if p.is_absolute() else (base / p)


def _is_url_or_device(source: str) -> bool:
    return "://" in source or source.isdigit() or source.startswith("/dev/")


def _resolve_paths(cfg: NodeConfig, base: Path) -> NodeConfig:
    cameras = []
    for cam in cfg.cameras:
        update: dict[str, Any] = {"calibration": _resolve_path(cam.calibration, base)}
        if not _is_url_or_device(cam.source):
            update["source"] = str(_resolve_path(Path(cam.source), base))
        plates_update: dict[str, Any] = {}
        if cam.plates.watchlists:
            plates_update["watchlists"] = [_resolve_path(Path(w), base) for w in cam.plates.watchlists]
        for name in ("detector_model", "recognizer_model"):
            value = getattr(cam.plates, name)
            if value is not None:
                plates_update[name] = _resolve_path(Path(value), base)
        if plates_update:
            update["plates"] = cam.plates.model_copy(update=plates_update)
        cameras.append(cam.model_copy(update=update))
    return cfg.model_copy(update={"cameras": cameras, "detector": _resolve_detector_paths(cfg.detector, base)})


def _resolve_detector_paths(det: Any, base: Path) -> Any:
    """Resolve the detector settings that name files (each backend config lists them in its
    ``file_fields``) relative to the config file's folder."""
    update: dict[str, Any] = {}
    for name in getattr(type(det), "file_fields", ()):
        value = getattr(det, name, None)
        if isinstance(value, Path):
            update[name] = _resolve_path(value, base)
        elif isinstance(value, str) and value:
            # e.g. ultralytics' `model`, which may also be a bare name such as yolo11n.yaml
            candidate = _resolve_path(Path(value), base)
            if candidate.exists():
                update[name] = str(candidate)
    return det.model_copy(update=update) if update else det


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate a node config file; raises :class:`ConfigError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    return parse_config(text, source=str(path), base_dir=path.resolve().parent)
