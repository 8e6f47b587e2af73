"""Vigil alerts."""
