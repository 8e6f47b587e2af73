"""The versioned alarm event schema (``schema: 1``).

An :class:`Event` is JSON on the wire and one JSON object per line in files. It never
carries images: evidence is a separate object referenced by id in the payload.

Fields: ``schema`` (int, 1), ``id`` (a UUID string; Vigil makes time-ordered version-7
ids, see :func:`new_event_id`, and accepts any version), ``type`` (e.g. ``distance_violation``),
``camera`` (camera name), ``seq`` (per camera, strictly increasing from 1), ``time``
(UTC ISO 8601 with ``Z``), ``severity`` (``info`` | ``warning`` | ``critical``),
``state`` (``start`` | ``update`` | ``end``), ``payload`` (JSON object: track ids, world
coordinates in metres, metric value and threshold, ...).
"""

from __future__ import annotations

import math
import os
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 64 * 1024

Severity = Literal["info", "warning", "critical"]
State = Literal["start", "update", "end"]

__all__ = ["Event", "EventError", "SCHEMA_VERSION", "MAX_EVENT_BYTES", "new_event_id", "utc_iso"]

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Random bytes for event ids, read from the OS in blocks (one system call per 400 ids instead
# of one per id). Tagged with the process id: a forked child never reuses its parent's bytes.
_id_pool: list = [b"", 0, -1]  # bytes, offset, pid


def new_event_id() -> str:
    """A new event id: a time-ordered UUID, version 7 (RFC 9562): 48 bits of Unix time in
    milliseconds, then 74 random bits.

    Time order matters to the stores: ids of new events land at the end of the unique id
    index instead of all over it, so inserts touch a few hot pages (a random UUID4 index
    slows down as the table outgrows the page cache). Uniqueness rests on the 74 random bits.
    """
    pool, offset, pid = _id_pool
    if offset + 10 > len(pool) or pid != os.getpid():
        pool, offset = os.urandom(10 * 400), 0
        _id_pool[0], _id_pool[2] = pool, os.getpid()
    _id_pool[1] = offset + 10
    rand = int.from_bytes(pool[offset : offset + 10], "big")  # 80 bits, 74 used
    ms = time.time_ns() // 1_000_000
    value = (
        ((ms & 0xFFFF_FFFF_FFFF) << 80)
        | (0x7 << 76)
        | (((rand >> 62) & 0xFFF) << 64)
        | (0b10 << 62)
        | (rand & 0x3FFF_FFFF_FFFF_FFFF)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class EventError(ValueError):
    """A message that is not a valid schema-1 event."""


def utc_iso(ts: float) -> str:
    """POSIX seconds → ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite number at {where}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")


class Event(BaseModel):
    """One alarm event (see module docstring). Immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: int = Field(SCHEMA_VERSION, alias="schema", description="Event schema version")
    id: str = Field(default_factory=new_event_id, description="UUID of this event")
    type: str = Field(min_length=1, max_length=64, description="Event type, e.g. distance_violation")
    camera: str = Field(min_length=1, max_length=128, description="Camera name from the node config")
    seq: int = Field(ge=1, description="Per-camera sequence number, strictly increasing")
    time: str = Field(description="UTC time of the observation, ISO 8601 with Z")
    severity: Severity = "warning"
    state: State = "start"
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(f"unsupported event schema {v} (this build reads {SCHEMA_VERSION})")
        return v

    @field_validator("id")
    @classmethod
    def _uuid(cls, v: str) -> str:
        if isinstance(v, str) and _CANONICAL_UUID.fullmatch(v):
            return v  # already what str(uuid.UUID(v)) gives
        try:
            return str(uuid.UUID(v))
        except (ValueError, AttributeError, TypeError):
            raise ValueError(f"id is not a UUID: {v!r}") from None

    @field_validator("time")
    @classmethod
    def _time(cls, v: str) -> str:
        try:
            parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"time is not ISO 8601: {v!r}") from None
        if parsed.tzinfo is None:
            raise ValueError(f"time has no time zone: {v!r}")
        return v

    @field_validator("payload")
    @classmethod
    def _payload(cls, v: dict[str, Any]) -> dict[str, Any]:
        _check_finite(v, "payload")
        return v

    # ------------------------------------------------------------------ wire format
    def to_json(self) -> str:
        """Compact JSON, one line, keys in schema order (UTF-8 text, not ``\\u`` escapes)."""
        return self.model_dump_json(by_alias=True)

    def to_bytes(self) -> bytes:
        """:meth:`to_json` encoded as UTF-8 (what goes on the wire)."""
        return self.__pydantic_serializer__.to_json(self, by_alias=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Event":
        """Parse and validate; raises :class:`EventError` with the reason."""
        if isinstance(raw, (bytearray, memoryview)):
            raw = bytes(raw)
        if isinstance(raw, bytes):
            if len(raw) > MAX_EVENT_BYTES:
                raise EventError(f"event of {len(raw)} bytes exceeds {MAX_EVENT_BYTES}")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise EventError(f"event is not UTF-8: {exc}") from None
        elif len(raw) > MAX_EVENT_BYTES:
            raise EventError(f"event of {len(raw)} characters exceeds {MAX_EVENT_BYTES}")
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0] if exc.error_count() else {}
            if first.get("type") == "json_invalid":
                raise EventError(f"event is not JSON: {first.get('msg')}") from None
            if first.get("type") == "model_type" and not first.get("loc"):
                raise EventError("event is not a JSON object") from None
            raise EventError(f"invalid event: {exc}") from None
        except (ValueError, RecursionError) as exc:
            raise EventError(f"event is not JSON: {exc}") from None
