"""Uncertainty of ground positions and distances, propagated from pixels to metres (first order).

A foot point measured with pixel covariance ``S`` (2x2, px^2) lands on the ground with covariance
``J S J^T`` (m^2), where ``J = d(x, y) / d(u, v)`` (metres per pixel) is the Jacobian of the
camera's image -> ground mapping at that pixel. Far people (small pixels, many metres each) get
large covariances; near ones small. From two such positions, the distance between them gets a
first-order standard deviation, and a decision "closer than ``threshold_m``" a probability.

- :func:`ground_jacobian`: analytic for :class:`~vigil.geometry.camera.HomographyCamera`; central
  differences with a step of :data:`JACOBIAN_STEP_PX` pixels for every other model (Tsai, pinhole:
  their mapping is smooth at pixel scale, and a 0.01 px step keeps the truncation error, of order
  ``step^2``, and the rounding error, of order ``eps / step``, both far below 1e-6 m/px);
- :func:`ground_covariance`: ``J S J^T`` for per-row isotropic ``sigma_px (N,)`` or per-axis
  ``(N, 2)`` pixel standard deviations; :func:`ground_and_covariance`: the ground points too, from
  the same batched projection (the per-frame path of the ground stage);
- :func:`pair_distance_with_sigma` and :func:`prob_distance_below`: vectorised over pairs.

All functions take and return ``float64`` arrays; rows whose pixel has no ground position are NaN.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from .camera import CameraModel, HomographyCamera

__all__ = [
    "JACOBIAN_STEP_PX",
    "ground_and_covariance",
    "ground_covariance",
    "ground_jacobian",
    "pair_distance_with_sigma",
    "prob_distance_below",
]

#: Central-difference step, pixels, for models without an analytic Jacobian.
JACOBIAN_STEP_PX = 0.01
_OFFSETS = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # (4, 2) central differences, steps
_OFFSETS_0 = np.concatenate([np.zeros((1, 2)), _OFFSETS])  # (5, 2) and the point itself


def _uv(uv: np.ndarray) -> np.ndarray:
    arr = np.asarray(uv, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2))
    arr = arr.reshape(-1, 2) if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"uv: expected shape (N, 2), got {arr.shape}")
    return arr


def homography_jacobian(H: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Analytic Jacobian of ``(x, y) = (H p)[:2] / (H p)[2]``, ``p = (u, v, 1)``: ``(N, 2, 2)``.

    With ``q = H p`` and ``w = q[2]``: ``dx_i / du_j = (H[i, j] - x_i H[2, j]) / w``.
    """
    p = _uv(uv)
    q = p @ H[:, :2].T + H[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = q[:, :2] / q[:, 2:3]
        J = (H[None, :2, :2] - xy[:, :, None] * H[None, 2:3, :2]) / q[:, 2, None, None]
    return J


def ground_jacobian(camera: CameraModel, uv: np.ndarray, step_px: float = JACOBIAN_STEP_PX) -> np.ndarray:
    """``(N, 2, 2)`` metres per pixel: ``J[n, i, j] = d ground_i / d pixel_j`` at ``uv[n]`` (pixels).

    Analytic for a :class:`HomographyCamera`; otherwise central differences of
    ``camera.image_to_ground`` with step ``step_px`` pixels. NaN where undefined (above the horizon).
    """
    return _ground_and_jacobian(camera, _uv(uv), step_px, with_ground=False)[1]


def _ground_and_jacobian(
    camera: CameraModel, p: np.ndarray, step_px: float = JACOBIAN_STEP_PX, with_ground: bool = True
) -> tuple[np.ndarray | None, np.ndarray]:
    """Ground points ``(N, 2)`` metres (``None`` unless ``with_ground``) and :func:`ground_jacobian` ``(N, 2, 2)``
    m/px at pixels ``p (N, 2)``, from one batched ``camera.image_to_ground`` call (of ``5 N`` points: each
    pixel and its four central-difference neighbours; ``N`` for a :class:`HomographyCamera`)."""
    if isinstance(camera, HomographyCamera):
        g = camera.image_to_ground(p)
        J = homography_jacobian(camera.H, p)
        J[~np.all(np.isfinite(g), axis=1)] = np.nan
        return (g if with_ground else None), J
    n = len(p)
    if n == 0:
        return (np.zeros((0, 2)) if with_ground else None), np.zeros((0, 2, 2))
    offsets = (_OFFSETS_0 if with_ground else _OFFSETS) * step_px
    pts = (p[:, None, :] + offsets[None, :, :]).reshape(-1, 2)
    g = camera.image_to_ground(pts).reshape(n, len(offsets), 2)
    d = g[:, 1:] if with_ground else g
    J = np.empty((n, 2, 2))
    J[:, :, 0] = (d[:, 0] - d[:, 1]) / (2.0 * step_px)
    J[:, :, 1] = (d[:, 2] - d[:, 3]) / (2.0 * step_px)
    return (np.ascontiguousarray(g[:, 0]) if with_ground else None), J


def ground_covariance(camera: CameraModel, uv: np.ndarray, sigma_px: np.ndarray | float) -> np.ndarray:
    """``(N, 2, 2)`` m^2: ground covariance ``J S J^T`` of foot pixels ``uv (N, 2)``.

    ``sigma_px``: pixel standard deviation, a scalar, ``(N,)`` (isotropic) or ``(N, 2)`` (per axis
    ``u``, ``v``; independent), pixels.
    """
    p = _uv(uv)
    s = _sigma_per_axis(sigma_px, len(p))
    return _jsjt(ground_jacobian(camera, p), s)


def ground_and_covariance(
    camera: CameraModel, uv: np.ndarray, sigma_px: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """``camera.image_to_ground(uv)`` ``(N, 2)`` metres and :func:`ground_covariance` ``(N, 2, 2)`` m^2 of foot
    pixels ``uv (N, 2)`` with standard deviations ``sigma_px`` (as there), from one batched projection."""
    p = _uv(uv)
    s = _sigma_per_axis(sigma_px, len(p))
    g, J = _ground_and_jacobian(camera, p)
    return g, _jsjt(J, s)


def _sigma_per_axis(sigma_px: np.ndarray | float, n: int) -> np.ndarray:
    """``(N, 2)`` pixels from a scalar, ``(N,)`` or ``(N, 2)`` standard deviation."""
    s = np.asarray(sigma_px, dtype=np.float64)
    if s.ndim == 0:
        return np.full((n, 2), float(s))
    if s.ndim == 1:
        if s.shape[0] != n:
            raise ValueError(f"sigma_px: expected shape ({n},) or ({n}, 2), got {s.shape}")
        return np.repeat(s[:, None], 2, axis=1)
    if s.shape != (n, 2):
        raise ValueError(f"sigma_px: expected shape ({n},) or ({n}, 2), got {s.shape}")
    return s


def _jsjt(J: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``(N, 2, 2)``: ``J diag(s^2) J^T`` for ``J (N, 2, 2)`` and ``s (N, 2)``, written out (no stacked matmul)."""
    Js = J * (s * s)[:, None, :]  # J @ diag(s^2)
    return Js[:, :, None, 0] * J[:, None, :, 0] + Js[:, :, None, 1] * J[:, None, :, 1]


def pair_distance_with_sigma(
    xy_a: np.ndarray, cov_a: np.ndarray, xy_b: np.ndarray, cov_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distances ``d (M,)`` metres between ``xy_a[m]`` and ``xy_b[m]`` (``(M, 2)`` metres) and their
    first-order standard deviations ``sigma_d (M,)`` metres, the two positions independent with
    covariances ``cov_a``, ``cov_b`` ``(M, 2, 2)`` m^2.

    ``d = |a - b|``, ``e = (a - b) / d``, ``sigma_d^2 = e^T (cov_a + cov_b) e``. At ``d = 0`` the
    direction is undefined: ``sigma_d`` is then ``sqrt(largest eigenvalue of cov_a + cov_b)``.
    """
    a = np.asarray(xy_a, np.float64).reshape(-1, 2)
    b = np.asarray(xy_b, np.float64).reshape(-1, 2)
    C = np.asarray(cov_a, np.float64).reshape(-1, 2, 2) + np.asarray(cov_b, np.float64).reshape(-1, 2, 2)
    diff = a - b
    d = np.hypot(diff[:, 0], diff[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        e = diff / d[:, None]
    var = np.einsum("mi,mij,mj->m", e, C, e)
    zero = d == 0
    if np.any(zero):
        var[zero] = np.linalg.eigvalsh(C[zero])[:, -1]
    return d, np.sqrt(np.maximum(var, 0.0))


def prob_distance_below(d: np.ndarray, sigma_d: np.ndarray, threshold_m: float) -> np.ndarray:
    """``(M,)`` probability that the true distance is below ``threshold_m`` metres, normal approximation
    ``Phi((threshold_m - d) / sigma_d)``; with ``sigma_d == 0`` it is 1 below the threshold, else 0."""
    d = np.asarray(d, np.float64)
    s = np.asarray(sigma_d, np.float64)
    if not math.isfinite(threshold_m):
        raise ValueError(f"threshold_m: must be finite, got {threshold_m}")
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (threshold_m - d) / s
    p = ndtr(z)
    exact = s == 0
    p = np.where(exact, (d < threshold_m).astype(np.float64), p)
    return np.where(np.isfinite(d) & np.isfinite(s), p, np.nan)
