"""Plate localisation geometry on drawn plates with known corners (no models needed)."""

import cv2
import numpy as np
import pytest

from vigil.plates.localise import (
    TextLine,
    find_band,
    find_top_band,
    group_lines,
    plate_quad,
    quad_xyxy,
    read_quality,
    rectify,
    top_line_guess,
)
from vigil.plates.ocr import TextBox


def _quad(x1, y1, x2, y2):
    """The axis-aligned quad (tl, tr, br, bl) of a box, float32 pixels."""
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)


def box(x1, y1, x2, y2, score=0.9):
    return TextBox(_quad(x1, y1, x2, y2), score)


def drawn_plate(band: bool = True) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A dark car body with a white plate (black frame, blue band, black characters) at a known place."""
    img = np.full((240, 480, 3), 40, np.uint8)
    x1, y1, x2, y2 = 120, 100, 360, 152
    img[y1:y2, x1:x2] = 235
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), (20, 20, 20), 2)
    if band:
        img[y1 + 2 : y2 - 2, x1 + 2 : x1 + 24] = (153, 51, 0)
    cv2.putText(img, "AB 123 CD", (x1 + 30, y2 - 12), cv2.FONT_HERSHEY_DUPLEX, 1.05, (10, 10, 10), 2, cv2.LINE_AA)
    return img, (x1, y1, x2, y2)


def test_fragments_on_one_row_join_and_nested_duplicates_collapse():
    groups = group_lines([box(100, 100, 150, 130), box(160, 101, 260, 131), box(105, 103, 145, 127)])
    one = [g for g in groups if len(g) == 1]
    assert len(one) == 1
    ln = one[0][0]
    assert ln.parts == 2
    assert quad_xyxy(ln.quad) == pytest.approx((100, 100, 260, 131), abs=1.0)


def test_far_apart_or_different_height_fragments_stay_apart():
    groups = group_lines([box(100, 100, 150, 130), box(400, 100, 450, 130), box(160, 100, 200, 190)])
    assert sorted(len(g) for g in groups) == [1, 1, 1]


def test_stacked_lines_form_a_two_line_group_but_overlapping_boxes_do_not():
    # a motorcycle plate: "AB" over "12345", the detector's boxes grown so that they overlap
    two = group_lines([box(120, 100, 170, 140), box(100, 128, 200, 168)])
    pairs = [g for g in two if len(g) == 2]
    assert len(pairs) == 1 and pairs[0][0].center[1] < pairs[0][1].center[1]
    # the same text boxed twice, almost on top of each other: one line, no two-line group
    dup = group_lines([box(100, 100, 200, 140), box(100, 104, 200, 144)])
    assert [len(g) for g in dup] == [1]


def test_plate_quad_finds_the_plate_edges_around_its_text():
    img, (x1, y1, x2, y2) = drawn_plate()
    # the text detector's (grown) box around the characters only
    text = box(x1 + 26, y1 + 6, x2 - 6, y2 - 6)
    cand = plate_quad(img, group_lines([text])[0])
    bx1, by1, bx2, by2 = cand.xyxy
    assert cand.edges_found == 4
    assert (bx1, by1, bx2, by2) == pytest.approx((x1, y1, x2 - 1, y2 - 1), abs=3.0)


def test_rectify_keeps_the_aspect_and_maps_corners_to_corners():
    img, (x1, y1, x2, y2) = drawn_plate()
    quad = _quad(x1, y1, x2, y2)
    plate, m = rectify(img, quad, height=64)
    assert plate.shape == (64, round(64 * (x2 - x1) / (y2 - y1)), 3)
    mapped = cv2.perspectiveTransform(quad.reshape(1, 4, 2), m)[0]
    assert mapped == pytest.approx(np.array([[0, 0], [plate.shape[1], 0], [plate.shape[1], 64], [0, 64]]), abs=1e-3)


def test_find_band_measures_the_blue_band_and_reports_none_without():
    img, (x1, y1, x2, y2) = drawn_plate(band=True)
    plate, _ = rectify(img, _quad(x1, y1, x2, y2), 64)
    # the band spans x1+2 .. x1+24 of a 240 px plate → 2..24 of 240 → about 6..30 of 295 px
    width = find_band(plate, "left")
    scale = plate.shape[1] / (x2 - x1)
    assert width == pytest.approx(24 * scale, abs=3)
    assert find_band(plate, "right") == 0
    plain, _ = rectify(drawn_plate(band=False)[0], _quad(x1, y1, x2, y2), 64)
    assert find_band(plain, "left") == 0


def drawn_mercosul(body=(60, 60, 60), band=(150, 60, 10)) -> tuple[np.ndarray, tuple, tuple]:
    """A Mercosul-like plate (white, a blue band with white lettering across its top) on a car
    body of the given colour: (image, the plate's box, its characters' box)."""
    img = np.zeros((300, 600, 3), np.uint8)
    img[:] = body
    x1, y1, x2, y2 = 200, 120, 400, 185  # 400 x 130 mm at 0.5 px per mm
    img[y1:y2, x1:x2] = 235
    img[y1 + 2 : y1 + 17, x1 + 2 : x2 - 2] = band
    cv2.putText(img, "BRASIL", (x1 + 75, y1 + 13), cv2.FONT_HERSHEY_PLAIN, 0.8, (255, 255, 255), 1)
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), (20, 20, 20), 2)
    cv2.putText(img, "ABC1D23", (x1 + 12, y2 - 12), cv2.FONT_HERSHEY_DUPLEX, 1.2, (10, 10, 10), 2, cv2.LINE_AA)
    return img, (x1, y1, x2, y2), (x1 + 12, y1 + 24, x2 - 12, y2 - 10)


def test_a_mercosul_band_is_found_above_the_characters_or_at_the_plates_top():
    img, plate, chars = drawn_mercosul()
    assert find_top_band(img, _quad(*plate)) and find_top_band(img, _quad(*chars))
    # under yaw: the plate's right side shorter
    x1, y1, x2, y2 = plate
    seen = np.array([[x1, y1], [x2, y1 + 8], [x2, y2 - 8], [x1, y2]], np.float32)
    yawed = cv2.warpPerspective(img, cv2.getPerspectiveTransform(_quad(*plate), seen), (img.shape[1], img.shape[0]))
    assert find_top_band(yawed, seen)


def test_no_mercosul_band_on_an_eu_plate_a_blue_car_or_a_grey_image():
    img, plate, chars = drawn_mercosul(band=(235, 235, 235))  # the old grey-white plate: no band
    assert not find_top_band(img, _quad(*plate)) and not find_top_band(img, _quad(*chars))
    # a blue car body above and beside a plain plate: blue runs on beyond the plate's sides
    img, plate, chars = drawn_mercosul(body=(150, 60, 10), band=(235, 235, 235))
    assert not find_top_band(img, _quad(*plate)) and not find_top_band(img, _quad(*chars))
    # an EU plate: its band is on the left, not across the top
    eu, box = drawn_plate(band=True)
    assert not find_top_band(eu, _quad(*box))
    # the Mercosul plate seen in grey (an infrared camera): no colour, no band
    img, plate, _ = drawn_mercosul()
    assert not find_top_band(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), _quad(*plate))
    assert not find_top_band(cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR), _quad(*plate))


def test_read_quality_grows_with_size_sharpness_and_frontality():
    img, (x1, y1, x2, y2) = drawn_plate()
    quad = _quad(x1, y1, x2, y2)
    plate, _ = rectify(img, quad, 64)
    sharp = read_quality(plate, quad)
    blurred = read_quality(cv2.GaussianBlur(plate, (0, 0), 3), quad)
    small = read_quality(plate, quad * np.float32(0.3))
    skewed = quad.copy()
    skewed[1, 1] += 15
    skewed[2, 1] -= 15  # right edge 22 px against 52 px on the left: a plate under yaw
    yawed = read_quality(plate, skewed)
    assert 0 < blurred < sharp <= 1 and small < sharp and yawed == pytest.approx(sharp * 22 / 52, rel=0.02)


def test_text_line_quad_round_trips_its_geometry():
    ln = TextLine((100.0, 50.0), 80.0, 20.0, 10.0, 0.9)
    q = ln.quad
    assert np.linalg.norm(q[1] - q[0]) == pytest.approx(80.0) and np.linalg.norm(q[3] - q[0]) == pytest.approx(20.0)
    assert q.mean(0) == pytest.approx([100.0, 50.0])


def drawn_two_line_plate(top: str = "L") -> tuple[np.ndarray, int, int]:
    """A white square plate on a dark body: ``top`` (short) over "7 DPC"; returns the image and
    the rows where the top line's glyphs end and the bottom line's begin (pixels)."""
    img = np.full((240, 320, 3), 40, np.uint8)
    x1, y1, x2, y2 = 100, 70, 220, 154
    img[y1:y2, x1:x2] = 235
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), (20, 20, 20), 2)
    font, scale, th = cv2.FONT_HERSHEY_DUPLEX, 1.0, 2
    (tw, _), _ = cv2.getTextSize(top, font, scale, th)
    cv2.putText(img, top, (160 - tw // 2, 100), font, scale, (10, 10, 10), th, cv2.LINE_AA)
    cv2.putText(img, "7 DPC", (112, 145), font, scale, (10, 10, 10), th, cv2.LINE_AA)
    ink = np.flatnonzero((img[y1 + 3 : y2 - 3, x1 + 3 : x2 - 3] < 128).all(2).any(1)) + y1 + 3
    gaps = np.flatnonzero(np.diff(ink) > 1)
    if not gaps.size:  # no top line: "ends" above the plate
        return img, y1, int(ink[0])
    return img, int(ink[gaps[0]]), int(ink[gaps[0] + 1])


def test_a_two_line_plates_missed_short_top_line_is_found_above_its_bottom_line():
    for top in ("L", "TN", "1"):
        img, top_end, bottom_start = drawn_two_line_plate(top)
        # the detector's (grown) box around "7 DPC" only, reaching a little into the gap
        line = group_lines([box(106, top_end - 2, 214, 151)])[0][0]
        pair = top_line_guess(img, line)
        assert pair is not None, top
        upper, lower = pair
        _, uy1, _, uy2 = quad_xyxy(upper.quad)
        _, ly1, _, ly2 = quad_xyxy(lower.quad)
        split = (top_end + 1 + bottom_start) / 2  # the middle of the gap between the glyphs
        assert uy2 == pytest.approx(split, abs=1.5) and ly1 == pytest.approx(split, abs=1.5), top
        assert uy1 < 78 and ly2 == pytest.approx(151, abs=0.5)
        assert upper.angle == pytest.approx(line.angle) and lower.width == pytest.approx(line.width)
        ux1, _, ux2, _ = quad_xyxy(upper.quad)
        assert ux1 < 160 < ux2  # centred on the glyphs
        # with the top line, the plate quad spans both lines: the whole plate
        cand = plate_quad(img, list(pair))
        assert cand.xyxy[1] == pytest.approx(70, abs=3) and cand.xyxy[3] == pytest.approx(153, abs=3)


def test_no_top_line_is_guessed_above_a_one_line_plate_or_a_bare_border():
    img, (x1, y1, x2, y2) = drawn_plate()
    line = group_lines([box(x1 + 26, y1 + 6, x2 - 6, y2 - 6)])[0][0]
    assert top_line_guess(img, line) is None  # above the text: the plate's top border, then the body
    # a plate whose upper half is empty (a two-line plate with its top line rubbed off)
    img, top_end, _ = drawn_two_line_plate(" ")
    assert top_line_guess(img, group_lines([box(106, 112, 214, 151)])[0][0]) is None
    # text running on through the whole window above (a wall of signs) is not a line
    wall = np.full((240, 320, 3), 235, np.uint8)
    for x in range(0, 320, 9):
        cv2.line(wall, (x, 0), (x, 110), (10, 10, 10), 2)
    cv2.putText(wall, "7 DPC", (112, 145), cv2.FONT_HERSHEY_DUPLEX, 1.0, (10, 10, 10), 2, cv2.LINE_AA)
    assert top_line_guess(wall, group_lines([box(106, 116, 214, 151)])[0][0]) is None
