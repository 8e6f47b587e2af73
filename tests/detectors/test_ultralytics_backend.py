"""The ultralytics backend, and the onnx backend against Ultralytics' own pre/post-processing,
on models built from YAML (random weights) and exported in the test: nothing downloads.

Most tests need the optional extra (`pip install '.[ultralytics]'`, see pyproject.toml; run in
.venv-ultralytics by scripts/test.sh) and skip otherwise; the gate tests (a ``.pt`` passes
:func:`vigil.models.pt_gate.check_pt` before Ultralytics sees it) run everywhere, with a stand-in
for ultralytics where it is missing. Random weights give near-constant scores, so the fixture
re-estimates the BatchNorm statistics on random images (one pass in train mode) and scales the
class logits: the outputs then spread, and the comparisons below are meaningful and repeat.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
import zipfile

import numpy as np
import pytest

from vigil.detectors.backends import ultralytics_yolo
from vigil.models.errors import ModelError
from vigil.models.pt_gate import check_pt
from vigil.models.pt_pickle import UnsafeCheckpointError

_MISSING = [m for m in ("torch", "ultralytics") if importlib.util.find_spec(m) is None]
requires_extra = pytest.mark.skipif(
    bool(_MISSING), reason=f"optional extra not installed ({', '.join(_MISSING)}): pip install '.[ultralytics]'"
)

INPUT = 320


@pytest.fixture(scope="module")
def ul(tmp_path_factory):
    root = tmp_path_factory.mktemp("ul")
    os.environ["VIGIL_CACHE_DIR"] = str(root / "cache")  # where YOLO_CONFIG_DIR goes (set before import)
    from vigil.models.ultralytics_env import import_ultralytics

    try:
        torch, YOLO = import_ultralytics()
    except ModelError as exc:  # e.g. torchvision metadata missing
        pytest.skip(f"ultralytics does not import here: {exc}")
    return torch, YOLO, root


def _make(ul, yaml: str, **export_kw):
    """A .pt (random weights with spread outputs) and its ONNX export."""
    torch, YOLO, root = ul
    torch.manual_seed(0)
    model = YOLO(yaml)
    net = model.model
    for mod in net.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = 1.0
    net.train()
    with torch.no_grad():
        net(torch.rand(4, 3, INPUT, INPUT, generator=torch.Generator().manual_seed(1)))
        head = net.model[-1]
        for name in ("cv3", "one2one_cv3"):
            for seq in getattr(head, name, None) or []:
                seq[-1].weight.mul_(0.05 if name == "cv3" else 0.5)
                seq[-1].bias.fill_(-1.5)
    net.eval()
    pt = root / f"{yaml.split('.')[0]}.pt"
    model.save(str(pt))  # saved in fp16: export from the saved file so both use the same weights
    onnx_path = YOLO(str(pt)).export(format="onnx", imgsz=INPUT, verbose=False, **export_kw)
    return pt, onnx_path


def _frame(h=240, w=400):
    import cv2

    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 3)


def _reference(session, input_name, frame, conf, iou, end2end):
    """Ultralytics' letterbox, its NMS and its box scaling on the same ONNX output."""
    import torch
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import scale_boxes

    img = LetterBox((INPUT, INPUT), auto=False)(image=frame)
    blob = np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)[None]).astype(np.float32) / 255
    out = session.run(None, {input_name: blob})[0]
    ref = non_max_suppression(torch.from_numpy(out), conf_thres=conf, iou_thres=iou, end2end=end2end)[0]
    ref[:, :4] = scale_boxes((INPUT, INPUT), ref[:, :4], frame.shape[:2])
    ref = ref.numpy()
    return ref[np.argsort(-ref[:, 4], kind="stable")]


@requires_extra
@pytest.mark.parametrize(
    "yaml, export_kw, layout, conf",
    [("yolo11n.yaml", {}, "anchors", 0.6), ("yolo26n.yaml", {"nms": False}, "end2end", 0.9)],
)
def test_onnx_backend_matches_ultralytics_postprocessing(ul, yaml, export_kw, layout, conf):
    from vigil.detectors.backends.onnx_yolo import OnnxYoloConfig, OnnxYoloDetector

    _, onnx_path = _make(ul, yaml, **export_kw)
    # onnxruntime: the reference below runs the raw output of this same session
    det = OnnxYoloDetector(
        OnnxYoloConfig(model=onnx_path, confidence=conf, nms_iou=0.7, threads=2, runtime="onnxruntime")
    )
    assert det.layout == layout and det.input_size == (INPUT, INPUT) and det.class_names[:2] == ["0", "1"]
    frame = _frame()
    ours = det.detect(frame)
    ref = _reference(det.session, det.input_name, frame, conf, 0.7, layout == "end2end")
    assert 5 <= len(ref) < 300, f"fixture should give a useful number of boxes, got {len(ref)}"
    assert len(np.unique(ref[:, 4])) == len(ref), "ties in scores would make the order ambiguous"
    assert len(ours) == len(ref)
    np.testing.assert_allclose(ours.xyxy, ref[:, :4], atol=1e-2)
    np.testing.assert_allclose(ours.confidence, ref[:, 4], atol=1e-5)
    np.testing.assert_array_equal(ours.class_id, ref[:, 5].astype(np.int64))


