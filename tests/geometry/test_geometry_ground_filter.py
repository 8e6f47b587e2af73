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


def test_one_far_measurement_is_an_outlier_two_in_a_row_restart_the_track():
    f = GroundFilter(accel_noise_m2_s3=0.1)  # max_outliers=1
    R = np.eye(2)[None] * 0.01
    for k in range(5):
        f.update(k * 0.1, [1], [[0.0, 0.0]], R)
    # one box merged with a neighbour for a frame: kept out, the track is predicted (still at the origin)
    xy, cov, v = f.update(0.5, [1], [[10.0, 0.0]], R)
    np.testing.assert_allclose(xy, [[0.0, 0.0]], atol=1e-12)
    assert f.outliers.tolist() == [1]
    # back where it was: a normal update, the count starts again
    xy, _, _ = f.update(0.6, [1], [[0.0, 0.0]], R)
    np.testing.assert_allclose(xy, [[0.0, 0.0]], atol=1e-12)
    assert f.outliers.tolist() == [0]
    # far twice in a row: an identity switch, the track starts again at the measurement
    f.update(0.7, [1], [[10.0, 0.0]], R)
    xy, cov, v = f.update(0.8, [1], [[10.0, 0.0]], R)
    np.testing.assert_allclose(xy, [[10.0, 0.0]])
    np.testing.assert_allclose(v, [[0.0, 0.0]])
    np.testing.assert_allclose(cov, R)
    assert f.outliers.tolist() == [0]


def test_without_outlier_frames_a_jump_restarts_at_once():
    f = GroundFilter(accel_noise_m2_s3=0.1, max_outliers=0)
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
    assert set(out) == {"world_xy", "world_cov", "foot_corrected", "foot_reason", "foot_px"}
    # row 1 is not a person (class 1): its box bottom centre; row 0 (150 px tall there) is too tall for a
    # person standing at its bottom, so its foot is the estimate from its head
    assert out["foot_reason"][0] & 16 and out["foot_corrected"][0] and not out["foot_corrected"][1]
    np.testing.assert_allclose(out["foot_px"][1], foot[1])
    assert out["foot_px"][0, 1] < boxes[0, 3]
    assert np.all(np.isfinite(out["world_xy"])) and np.all(np.linalg.eigvalsh(out["world_cov"]) > 0)


class _PerTrackFilter:
    """The filter written per track with 4x4 matrices and np.linalg.inv: the reference for the vectorised one."""

    def __init__(self, q, v0, forget_after_s, gate_chi2, max_outliers):
        self.q, self.v0, self.forget, self.gate, self.max_out = q, v0, forget_after_s, gate_chi2, max_outliers
        self.tracks: dict[int, list] = {}  # id -> [x (4,), P (4, 4), t_seen, consecutive outliers]
        self.t = None

    def _start(self, z, R):
        P = np.zeros((4, 4))
        P[:2, :2], P[2, 2], P[3, 3] = R, self.v0**2, self.v0**2
        return np.r_[z, 0.0, 0.0], P

    def update(self, t_s, ids, z, R, measured):
        if self.t is not None and t_s > self.t:
            dt, q = t_s - self.t, self.q
            F = np.eye(4)
            F[0, 2] = F[1, 3] = dt
            Q = np.kron(np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]]) * q, np.eye(2))
            for tr in self.tracks.values():
                tr[0], tr[1] = F @ tr[0], F @ tr[1] @ F.T + Q
        self.t = t_s
        H = np.eye(2, 4)
        for tid, zi, Ri, m in zip(ids, z, R, measured):
            if not (m and np.all(np.isfinite(zi)) and np.all(np.isfinite(Ri))):
                continue
            out = 0
            if tid in self.tracks:
                x0, P0, _, out = self.tracks[tid]
                S = H @ P0 @ H.T + Ri
                K = P0 @ H.T @ np.linalg.inv(S)
                y = zi - x0[:2]
                IKH = np.eye(4) - K @ H
                x, P = x0 + K @ y, IKH @ P0 @ IKH.T + K @ Ri @ K.T
                if y @ np.linalg.inv(S) @ y > self.gate:
                    out += 1
                    if out <= self.max_out:
                        x, P = x0, P0  # an outlier: kept out
                    else:
                        (x, P), out = self._start(zi, Ri), 0
                else:
                    out = 0
            else:
                x, P = self._start(zi, Ri)
            self.tracks[tid] = [x, P, t_s, out]
        self.tracks = {k: v for k, v in self.tracks.items() if t_s - v[2] <= self.forget}
        nan = np.full(4, np.nan), np.full((4, 4), np.nan), None
        rows = [self.tracks.get(tid, nan) for tid in ids]
        return (
            np.array([r[0][:2] for r in rows]).reshape(-1, 2),
            np.array([r[1][:2, :2] for r in rows]).reshape(-1, 2, 2),
            np.array([r[0][2:] for r in rows]).reshape(-1, 2),
        )


@pytest.mark.parametrize("max_outliers", [0, 1, 2])
def test_vectorised_filter_matches_the_per_track_filter(max_outliers):
    """Births, coasting, missed frames, deaths, outliers, identity switches, unsorted ids, all-measured frames."""
    rng = np.random.default_rng(2)
    fast = GroundFilter(
        accel_noise_m2_s3=0.5, init_speed_sigma_m_s=1.2, forget_after_s=0.45, gate_chi2=20.0, max_outliers=max_outliers
    )
    ref = _PerTrackFilter(0.5, 1.2, 0.45, 20.0, max_outliers)
    n = 60
    pool = rng.permutation(np.arange(100, 100 + n))
    truth = rng.uniform(0, 20, (n, 2))
    for k in range(40):
        truth += rng.normal(0, 0.1, truth.shape)
        if k % 9 == 4:
            truth[rng.random(n) < 0.2] += 6.0  # identity switches
        z_off = np.where(rng.random((n, 1)) < 0.05, 5.0, 0.0)  # one-frame outliers
        if k < 8 or k % 6 == 0:  # every track measured (the in-place path)
            rows = rng.permutation(n)
            meas = np.ones(n, bool)
        else:
            rows = rng.permutation(np.flatnonzero(rng.random(n) > (0.6 if 20 <= k < 26 else 0.1)))
            meas = rng.random(len(rows)) > 0.1
        z = truth[rows] + z_off[rows] + rng.normal(0, 0.2, (len(rows), 2))
        z[rng.random(len(rows)) < 0.05] = np.nan
        R = np.eye(2) * rng.uniform(0.01, 0.1, (len(rows), 1, 1))
        R[:, 0, 1] = R[:, 1, 0] = 0.3 * R[:, 0, 0]
        t_s = k * 0.1 + (0.3 if k >= 30 else 0.0)
        got = fast.update(t_s, pool[rows], z, R, meas)
        want = ref.update(t_s, pool[rows], z, R, meas)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
        assert sorted(ref.tracks) == fast.ids.tolist()
    assert fast.x.shape == (len(fast), 4) and fast.P.shape == (len(fast), 4, 4)
    for tid, (x, P, _, _) in ref.tracks.items():
        k = int(np.searchsorted(fast.ids, tid))
        np.testing.assert_allclose(fast.x[k], x, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(fast.P[k], P, rtol=1e-9, atol=1e-12)
