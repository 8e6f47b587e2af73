"""The operator stream: a ROUTER serving operator clients (see :mod:`vigil.alerts.transport`).

A client subscribes with filters (camera, type, severity) and optionally ``since`` a stream
sequence number; it is sent ``[stream_seq, event JSON]`` for each matching event, first from
the store (replay), then live (:meth:`OperatorStream.fan_out`, as the writer commits). A client
whose queue is full (a slow reader) is switched to catching up from the store from where it
stopped (:meth:`OperatorStream.serve_lagging`): it receives everything, late, and never slows
ingest or the other clients. Clients renew their subscription every second; one silent for
``client_timeout_s`` (or gone: ``EHOSTUNREACH``) is forgotten (:meth:`OperatorStream.expire_clients`).

Fairness (operators replaying history must not starve ingest). Three rules:

* one budget: at most :data:`REPLAY_BUDGET` rows are read from the store per serving-loop turn
  for *all* lagging clients together, round-robin (the first client the budget left out goes
  first next turn), so a turn's work is bounded however many operators replay;
* a duty cycle: after a replay pass the next one waits as long as the pass took
  (:data:`REPLAY_SHARE` of the thread). Without the pause the serving thread never waits in
  ``poll``, and the store-writer thread gets the interpreter lock only at each 5 ms switch
  interval, so commits, hence acknowledgements, hence the publishers' windows, crawl;
* back-off: a client whose queue was found full waits (``blocked_until``) from
  :data:`BACKOFF_MIN_S`, doubling to :data:`BACKOFF_MAX_S` while nothing could be sent, and its
  next read is small (:data:`PROBE_SLICE` rows, doubling while it keeps up): a client that
  never reads costs one 16-row read a second instead of a 256-row read every 50 ms.

Before, each lagging client had its own 256-row read per turn and 50 ms waits. Measured with
``vigil bench bus`` (40,000 events, one publisher) against an aggregator holding 60,000
events, 100 clients subscribed ``since=0`` that never read, 2 shared cores: without clients
12.8-15.7k events/s; with them, before: 3.5k while their queues filled and 5.1-5.7k once full;
now: 7.8-17.4k while filling and 13.8-20.2k once full.

Following a shared store (several aggregators on one PostgreSQL database: ``store.shared``).
Each aggregator's operators must see every aggregator's events, so live clients are not fed
from this aggregator's own commits (:meth:`OperatorStream.fan_out` only wakes the follower)
but from the store: :meth:`OperatorStream.follow_store` reads the rows after the last one it
read, at once after a local commit and otherwise every :data:`FOLLOW_INTERVAL_S`, and sends
them to the live clients. Rows commit in ``stream_seq`` order across aggregators (see
:mod:`vigil.alerts.store.postgres`), so reading after a cursor never skips one, and a client
that fails over to another aggregator resubscribes from its last ``stream_seq`` and misses
nothing. It costs one indexed read per 50 ms per aggregator with clients, and adds at most
that to the alarm latency. Every renewal is answered (``subscribed``), so a client knows its
aggregator is alive and fails over on silence (:class:`~vigil.alerts.tail.StreamClient`).

Reopening. :meth:`OperatorStream.reopen` closes the socket and binds a new one on the same
endpoint (the aggregator does it when an operator key was revoked: :mod:`.service`). Every
client is forgotten: clients get a new routing identity when they reconnect, and what was
queued on the old socket is lost, so a kept cursor would skip events; an honest client
renews its subscription within a second with the last ``stream_seq`` it saw and is replayed
from there.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable, Iterable

import zmq

from ..events import Event
from ..keys import CurveServer
from ..store import Store, StoreError
from ..transport import StreamFilter, encode_subscribed, parse_subscribe
from .sockets import release_endpoint, router_socket

__all__ = [
    "OperatorStream",
    "STREAM_SLICE",
    "REPLAY_BUDGET",
    "REPLAY_SHARE",
    "PROBE_SLICE",
    "BACKOFF_MIN_S",
    "BACKOFF_MAX_S",
    "FOLLOW_INTERVAL_S",
]

log = logging.getLogger(__name__)

STREAM_SLICE = 256  # rows read from the store for one lagging client at most, per read
REPLAY_BUDGET = 256  # rows read from the store per loop turn for all lagging clients together
REPLAY_SHARE = 0.5  # of the serving thread's time that replay may take (it pauses in between)
PROBE_SLICE = 16  # the next read for a client whose queue was full (doubles while it keeps up)
BACKOFF_MIN_S = 0.05  # a client found full waits this long before the next read...
BACKOFF_MAX_S = 1.0  # ... doubling up to this while its queue stays full
FOLLOW_INTERVAL_S = 0.05  # a shared store is read for other aggregators' events this often
FOLLOW_SLICE = 1000  # rows per read when following a shared store


class _Client:
    __slots__ = ("identity", "filters", "cursor", "live", "blocked_until", "backoff_s", "slice", "last_heard")

    def __init__(self, identity: bytes, filters: list[StreamFilter], cursor: int, live: bool, now: float) -> None:
        self.identity = identity
        self.filters = filters
        self.cursor = cursor  # every event up to here was sent to it (or did not match)
        self.live = live  # caught up: receives new events as they are stored
        self.blocked_until = 0.0  # lagging: not served from the store before this
        self.backoff_s = 0.0  # the last wait after finding its queue full
        self.slice = STREAM_SLICE  # rows of its next read from the store
        self.last_heard = now

    def wants(self, camera: str, type_: str, severity: str) -> bool:
        return not self.filters or any(f.matches(camera, type_, severity) for f in self.filters)


class OperatorStream:
    """The stream ROUTER bound to ``endpoint``, its clients, replay from ``store``; counts into
    ``counters`` (the aggregator's). ``hwm``: messages queued per client before it is switched to
    catching up from the store. ``clock``: monotonic seconds (tests pass their own; the
    ``now`` given to :meth:`poll_timeout_ms` must come from it). Used by one thread at a time."""

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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counters = counters
        self.store = store
        self.client_timeout_s = float(client_timeout_s)
        self.clients: dict[bytes, _Client] = {}
        self._ctx, self._hwm, self._curve, self._configure = ctx, int(hwm), curve, configure
        self._clock = clock
        self._next_due = math.inf  # no lagging client may be served before this
        self._rr = 0  # round-robin start among the clients
        # following a shared store (module docstring): the last row read and when to read next
        self.follows_store = bool(getattr(store, "shared", False))
        self._tail: int | None = None  # None: not following now (no client)
        self._next_follow = 0.0
        self.socket: zmq.Socket | None = self._bind(endpoint)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def _bind(self, endpoint: str) -> zmq.Socket:
        # ROUTER_MANDATORY (set by router_socket): full queue -> Again, gone -> EHOSTUNREACH
        return router_socket(
            self._ctx,
            endpoint,
            "stream",
            {zmq.SNDHWM: self._hwm, zmq.MAXMSGSIZE: 64 * 1024},
            curve=self._curve,
            configure=self._configure,
        )

    def reopen(self) -> None:
        """Close the socket and bind a new one on the same endpoint: every connection is dropped
        and every client forgotten (see the module docstring); a revoked key cannot come back,
        honest clients resubscribe from their last ``stream_seq``. Afterwards :attr:`socket` is
        the new one; :class:`~.sockets.AggregatorError` if it cannot bind (``socket`` is then
        ``None``: call again)."""
        if self.socket is not None:
            release_endpoint(self.socket, self.endpoint)
            self.socket.close(linger=0)
            self.socket = None
        if self.clients:
            log.info("aggregator: stream reopened; %d client(s) will resubscribe", len(self.clients))
        self.clients.clear()
        self.counters["subscriptions"] = 0
        self._tail = None
        self._next_due = math.inf
        self.socket = self._bind(self.endpoint)

    def poll_timeout_ms(self, now: float, longest_ms: int) -> int:
        """How long the serving loop may wait: until the first lagging client may be served."""
        if self._next_due == math.inf or not self.clients:
            return longest_ms
        return max(0, min(longest_ms, int((self._next_due - now) * 1000) + 1))

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
                client.backoff_s = BACKOFF_MIN_S
                client.slice = PROBE_SLICE
                client.blocked_until = self._clock() + BACKOFF_MIN_S
                self._next_due = min(self._next_due, client.blocked_until)
            return False
        except zmq.ZMQError as exc:  # EHOSTUNREACH: disconnected
            log.info("aggregator: stream client %s gone (%s)", client.identity.hex(), exc)
            self._drop_client(client.identity)
            return False
        self.counters["published"] += 1
        client.cursor = stream_seq
        return True

    def fan_out(self, fresh: list[tuple[int, Event, str]]) -> None:
        """Send newly stored ``(stream_seq, event, json)`` to every live client that wants them
        (following a shared store: read the store at the next turn instead)."""
        if self.follows_store:
            self._next_follow = 0.0
            return
        self._fan_out((seq, ev.camera, ev.type, ev.severity, text) for seq, ev, text in fresh)

    def _fan_out(self, rows: Iterable[tuple[int, str, str, str, str]]) -> None:
        for stream_seq, camera, type_, severity, text_s in rows:
            text = None
            for client in list(self.clients.values()):
                if not client.live or client.cursor >= stream_seq:
                    continue
                if not client.wants(camera, type_, severity):
                    client.cursor = stream_seq
                    continue
                if text is None:
                    text = text_s.encode("utf-8")
                self._send_to(client, stream_seq, text)

    def follow_store(self) -> None:
        """Following a shared store: send the rows stored (by any aggregator) since the last
        read to the live clients, when due (see the module docstring). Serving thread."""
        if not self.follows_store or self._tail is None:
            return
        now = self._clock()
        if now < self._next_follow:
            return
        try:
            rows = self.store.read_after(self._tail, FOLLOW_SLICE)
        except StoreError as exc:
            log.error("aggregator: cannot follow the store for the stream: %s", exc)
            self._next_follow = now + 1.0
            return
        if rows:
            self._tail = rows[-1][0]
            self._fan_out(rows)
        self._next_follow = now if len(rows) == FOLLOW_SLICE else now + FOLLOW_INTERVAL_S

    def follow_timeout_ms(self, now: float, longest_ms: int) -> int:
        """How long the serving loop may wait before :meth:`follow_store` is due."""
        if not self.follows_store or self._tail is None:
            return longest_ms
        return max(0, min(longest_ms, int((self._next_follow - now) * 1000) + 1))

    def serve_lagging(self) -> None:
        """Replay from the store to the lagging clients whose wait is over: at most
        :data:`REPLAY_BUDGET` rows in all, round-robin (see the module docstring)."""
        now = self._clock()
        if now < self._next_due or not self.clients:
            return
        order = list(self.clients.values())
        n = len(order)
        start = self._rr % n
        budget = REPLAY_BUDGET
        next_due = math.inf
        next_start = None
        for i in range(n):
            client = order[(start + i) % n]
            if client.live or client.identity not in self.clients:
                continue
            if client.blocked_until > now:
                next_due = min(next_due, client.blocked_until)
                continue
            if budget <= 0:
                next_due = now  # more to do at the next turn, starting with this client
                if next_start is None:
                    next_start = (start + i) % n
                continue
            budget -= self._replay(client, min(client.slice, budget), now)
            if not client.live and client.identity in self.clients:
                next_due = min(next_due, max(now, client.blocked_until))
        if budget < REPLAY_BUDGET and next_due < math.inf:
            # pause as long as this pass took (REPLAY_SHARE 0.5): the loop then waits in poll,
            # with the interpreter lock free for the store writer, or serves ingest meanwhile
            end = self._clock()
            next_due = max(next_due, end + (end - now) * (1.0 - REPLAY_SHARE) / REPLAY_SHARE)
        self._next_due = next_due
        self._rr = next_start if next_start is not None else start + 1

    def _replay(self, client: _Client, limit: int, now: float) -> int:
        """One read of up to ``limit`` rows after the client's cursor, sent until its queue is
        full; the rows read (what the read cost)."""
        try:
            rows = self.store.read_after(client.cursor, limit)
        except StoreError as exc:
            log.error("aggregator: cannot replay to stream client: %s", exc)
            client.blocked_until = now + 1.0
            return limit
        sent = 0
        for stream_seq, camera, type_, severity, text in rows:
            if not client.wants(camera, type_, severity):
                client.cursor = stream_seq
                continue
            if not self._send_to(client, stream_seq, text.encode("utf-8")):
                break
            sent += 1
            self.counters["replayed"] += 1
        else:
            if len(rows) < limit:
                if client.identity in self.clients:
                    client.live = True  # caught up: new events now go out as they are stored
                    client.backoff_s, client.slice = 0.0, STREAM_SLICE
            else:
                client.slice = min(STREAM_SLICE, client.slice * 2)
            return len(rows)
        if client.identity in self.clients:  # its queue is full: wait, longer each time nothing went out
            client.backoff_s = BACKOFF_MIN_S if sent else min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, 2 * client.backoff_s))
            client.blocked_until = now + client.backoff_s
            client.slice = min(STREAM_SLICE, max(PROBE_SLICE, 2 * sent))
        return len(rows)

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
            now = self._clock()
            if request.op == "bye":
                self._drop_client(identity)
                continue
            client = self.clients.get(identity)
            if client is not None:
                client.last_heard = now
                client.filters = request.filters
                try:  # the answer tells the client this aggregator is alive (it fails over on silence)
                    self.socket.send_multipart([identity, encode_subscribed(client.cursor, client.cursor)], zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass
                continue
            last = self.store.last_stream_seq()
            if self.follows_store and self._tail is None:
                self._tail = last  # the first client: follow from here (what is older is replayed)
                self._next_follow = now
            if request.since is None or request.since >= last:
                client = _Client(identity, request.filters, last, True, now)
            else:
                client = _Client(identity, request.filters, max(0, request.since), False, now)
                self._next_due = now  # replay it from the next turn on
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
        if not self.clients:
            self._tail = None  # nobody to follow for: stop reading the store

    def expire_clients(self) -> None:
        """Forget the clients silent for longer than ``client_timeout_s``."""
        now = self._clock()
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
