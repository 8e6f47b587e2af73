"""Letterbox: fit an image into a model input keeping its aspect ratio (Ultralytics' rule).

A helper below every package: the detectors' pre-processing and the INT8 calibration of
:mod:`vigil.models.quantize` must put frames into the model input the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Letterbox", "letterbox"]


@dataclass(frozen=True)
class Letterbox:
    """How an image was put into a model input: ``input_x = image_x * scale_x + pad_x``
    (and the same for y). ``scale_x`` and ``scale_y`` differ only by the rounding of the
    resized size to whole pixels; using both makes the mapping back exact."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def to_image(self, xyxy: np.ndarray) -> np.ndarray:
        """Map boxes from model-input pixels back to image pixels (exact inverse of :meth:`to_input`)."""
        out = np.array(xyxy, np.float32, copy=True).reshape(-1, 4)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale_y
        return out

    def to_input(self, xyxy: np.ndarray) -> np.ndarray:
        """Map boxes from image pixels to model-input pixels."""
        out = np.array(xyxy, np.float32, copy=True).reshape(-1, 4)
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale_x + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.scale_y + self.pad_y
        return out


def letterbox(
    image: np.ndarray,
    size_hw: tuple[int, int],
    fill: int = 127,
    out: np.ndarray | None = None,
    interpolation: int | None = None,
) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` keeping its aspect ratio to fit ``size_hw``, centred, padded with ``fill``.

    Returns the input image (written into ``out`` when given) and the :class:`Letterbox`
    that maps boxes back. The resized size is rounded to whole pixels and the padding to
    whole pixels (the left/top pad is the smaller half, as Ultralytics does), and the
    transform records the scale actually applied per axis. ``interpolation``: an OpenCV
    flag; ``None`` picks ``INTER_AREA`` to shrink and ``INTER_LINEAR`` to enlarge
    (Ultralytics uses ``INTER_LINEAR`` both ways).
    """
    h, w = image.shape[:2]
    th, tw = size_hw
    scale = min(th / h, tw / w)
    nh, nw = min(th, max(1, int(round(h * scale)))), min(tw, max(1, int(round(w * scale))))
    px, py = (tw - nw) // 2, (th - nh) // 2
    if out is None:
        out = np.empty((th, tw) + image.shape[2:], image.dtype)
    if (nh, nw) != (th, tw):
        out[...] = fill
    if (nh, nw) == (h, w):
        out[py : py + nh, px : px + nw] = image
    else:
        interp = interpolation if interpolation is not None else (cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        out[py : py + nh, px : px + nw] = cv2.resize(image, (nw, nh), interpolation=interp)
    return out, Letterbox(nw / w, nh / h, float(px), float(py))
