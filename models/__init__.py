"""Vigil models."""
