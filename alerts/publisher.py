"""Edge side of the alarm path: send events to the aggregator until each is acknowledged.

:class:`EventPublisher` is called from the video loop. ``publish()`` only appends to a
buffer and wakes a background I/O thread, which alone owns the ZeroMQ DEALER socket (ZeroMQ
sockets are not thread-safe). That thread sends the events, waits for the aggregator's acks
carrying the event ids, and resends what is not acknowledged with exponential backoff. The
buffer is bounded: when it is full the *oldest* event is dropped and counted
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

Order: **the aggregator stores a publisher's events in outbox order** (per camera, ``seq``
order), whatever is lost, resent, reconnected or refused. By construction: *one window in
flight*. A window is the oldest events of the outbox, at most ``batch_max`` of them in one
ZeroMQ message; the next window is sent only once every event of this one is acknowledged
(or rejected, or dropped from the full buffer); until then the window alone is resent, whole
and in order, after its ack timeout or at once when a new connection completes. So no event
is sent before every earlier one is stored (those of its own window travel with it, in order,
in one message the aggregator commits in one transaction), and nothing depends on *which*
connection a message travelled on or on when our socket monitor reports a disconnection
(libzmq attaches a new connection before its monitor event reaches us), nor on the aggregator
committing every batch it reads (a failed commit is not acknowledged: the window is resent and
nothing behind it has been sent). The cost is one round trip per window; while it lasts, new
events gather into the next window (up to ``batch_max`` events and
:data:`~vigil.alerts.transport.MAX_BATCH_BYTES`), so a busy publisher sends big windows and an
idle one a single event at once.

Socket choices: ``IMMEDIATE=1`` so nothing is queued inside libzmq while no aggregator is
connected (a send then fails with ``zmq.Again`` and the event stays in *our* buffer, where it
is counted and bounded); ``LINGER=0`` so ``close()`` never hangs (undelivered events are
reported, not hidden in a libzmq queue); ZMTP heartbeats so a dead peer is noticed. A socket
monitor follows the link (``DeliveryReport.link``; connected, lost, or refused by the
aggregator, with the cause in ``DeliveryReport.refused``): see :mod:`vigil.alerts.link`, which
also reconnects after a refusal. A window lost with a connection is resent as soon as the
next connection completes.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import zmq

from .events import MAX_EVENT_BYTES, Event, EventError
from .link import MONITORED_EVENTS, AggregatorLink
from .outbox import MemoryOutbox, Outbox, SqliteOutbox
from .transport import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, Wakeup, decode_reply, is_local_endpoint

__all__ = ["EventPublisher", "DeliveryReport", "PublisherError"]

log = logging.getLogger(__name__)

_RETRY_WHEN_DISCONNECTED_S = 0.1


class PublisherError(RuntimeError):
    """The publisher cannot be created or is used after ``close()``."""


@dataclass(frozen=True)
class DeliveryReport:
    """Counts since the publisher started, and the state of the link to the aggregator.

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
    link: str = "connecting"  # one of vigil.alerts.link.LINK_STATES
    refused: str | None = None  # why the aggregator refused the last handshake (link == "refused")
    refusals: int = 0  # handshakes the aggregator refused

    @property
    def undelivered(self) -> int:
        return self.pending + self.dropped + self.rejected

    @property
    def complete(self) -> bool:
        """Every published event has been acknowledged."""
        return self.undelivered == 0


