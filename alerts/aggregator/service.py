"""The aggregator: receive events from edge workers, store them, acknowledge, re-publish.

Three parts, composed by :class:`Aggregator`; one serving thread (:meth:`Aggregator.run`) owns
both sockets (see :mod:`vigil.alerts.transport` for the protocol) while a writer thread
commits:

* :class:`~.ingest.Ingest`: the ROUTER bound to the ingest endpoint; validates each frame,
  counts and rejects the bad ones, acknowledges only what the store committed (duplicates too);
* :class:`~.writer.StoreWriter`: the store-writer thread; groups the validated batches,
  commits them in one transaction per group and hands back what was committed; ingest pauses
  while :data:`~.writer.MAX_QUEUED_BATCHES` batches wait;
* :class:`~.stream.OperatorStream`: the ROUTER bound to the stream endpoint; operator
  clients, replay from a cursor, lagging clients catching up from the store, expiry.

Security: with ``keys`` (a :class:`~vigil.alerts.keys.CurveServer` or a keys folder) both
sockets are CURVE servers and every connection is authenticated by ZAP against the allow-list
of its role: the ingest socket (ZAP domain ``ingest``) accepts edge keys only, the stream socket
(``stream``) operator keys only (layout and reloading in :mod:`vigil.alerts.keys`). Refusals are
counted in ``unauthorized`` (copied from the authenticator's count into the counters, so the
periodic log line shows them too). ZAP runs only at the handshake, so when a reading of the
allow-lists loses a key of a role (:attr:`~vigil.alerts.keys.CurveServer.revocations`), the
serving loop reopens that role's socket within :data:`REVOCATION_CHECK_S` (counted in
``revocations``): every connection on it is dropped, the listener is released and bound again
on the same endpoint (:func:`~.sockets.release_endpoint`). Honest clients reconnect by
themselves (publishers resend what was not acknowledged, stream clients resubscribe from their
last ``stream_seq``); the revoked key fails the new handshake. Without keys only loopback/ipc
endpoints may be bound.

If the store fails (disk full, database locked for too long) nothing in that batch is
acknowledged: the publishers resend later.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import zmq

from vigil.ratelog import RateLimitedLog

from ..keys import CurveServer, KeyFileError
from ..store import EventStore, Store, StoreError
from ..transport import DEFAULT_INGEST_ENDPOINT, DEFAULT_STREAM_ENDPOINT, check_bind_endpoint
from .forward import Forwarding
from .forward_config import ForwardConfig, ForwardConfigError, load_forward_config
from .ingest import Ingest
from .plate_transits import PlateTransits
from .sockets import AggregatorError
from .status import STATUS_INTERVAL_S, write_status
from .stream import OperatorStream
from .writer import StoreWriter

__all__ = ["Aggregator", "AggregatorError", "COUNTERS", "REVOCATION_CHECK_S"]

log = logging.getLogger(__name__)

REVOCATION_CHECK_S = 0.2  # the serving loop looks for revoked keys this often

COUNTERS = (
    "received",  # ingest messages of any shape
    "stored",  # new events committed
    "duplicates",  # valid events whose id was already stored (acknowledged again)
    "malformed",  # dropped: wrong frame count, not JSON, not a valid event, oversized
    "oversized",  # of which larger than MAX_EVENT_BYTES
    "nacked",  # malformed frames that named an id and were answered with a nack
    "rejected",  # valid-looking events refused for good with a nack (the store or the plate rules refused them)
    "conflicts",  # an id already stored resent with other content: acknowledged, kept aside for an administrator
    "penalised",  # event frames dropped unread: their peer sent a flood of bad frames (ingest.PENALTY_FRAMES)
    "penalties",  # times a peer was put in that penalty
    "published",  # event messages sent to stream clients (live and replayed)
    "replayed",  # of which read back from the store (replay, slow clients catching up)
    "lagging",  # times a client's queue was full and it was switched to catching up
    "stream_malformed",  # unreadable messages from stream clients (dropped)
    "unauthorized",  # handshakes refused by the CURVE allow-lists (with keys only)
    "revocations",  # sockets reopened to drop the connections of revoked keys (with keys only)
    "store_errors",  # batches not committed (and so not acknowledged)
    "reply_errors",  # acks/nacks that could not be sent (peer gone, queue full)
    "subscriptions",  # current stream clients, not a running total
)


class Aggregator:
    """Ingest, store and stream events. Binds in the constructor; serve with :meth:`run`.

    ``db``: a path (an :class:`~vigil.alerts.store.EventStore` is opened there, and closed by
    :meth:`close`) or an already open store (:class:`~vigil.alerts.store.Store`: SQLite or
    PostgreSQL; left open). ``configure_ingest`` and ``configure_stream`` are called with each
    socket before ``bind`` (the seam for CURVE). Without them, endpoints must be loopback or ipc
    (see :func:`~vigil.alerts.transport.check_bind_endpoint`).

    ``status_file``: rewritten every :data:`~.status.STATUS_INTERVAL_S` with the counters and
    whether the store answers (:mod:`.status`; ``vigil status --aggregator FILE`` reads it),
    and what ``status_extra()`` returns (the command line adds the last retention report).

    ``forward``: a :class:`~.forward_config.ForwardConfig` (or the path of its file): stored
    alarms are forwarded to its webhooks and MQTT brokers by :class:`~.forward.Forwarding`
    threads while :meth:`run` serves; their counters go into the status file (``forwarding``).

    Sockets are created in the constructor's thread and used only by the thread calling
    :meth:`run` (one at a time); :meth:`stats` may be read from anywhere.
    """

    def __init__(
        self,
        db: str | Path | Store,
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
        status_file: str | Path | None = None,
        status_extra: Callable[[], dict] | None = None,
        forward: ForwardConfig | str | Path | None = None,
    ) -> None:
        self.batch_max = int(batch_max)
        self.stats_interval_s = float(stats_interval_s)
        self.client_timeout_s = float(client_timeout_s)
        self.status_file = Path(status_file) if status_file else None
        self._status_extra = status_extra
        self._store_error: str | None = None  # the last commit's failure (None: it succeeded)
        self._status_log = RateLimitedLog(log)
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._curve: CurveServer | None = None
        self._revocations_seen: dict[str, int] = {}
        self._ingest_polled = True
        self._own_context = context is None
        self._ctx = context if context is not None else zmq.Context()
        self._own_store = False
        self.store: Store | None = None
        self._transits: PlateTransits | None = None
        self._ingest: Ingest | None = None
        self._stream: OperatorStream | None = None
        self._writer: StoreWriter | None = None
        self._forwarding: Forwarding | None = None
        try:
            if keys is None:
                for endpoint in (ingest_endpoint, stream_endpoint):
                    try:
                        check_bind_endpoint(endpoint)
                    except ValueError as exc:
                        raise AggregatorError(str(exc)) from None
            else:
                try:
                    self._curve = keys if isinstance(keys, CurveServer) else CurveServer(keys)
                except KeyFileError as exc:
                    raise AggregatorError(str(exc)) from None
                self._curve.start(self._ctx)
                self._revocations_seen = dict(self._curve.revocations)
            if isinstance(db, (str, Path)):
                try:
                    self.store = EventStore(db, single_writer=True)
                except StoreError as exc:
                    raise AggregatorError(str(exc)) from None
                self._own_store = True
            else:
                self.store = db
            self._transits = PlateTransits(self.store)
            key_problem = self._transits.key_problem()
            if key_problem:
                log.warning("aggregator: no usable plate key; no-hit plate transits will be refused: %s", key_problem)
            self._ingest = Ingest(
                self._ctx,
                ingest_endpoint,
                self._counters,
                self._transits,
                batch_max=self.batch_max,
                curve=self._curve,
                configure=configure_ingest,
            )
            self._stream = OperatorStream(
                self._ctx,
                stream_endpoint,
                self._counters,
                self.store,
                hwm=stream_hwm,
                client_timeout_s=self.client_timeout_s,
                curve=self._curve,
                configure=configure_stream,
            )
            self._writer = StoreWriter(self.store)
            if forward is not None:
                try:
                    config = forward if isinstance(forward, ForwardConfig) else load_forward_config(forward)
                    self._forwarding = Forwarding(config, self.store)
                except (ForwardConfigError, ValueError) as exc:
                    raise AggregatorError(str(exc)) from None
        except BaseException:
            self.close()
            raise
        self.ingest_endpoint = self._ingest.endpoint
        self.stream_endpoint = self._stream.endpoint
        self._poller = zmq.Poller()
        self._poller.register(self._ingest.socket, zmq.POLLIN)
        self._poller.register(self._stream.socket, zmq.POLLIN)
        self._poller.register(self._writer.committed.reader, zmq.POLLIN)
        log.info(
            "aggregator: ingest %s, stream %s, store %s",
            self.ingest_endpoint,
            self.stream_endpoint,
            getattr(self.store, "path", self.store),
        )

    # ------------------------------------------------------------------ serving
    def stats(self) -> dict[str, int]:
        """A snapshot of the counters (see :data:`COUNTERS`)."""
        self._sync_auth_counters()
        return dict(self._counters)

    def _sync_auth_counters(self) -> None:
        # the authenticator thread counts refusals; the counters (and the log line) show its count
        if self._curve is not None:
            self._counters["unauthorized"] = self._curve.denied

    def _check_revocations(self) -> None:
        """Reopen the socket of each ZAP domain that lost a key since the last look (serving thread)."""
        seen = dict(self._curve.revocations)
        for domain, part in (("ingest", self._ingest), ("stream", self._stream)):
            if seen[domain] == self._revocations_seen.get(domain, 0):
                continue
            old = part.socket
            self._poller.unregister(old)
            try:
                part.reopen()
            except AggregatorError as exc:  # the endpoint was released: someone else took it
                log.error("aggregator: cannot reopen the %s socket after a revocation: %s; stopping", domain, exc)
                raise
            flags = zmq.POLLIN if (domain == "stream" or self._ingest_polled) else 0
            self._poller.register(part.socket, flags)
            self._revocations_seen[domain] = seen[domain]
            self._counters["revocations"] += 1
            log.warning(
                "aggregator: %s socket reopened: connections of revoked keys dropped (the others reconnect)", domain
            )

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set (checked at least every 100 ms).

        Validated batches are committed by the writer thread (:class:`~.writer.StoreWriter`)
        while this thread receives and validates the next ones; the acknowledgements and the
        stream fan-out of a batch go out here once the writer reports it committed. While
        :data:`~.writer.MAX_QUEUED_BATCHES` batches wait for the writer ingest is not read, so
        a slow disk pushes back on the publishers (ZeroMQ high-water marks) instead of
        growing memory.
        """
        if self._ingest is None or self._stream is None:
            raise AggregatorError("aggregator is closed")
        ingest, stream, writer, poller = self._ingest, self._stream, self._writer, self._poller
        writer.start()
        if self._forwarding is not None:
            self._forwarding.start()
        poller.modify(ingest.socket, zmq.POLLIN)
        self._ingest_polled = True
        next_stats = time.monotonic() + self.stats_interval_s
        next_expiry = time.monotonic() + 1.0
        next_revocation_check = time.monotonic() + REVOCATION_CHECK_S
        next_status = time.monotonic()
        last_logged: dict[str, int] = {}
        try:
            while not stop.is_set():
                if self._curve is not None and time.monotonic() >= next_revocation_check:
                    next_revocation_check = time.monotonic() + REVOCATION_CHECK_S
                    self._check_revocations()
                timeout = stream.follow_timeout_ms(time.monotonic(), stream.poll_timeout_ms(time.monotonic(), 100))
                want_ingest = not writer.full
                if want_ingest != self._ingest_polled and ingest.socket is not None:
                    poller.modify(ingest.socket, zmq.POLLIN if want_ingest else 0)
                    self._ingest_polled = want_ingest
                try:
                    ready = dict(poller.poll(timeout))
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.ETERM:
                        break
                    log.error("aggregator: ZeroMQ poll failed: %s (errno %s)", exc, exc.errno)
                    time.sleep(0.1)
                    continue
                if writer.committed.is_set_in(ready):
                    self._finish_committed()
                if stream.socket in ready:
                    stream.handle_requests()
                if ingest.socket in ready and not writer.full:
                    batch = ingest.receive()
                    if batch is not None:
                        writer.submit(batch)
                if stream.clients:
                    stream.serve_lagging()
                    stream.follow_store()  # a shared store: other aggregators' events too
                if stream.clients and time.monotonic() >= next_expiry:
                    next_expiry = time.monotonic() + 1.0
                    stream.expire_clients()
                if self.status_file is not None and time.monotonic() >= next_status:
                    next_status = time.monotonic() + STATUS_INTERVAL_S
                    self._write_status()
                if time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + self.stats_interval_s
                    if self.stats() != last_logged:
                        last_logged = self.stats()
                        log.info("aggregator: %s", self._format_stats())
        finally:
            writer.stop()  # the writer commits what is queued, then stops
            self._finish_committed()  # their acks go out (publishers resend whatever did not)
            if self._forwarding is not None:
                self._forwarding.stop()  # cursors stay where the receivers confirmed
        log.info("aggregator stopping: %s", self._format_stats())

    def _write_status(self) -> None:
        """Rewrite the status file (serving thread): counters, and a real read of the store."""
        try:
            last, error = self.store.last_stream_seq(), self._store_error
        except StoreError as exc:
            last, error = None, str(exc)
        try:
            write_status(
                self.status_file,
                {
                    "ingest": self.ingest_endpoint,
                    "stream": self.stream_endpoint,
                    "store": str(getattr(self.store, "path", "")),
                    "store_ok": error is None,
                    "store_error": error,
                    "last_stream_seq": last,
                    "counters": self.stats(),
                    **({"forwarding": self._forwarding.status(last)} if self._forwarding is not None else {}),
                    **(self._status_extra() if self._status_extra is not None else {}),
                },
            )
        except OSError as exc:
            self._status_log.log(
                "status_file", logging.ERROR, "aggregator: cannot write the status file %s: %s", self.status_file, exc
            )

    def _finish_committed(self) -> None:
        """Acknowledge and fan out every batch the writer has committed (serving thread)."""
        for commit in self._writer.take_committed():
            self._store_error = None if commit.error is None else str(commit.error)
            if commit.error is not None:
                n = sum(len(batch.items) for batch in commit.batches)
                self._counters["store_errors"] += 1
                log.error("aggregator: %s; %d event(s) not acknowledged (publishers will resend)", commit.error, n)
                continue
            if self._forwarding is not None:
                self._forwarding.notify()
            for batch, seqs in commit.per_batch():
                fresh = self._ingest.acknowledge(batch, seqs)
                if fresh and self._stream.clients:
                    self._stream.fan_out(fresh)

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
        return ", ".join(f"{k}={v}" for k, v in self.stats().items())

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        for part in ("_ingest", "_stream"):
            if getattr(self, part) is not None:
                getattr(self, part).close()
                setattr(self, part, None)
        if self._curve is not None:
            self._curve.stop()
            self._curve = None
        if self._own_context and not self._ctx.closed:
            self._ctx.term()
        if self._own_store and self.store is not None:
            self.store.close()
            self._own_store = False
        if self._transits is not None:
            self._transits.close()
            self._transits = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "Aggregator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
