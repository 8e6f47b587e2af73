"""The wire protocol between edge publishers, the aggregator and operator clients.

Ingest (edge → aggregator): a DEALER connects to the aggregator's ROUTER and sends one
frame per event, the event's JSON. The aggregator answers each event with one JSON frame:

* ``{"ack": "<event id>", "status": "stored" | "duplicate"}`` once the event is committed
  to the store (a duplicate is acknowledged too, so a resend after a lost ack completes);
* ``{"nack": "<event id>", "error": "..."}`` when the frame names an id but is not a valid
  event: resending would never succeed, so the publisher drops it and counts it as rejected.

Frames that carry no recognisable id get no answer (they are counted and logged).

Stream (aggregator → operators): PUB/SUB multipart ``[topic, event JSON]`` with topic
``camera/type/severity`` (each part percent-encoded, so a ``/`` in a camera name cannot shift
the fields). Subscribing to a prefix such as ``topic_prefix(camera="cam1")`` selects a camera.
PUB/SUB drops what a subscriber misses: the store, not the stream, is the record.

Security hook: every socket is created through one function here and handed to an optional
``configure_socket(socket)`` callable before ``bind``/``connect``; CURVE keys will be set
there. Until then, :func:`check_bind_endpoint` refuses to expose the aggregator beyond
loopback.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import quote, unquote

from .events import Event

__all__ = [
    "DEFAULT_INGEST_ENDPOINT",
    "DEFAULT_STREAM_ENDPOINT",
    "INSECURE_BIND_MESSAGE",
    "check_bind_endpoint",
    "is_local_endpoint",
    "topic_for",
    "topic_prefix",
    "split_topic",
    "encode_ack",
    "encode_nack",
    "decode_reply",
]

DEFAULT_INGEST_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_STREAM_ENDPOINT = "tcp://127.0.0.1:5556"

INSECURE_BIND_MESSAGE = (
    "refusing to bind {endpoint}: this build has no transport security (CURVE), so the "
    "aggregator only listens on loopback (tcp://127.0.0.1, tcp://[::1], tcp://localhost) "
    "or ipc:// endpoints; reach it from other hosts through an SSH tunnel or a VPN"
)


def _tcp_host(endpoint: str) -> str | None:
    """The host part of a ``tcp://host:port`` endpoint (brackets removed), else ``None``."""
    if not endpoint.startswith("tcp://"):
        return None
    rest = endpoint[len("tcp://"):]
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
            if any(v is not None for v in parts[i + 1:]):
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


def encode_nack(event_id: str, error: str) -> bytes:
    return json.dumps({"nack": event_id, "error": error[:500]}, separators=(",", ":")).encode("utf-8")


def decode_reply(frame: bytes) -> dict[str, Any]:
    """Parse an ack/nack frame; raises ``ValueError`` when it is neither."""
    obj = json.loads(frame.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError("reply is not a JSON object")
    if isinstance(obj.get("ack"), str) or isinstance(obj.get("nack"), str):
        return obj
    raise ValueError(f"reply has neither ack nor nack: {obj!r}")
