"""What a camera worker that uses the shared detector loads (issue 19, memory per camera).

A supervised worker (:func:`vigil.edge.runner.camera_process`, started with ``spawn``) gets the
node config and a :class:`~vigil.detectors.shared.DetectorClient` pickled; it must not build a
detector of its own, nor load what only other processes or other cameras use: the plate OCR (no
camera here reads plates), shapely (no zones), the Prometheus client (the node's endpoint is
served by the calling process), torch, the web console. A fresh interpreter does exactly what
such a worker does: it imports ``vigil.cli`` (the ``__mp_main__`` of ``vigil run``) and
``vigil.edge.runner``, unpickles the example config (deploy/examples/pets2009-s2l1.yaml) and a
client, and runs :func:`~vigil.edge.runner.run_node_camera` on 8 frames of vtest.avi with a
stand-in for the connected client and ``build_detector`` made to fail. bench/README.md, "Memory
per camera (issue 19)", has the measured figures.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vigil.detectors.shared import DetectorClient
from vigil.edge.config import parse_config
from vigil.edge.runner import RunOptions

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deploy" / "examples"
VTEST = REPO / "data" / "vtest.avi"
FRAMES = 8
CLASSES = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]

#: top-level modules a shared-detector worker of a camera without plates or zones never loads
NOT_LOADED = (
    "torch",
    "torchvision",
    "ultralytics",
    "tensorflow",
    "rapidocr_onnxruntime",
    "shapely",
    "prometheus_client",
    "matplotlib",
    "psycopg",
    "starlette",
    "uvicorn",
    "jinja2",
    "vigil.plates.pipeline",
    "vigil.plates.ocr",
    "vigil.plates.reader",
    "vigil.alerts.console",
    "vigil.alerts.aggregator",
)

#: the worker's peak resident memory stays under this (KiB); measured: about 211 MiB on this
#: environment (a worker building its own detector peaks at about 390 MiB)
MAX_HWM_KIB = 280 * 1024

_CHILD = """
import json, pickle, sys
import numpy as np
import vigil.cli  # the spawned worker's __mp_main__ (the `vigil` script) imports this
import vigil.edge.runner as runner
config, options, client = pickle.loads(sys.stdin.buffer.read())
import vigil.edge.worker as worker
from vigil.detectors.detections import Detections

def refuse(cfg):
    raise AssertionError("a worker with the shared detector built a detector of its own")

worker.build_detector = refuse

class Connected:  # what the client answers once connected: two people, every frame
    class_names = client.class_names
    def detect(self, image):
        return Detections(
            np.array([[300, 200, 330, 290], [340, 205, 372, 296]], np.float32),
            np.array([0.9, 0.8], np.float32),
            np.array([0, 0]),
        )

report = runner.run_node_camera(config, config.cameras[0], options, detector=Connected())
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
json.dump(
    {
        "modules": sorted(sys.modules),
        "frames": report.frames,
        "tracks": report.tracks,
        "vmhwm_kib": int(status["VmHWM"].split()[0]),
        "vmrss_kib": int(status["VmRSS"].split()[0]),
    },
    sys.stdout,
)
"""


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> dict:
    """The child's report: ``modules`` (every name in ``sys.modules``), ``frames``, ``tracks``,
    ``vmhwm_kib`` and ``vmrss_kib`` (KiB, from ``/proc/self/status`` after the run)."""
    if not VTEST.is_file():
        pytest.skip(f"{VTEST} missing: run `bash scripts/setup.sh` (extracts it from Debian's opencv-doc)")
    tmp = tmp_path_factory.mktemp("worker-memory")
    data = yaml.safe_load((EXAMPLES / "pets2009-s2l1.yaml").read_text())
    data["output"] = {"dir": str(tmp / "out")}
    data["operations"] = {"status_dir": str(tmp / "status")}
    config = parse_config(yaml.safe_dump(data), base_dir=EXAMPLES)
    camera = config.cameras[0]
    assert not camera.plates.enabled and not camera.zones  # what NOT_LOADED assumes
    client = DetectorClient("/nonexistent/vigil-detector", b"k", camera.name, (576, 768), 2, CLASSES, 5.0)
    options = RunOptions(max_frames=FRAMES, publish=False, media=False, progress=False)
    blob = pickle.dumps((config, options, client))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], input=blob, capture_output=True, cwd=tmp, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-3000:]
    return json.loads(out.stdout)


def _loaded(modules: list[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_the_worker_runs_its_frames_with_the_shared_detector_only(worker):
    assert worker["frames"] == FRAMES
    assert worker["tracks"] == 2
    # the child really imported the worker's path (the check below would pass on an empty list)
    for name in ("vigil.edge.worker", "vigil.edge.tracking", "vigil.detectors.shared.client", "supervision", "cv2"):
        assert _loaded(worker["modules"], name), name


@pytest.mark.parametrize("name", NOT_LOADED)
def test_the_worker_does_not_load(worker, name):
    assert [m for m in worker["modules"] if m == name or m.startswith(name + ".")] == []


def test_the_worker_peak_memory_is_bounded(worker):
    assert worker["vmhwm_kib"] < MAX_HWM_KIB, f"VmHWM {worker['vmhwm_kib'] / 1024:.0f} MiB"


@pytest.mark.parametrize("name", ["onnxruntime", "onnx", "openvino"])
def test_the_worker_does_not_load_onnx(worker, name):
    assert not _loaded(worker["modules"], name)


def test_a_camera_with_zones_loads_shapely_when_it_makes_them():
    """shapely is imported where a zone is made (vigil.geometry.zones), so a camera with zones still works."""
    code = (
        "import sys, vigil.geometry.zones as z; before = 'shapely' in sys.modules; "
        "zone = z.make_zone('a', [[0, 0], [4, 0], [4, 3]]); "
        "print(before, 'shapely' in sys.modules, zone.area_m2, zone.contains([[3, 1], [1, 1]]).tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "True", "6.0", "[True,", "False]"]
