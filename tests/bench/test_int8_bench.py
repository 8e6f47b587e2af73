"""vigil bench int8: how the FP32 and INT8 detections are compared (greedy IoU >= 0.5 matching)."""

from __future__ import annotations

import numpy as np

from vigil.bench.int8_bench import _agreement
from vigil.detectors.detections import Detections


def dets(*boxes):
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    return Detections(xyxy=xyxy, confidence=np.ones(len(xyxy), np.float32), class_id=np.zeros(len(xyxy), int))


def test_agreement_matches_each_box_once_at_iou_half():
    a = dets([0, 0, 10, 10], [20, 0, 30, 10], [50, 50, 60, 60])
    # b[3] is a[0] itself (IoU 1, taken first, so b[0] at IoU 0.81 is left over); b[1] meets a[1] at IoU 1/3
    b = dets([0, 0, 9, 9], [25, 0, 35, 10], [100, 100, 110, 110], [0, 0, 10, 10])
    assert _agreement(a, b) == (1, 2, 3)
    assert _agreement(a, dets()) == (0, 3, 0)
    assert _agreement(dets(), b) == (0, 0, 4)
    assert _agreement(a, a) == (3, 0, 0)
