"""Privacy masking of people in camera pictures: the one place every stored or shown picture passes.

:func:`privacy_mask` hides each person box of a frame before anything else is drawn on it (the
overlay's boxes and labels go on top of the mask, never under it). Two modes:

- ``pixelate`` (default): the box, grown by a safety margin, is cut into square blocks of side
  :func:`block_size_px` and each block is replaced by its mean colour, so the picture still
  shows where people stand, their posture and clothing colours, never a face;
- ``silhouette``: the grown box is filled with one flat grey: only "someone is here" remains.

Why the block size is ``ceil(box height / 8)`` pixels (at least 2): an adult's head is about
1/8 of their standing height (the anatomical canon of 7.5 to 8 heads), so a whole head falls in
one or two blocks: a face becomes one or two flat colours, which no person or face matcher can
recognise (face recognisers need tens of pixels across a face; here it has one or two
"pixels"). Blocks are anchored at the grown box's top-left corner, so the same box always gives
the same grid.

The margin (:data:`MARGIN`): detector boxes are not exact: a small or half-hidden person is
often boxed from the shoulders down (torso-only boxes), or narrower than the head turned
sideways. The box is grown by 35 % of its height upwards (a whole head above a torso-only box),
15 % of its width on each side and 5 % of its height downwards, then clipped to the frame.

This module is a helper below every package (``vigil.privacy``: it imports only numpy and
OpenCV), so the edge worker, the plate reader and the replay outputs share it.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

__all__ = ["MASK_MODES", "MARGIN", "SILHOUETTE_BGR", "block_size_px", "downscale", "masked_region", "privacy_mask"]

MaskMode = Literal["pixelate", "silhouette"]
#: the masking modes (see module docstring)
MASK_MODES: tuple[str, ...] = ("pixelate", "silhouette")
#: growth of a person box before masking, as fractions: (up of height, each side of width, down of height)
MARGIN = (0.35, 0.15, 0.05)
#: blocks per box height in ``pixelate`` mode (a head is about 1/8 of a standing person)
BLOCKS_PER_HEIGHT = 8
#: fill colour (BGR) of ``silhouette`` mode
SILHOUETTE_BGR = (128, 128, 128)


def block_size_px(box_height_px: float) -> int:
    """Side of a pixelation block, pixels, for a person box ``box_height_px`` pixels tall:
    ``ceil(height / 8)``, at least 2 (see the module docstring)."""
    return max(2, math.ceil(float(box_height_px) / BLOCKS_PER_HEIGHT))


def masked_region(box_px, frame_size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The pixels masked for one box: ``(x1, y1, x2, y2)`` integer pixels, end-exclusive, the box
    ``[x1, y1, x2, y2]`` (float pixels) grown by :data:`MARGIN` and clipped to ``frame_size``
    ``(width, height)``; ``None`` when nothing of it is in the frame (or it is not finite)."""
    x1, y1, x2, y2 = (float(v) for v in box_px)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        return None
    w, h = x2 - x1, y2 - y1
    up, side, down = MARGIN
    gx1 = max(0, math.floor(x1 - side * w))
    gy1 = max(0, math.floor(y1 - up * h))
    gx2 = min(int(frame_size[0]), math.ceil(x2 + side * w))
    gy2 = min(int(frame_size[1]), math.ceil(y2 + down * h))
    if gx2 <= gx1 or gy2 <= gy1:
        return None
    return gx1, gy1, gx2, gy2


def _pixelate(region: np.ndarray, block: int) -> np.ndarray:
    """``region (h, w, C)`` with each ``block`` x ``block`` cell (anchored top-left; the last row
    and column of cells may be smaller) set to its mean colour, rounded."""
    h, w = region.shape[:2]
    ny, nx = math.ceil(h / block), math.ceil(w / block)
    pad = np.pad(region.astype(np.float64), ((0, ny * block - h), (0, nx * block - w), (0, 0)))
    sums = pad.reshape(ny, block, nx, block, -1).sum(axis=(1, 3))
    counts = np.ones((h, w))
    counts = np.pad(counts, ((0, ny * block - h), (0, nx * block - w))).reshape(ny, block, nx, block).sum(axis=(1, 3))
    means = np.rint(sums / counts[..., None]).astype(region.dtype)
    return np.repeat(np.repeat(means, block, axis=0), block, axis=1)[:h, :w]


def privacy_mask(frame: np.ndarray, boxes_px, mode: MaskMode = "pixelate") -> np.ndarray:
    """A copy of ``frame`` (``(H, W, 3)`` or ``(H, W)`` uint8) with every box of ``boxes_px``
    (``(N, 4)`` pixels ``[x1, y1, x2, y2]``) masked (module docstring); ``frame`` is not changed.

    Boxes are masked tallest first, each on the picture the previous ones left, so where two
    overlap the smaller one's blocks (finer, yet still coarser than a face) win inside it.
    ``ValueError`` for an unknown ``mode``."""
    if mode not in MASK_MODES:
        raise ValueError(f"unknown privacy mask mode {mode!r} (known: {', '.join(MASK_MODES)})")
    out = np.array(frame, copy=True)
    boxes = np.asarray(boxes_px, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return out
    if out.ndim == 2:
        return privacy_mask(out[:, :, None], boxes, mode)[:, :, 0]
    size = (out.shape[1], out.shape[0])
    for i in np.argsort(-(boxes[:, 3] - boxes[:, 1]), kind="stable"):
        region = masked_region(boxes[i], size)
        if region is None:
            continue
        x1, y1, x2, y2 = region
        if mode == "silhouette":
            out[y1:y2, x1:x2] = np.array(SILHOUETTE_BGR[: out.shape[2]], out.dtype)
        else:
            out[y1:y2, x1:x2] = _pixelate(out[y1:y2, x1:x2], block_size_px(boxes[i, 3] - boxes[i, 1]))
    return out


def downscale(image: np.ndarray, max_width_px: int) -> tuple[np.ndarray, float]:
    """``image`` shrunk (area interpolation) to at most ``max_width_px`` wide, and the scale
    applied (1.0: unchanged)."""
    w = image.shape[1]
    if w <= max_width_px:
        return image, 1.0
    s = max_width_px / w
    return cv2.resize(image, (max_width_px, max(1, round(image.shape[0] * s))), interpolation=cv2.INTER_AREA), s
