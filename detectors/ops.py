"""Backend-independent box operations: letterbox (from :mod:`vigil.letterbox`), NMS, tile layouts
and merging tiles.

All boxes are ``(N, 4) float32`` ``x1, y1, x2, y2`` in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from vigil.letterbox import Letterbox, letterbox

__all__ = [
    "Letterbox",
    "letterbox",
    "box_iou",
    "nms",
    "suppress_nested",
    "Tile",
    "tile_grid",
    "merge_tiles",
]


# ---------------------------------------------------------------------------- NMS
def _overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(inter, area_a, area_b)``: pairwise intersection areas ``(len(a), len(b))`` and the
    boxes' areas as a column and a row (square pixels)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (ix2 - ix1).clip(0) * (iy2 - iy1).clip(0)
    area_a = ((a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0))[:, None]
    area_b = ((b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0))[None, :]
    return inter, area_a, area_b


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` IoU matrix."""
    inter, area_a, area_b = _overlaps(a, b)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _intersection_over_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter, area_a, area_b = _overlaps(a, b)
    smaller = np.minimum(area_a, area_b)
    return np.where(smaller > 0, inter / np.where(smaller > 0, smaller, 1), 0.0)


def nms(xyxy: np.ndarray, scores: np.ndarray, class_id: np.ndarray | None, iou_threshold: float) -> np.ndarray:
    """Greedy NMS, per class when ``class_id`` is given. Returns kept indices, best first."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    boxes = xyxy
    if class_id is not None and len(np.unique(class_id)) > 1:
        # offset each class far apart so that boxes of different classes never overlap
        span = float(max(boxes[:, 2].max(), boxes[:, 3].max()) - min(boxes[:, 0].min(), boxes[:, 1].min())) + 1.0
        boxes = boxes + (np.asarray(class_id, np.float32) * span)[:, None]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    x1, y1, x2, y2 = (boxes[:, i].astype(np.float64) for i in range(4))
    areas = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        iw = (np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])).clip(0)
        ih = (np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])).clip(0)
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def suppress_nested(
    xyxy: np.ndarray, scores: np.ndarray, class_id: np.ndarray, contain_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Drop boxes lying mostly inside a larger box of the same class.

    A box whose intersection with a larger same-class box covers ``contain_threshold`` of
    its own area is taken for a part of that object (YOLO models fire on a person's torso
    as well as on the whole body); it is dropped and the larger box keeps the higher of
    the two scores. Returns ``(kept_indices, new_scores_of_kept)``.
    """
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1).copy()
    n = len(xyxy)
    if n < 2:
        return np.arange(n), scores
    area = (xyxy[:, 2] - xyxy[:, 0]).clip(0) * (xyxy[:, 3] - xyxy[:, 1]).clip(0)
    ix = (np.minimum(xyxy[:, None, 2], xyxy[None, :, 2]) - np.maximum(xyxy[:, None, 0], xyxy[None, :, 0])).clip(0)
    iy = (np.minimum(xyxy[:, None, 3], xyxy[None, :, 3]) - np.maximum(xyxy[:, None, 1], xyxy[None, :, 1])).clip(0)
    inside = ix * iy / np.maximum(area[:, None], 1e-9)  # [i, j]: share of i inside j
    cls = np.asarray(class_id).reshape(-1)
    bigger = (area[None, :] > area[:, None]) | (
        (area[None, :] == area[:, None]) & (np.arange(n)[None, :] < np.arange(n)[:, None])
    )
    nested = (inside >= contain_threshold) & bigger & (cls[:, None] == cls[None, :])
    np.fill_diagonal(nested, False)
    keep = np.ones(n, bool)
    # smallest first, so that chains (part of a part) pass their score up to the outermost box
    for i in np.argsort(area, kind="stable"):
        parents = np.nonzero(nested[i] & keep)[0]
        if parents.size:
            keep[i] = False
            j = parents[np.argmax(area[parents])]
            scores[j] = max(scores[j], scores[i])
    idx = np.nonzero(keep)[0]
    return idx, scores[idx]


