"""Adding a backend is one file in ``vigil.detectors.backends``: the registry finds it with
``pkgutil`` and it shows up in the config union, the unknown-type message, ``registered()``,
``build_detector`` and the node config's path resolution (``file_fields``).

The new module is dropped into the package's search path (``backends.__path__``) of a fresh
interpreter, so the union built at import time includes it and this process is untouched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vigil.detectors.backends.onnx_yolo import OnnxYoloConfig
from vigil.detectors.base import Backend, BackendConfig
from vigil.detectors.registry import BACKENDS, config_union, discover, registered

ECHO = """
from pathlib import Path
from typing import ClassVar, Literal

from vigil.detectors.base import Backend, BackendConfig
from vigil.detectors.detections import Detections


class EchoConfig(BackendConfig):
    file_fields: ClassVar[tuple[str, ...]] = ("weights",)
    type: Literal["echo"] = "echo"
    weights: Path | None = None


class Echo:
    class_names = ["thing"]

    def __init__(self, cfg):
        self.cfg = cfg

    def detect(self, frame):
        return Detections.empty()


BACKEND = Backend(name="echo", config=EchoConfig, build=Echo)
"""

PROBE = """
import json, sys
import vigil.detectors.backends as pkg
pkg.__path__.append(sys.argv[1])
from pydantic import ValidationError
from vigil.detectors import registry
from vigil.edge.config import parse_config
out = {"registered": registry.registered()}
det = registry.build_detector({"type": "echo"})
out["built"] = type(det).__name__
try:
    registry.parse_detector_config({"type": "nope"})
except ValidationError as exc:
    out["error"] = str(exc)
node = (
    "version: 1\\nnode: t\\ncameras:\\n  - name: a\\n    source: v.avi\\n    calibration: a.yaml\\n"
    "detector:\\n  type: echo\\n  weights: w.bin\\n"
)
out["weights"] = str(parse_config(node, base_dir=sys.argv[2]).detector.weights)
print(json.dumps(out))
"""


def test_a_module_dropped_into_the_backends_package_is_a_backend(tmp_path: Path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "echo.py").write_text(ECHO)
    (plugins / "_private.py").write_text("raise RuntimeError('modules named _* are not imported')\n")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROBE), str(plugins), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["registered"] == ["darknet_onnx", "echo", "onnx", "ultralytics"]
    assert out["built"] == "Echo"
    assert "unknown detector type; known: darknet_onnx, echo, onnx, ultralytics" in out["error"]
    assert out["weights"] == str(tmp_path / "w.bin")  # its file_fields resolved against the config's folder


def test_the_built_in_backends_are_found_and_declare_their_path_fields():
    assert sorted(BACKENDS) == registered() == ["darknet_onnx", "onnx", "ultralytics"]
    assert discover().keys() == BACKENDS.keys()
    assert OnnxYoloConfig.file_fields == ("model", "class_names", "tensorrt_cache", "tensorrt_int8_table")
    assert BACKENDS["darknet_onnx"].config.file_fields == ("model", "darknet_cfg", "darknet_weights", "class_names")


def test_a_backend_declaration_is_checked():
    class Cfg(BackendConfig):
        file_fields = ("nope",)
        type: str = "x"

    with pytest.raises(ValueError, match="file_fields"):
        Backend(name="x", config=Cfg, build=lambda cfg: None)
    with pytest.raises(ValueError, match="`type` defaulting to it"):
        Backend(name="y", config=Cfg, build=lambda cfg: None)
    with pytest.raises(ValueError, match="no detector backends"):
        config_union([])
