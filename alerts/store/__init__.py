"""Aggregator-side event stores: SQLite (:mod:`.sqlite`) or PostgreSQL (:mod:`.postgres`).

Both have one interface (:class:`~.base.Store`; the reads are :class:`~.base.EventReads`),
and each opens the plate transit store on its own database (``open_transits()``).
:func:`open_store` picks the backend from ``db=PATH`` or ``dsn=DSN``.
"""

from __future__ import annotations

from pathlib import Path

from .base import EventReads, Store, StoredEvent, StoreError
from .postgres import PG_SCHEMA_VERSION, PgEventStore, redact_dsn
from .sqlite import STORE_SCHEMA_VERSION, EventStore

__all__ = [
    "EventReads",
    "EventStore",
    "PG_SCHEMA_VERSION",
    "PgEventStore",
    "STORE_SCHEMA_VERSION",
    "Store",
    "StoreError",
    "StoredEvent",
    "open_store",
    "redact_dsn",
]


def open_store(
    *, db: str | Path | None = None, dsn: str | None = None, readonly: bool = False
) -> EventStore | PgEventStore:
    """Open the SQLite store at ``db`` or the PostgreSQL store at ``dsn`` (exactly one).

    ``readonly``: for reading only (``vigil events``; a missing SQLite file is an error).
    Otherwise the store is opened for an aggregator that writes to it: a SQLite file has one
    (a second is refused: ``single_writer``); a PostgreSQL database may have several at once.
    """
    if bool(db) == bool(dsn):
        raise StoreError("give exactly one of --db PATH or --dsn DSN")
    if dsn:
        return PgEventStore(dsn, readonly=readonly)
    return EventStore(db, readonly=readonly, single_writer=not readonly)
