"""Camera models: pixels on the image <-> metres on the ground plane (world ``Z = 0``).

Every model implements :class:`CameraModel`:

- :meth:`CameraModel.image_to_ground` maps ``(N, 2)`` pixels to ``(N, 2) float64`` metres
  on the ground; a row becomes NaN when its pixel is non-finite or its viewing ray never
  meets the ground in front of the camera (above the horizon);
- :meth:`CameraModel.ground_to_image` maps ``(N, 2)`` metres back to pixels; a row becomes
  NaN when the ground point is non-finite or behind the camera (or, for a model with lens
  distortion, outside the region the lens model can image).

Three implementations share that interface:

- :class:`HomographyCamera`: a 3x3 plane-to-plane homography, image pixels -> ground metres;
- :class:`TsaiCamera`: R. Y. Tsai's model with one radial distortion term, as used by the
  PETS 2009 calibration files (millimetres and radians; metres at the interface);
- :class:`PinholeCamera`: the OpenCV pinhole model (``K``, ``dist``, ``rvec``, ``tvec``),
  world units in metres.

All models validate their parameters when built and raise :class:`CalibrationError`
with a message that says which parameter is wrong and why.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from vigil.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from vigil.detectors.detections import Detections

__all__ = [
    "CalibrationError",
    "CameraModel",
    "HomographyCamera",
    "TsaiCamera",
    "TsaiParameters",
    "PinholeCamera",
    "project_detections",
    "rotation_zyx",
]


class CalibrationError(UserError, ValueError):
    """A camera calibration is missing, malformed or geometrically degenerate."""


# ---------------------------------------------------------------------------- helpers
def _as_points(points: np.ndarray | Sequence, name: str) -> np.ndarray:
    """``(N, 2) float64`` copy of ``points``; accepts an empty input and a single ``(2,)`` point."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2), np.float64)
    if arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr.reshape(1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name}: expected shape (N, 2), got {arr.shape}")
    return arr