# ---------------------------------------------------------------------------- tiling
@dataclass(frozen=True)
class Tile:
    """A crop of the frame: ``frame[y1:y2, x1:x2]``; ``inner`` edges touch other tiles."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1


def _spans(length: int, n: int, overlap: int) -> list[tuple[int, int]]:
    if n <= 1:
        return [(0, length)]
    size = int(np.ceil((length + (n - 1) * overlap) / n))
    size = min(size, length)
    starts = [int(round(i * (length - size) / (n - 1))) for i in range(n)]
    return [(s, s + size) for s in starts]


def tile_grid(width: int, height: int, cols: int, rows: int, overlap_x: int, overlap_y: int) -> list[Tile]:
    """``cols x rows`` equal tiles covering a ``width x height`` frame, neighbours sharing
    at least ``overlap_x`` / ``overlap_y`` pixels (row-major order)."""
    if cols < 1 or rows < 1:
        raise ValueError(f"tile_grid: cols and rows must be >= 1, got {cols}x{rows}")
    xs = _spans(width, cols, overlap_x)
    ys = _spans(height, rows, overlap_y)
    return [Tile(x1, y1, x2, y2) for (y1, y2) in ys for (x1, x2) in xs]


def _touches_inner_edge(xyxy: np.ndarray, tile: Tile, frame_wh: tuple[int, int], margin: float) -> np.ndarray:
    w, h = frame_wh
    cut = np.zeros(len(xyxy), bool)
    if tile.x1 > 0:
        cut |= xyxy[:, 0] <= tile.x1 + margin
    if tile.y1 > 0:
        cut |= xyxy[:, 1] <= tile.y1 + margin
    if tile.x2 < w:
        cut |= xyxy[:, 2] >= tile.x2 - margin
    if tile.y2 < h:
        cut |= xyxy[:, 3] >= tile.y2 - margin
    return cut


def merge_tiles(
    parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    tiles: Sequence[Tile | None],
    frame_wh: tuple[int, int],
    iou_threshold: float = 0.45,
    cut_margin: float = 2.0,
    cut_overlap: float = 0.6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge per-tile detections (already shifted to frame pixels) into one set.

    ``parts[i] = (xyxy, score, class_id)`` found in ``tiles[i]`` (``None``: a full-frame
    pass, never cut). A box touching an inner tile edge (within ``cut_margin`` px) may be
    a cut-off piece of an object that continues in a neighbour tile. Such a box is
    dropped when a box of the same class from another tile (or the full frame) covers
    ``cut_overlap`` of it (intersection over the cut box's area) and is not cut on the
    same side — that other view saw more of the object; if every view of the object is
    cut, the pieces are joined into their union box with the best score. Then a
    class-aware NMS at ``iou_threshold`` removes the duplicates of overlapping tiles.
    """
    boxes, scores, cls, cut, src = [], [], [], [], []
    for i, ((b, s, c), t) in enumerate(zip(parts, tiles)):
        if len(b) == 0:
            continue
        boxes.append(np.asarray(b, np.float32))
        scores.append(np.asarray(s, np.float32))
        cls.append(np.asarray(c, np.int64))
        cut.append(np.zeros(len(b), bool) if t is None else _touches_inner_edge(np.asarray(b), t, frame_wh, cut_margin))
        src.append(np.full(len(b), i))
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    b = np.concatenate(boxes)
    s = np.concatenate(scores)
    c = np.concatenate(cls)
    k = np.concatenate(cut)
    t = np.concatenate(src)
    keep = np.ones(len(b), bool)
    if k.any():
        area = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).clip(1e-6)
        cut_idx = np.nonzero(k)[0]
        # inter(cut_i, j) / area(cut_i)
        ix1 = np.maximum(b[cut_idx, None, 0], b[None, :, 0])
        iy1 = np.maximum(b[cut_idx, None, 1], b[None, :, 1])
        ix2 = np.minimum(b[cut_idx, None, 2], b[None, :, 2])
        iy2 = np.minimum(b[cut_idx, None, 3], b[None, :, 3])
        cover = (ix2 - ix1).clip(0) * (iy2 - iy1).clip(0) / area[cut_idx, None]
        same = (c[cut_idx, None] == c[None, :]) & (t[cut_idx, None] != t[None, :])
        covered = same & (cover >= cut_overlap)
        b = b.copy()
        for row, i in enumerate(cut_idx):
            others = np.nonzero(covered[row])[0]
            if others.size == 0:
                continue
            whole = others[~k[others]]
            if whole.size:
                keep[i] = False  # another view contains the object uncut
            else:
                # all views cut: grow the best-scoring one to the union of the pieces
                group = np.concatenate([[i], others])
                best = group[np.argmax(s[group])]
                if best == i:
                    b[i, :2] = b[group, :2].min(0)
                    b[i, 2:] = b[group, 2:].max(0)
    b, s, c = b[keep], s[keep], c[keep]
    order = nms(b, s, c, iou_threshold)
    return b[order], s[order], c[order]
