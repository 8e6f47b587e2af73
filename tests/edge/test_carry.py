"""tracker.detect_every: the detector on every k-th frame, the tracks carried between (vigil.edge.carry)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vigil.detectors.detections import Detections
from vigil.edge.carry import BoxCarrier, flow_boxes, measured_rows
from vigil.edge.config import ConfigError, parse_config
from vigil.edge.sources import Frame
from vigil.edge.tracking import Tracker
from vigil.edge.worker import CameraPipeline

CALIB = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "pets2009-view001.calib.yaml"


def _box(k: int) -> list[float]:
    """A person walking at constant velocity: 4 px/frame right, 2 px/frame down (pixels)."""
    return [100 + 4 * k, 150 + 2 * k, 130 + 4 * k, 240 + 2 * k]


def _dets(boxes: list[list[float]]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), [0.9] * len(boxes), [0] * len(boxes))


def _texture(seed: int = 0, shape=(240, 320)) -> np.ndarray:
    """A smooth random texture (uint8 gray), so that corners are found and track well."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, shape).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


class FrameLog:
    """A detector that records which frames it was called on (the frame index is in pixel (0, 0))."""

    class_names = ["person"]

    def __init__(self) -> None:
        self.calls: list[int] = []

    def detect(self, image):
        k = int(image[0, 0, 0])
        self.calls.append(k)
        return _dets([_box(k), [500, 300, 540, 420]])


def _cfg(tmp_path, tracker: str):
    text = f"""
version: 1
detector: {{type: darknet_onnx}}
tracker: {{{tracker}}}
cameras:
  - name: cam1
    source: a.mp4
    calibration: {CALIB}
"""
    return parse_config(text, base_dir=tmp_path)


def _image(k: int) -> np.ndarray:
    img = np.zeros((576, 768, 3), np.uint8)
    img[0, 0, 0] = k
    return img


def test_detect_every_2_detects_frames_0_2_4_and_keeps_ids(tmp_path):
    cfg = _cfg(tmp_path, "detect_every: 2, minimum_consecutive_frames: 1")
    det = FrameLog()
    pipe = CameraPipeline(cfg, cfg.cameras[0], fps=7, detector=det)
    outs = [pipe.process(Frame(index=k, timestamp=k / 7, image=_image(k)))[0] for k in range(9)]
    assert det.calls == [0, 2, 4, 6, 8]
    assert [bool(o.data["carried"].all()) for o in outs] == [False, True] * 4 + [False]
    assert all(len(o) == 2 for o in outs)
    ids = [sorted(o.tracker_id.tolist()) for o in outs]
    assert all(i == ids[0] for i in ids)
    # the ground filter got the carried (predicted) rows as unmeasured: their covariance grows
    walker = [o.data["world_cov"][np.argmin(o.xyxy[:, 0])] for o in outs]
    assert np.trace(walker[5]) > np.trace(walker[4]) and np.trace(walker[6]) < np.trace(walker[5])
    assert pipe.tracker.detected == 2


def test_default_detects_every_frame_and_adds_no_flag(tmp_path):
    cfg = _cfg(tmp_path, "minimum_consecutive_frames: 1")
    assert cfg.tracker.detect_every == 1 and cfg.tracker.carry == "predict"
    det = FrameLog()
    pipe = CameraPipeline(cfg, cfg.cameras[0], fps=7, detector=det)
    out = [pipe.process(Frame(index=k, timestamp=k / 7, image=_image(k)))[0] for k in range(4)]
    assert det.calls == [0, 1, 2, 3] and "carried" not in out[-1].data
    with pytest.raises(RuntimeError, match="detect_every is 1"):
        pipe.tracker.carry(_image(4))


def test_a_constant_velocity_box_is_carried_to_its_exact_position():
    t = Tracker(fps=7, minimum_consecutive_frames=1, detect_every=3)
    for k in range(13):
        if t.wants_detection():
            assert k % 3 == 0
            out = t.update(_dets([_box(k)]))
        else:
            out = t.carry(frame_index=k)
        assert len(out) == 1 and out.tracker_id.tolist() == [1]
        assert bool(out.data["carried"][0]) == (k % 3 != 0) and out.metadata.get("frame_index", k) == k
        if k >= 3:  # two detections seen: the velocity is known, (4, 2) px per frame
            np.testing.assert_array_equal(out.xyxy[0], np.array(_box(k), np.float32))
        elif k in (1, 2):  # one detection: velocity 0, the box stays
            np.testing.assert_array_equal(out.xyxy[0], np.array(_box(0), np.float32))


