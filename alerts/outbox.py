"""The edge node's outbox: where an event waits, from ``publish()`` until the aggregator
acknowledges it.

:class:`Outbox` is what :class:`~vigil.alerts.publisher.EventPublisher` needs of one
(``put``/``put_many``/``ack``/``ack_many``/``get``/``ids``/``__len__``/``__contains__``,
``last_seq``, ``max_events``, ``close``); two implementations:

* :class:`MemoryOutbox`: bounded and in memory, lost on exit (the default);
* :class:`SqliteOutbox`: durable: every event is committed to a local SQLite file (WAL)
  before it is sent, and deleted only when the aggregator acknowledges it.

Both keep the per-camera sequence numbers: ``last_seq(camera)`` is the highest ``seq`` ever
put for that camera (kept after the events are acknowledged; in the file for
:class:`SqliteOutbox`), so a restarted worker continues at ``last_seq + 1`` and ``seq`` stays
strictly increasing across restarts. ``put`` records it in the same transaction as the event,
so an event either exists with its sequence number or neither does.

Durability of :class:`SqliteOutbox`: ``synchronous="NORMAL"`` (default) survives the process being killed at any
instant (a commit is a write to the WAL before ``put`` returns); ``"FULL"`` also survives
power loss, at the cost of an fsync per event. The unacknowledged events are mirrored in
memory (in insertion order, which is per-camera ``seq`` order) with their row numbers, so
the sender never reads the file and an acknowledgement deletes its row by row number (the
table has no index on the random event id: such an index made every insert and delete about
four times dearer); the mirror and the file are bounded by ``max_events`` (the oldest is dropped, and the
drop is reported to the caller, beyond that).

A damaged outbox file (not a database, or malformed) is not a crash: opening it raises
:class:`OutboxCorruptError` (a :class:`~vigil.errors.UserError`: one line, exit code 2) after
moving the file aside to ``PATH.corrupt-<UTC timestamp>`` (with its ``-wal``/``-shm``), so that
nothing in it is lost and the message says where it went. The node refuses to start on it;
started again, it begins a fresh outbox at ``PATH``.

A write that fails says why: e.g. ``database or disk is full``, not the ``cannot rollback``
of the rollback that follows it (:func:`vigil.sqlite.transaction`).

Neither is thread-safe by itself: the publisher guards its outbox with its lock.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import OrderedDict
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator, Protocol

from vigil.errors import UserError
from vigil.sqlite import connect, is_corruption, migrate, set_aside, transaction

__all__ = [
    "Outbox",
    "OutboxItem",
    "PendingView",
    "MemoryOutbox",
    "SqliteOutbox",
    "OutboxError",
    "OutboxCorruptError",
    "OUTBOX_SCHEMA_VERSION",
    "count_pending",
]

log = logging.getLogger(__name__)

OUTBOX_SCHEMA_VERSION = 2

OutboxItem = tuple[str, bytes, "str | None", "int | None"]  # (event id, wire bytes, camera, seq)

# Schema 2: rows are addressed by their rowid ``n`` (kept in memory beside each pending id), so
# the table has no index on the random UUID ``id``: inserting and deleting through such an
# index cost ~4x more than the rows themselves. Ids are unique because ``put`` checks the
# in-memory mirror first. Schema 1 (``id TEXT UNIQUE``) is migrated on open.
_TABLE = """CREATE TABLE IF NOT EXISTS outbox (
        n       INTEGER PRIMARY KEY AUTOINCREMENT,
        id      TEXT NOT NULL,
        camera  TEXT,
        seq     INTEGER,
        data    BLOB NOT NULL,
        put_at  REAL NOT NULL
    )"""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbox_version (version INTEGER PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS sequences (camera TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)",
)

_MIGRATE_1_TO_2 = (
    "ALTER TABLE outbox RENAME TO outbox_v1",
    _TABLE,
    "INSERT INTO outbox (n, id, camera, seq, data, put_at) SELECT n, id, camera, seq, data, put_at FROM outbox_v1",
    "DROP TABLE outbox_v1",
)


class OutboxError(RuntimeError):
    """The outbox file cannot be opened or written (message names it and says why)."""


class OutboxCorruptError(OutboxError, UserError):
    """The outbox file is damaged; it was moved aside (``aside``, named in the message)."""

    def __init__(self, message: str, path: Path, aside: Path | None) -> None:
        super().__init__(message)
        self.path, self.aside = path, aside


class _Damaged(Exception):
    """Internal: :func:`vigil.sqlite.connect` found the file damaged (the message says how)."""


def _write_error(path: Path, exc: sqlite3.Error) -> OutboxError:
    hint = ""
    if getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL":
        hint = f" (free space on the disk holding {path.parent})"
    return OutboxError(f"cannot write to the event outbox {path}: {exc}{hint}")


class Outbox(Protocol):
    """What :class:`~vigil.alerts.publisher.EventPublisher` needs of its outbox.

    Pending events are ``id -> wire bytes`` in the order they were put; ``put``/``put_many``
    return the ids dropped (oldest first) to stay within ``max_events``.
    """

    max_events: int

    def put(self, event_id: str, data: bytes, camera: str | None = None, seq: int | None = None) -> list[str]: ...

    def put_many(self, items: list[OutboxItem]) -> list[str]: ...

    def ack(self, event_id: str) -> bool: ...

    def ack_many(self, event_ids: Iterable[str]) -> list[bool]: ...

    def get(self, event_id: str) -> bytes | None: ...

    def ids(self) -> Iterator[str]: ...

    def last_seq(self, camera: str) -> int: ...

    def __contains__(self, event_id: object) -> bool: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


class PendingView:
    """Read access to an outbox's pending events, kept in ``self._items`` (id → wire bytes,
    oldest first); shared by :class:`MemoryOutbox` and :class:`SqliteOutbox`."""

    _items: "OrderedDict[str, bytes]"

    def get(self, event_id: str) -> bytes | None:
        return self._items.get(event_id)

    def ids(self) -> Iterator[str]:
        return iter(list(self._items))

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._items

    def __len__(self) -> int:
        return len(self._items)


class MemoryOutbox(PendingView):
    """Bounded, insertion-ordered buffer of unacknowledged events (id → wire bytes).

    Not thread-safe by itself: :class:`~vigil.alerts.publisher.EventPublisher` guards it with its lock.
    """

    def __init__(self, max_events: int) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events}")
        self.max_events = max_events
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._last: dict[str, int] = {}

    def last_seq(self, camera: str) -> int:
        """Highest ``seq`` put for ``camera`` by this object (0 if none; not durable)."""
        return self._last.get(camera, 0)

    def put(self, event_id: str, data: bytes, camera: str | None = None, seq: int | None = None) -> list[str]:
        """Add an event; returns the ids dropped (oldest first) to make room."""
        if event_id in self._items:
            return []
        dropped = []
        while len(self._items) >= self.max_events:
            old_id, _ = self._items.popitem(last=False)
            dropped.append(old_id)
        self._items[event_id] = data
        if camera is not None and seq is not None and seq > self._last.get(camera, 0):
            self._last[camera] = seq
        return dropped

    def put_many(self, items: list[OutboxItem]) -> list[str]:
        dropped: list[str] = []
        for event_id, data, camera, seq in items:
            dropped.extend(self.put(event_id, data, camera, seq))
        return dropped

    def ack(self, event_id: str) -> bool:
        """Remove an acknowledged event; ``False`` if it was not (or no longer) here."""
        return self._items.pop(event_id, None) is not None

    def ack_many(self, event_ids: Iterable[str]) -> list[bool]:
        return [self.ack(i) for i in event_ids]

    def close(self) -> None:
        pass


def _table_exists(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _upgrade_to_2(db: sqlite3.Connection, path: Path) -> None:
    """Schema 2 from an empty file, or from schema 1 (an ``outbox`` table, with or without a version table)."""
    for stmt in _SCHEMA:
        db.execute(stmt)
    if _table_exists(db, "outbox"):
        for stmt in _MIGRATE_1_TO_2:
            db.execute(stmt)
        log.info("event outbox %s migrated to schema %d", path, OUTBOX_SCHEMA_VERSION)
    else:
        db.execute(_TABLE)


class SqliteOutbox(PendingView):
    """The durable outbox in the SQLite file at ``path`` (created with its folder if missing)."""

    def __init__(self, path: str | Path, *, max_events: int = 200_000, synchronous: str = "NORMAL") -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events}")
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, got {synchronous!r}")
        self.path = Path(path)
        self.max_events = max_events
        try:
            self._open(synchronous)
        except _Damaged as exc:
            raise self._set_aside(str(exc)) from None

    def _open(self, synchronous: str) -> None:
        self._db = connect(self.path, what="event outbox", error=OutboxError, corrupt=_Damaged, synchronous=synchronous)
        try:
            # a schema-1 file may have no version table: schema_version() reads 0 and step 2 finds its table
            migrate(
                self._db,
                table="outbox_version",
                target=OUTBOX_SCHEMA_VERSION,
                steps={2: partial(_upgrade_to_2, path=self.path)},
                what=f"event outbox {self.path}",
                error=OutboxError,
            )
            rows = self._db.execute("SELECT n, id, data FROM outbox ORDER BY n").fetchall()
            self._items: OrderedDict[str, bytes] = OrderedDict()
            self._rowid: dict[str, int] = {}
            for n, i, d in rows:
                if i in self._items:  # cannot happen through put(); a hand-edited file
                    continue
                self._items[i] = bytes(d)
                self._rowid[i] = n
            self._last = dict(self._db.execute("SELECT camera, last_seq FROM sequences").fetchall())
        except sqlite3.Error as exc:
            self._db.close()
            if is_corruption(exc):
                raise _Damaged(f"cannot use the event outbox {self.path}: {exc}") from None
            raise OutboxError(f"cannot use the event outbox {self.path}: {exc}") from None
        except OutboxError:
            self._db.close()
            raise
        if self._items:
            log.info(
                "event outbox %s: %d unacknowledged event(s) from a previous run will be sent",
                self.path,
                len(self._items),
            )

    def _set_aside(self, reason: str) -> OutboxCorruptError:
        """Move the damaged file out of the way (nothing deleted); the error to raise."""
        detail = reason.rsplit(f"{self.path}: ", 1)[-1]  # SQLite's words
        try:
            aside = set_aside(self.path)
        except OSError as exc:
            return OutboxCorruptError(
                f"the event outbox {self.path} is damaged ({detail}) and could not be moved aside ({exc}): "
                "move it away to start with a fresh outbox (its unacknowledged events are in it)",
                self.path,
                None,
            )
        return OutboxCorruptError(
            f"the event outbox {self.path} is damaged ({detail}); moved it aside to {aside} (nothing "
            f"deleted: `sqlite3 {aside} .recover` may salvage its unacknowledged events); start again "
            "to begin with a fresh outbox",
            self.path,
            aside,
        )

    # ------------------------------------------------------------------ sequences
    def last_seq(self, camera: str) -> int:
        """Highest ``seq`` ever put for ``camera`` (0 if none): continue at ``last_seq + 1``."""
        return int(self._last.get(camera, 0))

    # ------------------------------------------------------------------ the MemoryOutbox API
    def put(self, event_id: str, data: bytes, camera: str | None = None, seq: int | None = None) -> list[str]:
        """Commit an event (and its camera's ``seq``); returns ids dropped to make room."""
        return self.put_many([(event_id, data, camera, seq)])

    def put_many(self, items: list[OutboxItem]) -> list[str]:
        """Commit several ``(id, data, camera, seq)`` in one transaction (all or none);
        returns the ids dropped (oldest first) to make room."""
        fresh: dict[str, OutboxItem] = {}
        for item in items:
            if item[0] not in self._items and item[0] not in fresh:
                fresh[item[0]] = item
        if not fresh:
            return []
        n_over = len(self._items) + len(fresh) - self.max_events
        dropped = [i for i, _ in zip(self._items, range(max(0, n_over)))]
        # more new events than max_events: only the newest are kept (the others count as dropped)
        n_keep = len(fresh) - max(0, n_over - len(dropped))
        kept = list(fresh.values())[len(fresh) - n_keep :]
        dropped += [item[0] for item in list(fresh.values())[: len(fresh) - n_keep]]
        lasts: dict[str, int] = {}
        for _, _, camera, seq in fresh.values():
            if camera is not None and seq is not None and seq > max(self._last.get(camera, 0), lasts.get(camera, 0)):
                lasts[camera] = seq
        now = time.time()
        try:
            with transaction(self._db):
                if dropped:
                    self._db.executemany(
                        "DELETE FROM outbox WHERE n = ?", [(self._rowid[i],) for i in dropped if i in self._rowid]
                    )
                self._db.executemany(
                    "INSERT INTO outbox (id, camera, seq, data, put_at) VALUES (?, ?, ?, ?, ?)",
                    [(i, c, q, d, now) for i, d, c, q in kept],
                )
                # rowids of one statement in one write transaction are consecutive (AUTOINCREMENT)
                (last,) = self._db.execute("SELECT last_insert_rowid()").fetchone()
                if lasts:
                    self._db.executemany(
                        "INSERT INTO sequences (camera, last_seq) VALUES (?, ?) "
                        "ON CONFLICT (camera) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
                        list(lasts.items()),
                    )
        except sqlite3.Error as exc:
            raise _write_error(self.path, exc) from None
        for i in dropped:
            self._items.pop(i, None)
            self._rowid.pop(i, None)
        first_n = int(last) - len(kept) + 1
        for k, (i, d, _, _) in enumerate(kept):
            self._items[i] = d
            self._rowid[i] = first_n + k
        self._last.update(lasts)
        return dropped

    def ack(self, event_id: str) -> bool:
        return self.ack_many([event_id])[0]

    def ack_many(self, event_ids: Iterable[str]) -> list[bool]:
        """Delete acknowledged events in one transaction; per id, whether it was here."""
        event_ids = list(event_ids)
        present = [i in self._items for i in event_ids]
        gone = list(dict.fromkeys(i for i, p in zip(event_ids, present) if p))
        if gone:
            try:
                with transaction(self._db):
                    self._db.executemany("DELETE FROM outbox WHERE n = ?", [(self._rowid[i],) for i in gone])
            except sqlite3.Error as exc:
                # Not deleted: the event is resent later and acknowledged as a duplicate.
                log.error("cannot delete acknowledged events from %s: %s", self.path, exc)
            for i in gone:
                self._items.pop(i, None)
                self._rowid.pop(i, None)
        seen: set[str] = set()
        out = []
        for i, p in zip(event_ids, present):  # a repeated id counts once
            out.append(p and i not in seen)
            seen.add(i)
        return out

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass


def count_pending(path: str | Path) -> int:
    """Unacknowledged events in an outbox file (read-only; for monitoring and tests)."""
    db = connect(path, what="event outbox", error=OutboxError, readonly=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    finally:
        db.close()
