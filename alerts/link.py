"""The edge publisher's link to the aggregator, as its socket monitor reports it.

:class:`AggregatorLink` follows the publisher's DEALER socket through its monitor socket
(``DeliveryReport.link``, one of :data:`LINK_STATES`): connected, lost (the publisher resends
the window in flight on the next connection as soon as it completes), or refused: when the
aggregator refuses the handshake (a CURVE key not in its allow-list, the wrong aggregator key,
one side without CURVE) the cause is logged once per change of state and kept in
``DeliveryReport.refused``; libzmq gives up on a peer that refused it, so the link reconnects
the socket itself (after 1 s, backing off up to :data:`REFUSED_RETRY_MAX_S`): a key added to
the aggregator's allow-list later is picked up without restarting the node.

Several aggregators (active-active on one PostgreSQL database): the DEALER connects to every
endpoint and ZeroMQ sends each window to one of the connected ones. The link is ``connected``
while any of them is; each endpoint has its own refusal back-off. When one connection is lost
while another is still up, the window that may have gone down with it is resent at once on
the others (a copy that was stored after all is acknowledged as a duplicate), instead of
waiting for its ack timeout.

Used by :class:`~vigil.alerts.publisher.EventPublisher`'s I/O thread, the only one that
touches the socket and its monitor; it logs to the publisher's logger.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Sequence

import zmq
from zmq.utils.monitor import recv_monitor_message

__all__ = ["AggregatorLink", "LINK_STATES", "MONITORED_EVENTS", "REFUSED_RETRY_MAX_S"]

#: after a refused handshake the publisher reconnects after 1 s, then backs off up to this
REFUSED_RETRY_MAX_S = 30.0

#: ``DeliveryReport.link``: no handshake yet / handshake done / lost since / the aggregator
#: refused the last handshake (``DeliveryReport.refused`` says why)
LINK_STATES = ("connecting", "connected", "disconnected", "refused")

#: the monitor events the link follows (``zmq.Socket.get_monitor_socket(MONITORED_EVENTS)``)
MONITORED_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)

_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
)


class AggregatorLink:
    """State of the link to the aggregator at ``endpoint``, driven by the socket monitor.

    ``state`` (one of :data:`LINK_STATES`), ``refused`` (the last refusal's cause) and
    ``refusals`` (handshakes refused) are read and written with ``lock`` held: the publisher's
    lock, so that its reports see them together with its counts. ``reconnect_at`` (when to
    connect again after a refusal, ``None`` if not) belongs to the I/O thread. ``secure``:
    the socket uses CURVE keys (the refusal causes differ). ``on_zmq_error(what, exc)``: how a
    ZeroMQ error is counted and logged.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        secure: bool,
        lock: threading.Lock,
        log: logging.Logger,
        on_zmq_error: Callable[[str, zmq.ZMQError], None],
    ) -> None:
        self.endpoints = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        self.endpoint = ", ".join(self.endpoints)  # what messages show
        self.secure = secure
        self._lock = lock
        self._log = log
        self._on_zmq_error = on_zmq_error
        self.state = "connecting"
        self.refused: str | None = None
        self.refusals = 0
        self.connected: set[str] = set()  # endpoints whose handshake completed and that are up
        self._refused_specific = False  # the refusal's cause came with a reason
        self._reconnect: dict[str, float] = {}  # refused endpoint -> connect again (ourselves) then
        self._backoff_s: dict[str, float] = {}

    @property
    def reconnect_at(self) -> float | None:
        """When the next refused endpoint is connected again (``None``: none is waiting)."""
        return min(self._reconnect.values()) if self._reconnect else None

    def _where(self, msg: dict) -> str:
        endpoint = msg.get("endpoint", b"")
        text = endpoint.decode("utf-8", "replace") if isinstance(endpoint, bytes) else str(endpoint)
        return text if text in self.endpoints or len(self.endpoints) != 1 else self.endpoints[0]

    def handle_events(
        self,
        monitor: zmq.Socket,
        *,
        resend_lost: Callable[[], int],
        lost: Callable[[], None],
    ) -> bool:
        """Handle the events waiting on ``monitor``; ``True`` if a connection completed.

        With the lock held, ``resend_lost()`` is called when a connection completes (it
        returns how many unacknowledged events lost with an earlier connection it resends
        now) and ``lost()`` when one is lost.
        """
        connected = False
        while True:
            try:
                msg = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return connected
            except zmq.ZMQError as exc:
                self._on_zmq_error("monitor recv", exc)
                return connected
            event, where = msg["event"], self._where(msg)
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                connected = True
                self._reconnect.pop(where, None)
                self._backoff_s.pop(where, None)
                with self._lock:
                    was, self.state, self.refused = self.state, "connected", None
                    self.connected.add(where)
                    n = resend_lost()
                if was == "refused":
                    self._log.warning("event publisher: the aggregator at %s now accepts this node", where)
                self._log.info(
                    "event publisher connected to %s%s", where, f"; resending {n} unacknowledged event(s)" if n else ""
                )
            elif event == zmq.EVENT_DISCONNECTED:
                with self._lock:
                    was_up = where in self.connected
                    self.connected.discard(where)
                    if self.state == "connected" and not self.connected:
                        self.state = "disconnected"
                    lost()
                    # another aggregator is still connected: what went down with this one goes there now
                    n = resend_lost() if self.connected else 0
                if was_up:  # once per lost connection, not per failed attempt
                    if n:
                        self._log.warning(
                            "event publisher lost its connection to %s; %d unacknowledged event(s) resent to %s",
                            where,
                            n,
                            ", ".join(sorted(self.connected)),
                        )
                    elif self.connected:
                        self._log.warning("event publisher lost its connection to %s", where)
                    else:
                        self._log.warning("event publisher lost its connection to %s; buffering", where)
            elif event in _HANDSHAKE_FAILED:
                self._handshake_refused(event, int(msg["value"]), where)

    def refusal_cause(self, event: int, value: int, endpoint: str | None = None) -> str:
        """One line saying why the aggregator (at ``endpoint``, default: all of this link's)
        refused the handshake (monitor ``event``, ``value``)."""
        where = f"aggregator at {endpoint or self.endpoint}"
        curve = f"{where} refused this node's CURVE key (not in its allow-list, or the wrong aggregator key)"
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return f"{curve}: authentication failed (ZAP status {value})"
        if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            if self.secure:
                return f"{where} refused this node's handshake: this node uses CURVE keys and the aggregator does not"
            return (
                f"{where} refused this node's handshake: the aggregator requires CURVE keys and this node "
                "has none (aggregator.keys_dir)"
            )
        detail = "no reason given" if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL else f"protocol error {value:#x}"
        if self.secure:
            # a HELLO the aggregator cannot decrypt is dropped without an answer
            return (
                f"{curve}: the handshake failed ({detail}; when that repeats, this node's copy of the "
                "aggregator's public key is not the aggregator's)"
            )
        # an aggregator that requires CURVE closes on a plain node's greeting, and under load the
        # close can beat its greeting (which names the mechanism) to this node: say both causes
        return (
            f"{where} refused this node's handshake ({detail}): either the aggregator requires CURVE keys and "
            "this node has none (aggregator.keys_dir), or no Vigil aggregator is listening there"
        )

    def _handshake_refused(self, event: int, value: int, where: str) -> None:
        vague = event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        with self._lock:
            self.refusals += 1
            # The aggregator may close before its reason reaches us (libzmq then says "no
            # detail"): a vague refusal never replaces the specific cause seen before it.
            keep = vague and self.refused is not None and self._refused_specific
            changed = False
            if not keep:
                cause = self.refusal_cause(event, value, where if len(self.endpoints) > 1 else None)
                changed = self.refused != cause
                self.refused, self._refused_specific = cause, not vague
                if not self.connected:  # another aggregator still accepting us: still connected
                    changed = changed or self.state != "refused"
                    self.state = "refused"
        if changed:  # once per change of state, not per attempt
            self._log.error("event publisher: %s; events stay in the outbox until it accepts this node", cause)
        if not vague:
            # libzmq does not reconnect to a peer that refused it (an authentication or
            # protocol error ends the session): try again ourselves, backing off
            backoff = self._backoff_s.get(where, 1.0)
            self._reconnect[where] = time.monotonic() + backoff
            self._backoff_s[where] = min(2 * backoff, REFUSED_RETRY_MAX_S)

    def reconnect_if_due(self, sock: zmq.Socket) -> None:
        """Connect ``sock`` again to each refused endpoint whose time has come (libzmq has given it up)."""
        now = time.monotonic()
        for endpoint, due in list(self._reconnect.items()):
            if now < due:
                continue
            del self._reconnect[endpoint]
            try:
                sock.disconnect(endpoint)
            except zmq.ZMQError:
                pass  # already gone
            try:
                sock.connect(endpoint)
            except zmq.ZMQError as exc:
                self._on_zmq_error("connect", exc)
                self._reconnect[endpoint] = now + self._backoff_s.get(endpoint, 1.0)
