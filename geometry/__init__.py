"""Vigil geometry: camera models, ground projection and ground-plane metrics.

Never imports ``vigil.edge`` or ``vigil.alerts``.
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
from .distancing import ViolationChange, ViolationMonitor, close_pairs

__all__ = [
    "CalibrationError",
    "CameraModel",
    "HomographyCamera",
    "PinholeCamera",
    "TsaiCamera",
    "TsaiParameters",
    "ViolationChange",
    "ViolationMonitor",
    "close_pairs",
    "load_calibration",
    "load_camera",
    "parse_calibration",
    "project_detections",
    "save_camera",
]
