"""The versioned alarm event schema (``schema: 1``).

An :class:`Event` is JSON on the wire and one JSON object per line in files. It never
carries images: evidence is a separate object referenced by id in the payload.

Fields: ``schema`` (int, 1), ``id`` (UUID4 string), ``type`` (e.g. ``distance_violation``),
``camera`` (camera name), ``seq`` (per camera, strictly increasing from 1), ``time``
(UTC ISO 8601 with ``Z``), ``severity`` (``info`` | ``warning`` | ``critical``),
``state`` (``start`` | ``update`` | ``end``), ``payload`` (JSON object: track ids, world
coordinates in metres, metric value and threshold, ...).
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 64 * 1024

Severity = Literal["info", "warning", "critical"]
State = Literal["start", "update", "end"]

__all__ = ["Event", "EventError", "SCHEMA_VERSION", "MAX_EVENT_BYTES", "utc_iso"]


class EventError(ValueError):
    """A message that is not a valid schema-1 event."""


def utc_iso(ts: float) -> str:
    """POSIX seconds → ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), description="UUID of this event")
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
        """Compact JSON, one line, keys in schema order."""
        return json.dumps(self.model_dump(by_alias=True), separators=(",", ":"), allow_nan=False)

    def to_bytes(self) -> bytes:
        return self.to_json().encode("utf-8")

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Event":
        """Parse and validate; raises :class:`EventError` with the reason."""
        if isinstance(raw, (bytes, bytearray, memoryview)):
            if len(raw) > MAX_EVENT_BYTES:
                raise EventError(f"event of {len(raw)} bytes exceeds {MAX_EVENT_BYTES}")
            try:
                raw = bytes(raw).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise EventError(f"event is not UTF-8: {exc}") from None
        if len(raw) > MAX_EVENT_BYTES:
            raise EventError(f"event of {len(raw)} characters exceeds {MAX_EVENT_BYTES}")
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise EventError(f"event is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise EventError("event is not a JSON object")
        try:
            return cls.model_validate(obj)
        except Exception as exc:  # pydantic.ValidationError
            raise EventError(f"invalid event: {exc}") from None
