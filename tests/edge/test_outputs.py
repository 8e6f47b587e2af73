"""Replay outputs: MOTChallenge lines, bird's-eye PNG, atomic writes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vigil.detectors.detections import Detections
from vigil.edge.outputs import BirdsEye, MotWriter


def _tracked() -> Detections:
    return Detections(
        xyxy=np.array([[10, 20, 40, 100], [100, 50, 120, 90]], np.float32),
        confidence=[0.9, 0.5],
        class_id=[0, 0],
        tracker_id=[3, 7],
        data={"world_xy": np.array([[1.5, -2.25], [np.nan, np.nan]])},
    )


def test_mot_lines_count_frames_from_one_and_carry_ground_metres(tmp_path: Path):
    out = tmp_path / "mot.txt"
    w = MotWriter(out)
    w.write(0, _tracked())
    assert not out.exists()  # written under a temporary name until closed
    w.close()
    assert out.read_text().splitlines() == [
        "1,3,10.00,20.00,30.00,80.00,0.9000,1.500,-2.250,-1",
        "1,7,100.00,50.00,20.00,40.00,0.5000,-1,-1,-1",
    ]


def test_failed_run_leaves_no_mot_file(tmp_path: Path):
    out = tmp_path / "mot.txt"
    w = MotWriter(out)
    w.write(0, _tracked())
    w.close(ok=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_birdseye_png_draws_tracks_and_violations(tmp_path: Path):
    b = BirdsEye(pixels_per_m=20)
    for k in range(10):
        b.add(
            Detections(
                np.array([[0, 0, 1, 1], [0, 0, 1, 1]]),
                [1, 1],
                [0, 0],
                tracker_id=[1, 2],
                data={"world_xy": np.array([[k * 0.5, 0.0], [k * 0.5, 0.8]])},
            )
        )
    b.add_violation((2.0, 0.0), (2.0, 0.8))
    path = b.save(tmp_path / "be.png", title="t")
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 50 and img.shape[1] > 50
    red = (img[:, :, 2] > 200) & (img[:, :, 1] < 60) & (img[:, :, 0] < 60)
    assert red.sum() > 10  # the violation segment is drawn in red


def test_annotated_video_draws_plate_reads_red_for_a_hit(tmp_path: Path):
    from vigil.edge.outputs import AnnotatedVideo

    video = AnnotatedVideo(tmp_path / "out.mp4", 5.0, (320, 240), ["person"])
    frame = np.full((240, 320, 3), 128, np.uint8)
    empty = Detections(xyxy=np.zeros((0, 4), np.float32), confidence=[], class_id=[], tracker_id=[])
    video.write(
        frame, empty, [], plates=[((40, 120, 140, 150), "AB123CD [A1]", True), ((180, 120, 280, 150), "EF456GH", False)]
    )
    video.close()
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    ok, got = cap.read()
    cap.release()
    assert ok
    b, g, r = (float(v) for v in got[135, 40])  # the hit's box edge: red
    assert r > 150 and g < 90 and b < 90
    b, g, r = (float(v) for v in got[135, 180])  # the other: yellow
    assert r > 150 and g > 150 and b < 90
    assert got[100:118, 40:150].mean() < 100  # the text's black label above the box
