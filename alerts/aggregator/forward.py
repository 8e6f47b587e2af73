"""Forwarding stored alarms to control-room systems: signed webhooks and MQTT (QoS 1), at least once.

:class:`Forwarding` runs one :class:`Forwarder` thread per target of the configuration
(:mod:`.forward_config`). A forwarder reads the stored events after its durable cursor (a
``stream_seq``), keeps those its filters match, delivers them in stream order and moves the
cursor only past what the receiver confirmed (an HTTP 2xx; an MQTT PUBACK). While a receiver
is down or refuses, it retries with exponential backoff (``retry_initial_s`` doubling up to
``retry_max_s``) for as long as it takes: nothing is skipped, and an event may arrive twice
(each carries its ``event_id`` for the receiver to drop the copy).

The cursors live in the event database, table ``forward_cursors(target, stream_seq,
updated_at)``, created by the forwarder itself (``CREATE TABLE IF NOT EXISTS``, independent of
the store's schema version) over a connection of its own (:class:`_SqliteCursors`,
:class:`_PgCursors`). With PostgreSQL several aggregators may share the database: each target
is forwarded by one of them at a time, the holder of a session advisory lock named after the
target; the others wait as ``standby`` and take over when its connection goes (its process
ended, the server restarted), from the cursor it last stored.

What a receiver gets (the body, the headers, verifying the signature): docs/forwarding.md.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg

from vigil.sqlite import connect, transaction

from ..events import alarm_id_of, utc_iso
from ..store import EventStore, PgEventStore, Store, StoreError
from .forward_config import ForwardConfig, MqttTarget, WebhookTarget, read_secret_file
from .forward_mqtt import MqttSender, topic_for

__all__ = ["BODY_FORMAT", "Forwarder", "Forwarding", "WebhookSender", "sign", "url_origin"]

log = logging.getLogger(__name__)

#: the ``format`` field of every forwarded message
BODY_FORMAT = "vigil.forward/1"
#: an idle forwarder looks at the store this often (s) when no commit woke it sooner
POLL_S = 1.0
#: a standby forwarder (PostgreSQL, another aggregator forwards this target) tries the lock this often (s)
STANDBY_RETRY_S = 2.0
_TABLE_LOCK = 0x76696733  # "vig3": creating forward_cursors in PostgreSQL
_CREATE = (
    "CREATE TABLE IF NOT EXISTS forward_cursors"
    " (target TEXT PRIMARY KEY, stream_seq {int} NOT NULL, updated_at TEXT NOT NULL)"
)
#: the upsert of one cursor (``?`` markers; PostgreSQL's ``%s`` replace them)
_UPSERT = (
    "INSERT INTO forward_cursors (target, stream_seq, updated_at) VALUES (?, ?, ?) ON CONFLICT (target)"
    " DO UPDATE SET stream_seq = excluded.stream_seq, updated_at = excluded.updated_at"
)


def url_origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, for logs and the status file: a webhook's path and
    query often carry a secret, so they are never shown."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = "?"
    return f"{parts.scheme}://{host}:{port}"


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Vigil-Signature`` header of ``body``: ``sha256=`` and the hex HMAC-SHA256 of the exact bytes."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class _Item:
    stream_seq: int
    event_id: str
    fields: dict[str, Any]  # camera, type, severity, state, alarm_id
    event: dict[str, Any]  # the stored event, as stored

    def body(self, target: str, sent: int) -> bytes:
        doc = {"format": BODY_FORMAT, "target": target, "sent": sent, "stream_seq": self.stream_seq}
        doc |= {"event_id": self.event_id, "alarm_id": self.fields["alarm_id"], "event": self.event}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------------- senders
class WebhookSender:
    """POSTs each event to a :class:`~.forward_config.WebhookTarget`'s URL, one request per event,
    signed (:func:`sign`); 2xx confirms it, anything else (3xx included: redirects are not
    followed) fails it and the rest of the batch. HTTPS verifies the server's certificate."""

    def __init__(self, target: WebhookTarget) -> None:
        self.target = target
        self._secret = read_secret_file(target.secret_file, f"webhook target {target.name!r}")
        parts = urlsplit(target.url)
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._where = url_origin(target.url)
        self._tls = ssl.create_default_context(cafile=str(target.ca_file) if target.ca_file else None)
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.target.timeout_s, context=self._tls
                )
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self.target.timeout_s)
        return self._conn

    def _post(self, item: _Item) -> str | None:
        sent = int(time.time())
        body = item.body(self.target.name, sent)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "vigil-forward/1",
            "X-Vigil-Signature": sign(self._secret, body),
            "X-Vigil-Timestamp": str(sent),
            "X-Vigil-Event-Id": item.event_id,
        }
        for attempt in (0, 1):  # a kept-alive connection the server closed meanwhile: once more, fresh
            reused = self._conn is not None
            try:
                conn = self._connection()
                conn.request("POST", self._path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read(64 * 1024)  # an answer's body is not used; a longer one is not read through
                if resp.will_close or not resp.isclosed():
                    self.close()
                if 200 <= resp.status < 300:
                    return None
                return f"{self._where} answered HTTP {resp.status} {resp.reason}"
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if not (reused and attempt == 0):
                    return f"{self._where}: {exc}"
            except (OSError, http.client.HTTPException) as exc:  # refused, timeout, TLS, bad answer
                self.close()
                return f"{self._where}: {exc.__class__.__name__}: {exc}"
        return f"{self._where}: connection closed"  # pragma: no cover - the loop returns

    def deliver(self, items: list[_Item]) -> tuple[int, str | None]:
        """``(confirmed, error)``: the items confirmed, in order, and the first failure's reason."""
        for i, item in enumerate(items):
            error = self._post(item)
            if error is not None:
                return i, error
        return len(items), None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _MqttAdapter:
    """:class:`~.forward_mqtt.MqttSender` taking :class:`_Item`: topic from the template, the same JSON body."""

    def __init__(self, target: MqttTarget) -> None:
        self.target = target
        self._mqtt = MqttSender(target)

    def deliver(self, items: list[_Item]) -> tuple[int, str | None]:
        sent = int(time.time())
        return self._mqtt.deliver(
            [(topic_for(self.target.topic, it.fields), it.body(self.target.name, sent)) for it in items]
        )

    def close(self) -> None:
        self._mqtt.close()


# ---------------------------------------------------------------------- cursors
class _SqliteCursors:
    """Cursors in the SQLite event database, over a connection of their own (one aggregator per file)."""

    def __init__(self, store: EventStore) -> None:
        self.path = store.path
        self._db = None

    def acquire(self, target: str) -> bool:
        if self._db is None:
            self._db = connect(self.path, what="event database", error=StoreError, wal=False, create_parent=False)
            try:
                self._db.execute(_CREATE.format(int="INTEGER"))
            except Exception as exc:  # noqa: BLE001 - sqlite3.Error; reported as the store's
                self.close()
                raise StoreError(f"cannot create forward_cursors in {self.path}: {exc}") from None
        return True

    def load(self, target: str) -> int | None:
        try:
            row = self._db.execute("SELECT stream_seq FROM forward_cursors WHERE target = ?", (target,)).fetchone()
        except Exception as exc:  # noqa: BLE001 - sqlite3.Error; reported as the store's
            raise StoreError(f"cannot read forward_cursors in {self.path}: {exc}") from None
        return None if row is None else int(row[0])

    def save(self, target: str, stream_seq: int) -> None:
        try:
            with transaction(self._db):
                self._db.execute(_UPSERT, (target, int(stream_seq), utc_iso(time.time())))
        except Exception as exc:  # noqa: BLE001 - sqlite3.Error
            raise StoreError(f"cannot write forward_cursors in {self.path}: {exc}") from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class _PgCursors:
    """Cursors in PostgreSQL; the connection holds the target's session advisory lock, so one
    aggregator of those sharing the database forwards it (the others: :meth:`acquire` is False)."""

    def __init__(self, store: PgEventStore) -> None:
        self.dsn, self.path = store.dsn, store.path
        self._db: psycopg.Connection | None = None
        self._held = False

    @staticmethod
    def _key(target: str) -> int:
        return struct.unpack(">q", hashlib.sha256(f"vigil-forward:{target}".encode()).digest()[:8])[0]

    def acquire(self, target: str) -> bool:
        try:
            if self._db is not None and (self._db.closed or self._db.broken):
                self.close()
            if self._db is None:
                self._db = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
                with self._db.transaction():
                    self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_TABLE_LOCK,))
                    self._db.execute(_CREATE.format(int="bigint"))
            if not self._held:
                (self._held,) = self._db.execute("SELECT pg_try_advisory_lock(%s)", (self._key(target),)).fetchone()
            else:
                self._db.execute("SELECT 1")  # still connected, so still holding the lock
        except psycopg.Error as exc:
            self.close()
            raise StoreError(f"forward cursors in {self.path}: {exc}") from None
        return bool(self._held)

    def load(self, target: str) -> int | None:
        try:
            row = self._db.execute("SELECT stream_seq FROM forward_cursors WHERE target = %s", (target,)).fetchone()
        except psycopg.Error as exc:
            self.close()
            raise StoreError(f"cannot read forward_cursors in {self.path}: {exc}") from None
        return None if row is None else int(row[0])

    def save(self, target: str, stream_seq: int) -> None:
        try:
            self._db.execute(_UPSERT.replace("?", "%s"), (target, int(stream_seq), utc_iso(time.time())))
        except psycopg.Error as exc:
            self.close()  # the lock went with the connection: another aggregator may take over
            raise StoreError(f"cannot write forward_cursors in {self.path}: {exc}") from None

    def close(self) -> None:
        self._held = False
        if self._db is not None:
            try:
                self._db.close()
            except psycopg.Error:
                pass
            self._db = None


