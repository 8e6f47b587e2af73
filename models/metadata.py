"""What a model file says about itself: class names, task and input size.

Ultralytics writes ``names`` into an ONNX file's metadata as a Python dict literal
(``{0: 'person', ...}``); it is read with :func:`ast.literal_eval`, never ``eval``. Names
files are one name per line, or YAML with ``names:`` (a list or ``{id: name}``). Used by the
model cache and manifests here and by the detector backends above.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import yaml

from vigil.models.errors import ModelError

__all__ = ["names_from_metadata", "names_from_value", "read_names_file", "read_onnx_info"]


def names_from_metadata(meta: dict[str, str]) -> list[str] | None:
    """Class names from ONNX custom metadata: ``names`` as a Python/JSON dict ``{0: 'person', ...}``
    or list literal (Ultralytics), parsed with :func:`ast.literal_eval`. ``None`` if absent."""
    raw = meta.get("names")
    if raw is None:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ModelError(f"metadata 'names' is not a dict or list literal: {raw[:80]!r} ({exc})") from None
    return names_from_value(value, "metadata 'names'")


def names_from_value(value: Any, where: str) -> list[str]:
    """Class names in id order from a list, or from a dict ``{id: name}`` with ids ``0..n-1``."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, dict):
        try:
            keys = sorted(int(k) for k in value)
        except (TypeError, ValueError):
            raise ModelError(f"{where}: class ids must be integers, got {list(value)[:5]}") from None
        if keys != list(range(len(keys))):
            raise ModelError(f"{where}: class ids must be 0..{len(keys) - 1} without gaps, got {keys[:10]}")
        by_int = {int(k): str(v) for k, v in value.items()}
        return [by_int[i] for i in keys]
    raise ModelError(f"{where}: expected a list or a dict of class names, got {type(value).__name__}")


def read_names_file(path: str | os.PathLike) -> list[str]:
    """Class names from a file: YAML (``.yaml``/``.yml``) with ``names:``, else one name per line."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"class names file not found: {p}")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ModelError(f"class names file {p}: not valid YAML ({exc})") from None
        value = doc.get("names") if isinstance(doc, dict) else doc
        return names_from_value(value, f"class names file {p}")
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_onnx_info(path: str | os.PathLike) -> dict:
    """``task``, ``input_size`` (``[height, width]`` pixels, or ``None`` when dynamic) and
    ``class_names`` from an ONNX file (metadata and input shape). Raises :class:`ModelError` for a
    file onnx cannot read."""
    try:
        import onnx  # noqa: PLC0415 - loaded by whoever reads a model, not by every importer

        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - DecodeError, OSError...: reported as a bad model file
        raise ModelError(f"{path}: not a valid ONNX file (truncated or corrupt?): {exc}") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    info: dict = {"task": meta.get("task", "detect"), "input_size": None, "class_names": []}
    dims = proto.graph.input[0].type.tensor_type.shape.dim if proto.graph.input else []
    if len(dims) == 4 and all(d.HasField("dim_value") for d in dims[2:]):
        info["input_size"] = [int(dims[2].dim_value), int(dims[3].dim_value)]
    if "names" in meta:
        try:
            info["class_names"] = names_from_metadata(meta) or []
        except ValueError:
            pass
    if info["input_size"] is None and "imgsz" in meta:
        try:
            v = ast.literal_eval(meta["imgsz"])
            info["input_size"] = [int(v[0]), int(v[1])]
        except (ValueError, SyntaxError, TypeError, IndexError):
            pass
    return info
