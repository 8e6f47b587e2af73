"""Intrinsic calibration from chessboard images, and OpenCV-style intrinsics files.

:func:`calibrate_chessboard` finds the board's inner corners in every image
(``cv2.findChessboardCorners`` refined by ``cv2.cornerSubPix``), runs
``cv2.calibrateCamera`` and reports the RMS reprojection error (pixels), the error of each
image, and the images left out with the reason.

:func:`save_intrinsics` writes OpenCV's conventions with ``cv2.FileStorage``
(``camera_matrix``, ``distortion_coefficients``, ``image_width``, ``image_height``,
``rms``...), the file OpenCV's own calibration sample writes; :func:`load_intrinsics`
reads that, and also the plain-YAML layout of ROS ``camera_info`` files
(``camera_matrix: {rows, cols, data}``).
"""

from __future__ import annotations

import datetime as _dt
import glob as _glob
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import yaml

from vigil.fileio import atomic_write
from vigil.geometry.camera import CalibrationError

__all__ = [
    "ChessboardResult",
    "Intrinsics",
    "calibrate_chessboard",
    "expand_images",
    "load_intrinsics",
    "parse_board",
    "save_intrinsics",
]


@dataclass
class Intrinsics:
    """OpenCV intrinsics: ``K`` (3x3 pixels), ``dist`` (k1 k2 p1 p2 [k3 ...]), frame size."""

    K: np.ndarray
    dist: np.ndarray
    image_size: tuple[int, int]  #: (width, height) pixels
    rms: float | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.dist = np.asarray(self.dist, dtype=np.float64).reshape(-1)
        where = f"{self.source}: " if self.source else ""
        if not np.all(np.isfinite(self.K)) or self.K[0, 0] <= 0 or self.K[1, 1] <= 0:
            raise CalibrationError(
                f"{where}camera_matrix: expected finite [[fx,0,cx],[0,fy,cy],[0,0,1]] with fx, fy > 0"
            )
        if self.dist.size not in (0, 4, 5, 8, 12, 14) or not np.all(np.isfinite(self.dist)):
            raise CalibrationError(
                f"{where}distortion_coefficients: expected 0, 4, 5, 8, 12 or 14 finite values, got {self.dist.size}"
            )
        w, h = (int(v) for v in self.image_size)
        if w <= 0 or h <= 0:
            raise CalibrationError(f"{where}image_width/image_height: must be > 0, got {w}x{h}")
        self.image_size = (w, h)


@dataclass
class ChessboardResult:
    intrinsics: Intrinsics
    rms: float  #: overall RMS reprojection error, pixels (as returned by calibrateCamera)
    per_image: list[dict] = field(default_factory=list)  #: [{"image", "rms_px"}] for the images used
    rejected: list[dict] = field(default_factory=list)  #: [{"image", "reason"}]
    board: tuple[int, int] = (9, 6)
    square: float = 1.0

    def as_dict(self) -> dict:
        k = self.intrinsics
        return {
            "rms": self.rms,
            "images_used": len(self.per_image),
            "images_rejected": self.rejected,
            "per_image": self.per_image,
            "image_size": list(k.image_size),
            "camera_matrix": k.K.tolist(),
            "distortion_coefficients": k.dist.tolist(),
            "board": list(self.board),
            "square": self.square,
        }


def parse_board(text: str) -> tuple[int, int]:
    """``"9x6"`` -> ``(9, 6)``: inner corners per row x per column."""
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        cols, rows = (int(p) for p in parts)
    except ValueError:
        raise CalibrationError(f"--board {text!r}: expected COLSxROWS of inner corners, e.g. 9x6") from None
    if cols < 2 or rows < 2:
        raise CalibrationError(f"--board {text!r}: need at least 2x2 inner corners")
    return cols, rows


def expand_images(patterns: Iterable[str]) -> list[Path]:
    """Glob patterns and plain paths -> sorted, de-duplicated files; a missing plain path is an error."""
    out: list[Path] = []
    for pat in patterns:
        if any(ch in pat for ch in "*?["):
            out.extend(Path(p) for p in sorted(_glob.glob(pat)))
        else:
            p = Path(pat)
            if p.is_dir():
                out.extend(
                    sorted(
                        q for q in p.iterdir() if q.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
                    )
                )
            elif not p.is_file():
                raise CalibrationError(f"{p}: image not found")
            else:
                out.append(p)
    seen: set[Path] = set()
    unique = []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    if not unique:
        raise CalibrationError(f"no images match {list(patterns)}")
    return unique


def _find_corners(gray: np.ndarray, board: tuple[int, int]) -> np.ndarray | None:

    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    found, corners = cv2.findChessboardCorners(gray, board, flags)
    if not found:
        found, corners = cv2.findChessboardCorners(gray, board, flags | cv2.CALIB_CB_FILTER_QUADS)
    if not found:
        return None
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
    return cv2.cornerSubPix(gray, corners, (11, 11), (-1, -1), criteria)


