"""Atomic file writes: a half-written file must never replace a good one.

Every writer here writes a temporary file in the destination's folder and renames it over
the destination (``os.replace`` is atomic on POSIX), so a failure at any point leaves the
previous file, or no file, behind. ``durable=True`` also flushes the data to disk
(``fsync``) before the rename, for files that must survive a power cut (model cache,
exports); status snapshots rewritten every second skip it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "read_private_file"]


def _default_mode(path: Path) -> int:
    """The mode a plain ``open()`` would give ``path`` (or the mode of the file it replaces)."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(
    path: str | os.PathLike, writer: Callable[[Path], None], *, durable: bool = False, allow_empty: bool = False
) -> Path:
    """Call ``writer(tmp_path)`` to produce the file, then rename it to ``path``.

    ``tmp_path`` lies in the same folder and keeps ``path``'s suffix (OpenCV's FileStorage
    picks its format from the suffix). The folder is created if missing. An empty result is
    an error unless ``allow_empty``. ``mode`` of the result: the replaced file's, else what
    ``open()`` would give (``mkstemp`` alone would make it 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        if not tmp.is_file() or (tmp.stat().st_size == 0 and not allow_empty):
            raise OSError(f"{path}: nothing was written")
        os.chmod(tmp, _default_mode(path))
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(
    path: str | os.PathLike, data: bytes, *, durable: bool = False, allow_empty: bool = False
) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), durable=durable, allow_empty=allow_empty)


def atomic_write_text(path: str | os.PathLike, text: str, *, durable: bool = False, allow_empty: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    write = lambda tmp: tmp.write_text(text, encoding="utf-8")  # noqa: E731
    return atomic_write(path, write, durable=durable, allow_empty=allow_empty)


def read_private_file(
    path: str | os.PathLike,
    label: str,
    error: Callable[[str], Exception],
    why: str = "its group or others may read it; only its owner may",
) -> bytes:
    """The bytes of a file holding a secret (a password, a key), refused unless it is a regular
    file that neither its group nor others may read or write (mode 0600 or stricter).

    ``label`` names the file in messages (``"DSN file"``, ``"webhook target 'cr': secret file"``);
    ``why`` says why the mode matters; ``error`` builds the exception raised (the caller's
    :class:`~vigil.errors.UserError`). Emptiness and content are the caller's to judge."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise error(f"{label} {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{label} {p} is not a regular file")
    if st.st_mode & 0o077:
        raise error(f"{label} {p} has mode {stat.S_IMODE(st.st_mode):04o}: {why} (chmod 600 {p})")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise error(f"{label} {p}: cannot read it: {exc.strerror or exc}") from None
