"""The versioned alarm event schema (``schema: 2``).

An :class:`Event` is JSON on the wire and one JSON object per line in files. It never
carries images: evidence is a separate object referenced by id in the payload.

Fields: ``schema`` (int, 2), ``id`` (a UUID string; Vigil makes time-ordered version-7
ids, see :func:`new_event_id`, and accepts any version), ``type`` (e.g. ``distance_violation``),
``camera`` (camera name), ``seq`` (per camera, strictly increasing from 1), ``time``
(UTC ISO 8601 with ``Z``), ``severity`` (``info`` | ``warning`` | ``critical``),
``state`` (``start`` | ``update`` | ``end``), ``payload`` (JSON object checked against the
typed model of ``type``, see :mod:`vigil.alerts.payloads`: track ids, world coordinates in
metres, metric value and threshold, ...; every alarm's payload carries its ``alarm_id``).

Schema 1 (before alarm ids) is still read: :meth:`Event.from_json` upgrades it to schema 2 by
adding the ``alarm_id`` (see :func:`schema1_alarm_id`); everything else is kept as it was.

:func:`event_from_change` turns any :class:`~vigil.alarm.AlarmChange` (geometry rules, plate
passes) into an event and :func:`event_from_heatmap` a heat-map snapshot, both generically:
what is specific to an event type lives in its payload model.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from vigil.alarm import AlarmChange

from .payloads import ALARM_TYPES, PAYLOADS, HeatmapPayload

SCHEMA_VERSION = 2
#: schema versions :meth:`Event.from_json` reads (older ones are upgraded on parse)
READABLE_SCHEMAS = (1, 2)
MAX_EVENT_BYTES = 64 * 1024

Severity = Literal["info", "warning", "critical"]
State = Literal["start", "update", "end"]

__all__ = [
    "Event",
    "EventError",
    "SCHEMA_VERSION",
    "MAX_EVENT_BYTES",
    "MAX_SAFE_INT",
    "MAX_ABS_REAL",
    "new_event_id",
    "utc_iso",
    "event_from_change",
    "event_from_heatmap",
    "alarm_id_of",
    "schema1_alarm_id",
]

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
    """A message that is not a valid event (schema 2, or schema 1 upgraded)."""


def utc_iso(ts: float) -> str:
    """POSIX seconds → ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"


def _payload_reason(exc: ValidationError) -> str:
    """``payload.<field>: <what is wrong>`` for the first error of a payload model (and how many more)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(x) for x in ("payload", *first.get("loc", ())))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg')}{more}"


#: the largest integer an event may carry anywhere (``seq``, track ids, frames): 2**53 - 1, exact
#: in every JSON reader (JavaScript's ``Number.MAX_SAFE_INTEGER``) and well inside the 64-bit
#: columns of SQLite and PostgreSQL
MAX_SAFE_INT = 2**53 - 1
#: the largest magnitude of a real number in a payload (metres, seconds, square metres, scores):
#: a trillion is far above anything a camera measures and keeps arithmetic on it finite
MAX_ABS_REAL = 1e12
#: nesting of objects and lists in a payload, at most
MAX_PAYLOAD_DEPTH = 8

_WIRE = {"wire": True}
_STORED = {"wire": True, "stored": True}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UTC_FORM = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def _out_of_bounds(value: Any, where: str, depth: int) -> str | None:
    """The first value of a (validated) payload outside the schema's bounds, as a reason
    (``payload.tracks.0: integer 9223372036854775808 outside +-2**53-1``), or ``None``.

    The typed models check shapes and types; this checks what every field shares: integers
    within :data:`MAX_SAFE_INT`, reals within :data:`MAX_ABS_REAL`, nesting within
    :data:`MAX_PAYLOAD_DEPTH`. Sizes are bounded by :data:`MAX_EVENT_BYTES` already.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, int):
        return None if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else f"{where}: integer {value} outside +-2**53-1"
    if isinstance(value, float):
        return None if -MAX_ABS_REAL <= value <= MAX_ABS_REAL else f"{where}: number {value!r} outside +-1e12"
    if depth >= MAX_PAYLOAD_DEPTH:
        return f"{where}: nested deeper than {MAX_PAYLOAD_DEPTH}"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return f"{where}: unexpected {type(value).__name__}"
    for key, item in items:
        problem = _out_of_bounds(item, f"{where}.{key}", depth + 1)
        if problem:
            return problem
    return None


