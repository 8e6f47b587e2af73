"""Multi-object tracking through a maintained library: supervision's ByteTrack.

supervision is pinned at 0.30.x: the last series that ships ByteTrack without pulling the
non-headless ``opencv-python`` wheel (its successor, Roboflow's ``trackers`` package,
requires it, and two cv2 builds in one environment fight). Only this module imports
supervision, so replacing the tracker touches one file.
"""

from __future__ import annotations

import warnings

import numpy as np

from vigil.detectors.detections import Detections

__all__ = ["Tracker"]


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
    ) -> None:
        with warnings.catch_warnings():
            # 0.30.x marks ByteTrack deprecated in favour of `trackers`; see the module docstring.
            warnings.simplefilter("ignore", FutureWarning)
            import supervision as sv

            # supervision keeps a lost track for int(frame_rate / 30 * lost_track_buffer) frames
            self._bt = sv.ByteTrack(
                track_activation_threshold=track_activation_threshold,
                lost_track_buffer=max(1, int(round(lost_track_buffer_s * 30.0))),
                minimum_matching_threshold=minimum_matching_threshold,
                frame_rate=max(1, int(round(fps))),
                minimum_consecutive_frames=minimum_consecutive_frames,
            )
        self._sv = sv

    @classmethod
    def from_config(cls, cfg, fps: float) -> "Tracker":
        return cls(
            fps=fps,
            track_activation_threshold=cfg.track_activation_threshold,
            lost_track_buffer_s=cfg.lost_track_buffer_s,
            minimum_matching_threshold=cfg.minimum_matching_threshold,
            minimum_consecutive_frames=cfg.minimum_consecutive_frames,
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
            return Detections.empty(detections.metadata).with_tracker_id(np.zeros(0, np.int64))
        rows = np.asarray(out.data["_row"], dtype=np.int64)
        kept = detections[rows]
        # ByteTrack returns the detector's boxes for matched rows; keep ours (identical) and its ids
        return kept.with_tracker_id(np.asarray(out.tracker_id, dtype=np.int64))

    def reset(self) -> None:
        self._bt.reset()
