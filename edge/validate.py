"""Checks of a parsed node config against the files and the calibration it names.

:func:`check_node` is the one validation both ``vigil check-config`` and ``vigil run`` (before any
camera starts) call, so ``check-config`` refuses whatever ``run`` would refuse. Pydantic
(:mod:`vigil.edge.config`) has already checked each field alone; this checks what needs the
files: every calibration loads; every zone and queue line (metres) lies on the ground the
camera sees (:func:`vigil.geometry.zones.zone_coverage`: the calibrated image projected onto
the ground, in front of the camera, within 100 m; under 50 % of a zone's area there is an
error, partly outside a warning); the rules build and name only classes of the detector; the
video file, model, class-name, watch-list and key files exist; source URLs are well formed;
the folders the node writes are writable. Nothing here loads a detector model; a model's
metadata (class names) is read from its file.

Every problem is a :class:`Problem` naming the camera, the field and, where the YAML loader
knows it, the file and line; :func:`check_node` returns them all, errors and warnings, in
config order. :func:`raise_for_errors` turns the errors into one :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence
from urllib.parse import urlsplit

from vigil.edge.config import CameraConfig, ConfigError, NodeConfig, key_line_finder

__all__ = ["Problem", "check_node", "raise_for_errors", "format_problems", "URL_SCHEMES"]

#: URL schemes a camera ``source`` may use (FFmpeg's network inputs, through OpenCV)
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "file")


@dataclass(frozen=True)
class Problem:
    """One finding: ``level`` error (``run`` refuses the config) or warning (it runs, but not as
    meant); ``camera`` (``None``: node-wide), ``field`` (dotted path inside the camera, or from the
    top for node-wide fields), ``message``, and the config file's ``line`` of the field when known."""

    level: Literal["error", "warning"]
    camera: str | None
    field: str
    message: str
    line: int | None = None
    source: str | None = None

    def __str__(self) -> str:
        where = f"camera {self.camera!r}: " if self.camera is not None else ""
        at = (
            f" ({self.source}:{self.line})"
            if self.line and self.source
            else (f" (line {self.line})" if self.line else "")
        )
        return f"{where}{self.field}: {self.message}{at}"


class _Collector:
    def __init__(self, source: str | None, lines: Callable[[Sequence], int | None]) -> None:
        self.source, self.lines, self.problems = source, lines, []

    def add(self, level: str, camera: tuple[int, str] | None, loc: Sequence, message: str) -> None:
        full = (("cameras", camera[0]) if camera else ()) + tuple(loc)
        field = "".join(f"[{p}]" if isinstance(p, int) else ("." if i else "") + str(p) for i, p in enumerate(loc))
        self.problems.append(
            Problem(level, camera[1] if camera else None, field, message, self.lines(full), self.source)  # type: ignore[arg-type]
        )


def check_node(
    cfg: NodeConfig,
    config_path: str | Path | None = None,
    *,
    cameras: Iterable[str] | None = None,
    source_override: str | None = None,
) -> list[Problem]:
    """Every problem of ``cfg`` (see the module docstring), errors and warnings in config order.

    ``config_path``: the YAML file ``cfg`` was read from (its lines are quoted). ``cameras``: check
    only these cameras (``vigil run --camera``; default: all, disabled ones too).
    ``source_override``: ``vigil run --source``, checked instead of the camera's ``source``.
    """
    lines = key_line_finder(config_path) if config_path is not None else (lambda loc: None)
    out = _Collector(str(config_path) if config_path is not None else None, lines)
    wanted = set(cameras) if cameras is not None else None
    class_names = _detector(cfg.detector, out)
    for i, cam in enumerate(cfg.cameras):
        if wanted is None or cam.name in wanted:
            _camera(cfg, (i, cam.name), cam, class_names, source_override, out)
    _node_files(cfg, out)
    _media(cfg, class_names, out)
    return out.problems


