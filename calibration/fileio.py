"""Atomic file writes: a half-written calibration file must never replace a good one.

Every writer here writes a temporary file in the destination's folder and renames it over
the destination (``os.replace`` is atomic on POSIX), so a failure at any point leaves the
previous file, or no file, behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text"]


def atomic_write(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` to produce the file, then rename it to ``path``.

    ``tmp_path`` lies in the same folder and keeps ``path``'s suffix (OpenCV's FileStorage
    picks its format from the suffix). The folder is created if missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise OSError(f"{path}: nothing was written")
        # mkstemp creates 0600; give the file the mode a plain open() would (or the old file's)
        if path.exists():
            mode = path.stat().st_mode & 0o777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
