"""The console's database connection: one small adapter over ``sqlite3`` or ``psycopg``, so
:mod:`.db` keeps one set of portable queries.

:func:`open_sqlite` opens the console's SQLite file (the events file, or a separate state file
with the events file attached read-only); :func:`open_postgres` connects to the PostgreSQL
database that holds the aggregator's ``events`` table (the console tables go beside it).
Both return a :class:`Conn`:

* :meth:`Conn.execute` runs one statement written for SQLite's ``?`` markers (translated to
  psycopg's ``%s``), with ``{events}`` standing for the event table, and returns
  ``(rows, rowcount)``;
* :meth:`Conn.ddl` fills a DDL statement's dialect tokens (:data:`DDL_TOKENS`);
* :meth:`Conn.transaction` is one transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a
  transaction block under :meth:`Conn.lock_migrations`' advisory lock when asked);
* ``errors`` / ``integrity_errors``: the driver's exception classes.

PostgreSQL specifics: the ``id`` column of ``events`` is ``uuid``; it is read as text (a
loader registered on the connection), and :meth:`Conn.event_id` turns a text id into the
parameter to compare it with (``None``: it cannot name a stored event, e.g. a malformed id in a
URL, which would otherwise be a uuid cast error). A lost connection is reopened on the next
statement; messages name the database by its redacted DSN (:func:`vigil.postgres.redact_dsn`).
The caller holds the lock: a :class:`Conn` is not thread-safe by itself.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.string import TextLoader

from vigil.postgres import redact_dsn
from vigil.sqlite import connect, transaction

__all__ = ["Conn", "DDL_TOKENS", "SqliteConn", "PgConn", "open_sqlite", "open_postgres"]

#: DDL dialect tokens -> (SQLite, PostgreSQL) text
DDL_TOKENS = {
    "{serial}": ("INTEGER PRIMARY KEY AUTOINCREMENT", "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
    "{real}": ("REAL", "double precision"),  # PostgreSQL's REAL is 4 bytes: too coarse for epoch seconds
}
_MIGRATION_LOCK = 0x76696733  # "vig3": console schema migrations in PostgreSQL
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class Conn:
    """What :class:`~.db.ConsoleDB` needs of a connection (see the module docstring)."""

    #: ``"sqlite"`` or ``"postgres"``
    kind = ""
    #: the driver's base error class(es), and its constraint-violation class(es)
    errors: tuple[type[Exception], ...] = ()
    integrity_errors: tuple[type[Exception], ...] = ()
    #: where the database is, for messages (a path, or a DSN without its password)
    where = ""
    #: the event table as queries name it (``{events}`` in a statement)
    events_table = "events"

    def execute(self, sql: str, params: tuple = ()) -> tuple[list[tuple], int]:
        """Run one statement; ``(rows fetched, rowcount)`` (rows ``[]`` for a statement without any)."""
        raise NotImplementedError

    def transaction(self) -> Any:
        """A context manager: one transaction (commit on exit, rollback on an exception)."""
        raise NotImplementedError

    def ddl(self, stmt: str) -> str:
        """``stmt`` with its :data:`DDL_TOKENS` in this dialect."""
        i = 1 if self.kind == "postgres" else 0
        for token, forms in DDL_TOKENS.items():
            stmt = stmt.replace(token, forms[i])
        return stmt

    def table_exists(self, name: str) -> bool:
        raise NotImplementedError

    def lock_migrations(self) -> None:
        """Inside a transaction: wait until no other console migrates this database."""

    def event_id(self, text: str) -> str | None:
        """The parameter to compare the event table's ``id`` with for ``text`` (``None``: no
        stored event can have it)."""
        return text

    def close(self) -> None:
        raise NotImplementedError


class SqliteConn(Conn):
    kind = "sqlite"
    errors = (sqlite3.Error,)
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, db: sqlite3.Connection, where: str, events_table: str) -> None:
        self._db = db
        self.where = where
        self.events_table = events_table

    def execute(self, sql: str, params: tuple = ()) -> tuple[list[tuple], int]:
        cur = self._db.execute(sql.replace("{events}", self.events_table), params)
        return cur.fetchall(), cur.rowcount

    def transaction(self) -> Any:
        return transaction(self._db)

    def table_exists(self, name: str) -> bool:
        rows, _ = self.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return bool(rows)

    def close(self) -> None:
        self._db.close()


def open_sqlite(events_path: Path, state_path: Path, *, error: type[Exception]) -> SqliteConn:
    """The console's SQLite connection: ``state_path`` (WAL, SQLite's default ``synchronous``
    FULL for the audit trail), with ``events_path`` attached read-only when it is another file.
    Failures raise ``error``."""
    db = connect(state_path, what="console database", error=error, synchronous=None, create_parent=False)
    try:
        if state_path.resolve() != events_path.resolve():
            db.execute("ATTACH DATABASE ? AS ev", (f"{events_path.resolve().as_uri()}?mode=ro",))
            table = "ev.events"
        else:
            table = "events"
    except sqlite3.Error as exc:
        db.close()
        raise error(f"cannot attach {events_path} to {state_path}: {exc}") from None
    where = str(state_path) if table == "events" else f"{state_path} / {events_path}"
    return SqliteConn(db, where, table)


class PgConn(Conn):
    kind = "postgres"
    errors = (psycopg.Error,)
    integrity_errors = (psycopg.IntegrityError,)

    def __init__(self, dsn: str, *, connect_timeout_s: int = 10) -> None:
        self._dsn = dsn
        self.where = redact_dsn(dsn)
        self._timeout = connect_timeout_s
        self._closed = False
        self._db = self._connect()

    def _connect(self) -> psycopg.Connection:
        db = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._timeout)
        db.adapters.register_loader("uuid", TextLoader)  # event ids read as text, as in SQLite
        return db

    def _live(self) -> psycopg.Connection:
        """The connection, reopened if the server dropped it (never after :meth:`close`)."""
        if (self._db.closed or self._db.broken) and not self._closed:
            self._db.close()
            self._db = self._connect()
        return self._db

    def execute(self, sql: str, params: tuple = ()) -> tuple[list[tuple], int]:
        sql = sql.replace("{events}", self.events_table).replace("%", "%%").replace("?", "%s")
        cur = self._live().execute(sql, params)
        return (cur.fetchall() if cur.description is not None else []), cur.rowcount

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._live().transaction():
            yield

    def table_exists(self, name: str) -> bool:
        rows, _ = self.execute("SELECT to_regclass(?) IS NOT NULL", (name,))
        return bool(rows[0][0])

    def lock_migrations(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def event_id(self, text: str) -> str | None:
        # ids are stored as uuid and read back in this canonical form: any other text matches
        # nothing (and would be a cast error if sent)
        return text if isinstance(text, str) and _UUID_RE.match(text) else None

    def close(self) -> None:
        self._closed = True
        self._db.close()


def open_postgres(dsn: str, *, error: type[Exception]) -> PgConn:
    """A connection to the PostgreSQL database ``dsn``; failures raise ``error`` naming the
    database by its redacted DSN."""
    try:
        return PgConn(dsn)
    except psycopg.Error as exc:
        raise error(f"cannot connect to PostgreSQL {redact_dsn(dsn)}: {exc}") from None
