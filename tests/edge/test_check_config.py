"""``vigil check-config`` refuses what ``vigil run`` refuses (vigil.edge.validate.check_node): every
problem at once, each naming the camera, the field and the file's line."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.cli import main
from vigil.edge.config import ConfigError, load_config
from vigil.edge.validate import check_node
from vigil.geometry.rules.config import RULE_NAMES
from vigil.geometry.rules.engine import RULES

# a camera seeing ground x, y in [0, 10] m (100 px per metre, 1000 x 1000 image)
CALIB = """\
vigil_calibration: 1
camera: test
image_size: [1000, 1000]
model: homography
homography:
  matrix: [[0.01, 0, 0], [0, 0.01, 0], [0, 0, 1]]
"""

# detector class names from a names file: nothing is loaded, no model cache needed
NODE = """\
detector:
  type: onnx
  model: m.onnx
  class_names: names.txt
output: {{dir: out}}
operations: {{status_dir: status}}
aggregator: {{publish: false}}
cameras:
  - name: c1
    source: v.avi
    calibration: c.calib.yaml
{camera}"""


def _node(tmp_path: Path, camera: str = "", extra: str = "") -> Path:
    (tmp_path / "c.calib.yaml").write_text(CALIB)
    (tmp_path / "v.avi").write_bytes(b"x")
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "names.txt").write_text("person\nbicycle\ncar\n")
    path = tmp_path / "node.yaml"
    path.write_text(NODE.format(camera=camera) + extra)
    return path


def _messages(path: Path) -> list[tuple[str, str]]:
    return [(p.level, str(p)) for p in check_node(load_config(path), path)]


def test_a_good_config_has_no_problems(tmp_path: Path, capsys):
    path = _node(tmp_path, "    zones:\n      - {name: inside, polygon: [[1, 1], [9, 1], [9, 9]]}\n")
    assert _messages(path) == []
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: OK (1 camera: c1; detector onnx)\n"


def test_a_zone_partly_outside_is_a_warning_check_config_passes_with(tmp_path: Path, capsys):
    path = _node(tmp_path, "    zones:\n      - {name: part, polygon: [[1, 1], [12, 1], [9, 9]]}\n")
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK (1 camera: c1; detector onnx; 1 warning)\n"
    assert err.splitlines() == [
        f"{path}: warnings",
        f"  warning: camera 'c1': zones[0].polygon: zone 'part': 13 % of its 44.0 m^2 is outside the ground the "
        f"camera sees; nobody is counted there ({path}:13)",
    ]


def test_a_zone_mostly_outside_the_calibrated_area_is_an_error_a_partial_one_a_warning(tmp_path: Path):
    path = _node(
        tmp_path,
        "    zones:\n"
        "      - {name: part, polygon: [[1, 1], [12, 1], [9, 9]]}\n"
        "      - name: away\n"
        "        polygon: [[5, 5], [15, 5], [15, 15], [5, 15]]\n",
    )
    assert _messages(path) == [
        (
            "warning",
            f"camera 'c1': zones[0].polygon: zone 'part': 13 % of its 44.0 m^2 is outside the ground the camera "
            f"sees; nobody is counted there ({path}:13)",
        ),
        (
            "error",
            f"camera 'c1': zones[1].polygon: zone 'away': lies outside the calibrated area: only 25 % of its "
            f"100.0 m^2 is on the ground the camera sees (at least 50 % must be; the image projected to the ground, "
            f"within 100 m) ({path}:15)",
        ),
    ]


def test_a_queue_line_outside_the_calibrated_area_is_an_error(tmp_path: Path):
    path = _node(
        tmp_path,
        "    zones:\n"
        "      - name: counter\n"
        "        polygon: [[1, 1], [9, 1], [9, 9], [1, 9]]\n"
        "        queue:\n"
        "          line: [[5, 5], [50, 5]]\n",
    )
    assert _messages(path) == [
        (
            "error",
            "camera 'c1': zones[0].queue.line: zone 'counter': queue line lies outside the calibrated area: only 11 % "
            f"of its length is on the ground the camera sees (at least 50 % must be) ({path}:16)",
        )
    ]


def test_a_misspelt_voice_rule_is_refused_with_a_suggestion(tmp_path: Path, capsys):
    path = _node(tmp_path, "    rules:\n      voice:\n        rules: [distance, ocupancy]\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value) == (
        f"{path}: invalid configuration (1 error)\n"
        "  camera 'c1': cameras.0.rules.voice.rules (line 14): Value error, unknown rule 'ocupancy': "
        "did you mean 'occupancy'? known rules: distance, contact, occupancy, density, queue, risk"
    )
    assert main(["check-config", str(path)]) == 2
    assert "did you mean 'occupancy'?" in capsys.readouterr().err
    assert main(["run", "--config", str(path), "-q"]) == 2
    assert "did you mean 'occupancy'?" in capsys.readouterr().err


def test_every_problem_is_reported_at_once_naming_camera_field_and_line(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # output folders are relative to the working directory
    (tmp_path / "blocker").write_text("a file where a folder should be")
    path = _node(
        tmp_path,
        "    rules:\n"
        "      distance: {classes: [person, bycicle]}\n"
        "  - name: c2\n"
        "    source: rstp://10.0.0.1/stream1\n"
        "    calibration: missing.calib.yaml\n"
        "  - name: c3\n"
        "    source: nope.avi\n"
        "    calibration: c.calib.yaml\n"
        "    plates:\n"
        "      enabled: true\n"
        "      detector_model: det.onnx\n"
        "      recognizer_model: rec.onnx\n"
        "      watchlists: [list.csv]\n",
    )
    path.write_text(path.read_text().replace("output: {dir: out}", "output: {dir: blocker/out}"))
    assert main(["check-config", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: invalid configuration",
        "  camera 'c1': rules.distance.classes: 'bycicle' is not a class of the detector: did you mean 'bicycle'? "
        f"(person, bicycle, car) ({path}:13)",
        "  camera 'c2': source: unsupported URL scheme 'rstp' (did you mean 'rtsp'?); known: rtsp, rtsps, rtmp, "
        f"rtmps, http, https, udp, tcp, srt, file ({path}:15)",
        f"  camera 'c2': calibration: {tmp_path / 'missing.calib.yaml'}: cannot read calibration file: "
        f"No such file or directory ({path}:16)",
        f"  camera 'c3': source: {tmp_path / 'nope.avi'}: video file not found ({path}:18)",
        f"  camera 'c3': plates.detector_model: model file not found: {tmp_path / 'det.onnx'} ({path}:22)",
        f"  camera 'c3': plates.recognizer_model: model file not found: {tmp_path / 'rec.onnx'} ({path}:23)",
        f"  output.dir: blocker/out: cannot be made, blocker is not a folder ({path}:5)",
        f"  warning: camera 'c3': plates.watchlists[0]: {tmp_path / 'list.csv'}: no such file (the list is empty "
        f"until it appears) ({path}:24)",
    ]


def test_run_refuses_what_check_config_refuses_before_any_camera_starts(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = _node(tmp_path, "    zones:\n      - {name: away, polygon: [[5, 5], [15, 5], [15, 15], [5, 15]]}\n")
    assert main(["check-config", str(path)]) == 2
    checked = capsys.readouterr().err.splitlines()[1:]
    assert main(["run", "--config", str(path), "--no-media", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vigil: error: {path}: invalid configuration\n")
    assert err.splitlines()[1:] == checked
    assert not (tmp_path / "out").exists() and not (tmp_path / "status").exists()  # nothing started


def test_urls_devices_and_bad_ports(tmp_path: Path):
    path = _node(tmp_path)
    cfg = load_config(path)
    cam = cfg.cameras[0]
    cases = {
        "rtsp://10.0.0.5:554/stream1": [],
        "http://cam.local/mjpeg": [],
        "0": [],
        "rtsp://10.0.0.5:99999/s": ["error", "camera 'c1': source: not a valid URL: Port out of range 0-65535"],
        "rtsp:///stream1": ["error", "camera 'c1': source: URL 'rtsp:///stream1' names no host"],
        "/dev/video9": ["warning", "camera 'c1': source: device /dev/video9 is not present (the worker waits for it)"],
    }
    for source, want in cases.items():
        other = cfg.model_copy(update={"cameras": [cam.model_copy(update={"source": source})]})
        got = [[p.level, str(p)] for p in check_node(other)]
        assert got == ([want] if want else []), source


def test_voice_rule_names_are_the_engines():
    assert RULE_NAMES == tuple(r.name for r in RULES)


def test_media_settings_run_would_refuse_are_refused_by_check_config(tmp_path: Path):
    path = _node(tmp_path)
    text = path.read_text().replace("output: {dir: out}", "output: {dir: out, media: {mask_classes: [persn]}}")
    path.write_text(text)
    problems = [(p.level, p.field, p.message) for p in check_node(load_config(path), path)]
    assert problems == [
        ("error", "output.media.mask_classes", "['persn'] are not classes of the detector (person, bicycle, car)")
    ]
