"""Camera models: Tsai against independent derivations, homography exactness, degeneracies."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from vigil.geometry.calibration_io import load_camera
from vigil.geometry.camera import (
    CalibrationError,
    HomographyCamera,
    PinholeCamera,
    TsaiCamera,
    TsaiParameters,
)

REPO = Path(__file__).resolve().parents[2]
PETS_YAML = REPO / "deploy" / "examples" / "pets2009-view001.calib.yaml"


@pytest.fixture(scope="module")
def pets() -> TsaiCamera:
    cam = load_camera(PETS_YAML)
    assert isinstance(cam, TsaiCamera)
    return cam


# ----------------------------------------------------------------------------- Tsai by hand
def _rotation_elements(rx: float, ry: float, rz: float) -> list[float]:
    """r1..r9 written out element by element (Tsai / Willson), not as a matrix product."""
    sa, ca = math.sin(rx), math.cos(rx)
    sb, cb = math.sin(ry), math.cos(ry)
    sg, cg = math.sin(rz), math.cos(rz)
    return [
        cb * cg,
        cg * sa * sb - ca * sg,
        sa * sg + ca * cg * sb,
        cb * sg,
        sa * sb * sg + ca * cg,
        ca * sb * sg - cg * sa,
        -sb,
        cb * sa,
        ca * cb,
    ]


def _tsai_by_hand(p: TsaiParameters, X: float, Y: float, Z: float) -> tuple[float, float]:
    """World mm -> pixel with scalar math; distortion solved by bisection (not Newton)."""
    r1, r2, r3, r4, r5, r6, r7, r8, r9 = _rotation_elements(p.rx, p.ry, p.rz)
    xc = r1 * X + r2 * Y + r3 * Z + p.tx
    yc = r4 * X + r5 * Y + r6 * Z + p.ty
    zc = r7 * X + r8 * Y + r9 * Z + p.tz
    xu, yu = p.focal * xc / zc, p.focal * yc / zc
    ru = math.hypot(xu, yu)
    lo, hi = 0.0, ru  # kappa1 > 0: rd (1 + k rd^2) = ru has its root in [0, ru]
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid * (1 + p.kappa1 * mid * mid) < ru:
            lo = mid
        else:
            hi = mid
    rd = (lo + hi) / 2
    xd, yd = xu * rd / ru, yu * rd / ru
    return p.sx * xd / p.dpx + p.cx, yd / p.dpy + p.cy


@pytest.mark.parametrize("ground_m", [(0.0, 0.0), (5.0, -3.0), (-10.0, -10.0), (-4.2, -7.4), (3.3, 6.1)])
def test_tsai_forward_matches_hand_derivation(pets: TsaiCamera, ground_m):
    expected = _tsai_by_hand(pets.params, ground_m[0] * 1000, ground_m[1] * 1000, 0.0)
    got = pets.ground_to_image(np.array([ground_m]))[0]
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_tsai_forward_3d_matches_hand_derivation(pets: TsaiCamera):
    pts = np.array([[-4212.4, -7432.0, 1750.0], [0.0, 0.0, 1000.0], [2000.0, -5000.0, 300.0]])
    got = pets.world_to_image(pts)
    for row, (X, Y, Z) in zip(got, pts):
        np.testing.assert_allclose(row, _tsai_by_hand(pets.params, X, Y, Z), atol=1e-7)


def test_tsai_without_distortion_equals_3x4_projection(pets: TsaiCamera):
    p = replace(pets.params, kappa1=0.0)
    cam = TsaiCamera(p)
    R = np.array(_rotation_elements(p.rx, p.ry, p.rz)).reshape(3, 3)
    K = np.array([[p.sx * p.focal / p.dpx, 0, p.cx], [0, p.focal / p.dpy, p.cy], [0, 0, 1]])
    P = K @ np.c_[R, [p.tx, p.ty, p.tz]]  # 3x4, world mm
    # Ground plane Z = 0: the 3x4 matrix loses its third column and becomes a homography.
    G = np.array([[x, y] for x in (-12.0, -6.0, 0.0, 5.0) for y in (-14.0, -7.0, 0.0, 6.0)])
    h = np.c_[G * 1000, np.zeros(len(G)), np.ones(len(G))] @ P.T
    expected = h[:, :2] / h[:, 2:]
    np.testing.assert_allclose(cam.ground_to_image(G), expected, atol=1e-8)
    np.testing.assert_allclose(cam.image_to_ground(expected), G, atol=1e-9)
    # Same camera, OpenCV's implementation (PinholeCamera, metres): agrees both ways.
    rvec = cv2.Rodrigues(R)[0].ravel()
    pin = PinholeCamera(K, None, rvec, np.array([p.tx, p.ty, p.tz]) / 1000.0)
    np.testing.assert_allclose(pin.ground_to_image(G), expected, atol=1e-6)
    np.testing.assert_allclose(pin.image_to_ground(expected), G, atol=1e-8)


def test_tsai_distortion_equation_holds(pets: TsaiCamera):
    """Xu = Xd (1 + kappa1 r^2): check the solver's output against the defining equation."""
    G = np.array([[-13.0, -15.0], [7.0, 7.0], [0.0, 0.0]])
    px = pets.ground_to_image(G)
    d = pets.pixel_to_distorted(px)
    r2 = (d**2).sum(1)
    u = d * (1 + pets.params.kappa1 * r2)[:, None]
    Pc = np.c_[G * 1000, np.zeros(3)] @ pets.R.T + pets.T
    np.testing.assert_allclose(u, pets.params.focal * Pc[:, :2] / Pc[:, 2:], atol=1e-12)


