"""The aggregator: receive events from edge workers, store them, acknowledge, re-publish.

One serving thread owns both sockets (see :mod:`vigil.alerts.transport` for the protocol);
a writer thread commits the validated batches meanwhile (see :meth:`Aggregator.run`):

* ROUTER bound to the ingest endpoint. Each message ``[identity, event JSON, ...]`` (one
  or more events, one per frame) or ``[identity, b"", event JSON]`` (a REQ client) is
  validated frame by frame with :meth:`Event.from_json`; the valid ones are committed to the store in one transaction per
  batch, and only *then* acknowledged (duplicates too). Malformed or oversized frames are
  dropped, counted and logged (rate-limited) and the loop keeps serving; a malformed frame
  that still names a UUID ``id`` gets a nack so its sender stops resending it.
* ROUTER bound to the stream endpoint, serving operator clients (see
  :mod:`vigil.alerts.transport` for the messages). A client subscribes with filters
  (camera, type, severity) and optionally ``since`` a stream sequence number; the aggregator
  sends it ``[stream_seq, event JSON]`` for each matching event, first from the store (replay),
  then live. A client whose queue is full (a slow reader) is switched to catching up from the
  store from where it stopped, in bounded slices per loop turn: it receives everything, late,
  and never slows ingest or the other clients. Clients renew their subscription every second;
  one silent for ``client_timeout_s`` (or gone: ``EHOSTUNREACH``) is forgotten.

Security: with ``keys`` (a :class:`~vigil.alerts.keys.CurveServer` or a keys folder) both
sockets are CURVE servers and every connection is authenticated against the allow-list by ZAP
(refusals counted in ``unauthorized``); without keys only loopback/ipc endpoints may be bound.

If the store fails (disk full, database locked for too long) nothing in that batch is
acknowledged: the publishers resend later. A frame above ``4 * MAX_EVENT_BYTES`` is refused
by libzmq itself (``MAXMSGSIZE``), which disconnects the sender; such frames are never seen
here and are therefore not counted.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Callable

import zmq

from .events import MAX_EVENT_BYTES, Event, EventError
from .keys import CurveServer, KeyFileError
from .store import EventStore, StoreError
from .transport import (
    DEFAULT_INGEST_ENDPOINT,
    DEFAULT_STREAM_ENDPOINT,
    MAX_BATCH_EVENTS,
    StreamFilter,
    Wakeup,
    check_bind_endpoint,
    encode_ack,
    encode_acks,
    encode_nack,
    encode_subscribed,
    parse_subscribe,
)

__all__ = ["Aggregator", "AggregatorError", "COUNTERS"]

log = logging.getLogger(__name__)

_MAX_QUEUED_BATCHES = 8  # validated batches waiting for the writer before ingest pauses
_WRITER_MAX_EVENTS = 8192  # events the writer commits in one transaction at most

COUNTERS = (
    "received",  # ingest messages of any shape
    "stored",  # new events committed
    "duplicates",  # valid events whose id was already stored (acknowledged again)
    "malformed",  # dropped: wrong frame count, not JSON, not a valid event, oversized
    "oversized",  # of which larger than MAX_EVENT_BYTES
    "nacked",  # malformed frames that named an id and were answered with a nack
    "published",  # event messages sent to stream clients (live and replayed)
    "replayed",  # of which read back from the store (replay, slow clients catching up)
    "lagging",  # times a client's queue was full and it was switched to catching up
    "stream_malformed",  # unreadable messages from stream clients (dropped)
    "unauthorized",  # connections refused by the CURVE allow-list (with keys only)
    "store_errors",  # batches not committed (and so not acknowledged)
    "reply_errors",  # acks/nacks that could not be sent (peer gone, queue full)
    "subscriptions",  # current stream clients, not a running total
)

_STREAM_SLICE = 256  # events read from the store per lagging client per loop turn


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


def _server_keepalive(sock: zmq.Socket) -> None:
    """Dead peers are found by TCP keep-alive on the aggregator's side, not ZMTP heartbeats.

    With ``ZMQ_HEARTBEAT_IVL`` on its bound sockets, libzmq 4.3.5 aborted the aggregator
    (``Assertion failed: !_io_error (src/stream_engine_base.cpp:310)``: the heartbeat timer
    writes on a connection that already failed) when an edge died while the aggregator was
    stalled — seen in the fault tests. The clients (publisher, stream client) keep ZMTP
    heartbeats to notice a dead aggregator; here keep-alive only has to reap dead peers.
    """
    sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
    sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 10)
    sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 5)
    sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)


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
        batch_max: int = 1024,
        stats_interval_s: float = 60.0,
        keys: CurveServer | str | Path | None = None,
        client_timeout_s: float = 5.0,
        stream_hwm: int = 10_000,
    ) -> None:
        self._curve: CurveServer | None = None
        self._own_context = context is None
        self._ctx = context if context is not None else zmq.Context()
        self._own_store = False
        self._ingest: zmq.Socket | None = None
        self._stream: zmq.Socket | None = None
        try:
            self._setup(
                db,
                ingest_endpoint,
                stream_endpoint,
                configure_ingest,
                configure_stream,
                batch_max,
                stats_interval_s,
                keys,
                client_timeout_s,
                stream_hwm,
            )
        except BaseException:
            self.close()
            raise

    def _setup(
        self,
        db,
        ingest_endpoint,
        stream_endpoint,
        configure_ingest,
        configure_stream,
        batch_max,
        stats_interval_s,
        keys,
        client_timeout_s,
        stream_hwm,
    ) -> None:
        if keys is None:
            for endpoint in (ingest_endpoint, stream_endpoint):
                try:
                    check_bind_endpoint(endpoint)
                except ValueError as exc:
                    raise AggregatorError(str(exc)) from None
        self.batch_max = int(batch_max)
        self.stats_interval_s = float(stats_interval_s)
        self.client_timeout_s = float(client_timeout_s)
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._malformed_logged = 0
        self._clients: dict[bytes, _Client] = {}

        if keys is not None:
            try:
                self._curve = keys if isinstance(keys, CurveServer) else CurveServer(keys)
            except KeyFileError as exc:
                raise AggregatorError(str(exc)) from None
            self._curve.start(self._ctx)

        if isinstance(db, (str, Path)):
            try:
                self.store = EventStore(db)
            except StoreError as exc:
                raise AggregatorError(str(exc)) from None
            self._own_store = True
        else:
            self.store = db
            self._own_store = False

        self._ingest = self._ctx.socket(zmq.ROUTER)
        self._ingest.setsockopt(zmq.LINGER, 0)
        self._ingest.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a lost ack is an error we log
        self._ingest.setsockopt(zmq.MAXMSGSIZE, 4 * MAX_EVENT_BYTES)
        _server_keepalive(self._ingest)
        if self._curve is not None:
            self._curve.configure(self._ingest)
        if configure_ingest is not None:
            configure_ingest(self._ingest)
        self._bind(self._ingest, ingest_endpoint, "ingest")
        self._stream = self._ctx.socket(zmq.ROUTER)
        self._stream.setsockopt(zmq.LINGER, 0)
        self._stream.setsockopt(zmq.ROUTER_MANDATORY, 1)  # full queue -> Again, gone -> EHOSTUNREACH
        self._stream.setsockopt(zmq.SNDHWM, int(stream_hwm))
        self._stream.setsockopt(zmq.MAXMSGSIZE, 64 * 1024)
        _server_keepalive(self._stream)
        if self._curve is not None:
            self._curve.configure(self._stream)
        if configure_stream is not None:
            configure_stream(self._stream)
        self._bind(self._stream, stream_endpoint, "stream")
        self.ingest_endpoint = self._ingest.getsockopt_string(zmq.LAST_ENDPOINT)
        self.stream_endpoint = self._stream.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info(
            "aggregator: ingest %s, stream %s, store %s",
            self.ingest_endpoint,
            self.stream_endpoint,
            getattr(self.store, "path", self.store),
        )

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
        out = dict(self._counters)
        if self._curve is not None:
            out["unauthorized"] = self._curve.denied
        return out

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set (checked at least every 100 ms).

        Validated batches are committed by a writer thread (:meth:`_writer`) while this
        thread receives and validates the next ones; the acknowledgements and the stream
        fan-out of a batch go out here once the writer reports it committed. At most
        ``_MAX_QUEUED_BATCHES`` batches wait for the writer; beyond that ingest is not read,
        so a slow disk pushes back on the publishers (ZeroMQ high-water marks) instead of
        growing memory.
        """
        if self._ingest is None or self._stream is None:
            raise AggregatorError("aggregator is closed")
        self._jobs: queue.Queue = queue.Queue()
        self._results: deque = deque()
        self._queued = 0
        self._committed = Wakeup()  # set by the writer after each commit
        writer = threading.Thread(target=self._writer, name="aggregator-store-writer", daemon=True)
        writer.start()
        poller = zmq.Poller()
        poller.register(self._ingest, zmq.POLLIN)
        poller.register(self._stream, zmq.POLLIN)
        poller.register(self._committed.reader, zmq.POLLIN)
        ingest_polled = True
        next_stats = time.monotonic() + self.stats_interval_s
        next_expiry = time.monotonic() + 1.0
        last_logged: dict[str, int] = {}
        try:
            while not stop.is_set():
                now = time.monotonic()
                timeout = 100
                for c in self._clients.values():
                    if not c.live:
                        timeout = min(timeout, max(0, int((c.blocked_until - now) * 1000) + 1))
                want_ingest = self._queued < _MAX_QUEUED_BATCHES
                if want_ingest != ingest_polled:
                    poller.modify(self._ingest, zmq.POLLIN if want_ingest else 0)
                    ingest_polled = want_ingest
                try:
                    ready = dict(poller.poll(timeout))
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.ETERM:
                        break
                    log.error("aggregator: ZeroMQ poll failed: %s (errno %s)", exc, exc.errno)
                    time.sleep(0.1)
                    continue
                if self._committed.is_set_in(ready):
                    self._finish_committed()
                if self._stream in ready:
                    self._handle_stream_requests()
                if self._ingest in ready and self._queued < _MAX_QUEUED_BATCHES:
                    self._handle_ingest()
                if self._clients:
                    self._serve_lagging()
                if self._clients and time.monotonic() >= next_expiry:
                    next_expiry = time.monotonic() + 1.0
                    self._expire_clients()
                if time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + self.stats_interval_s
                    if self._counters != last_logged:
                        last_logged = self.stats()
                        log.info("aggregator: %s", self._format_stats())
        finally:
            self._jobs.put(None)  # the writer commits what is queued, then stops
            writer.join()
            self._finish_committed()  # their acks go out (publishers resend whatever did not)
            self._committed.close()
        log.info("aggregator stopping: %s", self._format_stats())

    def _writer(self) -> None:
        """Writer thread: commit queued batches (several at once when they pile up) and hand
        the results back to the serving thread."""
        while True:
            job = self._jobs.get()
            stopping = job is None
            jobs = [] if stopping else [job]
            n_events = 0 if stopping else len(job[0])
            while not stopping and n_events < _WRITER_MAX_EVENTS:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                else:
                    jobs.append(more)
                    n_events += len(more[0])
            if jobs:
                events = [event for batch, _ in jobs for _, event in batch]
                texts = [text for _, batch_texts in jobs for text in batch_texts]
                try:
                    seqs: list | StoreError = self.store.add_many_seq(events, texts)
                except StoreError as exc:
                    seqs = exc
                except Exception as exc:  # noqa: BLE001 - a bug must not kill ingest silently
                    log.exception("aggregator: unexpected error storing %d event(s)", len(events))
                    seqs = StoreError(f"unexpected {type(exc).__name__}: {exc}")
                self._results.append((jobs, seqs))
                self._committed.set()
            if stopping:
                return

    def _finish_committed(self) -> None:
        """Acknowledge and fan out every batch the writer has committed (serving thread)."""
        self._committed.clear()
        while self._results:
            jobs, seqs = self._results.popleft()
            self._queued -= len(jobs)
            if isinstance(seqs, StoreError):
                n = sum(len(batch) for batch, _ in jobs)
                self._counters["store_errors"] += 1
                log.error("aggregator: %s; %d event(s) not acknowledged (publishers will resend)", seqs, n)
                continue
            k = 0
            for batch, texts in jobs:
                self._acknowledge(batch, texts, seqs[k : k + len(batch)])
                k += len(batch)

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
            log.warning(
                "aggregator: dropped a malformed message from peer %s: %s (%d malformed so far)", who, reason[:300], n
            )

    def _reply(self, envelope: list[bytes], frame: bytes) -> None:
        try:
            self._ingest.send_multipart([*envelope, frame], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # EHOSTUNREACH: peer gone (it will resend); Again: queue full
            self._counters["reply_errors"] += 1
            log.warning("aggregator: cannot reply to peer %s: %s (errno %s)", envelope[0].hex(), exc, exc.errno)

    def _handle_ingest(self) -> None:
        batch: list[tuple[list[bytes], Event]] = []
        n_frames = 0
        while n_frames < self.batch_max:
            try:
                frames = self._ingest.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:
                log.error("aggregator: ZeroMQ recv failed: %s (errno %s)", exc, exc.errno)
                break
            if len(frames) == 3 and frames[1] == b"":
                envelope, payloads = frames[:2], frames[2:]  # REQ client: one event per request
            elif len(frames) >= 2 and frames[1] != b"":
                envelope, payloads = frames[:1], frames[1:]  # DEALER: one event per frame
            else:
                self._counters["received"] += 1
                self._malformed(f"{len(frames) - 1} payload frame(s) after an empty delimiter or none", frames[0])
                continue
            if len(payloads) > MAX_BATCH_EVENTS:
                self._counters["received"] += len(payloads)
                self._malformed(f"{len(payloads)} event frames in one message, limit {MAX_BATCH_EVENTS}", envelope[0])
                continue
            n_frames += len(payloads)
            for payload in payloads:
                self._counters["received"] += 1
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
        batch = [(envelope, self._plate_transit(event)) for envelope, event in batch]
        texts = [event.to_json() for _, event in batch]
        self._queued += 1
        self._jobs.put((batch, texts))

    def _acknowledge(self, batch: list[tuple[list[bytes], Event]], texts: list[str], seqs: list[int | None]) -> None:
        """Count, acknowledge and fan out one committed batch (``seqs``: per event its new
        ``stream_seq``, or ``None`` for a duplicate)."""
        # counted before the acks go out: a publisher that saw its ack then reads stats() sees it
        fresh = []
        for (_, event), stream_seq, text in zip(batch, seqs, texts):
            if stream_seq is not None:
                self._counters["stored"] += 1
                fresh.append((stream_seq, event, text))
            else:
                self._counters["duplicates"] += 1
        # one ack frame per peer per batch (``acks``), or the single form for one event
        by_peer: dict[tuple[bytes, ...], list[tuple[str, bool]]] = {}
        for (envelope, event), stream_seq in zip(batch, seqs):
            by_peer.setdefault(tuple(envelope), []).append((event.id, stream_seq is not None))
        for envelope, items in by_peer.items():
            if len(items) == 1 or len(envelope) > 1:  # REQ peers get exactly one reply per request
                for event_id, new in items:
                    self._reply(list(envelope), encode_ack(event_id, "stored" if new else "duplicate"))
            else:
                self._reply(list(envelope), encode_acks([event_id for event_id, _ in items]))
        if fresh and self._clients:
            self._fan_out(fresh)

    def _plate_transit(self, event: Event) -> Event:
        """Record a ``plate_transit`` in the transit table (:mod:`vigil.alerts.transits`) and
        return the event to store: a transit without list hits loses its clear plate (keyed
        pseudonym instead), so the event table holds no plate of a vehicle on no list."""
        if event.type != "plate_transit":
            return event
        try:
            from vigil.alerts.transits import TransitStore, redact_event_payload

            if getattr(self, "_transits", None) is None:
                self._transits = TransitStore(self.store.path)
            self._transits.add_event(event)
            payload = redact_event_payload(event.payload, self._transits.key)
        except Exception as exc:  # noqa: BLE001 - a transit problem must not stop event ingest
            log.error("aggregator: plate transit %s not recorded: %s", event.id, exc)
            payload = {k: v for k, v in event.payload.items() if k != "plate" or event.payload.get("hits")}
        if payload is event.payload:
            return event
        return event.model_copy(update={"payload": payload})

    # ------------------------------------------------------------------ operator stream
    def _send_to(self, client: _Client, stream_seq: int, text: bytes) -> bool:
        """Send one event; ``False`` if the client is full (now lagging) or gone (removed)."""
        try:
            self._stream.send_multipart([client.identity, str(stream_seq).encode(), text], zmq.NOBLOCK)
        except zmq.Again:
            if client.live:
                self._counters["lagging"] += 1
                log.info("aggregator: stream client %s is slow; it will catch up from the store", client.identity.hex())
            client.live = False
            client.blocked_until = time.monotonic() + 0.05
            return False
        except zmq.ZMQError as exc:  # EHOSTUNREACH: disconnected
            log.info("aggregator: stream client %s gone (%s)", client.identity.hex(), exc)
            self._drop_client(client.identity)
            return False
        self._counters["published"] += 1
        client.cursor = stream_seq
        return True

    def _fan_out(self, fresh: list[tuple[int, Event, str]]) -> None:
        for stream_seq, event, text_s in fresh:
            text = None
            for client in list(self._clients.values()):
                if not client.live or client.cursor >= stream_seq:
                    continue
                if not client.wants(event.camera, event.type, event.severity):
                    client.cursor = stream_seq
                    continue
                if text is None:
                    text = text_s.encode("utf-8")
                self._send_to(client, stream_seq, text)

    def _serve_lagging(self) -> None:
        now = time.monotonic()
        for client in list(self._clients.values()):
            if client.live or client.blocked_until > now:
                continue
            try:
                rows = self.store.read_after(client.cursor, _STREAM_SLICE)
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
                self._counters["replayed"] += 1
            else:
                if len(rows) < _STREAM_SLICE and client.identity in self._clients:
                    client.live = True  # caught up: new events now go out as they are stored

    def _handle_stream_requests(self) -> None:
        for _ in range(1000):
            try:
                frames = self._stream.recv_multipart(zmq.NOBLOCK)
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
                self._counters["stream_malformed"] += 1
                n = self._counters["stream_malformed"]
                if n <= 10 or n % 1000 == 0:
                    log.warning("aggregator: dropped a malformed stream request from %s: %s", identity.hex(), exc)
                continue
            now = time.monotonic()
            if request.op == "bye":
                self._drop_client(identity)
                continue
            client = self._clients.get(identity)
            if client is not None:
                client.last_heard = now
                client.filters = request.filters
                continue
            last = self.store.last_stream_seq()
            if request.since is None or request.since >= last:
                client = _Client(identity, request.filters, last, True, now)
            else:
                client = _Client(identity, request.filters, max(0, request.since), False, now)
            self._clients[identity] = client
            self._counters["subscriptions"] = len(self._clients)
            try:
                self._stream.send_multipart([identity, encode_subscribed(client.cursor, last)], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # it will renew its subscription
            log.info(
                "aggregator: stream client %s subscribed (since %s, %d filter(s))",
                identity.hex(),
                request.since,
                len(request.filters),
            )

    def _drop_client(self, identity: bytes) -> None:
        if self._clients.pop(identity, None) is not None:
            self._counters["subscriptions"] = len(self._clients)

    def _expire_clients(self) -> None:
        now = time.monotonic()
        for identity, client in list(self._clients.items()):
            if now - client.last_heard > self.client_timeout_s:
                log.info(
                    "aggregator: stream client %s silent for %.0f s; forgotten", identity.hex(), now - client.last_heard
                )
                self._drop_client(identity)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        for attr in ("_ingest", "_stream"):
            sock = getattr(self, attr, None)
            if sock is not None:
                sock.close(linger=0)
                setattr(self, attr, None)
        if self._curve is not None:
            self._curve.stop()
            self._curve = None
        if self._own_context and not self._ctx.closed:
            self._ctx.term()
        if self._own_store and getattr(self, "store", None) is not None:
            self.store.close()
            self._own_store = False
        if getattr(self, "_transits", None) is not None:
            self._transits.close()
            self._transits = None

    def __enter__(self) -> "Aggregator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
