"""``vigil tail``: follow the aggregator's event stream, one line per event.

Readable lines for people by default (the payload fields its type's model lists in
``summary_fields``, see :mod:`vigil.alerts.payloads`)::

    2024-05-01T10:00:00.123Z  cam1  distance_violation  start  warning   tracks=3,7 distance_m=1.2 threshold_m=2

or, with ``as_json``, each event's JSON on its own line (for ``jq`` and scripts).
With ``since`` it first replays the stored events after that stream sequence number, then
follows live; a reconnection resumes where it stopped (see :class:`StreamClient`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import IO, Any, Callable, Sequence

import zmq

from .events import Event, EventError
from .payloads import PAYLOADS
from .transport import StreamFilter, encode_subscribe

__all__ = ["tail", "StreamClient", "format_event", "summarize_payload"]

log = logging.getLogger(__name__)

_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,3})?\d*(Z|[+-]\d\d:\d\d)$")


def _short_value(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            f"{value:.3g}"
            if abs(value) >= 1000 or (value and abs(value) < 0.01)
            else f"{value:.2f}".rstrip("0").rstrip(".")
        )
    if isinstance(value, str):
        return value if len(value) <= 24 else value[:23] + "…"
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value)
    ):
        parts = [_short_value(v) or "" for v in value[:6]]
        return ",".join(parts) + (",…" if len(value) > 6 else "")
    return None  # nested structures (coordinates, dicts): left out of the one-line summary


def summarize_payload(payload: dict[str, Any], width: int = 100, event_type: str | None = None) -> str:
    """``key=value`` pairs of the payload's scalars and short lists, cut at ``width`` characters.

    With ``event_type``, the fields its payload model lists in ``summary_fields``
    (:mod:`vigil.alerts.payloads`), in that order; without, every field in the payload's own
    order except ``alarm_id``. Null values are left out.
    """
    model = PAYLOADS.get(event_type) if event_type else None
    keys = [k for k in model.summary_fields if k in payload] if model else [k for k in payload if k != "alarm_id"]
    out: list[str] = []
    length = 0
    for key in keys:
        if payload[key] is None:
            continue
        text = _short_value(payload[key])
        if text is None:
            continue
        item = f"{key}={text}"
        if length + len(item) > width:
            out.append("…")
            break
        out.append(item)
        length += len(item) + 1
    return " ".join(out)


def _short_time(iso: str) -> str:
    m = _TIME_RE.match(iso)
    if not m:
        return iso
    return f"{m.group(1)}{m.group(2) or ''}{m.group(3)}"


#: characters a terminal may act on rather than show: C0 and C1 controls, DEL, and the
#: bidirectional overrides and isolates (which reorder what follows them on the line)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on written as an escape
    (``\x1b``, ``\u202e``): a camera name or payload field with escape codes cannot clear the
    operator's terminal, move its cursor or forge lines."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def json_line(event: Event) -> str:
    """The event's JSON on one line, with the characters :func:`printable` escapes written as
    JSON ``\\u`` escapes (still the same JSON value)."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", event.to_json())


def format_event(event: Event) -> str:
    """One readable line: time, camera, type, state, severity, payload summary (terminal-safe:
    see :func:`printable`)."""
    line = f"{_short_time(event.time)}  {event.camera}  {event.type}  {event.state:<6} {event.severity:<8}"
    summary = summarize_payload(event.payload, event_type=event.type)
    return printable(f"{line}  {summary}" if summary else line.rstrip())


