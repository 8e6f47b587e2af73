"""tracker.ground: on by default, the worker adds world_cov, which reaches the distance rule (each
pair's sigma, interval and confidence in its events); off, world_xy is the projected box bottom and
there is no world_cov. Amodal boxes reach down to the estimated feet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vigil.detectors.detections import Detections
from vigil.edge.config import ConfigError, parse_config
from vigil.edge.sources import Frame
from vigil.edge.worker import CameraPipeline
from vigil.geometry.uncertainty import pair_distance_with_sigma, prob_distance_below

IMG = np.zeros((576, 768, 3), np.uint8)
CALIB = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "pets2009-view001.calib.yaml"
BOXES = np.array([[300, 200, 330, 290], [500, 300, 540, 420]], np.float32)
NEAR = np.array([[300, 200, 330, 290], [335, 200, 365, 290]], np.float32)  # about 0.73 m apart on the ground


class Fixed:
    class_names = ["person"]

    def __init__(self, boxes: np.ndarray = BOXES) -> None:
        self.boxes = boxes

    def detect(self, image):
        return Detections(self.boxes, np.full(2, 0.95, np.float32), np.zeros(2, np.int64))


def _cfg(tmp_path, ground: str = "", rules: str = "{}"):
    text = f"""
version: 1
detector: {{type: darknet_onnx}}
tracker: {{lost_track_buffer_s: 3.0{ground}}}
cameras:
  - name: cam1
    source: a.mp4
    calibration: {CALIB}
    rules: {rules}
"""
    return parse_config(text, base_dir=tmp_path)


def _run(cfg):
    pipe = CameraPipeline(cfg, cfg.cameras[0], fps=7, detector=Fixed())
    out = None
    for i in range(4):
        out = pipe.process(Frame(index=i, timestamp=i / 7, image=IMG))[0]
    return pipe, out


OFF = ", ground: {filter: false, occlusion_feet: false}"


def test_ground_is_on_by_default(tmp_path):
    cfg = _cfg(tmp_path)
    g = cfg.tracker.ground
    assert g.filter and g.occlusion_feet and g.amodal_boxes and g.max_person_height_m == 2.0
    pipe, out = _run(cfg)
    assert pipe.ground is not None and out.data["world_cov"].shape == (2, 2, 2)


def test_ground_off_projects_the_box_bottom(tmp_path):
    pipe, out = _run(_cfg(tmp_path, OFF))
    assert pipe.ground is None and "world_cov" not in out.data
    np.testing.assert_allclose(out.data["world_xy"], pipe.model.image_to_ground(out.foot_points))


def test_ground_on_adds_covariances(tmp_path):
    pipe, out = _run(_cfg(tmp_path, ", ground: {filter: true, occlusion_feet: true}"))
    assert pipe.ground is not None and len(out) == 2
    assert out.data["world_cov"].shape == (2, 2, 2) and out.data["world_xy"].shape == (2, 2)
    # a person standing still: the filtered position stays at the projected foot
    np.testing.assert_allclose(out.data["world_xy"], pipe.model.image_to_ground(out.foot_points), atol=1e-6)


def test_a_box_too_tall_for_a_person_is_cut_to_the_feet_estimated_from_the_head(tmp_path):
    """A 1.75 m person's head over a box that runs 60 px further down (into a nearer person's legs):
    TOO_TALL, so the foot comes from the head and the height prior, and the reported (amodal) box
    ends there; the detector's box stays in data["visible_xyxy"]."""
    cfg = _cfg(tmp_path)
    pipe = CameraPipeline(cfg, cfg.cameras[0], fps=7, detector=Fixed())
    cam = pipe.model
    g = cam.image_to_ground(np.array([[315.0, 290.0]]))[0]
    head = cam.project_points(np.array([[g[0], g[1], 1.75]]))[0]
    foot = cam.ground_to_image(g[None])[0]
    tall = np.array([[300, head[1], 330, foot[1] + 60], [500, 300, 540, 420]], np.float32)
    pipe.detector = Fixed(tall)
    for i in range(3):
        out = pipe.process(Frame(index=i, timestamp=i / 7, image=IMG))[0]
    row = int(np.argmin(out.xyxy[:, 0]))
    assert out.data["foot_corrected"][row] and out.data["foot_reason"][row] & 16  # TOO_TALL
    np.testing.assert_allclose(out.data["visible_xyxy"][row], tall[0])
    # the reported box ends at the foot of a 1.75 m person whose head is the box top centre
    expect = cam.ground_to_image(cam.image_to_plane(np.array([[315.0, tall[0, 1]]]), np.array([1.75])))[0]
    assert abs(out.xyxy[row, 3] - expect[1]) < 0.01
    assert abs(expect[1] - foot[1]) < 0.5  # ... which is where the feet are
    # the other box is a plain person: untouched
    np.testing.assert_allclose(out.xyxy[1 - row], tall[1])


def test_ground_config_is_strict(tmp_path):
    with pytest.raises(ConfigError):
        _cfg(tmp_path, ", ground: {filtre: true}")
    with pytest.raises(ConfigError):
        _cfg(tmp_path, ", ground: {height_prior_m: 2.5}")


def _first_events(cfg):
    """The first frame with events of two people standing NEAR each other: (tracked, events)."""
    pipe = CameraPipeline(cfg, cfg.cameras[0], fps=7, detector=Fixed(NEAR))
    for i in range(4):
        tracked, events, _ = pipe.process(Frame(index=i, timestamp=i / 7, image=IMG))
        if events:
            return tracked, events
    raise AssertionError("no events")


def test_world_cov_reaches_the_distance_payload(tmp_path):
    rules = "{distance: {min_duration_s: 0, decision: sure, confidence: 0.9}}"
    tracked, (start,) = _first_events(_cfg(tmp_path, ", ground: {filter: true}", rules))
    xy, cov = tracked.data["world_xy"], tracked.data["world_cov"]
    d, sigma = pair_distance_with_sigma(xy[:1], cov[:1], xy[1:], cov[1:])
    d, sigma = float(d[0]), float(sigma[0])
    p = start.payload
    assert start.state == "start" and p["decision"] == "sure" and p["tracks"] == [1, 2]
    assert p["distance_m"] == round(d, 3) and 0.7 < d < 0.76
    assert 0.05 < sigma < 0.3 and p["distance_sigma_m"] == round(sigma, 3)
    z = 1.959963984540054
    assert p["distance_interval_m"] == [round(d - z * sigma, 3), round(d + z * sigma, 3)]
    conf = float(prob_distance_below(np.array([d]), np.array([sigma]), 1.0)[0])
    assert conf >= 0.9 and p["confidence"] == round(conf, 4)


def test_without_the_ground_stage_events_carry_no_uncertainty(tmp_path):
    _, (start,) = _first_events(_cfg(tmp_path, OFF, rules="{distance: {min_duration_s: 0}}"))
    p = start.payload
    assert p["decision"] == "point" and "distance_sigma_m" not in p and "confidence" not in p
