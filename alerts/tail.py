"""``vigil tail``: follow the aggregator's event stream (SUB), one line per event.

Readable lines for people by default::

    2024-05-01T10:00:00.123Z  cam1  distance_violation  start  warning   tracks=3,7 distance_m=1.2 threshold_m=2

or, with ``as_json``, each event's JSON on its own line (for ``jq`` and scripts).
PUB/SUB delivers only what arrives while subscribed; the store keeps the full record
(``vigil events export``).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from typing import IO, Any, Callable

import zmq

from .events import Event, EventError

__all__ = ["tail", "format_event", "summarize_payload"]

log = logging.getLogger(__name__)

_PRIORITY = ("track", "id", "distance", "dist", "threshold", "value", "plate", "zone", "count", "duration", "risk")
_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,3})?\d*(Z|[+-]\d\d:\d\d)$")


def _short_value(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) >= 1000 or (value and abs(value) < 0.01) else f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, str):
        return value if len(value) <= 24 else value[:23] + "…"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
        parts = [_short_value(v) or "" for v in value[:6]]
        return ",".join(parts) + (",…" if len(value) > 6 else "")
    return None  # nested structures (coordinates, dicts): left out of the one-line summary


def summarize_payload(payload: dict[str, Any], width: int = 100) -> str:
    """``key=value`` pairs of the payload's scalars and short lists, most telling keys first."""

    def rank(key: str) -> tuple[int, str]:
        low = key.lower()
        for i, word in enumerate(_PRIORITY):
            if word in low:
                return i, key
        return len(_PRIORITY), key

    out: list[str] = []
    length = 0
    for key in sorted(payload, key=rank):
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


def format_event(event: Event) -> str:
    """One readable line: time, camera, type, state, severity, payload summary."""
    line = f"{_short_time(event.time)}  {event.camera}  {event.type}  {event.state:<6} {event.severity:<8}"
    summary = summarize_payload(event.payload)
    return f"{line}  {summary}" if summary else line.rstrip()


def tail(
    connect_endpoint: str,
    *,
    topic_filter: str | bytes = "",
    as_json: bool = False,
    out: IO[str] = sys.stdout,
    max_events: int | None = None,
    timeout_s: float | None = None,
    stop: threading.Event | None = None,
    context: zmq.Context | None = None,
    configure_socket: Callable[[zmq.Socket], None] | None = None,
) -> int:
    """Print stream events until ``max_events`` were printed, ``timeout_s`` elapsed (overall),
    or ``stop`` is set. Returns how many events were printed.

    ``topic_filter`` is a SUB prefix on ``camera/type/severity`` (see
    :func:`~vigil.alerts.transport.topic_prefix`). Messages that are not valid events are
    skipped with a warning.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    own_context = context is None
    ctx = context if context is not None else zmq.Context()
    sock = ctx.socket(zmq.SUB)
    printed = 0
    try:
        sock.setsockopt(zmq.LINGER, 0)
        if configure_socket is not None:
            configure_socket(sock)
        sock.setsockopt(zmq.SUBSCRIBE, topic_filter.encode("utf-8") if isinstance(topic_filter, str) else topic_filter)
        sock.connect(connect_endpoint)
        while max_events is None or printed < max_events:
            if stop is not None and stop.is_set():
                break
            wait_ms = 200
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait_ms = max(1, min(wait_ms, int(left * 1000) + 1))
            if not sock.poll(wait_ms, zmq.POLLIN):
                continue
            frames = sock.recv_multipart()
            if len(frames) != 2:
                log.warning("tail: skipping a %d-frame stream message (expected [topic, event])", len(frames))
                continue
            try:
                event = Event.from_json(frames[1])
            except EventError as exc:
                log.warning("tail: skipping an invalid event on topic %r: %s", frames[0][:100], exc)
                continue
            out.write((event.to_json() if as_json else format_event(event)) + "\n")
            out.flush()
            printed += 1
    finally:
        sock.close(linger=0)
        if own_context:
            ctx.term()
    return printed
