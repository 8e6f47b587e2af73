"""SHA-256 of files, read in 1 MiB chunks (model files are hundreds of megabytes)."""

from __future__ import annotations

import hashlib
import os

__all__ = ["sha256_file", "sha256_files"]

_CHUNK = 1 << 20


def _update(h, path: str | os.PathLike) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)


def sha256_file(path: str | os.PathLike) -> str:
    """The plain SHA-256 of a file's bytes, hex (what ``sha256sum`` prints)."""
    h = hashlib.sha256()
    _update(h, path)
    return h.hexdigest()


def sha256_files(*paths: str | os.PathLike) -> str:
    """One SHA-256 over several files in order, each prefixed by its length (8 bytes, little
    endian), so that moving bytes from one file to the next changes the digest."""
    h = hashlib.sha256()
    for p in paths:
        h.update(os.path.getsize(p).to_bytes(8, "little"))
        _update(h, p)
    return h.hexdigest()
