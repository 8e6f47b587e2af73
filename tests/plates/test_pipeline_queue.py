"""Plate OCR off the video loop (bounded queue, drops counted, flush drains) and custom ONNX
plate detectors / recognisers chosen by config (graphs built here with onnx.helper)."""

import threading
import time

import numpy as np
import pytest

from vigil.edge.config import ConfigError, parse_config
from vigil.edge.config_parts import PlatesConfig
from vigil.plates.pipeline import PlatePipeline, build_reader
from vigil.plates.reader import PlateReading

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_"


def frame(i: int) -> np.ndarray:
    img = np.zeros((480, 640, 3), np.uint8)
    img[0, 0, 0], img[0, 1, 0] = i % 256, i // 256  # the frame number travels with the image
    return img


class ImageScriptedReader:
    """Reads the frame number from the image (not from the call count, so drops don't shift it)."""

    def __init__(self, script, delay_s=0.0, gate: threading.Event | None = None):
        self.script, self.delay_s, self.gate, self.calls = script, delay_s, gate, 0
        self.threads, self.entered = set(), threading.Event()

    def read(self, image, roi=None):
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.delay_s:
            time.sleep(self.delay_s)
        self.calls += 1
        i = int(image[0, 0, 0]) + 256 * int(image[0, 1, 0])
        return [
            PlateReading(t, c, (x - 40, y - 10, x + 40, y + 10), "car", "IT", t, np.full((20, 80, 3), 200, np.uint8))
            for t, c, (x, y) in self.script.get(i, [])
        ]


SCRIPT = {
    i: [(t, 0.9, (300, 300 - 30 * i))]
    for i, t in enumerate(["AB123CD", "A8123CD", "AB123CD", "AB123CO", "AB123CD", "AB123CD"])
}
SCRIPT.update({30 + i: [("GH789JK", 0.95, (500, 150 + 40 * i))] for i in range(3)})


def _run(queue_size, frames=40, delay_s=0.0):
    cfg = PlatesConfig(
        enabled=True, mode="gate", min_readings=2, close_after_s=0.5, line=[[0, 200], [640, 200]], queue_size=queue_size
    )
    reader = ImageScriptedReader(SCRIPT, delay_s=delay_s)
    pipe = PlatePipeline(cfg, "gate", reader=reader)
    specs = []
    for i in range(frames):
        specs += pipe.process(frame(i), i * 0.1)
    specs += pipe.flush()
    return pipe, reader, specs


def _strip(specs):
    return [(s.event_type, s.timestamp_s, {k: v for k, v in s.extra.items() if k != "transit_id"}) for s in specs]


def test_threaded_reading_gives_the_same_transits_as_inline():
    _, inline_reader, inline = _run(0)
    pipe, reader, threaded = _run(64, delay_s=0.002)
    assert _strip(threaded) == _strip(inline)
    assert [(s.extra["plate"], s.extra["direction"]) for s in threaded] == [
        ("AB123CD", "in"),
        ("GH789JK", "out"),
    ]
    assert reader.threads == {"plates:gate"} and inline_reader.threads == {threading.current_thread().name}
    assert pipe.stats["queued"] == 40 and pipe.stats["dropped"] == 0 and pipe.stats["processed"] == 40
    assert pipe._thread is None  # flush stopped the OCR thread


def test_full_queue_drops_instead_of_blocking_and_flush_drains():
    gate = threading.Event()
    cfg = PlatesConfig(enabled=True, mode="gate", min_readings=2, close_after_s=0.5, queue_size=2)
    reader = ImageScriptedReader({i: [("AB123CD", 0.9, (300, 300))] for i in range(10)}, gate=gate)
    pipe = PlatePipeline(cfg, "gate", reader=reader)
    t0 = time.monotonic()
    specs = pipe.process(frame(0), 0.0)
    assert reader.entered.wait(5)  # the worker holds frame 0 (and is stuck in the reader)
    for i in range(1, 10):
        specs += pipe.process(frame(i), i * 0.1)
    assert time.monotonic() - t0 < 5.0  # the OCR is stuck, the video loop is not
    assert specs == []
    # one request in the worker's hands, two queued, the rest dropped
    assert pipe.stats["queued"] == 3 and pipe.stats["dropped"] == 7
    st = pipe.status()
    assert st["plate_dropped"] == 7 and st["plate_queue_depth"] == 2
    gate.set()
    specs = pipe.flush()
    assert [s.event_type for s in specs] == ["plate_transit"] and specs[0].extra["readings"] == 3
    assert pipe.stats["processed"] == 3 and pipe.status()["plate_queue_depth"] == 0