def _finite_matrix(value, shape: tuple[int, ...], name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{name}: not numeric ({exc})") from None
    if arr.shape != shape:
        raise CalibrationError(f"{name}: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(f"{name}: contains non-finite values")
    return arr


def _finite_scalar(value, name: str, *, positive: bool = False, nonzero: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise CalibrationError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(x):
        raise CalibrationError(f"{name}: must be finite, got {x}")
    if positive and not x > 0:
        raise CalibrationError(f"{name}: must be > 0, got {x}")
    if nonzero and x == 0:
        raise CalibrationError(f"{name}: must be non-zero")
    return x


def _image_size(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    try:
        w, h = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise CalibrationError(f"image_size: expected [width, height], got {image_size!r}") from None
    if w <= 0 or h <= 0:
        raise CalibrationError(f"image_size: width and height must be > 0, got {[w, h]}")
    return (w, h)


def rotation_zyx(rx: float, ry: float, rz: float) -> np.ndarray:
    """``R = Rz(rz) @ Ry(ry) @ Rx(rx)`` (the Tsai / PETS composition), angles in radians."""
    cx, sx = math.cos(rx), math.sin(rx)
    cy, sy = math.cos(ry), math.sin(ry)
    cz, sz = math.cos(rz), math.sin(rz)
    r_x = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    r_y = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_z = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    return r_z @ r_y @ r_x


def _intersect_ground(centre: np.ndarray, rays_world: np.ndarray, z: np.ndarray | float = 0.0) -> np.ndarray:
    """Intersect rays ``centre + t * ray`` with the plane ``Z = z`` (``z`` scalar or ``(N,)``, the
    world units of ``centre``); rows with ``t <= 0`` or non-finite -> NaN.

    Returns ``(N, 2)`` in the world units of ``centre``.
    """
    return _intersect_plane(centre, rays_world[:, 0], rays_world[:, 1], rays_world[:, 2], z)


def _intersect_plane(
    centre: np.ndarray, rx: np.ndarray, ry: np.ndarray, rz: np.ndarray, z: np.ndarray | float = 0.0
) -> np.ndarray:
    """:func:`_intersect_ground` with the rays ``(N, 3)`` given as their three ``(N,)`` components."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t = (z - centre[2]) / rz
        ground = np.empty((len(t), 2))
        np.multiply(t, rx, out=ground[:, 0])
        np.multiply(t, ry, out=ground[:, 1])
        ground += centre[:2]
        good = (t > 0) & np.isfinite(t) & np.isfinite(ground[:, 0]) & np.isfinite(ground[:, 1])
    ground[~good] = np.nan
    return ground


# ---------------------------------------------------------------------------- interface
class CameraModel(ABC):
    """Maps image pixels to ground-plane metres and back (see module docstring)."""

    #: ``(width, height)`` in pixels of the frames this calibration belongs to, if known.
    image_size: tuple[int, int] | None = None

    @abstractmethod
    def image_to_ground(self, points_px: np.ndarray) -> np.ndarray:
        """``(N, 2)`` pixels -> ``(N, 2) float64`` metres on ``Z = 0``; NaN rows where undefined."""

    @abstractmethod
    def ground_to_image(self, points_m: np.ndarray) -> np.ndarray:
        """``(N, 2)`` metres on ``Z = 0`` -> ``(N, 2) float64`` pixels; NaN rows where undefined."""

    #: True when the model knows the 3D geometry (:meth:`project_points`, :meth:`image_to_plane`).
    supports_3d: bool = False

    def project_points(self, points_m: np.ndarray) -> np.ndarray:
        """``(N, 3)`` world metres (``Z`` up, ``Z = 0`` the ground) -> ``(N, 2) float64`` pixels; NaN rows
        behind the camera. Models that know only the ground plane raise ``NotImplementedError``."""
        raise NotImplementedError(f"{type(self).__name__} knows only the ground plane: no 3D projection")

    def image_to_plane(self, points_px: np.ndarray, z_m: np.ndarray | float) -> np.ndarray:
        """``(N, 2)`` pixels -> ``(N, 2)`` metres ``(X, Y)`` where each viewing ray meets the horizontal
        plane ``Z = z_m`` (scalar or ``(N,)`` metres); NaN rows where it does not meet it in front of
        the camera. ``image_to_plane(p, 0) == image_to_ground(p)``. Ground-only models raise
        ``NotImplementedError``."""
        raise NotImplementedError(f"{type(self).__name__} knows only the ground plane: no 3D back-projection")

    def project_detections(self, detections: "Detections", key: str = "world_xy") -> "Detections":
        """A new ``Detections`` with ``data[key]`` = ground position of each box's foot point."""
        return detections.with_data(**{key: self.image_to_ground(detections.foot_points)})


def project_detections(detections: "Detections", camera: CameraModel, key: str = "world_xy") -> "Detections":
    """Function form of :meth:`CameraModel.project_detections`."""
    return camera.project_detections(detections, key)


# ---------------------------------------------------------------------------- homography
class HomographyCamera(CameraModel):
    """Plane-to-plane homography ``H``: image pixels ``(u, v, 1)`` -> ground metres ``(x, y, 1)``.

    A homography is defined up to scale, sign included; the sign tells which side of the
    image horizon (the line ``(H @ p)[2] = 0``) is the ground. ``H`` is kept scaled so that
    ``(H @ p)[2] > 0`` for ground pixels: pass ``ground_pixel`` (any pixel known to show the
    ground, e.g. the bottom centre of the frame) to fix the sign of an ``H`` from elsewhere;
    without it, ``H`` is taken to follow that convention already. ``from_points`` fixes the
    sign from the calibration points themselves.
    """

    def __init__(
        self,
        H: np.ndarray,
        *,
        ground_pixel: Sequence[float] | None = None,
        image_size: Sequence[int] | None = None,
    ) -> None:
        H = _finite_matrix(H, (3, 3), "homography matrix")
        s = np.linalg.svd(H, compute_uv=False)
        if s[0] == 0 or s[-1] / s[0] < 1e-12:
            raise CalibrationError(
                f"homography matrix: singular or nearly singular (singular values {s.tolist()}); "
                "it cannot map the image plane onto the ground plane"
            )
        H = H / s[0]  # scale so that the largest singular value is 1 (sign kept)
        if ground_pixel is not None:
            gp = np.asarray(ground_pixel, dtype=np.float64).reshape(-1)
            if gp.shape != (2,) or not np.all(np.isfinite(gp)):
                raise CalibrationError(f"ground_pixel: expected a finite [u, v], got {ground_pixel!r}")
            w = H[2] @ np.array([gp[0], gp[1], 1.0])
            if w == 0:
                raise CalibrationError(f"ground_pixel {gp.tolist()}: lies on the horizon of this homography")
            if w < 0:
                H = -H
        self.H = H
        self.H_inv = np.linalg.inv(H)
        self.image_size = _image_size(image_size)
        #: Per-point ground residuals in metres when built by :meth:`from_points`, else None.
        self.fit_residuals_m: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"HomographyCamera(H={self.H.tolist()})"

    @classmethod
    def from_points(
        cls,
        image_pts: np.ndarray | Sequence,
        ground_pts: np.ndarray | Sequence,
        *,
        image_size: Sequence[int] | None = None,
    ) -> "HomographyCamera":
        """Fit ``H`` (image -> ground) to >= 4 correspondences with the normalised DLT.

        Raises :class:`CalibrationError` for fewer than 4 points, mismatched counts,
        non-finite, duplicate or collinear points, a degenerate configuration, or points
        that would lie on both sides of the horizon. The fit's per-point ground residuals
        (metres) are kept in ``fit_residuals_m``.
        """
        try:
            img = _as_points(image_pts, "image points")
            gnd = _as_points(ground_pts, "ground points")
        except ValueError as exc:
            raise CalibrationError(str(exc)) from None
        if len(img) != len(gnd):
            raise CalibrationError(f"homography points: {len(img)} image points but {len(gnd)} ground points")
        if len(img) < 4:
            raise CalibrationError(f"homography points: need at least 4 correspondences, got {len(img)}")
        for name, pts in (("image", img), ("ground", gnd)):
            if not np.all(np.isfinite(pts)):
                rows = np.flatnonzero(~np.all(np.isfinite(pts), axis=1)).tolist()
                raise CalibrationError(f"homography points: {name} points {rows} are not finite")
            _check_distinct(pts, name)
            _check_not_collinear(pts, name)
        H = _dlt(img, gnd)
        w = np.c_[img, np.ones(len(img))] @ H[2]
        if np.any(w > 0) and np.any(w < 0):
            raise CalibrationError(
                "homography points: the fitted homography puts some points on both sides of the horizon; "
                "the correspondences are inconsistent (swapped or mistyped points?)"
            )
        if np.all(w < 0):
            H = -H
        cam = cls(H, image_size=image_size)
        cam.fit_residuals_m = np.linalg.norm(cam.image_to_ground(img) - gnd, axis=1)
        if not np.all(np.isfinite(cam.fit_residuals_m)):
            raise CalibrationError(
                "homography points: fitted homography does not map all points to finite ground positions"
            )
        return cam

    def image_to_ground(self, points_px: np.ndarray) -> np.ndarray:
        p = _as_points(points_px, "points_px")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            q = p @ self.H[:, :2].T + self.H[:, 2]
            out = q[:, :2] / q[:, 2:3]
        bad = ~(q[:, 2] > 0) | ~np.all(np.isfinite(out), axis=1)
        out[bad] = np.nan
        return out

    def ground_to_image(self, points_m: np.ndarray) -> np.ndarray:
        g = _as_points(points_m, "points_m")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            q = g @ self.H_inv[:, :2].T + self.H_inv[:, 2]
            out = q[:, :2] / q[:, 2:3]
        # With H scaled so that ground pixels have w > 0, points in front of the camera
        # map back with w > 0 too; w <= 0 means behind the camera.
        bad = ~(q[:, 2] > 0) | ~np.all(np.isfinite(out), axis=1)
        out[bad] = np.nan
        return out


def _check_distinct(pts: np.ndarray, name: str) -> None:
    scale = max(float(np.ptp(pts, axis=0).max()), 1.0)
    d = np.linalg.norm(pts[:, None, :] - pts[None, :, :], axis=2)
    iu = np.triu_indices(len(pts), 1)
    dup = d[iu] <= 1e-9 * scale
    if np.any(dup):
        i, j = iu[0][dup][0], iu[1][dup][0]
        raise CalibrationError(f"homography points: {name} points {i} and {j} are the same point {pts[i].tolist()}")


def _check_not_collinear(pts: np.ndarray, name: str) -> None:
    c = pts - pts.mean(axis=0)
    s = np.linalg.svd(c, compute_uv=False)
    if s[0] == 0 or s[1] / s[0] < 1e-9:
        raise CalibrationError(f"homography points: all {name} points are collinear; they must span the plane")
    if len(pts) == 4:
        for skip in range(4):
            tri = np.delete(pts, skip, axis=0)
            a, b, c3 = tri
            area2 = abs((b[0] - a[0]) * (c3[1] - a[1]) - (b[1] - a[1]) * (c3[0] - a[0]))
            span = max(np.linalg.norm(b - a), np.linalg.norm(c3 - a), np.linalg.norm(c3 - b))
            if area2 <= 1e-9 * span * span:
                idx = [k for k in range(4) if k != skip]
                raise CalibrationError(
                    f"homography points: {name} points {idx} are collinear; with 4 points no three may be collinear"
                )


def _normaliser(pts: np.ndarray) -> np.ndarray:
    """Similarity moving the centroid to 0 and the mean distance to sqrt(2) (Hartley)."""
    c = pts.mean(axis=0)
    d = np.linalg.norm(pts - c, axis=1).mean()
    s = math.sqrt(2.0) / d
    return np.array([[s, 0.0, -s * c[0]], [0.0, s, -s * c[1]], [0.0, 0.0, 1.0]])


def _dlt(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Normalised direct linear transform: ``dst ~ H @ src``."""
    Ts, Td = _normaliser(src), _normaliser(dst)
    s = np.c_[src, np.ones(len(src))] @ Ts.T
    d = np.c_[dst, np.ones(len(dst))] @ Td.T
    n = len(src)
    A = np.zeros((2 * n, 9))
    u, v = d[:, 0], d[:, 1]
    A[0::2, 0:3] = s
    A[0::2, 6:9] = -u[:, None] * s
    A[1::2, 3:6] = s
    A[1::2, 6:9] = -v[:, None] * s
    _, sv, vt = np.linalg.svd(A)
    if sv[0] == 0 or (len(sv) >= 8 and sv[7] / sv[0] < 1e-10):
        raise CalibrationError(
            "homography points: degenerate configuration (the correspondences do not determine a unique homography)"
        )
    Hn = vt[-1].reshape(3, 3)
    H = np.linalg.inv(Td) @ Hn @ Ts
    if not np.all(np.isfinite(H)):
        raise CalibrationError("homography points: the fit produced non-finite values")
    return H


# ---------------------------------------------------------------------------- Tsai
@dataclass(frozen=True)
class TsaiParameters:
    """Tsai camera parameters, in the units of the PETS calibration files (mm, radians, pixels)."""

    width: int  #: image width, pixels
    height: int  #: image height, pixels
    ncx: float  #: sensor elements in the camera's x direction
    nfx: float  #: pixels in a frame line as sampled
    dx: float  #: centre-to-centre distance of sensor elements in x, mm
    dy: float  #: centre-to-centre distance of sensor elements in y, mm
    dpx: float  #: effective x dimension of a pixel in the frame, mm (= dx * ncx / nfx)
    dpy: float  #: effective y dimension of a pixel in the frame, mm
    focal: float  #: effective focal length f, mm
    kappa1: float  #: first radial distortion coefficient, 1/mm^2
    cx: float  #: principal point (centre of radial distortion) x, pixels
    cy: float  #: principal point y, pixels
    sx: float  #: horizontal scale factor (uncertainty), dimensionless
    tx: float  #: translation world -> camera, mm
    ty: float
    tz: float
    rx: float  #: rotation angles, radians; R = Rz(rz) @ Ry(ry) @ Rx(rx)
    ry: float
    rz: float


class TsaiCamera(CameraModel):
    """Tsai's model (one radial term), ground plane ``Z = 0``, world in mm, interface in metres.

    Forward (world -> pixel):

    1. ``Xc = R @ Xw + T`` with ``R = Rz(rz) @ Ry(ry) @ Rx(rx)``;
    2. undistorted sensor coordinates ``Xu = f Xc / Zc``, ``Yu = f Yc / Zc`` (mm);
    3. radial distortion ``Xu = Xd (1 + kappa1 r^2)``, ``Yu = Yd (1 + kappa1 r^2)``,
       ``r^2 = Xd^2 + Yd^2`` (solved for ``Xd, Yd``);
    4. pixels ``Xf = sx Xd / dpx + cx``, ``Yf = Yd / dpy + cy``.

    Backward inverts each step in closed form except 3, which is explicit in that
    direction, then intersects the viewing ray with ``Z = 0``.
    """

    def __init__(self, params: TsaiParameters) -> None:
        p = params
        for name in ("ncx", "nfx", "dx", "dy", "dpx", "dpy", "focal", "sx"):
            _finite_scalar(getattr(p, name), name, positive=True)
        for name in ("kappa1", "cx", "cy", "tx", "ty", "tz", "rx", "ry", "rz"):
            _finite_scalar(getattr(p, name), name)
        self.image_size = _image_size((p.width, p.height))
        self.params = p
        self.R = rotation_zyx(p.rx, p.ry, p.rz)
        self.T = np.array([p.tx, p.ty, p.tz], dtype=np.float64)
        self.centre_mm = -self.R.T @ self.T
        if abs(self.centre_mm[2]) < 1e-6:
            raise CalibrationError(
                "extrinsic: the camera centre lies on the ground plane Z=0; the ground is seen edge-on"
            )
        # Undistorted radius beyond which (kappa1 < 0) the lens model cannot image a point.
        if p.kappa1 < 0:
            self._rd_max = 1.0 / math.sqrt(-3.0 * p.kappa1)
            self._ru_max = self._rd_max * (1.0 + p.kappa1 * self._rd_max**2)
        else:
            self._rd_max = math.inf
            self._ru_max = math.inf

    def __repr__(self) -> str:
        return f"TsaiCamera({self.params})"

    @property
    def centre_m(self) -> np.ndarray:
        """Camera centre in world metres; ``centre_m[2]`` is its height above the ground."""
        return self.centre_mm / 1000.0

    @classmethod
    def from_pets_xml(cls, path: str | Path) -> "TsaiCamera":
        """Read a PETS 2009 ``View_00N.xml`` calibration file."""
        path = Path(path)
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            raise CalibrationError(f"{path}: cannot read PETS calibration: {exc}") from None
        values: dict[str, float] = {}
        wanted = {
            "Geometry": ("width", "height", "ncx", "nfx", "dx", "dy", "dpx", "dpy"),
            "Intrinsic": ("focal", "kappa1", "cx", "cy", "sx"),
            "Extrinsic": ("tx", "ty", "tz", "rx", "ry", "rz"),
        }
        for tag, names in wanted.items():
            el = root.find(tag)
            if el is None:
                raise CalibrationError(f"{path}: missing <{tag}> element")
            for name in names:
                if name not in el.attrib:
                    raise CalibrationError(f"{path}: <{tag}> lacks attribute {name!r}")
                try:
                    values[name] = float(el.attrib[name])
                except ValueError:
                    raise CalibrationError(f"{path}: <{tag}> {name}={el.attrib[name]!r} is not a number") from None
        values["width"] = int(values["width"])
        values["height"] = int(values["height"])
        try:
            return cls(TsaiParameters(**values))
        except CalibrationError as exc:
            raise CalibrationError(f"{path}: {exc}") from None

    # -- steps, exposed for tests and diagnostics
    def pixel_to_distorted(self, px: np.ndarray) -> np.ndarray:
        p = self.params
        return np.stack([(px[:, 0] - p.cx) * p.dpx / p.sx, (px[:, 1] - p.cy) * p.dpy], axis=1)

    def distorted_to_pixel(self, d: np.ndarray) -> np.ndarray:
        p = self.params
        return np.stack([p.sx * d[:, 0] / p.dpx + p.cx, d[:, 1] / p.dpy + p.cy], axis=1)

    def undistort(self, d: np.ndarray) -> np.ndarray:
        """Distorted -> undistorted sensor coordinates (mm); NaN beyond the model's valid radius."""
        r2 = np.sum(d * d, axis=1)
        out = d * (1.0 + self.params.kappa1 * r2)[:, None]
        if self.params.kappa1 < 0:
            out[r2 > self._rd_max**2] = np.nan
        return out

    def distort(self, u: np.ndarray) -> np.ndarray:
        """Undistorted -> distorted sensor coordinates (mm), solving ``k rd^3 + rd - ru = 0``.

        Newton's method from ``rd = ru / (1 + kappa1 ru^2)`` (below the root for either sign; for
        kappa1 < 0 the iterates then rise monotonically, for kappa1 > 0 the first step lands above the
        root and they fall monotonically) converges on the branch ``rd < 1/sqrt(-3 kappa1)``; rows
        outside it become NaN.
        """
        return u * self._distort_scale(np.hypot(u[:, 0], u[:, 1]))[:, None]

    def _distort_scale(self, ru: np.ndarray) -> np.ndarray:
        """``(N,)`` ratio ``rd / ru`` of distorted to undistorted radius (mm, :meth:`distort`); NaN outside."""
        k = self.params.kappa1
        if k == 0:
            return np.ones_like(ru)
        with np.errstate(invalid="ignore", over="ignore"):
            ok = np.isfinite(ru) & (ru <= self._ru_max)
            target = np.where(ok, ru, 0.0)
            rd = target / (1.0 + k * (target * target))  # one fixed-point step: one Newton step fewer
            k3 = 3.0 * k
            for _ in range(100):
                rd2 = rd * rd
                step = (k * (rd2 * rd) + rd - target) / (k3 * rd2 + 1.0)
                rd -= step
                if np.all(np.abs(step) <= 1e-15 * np.maximum(rd, 1.0)):
                    break
            pos = target > 0
            scale = np.where(pos, rd / np.where(pos, target, 1.0), 1.0)
        scale[~ok] = np.nan
        return scale

    # -- interface
    supports_3d = True

    def image_to_ground(self, points_px: np.ndarray) -> np.ndarray:
        return self.image_to_plane(points_px, 0.0)

    def image_to_plane(self, points_px: np.ndarray, z_m: np.ndarray | float) -> np.ndarray:
        # The steps of pixel_to_distorted, undistort and the rotation to the world, on columns.
        px = _as_points(points_px, "points_px")
        p, R = self.params, self.R
        with np.errstate(invalid="ignore", over="ignore"):
            xd = (px[:, 0] - p.cx) * p.dpx / p.sx
            yd = (px[:, 1] - p.cy) * p.dpy
            r2 = xd * xd + yd * yd
            f = 1.0 + p.kappa1 * r2
            xu, yu = xd * f, yd * f
            if p.kappa1 < 0:
                beyond = r2 > self._rd_max**2
                xu[beyond] = yu[beyond] = np.nan
            rays = [xu * R[0, j] + yu * R[1, j] + p.focal * R[2, j] for j in range(3)]  # R^T @ (xu, yu, f)
        g = _intersect_plane(self.centre_mm, *rays, np.asarray(z_m, np.float64) * 1000.0)
        g /= 1000.0
        return g

    def project_points(self, points_m: np.ndarray) -> np.ndarray:
        return self.world_to_image(np.asarray(points_m, dtype=np.float64).reshape(-1, 3) * 1000.0)

    def world_to_image(self, points_mm: np.ndarray) -> np.ndarray:
        """``(N, 3)`` world points in **mm** -> pixels; NaN for points with ``Zc <= 0``."""
        pw = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
        return self._world_columns_to_image(pw[:, 0], pw[:, 1], pw[:, 2])

    def ground_to_image(self, points_m: np.ndarray) -> np.ndarray:
        g = _as_points(points_m, "points_m")
        return self._world_columns_to_image(g[:, 0] * 1000.0, g[:, 1] * 1000.0, None)

    def _world_columns_to_image(self, X: np.ndarray, Y: np.ndarray, Z: np.ndarray | None) -> np.ndarray:
        """:meth:`world_to_image` of world mm given as ``(N,)`` columns (``Z = None``: the ground) -> ``(N, 2)`` px."""
        p, R, T = self.params, self.R, self.T
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            xc, yc, zc = (X * R[i, 0] + Y * R[i, 1] + (0.0 if Z is None else Z * R[i, 2]) + T[i] for i in range(3))
            xu = p.focal * xc / zc
            yu = p.focal * yc / zc
            behind = ~(zc > 0)
            xu[behind] = yu[behind] = np.nan
            scale = self._distort_scale(np.hypot(xu, yu))
            out = np.empty((len(xu), 2))
            out[:, 0] = p.sx * (xu * scale) / p.dpx + p.cx
            out[:, 1] = (yu * scale) / p.dpy + p.cy
        out[~(np.isfinite(out[:, 0]) & np.isfinite(out[:, 1]))] = np.nan
        return out


# ---------------------------------------------------------------------------- pinhole (OpenCV)
class PinholeCamera(CameraModel):
    """OpenCV pinhole camera: ``K`` (3x3), distortion ``dist`` (OpenCV order: k1 k2 p1 p2 [k3 ...]),
    ``rvec``/``tvec`` world -> camera (Rodrigues vector, translation in **metres**), ground ``Z = 0``.
    """

    def __init__(
        self,
        K: np.ndarray,
        dist: np.ndarray | Sequence[float] | None,
        rvec: np.ndarray | Sequence[float],
        tvec: np.ndarray | Sequence[float],
        *,
        image_size: Sequence[int] | None = None,
    ) -> None:
        K = _finite_matrix(K, (3, 3), "camera_matrix")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise CalibrationError(f"camera_matrix: focal lengths fx, fy must be > 0, got {K[0, 0]}, {K[1, 1]}")
        if K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
            raise CalibrationError("camera_matrix: expected [[fx, s, cx], [0, fy, cy], [0, 0, 1]]")
        dist_arr = np.zeros(0) if dist is None else np.asarray(dist, dtype=np.float64).reshape(-1)
        if dist_arr.size not in (0, 4, 5, 8, 12, 14):
            raise CalibrationError(f"dist_coeffs: expected 0, 4, 5, 8, 12 or 14 values, got {dist_arr.size}")
        if not np.all(np.isfinite(dist_arr)):
            raise CalibrationError("dist_coeffs: contains non-finite values")
        rvec_a = _finite_matrix(np.asarray(rvec, dtype=np.float64).reshape(-1), (3,), "rvec")
        tvec_a = _finite_matrix(np.asarray(tvec, dtype=np.float64).reshape(-1), (3,), "tvec")
        self.K = K
        self.dist = dist_arr
        self.rvec = rvec_a
        self.tvec = tvec_a
        self.R = cv2.Rodrigues(rvec_a)[0]
        self.centre = -self.R.T @ tvec_a
        if abs(self.centre[2]) < 1e-9:
            raise CalibrationError(
                "rvec/tvec: the camera centre lies on the ground plane Z=0; the ground is seen edge-on"
            )
        self.image_size = _image_size(image_size)

    def __repr__(self) -> str:
        return (
            f"PinholeCamera(K={self.K.tolist()}, dist={self.dist.tolist()}, "
            f"rvec={self.rvec.tolist()}, tvec={self.tvec.tolist()})"
        )

    supports_3d = True

    def image_to_ground(self, points_px: np.ndarray) -> np.ndarray:
        return self.image_to_plane(points_px, 0.0)

    def image_to_plane(self, points_px: np.ndarray, z_m: np.ndarray | float) -> np.ndarray:
        px = _as_points(points_px, "points_px")
        z = np.broadcast_to(np.asarray(z_m, np.float64), (len(px),))
        out = np.full((len(px), 2), np.nan)
        ok = np.all(np.isfinite(px), axis=1)
        if not np.any(ok):
            return out
        src = px[ok].reshape(-1, 1, 2)
        if self.dist.size and np.any(self.dist != 0):
            criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-14)
            norm = cv2.undistortPointsIter(src, self.K, self.dist, None, None, criteria).reshape(-1, 2)
        else:
            norm = cv2.undistortPoints(src, self.K, None).reshape(-1, 2)
        rays_world = np.c_[norm, np.ones(len(norm))] @ self.R
        out[ok] = _intersect_ground(self.centre, rays_world, z[ok])
        return out

    def project_points(self, points_m: np.ndarray) -> np.ndarray:
        pw = np.asarray(points_m, dtype=np.float64).reshape(-1, 3)
        out = np.full((len(pw), 2), np.nan)
        zc = pw @ self.R[2] + self.tvec[2]
        ok = np.all(np.isfinite(pw), axis=1) & (zc > 0)
        if np.any(ok):
            img, _ = cv2.projectPoints(
                pw[ok].reshape(-1, 1, 3), self.rvec, self.tvec, self.K, self.dist if self.dist.size else None
            )
            out[ok] = img.reshape(-1, 2)
        return out

    def ground_to_image(self, points_m: np.ndarray) -> np.ndarray:
        g = _as_points(points_m, "points_m")
        return self.project_points(np.c_[g, np.zeros(len(g))])