class EventPublisher:
    """Deliver events to the aggregator's ingest endpoint with acknowledgements, in order.

    One window in flight (see the module docstring): the oldest unacknowledged events, at most
    ``batch_max`` of them (and :data:`~vigil.alerts.transport.MAX_BATCH_BYTES`) in one ZeroMQ
    message of one frame per event; the next window goes out only when this one is
    acknowledged, so the aggregator stores the events in outbox order and a busy aggregator
    is not flooded into ack timeouts and needless resends. ``timeout_s``: how long to wait for
    the window's acks before the first resend; later resends back off exponentially (with
    jitter) up to ``backoff_max_s``; a new connection resends it at once. ``max_buffer``: most
    unacknowledged events kept; beyond it the oldest are dropped and counted.
    ``outbox``: ``None`` (in memory, lost on exit), a path (a durable
    :class:`~vigil.alerts.outbox.SqliteOutbox` opened there, closed by :meth:`close`) or an
    outbox object (left open). ``configure_socket``: called with the DEALER socket before it
    connects (security hook). ``endpoint``: the aggregator's ingest endpoint, or several
    (aggregators sharing one PostgreSQL database): the socket connects to all of them and each
    window goes to one that is connected (see :mod:`vigil.alerts.link`); the order guarantee
    holds across them, since the next window waits for this one's acknowledgement.

    Thread-safety: ``publish``, ``flush``, ``report`` and ``close`` may be called from any
    thread; only the internal I/O thread touches the socket.
    """

    def __init__(
        self,
        endpoint: str | Sequence[str],
        *,
        timeout_s: float = 2.0,
        max_buffer: int = 10_000,
        backoff_max_s: float = 15.0,
        context: zmq.Context | None = None,
        configure_socket: Callable[[zmq.Socket], None] | None = None,
        name: str = "vigil-publisher",
        outbox: str | Path | Outbox | None = None,
        batch_max: int = 256,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if backoff_max_s < timeout_s:
            raise ValueError(f"backoff_max_s ({backoff_max_s}) must be >= timeout_s ({timeout_s})")
        self.endpoints = [endpoint] if isinstance(endpoint, str) else list(dict.fromkeys(endpoint))
        if not self.endpoints:
            raise ValueError("an event publisher needs at least one aggregator endpoint")
        self.endpoint = ", ".join(self.endpoints)  # what messages show
        self.timeout_s = float(timeout_s)
        self.backoff_max_s = float(backoff_max_s)
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
        self._unsent: deque[str] = deque()  # ids never sent, in outbox order
        # The window in flight: ids in outbox order (pruned of acked/dropped ones lazily), how
        # often it was sent, when it is resent, and whether a connection was lost since it was.
        self._window: list[str] = []
        self._window_sends = 0
        self._window_due = 0.0
        self._window_lost = False
        self._published = self._sent = self._acked = self._dropped = 0
        self._rejected = self._resent = self._errors = 0
        self._link = AggregatorLink(
            self.endpoints,
            secure=configure_socket is not None,
            lock=self._lock,
            log=log,
            on_zmq_error=self._log_zmq_error,
        )
        self._closed = False
        self._stop = False
        self._idle = True  # the I/O thread is in (or about to enter) a poll that waits
        # what a previous run left in a durable outbox goes first, in the order it was put
        self._unsent.extend(self._outbox.ids())
        self._recovered = self._published = len(self._unsent)

        for ep in self.endpoints:
            if not is_local_endpoint(ep) and configure_socket is None:
                log.warning("publishing events to %s without transport security (no CURVE keys)", ep)

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
            self._monitor = self._sock.get_monitor_socket(MONITORED_EVENTS)
            for ep in self.endpoints:
                self._sock.connect(ep)
        except zmq.ZMQError as exc:
            self._close_socket()
            if self._own_context:
                self._ctx.term()
            if self._own_outbox:
                self._outbox.close()
            raise PublisherError(f"cannot connect event publisher to {self.endpoint}: {exc}") from exc

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
                if self._window:
                    self._window = [i for i in self._window if i not in dropped_set]
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
            link=self._link.state,
            refused=self._link.refused,
            refusals=self._link.refusals,
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
                    if self._link.handle_events(
                        self._monitor, resend_lost=self._resend_lost_window_locked, lost=self._window_lost_locked
                    ):
                        blocked_until = 0.0
                if self._sock in ready:
                    self._receive_replies()
                self._link.reconnect_if_due(self._sock)
                if time.monotonic() >= blocked_until and not self._send_due():
                    blocked_until = time.monotonic() + _RETRY_WHEN_DISCONNECTED_S
        except Exception:  # a bug: say so loudly rather than die silently
            log.exception("event publisher I/O thread failed; events will not be delivered")
            with self._lock:
                self._errors += 1
                self._stop = True
                self._changed.notify_all()
        finally:
            self._close_socket()

    def _prune_window_locked(self) -> None:
        """Forget the window's acknowledged, rejected and dropped events; all gone: none in flight."""
        if self._window:
            self._window = [i for i in self._window if i in self._outbox]
        if not self._window:
            self._window_sends = 0
            self._window_lost = False

    def _poll_timeout(self, blocked_until: float) -> int:
        """Milliseconds until something is due (called with the lock held)."""
        now = time.monotonic()
        due = now + 1.0
        if self._link.reconnect_at is not None:
            due = min(due, self._link.reconnect_at)
        self._prune_window_locked()
        if self._window:
            due = min(due, max(self._window_due, blocked_until))
        elif self._unsent:
            due = min(due, blocked_until)
        if due <= now:
            return 0
        return max(1, int((due - now) * 1000) + 1)

    def _resend_lost_window_locked(self) -> int:
        """A connection completed: resend the window lost with the old one now, not at its ack
        timeout; how many events that is."""
        self._prune_window_locked()
        n = len(self._window) if self._window_lost else 0
        if n:
            self._window_due, self._window_lost = time.monotonic(), False
        return n

    def _window_lost_locked(self) -> None:
        """The connection was lost: whatever was in flight on it is gone with it."""
        if self._window:
            self._window_lost = True

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
            self._acked += sum(flags[: len(acks)])
            for (event_id, error), gone in zip(nacks, flags[len(acks) :]):
                if gone:
                    self._rejected += 1
                    log.error("aggregator rejected event %s: %s", event_id, error)
            self._prune_window_locked()  # all of it acknowledged: the next window may go
            self._changed.notify_all()

    def _next_window(self, now: float) -> tuple[list[tuple[str, bytes]], bool]:
        """What to send now as ``([(id, data)], resend)``: the window in flight when its resend
        is due (nothing before), else a new window of the oldest unsent events, at most
        ``batch_max`` events and ``MAX_BATCH_BYTES`` bytes."""
        batch: list[tuple[str, bytes]] = []
        with self._lock:
            self._prune_window_locked()
            if self._window:
                if now < self._window_due:
                    return [], True
                for event_id in self._window:
                    data = self._outbox.get(event_id)
                    if data is not None:
                        batch.append((event_id, data))
                return batch, True
            size = 0
            while self._unsent and len(batch) < self.batch_max:
                event_id = self._unsent[0]
                data = self._outbox.get(event_id)
                if data is None:
                    self._unsent.popleft()  # dropped meanwhile
                    continue
                if batch and size + len(data) > MAX_BATCH_BYTES:
                    break
                self._unsent.popleft()
                batch.append((event_id, data))
                size += len(data)
        return batch, False

    def _send_due(self) -> bool:
        """Send the window if it is due (a new one when none is in flight); ``False`` if the
        aggregator is not connected (retry later)."""
        now = time.monotonic()
        batch, resend = self._next_window(now)
        if not batch:
            return True
        try:
            self._sock.send_multipart([data for _, data in batch], zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as exc:
            # Again: no connected aggregator (IMMEDIATE) or its pipe is full; the window (or the
            # events of a new one, back at the head of the queue) waits in our buffer
            if exc.errno != zmq.EAGAIN:
                self._log_zmq_error("send", exc)
            if not resend:
                with self._lock:
                    self._unsent.extendleft(event_id for event_id, _ in reversed(batch))
            return False
        jitter = random.uniform(0.8, 1.2)
        with self._lock:
            if resend:
                self._resent += len(batch)
            else:
                self._sent += len(batch)
                self._window = [event_id for event_id, _ in batch]
            self._window_sends += 1
            self._window_lost = False
            wait = min(self.timeout_s * (2 ** (self._window_sends - 1)), self.backoff_max_s) * jitter
            self._window_due = now + wait
            self._prune_window_locked()  # events dropped from a full buffer while we were sending
        return True

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
