"""Chessboard intrinsics: the acceptance on Debian's left01..14 and the bad-input cases."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vigil.calibration.cli import main
from vigil.calibration.intrinsics import (
    Intrinsics,
    calibrate_chessboard,
    expand_images,
    load_intrinsics,
    parse_board,
    save_intrinsics,
)
from vigil.geometry.camera import CalibrationError

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture
def boards() -> list[Path]:
    files = sorted(DATA.glob("left*.jpg"))
    if len(files) < 3:
        pytest.skip(
            f"chessboard images left01..14.jpg missing in {DATA}: run `bash scripts/setup.sh` (Debian's opencv-doc)"
        )
    return files


def test_acceptance_chessboards(boards, tmp_path, capsys):
    out = tmp_path / "cam.yaml"
    rc = main(
        [
            "calibrate",
            "intrinsics",
            "--images",
            str(DATA / "left*.jpg"),
            "--board",
            "9x6",
            "--square",
            "0.025",
            "-o",
            str(out),
            "--json",
        ]
    )
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    # every image found is used or explained (Debian ships 13 of the 14: left10 is missing)
    names = {Path(p["image"]).name for p in rep["per_image"]} | {Path(r["image"]).name for r in rep["images_rejected"]}
    assert names == {p.name for p in boards}
    assert rep["images_used"] + len(rep["images_rejected"]) == len(boards)
    assert rep["rms"] < 0.5
    assert all(r["reason"] for r in rep["images_rejected"])
    # OpenCV's conventions, readable by cv2.FileStorage
    fs = cv2.FileStorage(str(out), cv2.FILE_STORAGE_READ)
    K = fs.getNode("camera_matrix").mat()
    dist = fs.getNode("distortion_coefficients").mat()
    assert K.shape == (3, 3) and dist.size == 5
    assert int(fs.getNode("image_width").real()) == 640 and int(fs.getNode("image_height").real()) == 480
    assert fs.getNode("rms").real() == pytest.approx(rep["rms"])
    fs.release()
    intr = load_intrinsics(out)
    assert intr.image_size == (640, 480)
    np.testing.assert_allclose(intr.K, rep["camera_matrix"])


def test_text_report_names_images(boards, tmp_path, capsys):
    assert main(["calibrate", "intrinsics", "--images", str(DATA), "-o", str(tmp_path / "c.yaml")]) == 0
    out = capsys.readouterr().out
    assert "RMS reprojection error" in out
    for p in boards:
        assert p.name in out


def test_board_never_found_writes_nothing(boards, tmp_path, capsys):
    out = tmp_path / "cam.yaml"
    rc = main(["calibrate", "intrinsics", "--images", *map(str, boards[:4]), "--board", "12x11", "-o", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "12x11" in err and "found in 0 of 4" in err and boards[0].name in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_images_of_different_sizes(boards, tmp_path, capsys):
    small = tmp_path / "small.jpg"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(boards[1])), (320, 240)))
    out = tmp_path / "cam.yaml"
    rc = main(["calibrate", "intrinsics", "--images", str(boards[0]), str(small), "-o", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "small.jpg" in err and "320x240" in err and "640x480" in err
    assert not out.exists()


def test_missing_or_unreadable_image(tmp_path):
    with pytest.raises(CalibrationError, match="left10.jpg: image not found"):
        expand_images([str(tmp_path / "left10.jpg")])
    with pytest.raises(CalibrationError, match="no images match"):
        expand_images([str(tmp_path / "*.jpg")])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(CalibrationError, match="bad.jpg: cannot read"):
        calibrate_chessboard([bad], (9, 6), 0.025)


@pytest.mark.parametrize("text,expected", [("9x6", (9, 6)), ("7X5", (7, 5)), ("9×6", (9, 6))])
def test_parse_board(text, expected):
    assert parse_board(text) == expected


@pytest.mark.parametrize("text", ["9", "ax6", "1x6", "9x6x2"])
def test_parse_board_rejects(text):
    with pytest.raises(CalibrationError, match="--board"):
        parse_board(text)


def test_intrinsics_roundtrip_and_ros_yaml(tmp_path):
    K = np.array([[500.0, 0, 320], [0, 505.0, 240], [0, 0, 1]])
    intr = Intrinsics(K, [0.1, -0.02, 0, 0, 0.001], (640, 480), rms=0.3)
    p = save_intrinsics(tmp_path / "i.yaml", intr)
    back = load_intrinsics(p)
    np.testing.assert_allclose(back.K, K)
    np.testing.assert_allclose(back.dist, intr.dist)
    assert back.image_size == (640, 480) and back.rms == pytest.approx(0.3)
    ros = tmp_path / "ros.yaml"
    ros.write_text(
        "image_width: 640\nimage_height: 480\ncamera_name: cam\n"
        "camera_matrix: {rows: 3, cols: 3, data: [500, 0, 320, 0, 505, 240, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\ndistortion_coefficients: {rows: 1, cols: 5, data: [0.1, -0.02, 0, 0, 0.001]}\n"
    )
    r = load_intrinsics(ros)
    np.testing.assert_allclose(r.K, K)
    assert r.image_size == (640, 480)
    broken = tmp_path / "broken.yaml"
    broken.write_text("image_width: 640\n")
    with pytest.raises(CalibrationError, match="broken.yaml: camera_matrix: missing"):
        load_intrinsics(broken)
