"""Occlusion-aware foot points: tell when a box's bottom is not the person's feet, and estimate them.

A person's ground position is the ground point under the bottom centre of their box. That is
wrong when the bottom of the box is not the feet: the legs hidden by a nearer person or object,
the box cut by the frame, or the detector boxing only the upper body. :func:`occlusion_reasons`
flags such boxes (bit flags, several may hold):

- :data:`NEARER_BOX`: another box whose bottom edge is lower in the image (nearer the camera, on a
  ground plane seen from above) covers this box's bottom edge: its top is above that edge and the
  two overlap horizontally by at least ``min_overlap`` of this box's width;
- :data:`FRAME_EDGE`: the box bottom is within ``edge_margin_px`` of the frame's bottom edge;
- :data:`TOO_SHORT`: the box is shorter than ``(1 - height_tolerance)`` times the image height of a
  ``min_height_m`` tall person standing at the box's own bottom position (needs a camera with 3D
  geometry, ``camera.supports_3d``);
- :data:`SHORTER_THAN_TRACK`: the box is shorter than ``(1 - track_tolerance)`` times the track's
  recent unoccluded box height (``track_height_px``, pixels).

:func:`estimate_feet` then replaces the foot of flagged boxes whose top is inside the frame (the
head is visible): with the track's recent height when known (``foot = top + track_height_px``
below the box top centre), else from the head and a height prior ``H``: the ground point ``g``
whose vertical of height ``H`` ends on the head pixel, ``g = camera.image_to_plane(head, H)``
(the head's viewing ray meets the plane ``Z = H`` right above the feet), and the foot pixel is
``camera.ground_to_image(g)``. Exact for an upright person of height ``H`` whose head is the box top
centre. docs/feet.md writes the model down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import CameraModel

__all__ = [
    "FRAME_EDGE",
    "NEARER_BOX",
    "REASONS",
    "SHORTER_THAN_TRACK",
    "TOO_SHORT",
    "FeetEstimate",
    "TrackHeights",
    "estimate_feet",
    "expected_height_px",
    "foot_from_head",
    "occlusion_reasons",
]

NEARER_BOX = 1
FRAME_EDGE = 2
TOO_SHORT = 4
SHORTER_THAN_TRACK = 8
#: bit -> name, for logs and pictures
REASONS = {
    NEARER_BOX: "occluded_by_nearer_box",
    FRAME_EDGE: "frame_edge",
    TOO_SHORT: "too_short_for_a_person_there",
    SHORTER_THAN_TRACK: "shorter_than_its_track",
}


def _boxes(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return np.zeros((0, 4))
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes: expected shape (N, 4) x1 y1 x2 y2 pixels, got {b.shape}")
    return b


def _per_row(value, n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected a scalar or shape ({n},), got {arr.shape}")
    return arr


def expected_height_px(camera: CameraModel, foot_px: np.ndarray, height_m: np.ndarray | float) -> np.ndarray:
    """``(N,)`` pixels: image height (foot ``v`` minus head ``v``) of an upright person ``height_m`` tall
    (scalar or ``(N,)`` metres) standing on the ground point seen at ``foot_px (N, 2)``; NaN where the
    camera has no 3D geometry or the point has no ground position."""
    foot = np.asarray(foot_px, np.float64).reshape(-1, 2)
    if not camera.supports_3d:
        return np.full(len(foot), np.nan)
    g = camera.image_to_ground(foot)
    h = _per_row(height_m, len(foot), "height_m")
    head = camera.project_points(np.c_[g, h])
    return foot[:, 1] - head[:, 1]


def foot_from_head(camera: CameraModel, head_px: np.ndarray, height_m: np.ndarray | float) -> np.ndarray:
    """``(N, 2)`` pixels: the foot of an upright person ``height_m`` tall (scalar or ``(N,)`` metres)
    whose head is seen at ``head_px (N, 2)``: the image of ``g = camera.image_to_plane(head, H)``.
    NaN rows where the head ray does not meet ``Z = H`` in front of the camera or the model has no 3D."""
    head = np.asarray(head_px, np.float64).reshape(-1, 2)
    if not camera.supports_3d:
        return np.full((len(head), 2), np.nan)
    g = camera.image_to_plane(head, _per_row(height_m, len(head), "height_m"))
    return camera.ground_to_image(g)


def occlusion_reasons(
    boxes: np.ndarray,
    image_size: tuple[int, int] | None,
    camera: CameraModel,
    track_height_px: np.ndarray | None = None,
    *,
    min_height_m: float = 1.5,
    height_tolerance: float = 0.1,
    track_tolerance: float = 0.15,
    edge_margin_px: float = 2.0,
    min_overlap: float = 0.3,
) -> np.ndarray:
    """``(N,) uint8`` bit flags (:data:`REASONS`) of the boxes ``(N, 4)`` pixels whose bottom is not the
    feet; 0 where it is. ``image_size``: ``(width, height)`` pixels (``None``: no frame-edge test);
    ``track_height_px``: ``(N,)`` pixels, NaN where unknown. See the module docstring for each rule."""
    b = _boxes(boxes)
    n = len(b)
    reason = np.zeros(n, np.uint8)
    if n == 0:
        return reason
    x1, y1, x2, y2 = b.T
    h = y2 - y1
    w = np.maximum(x2 - x1, 1e-9)
    reason[_covered_by_nearer(b, w, min_overlap)] |= NEARER_BOX
    if image_size is not None:
        reason[y2 >= float(image_size[1]) - edge_margin_px] |= FRAME_EDGE
    if camera.supports_3d:
        exp = expected_height_px(camera, np.c_[(x1 + x2) / 2.0, y2], min_height_m)
        with np.errstate(invalid="ignore"):
            reason[h < (1.0 - height_tolerance) * exp] |= TOO_SHORT
    if track_height_px is not None:
        th = _per_row(track_height_px, n, "track_height_px")
        with np.errstate(invalid="ignore"):
            reason[h < (1.0 - track_tolerance) * th] |= SHORTER_THAN_TRACK
    return reason


def _covered_by_nearer(b: np.ndarray, w: np.ndarray, min_overlap: float) -> np.ndarray:
    """``(N,) bool``: a box with a lower bottom edge covers this box's bottom edge (module docstring).

    Only pairs that can overlap horizontally are compared: with the boxes sorted by ``x1``, box ``i``
    meets only boxes with ``x1_i - max width <= x1_j < x2_i`` (a sweep, not all N^2 pairs).
    """
    x1, y1, x2, y2 = b.T
    n = len(b)
    order = np.argsort(x1, kind="stable")
    xs = x1[order]
    lo = np.searchsorted(xs, x1 - float(np.max(x2 - x1)), side="left")
    hi = np.searchsorted(xs, x2, side="left")
    counts = np.maximum(hi - lo, 0)
    ii = np.repeat(np.arange(n), counts)
    start = np.repeat(np.cumsum(counts) - counts, counts)
    jj = order[np.arange(int(counts.sum())) - start + np.repeat(lo, counts)]
    ov = np.minimum(x2[ii], x2[jj]) - np.maximum(x1[ii], x1[jj])
    cover = (ii != jj) & (y2[jj] > y2[ii]) & (y1[jj] < y2[ii]) & (ov >= min_overlap * w[ii])
    out = np.zeros(n, bool)
    out[ii[cover]] = True
    return out


@dataclass(frozen=True)
class FeetEstimate:
    """Result of :func:`estimate_feet` for N boxes."""

    foot_px: np.ndarray  #: (N, 2) float64 pixels: the foot point to project (corrected or the box bottom centre)
    reason: np.ndarray  #: (N,) uint8 bit flags, why the box bottom is not the feet (0: it is)
    corrected: np.ndarray  #: (N,) bool, foot_px was estimated (not the box bottom centre)

    @property
    def not_feet(self) -> np.ndarray:
        """``(N,) bool``: the box bottom is not the feet (whether or not it could be corrected)."""
        return self.reason != 0


def estimate_feet(
    boxes: np.ndarray,
    image_size: tuple[int, int] | None,
    camera: CameraModel,
    track_height_px: np.ndarray | None = None,
    *,
    height_m: np.ndarray | float = 1.75,
    min_height_m: float = 1.5,
    height_tolerance: float = 0.1,
    track_tolerance: float = 0.15,
    edge_margin_px: float = 2.0,
    min_overlap: float = 0.3,
    use_track_height: bool = True,
) -> FeetEstimate:
    """Flag the boxes ``(N, 4)`` pixels whose bottom is not the feet and estimate their feet.

    ``height_m``: the height prior (scalar or ``(N,)`` metres) used when the track's recent height
    ``track_height_px (N,)`` pixels is unknown (NaN) or ``use_track_height`` is false. A flagged box whose
    top touches the frame's top edge (head not visible) keeps its bottom centre, as does one whose
    estimate is undefined.
    """
    b = _boxes(boxes)
    reason = occlusion_reasons(
        b,
        image_size,
        camera,
        track_height_px,
        min_height_m=min_height_m,
        height_tolerance=height_tolerance,
        track_tolerance=track_tolerance,
        edge_margin_px=edge_margin_px,
        min_overlap=min_overlap,
    )
    uc = (b[:, 0] + b[:, 2]) / 2.0
    foot = np.c_[uc, b[:, 3]]
    todo = (reason != 0) & (b[:, 1] > edge_margin_px)
    est = np.full_like(foot, np.nan)
    if use_track_height and track_height_px is not None and np.any(todo):
        th = _per_row(track_height_px, len(b), "track_height_px")
        known = todo & np.isfinite(th)
        est[known] = np.c_[uc[known], b[known, 1] + th[known]]
    rest = todo & ~np.all(np.isfinite(est), axis=1)
    if np.any(rest):
        hm = _per_row(height_m, len(b), "height_m")
        est[rest] = foot_from_head(camera, np.c_[uc[rest], b[rest, 1]], hm[rest])
    corrected = todo & np.all(np.isfinite(est), axis=1)
    foot[corrected] = est[corrected]
    return FeetEstimate(foot_px=foot, reason=reason, corrected=corrected)


class TrackHeights:
    """Recent box height (pixels) per track id, from the frames where the box bottom was the feet.

    An exponential average with weight ``alpha`` on the newest height; a track not updated for
    ``forget_after_s`` seconds is forgotten.
    """

    def __init__(self, alpha: float = 0.3, forget_after_s: float = 2.0) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha: expected 0 < alpha <= 1, got {alpha}")
        self.alpha = float(alpha)
        self.forget_after_s = float(forget_after_s)
        self._h: dict[int, float] = {}
        self._t: dict[int, float] = {}

    def get(self, track_ids: np.ndarray) -> np.ndarray:
        """``(N,)`` pixels, NaN for tracks without a recent unoccluded height."""
        return np.array([self._h.get(int(t), np.nan) for t in np.asarray(track_ids).reshape(-1)], np.float64)

    def update(self, t_s: float, track_ids: np.ndarray, heights_px: np.ndarray, ok: np.ndarray) -> None:
        """Fold in ``heights_px (N,)`` of the rows where ``ok (N,) bool`` (bottom is the feet) at time ``t_s`` s."""
        a = self.alpha
        for tid, h, good in zip(np.asarray(track_ids).reshape(-1), np.asarray(heights_px).reshape(-1), ok):
            if not good or not np.isfinite(h):
                continue
            k = int(tid)
            old = self._h.get(k)
            self._h[k] = float(h) if old is None else (1 - a) * old + a * float(h)
            self._t[k] = t_s
        stale = [k for k, t in self._t.items() if t_s - t > self.forget_after_s]
        for k in stale:
            del self._h[k], self._t[k]
