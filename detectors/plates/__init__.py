"""Licence plates: localisation, OCR (PP-OCRv4 via onnxruntime) and the Italian grammar."""

from .grammar import PlateParse, confusable_key, normalize, parse

__all__ = [
    "PlateParse",
    "confusable_key",
    "normalize",
    "parse",
    "PlateReader",
    "PlateReading",
    "ImageError",
    "load_image",
]


def __getattr__(name):  # lazy: the grammar needs neither OpenCV nor onnxruntime
    if name in ("PlateReader", "PlateReading", "ImageError", "load_image"):
        from . import reader

        return getattr(reader, name)
    raise AttributeError(name)
