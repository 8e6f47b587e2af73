"""The Vigil calibration file: one YAML file per camera, read into a :class:`CameraModel`.

Format (``vigil_calibration: 1``)::

    vigil_calibration: 1
    camera: View_001               # free text, the camera's name
    image_size: [768, 576]         # width, height in pixels of the calibrated frames
    model: tsai                    # tsai | homography | pinhole
    source: "..."                  # optional free text: where the figures come from
    tsai:                          # present when model: tsai (mm, radians, pixels)
      ncx: 795
      ...
    homography:                    # present when model: homography (image px -> ground m)
      matrix: [[...], [...], [...]]
      # or
      points: [{image: [u, v], ground: [x, y]}, ...]
    pinhole:                       # present when model: pinhole (OpenCV conventions)
      camera_matrix: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
      dist_coeffs: [k1, k2, p1, p2, k3]
      rvec: [rx, ry, rz]           # Rodrigues, world -> camera
      tvec_m: [tx, ty, tz]         # metres

The world frame has ``Z = 0`` on the ground; ground coordinates are metres.
Every error raised by :func:`load_camera` is a :class:`CalibrationError` whose message
starts with the file name, then the field (``tsai.focal_mm``) and, where known, the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .camera import CalibrationError, CameraModel, HomographyCamera, PinholeCamera, TsaiCamera, TsaiParameters

__all__ = [
    "CalibrationFile",
    "FORMAT_VERSION",
    "calibration_dict",
    "load_calibration",
    "load_camera",
    "parse_calibration",
    "save_camera",
]

FORMAT_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TsaiSection(_Strict):
    """Tsai model parameters (the PETS 2009 calibration figures use this model)."""

    ncx: float = Field(description="sensor elements in the camera's x direction")
    nfx: float = Field(description="pixels in a frame line as sampled by the computer")
    dx_mm: float = Field(description="centre-to-centre distance of adjacent sensor elements in x, mm")
    dy_mm: float = Field(description="centre-to-centre distance of adjacent sensor elements in y, mm")
    dpx_mm: float = Field(description="effective x size of a frame pixel, mm (= dx * ncx / nfx)")
    dpy_mm: float = Field(description="effective y size of a frame pixel, mm")
    focal_mm: float = Field(description="effective focal length, mm")
    kappa1_per_mm2: float = Field(description="first radial lens distortion coefficient, 1/mm^2")
    cx_px: float = Field(description="principal point x, pixels")
    cy_px: float = Field(description="principal point y, pixels")
    sx: float = Field(description="horizontal scale factor, dimensionless")
    tx_mm: float = Field(description="translation world -> camera, x, mm")
    ty_mm: float = Field(description="translation world -> camera, y, mm")
    tz_mm: float = Field(description="translation world -> camera, z, mm")
    rx_rad: float = Field(description="rotation about x, radians (R = Rz @ Ry @ Rx)")
    ry_rad: float = Field(description="rotation about y, radians")
    rz_rad: float = Field(description="rotation about z, radians")


class HomographyPoint(_Strict):
    image: tuple[float, float] = Field(description="pixel [u, v]")
    ground: tuple[float, float] = Field(description="ground position [x, y], metres")


class HomographySection(_Strict):
    """Either ``matrix`` (3x3, image pixels -> ground metres) or ``points`` (>= 4 correspondences)."""

    matrix: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]] | None = Field(
        default=None, description="3x3 homography, image pixels -> ground metres"
    )
    points: list[HomographyPoint] | None = Field(default=None, description="image/ground correspondences")

    @model_validator(mode="after")
    def _one_of(self) -> "HomographySection":
        if (self.matrix is None) == (self.points is None):
            raise ValueError("give exactly one of 'matrix' or 'points'")
        return self


class PinholeSection(_Strict):
    camera_matrix: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]] = Field(
        description="OpenCV camera matrix K, pixels"
    )
    dist_coeffs: list[float] = Field(
        default_factory=list, description="OpenCV distortion coefficients k1 k2 p1 p2 [k3 ...]"
    )
    rvec: tuple[float, float, float] = Field(description="Rodrigues rotation world -> camera, radians")
    tvec_m: tuple[float, float, float] = Field(description="translation world -> camera, metres")


class CalibrationFile(_Strict):
    """Top level of a Vigil calibration file."""

    vigil_calibration: Literal[1] = Field(description="format version")
    camera: str = Field(description="camera name")
    image_size: tuple[int, int] = Field(description="[width, height] of the calibrated frames, pixels")
    model: Literal["tsai", "homography", "pinhole"] = Field(description="camera model")
    source: str | None = Field(default=None, description="where the figures come from")
    tsai: TsaiSection | None = None
    homography: HomographySection | None = None
    pinhole: PinholeSection | None = None

    @model_validator(mode="after")
    def _section_matches_model(self) -> "CalibrationFile":
        present = [name for name in ("tsai", "homography", "pinhole") if getattr(self, name) is not None]
        if getattr(self, self.model) is None:
            raise ValueError(f"model is {self.model!r} but the {self.model!r} section is missing")
        extra = [name for name in present if name != self.model]
        if extra:
            raise ValueError(f"model is {self.model!r} but the file also has section(s) {extra}; keep only one")
        if self.image_size[0] <= 0 or self.image_size[1] <= 0:
            raise ValueError(f"image_size must be positive, got {list(self.image_size)}")
        return self

    def build(self) -> CameraModel:
        """The camera model described by this file (raises :class:`CalibrationError`)."""
        if self.model == "tsai":
            t = self.tsai
            if t is None:  # unreachable after validation
                raise CalibrationError("tsai: section missing")
            return TsaiCamera(
                TsaiParameters(
                    width=self.image_size[0],
                    height=self.image_size[1],
                    ncx=t.ncx,
                    nfx=t.nfx,
                    dx=t.dx_mm,
                    dy=t.dy_mm,
                    dpx=t.dpx_mm,
                    dpy=t.dpy_mm,
                    focal=t.focal_mm,
                    kappa1=t.kappa1_per_mm2,
                    cx=t.cx_px,
                    cy=t.cy_px,
                    sx=t.sx,
                    tx=t.tx_mm,
                    ty=t.ty_mm,
                    tz=t.tz_mm,
                    rx=t.rx_rad,
                    ry=t.ry_rad,
                    rz=t.rz_rad,
                )
            )
        if self.model == "homography":
            h = self.homography
            if h is None:
                raise CalibrationError("homography: section missing")
            if h.matrix is not None:
                w, hh = self.image_size
                return HomographyCamera(
                    np.array(h.matrix), ground_pixel=(w / 2.0, hh - 1.0), image_size=self.image_size
                )
            pts = h.points or []
            return HomographyCamera.from_points(
                [p.image for p in pts], [p.ground for p in pts], image_size=self.image_size
            )
        p = self.pinhole
        if p is None:
            raise CalibrationError("pinhole: section missing")
        return PinholeCamera(np.array(p.camera_matrix), p.dist_coeffs, p.rvec, p.tvec_m, image_size=self.image_size)


# ---------------------------------------------------------------------------- reading
def _line_of(root: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


def _field_name(loc: tuple) -> str:
    parts: list[str] = []
    for key in loc:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        else:
            parts.append(("." if parts else "") + str(key))
    return "".join(parts) or "(top level)"


def parse_calibration(text: str, source: str = "<string>") -> CalibrationFile:
    """Parse and validate calibration YAML (no camera built). Errors name ``source`` and the field."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CalibrationError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    if "vigil_calibration" not in data:
        raise CalibrationError(f"{source}: vigil_calibration: missing; is this a Vigil calibration file?")
    if data.get("vigil_calibration") != FORMAT_VERSION:
        raise CalibrationError(
            f"{source}: vigil_calibration: unsupported format version {data.get('vigil_calibration')!r} "
            f"(this build reads {FORMAT_VERSION})"
        )
    try:
        return CalibrationFile.model_validate(data)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _line_of(root, loc)
            where = f" (line {line})" if line else ""
            msgs.append(f"{_field_name(loc)}{where}: {err['msg']}")
        raise CalibrationError(f"{source}: " + "; ".join(msgs)) from None


