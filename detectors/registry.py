"""Detector backends by name: ``@register("name")`` on a builder, ``build_detector(cfg)``.

Each backend has a pydantic config with ``type: Literal["name"]``; :data:`DetectorConfig`
is their discriminated union (on ``type``), so an unknown backend is a config error.
A config without ``type`` means the default backend: ``onnx`` with the embedded YOLOv8s.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Union

from pydantic import BaseModel, Discriminator, Field, Tag, TypeAdapter

from vigil.detectors.base import Detector, ModelError
from vigil.detectors.onnx_darknet import DarknetOnnxConfig
from vigil.detectors.onnx_yolo import OnnxYoloConfig
from vigil.detectors.ultralytics_backend import UltralyticsConfig

__all__ = [
    "ModelError",
    "register",
    "build_detector",
    "DetectorConfig",
    "parse_detector_config",
    "registered",
    "UnknownDetectorError",
]

_BUILDERS: dict[str, Callable[[Any], Detector]] = {}
DEFAULT_TYPE = "onnx"


class UnknownDetectorError(ModelError):
    """``build_detector`` got a config whose ``type`` no backend registered."""


def register(name: str) -> Callable[[Callable[[Any], Detector]], Callable[[Any], Detector]]:
    """Decorator: register a builder ``cfg -> Detector`` (a class or a function) under ``name``."""

    def deco(builder):
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"detector backend {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return deco


def registered() -> list[str]:
    """Names of the registered backends."""
    return sorted(_BUILDERS)


def _type_of(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("type", DEFAULT_TYPE)
    return getattr(value, "type", DEFAULT_TYPE)


#: What a node config embeds as ``detector: DetectorConfig``; add new backends' configs
#: to this union with a ``Tag`` equal to their ``type``.
DetectorConfig = Annotated[
    Union[
        Annotated[DarknetOnnxConfig, Tag("darknet_onnx")],
        Annotated[OnnxYoloConfig, Tag("onnx")],
        Annotated[UltralyticsConfig, Tag("ultralytics")],
    ],
    Discriminator(
        _type_of,
        custom_error_type="unknown_detector",
        custom_error_message="unknown detector type; known: darknet_onnx, onnx, ultralytics",
    ),
    Field(description="The object detector backend and its settings (`type` picks the backend)."),
]

_ADAPTER = TypeAdapter(DetectorConfig)


def parse_detector_config(data: Any = None) -> BaseModel:
    """Validate a dict (or ``None`` for all defaults) into a backend config."""
    return _ADAPTER.validate_python({} if data is None else data)


def build_detector(cfg: Any = None) -> Detector:
    """Build the detector a config describes (a config model, a dict, or ``None`` = default)."""
    if cfg is None or isinstance(cfg, dict):
        cfg = parse_detector_config(cfg)
    name = getattr(cfg, "type", None)
    if name not in _BUILDERS:
        raise UnknownDetectorError(
            f"unknown detector backend {name!r}; registered: {', '.join(registered()) or 'none'}"
        )
    return _BUILDERS[name](cfg)


# register the built-in backends
from vigil.detectors import onnx_darknet as _onnx_darknet  # noqa: E402
from vigil.detectors import onnx_yolo as _onnx_yolo  # noqa: E402
from vigil.detectors import ultralytics_backend as _ultralytics  # noqa: E402  (imports torch only when built)

register("darknet_onnx")(_onnx_darknet.DarknetOnnxDetector)
register("onnx")(_onnx_yolo.OnnxYoloDetector)
register("ultralytics")(_ultralytics.build_ultralytics)
