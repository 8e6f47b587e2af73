"""Vigil calibration files: loading, saving, and errors that name the file and the field."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from vigil.geometry.calibration_io import load_calibration, load_camera, save_camera
from vigil.geometry.camera import CalibrationError, HomographyCamera, PinholeCamera, TsaiCamera

REPO = Path(__file__).resolve().parents[2]
PETS_YAML = REPO / "deploy" / "examples" / "pets2009-view001.calib.yaml"

HOMOGRAPHY_POINTS = """\
vigil_calibration: 1
camera: gate
image_size: [200, 1100]
model: homography
homography:
  points:
    - {image: [0, 0], ground: [0, 0]}
    - {image: [100, 0], ground: [100, 0]}
    - {image: [0, 1000], ground: [0, 500]}
    - {image: [100, 1000], ground: [50, 500]}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cam.calib.yaml"
    path.write_text(text)
    return path


def test_shipped_pets_file_loads():
    cal, cam = load_calibration(PETS_YAML)
    assert isinstance(cam, TsaiCamera)
    assert cal.camera == "View_001" and cam.image_size == (768, 576)
    assert cam.params.focal == 5.5549183034 and cam.params.tz == 35469.298547
    assert cam.params.rx == 2.0405458695 and cam.params.kappa1 == 5.1113043639e-03


def test_homography_points_file(tmp_path):
    cam = load_camera(_write(tmp_path, HOMOGRAPHY_POINTS))
    assert isinstance(cam, HomographyCamera)
    np.testing.assert_allclose(cam.image_to_ground(np.array([[50.0, 500.0]])), [[100 / 3, 1000 / 3]], atol=1e-9)


def test_homography_matrix_sign_fixed_from_image_bottom(tmp_path):
    text = """\
vigil_calibration: 1
camera: gate
image_size: [200, 1100]
model: homography
homography:
  matrix: [[-1, 0, 0], [0, -1, 0], [0, -0.001, -1]]
"""
    cam = load_camera(_write(tmp_path, text))
    np.testing.assert_allclose(cam.image_to_ground(np.array([[50.0, 500.0]])), [[100 / 3, 1000 / 3]], atol=1e-9)


@pytest.mark.parametrize(
    "camera",
    [
        "pets",
        HomographyCamera(np.array([[0.01, 0.002, -3.0], [0.0, 0.03, -1.0], [0.0, 0.001, 1.0]]), image_size=(640, 480)),
        PinholeCamera(
            np.array([[900.0, 0, 640], [0, 900, 360], [0, 0, 1]]),
            [-0.1, 0.01, 0.0, 0.0, 0.0],
            [-1.9, 0.0, 0.0],
            [0.0, 3.0, 8.0],
            image_size=(1280, 720),
        ),
    ],
)
def test_save_load_round_trip(tmp_path, camera):
    if camera == "pets":
        camera = load_camera(PETS_YAML)
    path = tmp_path / "out.calib.yaml"
    save_camera(camera, path, name="cam-1", source="test")
    again = load_camera(path)
    assert type(again) is type(camera) and again.image_size == camera.image_size
    px = np.array([[100.0, 400.0], [300.0, 450.0], [600.0, 470.0]])
    np.testing.assert_allclose(again.image_to_ground(px), camera.image_to_ground(px), rtol=1e-12, equal_nan=True)


def _pets_text(**replace: str) -> str:
    text = PETS_YAML.read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(
    "text, pattern",
    [
        (_pets_text(**{"focal_mm: 5.5549183034e+00": "focal_mm: 0"}), r"tsai\.focal_mm: must be > 0"),
        (_pets_text(**{"focal_mm: 5.5549183034e+00": "focal_mm: five"}), r"tsai\.focal_mm \(line \d+\): "),
        (_pets_text(**{"  sx: 1.0937855397e+00": "  sx: .nan"}), r"tsai\.sx: must be finite"),
        (_pets_text(**{"  rz_rad: -4.3056124791e-01\n": ""}), r"tsai\.rz_rad .*Field required"),
        (_pets_text(**{"  ncx:": "  ncxx: 1\n  ncx:"}), r"tsai\.ncxx \(line 20\): Extra inputs"),
        (_pets_text(**{"model: tsai": "model: fisheye"}), r"model \(line \d+\): Input should be"),
        (_pets_text(**{"model: tsai": "model: pinhole"}), r"'pinhole' section is missing"),
        (
            _pets_text(**{"vigil_calibration: 1": "vigil_calibration: 2"}),
            r"vigil_calibration: unsupported format version 2",
        ),
        (_pets_text(**{"vigil_calibration: 1\n": ""}), r"vigil_calibration: missing"),
        (_pets_text(**{"image_size: [768, 576]": "image_size: [768, 0]"}), r"image_size must be positive"),
        ("camera: [unclosed\n", r"not valid YAML"),
        ("- just\n- a list\n", r"expected a mapping"),
        (
            HOMOGRAPHY_POINTS.replace("[100, 1000], ground: [50, 500]", "[0, 0], ground: [50, 500]"),
            r"homography\.points: image points 0 and 3 are the same",
        ),
        ("\n".join(HOMOGRAPHY_POINTS.splitlines()[:-1]) + "\n", r"homography\.points: need at least 4"),
        (
            HOMOGRAPHY_POINTS.replace("  points:", "  matrix: [[1,0,0],[0,1,0],[0,0,1]]\n  points:"),
            r"exactly one of 'matrix' or 'points'",
        ),
        (
            HOMOGRAPHY_POINTS.replace(
                "model: homography", "model: homography\nhomography:\n  matrix: [[0,0,0],[0,0,0],[0,0,0]]"
            ).split("homography:\n  points")[0],
            r"homography\.matrix: singular",
        ),
    ],
)
def test_errors_name_file_and_field(tmp_path, text, pattern):
    path = _write(tmp_path, text)
    with pytest.raises(CalibrationError) as info:
        load_camera(path)
    message = str(info.value)
    assert message.startswith(str(path) + ": "), message
    assert re.search(pattern, message), message


def test_missing_file_is_a_calibration_error(tmp_path):
    with pytest.raises(CalibrationError, match=r"nope\.yaml: cannot read calibration file"):
        load_camera(tmp_path / "nope.yaml")


def test_shipped_file_is_plain_yaml_with_units_in_names():
    data = yaml.safe_load(PETS_YAML.read_text())
    assert data["model"] == "tsai" and set(data) == {
        "vigil_calibration",
        "camera",
        "image_size",
        "model",
        "source",
        "tsai",
    }
    assert {"focal_mm", "kappa1_per_mm2", "tx_mm", "rx_rad", "cx_px"} <= set(data["tsai"])
