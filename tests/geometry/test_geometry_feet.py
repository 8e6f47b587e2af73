"""Occlusion rule on hand-made boxes and the foot estimate from the head, on synthetic cameras."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vigil.geometry.calibration_io import load_camera
from vigil.geometry.feet import (
    FRAME_EDGE,
    NEARER_BOX,
    SHORTER_THAN_TRACK,
    TOO_SHORT,
    TOO_TALL,
    TrackHeights,
    estimate_feet,
    expected_height_px,
    foot_from_head,
    occlusion_reasons,
)

from .synthetic_cameras import IMAGE_SIZE, simple_homography, tilted_camera

PETS_YAML = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "pets2009-view001.calib.yaml"
H = 1.75


def _person(cam, g, height=H, half_width=15.0):
    """Head and foot pixels of an upright person at ``g``, and the box whose top centre is the head."""
    head, foot = cam.project_points([[g[0], g[1], height], [g[0], g[1], 0.0]])
    assert np.all(np.isfinite([head, foot])) and 0 < head[1] < foot[1] < cam.image_size[1]
    box = np.array([head[0] - half_width, head[1], head[0] + half_width, foot[1]])
    return head, foot, box


@pytest.fixture(params=["pinhole", "pinhole-distorted", "tsai"])
def scene(request):
    if request.param == "tsai":
        return load_camera(PETS_YAML), (5.0, 8.0), (768, 576)
    dist = [-0.05, 0.01, 0.0, 0.0, 0.0] if request.param == "pinhole-distorted" else None
    return tilted_camera(dist=dist), (1.0, 5.0), IMAGE_SIZE


def test_plane_projection_round_trip(scene):
    cam, g, _ = scene
    pts = np.array([[g[0], g[1], 0.0], [g[0], g[1], 1.75], [g[0] + 2, g[1] - 1, 0.9]])
    px = cam.project_points(pts)
    np.testing.assert_allclose(cam.image_to_plane(px, pts[:, 2]), pts[:, :2], atol=1e-6)
    np.testing.assert_allclose(cam.image_to_plane(px[:1], 0.0), cam.image_to_ground(px[:1]), atol=1e-12)


def test_unoccluded_person_is_not_flagged(scene):
    cam, g, size = scene
    head, foot, box = _person(cam, g)
    est = estimate_feet(box[None], size, cam)
    assert est.reason.tolist() == [0] and not est.corrected.any()
    np.testing.assert_allclose(est.foot_px, [[head[0], foot[1]]])
    np.testing.assert_allclose(expected_height_px(cam, [[foot[0], foot[1]]], H), [foot[1] - head[1]], atol=1e-6)


def test_legs_hidden_by_a_nearer_box_recover_the_true_foot(scene):
    cam, g, size = scene
    head, foot, box = _person(cam, g)
    hidden = box.copy()
    hidden[3] = head[1] + 0.6 * (foot[1] - head[1])  # the lower 40 % hidden
    # someone nearer the camera (lower bottom edge) standing in front of the legs
    near = np.array([head[0] - 30.0, hidden[3] - 20.0, head[0] + 30.0, foot[1] + 30.0])
    est = estimate_feet(np.stack([hidden, near]), size, cam, height_m=H)
    assert est.reason[0] & NEARER_BOX and est.reason[0] & TOO_SHORT and not est.reason[1] & NEARER_BOX
    assert est.corrected[0]
    np.testing.assert_allclose(est.foot_px[0], foot, atol=1e-6)
    np.testing.assert_allclose(cam.image_to_ground(est.foot_px[:1])[0], g, atol=1e-6)
    np.testing.assert_allclose(foot_from_head(cam, head[None], H)[0], foot, atol=1e-6)


def test_reasons_one_at_a_time():
    cam = tilted_camera()
    head, foot, box = _person(cam, (1.0, 5.0))
    # a box overlapping horizontally but whose bottom is above ours (farther) does not occlude
    far = np.array([box[0], box[1] - 40, box[2], box[3] - 5])
    assert occlusion_reasons(np.stack([box, far]), IMAGE_SIZE, cam)[0] == 0
    # too little horizontal overlap (under 30 % of our width)
    side = np.array([box[2] - 5, box[1] + 10, box[2] + 50, box[3] + 30])
    assert occlusion_reasons(np.stack([box, side]), IMAGE_SIZE, cam)[0] == 0
    cover = np.array([box[2] - 10, box[1] + 10, box[2] + 50, box[3] + 30])  # 10 of 30 px
    assert occlusion_reasons(np.stack([box, cover]), IMAGE_SIZE, cam)[0] == NEARER_BOX
    # the frame's bottom edge
    cut = box.copy()
    cut[3] = IMAGE_SIZE[1] - 1
    cut[1] = cut[3] - 1.2 * (foot[1] - head[1])  # tall enough for where its bottom is
    assert occlusion_reasons(cut[None], IMAGE_SIZE, cam, min_height_m=1.0).tolist() == [FRAME_EDGE]
    assert occlusion_reasons(cut[None], None, cam, min_height_m=1.0).tolist() == [0]
    # too short alone: the upper half of the person
    short = box.copy()
    short[3] = (box[1] + box[3]) / 2
    assert occlusion_reasons(short[None], IMAGE_SIZE, cam).tolist() == [TOO_SHORT]
    # a 1.6 m person is tall enough for the 1.5 m rule; a 1.2 m one is not
    assert occlusion_reasons(_person(cam, (1.0, 5.0), 1.6)[2][None], IMAGE_SIZE, cam).tolist() == [0]
    assert occlusion_reasons(_person(cam, (1.0, 5.0), 1.2)[2][None], IMAGE_SIZE, cam).tolist() == [TOO_SHORT]
    # shorter than its track's recent height
    h = box[3] - box[1]
    assert occlusion_reasons(box[None], IMAGE_SIZE, cam, np.array([h / 0.8])).tolist() == [SHORTER_THAN_TRACK]
    assert occlusion_reasons(box[None], IMAGE_SIZE, cam, np.array([h / 0.9])).tolist() == [0]
    assert occlusion_reasons(box[None], IMAGE_SIZE, cam, np.array([np.nan])).tolist() == [0]


def test_too_tall_for_a_person_there(scene):
    cam, g, size = scene
    # 2.1 m is within 2.0 m + 10 %; 2.4 m is not
    assert occlusion_reasons(_person(cam, g, 2.1)[2][None], size, cam).tolist() == [0]
    assert occlusion_reasons(_person(cam, g, 2.4)[2][None], size, cam).tolist() == [TOO_TALL]
    assert occlusion_reasons(_person(cam, g, 2.4)[2][None], size, cam, max_height_m=None).tolist() == [0]
    # two people merged in one box: the far one's head on top, the bottom 40 % of its height lower, at
    # a nearer one's feet: the foot estimated from the head and the height prior is the far one's
    head, foot, box = _person(cam, g)
    merged = box.copy()
    merged[3] = box[3] + 0.4 * (box[3] - box[1])
    assert merged[3] < size[1] - 5
    est = estimate_feet(merged[None], size, cam, height_m=H)
    assert est.reason[0] & TOO_TALL and est.corrected[0]
    np.testing.assert_allclose(est.foot_px[0], foot, atol=1e-6)
    np.testing.assert_allclose(cam.image_to_ground(est.foot_px)[0], g, atol=1e-6)


def test_track_height_is_preferred_when_known():
    cam = tilted_camera()
    head, foot, box = _person(cam, (1.0, 5.0))
    short = box.copy()
    short[3] = (box[1] + box[3]) / 2
    th = np.array([box[3] - box[1]])
    est = estimate_feet(short[None], IMAGE_SIZE, cam, th)
    assert est.reason[0] == TOO_SHORT | SHORTER_THAN_TRACK and est.corrected[0]
    np.testing.assert_allclose(est.foot_px[0], [head[0], box[3]])
    est = estimate_feet(short[None], IMAGE_SIZE, cam, th, use_track_height=False)
    np.testing.assert_allclose(est.foot_px[0], foot, atol=1e-6)


def test_head_cut_by_the_frame_keeps_the_bottom():
    cam = tilted_camera()
    box = np.array([[100.0, 0.0, 130.0, 40.0]])
    est = estimate_feet(box, IMAGE_SIZE, cam)
    assert est.not_feet[0] and not est.corrected[0]
    np.testing.assert_allclose(est.foot_px, [[115.0, 40.0]])


def test_ground_only_camera_uses_the_geometric_rules_and_the_track_height():
    cam = simple_homography()
    assert not cam.supports_3d
    with pytest.raises(NotImplementedError):
        cam.project_points([[0.0, 0.0, 1.0]])
    boxes = np.array([[100.0, 100.0, 140.0, 200.0], [90.0, 180.0, 150.0, 300.0]])
    est = estimate_feet(boxes, IMAGE_SIZE, cam)
    assert est.reason.tolist() == [NEARER_BOX, 0] and not est.corrected.any()
    est = estimate_feet(boxes, IMAGE_SIZE, cam, np.array([150.0, np.nan]))
    assert est.corrected.tolist() == [True, False]
    np.testing.assert_allclose(est.foot_px[0], [120.0, 250.0])


def test_empty_and_bad_shapes():
    cam = tilted_camera()
    est = estimate_feet(np.zeros((0, 4)), IMAGE_SIZE, cam)
    assert est.foot_px.shape == (0, 2) and est.reason.shape == (0,)
    with pytest.raises(ValueError, match="boxes"):
        occlusion_reasons(np.zeros((2, 3)), IMAGE_SIZE, cam)
    with pytest.raises(ValueError, match="track_height_px"):
        occlusion_reasons(np.zeros((2, 4)), IMAGE_SIZE, cam, np.ones(3))


def test_track_heights_average_and_forget():
    th = TrackHeights(alpha=0.5, forget_after_s=1.0)
    th.update(0.0, np.array([1, 2]), np.array([100.0, 50.0]), np.array([True, False]))
    np.testing.assert_equal(th.get(np.array([1, 2])), [100.0, np.nan])
    th.update(0.5, np.array([1]), np.array([120.0]), np.array([True]))
    assert th.get(np.array([1]))[0] == 110.0
    th.update(2.0, np.array([3]), np.array([80.0]), np.array([True]))
    np.testing.assert_equal(th.get(np.array([1, 3])), [np.nan, 80.0])


def test_the_sweep_agrees_with_all_pairs():
    rng = np.random.default_rng(3)
    n = 400
    x1, y2 = rng.uniform(0, 700, n), rng.uniform(100, 590, n)
    w, h = rng.uniform(5, 60, n), rng.uniform(20, 150, n)
    b = np.c_[x1, y2 - h, x1 + w, y2]
    ov = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
    cover = (b[None, :, 3] > b[:, None, 3]) & (b[None, :, 1] < b[:, None, 3]) & (ov >= 0.3 * w[:, None])
    np.fill_diagonal(cover, False)
    got = occlusion_reasons(b, None, simple_homography()) & NEARER_BOX
    assert cover.any(axis=1).sum() > 50
    np.testing.assert_array_equal(got != 0, cover.any(axis=1))


class _LoopHeights:
    """The per-track dict loop that TrackHeights replaced: the reference for its vectorised version."""

    def __init__(self, alpha, forget_after_s):
        self.alpha, self.forget_after_s, self.h, self.t = alpha, forget_after_s, {}, {}

    def get(self, ids):
        return np.array([self.h.get(int(t), np.nan) for t in ids], np.float64)

    def update(self, t_s, ids, heights, ok):
        a = self.alpha
        for tid, h, good in zip(ids, heights, ok):
            if good and np.isfinite(h):
                old = self.h.get(int(tid))
                self.h[int(tid)] = float(h) if old is None else (1 - a) * old + a * float(h)
                self.t[int(tid)] = t_s
        for k in [k for k, t in self.t.items() if t_s - t > self.forget_after_s]:
            del self.h[k], self.t[k]


def test_track_heights_match_the_per_track_loop():
    rng = np.random.default_rng(7)
    fast, loop = TrackHeights(alpha=0.3, forget_after_s=0.35), _LoopHeights(0.3, 0.35)
    pool = np.array([5, 3, 40, 12, 7, 99, 1, 64, 8, 2])
    for k in range(60):
        ids = rng.choice(pool, size=rng.integers(0, 9), replace=bool(k % 5 == 0))  # every 5th: repeated ids
        h = rng.uniform(20.0, 200.0, len(ids))
        h[rng.random(len(ids)) < 0.1] = np.nan
        ok = rng.random(len(ids)) > 0.3
        t_s = k * 0.1 + (1.0 if k >= 40 else 0.0)  # a gap: everything forgotten
        fast.update(t_s, ids, h, ok)
        loop.update(t_s, ids, h, ok)
        query = np.r_[pool, 1000]
        np.testing.assert_array_equal(fast.get(query), loop.get(query))
        assert len(fast) == len(loop.h)


@pytest.mark.parametrize("min_overlap", [0.3, 0.0, 0.6, -0.2])
def test_the_sweep_agrees_with_all_pairs_with_ties_and_touching_boxes(min_overlap):
    rng = np.random.default_rng(11)
    n = 300
    x1, y2 = rng.integers(0, 300, n).astype(float), rng.integers(100, 400, n).astype(float)  # many ties
    w, h = rng.integers(1, 30, n).astype(float), rng.integers(10, 90, n).astype(float)
    b = np.c_[x1, y2 - h, x1 + w, y2]
    b[:5] = [[10, 50, 20, 100], [20, 60, 30, 120], [20, 60, 30, 120], [0, 0, 0, 0], [np.nan, 1, 2, 3]]
    ov = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
    ww = np.maximum(b[:, 2] - b[:, 0], 1e-9)
    cover = (b[None, :, 3] > b[:, None, 3]) & (b[None, :, 1] < b[:, None, 3]) & (ov >= min_overlap * ww[:, None])
    np.fill_diagonal(cover, False)
    got = occlusion_reasons(b, None, simple_homography(), min_overlap=min_overlap) & NEARER_BOX
    assert cover.any(axis=1).sum() > 30
    np.testing.assert_array_equal(got != 0, cover.any(axis=1))


def test_estimate_feet_row_by_row():
    """The vectorised estimate equals the rule applied to each flagged row alone (track height, else head)."""
    cam = load_camera(PETS_YAML)
    rng = np.random.default_rng(5)
    g = rng.uniform([-14, -16], [6, 6], (200, 2))
    tall = rng.uniform(1.5, 1.9, 200)
    foot, head = cam.ground_to_image(g), cam.project_points(np.c_[g, tall])
    b = np.c_[head[:, 0] - 10, head[:, 1], head[:, 0] + 10, foot[:, 1]]
    b[::4, 3] = b[::4, 1] + 0.6 * (b[::4, 3] - b[::4, 1])  # legs hidden
    b[::9, 1] = 0.0  # head cut by the frame
    b = np.clip(b, 0, [768, 576, 768, 576])
    th = np.where(rng.random(200) < 0.5, (foot[:, 1] - head[:, 1]) * 1.02, np.nan)
    est = estimate_feet(b, (768, 576), cam, th, height_m=1.75)
    reason = occlusion_reasons(b, (768, 576), cam, th)
    np.testing.assert_array_equal(est.reason, reason)
    assert 20 < est.corrected.sum() < 200
    for i in range(len(b)):
        uc = (b[i, 0] + b[i, 2]) / 2
        if reason[i] == 0 or b[i, 1] <= 2.0:
            expected = [uc, b[i, 3]]
        elif np.isfinite(th[i]):
            expected = [uc, b[i, 1] + th[i]]
        else:
            expected = foot_from_head(cam, [[uc, b[i, 1]]], 1.75)[0]
        np.testing.assert_allclose(est.foot_px[i], expected, rtol=0, atol=1e-9)
        assert est.corrected[i] == (not np.array_equal(expected, [uc, b[i, 3]]))
