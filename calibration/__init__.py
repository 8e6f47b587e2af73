"""Vigil calibration."""
