"""Letterbox mapping, NMS, nested suppression and tile merging."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.detectors.ops import letterbox, merge_tiles, nms, suppress_nested, tile_grid


@pytest.mark.parametrize(
    "hw, size", [((576, 768), (416, 416)), ((480, 640), (576, 768)), ((577, 769), (320, 416)), ((100, 50), (64, 64))]
)
def test_letterbox_round_trip_exact(hw, size):
    img = np.zeros((*hw, 3), np.uint8)
    out, lb = letterbox(img, size)
    assert out.shape == (*size, 3)
    boxes = np.array([[0, 0, hw[1], hw[0]], [10.5, 20.25, 30, 44]], np.float32)
    inp = lb.to_input(boxes)
    np.testing.assert_allclose(lb.to_image(inp), boxes, atol=1e-3)
    # the whole image maps onto the non-padded area of the input
    x1, y1, x2, y2 = inp[0]
    assert x1 == lb.pad_x and y1 == lb.pad_y and x2 <= size[1] and y2 <= size[0]


def test_letterbox_places_pixels_where_the_mapping_says():
    img = np.zeros((60, 80, 3), np.uint8)
    img[20:40, 40:60] = 255  # a white square
    out, lb = letterbox(img, (64, 64), fill=0)
    ys, xs = np.nonzero(out[..., 0] > 127)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    np.testing.assert_allclose(lb.to_image(found), [[40, 20, 60, 40]], atol=1.5)


def test_nms_class_aware():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11]], np.float32)
    keep = nms(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), 0.5)
    assert sorted(keep.tolist()) == [0, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), None, 0.5).size == 0


def test_suppress_nested_keeps_outer_box_with_best_score():
    boxes = np.array([[0, 0, 20, 60], [2, 10, 18, 35], [100, 0, 110, 10]], np.float32)
    keep, scores = suppress_nested(boxes, np.array([0.4, 0.9, 0.5]), np.array([0, 0, 0]), 0.8)
    assert keep.tolist() == [0, 2]
    np.testing.assert_allclose(scores, [0.9, 0.5])
    keep, _ = suppress_nested(boxes, np.array([0.4, 0.9, 0.5]), np.array([0, 1, 0]), 0.8)  # other class: kept
    assert keep.tolist() == [0, 1, 2]


def test_tile_grid_covers_with_overlap():
    tiles = tile_grid(768, 576, 3, 2, 100, 80)
    assert len(tiles) == 6
    assert tiles[0].x1 == 0 and tiles[-1].x2 == 768 and tiles[-1].y2 == 576
    assert len({(t.width, t.height) for t in tiles}) == 1  # one batch shape
    assert tiles[0].x2 - tiles[1].x1 >= 100 and tiles[0].y2 - tiles[3].y1 >= 80


def test_merge_tiles_drops_cut_piece_and_duplicates():
    left, right = tile_grid(200, 100, 2, 1, 40, 0)  # left: x 0..120, right: x 80..200
    # an object at x 100..140: cut by the left tile's right edge (120), whole in the right tile
    cut_piece = (np.array([[100, 10, 120, 60]], np.float32), np.array([0.9], np.float32), np.array([0]))
    whole = (
        np.array([[100, 10, 140, 60], [85, 70, 95, 90]], np.float32),
        np.array([0.6, 0.7], np.float32),
        np.array([0, 0]),
    )
    # the small object at x 85..95 seen by both tiles: a duplicate for NMS
    dup = (np.array([[85.5, 70, 95, 90]], np.float32), np.array([0.5], np.float32), np.array([0]))
    parts = [
        (
            np.concatenate([cut_piece[0], dup[0]]),
            np.concatenate([cut_piece[1], dup[1]]),
            np.concatenate([cut_piece[2], dup[2]]),
        ),
        whole,
    ]
    xyxy, score, cls = merge_tiles(parts, [left, right], (200, 100))
    order = np.argsort(xyxy[:, 0])
    np.testing.assert_allclose(xyxy[order], [[85, 70, 95, 90], [100, 10, 140, 60]])
    np.testing.assert_allclose(score[order], [0.7, 0.6])


def test_merge_tiles_joins_pieces_cut_in_every_view():
    left, right = tile_grid(200, 100, 2, 1, 10, 0)  # left: 0..105, right: 95..200
    a = (np.array([[60, 10, 105, 60]], np.float32), np.array([0.8], np.float32), np.array([2]))
    b = (np.array([[95, 10, 150, 60]], np.float32), np.array([0.5], np.float32), np.array([2]))
    xyxy, score, cls = merge_tiles([a, b], [left, right], (200, 100), cut_overlap=0.15)
    np.testing.assert_allclose(xyxy, [[60, 10, 150, 60]])
    assert cls.tolist() == [2] and score.tolist() == pytest.approx([0.8])