def test_tsai_round_trip_whole_image(pets: TsaiCamera):
    u, v = np.meshgrid(np.arange(0, 768, 7.5), np.arange(0, 576, 7.5))
    px = np.c_[u.ravel(), v.ravel()]
    g = pets.image_to_ground(px)
    assert np.all(np.isfinite(g)), "the whole View_001 frame shows ground"
    np.testing.assert_allclose(pets.ground_to_image(g), px, atol=1e-6)
    G = np.random.default_rng(0).uniform([-14, -16], [8, 8], size=(500, 2))
    np.testing.assert_allclose(pets.image_to_ground(pets.ground_to_image(G)), G, atol=1e-9)


def test_tsai_horizon_and_behind_camera(pets: TsaiCamera):
    # Pixels far above the frame look at the sky; non-finite input stays NaN.
    out = pets.image_to_ground(np.array([[384.0, -3000.0], [np.nan, 10.0], [384.0, 500.0], [np.inf, 0.0]]))
    assert np.isnan(out[0]).all() and np.isnan(out[1]).all() and np.isnan(out[3]).all()
    assert np.isfinite(out[2]).all()
    # A ground point 10 m behind the camera (opposite its optical axis) has no image.
    axis = pets.R[2, :2] / np.linalg.norm(pets.R[2, :2])
    behind = pets.centre_m[:2] - 10 * axis
    front = pets.centre_m[:2] + 30 * axis
    px = pets.ground_to_image(np.array([behind, front]))
    assert np.isnan(px[0]).all()
    assert np.isfinite(px[1]).all()
    assert pets.image_to_ground(np.zeros((0, 2))).shape == (0, 2)
    assert pets.centre_m[2] == pytest.approx(7.0657, abs=1e-3)


def test_tsai_negative_kappa_outside_model_is_nan(pets: TsaiCamera):
    cam = TsaiCamera(replace(pets.params, kappa1=-0.06))  # rd_max = 1/sqrt(0.18) = 2.36 mm
    far = cam.pixel_to_distorted(np.array([[767.0, 575.0]]))
    assert np.hypot(*far[0]) > 1 / math.sqrt(0.18)
    assert np.isnan(cam.image_to_ground(np.array([[767.0, 575.0]]))).all()
    px = np.array([[384.0, 400.0], [300.0, 300.0]])
    np.testing.assert_allclose(cam.ground_to_image(cam.image_to_ground(px)), px, atol=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"focal": 0.0}, "focal: must be > 0"),
        ({"kappa1": float("nan")}, "kappa1: must be finite"),
        ({"dpx": -1.0}, "dpx: must be > 0"),
        ({"sx": float("inf")}, "sx: must be finite"),
        ({"width": 0}, "image_size"),
        ({"tx": 0.0, "ty": 0.0, "tz": 0.0}, "lies on the ground plane"),
    ],
)
def test_tsai_rejects_bad_parameters(pets: TsaiCamera, change, message):
    with pytest.raises(CalibrationError, match=message):
        TsaiCamera(replace(pets.params, **change))


# ----------------------------------------------------------------------------- homography
H_TRUE = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.001, 1.0]])  # g = (u, v) / (1 + v/1000)


