"""SQLite connections the way every Vigil database opens them, and schema migrations.

Every store (event outbox, event store, transits, console state, evidence index) opens its
file through :func:`connect`: autocommit mode (``isolation_level=None``, transactions are
explicit ``BEGIN``/``COMMIT``), usable from the thread that owns the object's lock
(``check_same_thread=False``), a busy timeout instead of an immediate ``database is locked``,
WAL journal and the requested ``synchronous`` level. Failures raise the caller's error class
with a message that names the file and what it is for.

A damaged file (not a database, or a malformed one) is told apart from other failures
(:func:`is_corruption`; ``connect(..., corrupt=...)``), and :func:`set_aside` moves such a file,
with its ``-wal`` and ``-shm`` companions, out of the way without deleting anything.

Schema versions live in a one-column table per database (``<name>_version`` or
``schema_version``: existing files keep theirs); :func:`migrate` runs the steps from the
file's version up to the code's, in one transaction, and refuses a file newer than the code.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "connect",
    "migrate",
    "schema_version",
    "transaction",
    "is_corruption",
    "set_aside",
    "SYNCHRONOUS_LEVELS",
]

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def is_corruption(exc: BaseException) -> bool:
    """Whether a ``sqlite3`` error says the file is damaged: not a database at all
    (``SQLITE_NOTADB``) or malformed (``SQLITE_CORRUPT`` and its extended codes)."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


def set_aside(path: str | Path, tag: str = "corrupt") -> Path:
    """Move the database at ``path`` (and its ``-wal``/``-shm`` files) to
    ``PATH.<tag>-<UTC timestamp>`` (a new name, never over an existing file); return it.

    Nothing is deleted: the moved file opens as it was, its write-ahead log beside it."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.{tag}-{stamp}")
    k = 1
    while any(Path(f"{aside}{suffix}").exists() for suffix in ("", "-wal", "-shm")):
        k += 1
        aside = path.with_name(f"{path.name}.{tag}-{stamp}-{k}")
    os.rename(path, aside)
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{path}{suffix}")
        if companion.exists():
            os.rename(companion, f"{aside}{suffix}")
    return aside


def connect(
    path: str | Path,
    *,
    what: str,
    error: type[Exception] = sqlite3.Error,
    corrupt: type[Exception] | None = None,
    readonly: bool = False,
    wal: bool = True,
    synchronous: str | None = "NORMAL",
    busy_timeout_ms: int = 5000,
    create_parent: bool = True,
) -> sqlite3.Connection:
    """Open the SQLite database at ``path``.

    ``what`` names the database in messages ("event outbox", "event database", ...);
    ``error`` is the exception raised on failure; ``corrupt`` (default ``error``) the one
    raised when the file is damaged (:func:`is_corruption`). ``readonly`` opens an existing file with
    ``mode=ro`` (a missing file is an error, never a new empty database). ``synchronous``:
    one of :data:`SYNCHRONOUS_LEVELS` (``None`` leaves SQLite's default).
    """
    path = Path(path)
    if synchronous is not None and synchronous.upper() not in SYNCHRONOUS_LEVELS:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}, got {synchronous!r}")
    try:
        if readonly:
            if not path.is_file():
                raise error(f"no {what} at {path}")
            db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            if create_parent:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.parent.exists():
                raise error(f"directory {path.parent} does not exist")
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        kind = corrupt if corrupt is not None and is_corruption(exc) else error
        raise kind(f"cannot open the {what} {path}: {exc}") from None
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if not readonly:
            if wal:
                mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise error(f"{what} {path}: cannot switch to WAL (journal_mode {mode})")
            if synchronous is not None:
                db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    except sqlite3.Error as exc:
        db.close()
        kind = corrupt if corrupt is not None and is_corruption(exc) else error
        raise kind(f"cannot use the {what} {path}: {exc}") from None
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def transaction(db: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """``BEGIN <mode>`` ... ``COMMIT``, or ``ROLLBACK`` if the block (or the ``COMMIT``) raises.

    The block's own error is what propagates: SQLite rolls a transaction back by itself after
    some errors (``database or disk is full``, I/O errors), and a ``ROLLBACK`` issued then
    fails with ``cannot rollback - no transaction is active``; that second error must not
    hide the first (it is attached to it as a note)."""
    db.execute(f"BEGIN {mode}")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException as exc:
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error as rollback_error:
                exc.add_note(f"and the rollback failed: {rollback_error}")
        raise


def schema_version(db: sqlite3.Connection, table: str) -> int:
    """The highest version recorded in ``table`` (0 when the table does not exist or is empty)."""
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    if row is None:
        return 0
    (version,) = db.execute(f"SELECT COALESCE(MAX(version), 0) FROM {table}").fetchone()
    return int(version)


def migrate(
    db: sqlite3.Connection,
    *,
    table: str,
    target: int,
    steps: Mapping[int, Sequence[str] | Callable[[sqlite3.Connection], None]],
    what: str,
    error: type[Exception] = sqlite3.Error,
    current: int | None = None,
) -> int:
    """Bring the database from its version to ``target`` in one transaction; return the old version.

    ``steps[v]`` takes a database at version ``v - 1`` to ``v``: SQL statements, or a function
    of the connection. ``current`` overrides the version read from ``table`` (for files from
    before the version table). A file newer than ``target`` raises ``error``.
    """
    with transaction(db):
        old = schema_version(db, table) if current is None else current
        if old > target:
            raise error(f"{what} has schema {old}; this build reads {target}: upgrade vigil")
        for version in range(old + 1, target + 1):
            step = steps.get(version, ())
            if callable(step):
                step(db)
            else:
                for stmt in step:
                    db.execute(stmt)
        if old != target:
            db.execute(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER NOT NULL)")
            db.execute(f"DELETE FROM {table}")
            db.execute(f"INSERT INTO {table} VALUES (?)", (target,))
    return old