def test_results_merge_on_a_later_process_call():
    gate = threading.Event()
    cfg = PlatesConfig(enabled=True, mode="gate", min_readings=1, close_after_s=0.2, queue_size=8)
    pipe = PlatePipeline(cfg, "gate", reader=ImageScriptedReader({0: [("AB123CD", 0.9, (300, 300))]}, gate=gate))
    specs = []
    for i in range(6):
        specs += pipe.process(frame(i), i * 0.1)
    assert specs == [] and pipe.passes == {}  # frame 0 not read yet: nothing merged, nothing closed
    gate.set()
    deadline = time.monotonic() + 5
    while not specs and time.monotonic() < deadline:
        time.sleep(0.01)
        specs += pipe.process(frame(99), 0.6)
    assert [s.event_type for s in specs] == ["plate_transit"] and specs[0].timestamp_s == 0.0
    pipe.flush()


def test_a_failing_reader_is_counted_not_fatal():
    class Broken:
        def read(self, image, roi=None):
            raise RuntimeError("model exploded")

    pipe = PlatePipeline(PlatesConfig(enabled=True, queue_size=4), "gate", reader=Broken())
    for i in range(3):
        pipe.process(frame(i), i * 0.1)
    assert pipe.flush() == [] and pipe.stats["errors"] >= 1


# ------------------------------------------------------------------ custom ONNX models
def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def brightness_detector(path):
    """A DB-layout "detector": text probability = pixel brightness (a white box is a text line)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])
    y = helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 1, "H", "W"])
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Constant", [], ["one"], value=helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])),
        helper.make_node("Constant", [], ["half"], value=helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])),
        helper.make_node("Add", ["m", "one"], ["s"]),
        helper.make_node("Mul", ["s", "half"], ["prob"]),
    ]
    _save(helper.make_graph(nodes, "det", [x], [y]), path)


def constant_recognizer(path, probs, input_shape, dtype=TensorProto.UINT8, reduce_axes=(1, 2, 3)):
    """Outputs ``probs`` (slots, classes) for every crop in the batch, whatever the pixels."""
    slots, classes = probs.shape
    x = helper.make_tensor_value_info("input", dtype, input_shape)
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", slots, classes])
    nodes = [
        helper.make_node("Cast", ["input"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["xf"], ["m"], axes=list(reduce_axes), keepdims=1),
        helper.make_node(
            "Constant", [], ["shape"], value=helper.make_tensor("shape", TensorProto.INT64, [3], [-1, 1, 1])
        ),
        helper.make_node("Reshape", ["m", "shape"], ["m3"]),
        helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])),
        helper.make_node("Mul", ["m3", "zero"], ["z"]),
        helper.make_node(
            "Constant",
            [],
            ["p"],
            value=helper.make_tensor(
                "p", TensorProto.FLOAT, [1, slots, classes], probs.astype(np.float32).ravel().tolist()
            ),
        ),
        helper.make_node("Add", ["z", "p"], ["out"]),
    ]
    _save(helper.make_graph(nodes, "rec", [x], [y]), path)


def slot_probs(text, alphabet=ALPHABET, slots=9, pad="_", p=0.9):
    text = text + pad * (slots - len(text))
    out = np.full((slots, len(alphabet)), (1 - p) / (len(alphabet) - 1), np.float32)
    for i, c in enumerate(text):
        out[i, alphabet.index(c)] = p
    return out


def plate_image():
    img = np.zeros((200, 400, 3), np.uint8)
    img[80:120, 100:300] = 255
    return img


CONFIG = """
version: 1
node: n
detector: {{type: darknet_onnx}}
cameras:
  - name: gate-nord
    source: a.mp4
    calibration: a.calib.yaml
    plates:
      enabled: true
{plates}"""


@pytest.mark.parametrize(
    "channels,layout,dtype",
    [(1, "nhwc", TensorProto.UINT8), (3, "nhwc", TensorProto.UINT8), (3, "nchw", TensorProto.FLOAT)],
)
def test_configured_fast_plate_ocr_recognizer_and_detector_are_used(tmp_path, channels, layout, dtype):
    from vigil.plates.ocr import OnnxPlateRecognizer

    (tmp_path / "models").mkdir()
    brightness_detector(tmp_path / "models" / "det.onnx")
    shape = ["N", 70, 140, channels] if layout == "nhwc" else ["N", channels, 70, 140]
    constant_recognizer(tmp_path / "models" / "rec.onnx", slot_probs("AB123CD"), shape, dtype)
    plates = f"""      detector_model: models/det.onnx
      recognizer_model: models/rec.onnx
      recognizer_format: fast_plate_ocr
      recognizer_alphabet: "{ALPHABET}"
      recognizer_pad: "_"
      recognizer_channels: {channels}
      threads: 1