def test_homography_from_points_exact():
    img = [(0, 0), (100, 0), (0, 1000), (100, 1000)]
    gnd = [(0, 0), (100, 0), (0, 500), (50, 500)]
    cam = HomographyCamera.from_points(img, gnd)
    np.testing.assert_allclose(cam.H / cam.H[2, 2], H_TRUE, atol=1e-12)
    assert np.max(cam.fit_residuals_m) < 1e-9
    got = cam.image_to_ground(np.array([[50.0, 500.0], [200.0, 3000.0], [10.0, -500.0]]))
    np.testing.assert_allclose(got, [[100 / 3, 1000 / 3], [50.0, 750.0], [20.0, -1000.0]], atol=1e-9)
    np.testing.assert_allclose(
        cam.ground_to_image(np.array([[50.0, 750.0], [0.0, 0.0]])), [[200.0, 3000.0], [0.0, 0.0]], atol=1e-8
    )


def test_homography_horizon_and_sign():
    cam = HomographyCamera(H_TRUE)
    out = cam.image_to_ground(np.array([[0.0, -1000.0], [0.0, -1500.0], [0.0, -999.0], [np.nan, 0.0]]))
    assert np.isnan(out[0]).all() and np.isnan(out[1]).all() and np.isnan(out[3]).all()
    np.testing.assert_allclose(out[2], [0.0, -999000.0], rtol=1e-9)
    # Same matrix with the opposite sign, fixed by a pixel known to be on the ground.
    flipped = HomographyCamera(-H_TRUE, ground_pixel=(50, 900))
    np.testing.assert_allclose(flipped.image_to_ground(np.array([[50.0, 500.0]])), [[100 / 3, 1000 / 3]], atol=1e-9)
    # Ground y -> 1000 as v -> infinity; ground points beyond it are behind the camera.
    assert np.isnan(cam.ground_to_image(np.array([[0.0, 2000.0], [5.0, 1000.0]]))).all()
    np.testing.assert_allclose(cam.ground_to_image(np.array([[0.0, -2000.0]])), [[0.0, -2000 / 3]], atol=1e-9)


