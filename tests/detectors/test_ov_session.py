"""OpenVINO as the runtime of the `onnx` backend (vigil.detectors.ov_session): a graph built
here run exactly, the shapes compiled per batch size, the CPU probe, how the detector picks
its runtime and precision, and the same exact boxes as onnxruntime on hand-made outputs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import weakref

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vigil.detectors.backends.onnx_yolo import OnnxYoloConfig, OnnxYoloDetector
from vigil.detectors.ov_session import OPENVINO, OvSession, cpu_has_amx, openvino_available, shared_core
from vigil.models.errors import ModelError

from .test_onnx_yolo import FRAME, _sorted, anchors_output, make_model

pytestmark = pytest.mark.skipif(not openvino_available(), reason="the openvino package is a dependency of Vigil")


def affine_model(path, shape):
    """``y = 2 x + 1`` on an input of ``shape`` (ints, or strings for dynamic axes)."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, list(shape))
    nodes = [
        helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.array(2, np.float32))),
        helper.make_node("Constant", [], ["one"], value=numpy_helper.from_array(np.array(1, np.float32))),
        helper.make_node("Mul", ["images", "two"], ["m"]),
        helper.make_node("Add", ["m", "one"], ["out"]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_graph_runs_exactly_compiled_once_per_batch_size(tmp_path):
    s = OvSession(affine_model(tmp_path / "a.onnx", ["b", 3, "h", "w"]), input_hw=(4, 6), threads=1, precision="f32")
    (inp,), (out,) = s.get_inputs(), s.get_outputs()
    assert inp.name == "images" and inp.type == "tensor(float)" and inp.shape[1] == 3
    assert all(isinstance(d, str) for d in (inp.shape[0], inp.shape[2], inp.shape[3]))
    assert out.name == "out" and s.get_providers() == [OPENVINO]
    assert s.inference_precision == "f32"  # asked, before any compile
    rng = np.random.default_rng(0)
    for batch in (1, 3, 1):
        blob = rng.random((batch, 3, 4, 6), dtype=np.float32)
        got = s.run_blob(blob)
        assert got.shape == (batch, 3, 4, 6) and got.dtype == np.float32
        np.testing.assert_array_equal(got, blob * np.float32(2) + np.float32(1))
    assert sorted(s._compiled) == [1, 3]  # batch 1 compiled once, reused
    assert s.inference_precision == "f32"


def test_every_session_of_a_process_shares_one_core(tmp_path):
    """A second openvino.Core in one process is a known cause of segmentation faults."""
    path = affine_model(tmp_path / "a.onnx", ["b", 3, 4, 6])
    a, b = OvSession(path, input_hw=None, threads=1), OvSession(path, input_hw=None, threads=1, precision="f32")
    assert a.core is b.core is shared_core()


def test_threads_infer_on_their_own_requests_and_keep_no_input(tmp_path):
    s = OvSession(affine_model(tmp_path / "a.onnx", ["b", 3, 4, 6]), input_hw=None, threads=1, precision="f32")
    wrong: list[tuple[int, int]] = []

    def work(k: int) -> None:
        for i in range(40):
            blob = np.full((1 + (k + i) % 3, 3, 4, 6), k * 100 + i, np.float32)
            if not np.array_equal(s.run_blob(blob), blob * 2 + 1):
                wrong.append((k, i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == [] and sorted(s._compiled) == [1, 2, 3]  # each size compiled once, for all threads
    blob = np.ones((2, 3, 4, 6), np.float32)
    gone = weakref.ref(blob)
    out = s.run_blob(blob)
    del blob
    assert gone() is None  # the request holds no reference to the caller's array
    s.run_blob(np.zeros((2, 3, 4, 6), np.float32))  # the same request again
    np.testing.assert_array_equal(out, np.full((2, 3, 4, 6), 3, np.float32))  # a result of its own


def test_detectors_dropped_beside_a_go_runtime_leave_a_broken_pipe_an_error(tmp_path):
    """The crash that one shared Core fixes, in a fresh process: with a Go runtime loaded (the
    `dockerfile` test dependency is Go code, which takes over SIGPIPE and SIGSEGV), a detector
    replaced by another, each with its own OpenVINO Core, made the next write to a closed socket
    kill the process with SIGSEGV instead of raising BrokenPipeError. The full test suite died so,
    at a shared-detector test that writes to a stopped server."""
    pytest.importorskip("dockerfile", reason="PyPI package 'dockerfile' (a Go runtime) not installed")
    path = make_model(tmp_path / "m.onnx", anchors_output())
    code = (
        "import gc, os, socket, dockerfile\n"
        "from vigil.detectors.backends.onnx_yolo import OnnxYoloConfig, OnnxYoloDetector\n"
        "dockerfile.parse_string('FROM debian\\n')\n"
        f"det = OnnxYoloDetector(OnnxYoloConfig(model={str(path)!r}))\n"
        f"det = OnnxYoloDetector(OnnxYoloConfig(model={str(path)!r}))\n"
        "assert det.runtime == 'openvino', det.runtime\n"
        "del det\n"
        "gc.collect()\n"
        "a, b = socket.socketpair()\n"
        "b.close()\n"
        "try:\n"
        "    os.write(a.fileno(), b'x' * 85)\n"
        "except BrokenPipeError:\n"
        "    print('broken pipe')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "broken pipe\n"), done.stderr[-2000:]


def test_no_telemetry_state_is_written(tmp_path):
    """`import openvino` alone would start Intel's usage telemetry (a client id and usage counts
    under ~/intel); a session opened by Vigil, in a fresh process, leaves the home untouched."""
    model = affine_model(tmp_path / "a.onnx", [1, 3, 4, 6])
    home = tmp_path / "home"
    home.mkdir()
    code = (
        "import sys, numpy as np\n"
        "from vigil.detectors.ov_session import OvSession\n"
        f"s = OvSession({str(model)!r}, input_hw=None, threads=1)\n"
        "assert float(s.run_blob(np.zeros((1, 3, 4, 6), np.float32)).max()) == 1.0\n"
        "assert sys.modules['openvino_telemetry'] is None\n"
    )
    env = {**os.environ, "HOME": str(home)}
    env.pop("CI", None)  # the telemetry stays off in CI jobs by itself: test the case it does not
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    assert list(home.iterdir()) == []


def test_shapes_it_cannot_run_are_named(tmp_path):
    fixed = OvSession(affine_model(tmp_path / "f.onnx", [1, 3, 4, 6]), input_hw=None, threads=1)
    np.testing.assert_array_equal(fixed.run_blob(np.zeros((1, 3, 4, 6), np.float32)), np.ones((1, 3, 4, 6)))
    with pytest.raises(ValueError, match="batch size is fixed at 1, got a batch of 2"):
        fixed.run_blob(np.zeros((2, 3, 4, 6), np.float32))
    dynamic = OvSession(affine_model(tmp_path / "d.onnx", ["b", 3, "h", "w"]), input_hw=None, threads=1)
    with pytest.raises(ValueError, match="input size is dynamic: set input_size"):
        dynamic.run_blob(np.zeros((1, 3, 4, 6), np.float32))


def test_bf16_on_a_cpu_without_it_is_logged(tmp_path, caplog):
    s = OvSession(affine_model(tmp_path / "a.onnx", [1, 3, 4, 6]), input_hw=None, threads=1, precision="bf16")
    with caplog.at_level(logging.WARNING, logger="vigil.detectors.ov_session"):
        s.run_blob(np.zeros((1, 3, 4, 6), np.float32))
    # either this CPU computes in bf16, or the session says it does not
    assert s.inference_precision == "bf16" or "has no bfloat16 arithmetic" in caplog.text


def test_cpu_probe_reads_the_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_vnni amx_bf16 amx_tile\n")
    assert cpu_has_amx(info) is True
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_vnni avx512_bf16\nbugs\t: amx_bf16\n")
    assert cpu_has_amx(info) is False  # avx512_bf16 is not AMX; other lines do not count
    assert cpu_has_amx(tmp_path / "missing") is False


# ------------------------------------------------------------------------ in the detector
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_both_runtimes_give_the_exact_boxes(tmp_path, runtime):
    """The hand-made anchors output through each runtime, dynamic batch included."""
    path = make_model(tmp_path / "m.onnx", anchors_output(), batch_dynamic=True)
    det = OnnxYoloDetector(OnnxYoloConfig(model=path, runtime=runtime, precision="fp32"))
    assert det.runtime == runtime and det.precision == "fp32"
    assert det.providers == ([OPENVINO] if runtime == "openvino" else ["CPUExecutionProvider"])
    xyxy, conf, cid = _sorted(det.detect(FRAME))
    np.testing.assert_allclose(xyxy, [[150, 95, 250, 145], [37.5, 32.5, 62.5, 57.5], [0, 0, 37.5, 20]], atol=1e-4)
    np.testing.assert_allclose(conf, [0.9, 0.7, 0.6], atol=1e-6)
    np.testing.assert_array_equal(cid, [0, 2, 1])
    out = det.detect_batch([FRAME, FRAME, FRAME])
    assert len(out) == 3
    for d in out:
        np.testing.assert_allclose(_sorted(d)[0], xyxy, atol=1e-4)


def test_auto_runtime_and_precision(tmp_path, monkeypatch):
    path = make_model(tmp_path / "m.onnx", anchors_output())
    monkeypatch.setattr("vigil.detectors.ov_session.cpu_has_amx", lambda: True)
    det = OnnxYoloDetector(OnnxYoloConfig(model=path))
    assert (det.runtime, det.precision) == ("openvino", "bf16")  # a CPU node with AMX
    assert det._ov.config["INFERENCE_PRECISION_HINT"] == "bf16"
    monkeypatch.setattr("vigil.detectors.ov_session.cpu_has_amx", lambda: False)
    det = OnnxYoloDetector(OnnxYoloConfig(model=path))
    # no AMX and no INT8 copy of this model: FP32, in float32
    assert (det.runtime, det.precision) == ("openvino", "fp32")
    assert det._ov.config["INFERENCE_PRECISION_HINT"] == "f32"
    assert OnnxYoloDetector(OnnxYoloConfig(model=path, runtime="onnxruntime")).precision == "fp32"
    # a GPU config (falling back to the CPU here) stays on onnxruntime
    assert OnnxYoloDetector(OnnxYoloConfig(model=path, providers=["cuda", "cpu"])).runtime == "onnxruntime"
    monkeypatch.setattr("vigil.detectors.ov_session.openvino_available", lambda: False)
    assert OnnxYoloDetector(OnnxYoloConfig(model=path)).runtime == "onnxruntime"


def test_runtime_and_precision_that_cannot_run_are_refused(tmp_path, monkeypatch):
    path = make_model(tmp_path / "m.onnx", anchors_output())
    with pytest.raises(ModelError, match=r"runtime openvino runs on the CPU; providers \['cuda', 'cpu'\]"):
        OnnxYoloDetector(OnnxYoloConfig(model=path, runtime="openvino", providers=["cuda", "cpu"]))
    with pytest.raises(ModelError, match=r"precision bf16 needs runtime openvino .*runtime onnxruntime"):
        OnnxYoloDetector(OnnxYoloConfig(model=path, runtime="onnxruntime", precision="bf16"))
    monkeypatch.setattr("vigil.detectors.ov_session.openvino_available", lambda: False)
    with pytest.raises(ModelError, match=r"openvino package is not installed \(pip install openvino\)"):
        OnnxYoloDetector(OnnxYoloConfig(model=path, runtime="openvino"))
    with pytest.raises(ModelError, match=r"precision bf16 needs runtime openvino .*no: pip install openvino"):
        OnnxYoloDetector(OnnxYoloConfig(model=path, precision="bf16"))


def test_a_model_openvino_cannot_read_is_named(tmp_path, monkeypatch):
    path = make_model(tmp_path / "m.onnx", anchors_output())

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operation")

    monkeypatch.setattr("vigil.detectors.ov_session.OvSession", broken)
    with pytest.raises(ModelError, match=r"OpenVINO cannot load ONNX model .*m\.onnx \(opset 17\): unsupported"):
        OnnxYoloDetector(OnnxYoloConfig(model=path, runtime="openvino"))


def test_runtime_auto_runs_a_model_openvino_cannot_compile_on_onnxruntime(tmp_path, monkeypatch, caplog):
    path = make_model(tmp_path / "m.onnx", anchors_output())

    def refuse(self, batch):
        raise RuntimeError("Unsupported operation: Foo\nat line 2 of OpenVINO's report")

    monkeypatch.setattr("vigil.detectors.ov_session.OvSession._compile", refuse)
    with caplog.at_level(logging.WARNING, logger="vigil.detectors.backends.onnx_yolo"):
        det = OnnxYoloDetector(OnnxYoloConfig(model=path))
    assert (det.runtime, det.precision, det._ov) == ("onnxruntime", "fp32", None)
    assert "m.onnx: OpenVINO cannot compile it (Unsupported operation: Foo); runtime auto runs it on onnxruntime" in (
        caplog.text
    )
    pinned = OnnxYoloDetector(OnnxYoloConfig(model=path, runtime="onnxruntime"))
    got, want = det.detect(FRAME), pinned.detect(FRAME)
    assert len(got) > 0
    np.testing.assert_array_equal(got.xyxy, want.xyxy)
    # asked for by name (the runtime, or bf16 that only OpenVINO runs): the model error, at start
    for asked in ({"runtime": "openvino"}, {"precision": "bf16"}):
        with pytest.raises(
            ModelError, match=r"OpenVINO cannot load ONNX model .*m\.onnx \(opset 17\): Unsupported operation"
        ):
            OnnxYoloDetector(OnnxYoloConfig(model=path, **asked))
