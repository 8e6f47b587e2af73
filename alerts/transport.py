"""The wire protocol between edge publishers, the aggregator and operator clients.

Ingest (edge → aggregator): a DEALER connects to the aggregator's ROUTER and sends
messages of one or more frames, each frame one event's JSON (at most
:data:`MAX_BATCH_EVENTS` frames and :data:`MAX_BATCH_BYTES` bytes per message; each frame
is judged on its own, so one bad frame does not spoil the others). A REQ client sends one
event per request. The aggregator answers each event with one JSON frame:

* ``{"ack": "<event id>", "status": "stored" | "duplicate"}`` once the event is committed
  to the store (a duplicate is acknowledged too, so a resend after a lost ack completes),
  or ``{"acks": [ids]}`` for several events of one committed batch from the same peer;
* ``{"nack": "<event id>", "error": "..."}`` when the frame names an id but is not a valid
  event: resending would never succeed, so the publisher drops it and counts it as rejected.

Frames that carry no recognisable id get no answer (they are counted and logged).

Stream (aggregator → operators): a DEALER connects to the aggregator's stream ROUTER and
sends ``{"op": "subscribe", "filters": [{"camera": [...], "type": [...], "severity": [...]}],
"since": N | null}`` (each filter field optional; filters are ORed, fields within one ANDed;
no filter = everything). The aggregator answers ``{"subscribed": cursor, "last": N}`` and
then sends two-frame messages ``[stream_seq (decimal ASCII), event JSON]``: with ``since``,
every stored event with ``stream_seq > since`` (replay from the store), then live; with
``null``, live from now. The client repeats its subscribe every second as a keep-alive,
with ``since`` = the last ``stream_seq`` it received: after a reconnection (new connection,
new identity at the ROUTER) it resumes exactly there; duplicates are recognised by
``stream_seq`` and skipped. ``{"op": "bye"}`` unsubscribes. ``stream_seq`` is the store's
order, so it may have gaps (PostgreSQL) but never goes back.

The ``camera/type/severity`` topic helpers below (percent-encoded fields) remain for
clients that want one string per event.

Security: sockets are handed to a ``configure_socket(socket)`` callable before
``bind``/``connect`` (CURVE, see :mod:`vigil.alerts.keys`). Without keys,
:func:`check_bind_endpoint` refuses to expose the aggregator beyond loopback.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from .events import MAX_EVENT_BYTES, Event

__all__ = [
    "DEFAULT_INGEST_ENDPOINT",
    "DEFAULT_STREAM_ENDPOINT",
    "MAX_BATCH_EVENTS",
    "MAX_BATCH_BYTES",
    "INSECURE_BIND_MESSAGE",
    "check_bind_endpoint",
    "is_local_endpoint",
    "topic_for",
    "topic_prefix",
    "split_topic",
    "encode_ack",
    "encode_nack",
    "decode_reply",
    "StreamFilter",
    "Wakeup",
    "SubscribeRequest",
    "encode_subscribe",
    "parse_subscribe",
    "encode_subscribed",
]

DEFAULT_INGEST_ENDPOINT = "tcp://127.0.0.1:5555"
MAX_BATCH_EVENTS = 1024  # event frames in one ingest message
MAX_BATCH_BYTES = 4 * MAX_EVENT_BYTES  # bytes of event frames in one ingest message (256 KiB)
DEFAULT_STREAM_ENDPOINT = "tcp://127.0.0.1:5556"

INSECURE_BIND_MESSAGE = (
    "refusing to bind {endpoint}: without CURVE keys (--keys DIR) there is no transport "
    "security, so the aggregator only listens on loopback (tcp://127.0.0.1, tcp://[::1], "
    "tcp://localhost) or ipc:// endpoints"
)


def _tcp_host(endpoint: str) -> str | None:
    """The host part of a ``tcp://host:port`` endpoint (brackets removed), else ``None``."""
    if not endpoint.startswith("tcp://"):
        return None
    rest = endpoint[len("tcp://") :]
    if ";" in rest:  # "source;destination" form: the bind side is the last part
        rest = rest.rsplit(";", 1)[1]
    if rest.startswith("["):
        end = rest.find("]")
        return rest[1:end] if end > 0 else rest
    host, _, _port = rest.rpartition(":")
    return host


