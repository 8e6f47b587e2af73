"""Ground calibration from image <-> ground correspondences.

Given >= 4 points whose pixel position and ground position (metres, world ``Z = 0``) are
known, :func:`fit_ground` builds

- a :class:`~vigil.geometry.camera.HomographyCamera` (image pixels -> ground metres) with
  RANSAC (``cv2.findHomography``, threshold in metres on the ground), refitted on the
  inliers with the normalised DLT; or, when the lens intrinsics are known,
- a :class:`~vigil.geometry.camera.PinholeCamera` from ``cv2.solvePnP`` (IPPE, refined by
  Levenberg-Marquardt; ``solvePnPRansac`` first when there are >= 6 points), which also
  models lens distortion — a plain homography cannot.

Every point gets its residual on the ground (metres, the fitted camera's ground position of
the pixel minus the typed ground position) and in the image (pixels); points RANSAC rejects
or whose residual exceeds the threshold are flagged as outliers and left out of the fit.

Points files (YAML)::

    points:
      - {name: A, image: [u, v], ground: [x, y]}   # name optional
      - ...
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import yaml

from vigil.fileio import atomic_write_text
from vigil.geometry.calibration_io import calibration_dict, parse_calibration
from vigil.geometry.camera import CalibrationError, CameraModel, HomographyCamera, PinholeCamera

from .intrinsics import Intrinsics

__all__ = [
    "GroundFit",
    "calibration_text",
    "fit_ground",
    "load_points",
    "parse_points",
    "validate_points",
    "write_ground_calibration",
]


@dataclass
class GroundFit:
    camera: CameraModel
    method: str  #: "homography" or "pinhole"
    names: list[str]
    image_pts: np.ndarray  #: (N, 2) pixels
    ground_pts: np.ndarray  #: (N, 2) metres
    residuals_m: np.ndarray  #: (N,) metres on the ground (NaN where the pixel has no ground position)
    residuals_px: np.ndarray  #: (N,) pixels (NaN where the ground point does not image)
    inliers: np.ndarray  #: (N,) bool: used in the final fit
    threshold_m: float
    threshold_px: float

    @property
    def outliers(self) -> list[str]:
        return [n for n, ok in zip(self.names, self.inliers) if not ok]

    def as_dict(self) -> dict:
        def _f(x):
            return None if not np.isfinite(x) else float(x)

        res_in = self.residuals_m[self.inliers]
        return {
            "model": self.method,
            "points": [
                {
                    "name": n,
                    "image": [float(u), float(v)],
                    "ground": [float(x), float(y)],
                    "residual_m": _f(rm),
                    "residual_px": _f(rp),
                    "outlier": not bool(ok),
                }
                for n, (u, v), (x, y), rm, rp, ok in zip(
                    self.names, self.image_pts, self.ground_pts, self.residuals_m, self.residuals_px, self.inliers
                )
            ],
            "inliers": int(self.inliers.sum()),
            "outliers": self.outliers,
            "rms_m": _f(float(np.sqrt(np.mean(res_in**2)))) if len(res_in) else None,
            "max_m": _f(float(np.max(res_in))) if len(res_in) else None,
        }


# ---------------------------------------------------------------------------- input
def _pt(value, what: str) -> tuple[float, float]:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise CalibrationError(f"{what}: expected [a, b] numbers, got {value!r}") from None
    if arr.shape != (2,):
        raise CalibrationError(f"{what}: expected 2 numbers, got {value!r}")
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(f"{what}: not finite: {value!r}")
    return float(arr[0]), float(arr[1])


def parse_points(data, source: str = "points") -> tuple[list[str], np.ndarray, np.ndarray]:
    """``{"points": [{name?, image, ground}, ...]}`` (or the bare list) -> names, image (N,2), ground (N,2)."""
    items = data.get("points") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise CalibrationError(f"{source}: points: expected a list of {{image: [u, v], ground: [x, y]}}")
    names, img, gnd = [], [], []
    for i, item in enumerate(items):
        label = f"point {i + 1}"
        if not isinstance(item, dict):
            raise CalibrationError(f"{source}: {label}: expected a mapping with image and ground, got {item!r}")
        unknown = set(item) - {"name", "image", "ground"}
        if unknown:
            raise CalibrationError(
                f"{source}: {label}: unknown key(s) {sorted(unknown)} (allowed: name, image, ground)"
            )
        name = str(item.get("name") or f"#{i + 1}")
        label = f"point {name}" if item.get("name") else label
        for key in ("image", "ground"):
            if key not in item:
                raise CalibrationError(f"{source}: {label}: {key}: missing")
        names.append(name)
        img.append(_pt(item["image"], f"{source}: {label}: image"))
        gnd.append(_pt(item["ground"], f"{source}: {label}: ground"))
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CalibrationError(f"{source}: point names must be unique; repeated: {dup}")
    return names, np.array(img, np.float64).reshape(-1, 2), np.array(gnd, np.float64).reshape(-1, 2)


def load_points(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read points file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CalibrationError(f"{path}: not valid YAML: {exc}") from None
    return parse_points(data, str(path))


def validate_points(
    names: Sequence[str], image_pts: np.ndarray, ground_pts: np.ndarray, *, min_points: int = 4
) -> None:
    """Reject too few, repeated or collinear points with a message naming them."""
    n = len(names)
    if n < min_points:
        raise CalibrationError(f"need at least {min_points} points (image <-> ground), got {n}")
    for what, pts, unit, tol in (("image", image_pts, "px", 0.5), ("ground", ground_pts, "m", 1e-3)):
        d = np.linalg.norm(pts[:, None, :] - pts[None, :, :], axis=2)
        for i in range(n):
            for j in range(i + 1, n):
                if d[i, j] <= tol:
                    raise CalibrationError(
                        f"points {names[i]} and {names[j]} have the same {what} position {pts[i].round(3).tolist()} "
                        f"{unit}: "
                        "a point given twice? remove one"
                    )
        c = pts - pts.mean(axis=0)
        s = np.linalg.svd(c, compute_uv=False)
        spread = float(s[0]) if s[0] > 0 else 1.0
        if s[1] / spread < 1e-3:
            raise CalibrationError(
                f"the {what} points {list(names)} are collinear (all on one line): they must spread over the ground, "
                "not along one line"
            )
    # no three collinear when only 4 points: the homography would be undetermined
    if n == 4:
        for skip in range(4):
            idx = [k for k in range(4) if k != skip]
            for what, pts in (("image", image_pts), ("ground", ground_pts)):
                a, b, c3 = pts[idx]
                area2 = abs((b[0] - a[0]) * (c3[1] - a[1]) - (b[1] - a[1]) * (c3[0] - a[0]))
                span = max(np.linalg.norm(b - a), np.linalg.norm(c3 - a), np.linalg.norm(c3 - b))
                if area2 <= 1e-3 * span * span:
                    raise CalibrationError(
                        f"{what} points {[names[k] for k in idx]} are collinear; with 4 points no three may lie on "
                        "one line "
                        "(add points or move one)"
                    )


# ---------------------------------------------------------------------------- fitting
def _residuals(camera: CameraModel, img: np.ndarray, gnd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rm = np.linalg.norm(camera.image_to_ground(img) - gnd, axis=1)
    rp = np.linalg.norm(camera.ground_to_image(gnd) - img, axis=1)
    return rm, rp


def _fit_homography(img, gnd, image_size, threshold_m) -> tuple[CameraModel, np.ndarray]:

    n = len(img)
    inl = np.ones(n, bool)
    if n >= 5:
        _H, mask = cv2.findHomography(img, gnd, cv2.RANSAC, threshold_m, maxIters=5000, confidence=0.999)
        if mask is not None:
            inl = mask.reshape(-1).astype(bool)
        if inl.sum() < 4:
            inl = np.ones(n, bool)  # RANSAC found no consensus: fit all and let the residuals speak
    cam = HomographyCamera.from_points(img[inl], gnd[inl], image_size=image_size)
    return cam, inl


def _fit_pinhole(img, gnd, intr: Intrinsics, image_size, threshold_px) -> tuple[CameraModel, np.ndarray]:

    n = len(img)
    obj = np.c_[gnd, np.zeros(n)].astype(np.float64)
    K, dist = intr.K, intr.dist if intr.dist.size else None
    inl = np.ones(n, bool)
    if n >= 6:
        ok, rv, tv, idx = cv2.solvePnPRansac(
            obj,
            img,
            K,
            dist,
            iterationsCount=2000,
            reprojectionError=threshold_px,
            confidence=0.999,
            flags=cv2.SOLVEPNP_EPNP,
        )
        if ok and idx is not None and len(idx) >= 4:
            inl = np.zeros(n, bool)
            inl[idx.reshape(-1)] = True
    ok, rv, tv = cv2.solvePnP(obj[inl], img[inl], K, dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise CalibrationError("solvePnP found no camera pose for these points; check the points and the intrinsics")
    ok, rv, tv = cv2.solvePnP(obj[inl], img[inl], K, dist, rv, tv, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    cam = PinholeCamera(K, intr.dist, rv.reshape(-1), tv.reshape(-1), image_size=image_size)
    zc = obj[inl] @ cam.R[2] + cam.tvec[2]
    if np.any(zc <= 0):
        raise CalibrationError(
            "the fitted pose puts some points behind the camera; check the points and the intrinsics"
        )
    return cam, inl


def fit_ground(
    image_pts,
    ground_pts,
    *,
    names: Sequence[str] | None = None,
    image_size: tuple[int, int] | None = None,
    intrinsics: Intrinsics | None = None,
    threshold_m: float = 0.5,
    threshold_px: float = 4.0,
) -> GroundFit:
    """Fit a ground calibration (see the module docstring). Raises :class:`CalibrationError`."""
    img = np.asarray(image_pts, np.float64).reshape(-1, 2)
    gnd = np.asarray(ground_pts, np.float64).reshape(-1, 2)
    if len(img) != len(gnd):
        raise CalibrationError(f"{len(img)} image points but {len(gnd)} ground points")
    names = list(names) if names is not None else [f"#{i + 1}" for i in range(len(img))]
    validate_points(names, img, gnd)
    if intrinsics is not None:
        if image_size is not None and tuple(image_size) != tuple(intrinsics.image_size):
            raise CalibrationError(
                f"{intrinsics.source or 'intrinsics'}: calibrated for "
                f"{intrinsics.image_size[0]}x{intrinsics.image_size[1]} "
                f"but the frame is {image_size[0]}x{image_size[1]}; calibrate the intrinsics at the stream's resolution"
            )
        image_size = image_size or intrinsics.image_size
        cam, inl = _fit_pinhole(img, gnd, intrinsics, image_size, threshold_px)
        method = "pinhole"
    else:
        cam, inl = _fit_homography(img, gnd, image_size, threshold_m)
        method = "homography"
    rm, rp = _residuals(cam, img, gnd)
    bad = ~np.isfinite(rm) | (rm > threshold_m)
    if method == "pinhole":
        bad |= ~np.isfinite(rp) | (rp > threshold_px)
    inl = inl & ~bad if (inl & ~bad).sum() >= 4 else inl
    return GroundFit(cam, method, names, img, gnd, rm, rp, inl, float(threshold_m), float(threshold_px))


# ---------------------------------------------------------------------------- output
def calibration_text(fit: GroundFit, name: str, source: str | None = None) -> str:
    """The Vigil calibration file for ``fit``: YAML with a comment block listing the points and residuals."""
    if fit.camera.image_size is None:
        raise CalibrationError("image size unknown: the frame's size is needed in the calibration file")
    data = calibration_dict(fit.camera, name, source)
    when = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    lines = [
        f"# Vigil ground calibration, written by `vigil calibrate` on {when}",
        f"# model {fit.method} from {int(fit.inliers.sum())} of {len(fit.names)} points"
        + (f"; outliers (not used): {', '.join(fit.outliers)}" if fit.outliers else ""),
        "# point        image u, v (px)        ground x, y (m)     residual m    px",
    ]
    for n, (u, v), (x, y), rm, rp, ok in zip(
        fit.names, fit.image_pts, fit.ground_pts, fit.residuals_m, fit.residuals_px, fit.inliers
    ):
        lines.append(
            f"#  {n:<10} {u:9.2f} {v:9.2f}   {x:9.3f} {y:9.3f}   {rm:9.3f} {rp:7.2f}{'' if ok else '  OUTLIER'}"
        )
    text = "\n".join(lines) + "\n" + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    parse_calibration(text, "<generated>").build()  # never write a file Vigil cannot read back
    return text


def write_ground_calibration(fit: GroundFit, path: str | Path, name: str, source: str | None = None) -> Path:
    return atomic_write_text(path, calibration_text(fit, name, source))
