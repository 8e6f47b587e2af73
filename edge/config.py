"""Node configuration: one YAML file per node, validated at start.

Every model forbids unknown keys and every field carries a description. Relative paths to
video sources and calibration files are resolved against the folder of the YAML file, so a
config and its calibration travel together; the output folder is relative to the working
directory.

The sections of a config (tracker, plates, stream health, aggregator link, outputs,
operations) are models in :mod:`vigil.edge.config_parts`; this module assembles them into
:class:`CameraConfig` and :class:`NodeConfig`, checks what spans sections, and reads the YAML
file (key line numbers, a nesting-depth limit) and resolves its relative paths.

:func:`load_config` raises :class:`ConfigError` whose message names the file, the camera
(when the error is inside ``cameras[i]``), the field path and the line of the YAML file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from vigil.detectors.registry import DetectorConfig, parse_detector_config
from vigil.edge.config_parts import (
    AggregatorLinkConfig,
    OperationsConfig,
    OutputConfig,
    PlatesConfig,
    StreamHealthConfig,
    StrictModel,
    TrackerConfig,
)
from vigil.errors import UserError
from vigil.geometry.rules.config import RulesConfig, ZoneConfig  # rule and zone models describe the ground plane

__all__ = [
    "ConfigError",
    "NodeConfig",
    "CameraConfig",
    "MAX_YAML_DEPTH",
    "load_config",
    "parse_config",
    "key_line_finder",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigError(UserError, ValueError):
    """The node configuration is unreadable or invalid; the message says where."""


class CameraConfig(StrictModel):
    """One camera served by this node."""

    name: str = Field(description="Camera name: letters, digits, '_', '.', '-'; unique on the node")
    source: str = Field(description="Video file path, rtsp:// or http(s):// URL, or a device index / /dev/videoN")
    fps: float | None = Field(
        None,
        gt=0,
        le=240,
        description="Frame rate to assume for a recorded file (overrides the container header)",
        json_schema_extra={"unit": "frames/s"},
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


class NodeConfig(StrictModel):
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


def key_line_finder(path: str | Path) -> Callable[[Sequence], int | None]:
    """``find(loc) -> line``: the 1-based line of the key at ``loc`` (``("cameras", 0, "zones", 1,
    "polygon")``) in the YAML file ``path``; a key not in the file (a default) inside
    ``cameras[i]`` gives the line of that camera's ``name``; ``None`` when the file does not parse
    or nothing fits."""
    try:
        loader = _LineLoader(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return lambda loc: None
    loader.key_lines = {}
    try:
        data = loader.get_single_data()
    except (ConfigError, yaml.YAMLError, RecursionError):
        return lambda loc: None
    finally:
        loader.dispose()

    def find(loc: Sequence) -> int | None:
        loc = tuple(loc)
        node = data
        for part in loc[:-1]:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            else:
                node = None
                break
        last = loc[-1] if loc else None
        if (isinstance(node, dict) and last in node) or (
            isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node)
        ):
            return _line_of(data, loc, loader.key_lines)
        if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
            return _line_of(data, ("cameras", loc[1], "name"), loader.key_lines)
        return None

    return find
