"""The edge node's durable outbox: every event is committed to a local SQLite file (WAL)
before it is sent, and deleted only when the aggregator acknowledges it.

:class:`SqliteOutbox` has the same methods as :class:`~vigil.alerts.publisher.MemoryOutbox`
(``put``/``ack``/``ack_many``/``get``/``ids``/``__len__``/``__contains__``) plus the per-camera
sequence numbers: ``last_seq(camera)`` is the highest ``seq`` ever put for that camera (kept
after the events are acknowledged), so a restarted worker continues at ``last_seq + 1`` and
``seq`` stays strictly increasing across restarts. ``put`` records it in the same transaction
as the event, so an event either exists with its sequence number or neither does.

Durability: ``synchronous="NORMAL"`` (default) survives the process being killed at any
instant (a commit is a write to the WAL before ``put`` returns); ``"FULL"`` also survives
power loss, at the cost of an fsync per event. The unacknowledged events are mirrored in
memory (in insertion order, which is per-camera ``seq`` order) with their row numbers, so
the sender never reads the file and an acknowledgement deletes its row by row number (the
table has no index on the random event id: such an index made every insert and delete about
four times dearer); the mirror and the file are bounded by ``max_events`` (the oldest is dropped, and the
drop is reported to the caller, beyond that).

Not thread-safe by itself: the publisher guards it with its lock.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

from .publisher import PendingView

__all__ = ["SqliteOutbox", "OutboxError", "OUTBOX_SCHEMA_VERSION"]

log = logging.getLogger(__name__)

OUTBOX_SCHEMA_VERSION = 2

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


class SqliteOutbox(PendingView):
    def __init__(self, path: str | Path, *, max_events: int = 200_000, synchronous: str = "NORMAL") -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events}")
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, got {synchronous!r}")
        self.path = Path(path)
        self.max_events = max_events
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open the event outbox {self.path}: {exc}") from None
        try:
            self._db.execute("PRAGMA busy_timeout = 5000")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(f"event outbox {self.path}: cannot switch to WAL (journal_mode {mode})")
            self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self._db.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA:
                self._db.execute(stmt)
            row = self._db.execute("SELECT MAX(version) FROM outbox_version").fetchone()
            has_table = (
                self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").fetchone()
                is not None
            )
            version = row[0] if row[0] is not None else (1 if has_table else None)
            if version is not None and version > OUTBOX_SCHEMA_VERSION:
                self._db.execute("ROLLBACK")
                raise OutboxError(
                    f"event outbox {self.path} has schema {version}; this build reads "
                    f"{OUTBOX_SCHEMA_VERSION}: upgrade vigil"
                )
            if version == 1:
                for stmt in _MIGRATE_1_TO_2:
                    self._db.execute(stmt)
                log.info("event outbox %s migrated to schema %d", self.path, OUTBOX_SCHEMA_VERSION)
            self._db.execute(_TABLE)
            if version != OUTBOX_SCHEMA_VERSION:
                self._db.execute("DELETE FROM outbox_version")
                self._db.execute("INSERT INTO outbox_version VALUES (?)", (OUTBOX_SCHEMA_VERSION,))
            self._db.execute("COMMIT")
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

    # ------------------------------------------------------------------ sequences
    def last_seq(self, camera: str) -> int:
        """Highest ``seq`` ever put for ``camera`` (0 if none): continue at ``last_seq + 1``."""
        return int(self._last.get(camera, 0))

    # ------------------------------------------------------------------ the MemoryOutbox API
    def put(self, event_id: str, data: bytes, camera: str | None = None, seq: int | None = None) -> list[str]:
        """Commit an event (and its camera's ``seq``); returns ids dropped to make room."""
        return self.put_many([(event_id, data, camera, seq)])

    def put_many(self, items: list[tuple[str, bytes, str | None, int | None]]) -> list[str]:
        """Commit several ``(id, data, camera, seq)`` in one transaction (all or none);
        returns the ids dropped (oldest first) to make room."""
        fresh: dict[str, tuple[str, bytes, str | None, int | None]] = {}
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
            self._db.execute("BEGIN IMMEDIATE")
            try:
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
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot write to the event outbox {self.path}: {exc}") from None
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
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany("DELETE FROM outbox WHERE n = ?", [(self._rowid[i],) for i in gone])
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
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
    db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    finally:
        db.close()
