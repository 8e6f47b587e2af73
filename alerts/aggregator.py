"""The aggregator: receive events from edge workers, store them, acknowledge, re-publish.

One thread, two sockets (see :mod:`vigil.alerts.transport` for the protocol):

* ROUTER bound to the ingest endpoint. Each message ``[identity, event JSON]`` (or
  ``[identity, b"", event JSON]`` from a REQ client) is validated with
  :meth:`Event.from_json`; the valid ones are committed to the store in one transaction per
  batch, and only *then* acknowledged (duplicates too). Malformed or oversized frames are
  dropped, counted and logged (rate-limited) and the loop keeps serving; a malformed frame
  that still names a UUID ``id`` gets a nack so its sender stops resending it.
* XPUB bound to the stream endpoint, publishing each *new* event as ``[topic, JSON]``. XPUB
  rather than PUB so that the aggregator sees subscriptions (counted in ``subscriptions``);
  SUB clients cannot tell the difference.

If the store fails (disk full, database locked for too long) nothing in that batch is
acknowledged: the publishers resend later. A frame above ``4 * MAX_EVENT_BYTES`` is refused
by libzmq itself (``MAXMSGSIZE``), which disconnects the sender; such frames are never seen
here and are therefore not counted.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import zmq

from .events import MAX_EVENT_BYTES, Event, EventError
from .store import EventStore, StoreError
from .transport import (
    DEFAULT_INGEST_ENDPOINT,
    DEFAULT_STREAM_ENDPOINT,
    check_bind_endpoint,
    encode_ack,
    encode_nack,
    topic_for,
)

__all__ = ["Aggregator", "AggregatorError", "COUNTERS"]

log = logging.getLogger(__name__)

COUNTERS = (
    "received",  # ingest messages of any shape
    "stored",  # new events committed
    "duplicates",  # valid events whose id was already stored (acknowledged again)
    "malformed",  # dropped: wrong frame count, not JSON, not a valid event, oversized
    "oversized",  # of which larger than MAX_EVENT_BYTES
    "nacked",  # malformed frames that named an id and were answered with a nack
    "published",  # events sent on the stream
    "store_errors",  # batches not committed (and so not acknowledged)
    "reply_errors",  # acks/nacks that could not be sent (peer gone, queue full)
    "subscriptions",  # current stream subscriptions (SUB filters), not a running total
)


class AggregatorError(RuntimeError):
    """The aggregator cannot start (bad endpoint, address in use, unusable database)."""


def _id_in(payload: bytes) -> str | None:
    """The UUID ``id`` of a JSON object frame that failed validation, if it has one."""
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return None
    try:
        return str(uuid.UUID(obj["id"]))
    except ValueError:
        return None


class Aggregator:
    """Ingest, store and stream events. Binds in the constructor; serve with :meth:`run`.

    ``db``: a path (an :class:`EventStore` is opened there) or an already open store object
    with ``add_many`` and ``close`` (the seam for PostgreSQL). ``configure_ingest`` and
    ``configure_stream`` are called with each socket before ``bind`` (the seam for CURVE).
    Without them, endpoints must be loopback or ipc (see
    :func:`~vigil.alerts.transport.check_bind_endpoint`).

    Sockets are created in the constructor's thread and used only by the thread calling
    :meth:`run` (one at a time); :meth:`stats` may be read from anywhere.
    """

    def __init__(
        self,
        db: str | Path | EventStore,
        ingest_endpoint: str = DEFAULT_INGEST_ENDPOINT,
        stream_endpoint: str = DEFAULT_STREAM_ENDPOINT,
        *,
        context: zmq.Context | None = None,
        configure_ingest: Callable[[zmq.Socket], None] | None = None,
        configure_stream: Callable[[zmq.Socket], None] | None = None,
        batch_max: int = 256,
        stats_interval_s: float = 60.0,
    ) -> None:
        for endpoint in (ingest_endpoint, stream_endpoint):
            try:
                check_bind_endpoint(endpoint)
            except ValueError as exc:
                raise AggregatorError(str(exc)) from None
        self.batch_max = int(batch_max)
        self.stats_interval_s = float(stats_interval_s)
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._malformed_logged = 0

        if isinstance(db, (str, Path)):
            try:
                self.store = EventStore(db)
            except StoreError as exc:
                raise AggregatorError(str(exc)) from None
            self._own_store = True
        else:
            self.store = db
            self._own_store = False

        self._own_context = context is None
        self._ctx = context if context is not None else zmq.Context()
        self._ingest: zmq.Socket | None = None
        self._stream: zmq.Socket | None = None
        try:
            self._ingest = self._ctx.socket(zmq.ROUTER)
            self._ingest.setsockopt(zmq.LINGER, 0)
            self._ingest.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a lost ack is an error we log
            self._ingest.setsockopt(zmq.MAXMSGSIZE, 4 * MAX_EVENT_BYTES)
            self._ingest.setsockopt(zmq.HEARTBEAT_IVL, 1000)
            self._ingest.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
            if configure_ingest is not None:
                configure_ingest(self._ingest)
            self._bind(self._ingest, ingest_endpoint, "ingest")
            self._stream = self._ctx.socket(zmq.XPUB)
            self._stream.setsockopt(zmq.LINGER, 0)
            self._stream.setsockopt(zmq.XPUB_VERBOSER, 1)  # see every (un)subscribe
            if configure_stream is not None:
                configure_stream(self._stream)
            self._bind(self._stream, stream_endpoint, "stream")
            self.ingest_endpoint = self._ingest.getsockopt_string(zmq.LAST_ENDPOINT)
            self.stream_endpoint = self._stream.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            self.close()
            raise
        log.info("aggregator: ingest %s, stream %s, store %s",
                 self.ingest_endpoint, self.stream_endpoint, getattr(self.store, "path", self.store))

    @staticmethod
    def _bind(sock: zmq.Socket, endpoint: str, what: str) -> None:
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            hint = " (is another aggregator running?)" if exc.errno == zmq.EADDRINUSE else ""
            raise AggregatorError(f"cannot bind the {what} endpoint {endpoint}: {exc}{hint}") from None

    # ------------------------------------------------------------------ serving
    def stats(self) -> dict[str, int]:
        """A snapshot of the counters (see :data:`COUNTERS`)."""
        return dict(self._counters)

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set (checked at least every 100 ms)."""
        if self._ingest is None or self._stream is None:
            raise AggregatorError("aggregator is closed")
        poller = zmq.Poller()
        poller.register(self._ingest, zmq.POLLIN)
        poller.register(self._stream, zmq.POLLIN)
        next_stats = time.monotonic() + self.stats_interval_s
        last_logged: dict[str, int] = {}
        while not stop.is_set():
            try:
                ready = dict(poller.poll(100))
            except zmq.ZMQError as exc:
                if exc.errno == zmq.ETERM:
                    break
                log.error("aggregator: ZeroMQ poll failed: %s (errno %s)", exc, exc.errno)
                time.sleep(0.1)
                continue
            if self._stream in ready:
                self._drain_subscriptions()
            if self._ingest in ready:
                self._handle_ingest()
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.stats_interval_s
                if self._counters != last_logged:
                    last_logged = self.stats()
                    log.info("aggregator: %s", self._format_stats())
        log.info("aggregator stopping: %s", self._format_stats())

    def serve_forever(self) -> None:
        """:meth:`run` until SIGINT or SIGTERM (handlers installed from the main thread only)."""
        stop = threading.Event()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
        try:
            self.run(stop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _format_stats(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self._counters.items())

    def _malformed(self, reason: str, identity: bytes | None) -> None:
        self._counters["malformed"] += 1
        n = self._counters["malformed"]
        if n <= 10 or n % 1000 == 0:
            who = identity.hex() if identity else "?"
            log.warning("aggregator: dropped a malformed message from peer %s: %s (%d malformed so far)",
                        who, reason[:300], n)

    def _reply(self, envelope: list[bytes], frame: bytes) -> None:
        try:
            self._ingest.send_multipart([*envelope, frame], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # EHOSTUNREACH: peer gone (it will resend); Again: queue full
            self._counters["reply_errors"] += 1
            log.warning("aggregator: cannot reply to peer %s: %s (errno %s)", envelope[0].hex(), exc, exc.errno)

    def _handle_ingest(self) -> None:
        batch: list[tuple[list[bytes], Event]] = []
        for _ in range(self.batch_max):
            try:
                frames = self._ingest.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:
                log.error("aggregator: ZeroMQ recv failed: %s (errno %s)", exc, exc.errno)
                break
            self._counters["received"] += 1
            if len(frames) == 2:
                envelope, payload = frames[:1], frames[1]
            elif len(frames) == 3 and frames[1] == b"":
                envelope, payload = frames[:2], frames[2]  # REQ client
            else:
                self._malformed(f"{len(frames) - 1} payload frames, expected 1", frames[0])
                continue
            if len(payload) > MAX_EVENT_BYTES:
                self._counters["oversized"] += 1
                self._malformed(f"{len(payload)} bytes, limit {MAX_EVENT_BYTES}", envelope[0])
                continue
            try:
                event = Event.from_json(payload)
            except EventError as exc:
                self._malformed(str(exc), envelope[0])
                event_id = _id_in(payload)
                if event_id is not None:
                    self._counters["nacked"] += 1
                    self._reply(envelope, encode_nack(event_id, str(exc)))
                continue
            batch.append((envelope, event))
        if not batch:
            return
        try:
            new_flags = self.store.add_many([event for _, event in batch])
        except StoreError as exc:
            self._counters["store_errors"] += 1
            log.error("aggregator: %s; %d event(s) not acknowledged (publishers will resend)", exc, len(batch))
            return
        for (envelope, event), new in zip(batch, new_flags):
            if new:
                self._counters["stored"] += 1
                self._publish(event)
            else:
                self._counters["duplicates"] += 1
            self._reply(envelope, encode_ack(event.id, "stored" if new else "duplicate"))

    def _publish(self, event: Event) -> None:
        try:
            self._stream.send_multipart([topic_for(event), event.to_bytes()], zmq.NOBLOCK)
            self._counters["published"] += 1
        except zmq.ZMQError as exc:
            log.error("aggregator: cannot publish event %s on the stream: %s (errno %s)", event.id, exc, exc.errno)

    def _drain_subscriptions(self) -> None:
        while True:
            try:
                frame = self._stream.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:
                log.error("aggregator: ZeroMQ recv on the stream failed: %s (errno %s)", exc, exc.errno)
                return
            if frame[:1] == b"\x01":
                self._counters["subscriptions"] += 1
                log.debug("aggregator: stream subscription %r", frame[1:])
            elif frame[:1] == b"\x00":
                self._counters["subscriptions"] = max(0, self._counters["subscriptions"] - 1)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        for attr in ("_ingest", "_stream"):
            sock = getattr(self, attr, None)
            if sock is not None:
                sock.close(linger=0)
                setattr(self, attr, None)
        if self._own_context and not self._ctx.closed:
            self._ctx.term()
        if self._own_store:
            self.store.close()
            self._own_store = False

    def __enter__(self) -> "Aggregator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
