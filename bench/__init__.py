"""Vigil bench."""