"""
    cam = parse_config(CONFIG.format(plates=plates), base_dir=tmp_path).cameras[0]
    assert cam.plates.recognizer_model == tmp_path / "models" / "rec.onnx"
    assert cam.plates.detector_model == tmp_path / "models" / "det.onnx"
    reader = build_reader(cam.plates)
    rec = reader.recognizer
    assert (
        isinstance(rec, OnnxPlateRecognizer) and (rec.height, rec.width) == (70, 140) and rec.nchw == (layout == "nchw")
    )
    text, conf, confs = rec([np.zeros((30, 100, 3), np.uint8), np.zeros((10, 10), np.uint8)])[1]
    assert text == "AB123CD" and conf == pytest.approx(0.9) and len(confs) == 7
    readings = reader.read(plate_image())
    assert [r.text for r in readings] == ["AB123CD"]
    x1, y1, x2, y2 = readings[0].box
    # the plate quad: the bright rectangle (100..300 x 80..120), found by its edges, within the box
    assert 50 <= x1 <= 101 and 299 <= x2 <= 350 and 40 <= y1 <= 81 and 118 <= y2 <= 160, readings[0].box


def test_configured_input_size_overrides_a_dynamic_model(tmp_path):
    constant_recognizer(tmp_path / "rec.onnx", slot_probs("EF456GH"), ["N", "H", "W", 1])
    cfg = PlatesConfig(
        recognizer_format="fast_plate_ocr",
        recognizer_model=tmp_path / "rec.onnx",
        recognizer_alphabet=ALPHABET,
        recognizer_input=[48, 96],
        threads=1,
    )
    rec = build_reader(cfg).recognizer
    assert (rec.height, rec.width) == (48, 96) and rec([np.zeros((20, 60, 3), np.uint8)])[0][0] == "EF456GH"


def test_configured_ppocr_recognizer_with_alphabet(tmp_path):
    from vigil.plates.ocr import TextRecognizer

    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    classes = ["<blank>"] + list(alphabet) + [" "]
    seq = ["<blank>", "A", "A", "B", "<blank>", "1", "2", "<blank>", "3", "C", "D", "D"]
    probs = np.full((len(seq), len(classes)), 0.01, np.float32)
    for i, c in enumerate(seq):
        probs[i, classes.index(c)] = 0.95
    constant_recognizer(tmp_path / "ctc.onnx", probs, ["N", 3, 48, "W"], TensorProto.FLOAT)
    cfg = PlatesConfig(recognizer_model=tmp_path / "ctc.onnx", recognizer_alphabet=alphabet, threads=1)
    rec = build_reader(cfg).recognizer
    assert isinstance(rec, TextRecognizer)
    assert rec([np.zeros((30, 120, 3), np.uint8)])[0][0] == "AB123CD"


@pytest.mark.parametrize(
    "plates,message",
    [
        ("      recognizer_format: fast_plate_ocr\n", "needs recognizer_model and recognizer_alphabet"),
        (
            "      recognizer_format: fast_plate_ocr\n      recognizer_model: r.onnx\n      recognizer_alphabet: ABC\n",
            "recognizer_pad",
        ),
        ("      recognizer_alphabet: AAB\n", "repeated"),
        ("      recognizer_format: crnn\n", "recognizer_format"),
        ("      queue_size: -1\n", "queue_size"),
    ],
)
def test_bad_recognizer_config_is_a_config_error(tmp_path, plates, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(CONFIG.format(plates=plates), base_dir=tmp_path)


def test_status_reporter_includes_plate_counters():
    from types import SimpleNamespace

    from vigil.edge.worker import StatusReporter

    pipe = PlatePipeline(PlatesConfig(enabled=True, queue_size=4), "gate", reader=ImageScriptedReader({}))
    rep = StatusReporter.__new__(StatusReporter)
    rep.pipeline = SimpleNamespace(plates=pipe)
    assert rep._plate_status() == {
        "plate_queue_depth": 0,
        "plate_queued": 0,
        "plate_dropped": 0,
        "plate_processed": 0,
        "plate_errors": 0,
    }
    rep.pipeline = SimpleNamespace(plates=None)
    assert rep._plate_status() == {}
