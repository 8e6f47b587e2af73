"""The PETS 2009 View_001 Tsai calibration against the original file and the ground truth.

Needs ``../shared/data/pets2009`` (relative to the repository root); skipped without it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from vigil.geometry.calibration_io import load_camera
from vigil.geometry.camera import TsaiCamera

REPO = Path(__file__).resolve().parents[2]
PETS = REPO.parent / "shared" / "data" / "pets2009"
XML = PETS / "View_001.xml"
GT = PETS / "PETS2009-S2L1-dev.xml"

pytestmark = pytest.mark.skipif(
    not (XML.is_file() and GT.is_file()),
    reason=f"PETS 2009 calibration/ground truth not found under {PETS} (shared data is not part of the repository)",
)

_BOX = re.compile(r'<box h="([\d.]+)" w="([\d.]+)" xc="([\d.]+)" yc="([\d.]+)"')


def _boxes(frame: int | None = None) -> np.ndarray:
    """``(N, 4)`` h, w, xc, yc of the ground-truth boxes (of one frame, or all)."""
    text = GT.read_text()
    if frame is not None:
        start = text.index(f'<frame number="{frame}">')
        end = text.find("</frame>", start)
        text = text[start:end]
    return np.array([[float(v) for v in m] for m in _BOX.findall(text)])


def _head_check(cam: TsaiCamera, boxes: np.ndarray) -> np.ndarray:
    """Project a 1.75 m head above each foot point; offsets (du, dv) from the box's top centre, pixels."""
    h, w, xc, yc = boxes.T
    foot = np.c_[xc, yc + h / 2]
    ground_mm = cam.image_to_ground(foot) * 1000.0
    head = cam.world_to_image(np.c_[ground_mm, np.full(len(foot), 1750.0)])
    return head - np.c_[xc, yc - h / 2]


def test_from_pets_xml_equals_shipped_yaml():
    xml_cam = TsaiCamera.from_pets_xml(XML)
    yaml_cam = load_camera(REPO / "deploy" / "examples" / "pets2009-view001.calib.yaml")
    assert xml_cam.params == yaml_cam.params


def test_ground_truth_feet_land_on_the_plaza():
    cam = TsaiCamera.from_pets_xml(XML)
    boxes = _boxes()
    h, w, xc, yc = boxes.T
    g = cam.image_to_ground(np.c_[xc, yc + h / 2])
    assert np.all(np.isfinite(g))
    extent = g.max(axis=0) - g.min(axis=0)
    # The plaza is about 27 x 24 m; all 400 annotated frames stay inside it.
    assert extent[0] < 27.0 and extent[1] < 27.0, extent
    assert extent[0] > 10.0 and extent[1] > 10.0, extent  # people do cross it
    # Frame 0: three people, a few metres apart, none at the same spot.
    g0 = cam.image_to_ground(np.c_[_boxes(0)[:, 2], _boxes(0)[:, 3] + _boxes(0)[:, 0] / 2])
    d = np.linalg.norm(g0[:, None] - g0[None], axis=2)[np.triu_indices(3, 1)]
    assert np.all((d > 1.0) & (d < 15.0)), d


def test_heads_project_to_box_tops():
    """A 1.75 m head above each ground-truth foot lands at the top of the box (R = Rz Ry Rx)."""
    cam = TsaiCamera.from_pets_xml(XML)
    boxes = _boxes()
    off = _head_check(cam, boxes)
    h, w = boxes[:, 0], boxes[:, 1]
    assert np.median(np.abs(off[:, 0])) < 4.0 and np.median(np.abs(off[:, 1])) < 4.0  # measured: 2.2, 2.3 px
    assert np.percentile(np.abs(off[:, 1]) / h, 90) < 0.15  # measured: 0.08
    assert np.percentile(np.abs(off[:, 0]) / w, 90) < 0.3  # measured: 0.19


def test_other_rotation_order_does_not_fit():
    """The alternative composition Rx Ry Rz misplaces heads by tens of pixels: Rz Ry Rx is the right one."""
    import math

    cam = TsaiCamera.from_pets_xml(XML)
    p = cam.params

    def rot(axis: str, a: float) -> np.ndarray:
        c, s = math.cos(a), math.sin(a)
        return {
            "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
        }[axis]

    np.testing.assert_allclose(cam.R, rot("z", p.rz) @ rot("y", p.ry) @ rot("x", p.rx), atol=1e-15)
    wrong = TsaiCamera(p)
    wrong.R = rot("x", p.rx) @ rot("y", p.ry) @ rot("z", p.rz)
    wrong.centre_mm = -wrong.R.T @ wrong.T
    off = _head_check(wrong, _boxes())
    assert np.median(np.abs(off[:, 0])) > 30.0  # measured: 67.7 px
