"""The detector interface every backend implements."""

from __future__ import annotations

import os
from typing import Annotated, Protocol, runtime_checkable

import numpy as np
from pydantic import AfterValidator

from vigil.detectors.detections import Detections

__all__ = [
    "Detector",
    "detect_batch",
    "ModelError",
    "COCO_TRAFFIC_CLASSES",
    "COCO_ALIASES",
    "check_stride_multiple",
    "check_class_thresholds",
    "cpu_count",
    "StrideSize",
    "ClassThresholds",
]


class ModelError(ValueError):
    """A detector cannot be built from its config and model (unknown backend, a class name
    the model lacks, a model without the expected metadata...)."""


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