def format_problems(problems: Sequence[Problem], config_path: str | Path) -> str:
    """The errors, then the warnings, one per line under a heading naming the file."""
    errors = [p for p in problems if p.level == "error"]
    warnings = [p for p in problems if p.level == "warning"]
    head = f"{config_path}: invalid configuration" if errors else f"{config_path}: warnings"
    return "\n".join([head] + [f"  {p}" for p in errors] + [f"  warning: {p}" for p in warnings])


def raise_for_errors(problems: Sequence[Problem], config_path: str | Path) -> None:
    """Raise one :class:`ConfigError` listing every error of ``problems`` (warnings left out)."""
    errors = [p for p in problems if p.level == "error"]
    if errors:
        raise ConfigError(format_problems(errors, config_path))


# ------------------------------------------------------------------------------------ cameras
def _camera(cfg, cam_ref, cam: CameraConfig, class_names, source_override, out: _Collector) -> None:
    from vigil.geometry.calibration_io import load_camera  # noqa: PLC0415 - numpy/yaml, only when checking

    _source(cam_ref, source_override if source_override else cam.source, out, overridden=bool(source_override))
    try:
        model = load_camera(cam.calibration)
    except Exception as exc:  # noqa: BLE001 - any failure to load is this camera's problem
        out.add("error", cam_ref, ("calibration",), str(exc))
        model = None
    zones_ok = _zones(cam_ref, cam, model, out) if model is not None else False
    engine = None
    if model is not None:
        from vigil.geometry.rules import RulesEngine  # noqa: PLC0415
        from vigil.geometry.zones import ZoneError  # noqa: PLC0415

        try:  # what the worker builds (the zones were judged above, each with its field)
            engine = RulesEngine(cam.rules, cam.zones, camera=model if zones_ok else None)
        except (ZoneError, ValueError) as exc:
            out.add("error", cam_ref, ("rules",), str(exc))
    if engine is not None and class_names is not None:
        _rule_classes(cam_ref, cam, engine, class_names, out)
    if cam.plates.enabled:
        _plates(cam_ref, cam, out)


#: the config section of each engine rule's classes
_CLASS_FIELDS = {
    "distance": "distance",
    "contact": "contact",
    "occupancy": "zones",
    "density": "zones",
    "queue": "queue",
    "risk": "risk",
}


def _rule_classes(cam_ref, cam: CameraConfig, engine, class_names: Sequence[str], out: _Collector) -> None:
    """Every class an active rule (or the heat map) names must be a detector class (the worker's check)."""
    known = set(class_names)
    sections: dict[str, set[str]] = {}
    for name, rule in engine.rules.items():
        sections.setdefault(_CLASS_FIELDS.get(name, name), set()).update(rule.classes)
    if engine.heatmap is not None:
        sections.setdefault("risk", set()).update(cam.rules.risk.classes)
    for section, classes in sections.items():
        for cls in sorted(classes - known):
            close = difflib.get_close_matches(cls, class_names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            out.add(
                "error",
                cam_ref,
                ("rules", section, "classes"),
                f"{cls!r} is not a class of the detector: {hint}({_short(class_names)})",
            )


def _short(names: Sequence[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names)} classes)" if len(names) > n else "")


