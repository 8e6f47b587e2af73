"""The operator stream: a ROUTER serving operator clients (see :mod:`vigil.alerts.transport`).

A client subscribes with filters (camera, type, severity) and optionally ``since`` a stream
sequence number; it is sent ``[stream_seq, event JSON]`` for each matching event, first from
the store (replay), then live (:meth:`OperatorStream.fan_out`, as the writer commits). A client
whose queue is full (a slow reader) is switched to catching up from the store from where it
stopped, in bounded slices (:data:`STREAM_SLICE` events) per loop turn
(:meth:`OperatorStream.serve_lagging`): it receives everything, late, and never slows ingest or
the other clients. Clients renew their subscription every second; one silent for
``client_timeout_s`` (or gone: ``EHOSTUNREACH``) is forgotten (:meth:`OperatorStream.expire_clients`).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import zmq

from ..events import Event
from ..keys import CurveServer
from ..store import Store, StoreError
from ..transport import StreamFilter, encode_subscribed, parse_subscribe
from .sockets import router_socket

__all__ = ["OperatorStream", "STREAM_SLICE"]

log = logging.getLogger(__name__)

STREAM_SLICE = 256  # events read from the store per lagging client per loop turn


class _Client:
    __slots__ = ("identity", "filters", "cursor", "live", "blocked_until", "last_heard")

    def __init__(self, identity: bytes, filters: list[StreamFilter], cursor: int, live: bool, now: float) -> None:
        self.identity = identity
        self.filters = filters
        self.cursor = cursor  # every event up to here was sent to it (or did not match)
        self.live = live  # caught up: receives new events as they are stored
        self.blocked_until = 0.0
        self.last_heard = now

    def wants(self, camera: str, type_: str, severity: str) -> bool:
        return not self.filters or any(f.matches(camera, type_, severity) for f in self.filters)


class OperatorStream:
    """The stream ROUTER bound to ``endpoint``, its clients, replay from ``store``; counts into
    ``counters`` (the aggregator's). ``hwm``: messages queued per client before it is switched to
    catching up from the store. Used by one thread at a time."""

    def __init__(
        self,
        ctx: zmq.Context,
        endpoint: str,
        counters: dict[str, int],
        store: Store,
        *,
        hwm: int = 10_000,
        client_timeout_s: float = 5.0,
        curve: CurveServer | None = None,
        configure: Callable[[zmq.Socket], None] | None = None,
    ) -> None:
        self.counters = counters
        self.store = store
        self.client_timeout_s = float(client_timeout_s)
        self.clients: dict[bytes, _Client] = {}
        # ROUTER_MANDATORY (set by router_socket): full queue -> Again, gone -> EHOSTUNREACH
        self.socket: zmq.Socket | None = router_socket(
            ctx, endpoint, "stream", {zmq.SNDHWM: int(hwm), zmq.MAXMSGSIZE: 64 * 1024}, curve=curve, configure=configure
        )
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def poll_timeout_ms(self, now: float, longest_ms: int) -> int:
        """How long the serving loop may wait: until the first lagging client may be served."""
        timeout = longest_ms
        for c in self.clients.values():
            if not c.live:
                timeout = min(timeout, max(0, int((c.blocked_until - now) * 1000) + 1))
        return timeout

    # ------------------------------------------------------------------ sending
    def _send_to(self, client: _Client, stream_seq: int, text: bytes) -> bool:
        """Send one event; ``False`` if the client is full (now lagging) or gone (removed)."""
        try:
            self.socket.send_multipart([client.identity, str(stream_seq).encode(), text], zmq.NOBLOCK)
        except zmq.Again:
            if client.live:
                self.counters["lagging"] += 1
                log.info("aggregator: stream client %s is slow; it will catch up from the store", client.identity.hex())
            client.live = False
            client.blocked_until = time.monotonic() + 0.05
            return False
        except zmq.ZMQError as exc:  # EHOSTUNREACH: disconnected
            log.info("aggregator: stream client %s gone (%s)", client.identity.hex(), exc)
            self._drop_client(client.identity)
            return False
        self.counters["published"] += 1
        client.cursor = stream_seq
        return True

    def fan_out(self, fresh: list[tuple[int, Event, str]]) -> None:
        """Send newly stored ``(stream_seq, event, json)`` to every live client that wants them."""
        for stream_seq, event, text_s in fresh:
            text = None
            for client in list(self.clients.values()):
                if not client.live or client.cursor >= stream_seq:
                    continue
                if not client.wants(event.camera, event.type, event.severity):
                    client.cursor = stream_seq
                    continue
                if text is None:
                    text = text_s.encode("utf-8")
                self._send_to(client, stream_seq, text)

    def serve_lagging(self) -> None:
        """One slice from the store for each lagging client whose queue has room again."""
        now = time.monotonic()
        for client in list(self.clients.values()):
            if client.live or client.blocked_until > now:
                continue
            try:
                rows = self.store.read_after(client.cursor, STREAM_SLICE)
            except StoreError as exc:
                log.error("aggregator: cannot replay to stream client: %s", exc)
                client.blocked_until = now + 1.0
                continue
            for stream_seq, camera, type_, severity, text in rows:
                if not client.wants(camera, type_, severity):
                    client.cursor = stream_seq
                    continue
                if not self._send_to(client, stream_seq, text.encode("utf-8")):
                    break
                self.counters["replayed"] += 1
            else:
                if len(rows) < STREAM_SLICE and client.identity in self.clients:
                    client.live = True  # caught up: new events now go out as they are stored

    # ------------------------------------------------------------------ clients
    def handle_requests(self) -> None:
        """Subscriptions, renewals and goodbyes waiting on the socket (at most 1000 per call)."""
        for _ in range(1000):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:
                log.error("aggregator: ZeroMQ recv on the stream failed: %s (errno %s)", exc, exc.errno)
                return
            identity = frames[0]
            try:
                if len(frames) != 2:
                    raise ValueError(f"{len(frames) - 1} frames, expected 1")
                request = parse_subscribe(frames[1])
            except ValueError as exc:
                self.counters["stream_malformed"] += 1
                n = self.counters["stream_malformed"]
                if n <= 10 or n % 1000 == 0:
                    log.warning("aggregator: dropped a malformed stream request from %s: %s", identity.hex(), exc)
                continue
            now = time.monotonic()
            if request.op == "bye":
                self._drop_client(identity)
                continue
            client = self.clients.get(identity)
            if client is not None:
                client.last_heard = now
                client.filters = request.filters
                continue
            last = self.store.last_stream_seq()
            if request.since is None or request.since >= last:
                client = _Client(identity, request.filters, last, True, now)
            else:
                client = _Client(identity, request.filters, max(0, request.since), False, now)
            self.clients[identity] = client
            self.counters["subscriptions"] = len(self.clients)
            try:
                self.socket.send_multipart([identity, encode_subscribed(client.cursor, last)], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # it will renew its subscription
            log.info(
                "aggregator: stream client %s subscribed (since %s, %d filter(s))",
                identity.hex(),
                request.since,
                len(request.filters),
            )

    def _drop_client(self, identity: bytes) -> None:
        if self.clients.pop(identity, None) is not None:
            self.counters["subscriptions"] = len(self.clients)

    def expire_clients(self) -> None:
        """Forget the clients silent for longer than ``client_timeout_s``."""
        now = time.monotonic()
        for identity, client in list(self.clients.items()):
            if now - client.last_heard > self.client_timeout_s:
                log.info(
                    "aggregator: stream client %s silent for %.0f s; forgotten", identity.hex(), now - client.last_heard
                )
                self._drop_client(identity)

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None
