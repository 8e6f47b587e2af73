"""Ingest: the ROUTER edge publishers send events to, and their acknowledgements.

Each message ``[identity, event JSON, ...]`` (one or more events, one per frame; a DEALER) or
``[identity, b"", event JSON]`` (a REQ client) is validated frame by frame with
:meth:`Event.from_json` (strict and bounded: see :mod:`vigil.alerts.events`); the valid ones
form one :class:`~.writer.Batch` for the store writer. Malformed or oversized frames are
dropped, counted and logged (rate-limited: :mod:`vigil.ratelog`) and the loop keeps serving; a
malformed frame that still names a UUID ``id`` gets a nack so its sender stops resending it.

Limits: a frame above ``MAX_BATCH_BYTES`` is refused by libzmq itself (``MAXMSGSIZE``), which
disconnects the sender (never seen here, so not counted); a message of more than
``MAX_BATCH_EVENTS`` event frames or ``MAX_BATCH_BYTES`` bytes of them is drained unread,
counted ``oversized`` and its memory handed back to the system. A peer sending more than
:data:`PENALTY_FRAMES` bad frames in a second has its messages dropped unread for
:data:`PENALTY_S` seconds. ``docs/security.md`` says what remains (libzmq buffers a multipart
message whole before it is seen here).

Acknowledgements go out only once the batch is committed (:meth:`Ingest.acknowledge`),
duplicates too (the store says which events were new; one resent with other content is
counted ``conflicts`` and kept aside by the store). An event the store refused (its batch split
by the writer) is nacked with the reason (:meth:`Ingest.reject`). A ``plate_transit`` is
recorded in the plate transit store on the event store's own database before it is stored, and
loses every copy of its plate unless it hit a list; one that cannot be recorded is refused
(:class:`~.plate_transits.PlateTransits`).
"""

from __future__ import annotations

import ctypes
import json
import logging
import time
import uuid
from typing import Callable

import zmq

from vigil.ratelog import RateLimitedLog

from ..events import MAX_EVENT_BYTES, Event, EventError
from ..keys import CurveServer
from ..transport import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, encode_ack, encode_acks, encode_nack
from .plate_transits import PlateRefused, PlateTransits
from .sockets import release_endpoint, router_socket
from .writer import Batch

__all__ = ["Ingest"]


log = logging.getLogger(__name__)


#: a peer that sends more than PENALTY_FRAMES bad frames (malformed, nacked, rejected) within
#: one second has its messages dropped unread for PENALTY_S seconds: validating a flood of bad
#: frames must not take the time of honest publishers (an honest one sends none, or a few)
PENALTY_FRAMES = 200
PENALTY_S = 2.0

#: a dropped message above this many bytes makes the aggregator hand freed memory back to the system
_TRIM_BYTES = 4 * 1024 * 1024


