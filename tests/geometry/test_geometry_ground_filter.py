"""The constant-velocity ground filter on synthetic trajectories with known noise."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.geometry.ground_filter import GroundEstimator, GroundFilter

from .synthetic_cameras import IMAGE_SIZE, tilted_camera

DT = 1.0 / 7.0


def _simulate(q, sigma, tracks, steps, rng):
    """True states from the exact discretised white-noise-acceleration model, and noisy positions."""
    F = np.eye(4)
    F[0, 2] = F[1, 3] = DT
    Q = np.zeros((4, 4))
    Q[0, 0] = Q[1, 1] = q * DT**3 / 3
    Q[0, 2] = Q[2, 0] = Q[1, 3] = Q[3, 1] = q * DT**2 / 2
    Q[2, 2] = Q[3, 3] = q * DT
    x = np.c_[rng.uniform(0, 20, (tracks, 2)), rng.normal(0, 1.0, (tracks, 2))]
    truth, meas = [], []
    for _ in range(steps):
        truth.append(x.copy())
        meas.append(x[:, :2] + rng.normal(0, sigma, (tracks, 2)))
        x = x @ F.T + rng.multivariate_normal(np.zeros(4), Q, tracks)
    return np.array(truth), np.array(meas)


def _run(q, sigma, tracks=300, steps=80, seed=0):
    rng = np.random.default_rng(seed)
    truth, meas = _simulate(q, sigma, tracks, steps, rng)
    f = GroundFilter(accel_noise_m2_s3=q, init_speed_sigma_m_s=1.0, gate_chi2=1e9)
    ids = np.arange(tracks)
    R = np.broadcast_to(np.eye(2) * sigma**2, (tracks, 2, 2))
    out = [f.update(k * DT, ids, meas[k], R) for k in range(steps)]
    xy = np.array([o[0] for o in out])
    cov = np.array([o[1] for o in out])
    v = np.array([o[2] for o in out])
    return truth, meas, xy, cov, v


def test_nees_is_consistent():
    truth, _, xy, cov, _ = _run(q=0.5, sigma=0.3)
    e = (xy - truth[..., :2])[10:]
    nees = np.einsum("kni,knij,knj->kn", e, np.linalg.inv(cov[10:]), e)
    assert nees.mean() == pytest.approx(2.0, abs=0.1)


def test_filtered_error_is_smaller_by_the_expected_factor():
    truth, meas, xy, cov, _ = _run(q=0.5, sigma=0.3)
    raw = np.sqrt(np.mean(np.sum((meas - truth[..., :2])[20:] ** 2, axis=-1)))
    filt = np.sqrt(np.mean(np.sum((xy - truth[..., :2])[20:] ** 2, axis=-1)))
    expected = np.sqrt(np.mean(np.trace(cov[20:], axis1=-2, axis2=-1)) / (2 * 0.3**2))
    assert filt / raw == pytest.approx(expected, rel=0.05)
    assert expected < 0.8


def test_velocity_converges_to_the_true_velocity():
    truth, _, _, cov, v = _run(q=1e-6, sigma=0.3, tracks=50, steps=100)
    err = np.abs(v[-1] - truth[-1, :, 2:])
    assert err.max() < 0.1
    assert np.sqrt(np.mean(err**2)) < 0.03


def test_births_missed_frames_and_deaths():
    f = GroundFilter(accel_noise_m2_s3=1.0, forget_after_s=1.0)
    R = np.eye(2)[None] * 0.01
    xy, cov, v = f.update(0.0, [7], [[1.0, 2.0]], R)
    np.testing.assert_allclose(xy, [[1.0, 2.0]])
    np.testing.assert_allclose(cov[0], R[0])
    np.testing.assert_allclose(v, [[0.0, 0.0]])
    f.update(0.1, [7], [[1.1, 2.0]], R)
    c1 = f.update(0.2, [7], [[1.2, 2.0]], R)[1][0]
    c2 = f.update(0.3, [7], [[np.nan, np.nan]], R)[1][0]  # missed: predict only
    c3 = f.update(0.4, [7], [[0.0, 0.0]], R, measured=[False])[1][0]
    assert np.trace(c1) < np.trace(c2) < np.trace(c3)
    xy, _, _ = f.update(0.5, [8], [[5.0, 5.0]], R)  # a new id; 7 is unseen since 0.2 s
    assert len(f) == 2
    f.update(1.3, [8], [[5.0, 5.0]], R)
    assert f.ids.tolist() == [8]  # 7 forgotten after 1 s unseen
    xy, cov, _ = f.update(1.4, [7, 9], [[0.0, 0.0], [1.0, 1.0]], R.repeat(2, 0), measured=[False, False])
    assert np.all(np.isnan(xy)) and np.all(np.isnan(cov))


def test_a_jump_restarts_the_track():
    f = GroundFilter(accel_noise_m2_s3=0.1)
    R = np.eye(2)[None] * 0.01
    for k in range(5):
        f.update(k * 0.1, [1], [[0.0, 0.0]], R)
    xy, cov, v = f.update(0.5, [1], [[10.0, 0.0]], R)
    np.testing.assert_allclose(xy, [[10.0, 0.0]])
    np.testing.assert_allclose(v, [[0.0, 0.0]])


def test_errors():
    f = GroundFilter()
    R = np.eye(2)[None].repeat(2, 0)
    with pytest.raises(ValueError, match="distinct"):
        f.update(0.0, [1, 1], np.zeros((2, 2)), R)
    f.update(1.0, [1], [[0.0, 0.0]], R[:1])
    with pytest.raises(ValueError, match="backwards"):
        f.update(0.5, [1], [[0.0, 0.0]], R[:1])
    xy, cov, v = f.update(2.0, [], np.zeros((0, 2)), np.zeros((0, 2, 2)))
    assert xy.shape == (0, 2) and cov.shape == (0, 2, 2)


def test_estimator_off_is_the_plain_projection_and_on_adds_covariances():
    cam = tilted_camera()
    boxes = np.array([[380.0, 100.0, 420.0, 250.0], [100.0, 300.0, 150.0, 450.0]])
    plain = GroundEstimator(cam, [0], filter=False, occlusion_feet=False)
    out = plain.update(0.0, np.array([1, 2]), boxes, np.array([0, 0]))
    foot = np.c_[(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]]
    np.testing.assert_allclose(out["world_xy"], cam.image_to_ground(foot))
    assert out["world_cov"].shape == (2, 2, 2) and not out["foot_corrected"].any()
    est = GroundEstimator(cam, [0])
    for k in range(3):
        out = est.update(k * DT, np.array([1, 2]), boxes, np.array([0, 1]), IMAGE_SIZE)
    assert set(out) == {"world_xy", "world_cov", "foot_corrected", "foot_reason"}
    assert np.all(np.isfinite(out["world_xy"])) and np.all(np.linalg.eigvalsh(out["world_cov"]) > 0)
