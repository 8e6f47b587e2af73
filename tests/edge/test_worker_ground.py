"""tracker.ground: off by default (world_xy as before, no world_cov); on, the worker adds world_cov."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vigil.detectors.detections import Detections
from vigil.edge.config import ConfigError, parse_config
from vigil.edge.sources import Frame
from vigil.edge.worker import CameraPipeline

IMG = np.zeros((576, 768, 3), np.uint8)
CALIB = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "pets2009-view001.calib.yaml"
BOXES = np.array([[300, 200, 330, 290], [500, 300, 540, 420]], np.float32)


class Fixed:
    class_names = ["person"]

    def detect(self, image):
        return Detections(BOXES, np.full(2, 0.95, np.float32), np.zeros(2, np.int64))


def _cfg(tmp_path, ground: str = ""):
    text = f"""
version: 1
detector: {{type: darknet_onnx}}
tracker: {{lost_track_buffer_s: 3.0{ground}}}
cameras:
  - name: cam1
    source: a.mp4
    calibration: {CALIB}
"""
    return parse_config(text, base_dir=tmp_path)


def _run(cfg):
    pipe = CameraPipeline(cfg, cfg.cameras[0], fps=7, detector=Fixed())
    out = None
    for i in range(4):
        out = pipe.process(Frame(index=i, timestamp=i / 7, image=IMG))[0]
    return pipe, out


def test_ground_is_off_by_default(tmp_path):
    cfg = _cfg(tmp_path)
    assert not cfg.tracker.ground.filter and not cfg.tracker.ground.occlusion_feet
    pipe, out = _run(cfg)
    assert pipe.ground is None and "world_cov" not in out.data
    np.testing.assert_allclose(out.data["world_xy"], pipe.model.image_to_ground(out.foot_points))


def test_ground_on_adds_covariances(tmp_path):
    pipe, out = _run(_cfg(tmp_path, ", ground: {filter: true, occlusion_feet: true}"))
    assert pipe.ground is not None and len(out) == 2
    assert out.data["world_cov"].shape == (2, 2, 2) and out.data["world_xy"].shape == (2, 2)
    # a person standing still: the filtered position stays at the projected foot
    np.testing.assert_allclose(out.data["world_xy"], pipe.model.image_to_ground(out.foot_points), atol=1e-6)


def test_ground_config_is_strict(tmp_path):
    with pytest.raises(ConfigError):
        _cfg(tmp_path, ", ground: {filtre: true}")
    with pytest.raises(ConfigError):
        _cfg(tmp_path, ", ground: {height_prior_m: 2.5}")