def _release_memory() -> None:
    """Return freed heap memory to the system (glibc ``malloc_trim``, every arena).

    A big message's frames are freed as soon as it is dropped, but glibc keeps the pages of
    its heaps for reuse, so the aggregator's RSS would stay at its peak for good (six 65 MB
    messages left it at 1.16 GB). Harmless where there is no glibc."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _id_in(payload: bytes) -> str | None:
    """The UUID ``id`` of a JSON object frame that failed validation, if it has one."""
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return None
    try:
        return str(uuid.UUID(obj["id"]))
    except ValueError:
        return None


class Ingest:
    """The ingest ROUTER bound to ``endpoint``; counts into ``counters`` (the aggregator's).

    ``batch_max``: event frames read per :meth:`receive` at most. Used by one thread at a time.
    """

    def __init__(
        self,
        ctx: zmq.Context,
        endpoint: str,
        counters: dict[str, int],
        transits: PlateTransits,
        *,
        batch_max: int = 1024,
        curve: CurveServer | None = None,
        configure: Callable[[zmq.Socket], None] | None = None,
    ) -> None:
        self.counters = counters
        self.transits = transits
        self.batch_max = int(batch_max)
        self._ctx, self._curve, self._configure = ctx, curve, configure
        self._log = RateLimitedLog(log)
        self._bad: dict[bytes, list] = {}  # peer identity -> [window start, bad frames in it]
        self._penalised: dict[bytes, float] = {}  # peer identity -> monotonic time it is served again
        self.socket: zmq.Socket | None = self._bind(endpoint)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def _bind(self, endpoint: str) -> zmq.Socket:
        # ROUTER_MANDATORY (set by router_socket): a lost ack is an error we log
        return router_socket(
            self._ctx,
            endpoint,
            "ingest",
            {zmq.MAXMSGSIZE: MAX_BATCH_BYTES},
            curve=self._curve,
            configure=self._configure,
        )

    def reopen(self) -> None:
        """Close the socket and bind a new one on the same endpoint: every connection is dropped
        (a revoked key loses the one it has; honest publishers reconnect, pass the handshake
        again and resend what was not acknowledged). Afterwards :attr:`socket` is the new one."""
        if self.socket is not None:
            release_endpoint(self.socket, self.endpoint)  # the port is free before it is bound again
            self.socket.close(linger=0)
            self.socket = None
        self.socket = self._bind(self.endpoint)

    # ------------------------------------------------------------------ receiving
    def receive(self) -> Batch | None:
        """Read up to ``batch_max`` event frames now waiting; the valid events (``None``: none)."""
        items: list[tuple[list[bytes], Event]] = []
        n_frames = 0
        while n_frames < self.batch_max:
            try:
                frames = self._recv_message()
            except zmq.Again:
                break
            except zmq.ZMQError as exc:
                self._log.error("recv", "aggregator: ZeroMQ recv failed: %s (errno %s)", exc, exc.errno)
                break
            if frames is None:
                continue  # too big: drained, counted and logged
            if self._penalised and self._in_penalty(frames[0]):
                self.counters["received"] += len(frames) - 1
                self.counters["penalised"] += len(frames) - 1
                continue
            if len(frames) == 3 and frames[1] == b"":
                envelope, payloads = frames[:2], frames[2:]  # REQ client: one event per request
            elif len(frames) >= 2 and frames[1] != b"":
                envelope, payloads = frames[:1], frames[1:]  # DEALER: one event per frame
            else:
                self.counters["received"] += 1
                self._malformed(f"{len(frames) - 1} payload frame(s) after an empty delimiter or none", frames[0])
                continue
            n_frames += len(payloads)
            for payload in payloads:
                event = self._validate(envelope, payload)
                if event is not None:
                    items.append((envelope, event))
        if not items:
            return None
        recorded: list[tuple[list[bytes], Event]] = []
        for envelope, event in items:
            try:
                recorded.append((envelope, self.transits.record(event)))
            except PlateRefused as exc:
                self.reject(envelope, event.id, str(exc))
        if not recorded:
            return None
        return Batch.of(recorded, [event.to_json() for _, event in recorded])

    def _recv_message(self) -> list[bytes] | None:
        """One whole message (its frames), or ``None`` when it was too big: more than
        :data:`~vigil.alerts.transport.MAX_BATCH_EVENTS` event frames or
        :data:`~vigil.alerts.transport.MAX_BATCH_BYTES` bytes of them. The rest of a too-big
        message is drained without copying it into Python objects, and the memory it held is
        handed back to the system (libzmq has already buffered it whole: ``MAXMSGSIZE`` bounds
        each frame, not a message; see :func:`_release_memory`)."""
        sock = self.socket
        frames = [sock.recv(zmq.NOBLOCK)]  # the peer's identity; the rest of a message is there at once
        total = 0
        while sock.getsockopt(zmq.RCVMORE):
            frame = sock.recv()
            frames.append(frame)
            total += len(frame)
            if total > MAX_BATCH_BYTES or len(frames) > MAX_BATCH_EVENTS + 2:
                return self._drop_too_big(frames, total)
        return frames

    def _drop_too_big(self, frames: list[bytes], total: int) -> None:
        sock = self.socket
        n = len(frames) - 1
        while sock.getsockopt(zmq.RCVMORE):
            total += len(sock.recv(copy=False))
            n += 1
        self.counters["received"] += 1
        self.counters["oversized"] += 1
        self._malformed(
            f"message of {n} frames and {total} bytes, limit {MAX_BATCH_EVENTS} event frames and "
            f"{MAX_BATCH_BYTES} bytes",
            frames[0],
        )
        del frames[:]
        if total > _TRIM_BYTES:  # a few ms, against the tens of MB such a message took to send
            _release_memory()
        return None

    def _in_penalty(self, identity: bytes) -> bool:
        until = self._penalised.get(identity)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self._penalised[identity]
        return False

    def _count_bad(self, identity: bytes | None) -> None:
        """One bad frame from ``identity``; past :data:`PENALTY_FRAMES` in a second, a penalty."""
        if identity is None:
            return
        now = time.monotonic()
        window = self._bad.get(identity)
        if window is None or now - window[0] >= 1.0:
            if len(self._bad) > 10_000:  # peers come and go (a reconnect is a new identity)
                self._bad = {k: w for k, w in self._bad.items() if now - w[0] < 1.0}
            window = self._bad[identity] = [now, 0]
        window[1] += 1
        if window[1] > PENALTY_FRAMES and identity not in self._penalised:
            if len(self._penalised) > 10_000:
                self._penalised = {k: t for k, t in self._penalised.items() if t > now}
            self._penalised[identity] = now + PENALTY_S
            self.counters["penalties"] += 1
            self._log.warning(
                "penalty",
                "aggregator: peer %s sent more than %d bad frames in a second: its messages are dropped for %.0f s",
                identity.hex(),
                PENALTY_FRAMES,
                PENALTY_S,
            )

    def reject(self, envelope: list[bytes], event_id: str, reason: str) -> None:
        """Refuse one valid-looking event for good: counted (``rejected``), logged (rate-limited)
        and nacked with ``reason``, so its sender drops it instead of resending it forever."""
        self.counters["rejected"] += 1
        self._count_bad(envelope[0])
        self._log.warning(
            "rejected",
            "aggregator: rejected event %s from peer %s: %s (%d rejected so far)",
            event_id,
            envelope[0].hex(),
            reason[:300],
            self.counters["rejected"],
        )
        self._reply(envelope, encode_nack(event_id, reason))

    def _validate(self, envelope: list[bytes], payload: bytes) -> Event | None:
        self.counters["received"] += 1
        if len(payload) > MAX_EVENT_BYTES:
            self.counters["oversized"] += 1
            self._malformed(f"{len(payload)} bytes, limit {MAX_EVENT_BYTES}", envelope[0])
            return None
        try:
            return Event.from_json(payload)
        except EventError as exc:
            self._malformed(str(exc), envelope[0])
            event_id = _id_in(payload)
            if event_id is not None:
                self.counters["nacked"] += 1
                self._reply(envelope, encode_nack(event_id, str(exc)))
            return None

    def _malformed(self, reason: str, identity: bytes | None) -> None:
        self.counters["malformed"] += 1
        self._count_bad(identity)
        n = self.counters["malformed"]
        who = identity.hex() if identity else "?"
        self._log.warning(
            "malformed",
            "aggregator: dropped a malformed message from peer %s: %s (%d malformed so far)",
            who,
            reason[:300],
            n,
        )

    # ------------------------------------------------------------------ answering
    def acknowledge(self, batch: Batch, seqs: list[int | None]) -> list[tuple[int, Event, str]]:
        """Count and acknowledge one committed batch (``seqs``: per event its new
        ``stream_seq``, or ``None`` for a duplicate); returns the new events
        ``(stream_seq, event, json)`` for the operator stream."""
        # counted before the acks go out: a publisher that saw its ack then reads stats() sees it
        fresh = []
        for k, ((envelope, event), stream_seq, text) in enumerate(zip(batch.items, seqs, batch.texts)):
            if stream_seq is not None:
                self.counters["stored"] += 1
                fresh.append((stream_seq, event, text))
            elif k in batch.rejected:
                self.reject(envelope, event.id, batch.rejected[k])
            else:
                self.counters["duplicates"] += 1
                if k in batch.conflicts:
                    self.counters["conflicts"] += 1
                    self._log.warning(
                        "conflict",
                        "aggregator: event %s (camera %r, seq %d) resent with other content: kept the stored one, "
                        "the other copy is in event_conflicts (%d conflicts so far)",
                        event.id,
                        event.camera,
                        event.seq,
                        self.counters["conflicts"],
                    )
        # one ack frame per peer per batch (``acks``), or the single form for one event
        by_peer: dict[tuple[bytes, ...], list[tuple[str, bool]]] = {}
        for k, ((envelope, event), stream_seq) in enumerate(zip(batch.items, seqs)):
            if k in batch.rejected:
                continue  # nacked above
            by_peer.setdefault(tuple(envelope), []).append((event.id, stream_seq is not None))
        for envelope, peer_items in by_peer.items():
            if len(peer_items) == 1 or len(envelope) > 1:  # REQ peers get exactly one reply per request
                for event_id, new in peer_items:
                    self._reply(list(envelope), encode_ack(event_id, "stored" if new else "duplicate"))
            else:
                self._reply(list(envelope), encode_acks([event_id for event_id, _ in peer_items]))
        return fresh

    def _reply(self, envelope: list[bytes], frame: bytes) -> None:
        try:
            self.socket.send_multipart([*envelope, frame], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # EHOSTUNREACH: peer gone (it will resend); Again: queue full
            self.counters["reply_errors"] += 1
            self._log.warning(
                "reply", "aggregator: cannot reply to peer %s: %s (errno %s)", envelope[0].hex(), exc, exc.errno
            )

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None
