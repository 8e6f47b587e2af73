"""Logging set-up: readable lines for people, or one JSON object per line for collectors.

Records may carry a ``camera`` attribute (``log.info(..., extra={"camera": name})``); JSON
logs include it as a field.
"""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["configure_logging", "JsonFormatter", "tag_camera"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        camera = getattr(record, "camera", None)
        if camera is not None:
            obj["camera"] = camera
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False)


def configure_logging(level: int = logging.INFO, as_json: bool = False) -> None:
    """Send log records to stderr; call once from the command line entry point."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _CameraTag(logging.Filter):
    def __init__(self, camera: str) -> None:
        super().__init__()
        self.camera = camera

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "camera", None) is None:
            record.camera = self.camera
        return True


def tag_camera(camera: str) -> None:
    """Every record of this process without a ``camera`` gets this one (a worker serves one camera)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_CameraTag(camera))
