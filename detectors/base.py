"""The detector interface every backend implements, and what a backend declares.

A backend is one module of :mod:`vigil.detectors.backends` with a module-level
``BACKEND = Backend(name=..., config=..., build=...)``: ``config`` is its pydantic model
(a :class:`BackendConfig` with ``type: Literal["<name>"]``), ``build(cfg) -> Detector``.
:mod:`vigil.detectors.registry` finds these modules and builds everything else from them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict

from vigil.detectors.detections import Detections

__all__ = [
    "Detector",
    "detect_batch",
    "Backend",
    "BackendConfig",
    "COCO_TRAFFIC_CLASSES",
    "COCO_ALIASES",
    "check_stride_multiple",
    "check_class_thresholds",
    "cpu_count",
    "StrideSize",
    "ClassThresholds",
]


#: The COCO classes the node cares about by default.
COCO_TRAFFIC_CLASSES = ("person", "bicycle", "car", "motorcycle", "bus", "truck")


#: Darknet's coco.names spells a few COCO classes the VOC way; backends report the COCO names.
COCO_ALIASES = {"motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch", "tvmonitor": "tv"}


def check_stride_multiple(size, what: str = "input_size"):
    """Config check shared by the backends: ``[height, width]`` positive multiples of 32 (or None)."""
    if size is not None and any(x <= 0 or x % 32 for x in size):
        raise ValueError(f"{what} must be positive multiples of 32 (the network stride), got {list(size)}")
    return size


def check_class_thresholds(thresholds: dict[str, float]) -> dict[str, float]:
    """Config check shared by the backends: every per-class threshold in (0, 1]."""
    for name, t in thresholds.items():
        if not 0 < t <= 1:
            raise ValueError(f"class_confidence[{name!r}] must be in (0, 1], got {t}")
    return thresholds


#: Config field types of the backends, checked by the functions above.
StrideSize = Annotated[tuple[int, int], AfterValidator(check_stride_multiple)]
ClassThresholds = Annotated[dict[str, float], AfterValidator(check_class_thresholds)]


def cpu_count() -> int:
    """CPU cores this process may run on (the default number of inference threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@runtime_checkable
class Detector(Protocol):
    """``detect`` takes a BGR ``uint8`` ``(H, W, 3)`` frame and returns boxes in its pixels.

    ``class_names[i]`` names ``class_id == i`` (the model's full list, not only the kept
    classes).
    """

    class_names: list[str]

    def detect(self, frame: np.ndarray) -> Detections: ...

    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        """One :class:`Detections` per frame, in order (frames may differ in size); backends
        run them as one or a few batched inferences where the model allows."""
        ...


def detect_batch(detector, frames: list[np.ndarray]) -> list[Detections]:
    """``detector.detect_batch(frames)``, or a loop over ``detect`` for a detector without it."""
    fn = getattr(detector, "detect_batch", None)
    return fn(frames) if fn is not None else [detector.detect(f) for f in frames]


class BackendConfig(BaseModel):
    """Base of every backend's config: a subclass adds ``type: Literal["<name>"]`` and its settings.

    ``file_fields`` names the fields that hold file or folder paths; a node config resolves
    the relative ones against the folder of the config file (see ``vigil.edge.config``).
    """

    model_config = ConfigDict(extra="forbid")

    file_fields: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class Backend:
    """One detector backend: ``name`` (the config's ``type``), its ``config`` model and
    ``build(cfg) -> Detector`` (a class or a function; called in the process that detects)."""

    name: str
    config: type[BaseModel]
    build: Callable[[Any], Detector]

    def __post_init__(self) -> None:
        field = self.config.model_fields.get("type")
        if field is None or field.default != self.name:
            raise ValueError(f"backend {self.name!r}: its config {self.config.__name__} needs `type` defaulting to it")
        unknown = [f for f in getattr(self.config, "file_fields", ()) if f not in self.config.model_fields]
        if unknown:
            raise ValueError(f"backend {self.name!r}: file_fields {unknown} are not fields of {self.config.__name__}")
