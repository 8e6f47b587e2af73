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
  recent unoccluded box height (``track_height_px``, pixels);
- :data:`TOO_TALL`: the box is taller than ``(1 + height_tolerance)`` times the image height of a
  ``max_height_m`` tall person standing at its bottom position: its bottom belongs to something
  nearer (typically two people merged in one box, the far one's head on top, the near one's feet,
  or a person and the post in front of them); the top is still the head (needs 3D geometry).

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
    "TOO_TALL",
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
TOO_TALL = 16
#: bit -> name, for logs and pictures
REASONS = {
    NEARER_BOX: "occluded_by_nearer_box",
    FRAME_EDGE: "frame_edge",
    TOO_SHORT: "too_short_for_a_person_there",
    SHORTER_THAN_TRACK: "shorter_than_its_track",
    TOO_TALL: "too_tall_for_a_person_there",
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


def _points(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(N, 2)`` points from the columns ``u (N,)`` and ``v (N,)``."""
    out = np.empty((len(u), 2))
    out[:, 0], out[:, 1] = u, v
    return out


def _flag(reason: np.ndarray, where: np.ndarray, bit: int) -> None:
    """``reason |= bit`` on the rows where ``where (N,) bool``, in place."""
    np.bitwise_or(reason, np.uint8(bit), out=reason, where=where)


def expected_height_px(camera: CameraModel, foot_px: np.ndarray, height_m: np.ndarray | float) -> np.ndarray:
    """``(N,)`` pixels: image height (foot ``v`` minus head ``v``) of an upright person ``height_m`` tall
    (scalar or ``(N,)`` metres) standing on the ground point seen at ``foot_px (N, 2)``; NaN where the
    camera has no 3D geometry or the point has no ground position."""
    foot = np.asarray(foot_px, np.float64).reshape(-1, 2)
    if not camera.supports_3d:
        return np.full(len(foot), np.nan)
    return _expected_heights(camera, foot, _per_row(height_m, len(foot), "height_m")[None])[0]


def _expected_heights(camera: CameraModel, foot: np.ndarray, heights_m: np.ndarray) -> np.ndarray:
    """``(K, N)`` pixels: :func:`expected_height_px` of the feet ``foot (N, 2)`` for each row of heights
    ``heights_m (K, N)`` metres (or ``(K, 1)``: one height per row), with one image -> ground mapping and
    one projection of all the heads (a camera with 3D geometry)."""
    n = len(foot)
    h = np.broadcast_to(np.asarray(heights_m, np.float64), (len(heights_m), n))
    k = len(h)
    heads = np.empty((k * n, 3))
    heads[:, :2] = np.tile(camera.image_to_ground(foot), (k, 1))
    heads[:, 2] = h.reshape(-1)
    return foot[:, 1][None] - camera.project_points(heads)[:, 1].reshape(k, n)


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
    max_height_m: float | None = 2.0,
    height_tolerance: float = 0.1,
    track_tolerance: float = 0.15,
    edge_margin_px: float = 2.0,
    min_overlap: float = 0.3,
) -> np.ndarray:
    """``(N,) uint8`` bit flags (:data:`REASONS`) of the boxes ``(N, 4)`` pixels whose bottom is not the
    feet; 0 where it is. ``image_size``: ``(width, height)`` pixels (``None``: no frame-edge test);
    ``track_height_px``: ``(N,)`` pixels, NaN where unknown; ``max_height_m`` ``None``: no
    :data:`TOO_TALL` test. See the module docstring for each rule."""
    b = _boxes(boxes)
    n = len(b)
    if n == 0:
        return np.zeros(0, np.uint8)
    x1, y1, x2, y2 = b.T
    h = y2 - y1
    w = np.maximum(x2 - x1, 1e-9)
    reason = _covered_by_nearer(b, w, min_overlap).view(np.uint8)  # NEARER_BOX is bit 0
    if image_size is not None:
        _flag(reason, y2 >= float(image_size[1]) - edge_margin_px, FRAME_EDGE)
    with np.errstate(invalid="ignore"):
        if camera.supports_3d:
            heights = [min_height_m] if max_height_m is None else [min_height_m, max_height_m]
            exp = _expected_heights(camera, _points((x1 + x2) / 2.0, y2), np.asarray(heights, np.float64)[:, None])
            _flag(reason, h < (1.0 - height_tolerance) * exp[0], TOO_SHORT)
            if max_height_m is not None:
                _flag(reason, h > (1.0 + height_tolerance) * exp[1], TOO_TALL)
        if track_height_px is not None:
            th = _per_row(track_height_px, n, "track_height_px")
            _flag(reason, h < (1.0 - track_tolerance) * th, SHORTER_THAN_TRACK)
    return reason


def _covered_by_nearer(b: np.ndarray, w: np.ndarray, min_overlap: float) -> np.ndarray:
    """``(N,) bool``: a box with a lower bottom edge covers this box's bottom edge (module docstring).

    Only pairs that can overlap horizontally are compared, each once: with the boxes sorted by ``x1``,
    box ``a`` meets the later boxes ``b`` with ``x1_b <= x2_a`` (``x2_a - min_overlap * max width`` for a
    negative ``min_overlap``): a sweep, not all N^2 pairs; the pair is then tested both ways (``b`` covers
    ``a``, ``a`` covers ``b``).
    """
    n = len(b)
    out = np.zeros(n, bool)
    if n < 2:
        return out
    order = np.argsort(b[:, 0], kind="stable")
    bs = b[order]
    x1, y1, x2, y2 = bs.T  # sorted by x1
    need = min_overlap * w[order]  # (N,) least overlap, pixels
    reach = x2 if min_overlap >= 0 else x2 - min_overlap * float(np.fmax.reduce(b[:, 2] - b[:, 0]))
    hi = np.searchsorted(x1, reach, side="right")
    counts = np.where(np.isfinite(reach), hi - np.arange(1, n + 1), 0).clip(0)  # later boxes within reach
    total = int(counts.sum())
    if total == 0:
        return out
    ia = np.repeat(np.arange(n), counts)
    ib = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + ia + 1
    ov = np.minimum(x2[ia], x2[ib]) - x1[ib]  # x1[ib] >= x1[ia]: sorted
    ya2, yb2 = y2[ia], y2[ib]
    b_covers_a = (yb2 > ya2) & (y1[ib] < ya2) & (ov >= need[ia])
    a_covers_b = (ya2 > yb2) & (y1[ia] < yb2) & (ov >= need[ib])
    out[order[ia[b_covers_a]]] = True
    out[order[ib[a_covers_b]]] = True
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
    max_height_m: float | None = 2.0,
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
    n = len(b)
    th = None if track_height_px is None else _per_row(track_height_px, n, "track_height_px")
    reason = occlusion_reasons(
        b,
        image_size,
        camera,
        th,
        min_height_m=min_height_m,
        max_height_m=max_height_m,
        height_tolerance=height_tolerance,
        track_tolerance=track_tolerance,
        edge_margin_px=edge_margin_px,
        min_overlap=min_overlap,
    )
    uc = (b[:, 0] + b[:, 2]) / 2.0
    foot = _points(uc, b[:, 3])
    todo = (reason != 0) & (b[:, 1] > edge_margin_px)
    rows = np.flatnonzero(todo)  # (M,) the flagged boxes whose head is visible
    if not len(rows):
        return FeetEstimate(foot_px=foot, reason=reason, corrected=todo)
    eu, top = uc[rows], b[rows, 1]
    with np.errstate(invalid="ignore"):  # from the track's height where known, else from the head
        ev = top + th[rows] if use_track_height and th is not None else np.full(len(rows), np.nan)
    rest = ~(np.isfinite(eu) & np.isfinite(ev))
    if np.any(rest):
        hm = _per_row(height_m, n, "height_m")
        est = foot_from_head(camera, _points(eu[rest], top[rest]), hm[rows[rest]])
        eu[rest], ev[rest] = est[:, 0], est[:, 1]
    ok = np.isfinite(eu) & np.isfinite(ev)
    done = rows[ok]
    foot[done, 0], foot[done, 1] = eu[ok], ev[ok]
    corrected = np.zeros(n, bool)
    corrected[done] = True
    return FeetEstimate(foot_px=foot, reason=reason, corrected=corrected)


class TrackHeights:
    """Recent box height (pixels) per track id, from the frames where the box bottom was the feet.

    An exponential average with weight ``alpha`` on the newest height; a track not updated for
    ``forget_after_s`` seconds is forgotten. Vectorised over tracks: sorted id arrays and binary search.
    """

    def __init__(self, alpha: float = 0.3, forget_after_s: float = 2.0) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha: expected 0 < alpha <= 1, got {alpha}")
        self.alpha = float(alpha)
        self.forget_after_s = float(forget_after_s)
        self._ids = np.zeros(0, np.int64)  # (K,) track ids, sorted
        self._h = np.zeros(0)  # (K,) average height, pixels
        self._t = np.zeros(0)  # (K,) time of the last update, s

    def __len__(self) -> int:
        return len(self._ids)

    def _find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions in ``self._ids`` of ``ids (N,)`` and whether each is there ``(N,) bool``."""
        pos = np.searchsorted(self._ids, ids)
        if not len(self._ids):
            return pos, np.zeros(len(ids), bool)
        return pos, self._ids[np.minimum(pos, len(self._ids) - 1)] == ids

    def get(self, track_ids: np.ndarray) -> np.ndarray:
        """``(N,)`` pixels, NaN for tracks without a recent unoccluded height."""
        ids = np.asarray(track_ids).reshape(-1).astype(np.int64)
        pos, known = self._find(ids)
        out = np.full(len(ids), np.nan)
        out[known] = self._h[pos[known]]
        return out

    def update(self, t_s: float, track_ids: np.ndarray, heights_px: np.ndarray, ok: np.ndarray) -> None:
        """Fold in ``heights_px (N,)`` of the rows where ``ok (N,) bool`` (bottom is the feet) at time ``t_s`` s."""
        ids = np.asarray(track_ids).reshape(-1).astype(np.int64)
        h = np.asarray(heights_px, np.float64).reshape(-1)
        good = np.asarray(ok, bool).reshape(-1) & np.isfinite(h)
        ids, h = ids[good], h[good]
        if len(np.unique(ids)) == len(ids):
            self._fold(t_s, ids, h)
        else:  # an id twice in one call: fold its rows one after the other, in order
            for k in range(len(ids)):
                self._fold(t_s, ids[k : k + 1], h[k : k + 1])
        alive = (t_s - self._t) <= self.forget_after_s
        if not np.all(alive):
            self._ids, self._h, self._t = self._ids[alive], self._h[alive], self._t[alive]

    def _fold(self, t_s: float, ids: np.ndarray, h: np.ndarray) -> None:
        """The exponential average for distinct ``ids (M,)`` with heights ``h (M,)`` pixels; new ids start at ``h``."""
        pos, known = self._find(ids)
        k = pos[known]
        a = self.alpha
        self._h[k] = (1 - a) * self._h[k] + a * h[known]
        self._t[k] = t_s
        if not np.all(known):
            new = ~known
            all_ids = np.concatenate([self._ids, ids[new]])
            order = np.argsort(all_ids, kind="stable")
            self._ids = all_ids[order]
            self._h = np.concatenate([self._h, h[new]])[order]
            self._t = np.concatenate([self._t, np.full(int(new.sum()), float(t_s))])[order]
