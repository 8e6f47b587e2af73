"""The `onnx` backend on ONNX graphs built here whose outputs are known: each layout,
exact boxes after the letterbox mapping, class names, thresholds, batching, provider
fallback and bad model files."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from pydantic import ValidationError

from vigil.detectors.backends.onnx_yolo import OnnxYoloConfig, OnnxYoloDetector
from vigil.detectors.base import Detector
from vigil.detectors.registry import build_detector, parse_detector_config
from vigil.detectors.yolo import detect_layout
from vigil.models.errors import ModelError
from vigil.models.metadata import names_from_metadata, read_names_file

NAMES = "{0: 'a', 1: 'b', 2: 'c'}"


def make_model(path, output, *, input_shape=(1, 3, 320, 320), names=NAMES, opset=17, meta=None, batch_dynamic=False):
    """A graph whose output is ``output`` (shape (1, a, b)); with ``batch_dynamic`` it is
    broadcast to the input's batch (output = const + 0 * mean(input))."""
    const = np.asarray(output, np.float32)
    shape = list(input_shape)
    if batch_dynamic:
        shape[0] = "batch"
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)
    out_shape = ["batch" if batch_dynamic else const.shape[0], *const.shape[1:]]
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)
    nodes = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(const))]
    if batch_dynamic:
        nodes += [
            helper.make_node("ReduceMean", ["images"], ["m4"], axes=[1, 2, 3], keepdims=1),
            helper.make_node("Constant", [], ["ax3"], value=numpy_helper.from_array(np.array([3], np.int64))),
            helper.make_node("Squeeze", ["m4", "ax3"], ["m3"]),
            helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.float32))),
            helper.make_node("Mul", ["m3", "zero"], ["z"]),
            helper.make_node("Add", ["z", "c"], ["output0"]),
        ]
    else:
        nodes += [helper.make_node("Identity", ["c"], ["output0"])]
    graph = helper.make_graph(nodes, "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    md = dict(meta or {})
    if names is not None:
        md["names"] = names
    for k, v in md.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def anchors_output():
    # columns: cx, cy, w, h, score a, score b, score c (model-input pixels, 320 x 320)
    cols = [
        [160, 160, 80, 40, 0.9, 0.1, 0.0],  # a -> kept
        [162, 160, 80, 40, 0.8, 0.0, 0.0],  # a, overlaps the first: removed by NMS
        [40, 100, 20, 20, 0.0, 0.0, 0.7],  # c -> kept
        [200, 200, 30, 30, 0.1, 0.2, 0.0],  # b below 0.25 -> dropped
        [10, 70, 40, 20, 0.0, 0.6, 0.3],  # b, sticks out left and top of the frame -> clipped
    ]
    return np.array(cols, np.float32).T[None]  # (1, 7, 5)


# A 400 x 240 frame in a 320 x 320 input: scale 0.8, resized 320 x 192, 64 px pad on top.
FRAME = np.full((240, 400, 3), 50, np.uint8)
EXPECTED_ANCHORS = (
    np.array([[150, 95, 250, 145], [0, 0, 37.5, 20], [37.5, 32.5, 62.5, 57.5]], np.float32),
    np.array([0.9, 0.6, 0.7], np.float32),  # sorted by NMS: best first within... checked as a set below
    np.array([0, 1, 2]),
)


def _sorted(d):
    o = np.argsort(-d.confidence, kind="stable")
    return d.xyxy[o], d.confidence[o], d.class_id[o]


def test_anchors_layout_exact_boxes(tmp_path):
    det = OnnxYoloDetector(OnnxYoloConfig(model=make_model(tmp_path / "m.onnx", anchors_output())))
    assert det.layout == "anchors" and det.input_size == (320, 320) and det.class_names == ["a", "b", "c"]
    assert isinstance(det, Detector)
    xyxy, conf, cid = _sorted(det.detect(FRAME))
    np.testing.assert_allclose(xyxy, [[150, 95, 250, 145], [37.5, 32.5, 62.5, 57.5], [0, 0, 37.5, 20]], atol=1e-4)
    np.testing.assert_allclose(conf, [0.9, 0.7, 0.6], atol=1e-6)
    np.testing.assert_array_equal(cid, [0, 2, 1])
    assert set(det.last_timing) == {"pre_ms", "infer_ms", "post_ms"}


def test_end2end_layout_exact_boxes(tmp_path):
    rows = np.array(
        [
            [
                [120, 140, 200, 180, 0.9, 0],
                [30, 90, 50, 110, 0.7, 2],
                [0, 0, 10, 10, 0.1, 1],  # below the threshold
                [100, 100, 150, 150, 0.5, 1],
                [121, 141, 201, 181, 0.85, 0],  # overlaps the first: end-to-end heads need no NMS, kept
                [0, 0, 0, 0, 0.0, 0],  # padding row
            ]
        ],
        np.float32,
    )
    det = OnnxYoloDetector(OnnxYoloConfig(model=make_model(tmp_path / "m.onnx", rows)))
    assert det.layout == "end2end"
    d = det.detect(FRAME)
    np.testing.assert_allclose(d.confidence, [0.9, 0.85, 0.7, 0.5], atol=1e-6)
    np.testing.assert_array_equal(d.class_id, [0, 0, 2, 1])
    np.testing.assert_allclose(
        d.xyxy,
        [[150, 95, 250, 145], [151.25, 96.25, 251.25, 146.25], [37.5, 32.5, 62.5, 57.5], [125, 45, 187.5, 107.5]],
        atol=1e-4,
    )


def test_kept_classes_and_per_class_thresholds(tmp_path):
    path = make_model(tmp_path / "m.onnx", anchors_output())
    d = OnnxYoloDetector(OnnxYoloConfig(model=path, classes=["a", "c"])).detect(FRAME)
    assert sorted(d.class_id.tolist()) == [0, 2]
    d = OnnxYoloDetector(OnnxYoloConfig(model=path, class_confidence={"c": 0.75, "b": 0.15})).detect(FRAME)
    assert sorted(d.class_id.tolist()) == [0, 1, 1]  # c (0.7) now below; b at 0.2 now kept
    with pytest.raises(ModelError, match=r"\['zebra'\] are not in the class names"):
        OnnxYoloDetector(OnnxYoloConfig(model=path, classes=["zebra"]))


def test_detect_batch_dynamic_and_static(tmp_path):
    frames = [FRAME, np.zeros((320, 320, 3), np.uint8), np.zeros((100, 50, 3), np.uint8)]
    dyn = OnnxYoloDetector(
        OnnxYoloConfig(model=make_model(tmp_path / "d.onnx", anchors_output(), batch_dynamic=True), max_batch=2)
    )
    static = OnnxYoloDetector(OnnxYoloConfig(model=make_model(tmp_path / "s.onnx", anchors_output())))
    assert dyn.batch_size is None and static.batch_size == 1
    for det in (dyn, static):
        out = det.detect_batch(frames)
        assert len(out) == 3 and det.detect_batch([]) == []
        np.testing.assert_allclose(_sorted(out[0])[0], _sorted(det.detect(FRAME))[0])
        np.testing.assert_allclose(_sorted(out[1])[0][0], [120, 140, 200, 180], atol=1e-4)  # no letterbox
        # 50 x 100 frame: scale 3.2, resized 160 x 320, 80 px pad at the left
        np.testing.assert_allclose(
            _sorted(out[2])[0][0], [(120 - 80) / 3.2, 140 / 3.2, (200 - 80) / 3.2, 180 / 3.2], atol=1e-4
        )


@pytest.mark.parametrize(
    "shape, classes, layout",
    [
        ((1, 84, 8400), 80, "anchors"),
        ((1, 300, 6), 80, "end2end"),
        (("batch", 84, "anchors"), None, "anchors"),
        (("batch", 300, 6), None, "end2end"),
        ((1, 6, 8400), 2, "anchors"),
        ((1, 6, 6), 2, "anchors"),
    ],
)
def test_detect_layout(shape, classes, layout):
    assert detect_layout(shape, classes) == layout


@pytest.mark.parametrize(
    "shape, classes, message",
    [
        ((1, 6, 6), None, "fits both layouts"),
        ((1, 84), 80, "3-D"),
        ((1, 50, 8400), 80, "84 \\(4 \\+ 80 classes\\)"),
        ((1, 4, 10), None, "unexpected"),
    ],
)
def test_detect_layout_errors(shape, classes, message):
    with pytest.raises(ModelError, match=message):
        detect_layout(shape, classes)


def test_layout_override_and_names_file(tmp_path):
    out = np.zeros((1, 6, 6), np.float32)
    out[0, :, 0] = [100, 100, 20, 20, 0.9, 0.1]  # as anchors: one box of class 0
    path = make_model(tmp_path / "m.onnx", out, names=None)
    with pytest.raises(ModelError, match="no class names"):
        OnnxYoloDetector(OnnxYoloConfig(model=path))
    (tmp_path / "names.txt").write_text("car\nperson\n")
    (tmp_path / "names.yaml").write_text("names:\n  0: car\n  1: person\n")
    for names in ("names.txt", "names.yaml"):
        det = OnnxYoloDetector(OnnxYoloConfig(model=path, class_names=tmp_path / names, layout="anchors"))
        assert det.layout == "anchors" and det.class_names == ["car", "person"]
        assert len(det.detect(np.zeros((320, 320, 3), np.uint8))) == 1


def test_names_metadata_parsing(tmp_path):
    assert names_from_metadata({"names": "{0: 'person', 1: 'bicycle'}"}) == ["person", "bicycle"]
    assert names_from_metadata({"names": '["x", "y"]'}) == ["x", "y"]
    assert names_from_metadata({}) is None
    with pytest.raises(ModelError, match="not a dict or list literal"):
        names_from_metadata({"names": "__import__('os').system('true')"})
    with pytest.raises(ModelError, match="without gaps"):
        names_from_metadata({"names": "{0: 'a', 2: 'c'}"})
    with pytest.raises(ModelError, match="not found"):
        read_names_file(tmp_path / "nope.txt")


def test_dynamic_input_size(tmp_path):
    path = make_model(tmp_path / "m.onnx", anchors_output(), input_shape=(1, 3, "h", "w"))
    with pytest.raises(ModelError, match="dynamic input size"):
        OnnxYoloDetector(OnnxYoloConfig(model=path))
    assert OnnxYoloDetector(OnnxYoloConfig(model=path, input_size=(320, 320))).input_size == (320, 320)
    path = make_model(
        tmp_path / "m2.onnx", anchors_output(), input_shape=(1, 3, "h", "w"), meta={"imgsz": "[320, 320]"}
    )
    assert OnnxYoloDetector(OnnxYoloConfig(model=path)).input_size == (320, 320)
    static = make_model(tmp_path / "m3.onnx", anchors_output())
    with pytest.raises(ModelError, match="fixed input size"):
        OnnxYoloDetector(OnnxYoloConfig(model=static, input_size=(640, 640)))


def test_provider_fallback_is_logged(tmp_path, monkeypatch, caplog):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    path = make_model(tmp_path / "m.onnx", anchors_output())
    with caplog.at_level(logging.WARNING, logger="vigil.detectors.backends.onnx_yolo"):
        det = OnnxYoloDetector(OnnxYoloConfig(model=path, providers=["tensorrt", "cuda", "cpu"]))
    assert det.providers == ["CPUExecutionProvider"]
    text = caplog.text
    assert "TensorrtExecutionProvider" in text and "CUDAExecutionProvider" in text and "falling back" in text


def test_bad_model_files(tmp_path):
    with pytest.raises(ModelError, match=r"not found: .*missing\.onnx"):
        OnnxYoloDetector(OnnxYoloConfig(model=tmp_path / "missing.onnx"))
    good = make_model(tmp_path / "good.onnx", anchors_output())
    data = good.read_bytes()
    (tmp_path / "trunc.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"trunc\.onnx.*truncated or corrupt"):
        OnnxYoloDetector(OnnxYoloConfig(model=tmp_path / "trunc.onnx"))
    with pytest.raises(ModelError, match=r"old\.onnx: opset 5 is not supported"):
        OnnxYoloDetector(OnnxYoloConfig(model=make_model(tmp_path / "old.onnx", anchors_output(), opset=5)))
    with pytest.raises(ModelError, match=r"shape\.onnx.*84 \(4 \+ 80 classes\)|shape\.onnx.*class rows"):
        OnnxYoloDetector(
            OnnxYoloConfig(
                model=make_model(
                    tmp_path / "shape.onnx", np.zeros((1, 9, 20), np.float32), names=str({i: str(i) for i in range(80)})
                )
            )
        )
    with pytest.raises(ModelError, match=r"flat\.onnx.*3-D detection output"):
        OnnxYoloDetector(OnnxYoloConfig(model=make_model(tmp_path / "flat.onnx", np.zeros((1, 10), np.float32))))
    with pytest.raises(ModelError, match="'segment' model"):
        OnnxYoloDetector(
            OnnxYoloConfig(model=make_model(tmp_path / "seg.onnx", anchors_output(), meta={"task": "segment"}))
        )


def test_registry_builds_onnx_and_validates(tmp_path):
    path = make_model(tmp_path / "m.onnx", anchors_output())
    det = build_detector({"type": "onnx", "model": str(path), "classes": ["a"]})
    assert isinstance(det, OnnxYoloDetector) and det.class_names == ["a", "b", "c"]
    for bad, msg in [
        ({"type": "onnx", "model": "x", "providers": ["tpu"]}, "tensorrt"),
        ({"type": "onnx", "model": "x", "input_size": [100, 100]}, "multiples of 32"),
        ({"type": "onnx", "model": "x", "layout": "yolo"}, "anchors"),
        ({"type": "yolo"}, "known: darknet_onnx, onnx, ultralytics"),
    ]:
        with pytest.raises(ValidationError, match=msg):
            parse_detector_config(bad)


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is not None and importlib.util.find_spec("ultralytics") is not None,
    reason="ultralytics is installed: the missing-extra message cannot be shown",
)
def test_ultralytics_without_the_extra_says_how_to_install(tmp_path):
    with pytest.raises(ModelError, match=r"pip install '\.\[ultralytics\]'"):
        build_detector({"type": "ultralytics", "model": str(tmp_path / "m.pt")})
