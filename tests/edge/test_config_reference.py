"""The generated config reference and JSON Schema (vigil.edge.config_reference): they match the
models (the docs cannot drift), the example configs validate against the schema, and wrong
configs are refused by the schema and by the pydantic loader alike."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from vigil.cli import main
from vigil.edge import config_reference as ref
from vigil.edge.config import ConfigError, parse_config

REPO = Path(__file__).resolve().parents[2]


def _is_node_config(path: Path) -> bool:
    """Node configs, not the calibration or sites files beside them (those start with vigil_<kind>)."""
    doc = yaml.safe_load(path.read_text())
    return isinstance(doc, dict) and "cameras" in doc and not any(str(k).startswith("vigil_") for k in doc)


EXAMPLES = sorted(p for p in (REPO / "deploy" / "examples").glob("*.yaml") if _is_node_config(p))

#: numeric fields without a physical unit (counts, fractions, probabilities, scores, indices): any
#: other numeric field must show its unit (json_schema_extra, a name suffix or its description)
DIMENSIONLESS = {
    "DarknetOnnxConfig": {"confidence", "class_confidence", "nms_iou", "nested_suppression", "threads"},
    "TilingConfig": {"cols", "rows", "overlap"},
    "PartBoxFix": {"scale"},
    "OnnxYoloConfig": {
        "device_id", "confidence", "class_confidence", "nms_iou", "max_detections", "max_batch", "threads",
        "device_topk",
    },
    "UltralyticsConfig": {
        "confidence", "class_confidence", "nms_iou", "max_detections", "max_batch", "threads", "seed",
    },
    "TrackerConfig": {
        "track_activation_threshold", "minimum_matching_threshold", "minimum_consecutive_frames", "coast_min_cover",
        "detect_every",
    },
    "GroundConfig": {"sigma_box_fraction", "corrected_sigma_factor", "outlier_frames"},
    "OperationsConfig": {"metrics_port", "max_restarts", "detector_max_batch"},
    "ZoneConfig": {"max_people"},
    "PlatesConfig": {
        "every_n_frames", "min_readings", "min_confidence", "max_plates_per_frame", "max_vehicles_per_frame",
        "threads", "queue_size",
    },
    "StreamHealthConfig": {"blank_uniform", "frozen_fraction", "garbled_blocks", "garbled_fraction"},
    "DistanceRuleConfig": {"confidence"},
    "RiskRuleConfig": {"alarm_level", "critical_level", "hysteresis"},
    "HeatmapConfig": {"publish_max_cells"},
}  # fmt: skip


def test_the_committed_reference_and_schema_match_the_models(capsys):
    assert ref.check_reference() == [], "run `vigil config reference` and commit docs/"
    assert main(["config", "reference", "--check"]) == 0


def test_check_fails_when_the_docs_drift(tmp_path: Path, capsys):
    assert main(["config", "reference", "--docs", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [ref.MARKDOWN_NAME, ref.SCHEMA_NAME]
    assert main(["config", "reference", "--check", "--docs", str(tmp_path)]) == 0
    md = tmp_path / ref.MARKDOWN_NAME
    md.write_text(md.read_text().replace("| `threshold_m` |", "| `threshold` |", 1))
    capsys.readouterr()
    assert main(["config", "reference", "--check", "--docs", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"{md}: differs from the config models; run `vigil config reference`\n"


def test_the_reference_has_a_section_per_model_and_a_row_per_field():
    md = ref.reference_markdown()
    sections = ref.config_models()
    assert [s.model.__name__ for s in sections][:3] == ["NodeConfig", "DarknetOnnxConfig", "TilingConfig"]
    for s in sections:
        assert f"\n## {s.model.__name__}\n" in md
        for name in s.model.model_fields:
            assert f"| `{name}` |" in md
    assert "| `height_prior_m` | number; ≥ 1.5, ≤ 1.9 | `1.75` | m | Assumed height of a person, metres |" in md
    assert "| `zones` | list of [ZoneConfig](#zoneconfig) | `[]` | " in md
    assert "| `calibration` | path | **required** |  | Vigil calibration file" in md
    assert "| `evidence_retention_days` | number; > 0, ≤ 3650 | `7.0` | days |" in md


def test_every_numeric_field_with_a_physical_unit_shows_it():
    unitless: dict[str, set[str]] = {}
    for s in ref.config_models():
        for name, f in s.model.model_fields.items():
            if ref.is_numeric(f.annotation) and ref.unit_of(name, f) is None:
                unitless.setdefault(s.model.__name__, set()).add(name)
    assert unitless == DIMENSIONLESS
    schema = ref.node_schema()
    defs = schema["$defs"]
    assert defs["QueueLineConfig"]["properties"]["corridor_m"]["unit"] == "m"
    assert defs["CameraConfig"]["properties"]["fps"]["unit"] == "frames/s"
    assert defs["OnnxYoloConfig"]["properties"]["input_size"]["unit"] == "px"
    assert defs["OperationsConfig"]["properties"]["detector_max_wait_ms"]["unit"] == "ms"
    assert defs["RiskRuleConfig"]["properties"]["e_ref"]["unit"] == "pair-seconds"


def test_the_schema_is_valid_draft_2020_12_with_id_and_title():
    schema = json.loads((REPO / "docs" / ref.SCHEMA_NAME).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "urn:vigil:node-config:1"
    assert schema["title"] == "Vigil node configuration"
    assert schema["additionalProperties"] is False and schema["required"] == ["cameras"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_example_configs_validate_against_the_schema(path: Path):
    assert {"pets2009-s2l1.yaml", "roadside-node.yaml"} <= {p.name for p in EXAMPLES}
    validator = jsonschema.Draft202012Validator(ref.node_schema())
    doc = yaml.safe_load(path.read_text())
    assert [e.message for e in validator.iter_errors(doc)] == []
    assert path.read_text().startswith("# yaml-language-server: $schema=../../docs/vigil-node-config.schema.json\n")


CAMERA = {"name": "c1", "source": "v.avi", "calibration": "c.calib.yaml"}


@pytest.mark.parametrize(
    "doc, schema_path, pydantic_line",
    [
        (
            {"cameras": [{**CAMERA, "zonez": []}]},
            ["cameras", 0],
            "  camera 'c1': cameras.0.zonez (line 1): unknown key",
        ),
        ({"cameras": []}, ["cameras"], "  cameras (line 1): List should have at least 1 item after validation, not 0"),
        (
            {"cameras": [{**CAMERA, "rules": {"voice": {"rules": ["ocupancy"]}}}]},
            ["cameras", 0, "rules", "voice", "rules", 0],
            "  camera 'c1': cameras.0.rules.voice.rules (line 1): Value error, unknown rule 'ocupancy': did you mean "
            "'occupancy'? known rules: distance, contact, occupancy, density, queue, risk",
        ),
        (
            {"cameras": [{**CAMERA, "rules": {"distance": {"threshold_m": -1}}}]},
            ["cameras", 0, "rules", "distance", "threshold_m"],
            "  camera 'c1': cameras.0.rules.distance.threshold_m (line 1): Input should be greater than 0",
        ),
        (
            {"cameras": [{"name": "c1", "source": "v.avi"}]},
            ["cameras", 0],
            "  camera 'c1': cameras.0.calibration (line 1): Field required",
        ),
        (
            {"detector": {"type": "darknet_onnx", "confidence": 2}, "cameras": [CAMERA]},
            ["detector"],
            "  detector.darknet_onnx.confidence (line 1): Input should be less than or equal to 1",
        ),
        (
            {"tracker": {"carry": "teleport"}, "cameras": [CAMERA]},
            ["tracker", "carry"],
            "  tracker.carry (line 1): Input should be 'predict' or 'flow'",
        ),
    ],
)
def test_wrong_configs_are_refused_by_the_schema_and_the_loader(doc: dict, schema_path: list, pydantic_line: str):
    validator = jsonschema.Draft202012Validator(ref.node_schema())
    errors = list(validator.iter_errors(doc))
    assert errors and [list(e.absolute_path) for e in errors] == [schema_path]
    with pytest.raises(ConfigError) as exc:
        parse_config(json.dumps(doc), source="node.yaml")  # JSON is YAML: everything on line 1
    assert str(exc.value).splitlines()[1:] == [pydantic_line]