def _cursors_for(store: Store):
    if isinstance(store, PgEventStore):
        return _PgCursors(store)
    if isinstance(store, EventStore):
        return _SqliteCursors(store)
    raise StoreError(f"forwarding needs the SQLite or PostgreSQL event store, not {type(store).__name__}")


# ---------------------------------------------------------------------- forwarder
class Forwarder:
    """Forwards one target's events (see the module docstring); :meth:`run` in its own thread."""

    def __init__(self, target: WebhookTarget | MqttTarget, store: Store, sender=None, cursors=None) -> None:
        self.target = target
        self.store = store
        self.sender = sender if sender is not None else _sender_for(target)
        self.cursors = cursors if cursors is not None else _cursors_for(store)
        self.wake = threading.Event()
        self.cursor: int | None = None
        self.role = "starting"
        self.delivered = 0  # events confirmed by the receiver
        self.retries = 0  # failed attempts (each followed by a wait and a new attempt)
        self.skipped = 0  # stored events the filters left out
        self.failing_since: float | None = None  # Unix time of the first failure of the current run of them
        self.last_error: str | None = None
        self.last_delivered: float | None = None
        self._counters = threading.Lock()  # status() reads retries, failing_since and last_error as one

    def _fail(self, error: str) -> None:
        with self._counters:
            first = self.failing_since is None
            if first:
                self.failing_since = time.time()
            self.last_error = error
            self.retries += 1
        if first:
            log.warning("forward %s: delivery failing: %s (retrying with backoff)", self.target.name, error)

    def _pick(self, rows: list[tuple]) -> tuple[list[_Item], list[int]]:
        """The rows the filters keep, as items, and the ``stream_seq`` of those they leave out."""
        picked, left_out = [], []
        for seq, camera, etype, severity, text in rows:
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
            if not isinstance(doc, dict):
                log.error("forward %s: stored event at stream_seq %d is not JSON; left out", self.target.name, seq)
                left_out.append(int(seq))
                continue
            state = str(doc.get("state", ""))
            if not self.target.wants(etype, severity, state, camera):
                left_out.append(int(seq))
                continue
            fields = {"camera": camera, "type": etype, "severity": severity, "state": state}
            try:
                fields["alarm_id"] = alarm_id_of(doc)
            except (AttributeError, TypeError, ValueError):  # a stored payload that is not an object
                fields["alarm_id"] = None
            picked.append(_Item(int(seq), str(doc.get("id")), fields, doc))
        return picked, left_out

    def step(self) -> bool:
        """One round: read a batch after the cursor, deliver what matches, move the cursor.
        ``True`` when it got through (more may follow at once), ``False`` after a failure or
        with nothing to do (the caller waits)."""
        t = self.target
        if not self.cursors.acquire(t.name):
            self.role, self.cursor = "standby", None
            return False
        self.role = "active"
        if self.cursor is None:
            stored = self.cursors.load(t.name)
            if stored is None:
                stored = self.store.last_stream_seq() if t.start == "now" else 0
                self.cursors.save(t.name, stored)
            self.cursor = stored
        self.wake.clear()
        rows = self.store.read_after(self.cursor, t.batch)
        if not rows:
            return False
        items, left_out = self._pick(rows)
        n, error = self.sender.deliver(items) if items else (0, None)
        self.delivered += n
        if n:
            self.last_delivered = time.time()
        new = int(rows[-1][0]) if error is None else items[n].stream_seq - 1
        self.skipped += sum(1 for seq in left_out if seq <= new)
        if new > self.cursor:
            self.cursors.save(t.name, new)
            self.cursor = new
        if error is not None:
            self._fail(error)
            return False
        if self.failing_since is not None:
            log.info("forward %s: delivering again after %.0f s", t.name, time.time() - self.failing_since)
        with self._counters:
            self.failing_since, self.last_error = None, None
        return True

    def run(self, stop: threading.Event) -> None:
        backoff = self.target.retry_initial_s
        while not stop.is_set():
            retries = self.retries
            try:
                progressed = self.step()
            except StoreError as exc:
                self._fail(str(exc))
                progressed = False
            except Exception as exc:  # noqa: BLE001 - one target's bug must not end the others' thread
                log.exception("forward %s: unexpected error", self.target.name)
                self._fail(f"{exc.__class__.__name__}: {exc}")
                progressed = False
            if self.retries > retries:
                stop.wait(backoff)
                backoff = min(backoff * 2, self.target.retry_max_s)
                continue
            backoff = self.target.retry_initial_s
            if not progressed and self.role == "standby":
                stop.wait(STANDBY_RETRY_S)
            elif not progressed:
                self.wake.wait(POLL_S)
        self.sender.close()
        self.cursors.close()

    def status(self, last_stream_seq: int | None) -> dict[str, Any]:
        """Counters for the status file: ``backlog`` is ``stream_seq`` positions behind the store's last."""
        behind = None if self.cursor is None or last_stream_seq is None else max(0, last_stream_seq - self.cursor)
        with self._counters:
            retries, failing_since, last_error = self.retries, self.failing_since, self.last_error
        return {
            "kind": self.target.kind,
            "role": self.role,
            "cursor": self.cursor,
            "backlog": behind,
            "delivered": self.delivered,
            "retries": retries,
            "skipped": self.skipped,
            "failing_since": None if failing_since is None else utc_iso(failing_since),
            "last_error": last_error,
            "last_delivered_at": None if self.last_delivered is None else utc_iso(self.last_delivered),
        }


