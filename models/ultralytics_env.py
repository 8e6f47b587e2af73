"""Importing torch and ultralytics (the optional ``ultralytics`` extra) without network access.

Offline by construction: before ultralytics is imported, ``YOLO_OFFLINE=1`` and
``YOLO_AUTOINSTALL=0`` are set and ``YOLO_CONFIG_DIR`` (unless set) points into Vigil's
model cache, with a system TrueType font copied in as the ``Arial.ttf`` ultralytics would
otherwise download. Used by the ``ultralytics`` detector backend and by
``vigil models export``; the only place of Vigil that imports ultralytics, and only when
called, so the rest of Vigil runs without torch.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from vigil.models.cache import cache_dir
from vigil.models.errors import ModelError

__all__ = ["prepare_offline_env", "import_ultralytics", "INSTALL_HINT", "FONT_CANDIDATES"]

INSTALL_HINT = (
    "The ultralytics backend needs the optional extra: pip install '.[ultralytics]' "
    "(torch CPU build, then ultralytics; see pyproject.toml), or export the model to ONNX "
    "and use `type: onnx`."
)
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


def prepare_offline_env() -> Path:
    """Set the environment that keeps ultralytics off the network (call before importing it).
    Returns its config dir."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    cfg_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_dir() / "ultralytics")))
    try:
        cfg_dir.mkdir(parents=True, exist_ok=True)
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            target = cfg_dir / "Ultralytics" / name
            if not target.exists():
                font = next((Path(f) for f in FONT_CANDIDATES if Path(f).is_file()), None)
                if font is not None:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(font, target)
    except OSError:
        pass  # a read-only cache: ultralytics falls back to its own temp dir; we never plot anyway
    return cfg_dir


def import_ultralytics() -> tuple[Any, Any]:
    """``(torch, ultralytics.YOLO)``, or :class:`ModelError` telling how to install the extra."""
    prepare_offline_env()
    try:
        import torch  # noqa: PLC0415 - optional heavy dependency (the ultralytics extra)
    except ImportError as exc:
        raise ModelError(f"torch is not installed ({exc}). {INSTALL_HINT}") from None
    try:
        from ultralytics import YOLO  # noqa: PLC0415 - optional heavy dependency (the ultralytics extra)
    except ImportError as exc:
        raise ModelError(f"ultralytics is not installed or does not import ({exc}). {INSTALL_HINT}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. importlib.metadata.PackageNotFoundError for torchvision
        raise ModelError(
            f"ultralytics does not import ({type(exc).__name__}: {exc}). It reads torchvision's package metadata at "
            f"import: install torchvision too (`pip install --no-deps torchvision` is enough). {INSTALL_HINT}"
        ) from None
    return torch, YOLO
