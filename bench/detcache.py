"""A cache of raw detector output per frame, so that an evaluation can be rerun without the detector.

``vigil eval ground --detections-cache DIR`` stores what the detector returned for every frame of
the range (before tracking: boxes in pixels, confidences, class ids) in one ``DIR/<key>.npz``.
The key (:func:`cache_key`) is a SHA-256 over a canonical JSON of:

- the video file's SHA-256 (its bytes, not its name or time);
- the frame range (start, stop, step);
- the detector config (the backend's validated settings, paths resolved) and the detector's class
  names;
- the SHA-256 of the model file the detector loaded (``model_path``), when it has one;
- a SHA-256 of the detector code (every ``.py`` under :mod:`vigil.detectors`) and the numpy /
  onnxruntime versions, so a changed backend or runtime does not read stale boxes;
- :data:`FORMAT` (this file's layout).

Anything that differs gives another key, so a cache entry is never used for another video or
detector; tracker, geometry and rule settings are not part of it (they run after the detector).
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import vigil.detectors
from vigil.detectors.detections import Detections
from vigil.fileio import atomic_write
from vigil.hashing import sha256_file

__all__ = ["FORMAT", "cache_key", "detector_identity", "CachingDetector"]

#: layout of the cache files; bump when it changes
FORMAT = 1


def _code_digest() -> str:
    """SHA-256 over the detector package's Python sources (path and bytes, sorted by path)."""
    root = Path(vigil.detectors.__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def detector_identity(detector: Any, config: Any = None) -> dict:
    """What determines a detector's output besides the frame: its ``config`` (a pydantic model
    or a JSON-ready value; default ``detector.cfg``), class, class names, model file hash."""

    cfg = config if config is not None else getattr(detector, "cfg", None)
    if hasattr(cfg, "model_dump"):
        cfg = cfg.model_dump(mode="json")
    model = getattr(detector, "model_path", None)
    return {
        "config": cfg,
        "class": f"{type(detector).__module__}.{type(detector).__qualname__}",
        "class_names": list(detector.class_names),
        "model_sha256": sha256_file(model) if model is not None and Path(model).is_file() else None,
        "code_sha256": _code_digest(),
        "numpy": np.__version__,
        "onnxruntime": _version("onnxruntime"),
    }


def cache_key(video: str | Path, frames: range, identity: dict) -> str:
    """Hex SHA-256 naming the cache entry of ``video``'s ``frames`` run through the detector
    described by ``identity`` (:func:`detector_identity`)."""

    doc = {
        "format": FORMAT,
        "video_sha256": sha256_file(video),
        "frames": [frames.start, frames.stop, frames.step],
        "detector": identity,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


class CachingDetector:
    """The detector interface (``detect(image) -> Detections``, ``class_names``) over a cache entry.

    Set :attr:`frame_index` before each ``detect`` call (the image alone does not say which frame
    it is). On a hit (``DIR/<key>.npz`` exists) ``detect`` returns the stored detections and the
    wrapped detector is not called; otherwise it runs the detector and records the result, and
    :meth:`save` writes the entry once the pass is over (a pass that stopped early, e.g. on an
    error, saves nothing). Only rows, not per-frame metadata, are stored: the pipeline sets the
    camera, frame index and timestamp itself.
    """

    def __init__(self, detector: Any, cache_dir: str | Path, key: str) -> None:
        self.detector = detector
        self.class_names = list(detector.class_names)
        self.path = Path(cache_dir) / f"{key}.npz"
        self.key = key
        self.frame_index: int | None = None
        self._stored: dict[int, Detections] | None = self._load() if self.path.is_file() else None
        self.hit = self._stored is not None
        self._recorded: dict[int, Detections] = {}
        self.misses = 0

    def _load(self) -> dict[int, Detections]:
        with np.load(self.path, allow_pickle=False) as z:
            index, offsets = z["frame_index"], z["offsets"]
            xyxy, conf, cls = z["xyxy"], z["confidence"], z["class_id"]
            data_keys = [k[5:] for k in z.files if k.startswith("data.")]
            data = {k: z[f"data.{k}"] for k in data_keys}
        out = {}
        for n, (a, b) in zip(index.tolist(), zip(offsets[:-1].tolist(), offsets[1:].tolist())):
            out[n] = Detections(xyxy[a:b], conf[a:b], cls[a:b], data={k: v[a:b] for k, v in data.items()})
        return out

    def detect(self, image: np.ndarray) -> Detections:
        """The detections of frame :attr:`frame_index` (stored, or from the wrapped detector)."""
        if self.frame_index is None:
            raise RuntimeError("CachingDetector: set frame_index before detect()")
        if self._stored is not None and self.frame_index in self._stored:
            return self._stored[self.frame_index]
        if self._stored is not None:
            self.misses += 1  # not in the entry (should not happen for the same key): detect, keep the entry
        d = self.detector.detect(image)
        self._recorded[self.frame_index] = d
        return d

    def save(self) -> Path | None:
        """Write the entry from the recorded frames (miss only); returns its path or None."""
        if self._stored is not None or not self._recorded:
            return None
        index = sorted(self._recorded)
        dets = [self._recorded[i] for i in index]
        keys = set(dets[0].data)
        if any(set(d.data) != keys for d in dets):
            keys = set()  # inconsistent extras: keep the rows only
        offsets = np.concatenate([[0], np.cumsum([len(d) for d in dets])]).astype(np.int64)
        arrays = {
            "frame_index": np.asarray(index, np.int64),
            "offsets": offsets,
            "xyxy": np.concatenate([d.xyxy for d in dets]).reshape(-1, 4),
            "confidence": np.concatenate([d.confidence for d in dets]),
            "class_id": np.concatenate([d.class_id for d in dets]),
        }
        for k in sorted(keys):
            v = np.concatenate([d.data[k] for d in dets])
            if v.dtype != object:
                arrays[f"data.{k}"] = v

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)

        return atomic_write(self.path, write)