def _sender_for(target: WebhookTarget | MqttTarget):
    return WebhookSender(target) if isinstance(target, WebhookTarget) else _MqttAdapter(target)


class Forwarding:
    """Every target of ``config`` over ``store``: :meth:`start` the threads, :meth:`notify` after a
    commit (wakes them at once instead of at the next :data:`POLL_S`), :meth:`stop` at the end.
    Secret files are read in the constructor (a wrong one raises
    :class:`~.forward_config.ForwardConfigError` there)."""

    def __init__(self, config: ForwardConfig, store: Store) -> None:
        self.store = store
        self.forwarders = [Forwarder(t, store) for t in config.targets]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        for f in self.forwarders:
            th = threading.Thread(target=f.run, args=(self._stop,), name=f"forward-{f.target.name}", daemon=True)
            th.start()
            self._threads.append(th)
        log.info("forwarding to %d target(s): %s", len(self.forwarders), ", ".join(self.names()))

    def names(self) -> list[str]:
        return [f.target.name for f in self.forwarders]

    def notify(self) -> None:
        for f in self.forwarders:
            f.wake.set()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        self.notify()
        for th in self._threads:
            th.join(timeout_s)
        self._threads = []

    def status(self, last_stream_seq: int | None = None) -> dict[str, dict[str, Any]]:
        """Per target name, :meth:`Forwarder.status`."""
        return {f.target.name: f.status(last_stream_seq) for f in self.forwarders}
