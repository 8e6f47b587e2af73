"""PostgreSQL helpers shared by every store that lives in PostgreSQL (events, transits, console),
and the one way a command is told which database to use.

Where the password comes from. A DSN on the command line is visible to every local user in
``ps``, so a ``--dsn`` holding a password is refused. The password comes instead from:

* libpq's own sources: a password file (``PGPASSFILE``, default ``~/.pgpass``, or ``passfile=``
  in the DSN) or the ``PGPASSWORD`` environment variable; or
* a DSN file (``--dsn-file FILE``, or the environment variable ``VIGIL_DSN_FILE``): the whole
  connection string, password included, in a file only its owner may read (mode 0600 or
  stricter; a container's secret file). ``scripts/pg-local.sh`` writes one.

``VIGIL_DSN`` (the environment) may also hold a DSN, password included: the environment of a
process is readable only by its owner and root.

:func:`add_db_options` gives a command ``--db``, ``--dsn`` and ``--dsn-file``;
:func:`db_target` reads them back as ``(sqlite_path, dsn)`` (exactly one set).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Mapping

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import UserError
from .fileio import read_private_file

__all__ = ["DsnError", "add_db_options", "db_target", "read_dsn_file", "redact_dsn", "resolve_dsn"]


class DsnError(UserError, ValueError):
    """The database options are missing, contradictory, or put a password where ``ps`` shows it."""


def redact_dsn(dsn: str) -> str:
    """The DSN without its password (for messages and logs); ``<dsn>`` when it cannot be parsed."""
    try:
        parts = conninfo_to_dict(dsn)
        if "password" in parts:
            parts["password"] = "***"
        return make_conninfo(**parts)
    except (psycopg.Error, TypeError, ValueError):  # unparsable: show nothing of it
        return "<dsn>"


def _has_password(dsn: str) -> bool:
    try:
        return bool(conninfo_to_dict(dsn).get("password"))
    except (psycopg.Error, TypeError, ValueError) as exc:
        raise DsnError(f"--dsn is not a PostgreSQL connection string: {exc}") from None


def read_dsn_file(path: str | Path) -> str:
    """The DSN held in ``path`` (first non-empty, non-comment line). The file must be a regular
    file that neither its group nor others may read or write (mode 0600 or stricter)."""
    p = Path(path)
    data = read_private_file(p, "DSN file", DsnError, why="it holds a password, so only its owner may read it")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DsnError(f"cannot read DSN file {p}: {exc}") from None
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                conninfo_to_dict(line)
            except (psycopg.Error, TypeError, ValueError) as exc:
                raise DsnError(f"DSN file {p} does not hold a PostgreSQL connection string: {exc}") from None
            return line
    raise DsnError(f"DSN file {p} is empty")


def resolve_dsn(
    dsn: str | None = None, dsn_file: str | Path | None = None, *, env: Mapping[str, str] | None = None
) -> str | None:
    """The DSN to use: ``dsn_file``'s, else ``dsn`` (refused if it holds a password), else the
    environment's (``VIGIL_DSN_FILE``, then ``VIGIL_DSN``); ``None`` when none is given."""
    env = os.environ if env is None else env
    if dsn and dsn_file:
        raise DsnError("give --dsn or --dsn-file, not both")
    if dsn_file:
        return read_dsn_file(dsn_file)
    if dsn:
        if _has_password(dsn):
            raise DsnError(
                "--dsn holds a password, which `ps` shows to every local user: put the password in a "
                "password file (PGPASSFILE, ~/.pgpass) or the whole DSN in a file only you can read "
                "(--dsn-file FILE; scripts/pg-local.sh writes one)"
            )
        return dsn
    if env.get("VIGIL_DSN_FILE"):
        return read_dsn_file(env["VIGIL_DSN_FILE"])
    return env.get("VIGIL_DSN") or None


def add_db_options(parser: argparse.ArgumentParser, what: str = "the event database") -> None:
    """``--db PATH`` (SQLite), ``--dsn DSN`` and ``--dsn-file FILE`` (PostgreSQL) on ``parser``."""
    parser.add_argument("--db", help=f"{what}: a SQLite file")
    parser.add_argument(
        "--dsn",
        help=f"{what} in PostgreSQL: a connection string without password (libpq reads it from "
        "PGPASSFILE/~/.pgpass or PGPASSWORD); also VIGIL_DSN",
    )
    parser.add_argument(
        "--dsn-file",
        help="a file (mode 0600) holding the PostgreSQL connection string, password included "
        "(instead of --dsn; also VIGIL_DSN_FILE)",
    )


def db_target(args: argparse.Namespace, *, env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """``(sqlite_path, dsn)`` from :func:`add_db_options`' options: exactly one is set.

    The environment's DSN (``VIGIL_DSN_FILE``, ``VIGIL_DSN``) is used only when neither ``--db``
    nor ``--dsn``/``--dsn-file`` is given."""
    db = getattr(args, "db", None) or None
    given = getattr(args, "dsn", None) or getattr(args, "dsn_file", None)
    if db and given:
        raise DsnError("give exactly one of --db PATH (SQLite) or --dsn/--dsn-file (PostgreSQL)")
    if db:
        return str(db), None
    dsn = resolve_dsn(getattr(args, "dsn", None), getattr(args, "dsn_file", None), env=env)
    if not dsn:
        raise DsnError("give exactly one of --db PATH (SQLite) or --dsn/--dsn-file (PostgreSQL)")
    return None, dsn