def _event_reason(exc: ValidationError) -> str:
    """``<field>: <what is wrong>`` for the first error of an event (and how many more), without
    echoing the input (a hostile value would land in logs and nacks)."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = ".".join(str(x) for x in first.get("loc", ()))
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {msg}{more}" if where else f"{msg}{more}"


#: namespace of the alarm ids derived for schema-1 events (uuid5; never change it)
SCHEMA1_ALARM_NAMESPACE = uuid.UUID("5f0c8e2a-3b1d-4c6e-9a7f-2d4b6c8e0a13")
_PAIR_TYPES = frozenset({"distance_violation", "contact_time"})


def schema1_alarm_id(camera: str, type: str, payload: dict[str, Any]) -> str | None:
    """The ``alarm_id`` given to a schema-1 event on upgrade (``None`` for non-alarm types).

    Schema 1 had no alarm ids; what identified an alarm was its subject. Deterministic, so the
    start, updates and end of one schema-1 alarm get the same id wherever they are parsed:

    - ``plate_hit`` / ``plate_transit``: the pass's ``transit_id`` (already a UUID per pass);
    - pair rules (``distance_violation``, ``contact_time``): ``uuid5(SCHEMA1_ALARM_NAMESPACE,
      "<camera>\\n<type>\\ntracks=<sorted track ids, comma-separated>")``;
    - zone rules (``occupancy_limit``, ``density_limit``, ``queue_spacing``, ``risk_level``):
      ``uuid5(SCHEMA1_ALARM_NAMESPACE, "<camera>\\n<type>\\nzone=<zone, or * for none>")``
      (not the tracks: a crowd's members change while its alarm lasts).

    The start time is not part of it (schema 1 does not carry it exactly: ``duration_s`` ends at
    the last time the condition held, not at the event's time), so two schema-1 alarms of the
    same subject on the same camera share an id, as schema 1 grouped them.
    """
    if type not in ALARM_TYPES:
        return None
    transit = payload.get("transit_id")
    if isinstance(transit, str) and transit:
        try:
            return str(uuid.UUID(transit))
        except ValueError:
            pass
    if type in _PAIR_TYPES:
        tracks = payload.get("tracks") or []
        key = "tracks=" + ",".join(str(t) for t in sorted(tracks, key=str))
    else:
        key = f"zone={payload.get('zone') or '*'}"
    return str(uuid.uuid5(SCHEMA1_ALARM_NAMESPACE, f"{camera}\n{type}\n{key}"))


def alarm_id_of(event: "Event | dict") -> str | None:
    """The alarm id of an event, or of a stored event's JSON object (schema 1 too: derived as
    :func:`schema1_alarm_id` does); ``None`` for non-alarm types (``heatmap``)."""
    if isinstance(event, Event):
        return event.payload.get("alarm_id")
    payload = event.get("payload") or {}
    found = payload.get("alarm_id")
    if found is not None:
        return found
    return schema1_alarm_id(str(event.get("camera")), str(event.get("type")), payload)


class Event(BaseModel):
    """One alarm event (see module docstring). Immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    schema_: int = Field(SCHEMA_VERSION, alias="schema", description="Event schema version (required on the wire)")
    id: str = Field(default_factory=new_event_id, description="UUID of this event")
    type: str = Field(min_length=1, max_length=64, description="Event type, e.g. distance_violation")
    camera: str = Field(min_length=1, max_length=128, description="Camera name from the node config")
    seq: int = Field(ge=1, le=MAX_SAFE_INT, description="Per-camera sequence number, strictly increasing")
    time: str = Field(description="UTC time of the observation, ISO 8601 with Z")
    severity: Severity = "warning"
    state: State = "start"
    payload: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _schema_on_the_wire(cls, data: Any, info: ValidationInfo) -> Any:
        """An event read from the wire or a file (:meth:`from_json`) must name its schema;
        one built in code gets the current one."""
        if info.context and info.context.get("wire") and isinstance(data, dict) and "schema" not in data:
            raise ValueError("schema: field required (an event names its schema version)")
        return data

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v: int) -> int:
        if v not in READABLE_SCHEMAS:
            raise ValueError(f"unsupported event schema {v} (this build reads {SCHEMA_VERSION}, and 1 upgraded)")
        return v

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if v not in PAYLOADS:
            raise ValueError(f"unknown event type {v!r} (known: {', '.join(sorted(PAYLOADS))})")
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

    @field_validator("camera")
    @classmethod
    def _camera(cls, v: str) -> str:
        if _CONTROL.search(v):
            raise ValueError(f"camera name has control characters: {v!r}")
        return v

    @field_validator("time")
    @classmethod
    def _time(cls, v: str) -> str:
        """Normalised to UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: an event sent with an offset
        (``+02:00``) is stored and streamed in UTC, so times compare as text."""
        if _UTC_FORM.fullmatch(v):
            return v  # already the normal form (what utc_iso writes)
        if len(v) > 40:
            raise ValueError(f"time is not ISO 8601: {v[:40]!r}...")
        try:
            parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"time is not ISO 8601: {v!r}") from None
        if parsed.tzinfo is None:
            raise ValueError(f"time has no time zone: {v!r}")
        try:
            utc = parsed.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError(f"time is out of range: {v!r}") from None
        return utc.isoformat(timespec="microseconds")[:-6] + "Z"

    @model_validator(mode="after")
    def _typed_payload(self, info: ValidationInfo) -> "Event":
        """Upgrade schema 1 (add the ``alarm_id``), then check the payload against its type's model
        (which also refuses non-finite numbers; a stored event is read with the model's
        ``stored`` context, which skips the checks that came after it may have been stored)."""
        payload = self.payload
        if self.schema_ == 1:
            alarm_id = schema1_alarm_id(self.camera, self.type, payload)
            if alarm_id is not None and "alarm_id" not in payload:
                payload = {"alarm_id": alarm_id, **payload}
            self.__dict__["schema_"] = SCHEMA_VERSION  # frozen: set once, while validating
            self.__dict__["payload"] = payload
        # bounds first: a number no payload may hold (1e308) is named as such, before a type's
        # own rules compare it with its other fields
        problem = _out_of_bounds(payload, "payload", 0)
        if problem:
            raise ValueError(problem)
        try:
            PAYLOADS[self.type].__pydantic_validator__.validate_python(payload, context=info.context)
        except ValidationError as exc:
            raise ValueError(_payload_reason(exc)) from None
        return self

    # ------------------------------------------------------------------ wire format
    def to_json(self) -> str:
        """Compact JSON, one line, keys in schema order (UTF-8 text, not ``\\u`` escapes)."""
        return self.model_dump_json(by_alias=True)

    def to_bytes(self) -> bytes:
        """:meth:`to_json` encoded as UTF-8 (what goes on the wire)."""
        return self.__pydantic_serializer__.to_json(self, by_alias=True)

    @classmethod
    def from_json(cls, raw: str | bytes, *, stored: bool = False) -> "Event":
        """Parse and validate; raises :class:`EventError` with the reason. ``stored``: the event
        was accepted into the store earlier (by this or an older version): the payload checks
        added since (the agreement of a distance payload's fields) are skipped, so history
        written before them stays readable."""
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
            return cls.model_validate_json(raw, context=_STORED if stored else _WIRE)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0] if exc.error_count() else {}
            if first.get("type") == "json_invalid":
                raise EventError(f"event is not JSON: {first.get('msg')}") from None
            if first.get("type") == "model_type" and not first.get("loc"):
                raise EventError("event is not a JSON object") from None
            raise EventError(f"invalid event: {_event_reason(exc)}") from None
        except (ValueError, RecursionError) as exc:
            raise EventError(f"event is not JSON: {exc}") from None


