"""Vigil geometry: camera models, ground projection and ground-plane metrics.

Never imports ``vigil.edge`` or ``vigil.alerts``. Importing this package loads only the camera
models (no scipy, no shapely): the metrics (``vigil.geometry.metrics``, scipy's k-d tree), zones
and rules (``vigil.geometry.rules``) are imported from their modules.
"""

from .calibration_io import load_calibration, load_camera, parse_calibration, save_camera
from .camera import (
    CalibrationError,
    CameraModel,
    HomographyCamera,
    PinholeCamera,
    TsaiCamera,
    TsaiParameters,
    project_detections,
)

__all__ = [
    "CalibrationError",
    "CameraModel",
    "HomographyCamera",
    "PinholeCamera",
    "TsaiCamera",
    "TsaiParameters",
    "load_calibration",
    "load_camera",
    "parse_calibration",
    "project_detections",
    "save_camera",
]
