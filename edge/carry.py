"""Carrying tracks over the frames the detector skips (``tracker.detect_every``, issue 19).

With ``detect_every = k`` the detector runs on every k-th frame only. On the frames between, the
rows the tracker reported on the previous frame (confirmed tracks, and coasting ones) are carried
forward, one frame at a time, and flagged ``data["carried"] = True``; on a detection frame the
flag is False for every row. Two ways to move a box (``tracker.carry``):

- ``predict``: each box corner moves at the track's constant velocity (pixels per frame): the
  difference of its last two *detected* boxes divided by the frames between them. A box moving
  at constant velocity is carried to exactly where it is; a track detected only once so far
  stays where it was (velocity 0).
- ``flow``: sparse Lucas-Kanade optical flow from the previous frame to this one: up to
  ``max_points`` Shi-Tomasi corners inside each box, tracked forward and back (a point whose
  round trip misses its start by more than ``fb_max_px`` is dropped); the box moves by the
  median shift of its points and scales about its centre by the median ratio of the points'
  pairwise distances (clipped to ``[1 / max_scale, max_scale]``). A box with fewer than
  ``min_points`` good points, and every coasting row (the person is hidden: the points would be
  on the occluder), falls back to ``predict``. Rows the flow moved carry ``data["flow"] = True``.

What the rows mean downstream (:func:`measured_rows`): a predicted box holds no information the
ground filter does not have (its own constant-velocity model predicts the same motion), so it is
not a measurement; feeding it as one would count the extrapolation as evidence, shrink the
position covariance and make distance decisions look surer than they are. A flow-moved box is
image evidence from this frame, so it is a measurement.

All boxes are ``(N, 4)`` ``x1, y1, x2, y2`` pixels; images ``(H, W, 3)`` BGR or ``(H, W)`` uint8.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from vigil.detectors.detections import Detections

__all__ = ["BoxCarrier", "CARRY_MODES", "flow_boxes", "measured_rows"]

CARRY_MODES = ("predict", "flow")


def measured_rows(tracked: Detections) -> np.ndarray:
    """``(N,) bool``: the rows that are measurements of this frame for the ground filter: not
    coasting, and either detected in this frame or moved by optical flow (module docstring)."""
    n = len(tracked)
    none = np.zeros(n, bool)
    coasting = tracked.data.get("coasting", none)
    carried = tracked.data.get("carried", none) & ~tracked.data.get("flow", none)
    return ~(coasting | carried)


def _gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def flow_boxes(
    prev: np.ndarray,
    cur: np.ndarray,
    boxes: np.ndarray,
    max_points: int = 30,
    min_points: int = 4,
    fb_max_px: float = 1.0,
    max_scale: float = 1.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Move ``boxes (M, 4)`` pixels of the gray frame ``prev (H, W) uint8`` into ``cur`` by sparse
    optical flow (module docstring). Returns the moved boxes ``(M, 4) float64`` and ``ok (M,) bool``
    (False: too few good points; that row is returned unchanged)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    out, ok = b.copy(), np.zeros(len(b), bool)
    h, w = prev.shape[:2]
    pts, owner = [], []
    for i, (x1, y1, x2, y2) in enumerate(b):
        c1, r1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        c2, r2 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
        if c2 - c1 < 4 or r2 - r1 < 4:
            continue
        p = cv2.goodFeaturesToTrack(prev[r1:r2, c1:c2], maxCorners=max_points, qualityLevel=0.01, minDistance=3)
        if p is None:
            continue
        pts.append(p.reshape(-1, 2) + (c1, r1))
        owner.append(np.full(len(pts[-1]), i))
    if not pts:
        return out, ok
    p0 = np.concatenate(pts).astype(np.float32).reshape(-1, 1, 2)
    own = np.concatenate(owner)
    lk = {"winSize": (15, 15), "maxLevel": 3, "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, **lk)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, p1, None, **lk)
    a, z = p0.reshape(-1, 2).astype(np.float64), p1.reshape(-1, 2).astype(np.float64)
    good = (st1.reshape(-1) == 1) & (st2.reshape(-1) == 1)
    good &= np.linalg.norm(back.reshape(-1, 2) - p0.reshape(-1, 2), axis=1) < fb_max_px
    for i in np.unique(own):
        sel = np.flatnonzero((own == i) & good)
        if len(sel) < max(min_points, 2):
            continue
        d = np.median(z[sel] - a[sel], axis=0)
        iu, ju = np.triu_indices(len(sel), 1)
        d0 = np.linalg.norm(a[sel][iu] - a[sel][ju], axis=1)
        d1 = np.linalg.norm(z[sel][iu] - z[sel][ju], axis=1)
        far = d0 > 2.0
        s = float(np.clip(np.median(d1[far] / d0[far]), 1 / max_scale, max_scale)) if np.any(far) else 1.0
        x1, y1, x2, y2 = b[i]
        cx, cy, hw, hh = (x1 + x2) / 2 + d[0], (y1 + y2) / 2 + d[1], s * (x2 - x1) / 2, s * (y2 - y1) / 2
        out[i] = (cx - hw, cy - hh, cx + hw, cy + hh)
        ok[i] = True
    return out, ok


class BoxCarrier:
    """The carrying state of one tracker (module docstring).

    :meth:`observe` is called with the tracker's output of each detection frame, :meth:`carry` on
    each frame between; ``frame`` counts the frames the tracker has seen (detected or carried).
    ``forget_frames``: a track's last detected box is forgotten after this many frames unseen.
    """

    def __init__(
        self,
        mode: str = "predict",
        forget_frames: int = 100,
        max_points: int = 30,
        min_points: int = 4,
        fb_max_px: float = 1.0,
    ) -> None:
        if mode not in CARRY_MODES:
            raise ValueError(f"carry: expected one of {CARRY_MODES}, got {mode!r}")
        self.mode = mode
        self.forget_frames = int(forget_frames)
        self.max_points, self.min_points, self.fb_max_px = int(max_points), int(min_points), float(fb_max_px)
        self._seen: dict[int, tuple[int, np.ndarray]] = {}  # tracker_id -> (frame, detected box (4,) px)
        self._vel: dict[int, np.ndarray] = {}  # tracker_id -> (4,) px per frame
        self._last: Detections | None = None
        self._gray: np.ndarray | None = None  # the last frame (flow mode), (H, W) uint8
        self._prev: np.ndarray | None = None  # the frame before it

    def observe(self, frame: int, tracked: Detections, image: np.ndarray | None = None) -> Detections:
        """A detection frame's tracker output → the same rows flagged ``carried`` False (and ``flow``
        False in flow mode); the detected rows update the tracks' velocities."""
        n = len(tracked)
        flags = {"carried": np.zeros(n, bool)}
        if self.mode == "flow":
            flags["flow"] = np.zeros(n, bool)
        out = tracked.with_data(**flags)
        coasting = tracked.data.get("coasting", np.zeros(n, bool))
        for tid, box, hidden in zip(tracked.tracker_id.tolist(), tracked.xyxy.astype(np.float64), coasting):
            if hidden:
                continue
            prev = self._seen.get(tid)
            if prev is not None and frame > prev[0]:
                self._vel[tid] = (box - prev[1]) / (frame - prev[0])
            self._seen[tid] = (frame, box)
        stale = [t for t, (f, _) in self._seen.items() if frame - f > self.forget_frames]
        for t in stale:
            self._seen.pop(t)
            self._vel.pop(t, None)
        self._last = out
        if self.mode == "flow" and image is not None:
            self._gray = _gray(image)
        return out

    def velocity(self, tracker_id: int) -> np.ndarray:
        """``(4,)`` pixels per frame of the box corners of a track (zeros when not known)."""
        return self._vel.get(int(tracker_id), np.zeros(4))

    def carry(self, image: np.ndarray | None = None, metadata: dict[str, Any] | None = None) -> Detections:
        """The last frame's rows moved one frame on (module docstring), ``carried`` True; rows whose
        box left the image (``image`` given) are dropped. ``metadata`` replaces the rows' metadata."""
        last = self._last
        meta = dict(metadata or {})
        gray = _gray(image) if (self.mode == "flow" and image is not None) else None
        if last is None or not len(last):
            empty = Detections.empty().with_tracker_id(np.zeros(0, np.int64)) if last is None else last
            self._last, self._gray = empty.with_metadata(**meta), gray
            return self._last
        n = len(last)
        boxes = last.xyxy.astype(np.float64) + np.stack([self.velocity(t) for t in last.tracker_id])
        moved = np.zeros(n, bool)
        if gray is not None and self._gray is not None and self._gray.shape == gray.shape:
            rows = np.flatnonzero(~last.data.get("coasting", np.zeros(n, bool)))
            fb, ok = flow_boxes(self._gray, gray, last.xyxy[rows], self.max_points, self.min_points, self.fb_max_px)
            boxes[rows[ok]] = fb[ok]
            moved[rows[ok]] = True
        data = {**last.data, "carried": np.ones(n, bool)}
        if self.mode == "flow":
            data["flow"] = moved
        out = Detections(boxes, last.confidence, last.class_id, last.tracker_id, data, {**last.metadata, **meta})
        if image is not None:
            h, w = image.shape[:2]
            b = out.xyxy
            out = out[(b[:, 2] > 0) & (b[:, 0] < w) & (b[:, 3] > 0) & (b[:, 1] < h)]
        self._last, self._prev, self._gray = out, self._gray, gray
        return out

    def flow_more(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Other boxes ``(M, 4)`` pixels of the previous frame (tracks not reported yet) moved into the
        frame of the last :meth:`carry` by the flow: ``(M, 4)`` boxes and ``(M,) bool`` moved; in
        ``predict`` mode, or without the two frames, the boxes stay (False)."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        if self.mode != "flow" or self._prev is None or self._gray is None or not len(b):
            return b, np.zeros(len(b), bool)
        if self._prev.shape != self._gray.shape:
            return b, np.zeros(len(b), bool)
        return flow_boxes(self._prev, self._gray, b, self.max_points, self.min_points, self.fb_max_px)

    def carried(self, tracked: Detections) -> Detections:
        """Record the tracker's output of a carried frame as the rows to carry on from."""
        self._last = tracked
        return tracked

    def reset(self) -> None:
        self.__init__(self.mode, self.forget_frames, self.max_points, self.min_points, self.fb_max_px)
