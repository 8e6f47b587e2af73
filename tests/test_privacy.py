"""vigil.privacy: person boxes pixelated into blocks of 1/8 of the box height (or filled flat),
grown by the face margin, and nothing outside them touched."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.privacy import MARGIN, SILHOUETTE_BGR, block_size_px, masked_region, privacy_mask


def _frame() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (200, 300, 3), dtype=np.uint8)


def test_block_size_is_an_eighth_of_the_box_height_at_least_two_pixels():
    assert [block_size_px(h) for h in (8, 16, 20, 80, 81, 400)] == [2, 2, 3, 10, 11, 50]


def test_the_region_is_the_box_grown_by_the_face_margin_and_clipped_to_the_frame():
    assert MARGIN == (0.35, 0.15, 0.05)
    # box 40 x 80 px: 28 px up, 6 px each side, 4 px down
    assert masked_region([100, 60, 140, 140], (300, 200)) == (94, 32, 146, 144)
    assert masked_region([280, 10, 320, 90], (300, 200)) == (274, 0, 300, 94)  # clipped
    assert masked_region([310, 10, 350, 90], (300, 200)) is None  # wholly outside
    assert masked_region([10, 10, 10, 90], (300, 200)) is None  # empty
    assert masked_region([np.nan, 10, 20, 90], (300, 200)) is None


def test_pixelate_makes_every_block_its_mean_colour_and_leaves_the_rest_untouched():
    frame = _frame()
    before = frame.copy()
    out = privacy_mask(frame, np.array([[100, 60, 140, 140]], np.float32))
    assert np.array_equal(frame, before)  # the input is not changed
    x1, y1, x2, y2 = 94, 32, 146, 144
    outside = np.ones(frame.shape[:2], bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(out[outside], frame[outside])
    blocks = 0
    for by in range(y1, y2, 10):  # block 10 px anchored at the region's top-left
        for bx in range(x1, x2, 10):
            got = out[by : min(by + 10, y2), bx : min(bx + 10, x2)].reshape(-1, 3)
            want = np.rint(frame[by : min(by + 10, y2), bx : min(bx + 10, x2)].reshape(-1, 3).mean(axis=0))
            assert (got == got[0]).all(), (bx, by)
            assert got[0].tolist() == want.astype(int).tolist()
            blocks += 1
    assert blocks == 6 * 12  # 52 x 112 px: 6 columns (the last 2 px wide), 12 rows (the last 2 px tall)


def test_silhouette_fills_the_region_flat_grey():
    frame = _frame()
    out = privacy_mask(frame, [[100, 60, 140, 140]], "silhouette")
    assert (out[32:144, 94:146] == np.array(SILHOUETTE_BGR, np.uint8)).all()
    assert np.array_equal(out[:32], frame[:32]) and np.array_equal(out[:, 146:], frame[:, 146:])


def test_no_boxes_grey_frames_and_bad_modes():
    frame = _frame()
    assert np.array_equal(privacy_mask(frame, np.zeros((0, 4))), frame)
    grey = frame[:, :, 0].copy()
    out = privacy_mask(grey, [[100, 60, 140, 140]])
    assert out.shape == grey.shape and (out[32:42, 94:104] == out[32, 94]).all()
    with pytest.raises(ValueError, match="unknown privacy mask mode 'blur'"):
        privacy_mask(frame, [[0, 0, 10, 10]], "blur")
