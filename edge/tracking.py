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

__all__ = ["Tracker", "covered_by_nearer"]


class Tracker:
    """Assigns persistent ``tracker_id`` values to detections, frame after frame.

    ``fps``: the stream's frame rate (frames per second), used to turn ``lost_track_buffer_s``
    into a number of frames.
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
    ) -> None:
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
        )

    def update(self, detections: Detections) -> Detections:
        """Detections of one frame → the tracked ones, with ``tracker_id`` set.

        Rows that do not (yet) belong to a confirmed track are left out. ``data`` extras of
        the input are carried over for the rows kept.
        """
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
