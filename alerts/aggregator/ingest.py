"""Ingest: the ROUTER edge publishers send events to, and their acknowledgements.

Each message ``[identity, event JSON, ...]`` (one or more events, one per frame; a DEALER) or
``[identity, b"", event JSON]`` (a REQ client) is validated frame by frame with
:meth:`Event.from_json`; the valid ones form one :class:`~.writer.Batch` for the store writer.
Malformed or oversized frames are dropped, counted and logged (rate-limited) and the loop
keeps serving; a malformed frame that still names a UUID ``id`` gets a nack so its sender stops
resending it. A frame above ``4 * MAX_EVENT_BYTES`` is refused by libzmq itself
(``MAXMSGSIZE``), which disconnects the sender; such frames are never seen here and are
therefore not counted.

Acknowledgements go out only once the batch is committed (:meth:`Ingest.acknowledge`),
duplicates too (the store says which events were new). A ``plate_transit`` is recorded in the
plate transit store on the event store's own database before it is stored, and loses its clear
plate unless it hit a list (:class:`~.plate_transits.PlateTransits`).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Callable

import zmq

from ..events import MAX_EVENT_BYTES, Event, EventError
from ..keys import CurveServer
from ..transport import MAX_BATCH_EVENTS, encode_ack, encode_acks, encode_nack
from .plate_transits import PlateTransits
from .sockets import router_socket
from .writer import Batch

__all__ = ["Ingest"]

log = logging.getLogger(__name__)


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
        # ROUTER_MANDATORY (set by router_socket): a lost ack is an error we log
        self.socket: zmq.Socket | None = router_socket(
            ctx, endpoint, "ingest", {zmq.MAXMSGSIZE: 4 * MAX_EVENT_BYTES}, curve=curve, configure=configure
        )
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    # ------------------------------------------------------------------ receiving
    def receive(self) -> Batch | None:
        """Read up to ``batch_max`` event frames now waiting; the valid events (``None``: none)."""
        items: list[tuple[list[bytes], Event]] = []
        n_frames = 0
        while n_frames < self.batch_max:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:
                log.error("aggregator: ZeroMQ recv failed: %s (errno %s)", exc, exc.errno)
                break
            if len(frames) == 3 and frames[1] == b"":
                envelope, payloads = frames[:2], frames[2:]  # REQ client: one event per request
            elif len(frames) >= 2 and frames[1] != b"":
                envelope, payloads = frames[:1], frames[1:]  # DEALER: one event per frame
            else:
                self.counters["received"] += 1
                self._malformed(f"{len(frames) - 1} payload frame(s) after an empty delimiter or none", frames[0])
                continue
            if len(payloads) > MAX_BATCH_EVENTS:
                self.counters["received"] += len(payloads)
                self._malformed(f"{len(payloads)} event frames in one message, limit {MAX_BATCH_EVENTS}", envelope[0])
                continue
            n_frames += len(payloads)
            for payload in payloads:
                event = self._validate(envelope, payload)
                if event is not None:
                    items.append((envelope, event))
        if not items:
            return None
        items = [(envelope, self.transits.record(event)) for envelope, event in items]
        return Batch(items, [event.to_json() for _, event in items])

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
        n = self.counters["malformed"]
        if n <= 10 or n % 1000 == 0:
            who = identity.hex() if identity else "?"
            log.warning(
                "aggregator: dropped a malformed message from peer %s: %s (%d malformed so far)", who, reason[:300], n
            )

    # ------------------------------------------------------------------ answering
    def acknowledge(self, batch: Batch, seqs: list[int | None]) -> list[tuple[int, Event, str]]:
        """Count and acknowledge one committed batch (``seqs``: per event its new
        ``stream_seq``, or ``None`` for a duplicate); returns the new events
        ``(stream_seq, event, json)`` for the operator stream."""
        # counted before the acks go out: a publisher that saw its ack then reads stats() sees it
        fresh = []
        for (_, event), stream_seq, text in zip(batch.items, seqs, batch.texts):
            if stream_seq is not None:
                self.counters["stored"] += 1
                fresh.append((stream_seq, event, text))
            else:
                self.counters["duplicates"] += 1
        # one ack frame per peer per batch (``acks``), or the single form for one event
        by_peer: dict[tuple[bytes, ...], list[tuple[str, bool]]] = {}
        for (envelope, event), stream_seq in zip(batch.items, seqs):
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
            log.warning("aggregator: cannot reply to peer %s: %s (errno %s)", envelope[0].hex(), exc, exc.errno)

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None
