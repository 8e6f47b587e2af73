"""One frame to calibrate on: an image file, or a frame of a video file or stream.

Shared by ``vigil calibrate ground`` / ``check`` (:mod:`vigil.calibration.cli`) and the
point-picking page (:mod:`vigil.calibration.pick`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vigil.edge.sources import open_source
from vigil.geometry.camera import CalibrationError

__all__ = ["IMAGE_SUFFIXES", "read_frame"]

#: files read as a still image (anything else is opened as a video source)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_frame(path: str, frame: int = 0) -> np.ndarray:
    """An image file, or frame ``frame`` of a video file / stream URL: ``(H, W, 3)`` uint8 BGR."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise CalibrationError(f"{p}: cannot read as an image")
        return img
    src = open_source(str(path))
    try:
        for fr in src:
            if fr.index >= frame:
                return fr.image
    finally:
        src.close()
    raise CalibrationError(f"{path}: has no frame {frame}")
