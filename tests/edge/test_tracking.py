"""The tracker wrapper: persistent ids, and coasting through short detector misses."""

from __future__ import annotations

import numpy as np

from vigil.detectors.detections import Detections
from vigil.edge.tracking import Tracker


def _frame(boxes: list[list[float]]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), [0.9] * len(boxes), [0] * len(boxes))


def test_ids_persist_while_boxes_move():
    t = Tracker(fps=7, minimum_consecutive_frames=1)
    ids = [
        t.update(_frame([[10 + 4 * k, 10, 40 + 4 * k, 90], [200, 10, 230, 90]])).tracker_id.tolist() for k in range(5)
    ]
    assert ids[0] == ids[-1] and len(set(ids[0])) == 2


def test_a_lost_track_coasts_for_coast_s_then_disappears():
    fps, coast_s = 10.0, 0.3  # 3 frames
    t = Tracker(fps=fps, minimum_consecutive_frames=1, coast_s=coast_s)
    for k in range(6):
        out = t.update(_frame([[10 + 5 * k, 10, 40 + 5 * k, 90], [300, 10, 330, 90]]))
    assert not out.data["coasting"].any()
    hidden = int(out.tracker_id[out.xyxy[:, 0] < 100][0])
    coasted = []
    for _ in range(5):  # the first person is no longer detected
        out = t.update(_frame([[300, 10, 330, 90]]))
        row = out.tracker_id == hidden
        coasted.append(bool(row.any() and out.data["coasting"][row].all()))
        if row.any():
            # the predicted box keeps moving right, as the person did
            assert out.xyxy[row][0, 0] > 10 + 5 * 5
    assert coasted == [True, True, True, False, False]


def test_without_coasting_a_lost_track_is_not_reported():
    t = Tracker(fps=10, minimum_consecutive_frames=1)
    for k in range(4):
        t.update(_frame([[10 + 5 * k, 10, 40 + 5 * k, 90]]))
    out = t.update(_frame([]))
    assert len(out) == 0 and "coasting" not in out.data