def _looking_down(tilt: float, centre, pan: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(rvec, tvec) of a level camera at ``centre`` facing +y (turned by ``pan``), pitched down by ``tilt``."""
    c, s = math.cos(tilt), math.sin(tilt)
    R = np.array([[1.0, 0, 0], [0, -s, -c], [0, c, -s]])  # rows: camera x (right), y (down), z (forward)
    cp, sp = math.cos(pan), math.sin(pan)
    R = R @ np.array([[cp, sp, 0], [-sp, cp, 0], [0, 0, 1]])
    return cv2.Rodrigues(R)[0].ravel(), -R @ np.asarray(centre, float)


def test_homography_overdetermined_matches_pinhole():
    K = np.array([[800.0, 0, 640], [0, 800, 360], [0, 0, 1]])
    rvec, tvec = _looking_down(0.5, [2.0, -8.0, 6.0], pan=0.1)
    pin = PinholeCamera(K, None, rvec, tvec)
    G = np.array([[x, y] for x in (-4.0, 0.0, 4.0, 8.0) for y in (0.0, 5.0, 10.0)])
    px = pin.ground_to_image(G)
    assert np.all(np.isfinite(px))
    cam = HomographyCamera.from_points(px, G)
    probe = np.array([[640.0, 700.0], [100.0, 500.0], [1200.0, 600.0]])
    np.testing.assert_allclose(cam.image_to_ground(probe), pin.image_to_ground(probe), atol=1e-7)


@pytest.mark.parametrize(
    "img, gnd, message",
    [
        ([(0, 0), (1, 0), (0, 1)], [(0, 0), (1, 0), (0, 1)], "at least 4"),
        ([(0, 0), (1, 0), (0, 1), (1, 1)], [(0, 0), (1, 0), (0, 1)], "4 image points but 3 ground"),
        ([(0, 0), (1, 0), (0, 1), (0, 0)], [(0, 0), (1, 0), (0, 1), (1, 1)], "image points 0 and 3 are the same"),
        (
            [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)],
            [(0, 0), (1, 0), (0, 1), (1, 1), (2, 2)],
            "all image points are collinear",
        ),
        ([(0, 0), (1, 0), (2, 0), (0, 1)], [(0, 0), (1, 0), (0, 1), (1, 1)], r"image points \[0, 1, 2\] are collinear"),
        (
            [(0, 0), (1, 0), (0, 1), (1, 1)],
            [(0, 0), (1, 0), (0, 1), (1, float("nan"))],
            "ground points \\[3\\] are not finite",
        ),
        # A "bow-tie": consistent only with a homography that folds the plane through the horizon.
        ([(0, 0), (1, 0), (0, 1), (1, 1)], [(0, 0), (1, 0), (1, 1), (0, 1)], "both sides of the horizon|degenerate"),
    ],
)
def test_homography_rejects_degenerate_points(img, gnd, message):
    with pytest.raises(CalibrationError, match=message):
        HomographyCamera.from_points(img, gnd)


@pytest.mark.parametrize(
    "H, message",
    [
        (np.zeros((3, 3)), "singular"),
        ([[1, 2, 3], [2, 4, 6], [0, 0, 1]], "singular"),
        ([[1, 0, 0], [0, 1, 0], [0, 0, float("nan")]], "non-finite"),
        (np.eye(2), r"expected shape \(3, 3\)"),
    ],
)
def test_homography_rejects_bad_matrix(H, message):
    with pytest.raises(CalibrationError, match=message):
        HomographyCamera(H)


# ----------------------------------------------------------------------------- pinhole
def _pinhole(dist=None) -> PinholeCamera:
    K = np.array([[900.0, 0, 640], [0, 900, 360], [0, 0, 1]])
    rvec, tvec = _looking_down(0.3, [1.0, -10.0, 5.0], pan=-0.2)
    return PinholeCamera(K, dist, rvec, tvec, image_size=(1280, 720))


def test_pinhole_round_trip_with_distortion():
    cam = _pinhole([-0.2, 0.05, 0.001, -0.001, 0.0])
    u, v = np.meshgrid(np.arange(100, 1200, 50.0), np.arange(300, 700, 50.0))
    px = np.c_[u.ravel(), v.ravel()]
    g = cam.image_to_ground(px)
    ok = np.all(np.isfinite(g), axis=1)
    assert ok.sum() > 0.8 * len(px)
    np.testing.assert_allclose(cam.ground_to_image(g[ok]), px[ok], atol=1e-6)


def test_pinhole_horizon_and_behind():
    cam = _pinhole()
    # Pitched down by 0.3 rad: the horizon is at v = 360 - 900 tan(0.3) = 81.4 px.
    horizon_v = 360 - 900 * math.tan(0.3)
    out = cam.image_to_ground(np.array([[640.0, horizon_v - 1], [640.0, horizon_v + 1], [640.0, 700.0], [np.nan, 1.0]]))
    assert np.isnan(out[0]).all() and np.isnan(out[3]).all()
    assert np.isfinite(out[1]).all() and np.isfinite(out[2]).all()
    assert np.isnan(cam.ground_to_image(np.array([[1.0, -20.0]]))).all()  # behind the camera
    # Exact ground point at the principal ray.
    axis_world = cam.R[2]
    t = -cam.centre[2] / axis_world[2]
    hit = cam.centre + t * axis_world
    np.testing.assert_allclose(cam.ground_to_image(hit[None, :2]), [[640.0, 360.0]], atol=1e-8)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"K": [[0, 0, 1], [0, 1, 1], [0, 0, 1]]}, "focal lengths"),
        ({"K": [[1, 0, 1], [0, 1, 1], [0, 0, 2]]}, r"expected \[\[fx"),
        ({"dist": [0.1, 0.2, 0.3]}, "dist_coeffs"),
        ({"dist": [0.1, np.nan, 0, 0]}, "dist_coeffs: contains non-finite"),
        ({"rvec": [0, 0, np.inf]}, "rvec"),
        ({"tvec": [0, 0, 0]}, "lies on the ground plane"),
    ],
)
def test_pinhole_rejects_bad_parameters(kwargs, message):
    base = {
        "K": np.array([[900.0, 0, 640], [0, 900, 360], [0, 0, 1]]),
        "dist": None,
        "rvec": [-2.0, 0, 0],
        "tvec": [0, 0, 5.0],
    }
    base.update(kwargs)
    with pytest.raises(CalibrationError, match=message):
        PinholeCamera(base["K"], base["dist"], base["rvec"], base["tvec"])


def test_project_detections_adds_world_xy(pets: TsaiCamera):
    from vigil.detectors.detections import Detections

    dets = Detections(
        xyxy=np.array([[499.2, 157.7, 530.2, 232.9], [10, 10, 20, 30]], np.float32),
        confidence=np.array([0.9, 0.8]),
        class_id=np.array([0, 0]),
    )
    out = pets.project_detections(dets)
    assert "world_xy" not in dets.data
    assert out.data["world_xy"].shape == (2, 2) and out.data["world_xy"].dtype == np.float64
    np.testing.assert_allclose(out.data["world_xy"], pets.image_to_ground(dets.foot_points))
    assert len(pets.project_detections(Detections.empty())) == 0
