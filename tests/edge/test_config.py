"""Node config validation: unknown keys, bad values and their messages (file, camera, field, line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.edge.config import MAX_YAML_DEPTH, ConfigError, load_config, parse_config

GOOD = """\
version: 1
node: test
cameras:
  - name: cam-a
    source: video.avi
    fps: 7
    calibration: cam-a.calib.yaml
"""


def test_minimal_config_fills_defaults_and_resolves_paths_against_the_file(tmp_path: Path):
    path = tmp_path / "node.yaml"
    path.write_text(GOOD)
    cfg = load_config(path)
    cam = cfg.camera()
    assert cam.name == "cam-a"
    assert cam.source == str(tmp_path / "video.avi")
    assert cam.calibration == tmp_path / "cam-a.calib.yaml"
    assert cam.rules.distance.threshold_m == 1.0
    assert cfg.aggregator.endpoint == "tcp://127.0.0.1:5555"
    assert cfg.detector.type  # the embedded default detector


def test_urls_and_devices_are_not_turned_into_paths(tmp_path: Path):
    text = GOOD.replace("source: video.avi", "source: rtsp://10.0.0.5/stream1")
    cfg = parse_config(text, base_dir=tmp_path)
    assert cfg.camera().source == "rtsp://10.0.0.5/stream1"


def test_unknown_key_in_a_camera_names_file_camera_field_and_line(tmp_path: Path):
    path = tmp_path / "node.yaml"
    path.write_text(GOOD + "    colour: red\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "camera 'cam-a'" in msg
    assert "cameras.0.colour" in msg
    assert "(line 8)" in msg
    assert "unknown key" in msg


def test_unknown_top_level_key_is_rejected():
    with pytest.raises(ConfigError, match=r"modle.*unknown key"):
        parse_config(GOOD + "modle: yolo\n", source="x.yaml")


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("fps: 7", "fps: -3", r"cameras\.0\.fps \(line 6\): Input should be greater than 0"),
        ("name: cam-a", "name: 'bad name!'", r"invalid camera name"),
        ("version: 1", "version: 2", r"version \(line 1\)"),
    ],
)
def test_bad_values_are_reported_with_their_field(old: str, new: str, expected: str):
    with pytest.raises(ConfigError, match=expected):
        parse_config(GOOD.replace(old, new), source="x.yaml")


def test_bad_distance_rule_names_the_camera_and_nested_field():
    text = GOOD + "    rules:\n      distance:\n        threshold_m: 0\n"
    with pytest.raises(ConfigError, match=r"camera 'cam-a': cameras\.0\.rules\.distance\.threshold_m \(line 10\)"):
        parse_config(text, source="x.yaml")


def test_duplicate_camera_names_are_rejected():
    text = GOOD + "  - name: cam-a\n    source: b.avi\n    calibration: b.yaml\n"
    with pytest.raises(ConfigError, match="duplicate camera names"):
        parse_config(text)


def test_decision_sure_needs_the_ground_stage():
    off = "node: test\ntracker: {ground: {filter: false, occlusion_feet: false}}\n"
    parse_config(GOOD + "    rules: {distance: {decision: sure}}\n")  # the ground stage is on by default
    sure = GOOD.replace("node: test\n", off) + "    rules: {distance: {decision: sure}}\n"
    with pytest.raises(
        ConfigError, match=r"\n  camera 'cam-a': rules\.distance\.decision: 'sure' needs .*tracker\.ground"
    ):
        parse_config(sure)
    two = sure + "  - {name: cam-b, source: b.avi, calibration: b.yaml, rules: {distance: {decision: sure}}}\n"
    with pytest.raises(ConfigError, match=r"cameras 'cam-a', 'cam-b': rules\.distance\.decision"):
        parse_config(two)
    parse_config(sure.replace("decision: sure}", "decision: sure, enabled: false}"))  # a disabled rule decides nothing
    on = parse_config(sure.replace(off, "node: test\ntracker: {ground: {filter: true}}\n"))
    assert on.cameras[0].rules.distance.decision == "sure" and on.cameras[0].rules.distance.confidence == 0.95


def test_duplicate_yaml_keys_are_rejected_with_the_line():
    with pytest.raises(ConfigError, match=r"line 2: duplicate key 'node'"):
        parse_config("node: a\nnode: b\ncameras: []\n")


def test_unknown_detector_backend_is_a_config_error():
    with pytest.raises(ConfigError, match=r"detector"):
        parse_config(GOOD + "detector:\n  type: no-such-backend\n")


def test_self_intersecting_zone_is_rejected():
    text = GOOD + "    zones:\n      - name: bowtie\n        polygon: [[0, 0], [1, 1], [1, 0], [0, 1]]\n"
    with pytest.raises(ConfigError, match="self-intersecting"):
        parse_config(text)


def test_not_yaml_and_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("cameras: [", source="x.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_example_config_is_valid():
    cfg = load_config(Path(__file__).resolve().parents[2] / "deploy" / "examples" / "pets2009-s2l1.yaml")
    assert cfg.camera().fps == 7
    assert cfg.camera().calibration.is_file()


def test_detector_model_paths_are_relative_to_the_config_file(tmp_path: Path):
    (tmp_path / "m.onnx").write_bytes(b"x")
    text = GOOD + "detector:\n  type: onnx\n  model: m.onnx\n"
    cfg = parse_config(text, base_dir=tmp_path)
    assert cfg.detector.model == tmp_path / "m.onnx"


@pytest.mark.parametrize(
    "text, line",
    [
        ("[" * 100_000, 1),  # flow lists
        ("cameras: " + "{a: " * 100_000, 1),  # flow mappings
        ("cameras:\n" + "".join(" " * i + "-\n" for i in range(2, 200)), 65),  # block lists, one a line
    ],
)
def test_yaml_nested_very_deep_is_a_config_error_naming_the_file(tmp_path: Path, text: str, line: int, capsys):
    """Not a RecursionError traceback: a ConfigError naming the file and the line (exit 2)."""
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"deep\.yaml: line {line}: nested deeper than {MAX_YAML_DEPTH} levels"):
        load_config(path)
    from vigil.cli import main

    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "deep.yaml" in err and "nested deeper" in err and "Traceback" not in err and "RecursionError" not in err


def test_yaml_nesting_within_the_limit_still_parses():
    # 60 levels of lists: deeper than any node config, inside the limit; refused for what it is
    with pytest.raises(ConfigError, match="expected a mapping at the top level, got list"):
        parse_config("[" * 60 + "]" * 60, source="x.yaml")
    cfg = parse_config(GOOD + "    health: {frozen_after_s: 42, no_detections_after_s: null}\n")
    assert cfg.cameras[0].health.frozen_after_s == 42 and cfg.cameras[0].health.no_detections_after_s is None
    with pytest.raises(ConfigError, match=r"health\.garbled_blocks"):
        parse_config(GOOD + "    health: {garbled_blocks: 2}\n")


def test_several_aggregator_endpoints():
    cfg = parse_config(
        GOOD + "aggregator:\n  endpoints: [tcp://127.0.0.1:5555, tcp://127.0.0.1:6555]\n", source="x.yaml"
    )
    assert cfg.aggregator.ingest_endpoints == ["tcp://127.0.0.1:5555", "tcp://127.0.0.1:6555"]
    assert parse_config(GOOD, source="x.yaml").aggregator.ingest_endpoints == ["tcp://127.0.0.1:5555"]
    for bad, expected in (
        ("  endpoint: tcp://127.0.0.1:5555\n  endpoints: [tcp://127.0.0.1:6555]\n", "not both"),
        ("  endpoints: [tcp://127.0.0.1:5555, tcp://127.0.0.1:5555]\n", "listed twice"),
        ("  endpoints: [tcp://127.0.0.1:5555, 'http://x']\n", "not a ZeroMQ endpoint"),
        ("  endpoints: [tcp://127.0.0.1:5555, tcp://10.0.0.2:5555]\n", r"10\.0\.0\.2:5555 is not loopback"),
        ("  endpoints: []\n", "at least 1 item"),
    ):
        with pytest.raises(ConfigError, match=expected):
            parse_config(GOOD + "aggregator:\n" + bad, source="x.yaml")