def is_local_endpoint(endpoint: str) -> bool:
    """True for ``ipc://``, ``inproc://`` and tcp on a loopback address or ``localhost``."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = _tcp_host(endpoint)
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name, a host name: not provably local
        return False


def check_bind_endpoint(endpoint: str) -> None:
    """Raise ``ValueError`` unless ``endpoint`` is safe to bind without transport security."""
    if not is_local_endpoint(endpoint):
        raise ValueError(INSECURE_BIND_MESSAGE.format(endpoint=endpoint))


# ---------------------------------------------------------------------- topics
def _part(value: str) -> str:
    return quote(value, safe="")


def topic_for(event: Event) -> bytes:
    """``camera/type/severity`` as UTF-8 bytes, parts percent-encoded."""
    return f"{_part(event.camera)}/{_part(event.type)}/{_part(event.severity)}".encode("utf-8")


def topic_prefix(camera: str | None = None, type: str | None = None, severity: str | None = None) -> str:
    """A SUB filter selecting a camera, then optionally a type and a severity.

    Parts must be given left to right (``type`` needs ``camera``; a filter is a prefix).
    """
    parts = [camera, type, severity]
    out = ""
    for i, value in enumerate(parts):
        if value is None:
            if any(v is not None for v in parts[i + 1 :]):
                raise ValueError("topic_prefix: give camera before type, and type before severity")
            break
        out += _part(value) + ("/" if i < 2 else "")
    return out


def split_topic(topic: bytes) -> tuple[str, str, str]:
    parts = topic.decode("utf-8").split("/")
    if len(parts) != 3:
        raise ValueError(f"not a camera/type/severity topic: {topic!r}")
    return unquote(parts[0]), unquote(parts[1]), unquote(parts[2])


# ---------------------------------------------------------------------- acknowledgements
def encode_ack(event_id: str, status: str) -> bytes:
    return json.dumps({"ack": event_id, "status": status}, separators=(",", ":")).encode("utf-8")


def encode_acks(event_ids: list[str]) -> bytes:
    """Several events of one batch from one peer, all committed (stored or duplicate)."""
    return json.dumps({"acks": event_ids}, separators=(",", ":")).encode("utf-8")


def encode_nack(event_id: str, error: str) -> bytes:
    return json.dumps({"nack": event_id, "error": error[:500]}, separators=(",", ":")).encode("utf-8")


def decode_reply(frame: bytes) -> dict[str, Any]:
    """Parse an ack/nack frame; raises ``ValueError`` when it is neither."""
    obj = json.loads(frame.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError("reply is not a JSON object")
    if isinstance(obj.get("ack"), str) or isinstance(obj.get("nack"), str):
        return obj
    acks = obj.get("acks")
    if isinstance(acks, list) and all(isinstance(a, str) for a in acks):
        return obj
    raise ValueError(f"reply has neither ack nor nack: {obj!r}")


# ---------------------------------------------------------------------- operator stream
_FILTER_FIELDS = ("camera", "type", "severity")
MAX_FILTERS = 64


@dataclass(frozen=True)
class StreamFilter:
    """Match events by camera, type and severity; ``None`` (or empty) means any."""

    camera: frozenset[str] | None = None
    type: frozenset[str] | None = None
    severity: frozenset[str] | None = None

    @classmethod
    def of(cls, camera=None, type=None, severity=None) -> "StreamFilter":
        def norm(v):
            if v is None or v == [] or v == ():
                return None
            return frozenset([v] if isinstance(v, str) else v)

        return cls(norm(camera), norm(type), norm(severity))

    def matches(self, camera: str, type_: str, severity: str) -> bool:
        return (
            (self.camera is None or camera in self.camera)
            and (self.type is None or type_ in self.type)
            and (self.severity is None or severity in self.severity)
        )

    def to_obj(self) -> dict[str, list[str]]:
        return {k: sorted(getattr(self, k)) for k in _FILTER_FIELDS if getattr(self, k) is not None}


@dataclass(frozen=True)
class SubscribeRequest:
    op: str  # "subscribe" | "bye"
    filters: list[StreamFilter] = field(default_factory=list)
    since: int | None = None


def encode_subscribe(filters: list[StreamFilter], since: int | None) -> bytes:
    return json.dumps(
        {"op": "subscribe", "filters": [f.to_obj() for f in filters], "since": since}, separators=(",", ":")
    ).encode("utf-8")


def parse_subscribe(frame: bytes) -> SubscribeRequest:
    """Parse a stream client's request; raises ``ValueError`` saying what is wrong."""
    if len(frame) > 16 * 1024:
        raise ValueError(f"request of {len(frame)} bytes")
    try:
        obj = json.loads(frame.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    op = obj.get("op")
    if op == "bye":
        return SubscribeRequest("bye")
    if op != "subscribe":
        raise ValueError(f"unknown op {op!r}")
    since = obj.get("since")
    if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
        raise ValueError(f"since must be a non-negative integer or null, got {since!r}")
    raw = obj.get("filters", [])
    if not isinstance(raw, list) or len(raw) > MAX_FILTERS:
        raise ValueError(f"filters must be a list of at most {MAX_FILTERS} objects")
    filters = []
    for f in raw:
        if not isinstance(f, dict) or set(f) - set(_FILTER_FIELDS):
            raise ValueError(f"a filter is an object with camera, type, severity: {f!r}"[:200])
        values = {}
        for k, v in f.items():
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v) or len(v) > 256:
                raise ValueError(f"filter field {k} must be a string or a list of strings")
            values[k] = v
        filters.append(StreamFilter.of(**values))
    return SubscribeRequest("subscribe", filters, since)


def encode_subscribed(cursor: int, last: int) -> bytes:
    return json.dumps({"subscribed": cursor, "last": last}, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------------- threads
class Wakeup:
    """Wakes a thread that waits in a ZeroMQ poll, from another thread.

    A non-blocking socket pair: :meth:`set` writes a byte (a full pipe means a wake-up is
    already pending; a closed one means shutdown: both are ignored), register :attr:`reader`
    in the ``zmq.Poller`` and call :meth:`clear` when it is readable.
    """

    def __init__(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)

    def set(self) -> None:
        try:
            self._writer.send(b"\0")
        except OSError:  # BlockingIOError (already pending), or closed during shutdown
            pass

    def clear(self) -> None:
        try:
            while self.reader.recv(4096):
                pass
        except OSError:  # BlockingIOError: drained
            pass

    def is_set_in(self, ready: dict) -> bool:
        """Whether a ``dict(poller.poll())`` result says the reader is readable."""
        return self.reader in ready or self.reader.fileno() in ready

    def close(self) -> None:
        self.reader.close()
        self._writer.close()