def _source(cam_ref, source: str, out: _Collector, overridden: bool) -> None:
    loc = ("source",) if not overridden else ("source (--source)",)
    if source.isdigit():
        return
    if source.startswith("/dev/video"):
        if not Path(source).exists():
            out.add("warning", cam_ref, loc, f"device {source} is not present (the worker waits for it)")
        return
    if "://" in source:
        try:
            url = urlsplit(source)
            url.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            out.add("error", cam_ref, loc, f"not a valid URL: {exc}")
            return
        scheme = url.scheme.lower()
        if scheme not in URL_SCHEMES:
            close = difflib.get_close_matches(scheme, URL_SCHEMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.add(
                "error", cam_ref, loc, f"unsupported URL scheme {url.scheme!r}{hint}; known: {', '.join(URL_SCHEMES)}"
            )
            return
        if scheme == "file":
            source = url.path
        elif not url.hostname:
            out.add("error", cam_ref, loc, f"URL {source!r} names no host")
            return
        else:
            return
    if not Path(source).is_file():
        out.add("error", cam_ref, loc, f"{source}: video file not found")


def _zones(cam_ref, cam: CameraConfig, model, out: _Collector) -> bool:
    """Zones and queue lines against the ground the camera sees; False when one is an error."""
    from vigil.geometry.zones import (  # noqa: PLC0415 - shapely: only cameras with zones
        MIN_VISIBLE_FRACTION,
        ZoneError,
        check_zone_visible,
        line_coverage,
        make_zone,
    )

    ok = True
    for j, zc in enumerate(cam.zones):
        zone = make_zone(zc.name, zc.polygon)
        try:
            frac = check_zone_visible(zone, model)
        except ZoneError as exc:
            out.add("error", cam_ref, ("zones", j, "polygon"), str(exc))
            ok = False
        else:
            if frac < 1.0:
                out.add(
                    "warning",
                    cam_ref,
                    ("zones", j, "polygon"),
                    f"zone {zc.name!r}: {100 * (1 - frac):.0f} % of its {zone.area_m2:.1f} m^2 is outside the ground "
                    "the camera sees; nobody is counted there",
                )
        if zc.queue is not None:
            frac = line_coverage(zc.queue.line, model)
            loc = ("zones", j, "queue", "line")
            if frac < MIN_VISIBLE_FRACTION:
                out.add(
                    "error",
                    cam_ref,
                    loc,
                    f"zone {zc.name!r}: queue line lies outside the calibrated area: only "
                    f"{100 * frac:.0f} % of its length is on the ground the camera sees (at least "
                    f"{100 * MIN_VISIBLE_FRACTION:.0f} % must be)",
                )
                ok = False
            elif frac < 1.0:
                out.add(
                    "warning",
                    cam_ref,
                    loc,
                    f"zone {zc.name!r}: {100 * (1 - frac):.0f} % of the queue line is outside the ground the camera "
                    "sees",
                )
    return ok


def _plates(cam_ref, cam: CameraConfig, out: _Collector) -> None:
    from vigil.plates.watchlists import parse_list  # noqa: PLC0415 - only cameras reading plates

    p = cam.plates
    for j, path in enumerate(p.watchlists):
        loc = ("plates", "watchlists", j)
        if not Path(path).is_file():
            out.add("warning", cam_ref, loc, f"{path}: no such file (the list is empty until it appears)")
            continue
        try:
            _, errors = parse_list(Path(path).read_text(encoding="utf-8-sig"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            out.add("error", cam_ref, loc, f"{path}: cannot read: {exc}")
            continue
        for e in errors:
            out.add("warning", cam_ref, loc, f"malformed row skipped: {e}")
    for name in ("detector_model", "recognizer_model"):
        value = getattr(p, name)
        if value is not None and not Path(value).is_file():
            out.add("error", cam_ref, ("plates", name), f"model file not found: {value}")
    if p.detector_model is None or (p.recognizer_model is None and p.recognizer_format == "ppocr"):
        from vigil.plates.ocr import OcrUnavailable, default_model_dir  # noqa: PLC0415

        try:
            folder = default_model_dir()
        except OcrUnavailable as exc:
            out.add("error", cam_ref, ("plates",), str(exc))
        else:
            wanted = ["ch_PP-OCRv4_det_infer.onnx"] if p.detector_model is None else []
            wanted += ["ch_PP-OCRv4_rec_infer.onnx"] if p.recognizer_model is None else []
            for f in wanted:
                if not (folder / f).is_file():
                    out.add("error", cam_ref, ("plates",), f"default OCR model not found: {folder / f}")
    if p.evidence_dir is not None:
        _writable(cam_ref, ("plates", "evidence_dir"), Path(p.evidence_dir), out)


# ------------------------------------------------------------------------------------ node-wide
def _detector(det: Any, out: _Collector) -> list[str] | None:
    """File checks of the detector config; its class names when they can be read without loading
    the model (a names file, or an ONNX file's metadata), else ``None``."""
    from vigil.models.errors import ModelError  # noqa: PLC0415
    from vigil.models.metadata import read_names_file, read_onnx_info  # noqa: PLC0415

    missing = False
    for name in getattr(type(det), "file_fields", ()):
        value = getattr(det, name, None)
        if value is None or "cache" in name:  # a cache folder is made when needed
            continue
        path = Path(value)
        if isinstance(value, str) and path.suffix not in (".pt", ".onnx"):
            continue  # e.g. ultralytics' model: a .yaml name ultralytics knows
        if not path.is_file():
            out.add("error", None, ("detector", name), f"file not found: {path}")
            missing = True
    if missing:
        return None
    try:
        if det.type == "onnx" and det.model is None:
            from vigil.models.cache import PREPARE_HINT, default_weights_path, resolve_default_model  # noqa: PLC0415

            if not default_weights_path().is_file():
                out.add("error", None, ("detector", "model"), " ".join(x.strip() for x in PREPARE_HINT.splitlines()))
                return None
            if getattr(det, "class_names", None) is None:  # the cached conversion's metadata (converted once)
                return list(resolve_default_model()[1]) or None
        if getattr(det, "class_names", None) is not None:
            return list(read_names_file(det.class_names))
        if det.type == "onnx" and det.model is not None:
            return list(read_onnx_info(det.model)["class_names"]) or None
    except ModelError as exc:
        out.add("error", None, ("detector",), str(exc))
    return None


def _node_files(cfg: NodeConfig, out: _Collector) -> None:
    link = cfg.aggregator
    if link.publish and link.keys_dir is not None:
        for key in (link.keys_dir / f"{link.key_name or cfg.node}.key_secret", link.keys_dir / "aggregator.key"):
            if not key.is_file():
                out.add("error", None, ("aggregator", "keys_dir"), f"key file not found: {key} (see `vigil keys new`)")
    _writable(None, ("output", "dir"), Path(cfg.output.dir), out)
    _writable(None, ("operations", "status_dir"), Path(cfg.operations.status_dir), out)
    if link.publish and link.outbox_dir is not None:
        _writable(None, ("aggregator", "outbox_dir"), Path(link.outbox_dir), out)


def _media(cfg: NodeConfig, class_names: Sequence[str] | None, out: _Collector) -> None:
    """``output.media``: the classes it masks are the detector's; its folders are writable."""
    media = cfg.output.media
    if class_names is not None:
        unknown = sorted(set(media.mask_classes) - set(class_names))
        if unknown:
            out.add("error", None, ("output", "media", "mask_classes"),
                    f"{unknown} are not classes of the detector ({_short(class_names)})")  # fmt: skip
    if media.record:
        for name in ("evidence_dir", "tiles_dir"):
            folder = getattr(media, name)
            if folder is not None:
                _writable(None, ("output", "media", name), Path(folder), out)


def _writable(cam_ref, loc: tuple, path: Path, out: _Collector) -> None:
    """``path`` is a writable folder, or can be made: its nearest existing ancestor is one."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe == path and not path.is_dir():
        out.add("error", cam_ref, loc, f"{path} is not a folder")
    elif not probe.is_dir():
        out.add("error", cam_ref, loc, f"{path}: cannot be made, {probe} is not a folder")
    elif not os.access(probe, os.W_OK | os.X_OK):
        out.add("error", cam_ref, loc, f"{path}: not writable ({probe} does not allow this user to write)")