_TSAI_FIELDS = {
    "dx": "dx_mm",
    "dy": "dy_mm",
    "dpx": "dpx_mm",
    "dpy": "dpy_mm",
    "focal": "focal_mm",
    "kappa1": "kappa1_per_mm2",
    "cx": "cx_px",
    "cy": "cy_px",
    "tx": "tx_mm",
    "ty": "ty_mm",
    "tz": "tz_mm",
    "rx": "rx_rad",
    "ry": "ry_rad",
    "rz": "rz_rad",
    "ncx": "ncx",
    "nfx": "nfx",
    "sx": "sx",
}
_PINHOLE_FIELDS = {"tvec": "tvec_m"}


def _camera_error_field(model: str, message: str) -> str:
    """Prefix a camera constructor's message with the file's field name (``tsai.focal_mm: ...``)."""
    head, sep, rest = message.partition(": ")
    if model == "tsai" and sep and head in _TSAI_FIELDS:
        return f"tsai.{_TSAI_FIELDS[head]}: {rest}"
    if model == "pinhole" and sep and head in ("camera_matrix", "dist_coeffs", "rvec", "tvec"):
        return f"pinhole.{_PINHOLE_FIELDS.get(head, head)}: {rest}"
    if model == "homography" and head.startswith("homography points"):
        return f"homography.points: {rest}"
    if model == "homography" and head.startswith("homography matrix"):
        return f"homography.matrix: {rest}"
    return f"{model}: {message}"


