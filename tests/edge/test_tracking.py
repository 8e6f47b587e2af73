"""The tracker wrapper: persistent ids, and coasting through short detector misses."""

from __future__ import annotations

import numpy as np

from vigil.detectors.detections import Detections
from vigil.edge.tracking import Tracker, covered_by_nearer


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
    t = Tracker(fps=fps, minimum_consecutive_frames=1, coast_s=coast_s, coast_min_cover=None)  # no occluder needed
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


def test_covered_by_nearer_needs_a_lower_bottom_and_enough_cover():
    box = np.array([100.0, 100.0, 120.0, 160.0])  # 20 x 60 px, area 1200
    nearer = np.array([[110.0, 110.0, 140.0, 190.0]])  # bottom 190 > 160; overlap 10 x 50 = 500 px (0.417)
    assert covered_by_nearer(box, nearer, 0.4)
    assert not covered_by_nearer(box, nearer, 0.42)
    farther = np.array([[110.0, 90.0, 140.0, 150.0]])  # covers 10 x 50 too, but its bottom is higher: behind
    assert not covered_by_nearer(box, farther, 0.1)
    assert not covered_by_nearer(box, np.zeros((0, 4)), 0.1)


def test_by_default_only_a_track_hidden_behind_a_nearer_box_coasts():
    t = Tracker(fps=10.0, minimum_consecutive_frames=1, coast_s=0.3)
    walker = [10, 10, 40, 90]

    def occluder(x: float) -> list[float]:  # a nearer person (bottom edge 120 > 90) walking left
        return [x, 20, x + 40, 120]

    for k in range(4):
        out = t.update(_frame([walker, occluder(60 - 10 * k)]))
    hidden = int(out.tracker_id[out.xyxy[:, 0] == 10][0])
    # the occluder now covers 20 x 70 px of the walker's 30 x 80 px box (0.58): the walker is hidden
    out = t.update(_frame([occluder(20)]))
    row = out.tracker_id == hidden
    assert row.sum() == 1 and out.data["coasting"][row].all()
    # the occluder has gone: nothing explains the walker's absence, so it is not reported
    out = t.update(_frame([occluder(400)]))
    assert not (out.tracker_id == hidden).any()
