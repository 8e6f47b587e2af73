"""Tsai (PETS 2009) calibrations: import as a Vigil calibration, or convert to OpenCV pinhole.

The Tsai model maps distorted to undistorted sensor coordinates,
``Xu = Xd (1 + kappa1 rd^2)``; OpenCV maps the other way, ``xd = xu (1 + k1 ru^2 + k2 ru^4 +
k3 ru^6)`` in normalised coordinates. :func:`tsai_to_pinhole` fits ``k1, k2, k3`` to the
inverse of Tsai's term by least squares over the radii the image covers (with 20 % margin);
for PETS View_001 the two models then agree to about 1e-3 px over the frame. The rest is
exact: ``fx = sx f / dpx``, ``fy = f / dpy``, the principal point is ``(cx, cy)``, the
rotation is the same matrix and the translation is converted from mm to metres.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vigil.geometry.camera import PinholeCamera, TsaiCamera

from .intrinsics import Intrinsics

__all__ = ["import_tsai", "tsai_to_intrinsics", "tsai_to_pinhole"]


def import_tsai(path: str | Path) -> TsaiCamera:
    """Read a PETS 2009 ``View_00N.xml`` (raises CalibrationError naming the file and field)."""
    return TsaiCamera.from_pets_xml(path)


def tsai_to_intrinsics(cam: TsaiCamera, margin: float = 1.2, samples: int = 400) -> Intrinsics:
    """OpenCV ``K`` and ``dist = [k1, k2, 0, 0, k3]`` approximating the Tsai camera's lens."""
    p = cam.params
    fx = p.sx * p.focal / p.dpx
    fy = p.focal / p.dpy
    K = np.array([[fx, 0.0, p.cx], [0.0, fy, p.cy], [0.0, 0.0, 1.0]])
    kn = p.kappa1 * p.focal**2  # kappa1 in normalised (distorted) coordinates
    corners = np.array([[0, 0], [p.width, 0], [0, p.height], [p.width, p.height]], dtype=np.float64)
    rd_max = margin * float(np.max(np.hypot((corners[:, 0] - p.cx) / fx, (corners[:, 1] - p.cy) / fy)))
    rd = np.linspace(0.0, rd_max, samples)[1:]
    ru = rd * (1.0 + kn * rd**2)
    ok = ru > 0
    A = np.c_[ru[ok] ** 2, ru[ok] ** 4, ru[ok] ** 6]
    k, *_ = np.linalg.lstsq(A, rd[ok] / ru[ok] - 1.0, rcond=None)
    dist = np.array([k[0], k[1], 0.0, 0.0, k[2]])
    return Intrinsics(K, dist, (p.width, p.height), source=f"Tsai model (kappa1={p.kappa1:g}/mm^2) as OpenCV k1,k2,k3")


def tsai_to_pinhole(cam: TsaiCamera) -> PinholeCamera:
    """The Tsai camera as an OpenCV :class:`PinholeCamera` (world metres, ground ``Z = 0``)."""

    intr = tsai_to_intrinsics(cam)
    rvec = cv2.Rodrigues(cam.R)[0].reshape(-1)
    return PinholeCamera(intr.K, intr.dist, rvec, cam.T / 1000.0, image_size=intr.image_size)