def load_camera(path: str | Path) -> CameraModel:
    """Read a Vigil calibration file and build its camera model.

    Raises :class:`CalibrationError` ("<path>: <field>: <what is wrong>") for unreadable
    files, malformed YAML, unknown or missing fields, wrong types, and degenerate geometry.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read calibration file: {exc.strerror or exc}") from None
    cal = parse_calibration(text, str(path))
    try:
        return cal.build()
    except CalibrationError as exc:
        raise CalibrationError(f"{path}: {_camera_error_field(cal.model, str(exc))}") from None


def load_calibration(path: str | Path) -> tuple[CalibrationFile, CameraModel]:
    """Like :func:`load_camera`, also returning the parsed file (camera name, image size, source)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read calibration file: {exc.strerror or exc}") from None
    cal = parse_calibration(text, str(path))
    try:
        return cal, cal.build()
    except CalibrationError as exc:
        raise CalibrationError(f"{path}: {_camera_error_field(cal.model, str(exc))}") from None


# ---------------------------------------------------------------------------- writing
def _floats(a: Any) -> Any:
    arr = np.asarray(a, dtype=np.float64)
    return arr.tolist()


def calibration_dict(camera: CameraModel, name: str, source: str | None = None) -> dict[str, Any]:
    """The calibration-file mapping for ``camera`` (which must know its ``image_size``)."""
    if camera.image_size is None:
        raise CalibrationError("image_size: the camera model does not know its image size; it is required in the file")
    out: dict[str, Any] = {"vigil_calibration": FORMAT_VERSION, "camera": name, "image_size": list(camera.image_size)}
    if isinstance(camera, TsaiCamera):
        p = camera.params
        out["model"] = "tsai"
        section = {
            "ncx": p.ncx,
            "nfx": p.nfx,
            "dx_mm": p.dx,
            "dy_mm": p.dy,
            "dpx_mm": p.dpx,
            "dpy_mm": p.dpy,
            "focal_mm": p.focal,
            "kappa1_per_mm2": p.kappa1,
            "cx_px": p.cx,
            "cy_px": p.cy,
            "sx": p.sx,
            "tx_mm": p.tx,
            "ty_mm": p.ty,
            "tz_mm": p.tz,
            "rx_rad": p.rx,
            "ry_rad": p.ry,
            "rz_rad": p.rz,
        }
        out["tsai"] = {k: float(v) for k, v in section.items()}
    elif isinstance(camera, HomographyCamera):
        out["model"] = "homography"
        out["homography"] = {"matrix": _floats(camera.H)}
    elif isinstance(camera, PinholeCamera):
        out["model"] = "pinhole"
        out["pinhole"] = {
            "camera_matrix": _floats(camera.K),
            "dist_coeffs": _floats(camera.dist),
            "rvec": _floats(camera.rvec),
            "tvec_m": _floats(camera.tvec),
        }
    else:
        raise CalibrationError(f"model: cannot save a {type(camera).__name__}")
    if source:
        out["source"] = source
    return out


def save_camera(camera: CameraModel, path: str | Path, name: str, source: str | None = None) -> None:
    """Write ``camera`` as a Vigil calibration file (full float precision, ``repr`` round-trips)."""
    data = calibration_dict(camera, name, source)
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None), encoding="utf-8")