@requires_extra
def test_ultralytics_backend_matches_its_onnx_export(ul):
    from vigil.detectors.backends.onnx_yolo import OnnxYoloConfig, OnnxYoloDetector
    from vigil.detectors.registry import build_detector

    pt, onnx_path = _make(ul, "yolo11n.yaml")
    common = {"confidence": 0.3, "threads": 2}
    det_pt = build_detector({"type": "ultralytics", "model": str(pt), "input_size": [INPUT, INPUT], **common})
    det_onnx = OnnxYoloDetector(OnnxYoloConfig(model=onnx_path, **common))
    frames = [_frame(), _frame(300, 200)]
    got_pt, got_onnx = det_pt.detect_batch(frames), det_onnx.detect_batch(frames)
    for a, b in zip(got_pt, got_onnx):
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.05)
        np.testing.assert_array_equal(a.class_id, b.class_id)
    assert det_pt.providers == ["cpu"] and det_pt.last_timing["infer_ms"] > 0


@requires_extra
def test_ultralytics_backend_never_downloads(ul, tmp_path):
    from vigil.detectors.registry import build_detector

    with pytest.raises(ModelError, match="never downloads"):
        build_detector({"type": "ultralytics", "model": str(tmp_path / "yolo11n.pt")})
    with pytest.raises(ModelError, match=r"\.pt file or a \.yaml"):
        build_detector({"type": "ultralytics", "model": "model.onnx"})
    assert os.environ["YOLO_OFFLINE"] == "1" and os.environ["YOLO_AUTOINSTALL"] == "0"


# ---------------------------------------------------------------------------- the gate
def _pt(path, data_pkl: bytes) -> str:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
    return str(path)


def _evil(tmp_path):
    """A checkpoint whose pickle is ``os.system('touch <marker>')``, and the marker."""
    marker = tmp_path / "pwned"
    cmd = f"touch {marker}".encode()
    return _pt(
        tmp_path / "evil.pt", b"\x80\x02cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R."
    ), marker


def _module_of(module: str, name: str) -> bytes:
    """A checkpoint holding one object of class ``module.name``, created as pickle creates modules."""
    return f"\x80\x02c{module}\n{name}\n)\x81}}b.".encode("latin1")


class _FakeYOLO:
    """Stands in for ``ultralytics.YOLO``: records that it was handed the file, then fails."""

    calls: list = []

    def __init__(self, src, task=None):
        self.calls.append(("YOLO", src))
        raise RuntimeError("stand-in: stop here")


@pytest.fixture
def fake_ultralytics(monkeypatch):
    calls: list = []
    monkeypatch.setattr(_FakeYOLO, "calls", calls)
    monkeypatch.setattr(
        ultralytics_yolo,
        "import_ultralytics",
        lambda: (types.SimpleNamespace(set_num_threads=lambda n: None), _FakeYOLO),
    )
    return calls


def test_backend_refuses_a_malicious_checkpoint_before_ultralytics_sees_it(tmp_path, fake_ultralytics):
    path, marker = _evil(tmp_path)
    cfg = ultralytics_yolo.UltralyticsConfig(model=path)
    with pytest.raises(ModelError) as err:
        ultralytics_yolo.UltralyticsDetector(cfg)
    assert str(err.value).startswith(f"{path}: the pickle references os.system, which is not on the allow-list")
    assert fake_ultralytics == [] and not marker.exists()


def test_backend_calls_the_gate_for_torch_then_ultralytics(tmp_path, fake_ultralytics, monkeypatch):
    path = _pt(tmp_path / "m.pt", b"\x80\x02}.")
    monkeypatch.setattr(ultralytics_yolo, "check_pt", lambda p, **kw: fake_ultralytics.append(("check_pt", p, kw)))
    with pytest.raises(ModelError, match="ultralytics cannot load model"):
        ultralytics_yolo.UltralyticsDetector(ultralytics_yolo.UltralyticsConfig(model=path))
    assert fake_ultralytics == [("check_pt", path, {"for_torch": True}), ("YOLO", path)]


@requires_extra
def test_ultralytics_backend_refuses_unsafe_checkpoints(ul, tmp_path, monkeypatch):
    from vigil.detectors.registry import build_detector

    path, marker = _evil(tmp_path)
    with pytest.raises(ModelError, match="os.system, which is not on the allow-list"):
        build_detector({"type": "ultralytics", "model": path})
    assert not marker.exists()
    # names that pass as inert stubs, but that torch would resolve to something other than a module class
    cases = {
        ("ultralytics.utils.checks", "check_requirements"): "is a function in the installed libraries, not a class",
        ("ultralytics.utils", "SettingsManager"): "is neither a torch.nn.Module nor a namespace",
        ("ultralytics.nn.nothere", "Conv"): "which the installed libraries do not define",
    }
    torch = ul[0]
    finaliser = types.ModuleType("ultralytics.nn.modules.vigil_test")

    class Closing(torch.nn.Module):
        def __del__(self):
            pass

    finaliser.Closing = Closing
    monkeypatch.setitem(sys.modules, finaliser.__name__, finaliser)
    cases[(finaliser.__name__, "Closing")] = "Closing.__del__), which would run on the checkpoint's data"
    for (module, name), message in cases.items():
        pt = _pt(tmp_path / f"{name}.pt", _module_of(module, name))
        check_pt(pt)  # inert for the converter
        with pytest.raises(UnsafeCheckpointError) as err:
            check_pt(pt, for_torch=True)
        assert message in str(err.value), str(err.value)
    with pytest.raises(ModelError, match="is a function in the installed libraries"):
        build_detector({"type": "ultralytics", "model": str(tmp_path / "check_requirements.pt")})


@requires_extra
def test_ultralytics_checkpoints_pass_the_gate(ul):
    """What ultralytics itself saves passes, as torch will load it."""
    pt, _ = _make(ul, "yolo26n.yaml", nms=False)
    report = check_pt(pt, for_torch=True)
    assert "ultralytics.nn.tasks.DetectionModel" in report.globals and report.storages > 100
