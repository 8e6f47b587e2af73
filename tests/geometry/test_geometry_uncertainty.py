"""Pixel -> ground uncertainty: Jacobians derived by hand, J S J^T, pair distances with sigma."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from vigil.geometry.calibration_io import load_camera
from vigil.geometry.camera import CameraModel
from vigil.geometry.uncertainty import (
    ground_and_covariance,
    ground_covariance,
    ground_jacobian,
    pair_distance_with_sigma,
    prob_distance_below,
)

from .synthetic_cameras import (
    F_PX,
    Numeric,
    down_camera,
    simple_homography,
    simple_homography_jacobian,
    tilted_camera,
)

PETS_YAML = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "pets2009-view001.calib.yaml"
UV = np.array([[10.0, 20.0], [400.0, 300.0], [700.0, 550.0], [0.0, 0.0], [123.4, 456.7]])


def test_homography_jacobian_is_the_hand_derivation():
    J = ground_jacobian(simple_homography(), UV)
    assert J.shape == (len(UV), 2, 2)
    np.testing.assert_allclose(J, simple_homography_jacobian(UV), rtol=0, atol=1e-12)


def test_central_differences_match_the_analytic_homography_jacobian():
    cam = simple_homography()
    np.testing.assert_allclose(ground_jacobian(Numeric(cam), UV), ground_jacobian(cam, UV), rtol=0, atol=1e-6)


def test_pinhole_looking_down_has_a_constant_jacobian():
    h = 10.0
    J = ground_jacobian(down_camera(h), UV)
    expected = np.array([[h / F_PX, 0.0], [0.0, -h / F_PX]])
    np.testing.assert_allclose(J, np.broadcast_to(expected, J.shape), rtol=0, atol=1e-9)


def test_tsai_jacobian_is_the_local_linearisation():
    cam = load_camera(PETS_YAML)
    uv = np.array([[100.0, 300.0], [400.0, 500.0], [650.0, 250.0]])
    J = ground_jacobian(cam, uv)
    d = np.array([0.3, -0.2])
    moved = cam.image_to_ground(uv + d) - cam.image_to_ground(uv)
    np.testing.assert_allclose(np.einsum("nij,j->ni", J, d), moved, rtol=1e-3, atol=1e-6)


def test_far_pixels_weigh_less_than_near_ones():
    cam = tilted_camera()
    cov = ground_covariance(cam, [[400.0, 550.0], [400.0, 200.0]], 1.0)
    assert np.trace(cov[1]) > 10 * np.trace(cov[0])


def test_covariance_is_j_s_jt():
    h = 10.0
    cam = down_camera(h)
    iso = ground_covariance(cam, UV[:2], np.array([2.0, 3.0]))
    np.testing.assert_allclose(iso[0], np.eye(2) * (2.0 * h / F_PX) ** 2, atol=1e-12)
    np.testing.assert_allclose(iso[1], np.eye(2) * (3.0 * h / F_PX) ** 2, atol=1e-12)
    axis = ground_covariance(cam, UV[:1], np.array([[1.0, 4.0]]))
    np.testing.assert_allclose(axis[0], np.diag([(h / F_PX) ** 2, (4.0 * h / F_PX) ** 2]), atol=1e-12)
    hom = simple_homography()
    J = simple_homography_jacobian(UV)
    np.testing.assert_allclose(ground_covariance(hom, UV, 0.5), 0.25 * J @ np.swapaxes(J, 1, 2), atol=1e-14)


def test_covariance_agrees_with_monte_carlo():
    cam = tilted_camera()
    uv = np.array([[300.0, 250.0]])
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.5, (200_000, 2))
    g = cam.image_to_ground(uv + noise)
    emp = np.cov(g.T)
    np.testing.assert_allclose(ground_covariance(cam, uv, 0.5)[0], emp, rtol=0.03)


def test_covariance_shape_errors_and_empty():
    cam = down_camera()
    assert ground_covariance(cam, np.zeros((0, 2)), 1.0).shape == (0, 2, 2)
    with pytest.raises(ValueError, match="sigma_px"):
        ground_covariance(cam, UV, np.ones(2))
    with pytest.raises(ValueError, match="uv"):
        ground_jacobian(cam, np.zeros((3, 3)))


def test_above_the_horizon_is_nan():
    class Half(CameraModel):  # numeric path, ground only below v = 100
        def image_to_ground(self, p):
            p = np.asarray(p, float).reshape(-1, 2)
            out = p / 100.0
            out[p[:, 1] < 100] = np.nan
            return out

        def ground_to_image(self, g):  # pragma: no cover
            raise NotImplementedError

    J = ground_jacobian(Half(), [[0.0, 50.0], [0.0, 200.0]])
    assert np.all(np.isnan(J[0])) and np.allclose(J[1], np.eye(2) / 100.0)


def test_pair_distance_with_sigma_first_order():
    a = np.array([[0.0, 0.0], [1.0, 1.0]])
    b = np.array([[3.0, 4.0], [1.0, 1.0]])
    ca = np.array([np.diag([0.01, 0.0]), np.diag([0.04, 0.01])])
    cb = np.array([np.diag([0.0, 0.04]), np.diag([0.0, 0.01])])
    d, s = pair_distance_with_sigma(a, ca, b, cb)
    np.testing.assert_allclose(d, [5.0, 0.0])
    # e = (-0.6, -0.8): 0.36 * 0.01 + 0.64 * 0.04; at d = 0 the largest eigenvalue of the sum
    np.testing.assert_allclose(s, [math.sqrt(0.0292), math.sqrt(0.04)])


def test_pair_sigma_agrees_with_monte_carlo():
    rng = np.random.default_rng(2)
    a, b = np.array([2.0, 1.0]), np.array([3.5, 2.0])
    ca = np.array([[0.02, 0.005], [0.005, 0.01]])
    cb = np.array([[0.03, -0.01], [-0.01, 0.05]])
    pa = rng.multivariate_normal(a, ca, 200_000)
    pb = rng.multivariate_normal(b, cb, 200_000)
    d, s = pair_distance_with_sigma(a[None], ca[None], b[None], cb[None])
    np.testing.assert_allclose(s[0], np.linalg.norm(pa - pb, axis=1).std(), rtol=0.03)


def test_probability_below_threshold():
    p = prob_distance_below([1.0, 1.0, 0.5, 1.5, np.nan], [0.5, 0.5, 0.0, 0.0, 1.0], 1.0)
    np.testing.assert_allclose(p[:4], [0.5, norm.cdf(0.0), 1.0, 0.0])
    np.testing.assert_allclose(prob_distance_below([1.0], [0.5], 2.0), [norm.cdf(2.0)])
    assert np.isnan(p[4])


@pytest.mark.parametrize("name", ["tsai", "pinhole", "homography", "numeric"])
def test_ground_and_covariance_is_one_batch_of_the_two(name):
    cam = {
        "tsai": lambda: load_camera(PETS_YAML),
        "pinhole": tilted_camera,
        "homography": simple_homography,
        "numeric": lambda: Numeric(tilted_camera()),
    }[name]()
    uv = np.r_[UV, [[400.0, -5000.0], [np.nan, 3.0]]]  # above the horizon, not finite
    for sigma in (2.0, np.linspace(1, 3, len(uv)), np.c_[np.linspace(1, 3, len(uv)), np.full(len(uv), 0.5)]):
        xy, cov = ground_and_covariance(cam, uv, sigma)
        np.testing.assert_allclose(xy, cam.image_to_ground(uv), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(cov, ground_covariance(cam, uv, sigma), rtol=1e-9, atol=1e-15)
        assert np.isnan(xy[-2:]).all() and np.isnan(cov[-2:]).all() and np.isfinite(cov[:-2]).all()
    xy, cov = ground_and_covariance(cam, np.zeros((0, 2)), 2.0)
    assert xy.shape == (0, 2) and cov.shape == (0, 2, 2)
