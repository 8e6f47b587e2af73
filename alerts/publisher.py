"""Edge side of the alarm path: send events to the aggregator until each is acknowledged.

:class:`EventPublisher` is called from the video loop. ``publish()`` only appends to an
in-memory buffer and wakes a background I/O thread, which alone owns the ZeroMQ DEALER
socket (ZeroMQ sockets are not thread-safe). That thread sends each event, waits for the
aggregator's ack carrying the event id, and resends unacknowledged events with exponential
backoff. The buffer is bounded: when it is full the *oldest* event is dropped and counted
(``DeliveryReport.dropped``) and a warning is logged.

The buffer is an :class:`~vigil.alerts.outbox.Outbox`: a
:class:`~vigil.alerts.outbox.MemoryOutbox` by default, or the durable
:class:`~vigil.alerts.outbox.SqliteOutbox` (``outbox=PATH``): then ``publish()`` returns only
once the event is committed to the local file, an event is deleted from it only when
acknowledged, and a restarted publisher resends what the previous one left (in the order it
was put, which is per-camera ``seq`` order). ``last_seq(camera)``/``next_seq(camera)`` keep
per-camera sequence numbers increasing across restarts. The socket passes through
``configure_socket`` before ``connect`` (CURVE client keys: see
:func:`vigil.alerts.keys.client_configurator`).

Socket choices: ``IMMEDIATE=1`` so nothing is queued inside libzmq while no aggregator is
connected (a send then fails with ``zmq.Again`` and the event stays in *our* buffer, where it
is counted and bounded); ``LINGER=0`` so ``close()`` never hangs (undelivered events are
reported, not hidden in a libzmq queue); ZMTP heartbeats so a dead peer is noticed. A
socket monitor watches the connection: when a (re)connection completes, every event still
waiting for its ack is resent at once instead of at its backoff time (whatever was in flight
on the old connection is lost with it).
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

from .events import MAX_EVENT_BYTES, Event, EventError
from .outbox import MemoryOutbox, Outbox, SqliteOutbox
from .transport import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, Wakeup, decode_reply, is_local_endpoint

__all__ = ["EventPublisher", "DeliveryReport", "PublisherError"]

log = logging.getLogger(__name__)

_RETRY_WHEN_DISCONNECTED_S = 0.1


class PublisherError(RuntimeError):
    """The publisher cannot be created or is used after ``close()``."""


@dataclass(frozen=True)
class DeliveryReport:
    """Counts since the publisher started.

    ``published == acknowledged + rejected + dropped + pending`` always holds.
    """

    published: int  # events accepted by publish()
    sent: int  # distinct events sent at least once
    acknowledged: int  # distinct events acknowledged by the aggregator
    pending: int  # in the buffer, not yet acknowledged (sent or not)
    dropped: int  # pushed out of the full buffer, never acknowledged
    rejected: int  # refused by the aggregator as invalid (nack), not retried
    resent: int  # retransmissions (all events together)
    errors: int  # ZeroMQ errors logged by the I/O thread
    recovered: int = 0  # of ``published``: left unacknowledged in the outbox by a previous run

    @property
    def undelivered(self) -> int:
        return self.pending + self.dropped + self.rejected

    @property
    def complete(self) -> bool:
        """Every published event has been acknowledged."""
        return self.undelivered == 0


class EventPublisher:
    """Deliver events to the aggregator's ingest endpoint with acknowledgements.

    ``timeout_s``: how long to wait for an ack before the first resend; later resends back
    off exponentially (with jitter) up to ``backoff_max_s``. At most ``max_in_flight`` events
    are sent and unacknowledged at a time (flow control: a busy aggregator is not flooded
    into ack timeouts and needless resends). Events waiting to go out together travel in
    one ZeroMQ message of up to ``batch_max`` frames (one event per frame, at most
    :data:`~vigil.alerts.transport.MAX_BATCH_BYTES` in all), so a burst costs one send, not
    one per event. ``max_buffer``: most
    unacknowledged events kept; beyond it the oldest are dropped and counted.
    ``outbox``: ``None`` (in memory, lost on exit), a path (a durable
    :class:`~vigil.alerts.outbox.SqliteOutbox` opened there, closed by :meth:`close`) or an
    outbox object (left open). ``configure_socket``: called with the DEALER socket before it connects (security hook).

    Thread-safety: ``publish``, ``flush``, ``report`` and ``close`` may be called from any
    thread; only the internal I/O thread touches the socket.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 2.0,
        max_buffer: int = 10_000,
        backoff_max_s: float = 15.0,
        context: zmq.Context | None = None,
        configure_socket: Callable[[zmq.Socket], None] | None = None,
        name: str = "vigil-publisher",
        outbox: str | Path | Outbox | None = None,
        max_in_flight: int = 8192,
        batch_max: int = 256,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if backoff_max_s < timeout_s:
            raise ValueError(f"backoff_max_s ({backoff_max_s}) must be >= timeout_s ({timeout_s})")
        self.endpoint = endpoint
        self.timeout_s = float(timeout_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_in_flight = int(max_in_flight)
        if not 1 <= batch_max <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_max must be 1..{MAX_BATCH_EVENTS}, got {batch_max}")
        self.batch_max = int(batch_max)
        self._own_outbox = False
        self._outbox: Outbox
        if outbox is None:
            self._outbox = MemoryOutbox(max_buffer)
        elif isinstance(outbox, (str, Path)):
            self._outbox = SqliteOutbox(outbox, max_events=max_buffer)
            self._own_outbox = True
        else:
            self._outbox = outbox
        self._next_seq: dict[str, int] = {}

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified on ack/nack/drop
        self._unsent: deque[str] = deque()  # ids never sent, in order
        self._retry: list[tuple[float, int, str]] = []  # heap (due, attempt, id) for sent ids
        self._attempts: dict[str, int] = {}  # id -> sends so far (only sent, pending ids)
        self._published = self._sent = self._acked = self._dropped = 0
        self._rejected = self._resent = self._errors = 0
        self._closed = False
        self._stop = False
        self._idle = True  # the I/O thread is in (or about to enter) a poll that waits
        # what a previous run left in a durable outbox goes first, in the order it was put
        self._unsent.extend(self._outbox.ids())
        self._recovered = self._published = len(self._unsent)

        if not is_local_endpoint(endpoint) and configure_socket is None:
            log.warning("publishing events to %s without transport security (no CURVE keys)", endpoint)

        self._own_context = context is None
        self._ctx = context if context is not None else zmq.Context()
        try:
            self._sock = self._ctx.socket(zmq.DEALER)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.IMMEDIATE, 1)
            self._sock.setsockopt(zmq.RECONNECT_IVL, 100)
            self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
            self._sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
            self._sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
            self._sock.setsockopt(zmq.SNDHWM, 1000)
            if configure_socket is not None:
                configure_socket(self._sock)
            self._monitor = self._sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
            self._sock.connect(endpoint)
        except zmq.ZMQError as exc:
            self._close_socket()
            if self._own_context:
                self._ctx.term()
            if self._own_outbox:
                self._outbox.close()
            raise PublisherError(f"cannot connect event publisher to {endpoint}: {exc}") from exc

        # Wake-up channel: publish() writes a byte, the I/O thread polls the other end.
        self._wakeup = Wakeup()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()  # a full memory barrier: the socket now belongs to the thread

    # ------------------------------------------------------------------ caller side
    def publish(self, event: Event) -> None:
        """Queue ``event`` for delivery; returns once it is in the outbox (committed to the
        file for a durable outbox).

        Raises :class:`~vigil.alerts.events.EventError` for an event too large to send,
        :class:`PublisherError` after ``close()`` and
        :class:`~vigil.alerts.outbox.OutboxError` when the outbox file cannot be written.
        """
        self.publish_many([event])

    def publish_many(self, events: list[Event]) -> None:
        """:meth:`publish` several events with one outbox transaction (e.g. one video frame's)."""
        datas = []
        for event in events:
            data = event.to_bytes()
            if len(data) > MAX_EVENT_BYTES:
                raise EventError(f"event {event.id} is {len(data)} bytes; the limit is {MAX_EVENT_BYTES}")
            datas.append(data)
        with self._lock:
            if self._closed:
                raise PublisherError("publish() after close()")
            items, seen = [], set()
            for event, data in zip(events, datas):
                if event.id not in self._outbox and event.id not in seen:
                    seen.add(event.id)
                    items.append((event.id, data, event.camera, event.seq))
            if not items:
                return
            dropped = self._outbox.put_many(items)
            for event in events:
                if event.seq >= self._next_seq.get(event.camera, 0):
                    self._next_seq[event.camera] = event.seq + 1
            self._published += len(items)
            if dropped:
                self._dropped += len(dropped)
                dropped_set = set(dropped)
                for old in dropped:
                    self._attempts.pop(old, None)  # a stale retry entry is skipped when due
                while self._unsent and self._unsent[0] in dropped_set:
                    self._unsent.popleft()  # both are in publish order: keep them aligned
                if self._dropped == len(dropped) or self._dropped % 1000 < len(dropped):
                    log.warning(
                        "event buffer full (%d): dropped the oldest unacknowledged event(s); "
                        "%d dropped so far — is the aggregator at %s reachable?",
                        self._outbox.max_events,
                        self._dropped,
                        self.endpoint,
                    )
                self._changed.notify_all()
            self._unsent.extend(i for i, _, _, _ in items if i in self._outbox)
            wake = self._idle
        if wake:  # a busy I/O thread finds the new events when it next looks (under the lock)
            self._wake()

    def last_seq(self, camera: str) -> int:
        """Highest ``seq`` published for ``camera``, by this or (durable outbox) an earlier run."""
        with self._lock:
            return max(self._outbox.last_seq(camera), self._next_seq.get(camera, 1) - 1)

    def next_seq(self, camera: str) -> int:
        """Reserve the next ``seq`` for ``camera`` (continues after a restart with a durable
        outbox; an unused reservation is reused by the next run, so no gap is left)."""
        return self.next_seqs(camera, 1)[0]

    def next_seqs(self, camera: str, n: int) -> range:
        """Reserve the next ``n`` sequence numbers for ``camera`` at once (see :meth:`next_seq`)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        with self._lock:
            first = max(self._outbox.last_seq(camera) + 1, self._next_seq.get(camera, 1))
            self._next_seq[camera] = first + n
            return range(first, first + n)

    def report(self) -> DeliveryReport:
        with self._lock:
            return self._report_locked()

    def flush(self, timeout_s: float = 5.0) -> DeliveryReport:
        """Wait up to ``timeout_s`` until every buffered event is acknowledged; report."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._lock:
            while len(self._outbox) and not self._stop:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return self._report_locked()

    def close(self, timeout_s: float = 1.0) -> DeliveryReport:
        """Flush for up to ``timeout_s``, stop the I/O thread, close the socket; report.

        Never hangs on the network (``LINGER=0``). Events still unacknowledged are counted
        in ``pending`` of the returned report and logged.
        """
        with self._lock:
            already = self._closed
            self._closed = True
        if already:
            self._thread.join()
            return self.report()
        report = self.flush(timeout_s)
        with self._lock:
            self._stop = True
        self._wake()
        self._thread.join()
        self._wakeup.close()
        if self._own_context:
            self._ctx.term()
        report = self.report()
        if self._own_outbox:
            with self._lock:
                self._outbox.close()
        if report.undelivered:
            log.warning(
                "event publisher to %s closed with %d event(s) undelivered (%d pending, %d dropped, %d rejected)",
                self.endpoint,
                report.undelivered,
                report.pending,
                report.dropped,
                report.rejected,
            )
        return report

    def __enter__(self) -> "EventPublisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _report_locked(self) -> DeliveryReport:
        return DeliveryReport(
            published=self._published,
            sent=self._sent,
            acknowledged=self._acked,
            pending=len(self._outbox),
            dropped=self._dropped,
            rejected=self._rejected,
            resent=self._resent,
            errors=self._errors,
            recovered=self._recovered,
        )

    def _wake(self) -> None:
        self._wakeup.set()

    # ------------------------------------------------------------------ I/O thread
    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._wakeup.reader, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        blocked_until = 0.0  # no aggregator connected: don't try sending before this
        self._reconnecting = False  # a connection was lost since the last one completed
        try:
            while True:
                with self._lock:
                    if self._stop:
                        break
                    timeout = self._poll_timeout(blocked_until)
                    self._idle = timeout != 0  # publish() must wake us
                try:
                    ready = dict(poller.poll(timeout))
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.ETERM:
                        break
                    self._log_zmq_error("poll", exc)
                    time.sleep(0.05)
                    continue
                self._idle = False  # from here on we look for work before polling again
                if self._wakeup.is_set_in(ready):
                    self._wakeup.clear()
                if self._monitor in ready:
                    if self._connection_events():
                        blocked_until = 0.0
                if self._sock in ready:
                    self._receive_replies()
                if self._reconnecting:
                    # A connection was lost: nothing new goes out until our monitor has seen the
                    # next handshake and rescheduled what was in flight on the old one. libzmq
                    # attaches the new pipe before that event reaches us; sending meanwhile would
                    # let new events overtake the ones lost in flight. The monitor wakes the poll.
                    blocked_until = max(blocked_until, time.monotonic() + _RETRY_WHEN_DISCONNECTED_S)
                elif time.monotonic() >= blocked_until:
                    if not self._send_due():
                        blocked_until = time.monotonic() + _RETRY_WHEN_DISCONNECTED_S
        except Exception:  # a bug: say so loudly rather than die silently
            log.exception("event publisher I/O thread failed; events will not be delivered")
            with self._lock:
                self._errors += 1
                self._stop = True
                self._changed.notify_all()
        finally:
            self._close_socket()

    def _poll_timeout(self, blocked_until: float) -> int:
        """Milliseconds until something is due (called with the lock held)."""
        now = time.monotonic()
        if blocked_until > now:
            return max(1, int((blocked_until - now) * 1000) + 1)
        if self._unsent and len(self._attempts) < self.max_in_flight:
            return 0
        if self._retry:
            return max(0, int((self._retry[0][0] - now) * 1000) + 1)
        return 1000

    def _connection_events(self) -> bool:
        """Handle monitor events; ``True`` if a connection to the aggregator completed."""
        connected = False
        while True:
            try:
                msg = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return connected
            except zmq.ZMQError as exc:
                self._log_zmq_error("monitor recv", exc)
                return connected
            if msg["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                connected = True
                n = 0
                if self._reconnecting:
                    self._reconnecting = False
                    with self._lock:
                        now = time.monotonic()
                        # Rebuilt, not pushed onto: no stale entry may fire a second resend.
                        self._retry = [(now, a, event_id) for event_id, a in self._attempts.items()]
                        heapq.heapify(self._retry)
                        n = len(self._retry)
                log.info(
                    "event publisher connected to %s%s",
                    self.endpoint,
                    f"; resending {n} unacknowledged event(s)" if n else "",
                )
            elif msg["event"] == zmq.EVENT_DISCONNECTED:
                # What was in flight on that connection is gone: resend it on the next one.
                self._reconnecting = True
                log.warning("event publisher lost its connection to %s; buffering", self.endpoint)

    def _receive_replies(self) -> None:
        acks: list[str] = []
        nacks: list[tuple[str, str]] = []
        for _ in range(4096):
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:
                self._log_zmq_error("recv", exc)
                break
            if len(frames) != 1:
                log.warning("ignoring a %d-frame reply from the aggregator", len(frames))
                continue
            try:
                reply = decode_reply(frames[0])
            except (ValueError, UnicodeDecodeError) as exc:
                log.warning("ignoring an unreadable reply from the aggregator: %s", exc)
                continue
            if "acks" in reply:
                acks.extend(reply["acks"])
            elif "ack" in reply:
                acks.append(reply["ack"])
            else:
                nacks.append((reply["nack"], str(reply.get("error", "?"))))
        if not acks and not nacks:
            return
        with self._lock:  # one outbox transaction for the whole lot
            flags = self._outbox.ack_many(acks + [i for i, _ in nacks])
            for event_id, gone in zip(acks, flags):
                if gone:
                    self._acked += 1
                    self._attempts.pop(event_id, None)
            for (event_id, error), gone in zip(nacks, flags[len(acks) :]):
                if gone:
                    self._rejected += 1
                    self._attempts.pop(event_id, None)
                    log.error("aggregator rejected event %s: %s", event_id, error)
            self._changed.notify_all()

    def _next_batch(self, now: float) -> list[tuple[str, bytes, int]]:
        """Take the events to send now, as ``(id, data, attempt)``: resends first (older),
        then new ones; at most ``batch_max`` events and ``MAX_BATCH_BYTES`` bytes."""
        batch: list[tuple[str, bytes, int]] = []
        size = 0
        with self._lock:
            while self._retry and self._retry[0][0] <= now and len(batch) < self.batch_max:
                _, attempt, event_id = self._retry[0]
                data = self._outbox.get(event_id)
                if data is None or self._attempts.get(event_id) != attempt:
                    heapq.heappop(self._retry)  # acked, dropped or superseded: stale
                    continue
                if batch and size + len(data) > MAX_BATCH_BYTES:
                    return batch
                heapq.heappop(self._retry)
                batch.append((event_id, data, attempt))
                size += len(data)
            in_flight = len(self._attempts)
            while self._unsent and in_flight < self.max_in_flight and len(batch) < self.batch_max:
                event_id = self._unsent[0]
                data = self._outbox.get(event_id)
                if data is None or event_id in self._attempts:
                    self._unsent.popleft()
                    continue
                if batch and size + len(data) > MAX_BATCH_BYTES:
                    return batch
                self._unsent.popleft()
                batch.append((event_id, data, 0))
                size += len(data)
                in_flight += 1
        return batch

    def _put_back(self, batch: list[tuple[str, bytes, int]], now: float) -> None:
        """A batch that could not be sent goes back where it came from (called unlocked)."""
        with self._lock:
            for event_id, _, attempt in reversed(batch):
                if attempt == 0:
                    self._unsent.appendleft(event_id)
                else:
                    heapq.heappush(self._retry, (now, attempt, event_id))

    def _send_due(self) -> bool:
        """Send everything due, up to ``batch_max`` events per message (one frame each);
        ``False`` if the aggregator is not connected (retry later)."""
        while True:
            now = time.monotonic()
            batch = self._next_batch(now)
            if not batch:
                return True
            try:
                self._sock.send_multipart([data for _, data, _ in batch], zmq.NOBLOCK, copy=False)
            except zmq.Again:
                # No connected aggregator (IMMEDIATE) or its pipe is full: put it back.
                self._put_back(batch, now)
                return False
            except zmq.ZMQError as exc:
                self._log_zmq_error("send", exc)
                self._put_back(batch, now)
                return False
            jitter = random.uniform(0.8, 1.2)
            with self._lock:
                for event_id, _, attempt in batch:
                    if event_id not in self._outbox:
                        continue  # acked or dropped meanwhile
                    if attempt == 0:
                        self._sent += 1
                    else:
                        self._resent += 1
                    attempt += 1
                    self._attempts[event_id] = attempt
                    wait = min(self.timeout_s * (2 ** (attempt - 1)), self.backoff_max_s) * jitter
                    heapq.heappush(self._retry, (now + wait, attempt, event_id))

    def _log_zmq_error(self, what: str, exc: zmq.ZMQError) -> None:
        with self._lock:
            self._errors += 1
        log.error("event publisher to %s: ZeroMQ %s failed: %s (errno %s)", self.endpoint, what, exc, exc.errno)

    def _close_socket(self) -> None:
        sock = getattr(self, "_sock", None)
        monitor = getattr(self, "_monitor", None)
        if sock is not None and not sock.closed:
            if monitor is not None:
                try:
                    sock.disable_monitor()
                except zmq.ZMQError as exc:
                    log.debug("disable_monitor: %s", exc)
            sock.close(linger=0)
        if monitor is not None and not monitor.closed:
            monitor.close(linger=0)