class StreamClient:
    """An operator's connection to the aggregator's stream (see :mod:`vigil.alerts.transport`).

    ``endpoints``: one stream endpoint, or several (aggregators sharing one PostgreSQL
    database): the client follows one at a time and moves to the next when the one it follows
    has said nothing for ``failover_s`` (an aggregator answers every renewal, so silence means
    it is gone), resubscribing there from the last ``stream_seq`` it saw: ``stream_seq`` is the
    shared database's, so nothing is missed or repeated. With one endpoint ZeroMQ reconnects to
    it by itself and the client never gives up on it.

    ``since``: replay every stored event with ``stream_seq > since`` first (``None``: live
    only). Renews its subscription every ``keepalive_s`` with the last ``stream_seq`` it saw,
    so a reconnection resumes where it stopped; duplicates are skipped by ``stream_seq``.
    Not thread-safe: use from one thread.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        filters: list[StreamFilter] | None = None,
        since: int | None = None,
        context: zmq.Context | None = None,
        configure_socket: Callable[[zmq.Socket], None] | None = None,
        keepalive_s: float = 1.0,
        rcvhwm: int | None = None,
        failover_s: float = 3.0,
    ) -> None:
        self.endpoints = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        if not self.endpoints:
            raise ValueError("StreamClient needs at least one endpoint")
        self.endpoint = self.endpoints[0]  # the one followed now
        self.filters = list(filters or [])
        self.last_seq = since
        self.subscribed = False
        self.keepalive_s = keepalive_s
        self.failover_s = float(failover_s)
        self.failovers = 0
        self._rcvhwm, self._configure = rcvhwm, configure_socket
        self._own_context = context is None
        self._ctx = context if context is not None else zmq.Context()
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._connect(self.endpoint)
        self._next_keepalive = 0.0

    def _connect(self, endpoint: str) -> None:
        self._sock = self._ctx.socket(zmq.DEALER)
        try:
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.IMMEDIATE, 1)  # no stale keep-alives queued while disconnected
            self._sock.setsockopt(zmq.RECONNECT_IVL, 100)
            self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
            self._sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
            self._sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
            self._sock.setsockopt(zmq.MAXMSGSIZE, 1024 * 1024)
            if self._rcvhwm is not None:
                self._sock.setsockopt(zmq.RCVHWM, self._rcvhwm)
            if self._configure is not None:
                self._configure(self._sock)
            # several aggregators: a lost connection (the aggregator died) fails over at once
            self._monitor = self._sock.get_monitor_socket(zmq.EVENT_DISCONNECTED) if len(self.endpoints) > 1 else None
            self._sock.connect(endpoint)
        except BaseException:
            self.close()
            raise
        self._last_heard = time.monotonic()

    def _lost(self) -> bool:
        """The connection to the followed aggregator was lost (its socket monitor says so)."""
        if self._monitor is None or not self._monitor.poll(0):
            return False
        while self._monitor.poll(0):
            self._monitor.recv_multipart()
        return True

    def _fail_over(self) -> None:
        """Follow the next endpoint: the one followed now has been silent for ``failover_s``."""
        old = self.endpoint
        self.endpoint = self.endpoints[(self.endpoints.index(old) + 1) % len(self.endpoints)]
        self._close_socket()
        self.subscribed = False
        self.failovers += 1
        self._next_keepalive = 0.0
        log.warning(
            "tail: %s silent for %.0f s; following %s from stream_seq %s",
            old,
            self.failover_s,
            self.endpoint,
            self.last_seq,
        )
        self._connect(self.endpoint)

    def _keepalive(self) -> None:
        now = time.monotonic()
        if now < self._next_keepalive:
            return
        # until the first answer, re-send more often: the connection may just have come up
        self._next_keepalive = now + (self.keepalive_s if self.subscribed else min(self.keepalive_s, 0.1))
        try:
            self._sock.send(encode_subscribe(self.filters, self.last_seq), zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected (yet): try again later

    def recv(self, timeout_s: float) -> tuple[int, bytes] | None:
        """The next new event as ``(stream_seq, event JSON)``, or ``None`` after ``timeout_s``."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            if len(self.endpoints) > 1 and (time.monotonic() - self._last_heard > self.failover_s or self._lost()):
                self._fail_over()
            self._keepalive()
            left = deadline - time.monotonic()
            wait_ms = max(0, min(int(left * 1000) + 1, int(self.keepalive_s * 1000)))
            if not self._sock.poll(wait_ms if left > 0 else 0, zmq.POLLIN):
                if time.monotonic() >= deadline:
                    return None
                continue
            frames = self._sock.recv_multipart()
            self._last_heard = time.monotonic()
            if len(frames) == 1:
                try:
                    obj = json.loads(frames[0])
                    cursor = int(obj["subscribed"])
                except (ValueError, KeyError, TypeError):
                    log.warning("tail: skipping an unreadable control message from the aggregator")
                    continue
                self.subscribed = True
                if self.last_seq is None:
                    self.last_seq = cursor
                self._next_keepalive = time.monotonic() + self.keepalive_s
                continue
            if len(frames) != 2:
                log.warning("tail: skipping a %d-frame stream message (expected [stream_seq, event])", len(frames))
                continue
            try:
                stream_seq = int(frames[0])
            except ValueError:
                log.warning("tail: skipping a stream message without a sequence number")
                continue
            self.subscribed = True
            if self.last_seq is not None and stream_seq <= self.last_seq:
                continue  # already seen (a replay overlapping a reconnection)
            self.last_seq = stream_seq
            return stream_seq, frames[1]

    def _close_socket(self) -> None:
        monitor, self._monitor = getattr(self, "_monitor", None), None
        if monitor is not None:
            self._sock.disable_monitor()
            monitor.close(linger=0)
        sock = getattr(self, "_sock", None)
        if sock is not None and not sock.closed:
            try:
                sock.send(json.dumps({"op": "bye"}).encode(), zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
            sock.close(linger=0)

    def close(self) -> None:
        self._close_socket()
        if self._own_context and not self._ctx.closed:
            self._ctx.term()

    def __enter__(self) -> "StreamClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tail(
    connect_endpoint: str | Sequence[str],
    *,
    filters: list[StreamFilter] | None = None,
    since: int | None = None,
    as_json: bool = False,
    out: IO[str] = sys.stdout,
    max_events: int | None = None,
    timeout_s: float | None = None,
    stop: threading.Event | None = None,
    context: zmq.Context | None = None,
    configure_socket: Callable[[zmq.Socket], None] | None = None,
    state: dict | None = None,
) -> int:
    """Print stream events until ``max_events`` were printed, ``timeout_s`` elapsed (overall),
    or ``stop`` is set. Returns how many events were printed.

    ``filters``: see :class:`~vigil.alerts.transport.StreamFilter` (none: every event).
    ``since``: first replay stored events with ``stream_seq > since``. ``state``, if given,
    receives ``last_stream_seq`` (where to resume with ``since``). Messages that are not
    valid events are skipped with a warning.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    printed = 0
    client = StreamClient(
        connect_endpoint, filters=filters, since=since, context=context, configure_socket=configure_socket
    )
    try:
        while max_events is None or printed < max_events:
            if stop is not None and stop.is_set():
                break
            wait = 0.2
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait = min(wait, left)
            item = client.recv(wait)
            if state is not None:
                state["last_stream_seq"] = client.last_seq
            if item is None:
                continue
            try:
                event = Event.from_json(item[1])
            except EventError as exc:
                log.warning("tail: skipping an invalid event at stream_seq %d: %s", item[0], exc)
                continue
            out.write((json_line(event) if as_json else format_event(event)) + "\n")
            out.flush()
            printed += 1
    finally:
        client.close()
    return printed
