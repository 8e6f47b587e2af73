"""INT8 quantization (vigil.models.quantize) on a small YOLO-like graph built here: which
nodes stay float, that the INT8 copy agrees with the float model, the cache and manifest,
and how the `onnx` detector picks the copy for `precision: auto | int8 | fp32`."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vigil.detectors.backends.onnx_yolo import OnnxYoloDetector
from vigil.detectors.ort_session import numpy_blob
from vigil.hashing import sha256_file
from vigil.letterbox import letterbox
from vigil.models.errors import ModelError
from vigil.models.manifest import find_int8, get_manifest, load_manifest
from vigil.models.quantize import (
    Int8Recipe,
    float_tail,
    int8_name,
    letterboxed,
    make_int8,
    prepare_int8,
    quantize_detector,
    source_manifest,
)

H, W = 64, 96  # model input used in these tests (multiples of 32)
TAIL = ["box_reshape", "box_pixels", "cls_reshape", "cls_sigmoid", "out_concat"]


def tiny_yolo(path):
    """``images (batch, 3, h, w)`` -> ``output0 (batch, 4 + 3, N)``: a SiLU conv stem, a box
    conv whose output is scaled to pixels (x 100) and a class conv through a sigmoid,
    concatenated as a YOLOv8 head does (pixels and scores in one tensor)."""
    rng = np.random.default_rng(7)

    def init(name, arr):
        return numpy_helper.from_array(np.asarray(arr, np.float32 if arr.dtype.kind == "f" else np.int64), name)

    inits = [
        init("w1", rng.normal(0, 0.4, (8, 3, 3, 3))),
        init("b1", rng.normal(0, 0.1, (8,))),
        init("wb", rng.normal(0, 0.3, (4, 8, 1, 1))),
        init("bb", rng.normal(0, 0.1, (4,))),
        init("wc", rng.normal(0, 0.3, (3, 8, 1, 1))),
        init("bc", rng.normal(0, 0.1, (3,))),
        init("px", np.array([100.0])),
        init("s4", np.array([0, 4, -1])),
        init("s3", np.array([0, 3, -1])),
    ]
    nodes = [
        helper.make_node("Conv", ["images", "w1", "b1"], ["c1"], name="stem_conv", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c1"], ["s1"], name="stem_sigmoid"),
        helper.make_node("Mul", ["c1", "s1"], ["a1"], name="stem_silu"),
        helper.make_node("Conv", ["a1", "wb", "bb"], ["cb"], name="box_conv"),
        helper.make_node("Conv", ["a1", "wc", "bc"], ["cc"], name="cls_conv"),
        helper.make_node("Reshape", ["cb", "s4"], ["rb"], name="box_reshape"),
        helper.make_node("Mul", ["rb", "px"], ["pb"], name="box_pixels"),
        helper.make_node("Reshape", ["cc", "s3"], ["rc"], name="cls_reshape"),
        helper.make_node("Sigmoid", ["rc"], ["sc"], name="cls_sigmoid"),
        helper.make_node("Concat", ["pb", "sc"], ["output0"], name="out_concat", axis=1),
    ]
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 7, "anchors"])
    model = helper.make_model(
        helper.make_graph(nodes, "tiny", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    for k, v in {"names": "{0: 'person', 1: 'car', 2: 'bike'}", "task": "detect", "imgsz": f"[{H}, {W}]"}.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def frames(n, seed=0):
    """``n`` smooth ``(48, 72, 3) uint8`` BGR frames (blurred noise: image-like ranges)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        f = rng.integers(0, 256, (12, 18, 3)).astype(np.uint8)
        out.append(np.ascontiguousarray(np.kron(f, np.ones((4, 4, 1), np.uint8))))
    return out


def run(path, blob):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {"images": blob})[0]


def test_float_tail_is_what_no_convolution_follows(tmp_path):
    model = onnx.load(str(tiny_yolo(tmp_path / "m.onnx")))
    assert float_tail(model) == TAIL


def test_letterboxed_matches_the_detector_preprocessing():
    f = frames(1)[0]
    blob = letterboxed(f, (H, W))
    out = np.full((H, W, 3), 114, np.uint8)
    letterbox(f, (H, W), fill=114, out=out, interpolation=cv2.INTER_LINEAR)
    assert blob.shape == (1, 3, H, W) and blob.dtype == np.float32
    np.testing.assert_array_equal(blob, numpy_blob(out[None]))  # what the detector feeds the model


