"""Vigil detectors."""
