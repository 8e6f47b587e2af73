"""The GPU path's pieces that run anywhere: provider options for a described GPU (engine folders
keyed by GPU model, INT8 table, batch profiles), the INT8 calibration table on a tiny model,
the device pre/post-processing graphs and the IO-binding path against ``session.run`` (on the
CPU, where onnxruntime binds CPU OrtValues)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vigil.detectors.ort_session import (
    CPU,
    CUDA,
    TENSORRT,
    TRT_TABLE_NAME,
    GpuInfo,
    OrtRunner,
    TrtSettings,
    calibrate_int8,
    cuda_options,
    engine_cache_dir,
    numpy_blob,
    open_session,
    prepare_engine_dir,
    preprocess_model,
    probe_gpu,
    provider_options,
    read_trt_calibration_table,
    tensorrt_options,
    topk_model,
    trt_settings,
    write_trt_calibration_table,
)
from vigil.detectors.yolo import decode_anchors

H200 = GpuInfo("NVIDIA H200", "9.0", 143771, "570.86.15")


def settings(tmp_path: Path, **kw) -> TrtSettings:
    base = dict(
        cache_root=tmp_path / "trt",
        model_path=Path("/models/yolov8s-bb846d2642a15c49.onnx"),
        model_sha="0123456789abcdef",
        input_name="images",
        input_hw=(672, 896),
        max_batch=32,
    )
    base.update(kw)
    return TrtSettings(**base)


# ----------------------------------------------------------------------------- options
def test_gpu_slug_names_model_and_compute_capability():
    assert H200.slug == "nvidia-h200-sm90"
    assert GpuInfo("NVIDIA GeForce RTX 4090", "8.9").slug == "nvidia-geforce-rtx-4090-sm89"


def test_tensorrt_options_fp16_dynamic_batch(tmp_path):
    s = settings(tmp_path)
    root = tmp_path / "trt"
    assert tensorrt_options(s, H200) == {
        "device_id": 0,
        "trt_fp16_enable": True,
        "trt_int8_enable": False,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(
            root / "nvidia-h200-sm90" / "yolov8s-bb846d2642a15c49-0123456789abcdef-672x896-b1-32-fp16"
        ),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(root / "nvidia-h200-sm90"),
        "trt_profile_min_shapes": "images:1x3x672x896",
        "trt_profile_opt_shapes": "images:32x3x672x896",
        "trt_profile_max_shapes": "images:32x3x672x896",
    }


def test_tensorrt_options_int8_table_static_batch_other_gpu(tmp_path):
    table = tmp_path / "calib.flatbuffers"
    table.write_bytes(b"table")
    digest = hashlib.sha256(b"table").hexdigest()[:8]
    s = settings(tmp_path, int8_table=table, dynamic_batch=False, max_batch=4, timing_cache=False, device_id=1)
    gpu = GpuInfo("NVIDIA A100-SXM4-80GB", "8.0")
    engines = (
        tmp_path
        / "trt"
        / "nvidia-a100-sxm4-80gb-sm80"
        / f"yolov8s-bb846d2642a15c49-0123456789abcdef-672x896-b4-4-int8-{digest}"
    )
    assert tensorrt_options(s, gpu) == {
        "device_id": 1,
        "trt_fp16_enable": True,
        "trt_int8_enable": True,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engines),
        "trt_timing_cache_enable": False,
        "trt_int8_calibration_table_name": TRT_TABLE_NAME,
        "trt_int8_use_native_calibration_table": False,
    }
    assert prepare_engine_dir(s, gpu) == engines
    assert (engines / TRT_TABLE_NAME).read_bytes() == b"table"


def test_engines_never_shared_between_gpu_models_or_shapes(tmp_path):
    a = engine_cache_dir(settings(tmp_path), H200)
    assert engine_cache_dir(settings(tmp_path), GpuInfo("NVIDIA H100 80GB HBM3", "9.0")) != a
    assert engine_cache_dir(settings(tmp_path, input_hw=(640, 640)), H200) != a
    assert engine_cache_dir(settings(tmp_path, max_batch=8), H200) != a
    assert engine_cache_dir(settings(tmp_path, fp16=False), H200).name.endswith("-fp32")
    assert engine_cache_dir(settings(tmp_path), None).parent.name == "unknown-gpu"


def test_provider_options_for_each_provider(tmp_path):
    s = settings(tmp_path, device_id=0)
    opts = provider_options([TENSORRT, CUDA, CPU], s, H200, device_id=0, cuda_graph=True)
    assert [p for p, _ in opts] == [TENSORRT, CUDA, CPU]
    assert opts[0][1] == tensorrt_options(s, H200)
    assert opts[1][1] == {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE"}  # graphs only when CUDA leads
    assert opts[2][1] == {}
    assert provider_options([CUDA, CPU], None, None, device_id=2, cuda_graph=True) == [
        (CUDA, {"device_id": 2, "cudnn_conv_algo_search": "EXHAUSTIVE", "enable_cuda_graph": True}),
        (CPU, {}),
    ]
    assert cuda_options(0) == {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE"}
    with pytest.raises(ValueError, match="TrtSettings"):
        provider_options([TENSORRT], None, H200)


def test_trt_settings_from_model_and_config(tmp_path):
    path = tiny_yolo(tmp_path / "m.onnx", hw=(32, 64))

    class Cfg:
        max_batch = 16
        device_id = 0
        tensorrt_fp16 = True
        tensorrt_int8_table = None
        tensorrt_timing_cache = True

    s = trt_settings(path, Cfg(), None, tmp_path / "trt")
    assert (s.input_name, s.input_hw, s.max_batch, s.dynamic_batch, s.precision) == (
        "images",
        (32, 64),
        16,
        True,
        "fp16",
    )
    assert s.model_sha == hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def test_probe_gpu_reads_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H200, 9.0, 143771, 570.86.15'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert probe_gpu(0) == H200
    assert probe_gpu(0, nvidia_smi="no-such-nvidia-smi") is None


# ----------------------------------------------------------------------------- INT8 table
def test_calibration_table_round_trip(tmp_path):
    ranges = {"images": 1.0, "/model.0/conv/Conv_output_0": 12.5, "output0": 639.75}
    path = write_trt_calibration_table(ranges, tmp_path / "t" / TRT_TABLE_NAME)
    assert read_trt_calibration_table(path) == ranges


def test_calibrate_int8_on_a_tiny_model(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "relu.onnx"))
    batches = [np.array([[-5.0, 1.0, 2.0]], np.float32), np.array([[0.5, -1.0, 3.0]], np.float32)]
    ranges = calibrate_int8(tmp_path / "relu.onnx", batches, tmp_path / TRT_TABLE_NAME)
    assert ranges == {"x": 5.0, "y": 3.0}  # max |value| over both batches
    assert read_trt_calibration_table(tmp_path / TRT_TABLE_NAME) == {"x": 5.0, "y": 3.0}
    with pytest.raises(ValueError, match="calibration method"):
        calibrate_int8(tmp_path / "relu.onnx", batches, tmp_path / "x", method="percentile")


# ----------------------------------------------------------------------------- device graphs
def tiny_yolo(path: Path, hw=(32, 32), classes=3, seed=0) -> Path:
    """(B, 3, H, W) -> (B, 4 + classes, H*W): a 1x1 convolution; box rows scaled to pixels,
    score rows through a sigmoid (an anchors-layout output with H*W columns)."""
    rng = np.random.default_rng(seed)
    rows = 4 + classes
    w = numpy_helper.from_array(rng.normal(0, 2, (rows, 3, 1, 1)).astype(np.float32), "w")
    box_scale = numpy_helper.from_array(np.array([hw[1], hw[0], 8, 8], np.float32).reshape(1, 4, 1), "box_scale")
    shape = numpy_helper.from_array(np.array([0, rows, -1], np.int64), "shape")
    split = numpy_helper.from_array(np.array([4, classes], np.int64), "split")
    nodes = [
        helper.make_node("Conv", ["images", "w"], ["c"]),
        helper.make_node("Reshape", ["c", "shape"], ["flat"]),
        helper.make_node("Split", ["flat", "split"], ["box", "cls"], axis=1),
        helper.make_node("Sigmoid", ["box"], ["box_s"]),
        helper.make_node("Mul", ["box_s", "box_scale"], ["box_px"]),
        helper.make_node("Sigmoid", ["cls"], ["cls_s"]),
        helper.make_node("Concat", ["box_px", "cls_s"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, *hw])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", rows, hw[0] * hw[1]])],
        [w, box_scale, shape, split],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def frames(n: int, hw=(32, 32), seed=1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *hw, 3), dtype=np.uint8)


def test_preprocess_graph_equals_numpy():
    sess = ort.InferenceSession(preprocess_model().SerializeToString(), providers=[CPU])
    batch = frames(3, (16, 24))
    np.testing.assert_array_equal(sess.run(None, {"images_u8": batch})[0], numpy_blob(batch))


def test_topk_graph_keeps_best_columns_in_order():
    rng = np.random.default_rng(3)
    raw = rng.random((2, 7, 50), dtype=np.float32)
    sess = ort.InferenceSession(topk_model(7, 10).SerializeToString(), providers=[CPU])
    kept = sess.run(None, {"raw": raw})[0]
    assert kept.shape == (2, 7, 10)
    for i in range(2):
        cols = np.sort(np.argsort(-raw[i, 4:].max(0), kind="stable")[:10])
        np.testing.assert_array_equal(kept[i], raw[i][:, cols])


def _decode(out, thr=0.9):
    c = out.shape[0] - 4
    return decode_anchors(out, np.full(c, thr, np.float32), np.ones(c, bool), 0.7, 300)


@pytest.mark.parametrize("batch", [1, 3])
def test_io_binding_equals_session_run_on_cpu(tmp_path, batch):
    path = tiny_yolo(tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=[CPU])
    plain = OrtRunner(sess)
    bound = OrtRunner(sess, io_binding=True, num_classes=3, min_threshold=0.9, topk=200)
    assert (plain.path, bound.device) == ("session.run", "cpu")
    x = frames(batch)
    full = plain.run(x)
    for _ in range(2):  # the second call reuses the bound buffers (update in place)
        got = bound.run(x)
        assert got.shape == (batch, 7, 200)
        for i in range(batch):
            for a, b in zip(_decode(full[i]), _decode(got[i])):
                np.testing.assert_array_equal(a, b)
    assert bound.path == "io_binding+topk200"
    assert bound.topk_saturated == 0
    other = frames(batch, seed=5)  # new contents, same buffers
    np.testing.assert_array_equal(OrtRunner(sess, io_binding=True, topk=0).run(other), plain.run(other))


def test_topk_saturated_falls_back_to_the_full_output(tmp_path):
    path = tiny_yolo(tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=[CPU])
    x = frames(2)
    runner = OrtRunner(sess, io_binding=True, num_classes=3, min_threshold=0.01, topk=16)
    np.testing.assert_array_equal(runner.run(x), OrtRunner(sess).run(x))  # every column passes 0.01
    assert runner.topk_saturated == 1


def test_open_session_on_cpu_makes_no_engine_folders(tmp_path):
    path = tiny_yolo(tmp_path / "m.onnx")

    class Cfg:
        device_id = 0
        cuda_graph = False

    sess = open_session(path, [CPU], Cfg(), None, tmp_path / "trt", threads=1)
    assert sess.get_providers() == [CPU]
    assert not (tmp_path / "trt").exists()  # no engine folders without TensorRT
