"""Evidence objects (plate crops, alarm snapshots, clips) kept apart from events, referenced by id.

:class:`EvidenceStore` writes JPEG files (and, through :meth:`EvidenceStore.put_file`, MP4 clips)
into an access-controlled folder (created with mode 0700, files 0600): ``<folder>/<id>.jpg`` (or
``.mp4``) plus ``<id>.json`` (camera, time, kind), each written
atomically (:func:`vigil.fileio.atomic_write`: a crash leaves the whole file or none, never
a truncated crop). Events carry only ``evidence_id``. Only list hits store a crop (privacy:
no-hit transits keep none). Crops are plate crops, which do not show faces; :meth:`put` blurs
any face OpenCV's frontal face cascade finds when that cascade is installed (``blur_faces=True``,
the default).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

from vigil.fileio import atomic_write

__all__ = ["EvidenceStore", "EvidenceError", "EVIDENCE_SUFFIXES"]

_ID = re.compile(r"^[0-9a-f]{32}$")
#: the files an evidence id may have (besides its ``.json``)
EVIDENCE_SUFFIXES = (".jpg", ".mp4")


class EvidenceError(ValueError):
    pass


def _blur_faces(image: np.ndarray) -> np.ndarray:
    path = (
        Path(getattr(cv2, "data", None).haarcascades if hasattr(cv2, "data") else "")
        / "haarcascade_frontalface_default.xml"
    )
    if not path.is_file() or min(image.shape[:2]) < 48:
        return image
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        return image
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    out = image.copy()
    for x, y, w, h in cascade.detectMultiScale(gray, 1.1, 5, minSize=(24, 24)):
        out[y : y + h, x : x + w] = cv2.GaussianBlur(out[y : y + h, x : x + w], (0, 0), max(w, h) / 6)
    return out


class EvidenceStore:
    """A folder of evidence images, readable by the service user only."""

    def __init__(self, folder: str | Path, blur_faces: bool = True) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self.blur_faces = blur_faces

    def put(self, image: np.ndarray, **meta) -> str:
        """Store ``image`` (BGR, faces blurred first when ``blur_faces``) with ``meta``; its id."""
        if image is None or getattr(image, "size", 0) == 0:
            raise EvidenceError("empty evidence image")
        if self.blur_faces:
            image = _blur_faces(image)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise EvidenceError("cannot encode evidence image")
        eid = uuid.uuid4().hex
        self._store(eid, ".jpg", lambda tmp: tmp.write_bytes(buf.tobytes()), meta)
        return eid

    @staticmethod
    def new_id() -> str:
        """A fresh evidence id (32 hex digits), for an object written later (:meth:`put_file`)."""
        return uuid.uuid4().hex

    def put_file(self, eid: str, suffix: str, writer, **meta) -> str:
        """Store the file ``writer(tmp_path)`` produces (e.g. an MP4 clip) as evidence ``eid``
        (from :meth:`new_id`) with ``suffix`` (one of :data:`EVIDENCE_SUFFIXES`) and ``meta``."""
        if not _ID.match(str(eid)) or suffix not in EVIDENCE_SUFFIXES:
            raise EvidenceError(f"bad evidence id {eid!r} or suffix {suffix!r}")
        self._store(eid, suffix, writer, meta)
        return eid

    def _store(self, eid: str, suffix: str, writer, meta: dict) -> None:
        for sfx, write in (
            (suffix, writer),
            (".json", lambda tmp: tmp.write_bytes(json.dumps({"id": eid, "created": time.time(), **meta}).encode())),
        ):
            path = atomic_write(self.folder / f"{eid}{sfx}", write)
            os.chmod(path, 0o600)  # the folder is 0700: nobody else saw the file before this

    def path(self, eid: str, suffix: str = ".jpg") -> Path:
        if not _ID.match(str(eid)):
            raise EvidenceError(f"bad evidence id {eid!r}")
        p = self.folder / f"{eid}{suffix}"
        if not p.is_file():
            raise EvidenceError(f"no evidence {eid}")
        return p

    def get(self, eid: str) -> bytes:
        return self.path(eid).read_bytes()

    def purge(self, older_than_s: float, now: float | None = None, keep: set[str] | None = None) -> int:
        """Delete evidence files (crops, snapshots, clips) older than ``older_than_s`` seconds
        except ids in ``keep``; the number of files deleted. Files that vanish during the scan
        (another purger of the same folder) are skipped."""
        now = time.time() if now is None else now
        n = 0
        for p in self.folder.iterdir():
            if p.suffix not in EVIDENCE_SUFFIXES or p.name.startswith("."):
                continue
            eid = p.stem
            if keep and eid in keep:
                continue
            try:
                mtime = p.stat().st_mtime
            except FileNotFoundError:  # deleted meanwhile (several purgers may share the folder)
                continue
            if now - mtime > older_than_s:
                try:
                    p.unlink()
                except FileNotFoundError:  # another purger was first: not counted here
                    continue
                finally:
                    (self.folder / f"{eid}.json").unlink(missing_ok=True)
                n += 1
        return n
