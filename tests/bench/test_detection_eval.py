"""CVML parsing and detection matching."""

from __future__ import annotations

import numpy as np

from vigil.bench.cvml import read_cvml
from vigil.bench.detection_eval import evaluate_detections, match_frame, parse_frames


def test_read_cvml(tmp_path):
    p = tmp_path / "gt.xml"
    p.write_text(
        '<dataset><frame number="3"><objectlist><object id="7"><box h="80" w="30" xc="100" yc="200"/></object>'
        '</objectlist></frame><frame number="4"><objectlist/></frame></dataset>'
    )
    gt = read_cvml(p)
    np.testing.assert_allclose(gt[3].xyxy, [[85, 160, 115, 240]])
    assert gt[3].ids.tolist() == [7] and len(gt[4]) == 0


def test_match_greedy_by_score_and_curve(tmp_path):
    gt_boxes = np.array([[0, 0, 10, 20], [50, 0, 60, 20]], np.float32)
    det = np.array([[0, 0, 10, 20], [1, 0, 11, 20], [200, 0, 210, 20]], np.float32)
    m = match_frame(det, np.array([0.5, 0.9, 0.3]), gt_boxes)
    assert m.det_to_gt.tolist() == [-1, 0, -1] and (m.tp, m.fp, m.fn) == (1, 2, 1)

    class G:  # GroundTruthFrame stand-in
        xyxy = gt_boxes

    res = evaluate_detections({0: (det, np.array([0.5, 0.9, 0.3]))}, {0: G}, thresholds=(0.4, 0.95))
    assert (res.tp, res.fp, res.fn) == (1, 2, 1)
    assert res.curve[0]["precision"] == 0.5 and res.curve[1]["recall"] == 0.0
    assert parse_frames("0:400:4") == range(0, 400, 4)
