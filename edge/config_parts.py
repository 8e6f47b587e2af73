"""The sections of a node configuration: strict pydantic models with a description per field.

:class:`~vigil.edge.config.NodeConfig` (the whole node) and
:class:`~vigil.edge.config.CameraConfig` (one camera) in ``vigil.edge.config`` are assembled
from these: the tracker and its ground-plane stage, licence-plate reading and stream-health
checks per camera, the aggregator link, replay outputs and worker supervision. Each model
checks only its own fields; checks that span sections, and reading the YAML file, live in
``vigil.edge.config``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vigil.alerts.transport import is_local_endpoint
from vigil.plates.formats import region_code
from vigil.plates.fusion import CROSS_CHECK_DEFAULT

__all__ = [
    "StrictModel",
    "GroundConfig",
    "TrackerConfig",
    "PlatesConfig",
    "StreamHealthConfig",
    "AggregatorLinkConfig",
    "MediaConfig",
    "OutputConfig",
    "OperationsConfig",
]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are refused and a parsed config is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GroundConfig(StrictModel):
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


class TrackerConfig(StrictModel):
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
    detect_every: int = Field(
        1,
        ge=1,
        le=30,
        description="Run the detector on every k-th frame only (1: every frame); on the frames between, the "
        "tracks are carried forward (see carry) and their rows flagged data['carried'] = True; "
        "minimum_consecutive_frames then counts detection frames (vigil.edge.carry, bench/README.md)",
    )
    carry: Literal["predict", "flow"] = Field(
        "predict",
        description="How tracks are carried over the frames without detections: predict (constant velocity "
        "from the last two detections, not a ground measurement) or flow (sparse optical flow inside each box, "
        "a ground measurement; data['flow'] = True)",
    )
    ground: GroundConfig = Field(
        default_factory=GroundConfig, description="Ground-plane state per track: filter, occlusion-aware feet"
    )


class PlatesConfig(StrictModel):
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
    evidence_retention_days: float = Field(
        7.0,
        gt=0,
        le=3650,
        description="Plate crops in evidence_dir older than this many days are deleted, checked hourly (days; "
        "default 7: the limit for municipal urban-security footage, DL 11/2009 art. 6; see docs/retention.md)",
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
    cross_check: Literal["off", "unsure", "always"] = Field(
        CROSS_CHECK_DEFAULT,
        description="Vigil's own plate line recogniser (trained on synthetic plates only, shipped in the "
        "package) reads the same line crops as the ppocr recogniser; where the two disagree, a reading that "
        "fits a plate format wins, else the product of their likelihoods decides, and the reading is not "
        "sure: unsure checks only the readings the first recogniser is not sure of, always every plate, "
        "off none. Ignored with fast_plate_ocr",
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


class StreamHealthConfig(StrictModel):
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


def _zmq_endpoint(v: str) -> str:
    if not re.match(r"^(tcp|ipc|inproc)://\S+$", v):
        raise ValueError(f"not a ZeroMQ endpoint: {v!r} (expected tcp://host:port or ipc://path)")
    return v


class AggregatorLinkConfig(StrictModel):
    """Where the node sends its events: one or several aggregators over ZeroMQ (CURVE keys beyond
    loopback), through a durable outbox per camera."""

    endpoint: str = Field("tcp://127.0.0.1:5555", description="ZeroMQ endpoint of the aggregator's ingest socket")
    endpoints: list[str] | None = Field(
        None,
        min_length=1,
        max_length=16,
        description="Several aggregators sharing one PostgreSQL database (active-active): their ingest endpoints; "
        "the node connects to all and each batch goes to one that is up (replaces endpoint)",
    )
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
        return _zmq_endpoint(v)

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        if len(set(v)) != len(v):
            raise ValueError("an endpoint is listed twice")
        return [_zmq_endpoint(e) for e in v]

    @property
    def ingest_endpoints(self) -> list[str]:
        """Every aggregator ingest endpoint to connect to (``endpoints``, else ``endpoint``)."""
        return list(self.endpoints) if self.endpoints else [self.endpoint]

    @model_validator(mode="after")
    def _security(self) -> "AggregatorLinkConfig":
        if "endpoint" in self.model_fields_set and self.endpoints:
            raise ValueError("give endpoint (one aggregator) or endpoints (several), not both")
        for endpoint in self.ingest_endpoints:
            if self.publish and self.keys_dir is None and not is_local_endpoint(endpoint):
                raise ValueError(f"endpoint {endpoint} is not loopback: set keys_dir (CURVE keys) to reach it")
        if self.key_name is not None and self.keys_dir is None:
            raise ValueError("key_name needs keys_dir")
        return self


class MediaConfig(StrictModel):
    """Pictures of what happened: a privacy-masked snapshot at each alarm's start, a short clip of
    each plate hit (both evidence, under the retention), and the live tiles (one masked picture
    per camera with the overlay, overwritten, never kept). See docs/privacy-media.md."""

    record: bool = Field(
        True,
        description="false: the 'nothing is recorded' mode: no camera picture of any kind is written (no "
        "snapshot, clip, plate crop, tile or annotated video) and alarm start events carry recording: off",
    )
    evidence_dir: Path | None = Field(
        None,
        description="Access-controlled folder (mode 0700) for alarm snapshots and plate clips, shared by the "
        "node's cameras; null: none stored; relative to the working directory",
    )
    evidence_retention_days: float = Field(
        7.0,
        gt=0,
        le=3650,
        description="Snapshots and clips in evidence_dir older than this many days are deleted, checked hourly "
        "(days; default 7: DL 11/2009 art. 6)",
    )
    mask: Literal["pixelate", "silhouette"] = Field(
        "pixelate",
        description="How people are hidden in every picture: pixelate (blocks of 1/8 of the person's height, "
        "a head is one block) or silhouette (a flat grey box); faces are never shown",
    )
    mask_classes: list[str] = Field(
        default_factory=lambda: ["person"], description="Detector classes masked in every picture"
    )
    clip_s: float = Field(
        3.0, ge=0, le=10, description="Seconds of video before a plate hit kept as its clip (H.264); 0: no clips"
    )
    clip_fps: float = Field(
        10.0,
        gt=0,
        le=30,
        description="Frame rate of plate clips, at most the camera's (frames/s)",
        json_schema_extra={"unit": "frames/s"},
    )
    clip_max_width_px: int = Field(
        640, ge=160, le=1920, description="Plate clips are shrunk to at most this width (pixels)"
    )
    tiles_dir: Path | None = Field(
        None,
        description="Folder where each camera's live tile <camera>.jpg is overwritten (null: no tiles); relative "
        "to the working directory",
    )
    tile_interval_s: float = Field(1.0, ge=0.2, le=60, description="Time between two tiles of a camera (seconds)")
    tile_max_width_px: int = Field(640, ge=160, le=1920, description="Tiles are shrunk to at most this width (pixels)")


class OutputConfig(StrictModel):
    """Files a recorded replay writes: the annotated video and the bird's-eye PNG."""

    dir: Path = Field(
        Path("out"),
        description="Folder for replay outputs (annotated video, bird's-eye PNG); relative to the working directory",
    )
    annotated_video: bool = Field(True, description="Write an annotated video for recorded replays")
    birdseye: bool = Field(True, description="Write a bird's-eye PNG of tracks and violations for recorded replays")
    media: MediaConfig = Field(
        default_factory=MediaConfig,
        description="Alarm snapshots, plate clips, live tiles and the privacy mask of every picture",
    )


class OperationsConfig(StrictModel):
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
