"""Multi-object tracking through a maintained library: supervision's ByteTrack.

supervision is pinned at 0.30.x: the last series that ships ByteTrack without pulling the
non-headless ``opencv-python`` wheel (its successor, Roboflow's ``trackers`` package,
requires it, and two cv2 builds in one environment fight). Only this module imports
supervision, so replacing the tracker touches one file.
"""

from __future__ import annotations

import warnings

import numpy as np

with warnings.catch_warnings():
    # 0.30.x marks ByteTrack deprecated in favour of `trackers`; see the module docstring.
    warnings.simplefilter("ignore", FutureWarning)
    import supervision as sv

from vigil.detectors.detections import Detections
from vigil.detectors.ops import box_iou
from vigil.edge.carry import BoxCarrier, measured_rows

__all__ = ["Tracker", "covered_by_nearer"]


class Tracker:
    """Assigns persistent ``tracker_id`` values to detections, frame after frame.

    ``fps``: the stream's frame rate (frames per second), used to turn ``lost_track_buffer_s``
    into a number of frames.

    ``detect_every`` (k, default 1): the caller detects only on the frames where
    :meth:`wants_detection` is true (every k-th: frames 0, k, 2k, ... of those the tracker has seen)
    and calls :meth:`update` with the detections there and :meth:`carry` on the frames between, which
    moves the last rows on (``carry``: ``predict`` or ``flow``, :mod:`vigil.edge.carry`) and flags
    them ``data["carried"]``. ByteTrack still steps on every frame: on a carried frame it is given
    the carried boxes of the visible tracks and the boxes of the tracks awaiting confirmation
    (moved by the flow in ``flow`` mode) as that frame's detections. Fed only the detection frames,
    it failed to confirm walking people (a new track must overlap its next detection by IoU 0.3
    without motion prediction) and recall fell from 0.945 to 0.78 at k = 3 (bench/README.md).
    """

    def __init__(
        self,
        fps: float,
        track_activation_threshold: float = 0.25,
        lost_track_buffer_s: float = 3.0,
        minimum_matching_threshold: float = 0.95,
        minimum_consecutive_frames: int = 2,
        coast_s: float = 0.0,
        coast_min_cover: float | None = 0.3,
        detect_every: int = 1,
        carry: str = "predict",
    ) -> None:
        if not int(detect_every) >= 1 or int(detect_every) != detect_every:
            raise ValueError(f"detect_every: expected an integer >= 1, got {detect_every!r}")
        k = self.detect_every = int(detect_every)
        with warnings.catch_warnings():
            # 0.30.x marks ByteTrack deprecated in favour of `trackers`; see the module docstring.
            warnings.simplefilter("ignore", FutureWarning)
            # supervision keeps a lost track for int(frame_rate / 30 * lost_track_buffer) frames
            self._bt = sv.ByteTrack(
                track_activation_threshold=track_activation_threshold,
                lost_track_buffer=max(1, int(round(lost_track_buffer_s * 30.0))),
                minimum_matching_threshold=minimum_matching_threshold,
                frame_rate=max(1, int(round(fps))),
                minimum_consecutive_frames=minimum_consecutive_frames,
            )
        self._sv = sv
        # a track the detector loses (e.g. a person hidden behind another) is still reported,
        # at its Kalman-predicted box and flagged data["coasting"], for up to coast_frames, and
        # (coast_min_cover set) only while a nearer detected box covers that fraction of it:
        # the loss is explained by an occluder, not by the person leaving or a false track
        self.coast_frames = int(round(coast_s * fps))
        # tracker.detect_every: the rows of the last frame, carried over the frames without detections
        self._carrier = BoxCarrier(carry, forget_frames=int(round(lost_track_buffer_s * fps))) if k > 1 else None
        self._frames = 0  # frames seen: detected (update) or carried (carry)
        #: rows given to the last update() (the detections of the last detection frame)
        self.detected = 0
        self._detections: Detections | None = None
        self.coast_min_cover = coast_min_cover
        self._last: dict[int, tuple[int, float]] = {}  # tracker_id -> (class_id, confidence)

    @classmethod
    def from_config(cls, cfg, fps: float) -> "Tracker":
        return cls(
            fps=fps,
            track_activation_threshold=cfg.track_activation_threshold,
            lost_track_buffer_s=cfg.lost_track_buffer_s,
            minimum_matching_threshold=cfg.minimum_matching_threshold,
            minimum_consecutive_frames=cfg.minimum_consecutive_frames,
            coast_s=cfg.coast_s,
            coast_min_cover=cfg.coast_min_cover if cfg.coast_occluded_only else None,
            detect_every=cfg.detect_every,
            carry=cfg.carry,
        )

    @staticmethod
    def measured(tracked: Detections) -> np.ndarray:
        """``(N,) bool``: rows of an output that measure this frame (not coasting, not carried by
        prediction; see :func:`vigil.edge.carry.measured_rows`)."""
        return measured_rows(tracked)

    def wants_detection(self) -> bool:
        """Whether the next frame is a detection frame (every ``detect_every``-th frame seen)."""
        return self._carrier is None or self._frames % self.detect_every == 0

    def carry(self, image: np.ndarray | None = None, **metadata) -> Detections:
        """A frame without detections (``detect_every`` > 1): the last frame's rows moved on to this one,
        ``data["carried"]`` True (and ``data["flow"]`` where optical flow moved them); ``image`` ``(H, W, 3)``
        is this frame (flow carry needs it; boxes that left it are dropped); ``metadata`` this frame's."""
        if self._carrier is None:
            raise RuntimeError("Tracker.carry: detect_every is 1, every frame is detected")
        self._frames += 1
        moved = self._carrier.carry(image, metadata)
        visible = moved[~moved.data.get("coasting", np.zeros(len(moved), bool))]
        waiting = [t for t in self._bt.tracked_tracks if not t.is_activated]  # unconfirmed: not reported yet
        start = np.array([t.tlbr for t in waiting], np.float64).reshape(-1, 4)
        boxes, flowed = self._carrier.flow_more(start)
        keys = {k: v for k, v in visible.data.items() if k != "coasting"}
        pseudo = Detections(
            np.concatenate([visible.xyxy, boxes.astype(np.float32)]),
            np.concatenate([visible.confidence, np.array([t.score for t in waiting], np.float32)]),
            np.concatenate([visible.class_id, self._class_of(start)]).astype(np.int64),
            data={
                **{k: np.concatenate([v, np.zeros((len(waiting), *v.shape[1:]), v.dtype)]) for k, v in keys.items()},
                **({"flow": np.concatenate([visible.data["flow"], flowed])} if "flow" in keys else {}),
            },
            metadata=moved.metadata,
        )
        out = self._update(pseudo)
        out = out.with_data(carried=np.ones(len(out), bool))
        return self._carrier.carried(out)

    def _class_of(self, boxes: np.ndarray) -> np.ndarray:
        """``(M,)`` classes of unconfirmed tracks at ``boxes (M, 4)`` pixels (ByteTrack keeps none): the
        class of the last detection frame's box that overlaps each most."""
        d = self._detections
        if d is None or not len(d) or not len(boxes):
            return np.zeros(len(boxes), np.int64)
        return d.class_id[np.argmax(box_iou(boxes, d.xyxy), axis=1)]

    def update(self, detections: Detections, image: np.ndarray | None = None) -> Detections:
        """Detections of one frame → the tracked ones, with ``tracker_id`` set.

        Rows that do not (yet) belong to a confirmed track are left out. ``data`` extras of
        the input are carried over for the rows kept. With ``detect_every`` > 1 the rows also carry
        ``data["carried"]`` (False), and ``image`` (the frame, ``(H, W, 3)``) is kept for flow carry.
        """
        self.detected = len(detections)
        self._detections = detections
        out = self._update(detections)
        if self._carrier is None:
            return out
        frame = self._frames
        self._frames += 1
        return self._carrier.observe(frame, out, image)

    def _update(self, detections: Detections) -> Detections:
        sv_in = self._sv.Detections(
            xyxy=detections.xyxy.astype(np.float32),
            confidence=detections.confidence.astype(np.float32),
            class_id=detections.class_id.astype(int),
            data={"_row": np.arange(len(detections))},
        )
        out = self._bt.update_with_detections(sv_in)
        if len(out) == 0:
            kept = Detections.empty(detections.metadata).with_tracker_id(np.zeros(0, np.int64))
        else:
            rows = np.asarray(out.data["_row"], dtype=np.int64)
            # ByteTrack returns the detector's boxes for matched rows; keep ours (identical) and its ids
            kept = detections[rows].with_tracker_id(np.asarray(out.tracker_id, dtype=np.int64))
        if self.coast_frames <= 0:
            return kept
        for tid, cid, conf in zip(kept.tracker_id, kept.class_id, kept.confidence):
            self._last[int(tid)] = (int(cid), float(conf))
        seen = set(int(t) for t in kept.tracker_id)
        boxes, cids, confs, tids = [], [], [], []
        frame_id = self._bt.frame_id
        for track in self._bt.lost_tracks:
            tid = int(track.external_track_id)
            if tid in seen or tid not in self._last or frame_id - track.frame_id > self.coast_frames:
                continue
            box = np.asarray(track.tlbr, np.float32)
            if not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
                continue
            if self.coast_min_cover is not None and not covered_by_nearer(box, kept.xyxy, self.coast_min_cover):
                continue
            cid, conf = self._last[tid]
            boxes.append(box)
            cids.append(cid)
            confs.append(conf)
            tids.append(tid)
        live = set(int(t.external_track_id) for t in self._bt.tracked_tracks) | set(
            int(t.external_track_id) for t in self._bt.lost_tracks
        )
        self._last = {k: v for k, v in self._last.items() if k in live}
        flagged = kept.with_data(coasting=np.zeros(len(kept), bool))
        if not boxes:
            return flagged
        coasting = Detections(
            xyxy=np.stack(boxes),
            confidence=confs,
            class_id=cids,
            tracker_id=tids,
            data={
                **{k: np.zeros((len(boxes), *v.shape[1:]), v.dtype) for k, v in kept.data.items()},
                "coasting": np.ones(len(boxes), bool),
            },
            metadata=kept.metadata,
        )
        return Detections.merge([flagged, coasting], metadata=kept.metadata)

    def reset(self) -> None:
        self._bt.reset()
        self._last.clear()
        self._frames = 0
        if self._carrier is not None:
            self._carrier.reset()


def covered_by_nearer(box: np.ndarray, others: np.ndarray, min_cover: float) -> bool:
    """Whether one of ``others (M, 4)`` (x1, y1, x2, y2 pixels) whose bottom edge is lower in the image than
    ``box``'s (nearer the camera, for people on a ground plane seen from above) covers at least
    ``min_cover`` of ``box (4,)``'s area: the box is hidden behind a nearer object."""
    o = np.asarray(others, np.float64).reshape(-1, 4)
    if not len(o):
        return False
    b = np.asarray(box, np.float64)
    iw = (np.minimum(b[2], o[:, 2]) - np.maximum(b[0], o[:, 0])).clip(0)
    ih = (np.minimum(b[3], o[:, 3]) - np.maximum(b[1], o[:, 1])).clip(0)
    area = max(float((b[2] - b[0]) * (b[3] - b[1])), 1e-9)
    return bool(np.any((o[:, 3] > b[3]) & (iw * ih >= min_cover * area)))