def calibrate_chessboard(
    images: Sequence[str | Path],
    board: tuple[int, int] = (9, 6),
    square: float = 1.0,
    *,
    min_images: int = 3,
) -> ChessboardResult:
    """Calibrate from chessboard images (``board`` = inner corners, ``square`` = side in metres).

    Raises :class:`CalibrationError` naming the culprit for an unreadable image, images of
    different sizes, a board found in fewer than ``min_images`` images.
    """

    if not (math.isfinite(square) and square > 0):
        raise CalibrationError(f"--square {square}: must be a positive length (metres)")
    cols, rows = board
    objp = np.zeros((cols * rows, 3), np.float32)
    objp[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * square
    size: tuple[int, int] | None = None
    first: Path | None = None
    obj_pts, img_pts, used, rejected = [], [], [], []
    for path in images:
        path = Path(path)
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise CalibrationError(f"{path}: cannot read as an image")
        this = (img.shape[1], img.shape[0])
        if size is None:
            size, first = this, path
        elif this != size:
            raise CalibrationError(
                f"{path}: image size {this[0]}x{this[1]} differs from {size[0]}x{size[1]} of {first}; "
                "all images must come from the same camera mode"
            )
        corners = _find_corners(img, board)
        if corners is None:
            rejected.append({"image": str(path), "reason": f"chessboard {cols}x{rows} not found"})
            continue
        obj_pts.append(objp)
        img_pts.append(corners)
        used.append(path)
    if len(used) < min_images:
        names = ", ".join(r["image"] for r in rejected) or "none"
        raise CalibrationError(
            f"chessboard {cols}x{rows} (inner corners) found in {len(used)} of {len(used) + len(rejected)} images, "
            f"need at least {min_images}; not found in: {names}. Check --board (inner corners, not squares)"
        )
    rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(obj_pts, img_pts, size, None, None)
    per_image = []
    for path, op, ip, rv, tv in zip(used, obj_pts, img_pts, rvecs, tvecs):
        proj, _ = cv2.projectPoints(op, rv, tv, K, dist)
        err = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - ip.reshape(-1, 2)) ** 2, axis=1))))
        per_image.append({"image": str(path), "rms_px": err})
    intr = Intrinsics(K, dist.reshape(-1), size, rms=float(rms))
    return ChessboardResult(intr, float(rms), per_image, rejected, board=(cols, rows), square=float(square))


# ---------------------------------------------------------------------------- files
def save_intrinsics(path: str | Path, intr: Intrinsics, extra: dict | None = None) -> Path:
    """Write OpenCV's intrinsics YAML with ``cv2.FileStorage`` (atomically)."""

    def _write(tmp: Path) -> None:
        fs = cv2.FileStorage(str(tmp), cv2.FILE_STORAGE_WRITE | cv2.FILE_STORAGE_FORMAT_YAML)
        try:
            fs.write("calibration_time", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
            fs.write("image_width", int(intr.image_size[0]))
            fs.write("image_height", int(intr.image_size[1]))
            for key, value in (extra or {}).items():
                fs.write(key, value)
            fs.write("camera_matrix", intr.K)
            fs.write("distortion_coefficients", intr.dist.reshape(1, -1))
            if intr.rms is not None:
                fs.write("rms", float(intr.rms))
        finally:
            fs.release()

    return atomic_write(path, _write)


def _fs_get(fs, *names):
    for name in names:
        node = fs.getNode(name)
        if not node.empty():
            return node
    return None


def load_intrinsics(path: str | Path) -> Intrinsics:
    """Read OpenCV FileStorage intrinsics (YAML/XML/JSON) or a ROS ``camera_info`` YAML."""

    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"{path}: intrinsics file not found")
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("%YAML") or path.suffix.lower() in (".xml", ".json") or "!!opencv-matrix" in text:
        try:
            fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
        except cv2.error as exc:
            raise CalibrationError(f"{path}: cannot read as OpenCV FileStorage: {exc}") from None
        try:
            k = _fs_get(fs, "camera_matrix", "cameraMatrix", "K")
            d = _fs_get(fs, "distortion_coefficients", "dist_coeffs", "distCoeffs", "D")
            w = _fs_get(fs, "image_width")
            h = _fs_get(fs, "image_height")
            rms = _fs_get(fs, "rms", "avg_reprojection_error")
            if k is None:
                raise CalibrationError(f"{path}: camera_matrix: missing")
            if w is None or h is None:
                raise CalibrationError(f"{path}: image_width/image_height: missing (needed to check frames match)")
            K = k.mat()
            dist = d.mat() if d is not None else np.zeros(0)
            if dist is None:
                dist = np.zeros(0)
            return Intrinsics(
                K,
                np.asarray(dist).reshape(-1),
                (int(w.real()), int(h.real())),
                rms=None if rms is None else float(rms.real()),
                source=str(path),
            )
        finally:
            fs.release()

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CalibrationError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "camera_matrix" not in data:
        raise CalibrationError(f"{path}: camera_matrix: missing; expected OpenCV or ROS camera_info intrinsics")

    def _mat(v, name):
        if isinstance(v, dict):
            v = v.get("data")
        try:
            return np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise CalibrationError(f"{path}: {name}: not numeric") from None

    K = _mat(data["camera_matrix"], "camera_matrix")
    if K.size != 9:
        raise CalibrationError(f"{path}: camera_matrix: expected 9 values, got {K.size}")
    dist = _mat(data.get("distortion_coefficients", []), "distortion_coefficients").reshape(-1)
    try:
        size = (int(data["image_width"]), int(data["image_height"]))
    except (KeyError, TypeError, ValueError):
        raise CalibrationError(f"{path}: image_width/image_height: missing or not integers") from None
    return Intrinsics(K.reshape(3, 3), dist, size, rms=data.get("rms"), source=str(path))
