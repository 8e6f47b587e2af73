"""Synthetic cameras with hand-derived geometry, shared by the uncertainty, feet and filter tests."""

from __future__ import annotations

import math

import cv2
import numpy as np

from vigil.geometry.camera import CameraModel, HomographyCamera, PinholeCamera

F_PX, CX, CY = 800.0, 400.0, 300.0
K = np.array([[F_PX, 0.0, CX], [0.0, F_PX, CY], [0.0, 0.0, 1.0]])
IMAGE_SIZE = (800, 600)


def down_camera(height_m: float = 10.0) -> PinholeCamera:
    """Looking straight down from ``(0, 0, height_m)``: ``u = f x / h + cx``, ``v = -f y / h + cy``,
    so ``d(x, y) / d(u, v) = [[h / f, 0], [0, -h / f]]`` everywhere."""
    return PinholeCamera(K, None, [math.pi, 0.0, 0.0], [0.0, 0.0, height_m], image_size=IMAGE_SIZE)


def tilted_camera(height_m: float = 6.0, pitch_deg: float = 30.0, dist=None) -> PinholeCamera:
    """At ``(0, -10, height_m)`` looking along +y, ``pitch_deg`` below the horizon."""
    s, c = math.sin(math.radians(pitch_deg)), math.cos(math.radians(pitch_deg))
    R = np.array([[1.0, 0.0, 0.0], [0.0, -s, -c], [0.0, c, -s]])  # rows: camera x, y (down), z (forward)
    centre = np.array([0.0, -10.0, height_m])
    rvec = cv2.Rodrigues(R)[0].ravel()
    return PinholeCamera(K, dist, rvec, -R @ centre, image_size=IMAGE_SIZE)


#: x = u / w, y = v / w, w = 1 + 0.001 v: dx/du = 1/w, dx/dv = -0.001 u / w^2, dy/du = 0, dy/dv = 1 / w^2
H_SIMPLE = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.001, 1.0]])


def simple_homography_jacobian(uv: np.ndarray) -> np.ndarray:
    u, v = uv[:, 0], uv[:, 1]
    w = 1.0 + 0.001 * v
    J = np.zeros((len(uv), 2, 2))
    J[:, 0, 0] = 1.0 / w
    J[:, 0, 1] = -0.001 * u / w**2
    J[:, 1, 1] = 1.0 / w**2
    return J


class Numeric(CameraModel):
    """Hides a model's type so that :func:`ground_jacobian` takes its central-difference path."""

    def __init__(self, inner: CameraModel) -> None:
        self.inner = inner
        self.image_size = inner.image_size

    def image_to_ground(self, points_px):
        return self.inner.image_to_ground(points_px)

    def ground_to_image(self, points_m):
        return self.inner.ground_to_image(points_m)


def simple_homography() -> HomographyCamera:
    return HomographyCamera(H_SIMPLE, image_size=IMAGE_SIZE)