def test_detect_every_must_be_a_positive_integer(tmp_path):
    for bad in ("0", "-1", "1.5"):
        with pytest.raises(ConfigError, match=r"tracker\.detect_every"):
            _cfg(tmp_path, f"detect_every: {bad}")
    with pytest.raises(ConfigError, match=r"tracker\.carry"):
        _cfg(tmp_path, "carry: kalman")
    with pytest.raises(ValueError, match="detect_every"):
        Tracker(fps=7, detect_every=0)
    assert _cfg(tmp_path, "detect_every: 3, carry: flow").tracker.detect_every == 3


def test_flow_moves_a_box_by_the_exact_shift_of_the_image():
    prev = _texture()
    dx, dy = 5, 3
    cur = np.roll(prev, (dy, dx), axis=(0, 1))
    boxes = np.array([[100.0, 60.0, 160.0, 180.0], [200.0, 40.0, 250.0, 120.0]])
    moved, ok = flow_boxes(prev, cur, boxes)
    assert ok.tolist() == [True, True]
    np.testing.assert_allclose(moved, boxes + [dx, dy, dx, dy], atol=1.0)


def test_flow_carry_in_the_tracker_and_its_fallback_to_prediction():
    prev = cv2.cvtColor(_texture(), cv2.COLOR_GRAY2BGR)
    cur = np.roll(prev, (-2, 6), axis=(0, 1))  # 6 px right, 2 px up
    box = [100.0, 60.0, 160.0, 180.0]
    t = Tracker(fps=7, minimum_consecutive_frames=1, detect_every=2, carry="flow")
    first = t.update(_dets([box]), prev)
    assert first.data["flow"].tolist() == [False] and first.data["carried"].tolist() == [False]
    out = t.carry(cur)  # one detection only: prediction would not move it; the flow does
    assert out.data["flow"].tolist() == [True] and out.data["carried"].tolist() == [True]
    np.testing.assert_allclose(out.xyxy[0], np.array(box) + [6, -2, 6, -2], atol=1.0)
    # a picture without texture: no corners, the box falls back to prediction (velocity 0: it stays)
    flat = np.full_like(prev, 128)
    t2 = Tracker(fps=7, minimum_consecutive_frames=1, detect_every=2, carry="flow")
    t2.update(_dets([box]), flat)
    out2 = t2.carry(flat)
    assert out2.data["flow"].tolist() == [False]
    np.testing.assert_array_equal(out2.xyxy[0], np.array(box, np.float32))


def test_measured_rows_for_the_ground_filter():
    d = _dets([[0, 0, 10, 10]] * 5).with_tracker_id(np.arange(5))
    d = d.with_data(
        coasting=np.array([False, True, False, False, True]),
        carried=np.array([False, False, True, True, True]),
        flow=np.array([False, False, False, True, False]),
    )
    # fresh: yes; coasting: no; carried by prediction: no; moved by flow: yes; coasting and carried: no
    assert measured_rows(d).tolist() == [True, False, False, True, False]
    assert measured_rows(_dets([[0, 0, 10, 10]])).tolist() == [True]


def test_a_box_carried_out_of_the_picture_is_dropped():
    c = BoxCarrier("predict")
    img = np.zeros((100, 100, 3), np.uint8)
    c.observe(0, _dets([[70, 10, 90, 50]]).with_tracker_id([7]))
    c.observe(2, _dets([[80, 10, 100, 50]]).with_tracker_id([7]))  # 5 px per frame to the right
    assert c.velocity(7).tolist() == [5.0, 0.0, 5.0, 0.0]
    assert len(c.carry(img)) == 1  # 85..105: still partly inside
    assert len(c.carry(img)) == 1  # 90..110
    out = c.carry(img)  # 95..115
    assert len(out) == 1
    assert len(c.carry(img)) == 0  # 100..120: gone


def test_a_person_walking_into_view_is_confirmed_and_keeps_one_id_at_k3():
    # 30 px wide, 6 px per frame: two detections 3 frames apart overlap by IoU 0.25 only, less than the
    # 0.3 ByteTrack needs to confirm a new track; the carried frames between confirm it
    t = Tracker(fps=7, minimum_consecutive_frames=2, detect_every=3)
    ids = []
    for k in range(13):
        box = [100 + 6 * k, 150, 130 + 6 * k, 240]
        out = t.update(_dets([box])) if t.wants_detection() else t.carry(frame_index=k)
        ids.append(out.tracker_id.tolist())
    assert ids[0] == [] and all(i == [1] for i in ids[1:])
