"""`vigil calibrate import` (PETS Tsai XML) and `vigil calibrate check` (grid + bird's-eye PNG on vtest.avi)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from vigil.calibration.cli import main
from vigil.calibration.intrinsics import load_intrinsics
from vigil.geometry.calibration_io import load_calibration, load_camera
from vigil.geometry.camera import TsaiCamera

REPO = Path(__file__).resolve().parents[2]
PETS_XML = REPO.parent / "shared" / "data" / "pets2009" / "View_001.xml"
VTEST = REPO / "data" / "vtest.avi"
CONFIG = REPO / "deploy" / "examples" / "pets2009-s2l1.yaml"


@pytest.fixture
def artifacts(tmp_path) -> Path:
    d = Path(os.environ.get("VIGIL_ARTIFACTS") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def pets_xml() -> Path:
    if not PETS_XML.is_file():
        pytest.skip(f"{PETS_XML} missing: ../shared exists only beside development checkouts")
    return PETS_XML


@pytest.mark.parametrize("model", ["tsai", "pinhole"])
def test_import_tsai(pets_xml, tmp_path, model):
    out = tmp_path / "v1.yaml"
    lens = tmp_path / "lens.yaml"
    assert (
        main(
            [
                "calibrate",
                "import",
                "--tsai",
                str(pets_xml),
                "--model",
                model,
                "-o",
                str(out),
                "--intrinsics-out",
                str(lens),
            ]
        )
        == 0
    )
    cal, cam = load_calibration(out)
    assert cal.model == model and cal.camera == "View_001" and cal.image_size == (768, 576)
    ref = TsaiCamera.from_pets_xml(pets_xml)
    px = np.array([[100.0, 400.0], [400.0, 300.0], [700.0, 200.0], [384.0, 500.0]])
    np.testing.assert_allclose(cam.image_to_ground(px), ref.image_to_ground(px), atol=1e-3)
    intr = load_intrinsics(lens)
    assert intr.image_size == (768, 576) and intr.dist.size == 5


def test_import_matches_shipped_example(pets_xml, tmp_path):
    out = tmp_path / "v1.yaml"
    assert main(["calibrate", "import", "--tsai", str(pets_xml), "-o", str(out)]) == 0
    shipped = load_camera(REPO / "deploy" / "examples" / "pets2009-view001.calib.yaml")
    mine = load_camera(out)
    px = np.array([[50.0, 500.0], [700.0, 250.0]])
    np.testing.assert_allclose(mine.image_to_ground(px), shipped.image_to_ground(px), atol=1e-6)


def test_import_bad_xml(tmp_path, capsys):
    bad = tmp_path / "View_009.xml"
    bad.write_text("<Camera><Geometry width='768'/></Camera>")
    out = tmp_path / "x.yaml"
    assert main(["calibrate", "import", "--tsai", str(bad), "-o", str(out)]) == 2
    assert "View_009.xml" in capsys.readouterr().err and not out.exists()


def test_check_on_vtest(artifacts, capsys):
    if not VTEST.is_file():
        pytest.skip(f"{VTEST} missing: run `bash scripts/setup.sh` (extracts it from Debian's opencv-doc)")
    out = artifacts / "calibrate-check-vtest.png"
    assert (
        main(
            [
                "calibrate",
                "check",
                "--config",
                str(CONFIG),
                "--camera",
                "pets-view001",
                "--frame",
                "100",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    img = cv2.imread(str(out))
    assert img is not None
    assert img.shape[0] >= 576 and img.shape[1] > 768 + 300  # frame + bird's-eye side by side
    frame_part = img[28 : 28 + 576, :768].astype(int)
    cap = cv2.VideoCapture(str(VTEST))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = cap.read()
    cap.release()
    assert ok
    # the grid is drawn over the frame (many pixels changed), the frame is still there (most similar)
    changed = np.any(np.abs(frame_part - frame.astype(int)) > 40, axis=2).mean()
    assert 0.02 < changed < 0.7
    assert "pets-view001" in capsys.readouterr().out


def test_check_unknown_camera(tmp_path, capsys):
    out = tmp_path / "c.png"
    assert main(["calibrate", "check", "--config", str(CONFIG), "--camera", "nope", "-o", str(out)]) == 2
    assert "nope" in capsys.readouterr().err and not out.exists()