def test_int8_copy_agrees_with_the_float_model_and_keeps_the_tail_float(tmp_path):
    src = tiny_yolo(tmp_path / "m.onnx")
    dst = tmp_path / "m-int8.onnx"
    info = quantize_detector(src, dst, frames(8), Int8Recipe((H, W), calibration="8 test frames"))
    assert info["float_nodes"] == len(TAIL) and info["frames"] == 8 and info["input_size"] == [H, W]
    assert info["source_sha256"] == sha256_file(src)
    q = onnx.load(str(dst))
    dims = [d.dim_value for d in q.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, H, W]
    assert {p.key: p.value for p in q.metadata_props}["vigil_precision"] == "int8"
    by_output = {o: n for n in q.graph.node for o in n.output}
    # both convolutions of the head and the stem are quantized: their weights come through DequantizeLinear
    for conv in (n for n in q.graph.node if n.op_type == "Conv"):
        assert by_output[conv.input[1]].op_type == "DequantizeLinear", conv.name
    # the tail runs in float: none of its nodes' outputs is quantized again (the head's convolutions'
    # outputs are, each on its own scale: pixels and scores never share one)
    consumers = {i: n for n in q.graph.node for i in n.input}
    for name in TAIL:
        node = next(n for n in q.graph.node if n.name == name)
        assert all(consumers.get(o) is None or consumers[o].op_type != "QuantizeLinear" for o in node.output), name
    assert by_output["output0"].op_type == "Concat"
    blob = letterboxed(frames(1, seed=99)[0], (H, W))
    ref, got = run(src, blob), run(dst, blob)
    assert ref.shape == got.shape == (1, 7, (H // 2) * (W // 2))
    box_range = np.ptp(ref[0, :4])
    assert np.abs(got[0, :4] - ref[0, :4]).max() < 0.05 * box_range  # pixels: within 5 % of their range
    assert np.abs(got[0, 4:] - ref[0, 4:]).max() < 0.05  # scores: within 0.05


def test_bad_inputs_are_named(tmp_path):
    src = tiny_yolo(tmp_path / "m.onnx")
    with pytest.raises(ModelError, match="no calibration frames"):
        quantize_detector(src, tmp_path / "o.onnx", [], Int8Recipe((H, W)))
    with pytest.raises(ModelError, match="multiples of 32"):
        Int8Recipe((60, 96))
    with pytest.raises(ModelError, match="unknown calibration method 'kl'"):
        Int8Recipe((H, W), method="kl")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="junk.onnx"):
        quantize_detector(tmp_path / "junk.onnx", tmp_path / "o.onnx", frames(1), Int8Recipe((H, W)))
    with pytest.raises(ModelError, match="exactly one of a video"):
        make_int8(str(src), (H, W), root=tmp_path)
    with pytest.raises(ModelError, match="cannot be opened"):
        make_int8(str(src), (H, W), video=tmp_path / "missing.avi", root=tmp_path)


def test_cache_manifest_and_lookup(tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    src = tiny_yolo(tmp_path / "tiny.onnx")
    source = source_manifest(str(src), root)
    assert source.name == "tiny" and source.class_names == ["person", "car", "bike"]
    recipe = Int8Recipe((H, W), calibration="8 test frames")
    m, made = prepare_int8(source, frames(8), recipe, root)
    assert made and m.name == int8_name("tiny", (H, W)) == "tiny-int8-64x96"
    assert m.precision == "int8" and m.input_size == [H, W] and m.class_names == source.class_names
    assert m.derived["source_sha256"] == sha256_file(src) and m.derived["method"] == "minmax"
    assert "calibrated on 8 test frames" in m.origin and "tiny" in m.licence
    on_disk = json.loads((root / "tiny-int8-64x96.manifest.json").read_text())
    assert on_disk["precision"] == "int8" and on_disk["derived"]["key"] == m.derived["key"]
    assert get_manifest("tiny-int8-64x96", root) == load_manifest(root / "tiny-int8-64x96.manifest.json")
    # the same recipe and frames: nothing is made again
    again, made_again = prepare_int8(source, frames(8), recipe, root)
    assert not made_again and again.sha256 == m.sha256
    # other frames: a new copy replaces the old file
    other, made_other = prepare_int8(source, frames(8, seed=5), recipe, root)
    assert made_other and other.file != m.file and not (root / m.file).exists()
    assert find_int8(sha256_file(src), (H, W), root).file == other.file
    assert find_int8(sha256_file(src), (H, 64), root) is None
    assert find_int8("0" * 64, (H, W), root) is None
    (root / other.file).write_bytes(b"tampered")
    assert find_int8(sha256_file(src), (H, W), root) is None  # fails closed: a changed file is not used


def test_detector_precision_auto_int8_fp32(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("VIGIL_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "models").mkdir(parents=True)
    src = tiny_yolo(tmp_path / "tiny.onnx")
    base = {"model": str(src), "input_size": [H, W], "warmup": False}
    with pytest.raises(
        ModelError, match=r"no INT8 copy .*`vigil models quantize --model .*tiny.onnx --input-size 64 96"
    ):
        OnnxYoloDetector({**base, "precision": "int8"})
    with caplog.at_level(logging.INFO, logger="vigil.detectors.backends.onnx_yolo"):
        d = OnnxYoloDetector(base)  # auto, no copy yet: FP32 (an explicit model: logged at INFO, not a warning)
    assert d.precision == "fp32" and d.model_path == src
    assert any("no INT8 copy" in r.message and r.levelno == logging.INFO for r in caplog.records)
    m, _ = prepare_int8(source_manifest(str(src)), frames(8), Int8Recipe((H, W)))
    auto = OnnxYoloDetector(base)
    assert auto.precision == "int8" and auto.model_path == m.path()
    assert auto.input_size == (H, W) and auto.class_names == ["person", "car", "bike"]
    assert OnnxYoloDetector({**base, "precision": "int8"}).model_path == m.path()
    fp32 = OnnxYoloDetector({**base, "precision": "fp32"})
    assert fp32.precision == "fp32" and fp32.model_path == src
    # another input size has no copy: auto falls back, int8 refuses
    assert OnnxYoloDetector({**base, "input_size": [96, 96]}).precision == "fp32"
    # both precisions run and give the same shape of answer on a frame
    f = frames(1, seed=3)[0]
    a, b = auto.detect(f), fp32.detect(f)
    assert a.xyxy.shape[1] == b.xyxy.shape[1] == 4
