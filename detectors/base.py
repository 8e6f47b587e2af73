"""The detector interface every backend implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from vigil.detectors.detections import Detections

__all__ = ["Detector", "detect_batch", "ModelError", "COCO_TRAFFIC_CLASSES", "COCO_ALIASES"]

class ModelError(ValueError):
    """A detector cannot be built from its config and model (unknown backend, a class name
    the model lacks, a model without the expected metadata...)."""


#: The COCO classes the node cares about by default.
COCO_TRAFFIC_CLASSES = ("person", "bicycle", "car", "motorcycle", "bus", "truck")


#: Darknet's coco.names spells a few COCO classes the VOC way; backends report the COCO names.
COCO_ALIASES = {"motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch", "tvmonitor": "tv"}


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
