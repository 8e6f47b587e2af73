"""Vigil: edge-AI video service for city safety.

The repository keeps the design card's layout; each top-level folder is installed as a
subpackage: ``vigil.edge``, ``vigil.detectors``, ``vigil.geometry``, ``vigil.alerts``,
``vigil.calibration``, ``vigil.models``, ``vigil.bench``.
"""

__version__ = "0.1.0"
