"""Vigil geometry."""