def event_from_change(change: AlarmChange, *, camera: str, seq: int, time: str, frame: int) -> Event:
    """One :class:`~vigil.alarm.AlarmChange` (a rule's or a plate pass's) as an event.

    ``time``: UTC ISO 8601 of the change (the caller maps stream time to wall time);
    ``frame``: the frame index the change was seen at. The payload is what the model of
    ``change.event_type`` makes of the change (:meth:`~vigil.alerts.payloads.AlarmPayload.from_change`),
    checked like any event's.
    """
    if change.event_type not in ALARM_TYPES:
        raise EventError(f"{change.event_type!r} is not an alarm event type (known: {', '.join(sorted(ALARM_TYPES))})")
    return Event(
        type=change.event_type,
        camera=camera,
        seq=seq,
        time=time,
        severity=change.severity,
        state=change.state,
        payload=PAYLOADS[change.event_type].from_change(change, frame),
    )


def event_from_heatmap(
    heatmap, *, camera: str, seq: int, time: str, frame: int, max_cells: int, final: bool = False
) -> Event:
    """A ``heatmap`` event (severity info, state update) of a :class:`vigil.geometry.risk.HeatMap`:
    both layers as compact 0-255 grids of at most ``max_cells`` cells each, ``final`` for the
    last one of a stream."""
    return Event(
        type=HeatmapPayload.event_type,
        camera=camera,
        seq=seq,
        time=time,
        severity="info",
        state="update",
        payload={
            "rule": "heatmap",
            "layers": heatmap.compact(max_cells),
            "bounds_m": [round(b, 3) for b in heatmap.bounds],
            "decay_tau_s": heatmap.decay_tau_s,
            "final": final,
            "frame": int(frame),
        },
    )
