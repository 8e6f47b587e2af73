"""The aggregator's two bound ROUTER sockets: common options, keep-alive, CURVE, binding, and
releasing an endpoint so that it can be bound again at once (:func:`release_endpoint`, for
reopening a socket after a key was revoked)."""

from __future__ import annotations

import errno
import logging
import time
import uuid
from typing import Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

from ..keys import CurveServer

__all__ = ["AggregatorError", "release_endpoint", "router_socket", "server_keepalive"]

log = logging.getLogger(__name__)


class AggregatorError(RuntimeError):
    """The aggregator cannot start (bad endpoint, address in use, unusable database)."""


def server_keepalive(sock: zmq.Socket) -> None:
    """Dead peers are found by TCP keep-alive on the aggregator's side, not ZMTP heartbeats.

    With ``ZMQ_HEARTBEAT_IVL`` on its bound sockets, libzmq 4.3.5 aborted the aggregator
    (``Assertion failed: !_io_error (src/stream_engine_base.cpp:310)``: the heartbeat timer
    writes on a connection that already failed) when an edge died while the aggregator was
    stalled — seen in the fault tests. The clients (publisher, stream client) keep ZMTP
    heartbeats to notice a dead aggregator; here keep-alive only has to reap dead peers.
    """
    sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
    sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 10)
    sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 5)
    sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)


def router_socket(
    ctx: zmq.Context,
    endpoint: str,
    what: str,
    options: dict[int, int],
    *,
    curve: CurveServer | None = None,
    configure: Callable[[zmq.Socket], None] | None = None,
) -> zmq.Socket:
    """A ROUTER with ``LINGER=0``, ``ROUTER_MANDATORY`` (an unroutable send is an error, not a
    silent drop), ``options``, keep-alive, CURVE (``curve``, for the ZAP domain ``what``:
    ``"ingest"`` or ``"stream"``, see :mod:`vigil.alerts.keys`) and ``configure`` applied, bound
    to ``endpoint``; :class:`AggregatorError` (socket closed) if it cannot bind."""
    sock = ctx.socket(zmq.ROUTER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        for option, value in options.items():
            sock.setsockopt(option, value)
        server_keepalive(sock)
        if curve is not None:
            curve.configure(sock, what)
        if configure is not None:
            configure(sock)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            hint = " (is another aggregator running?)" if exc.errno == zmq.EADDRINUSE else ""
            raise AggregatorError(f"cannot bind the {what} endpoint {endpoint}: {exc}{hint}") from None
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def release_endpoint(sock: zmq.Socket, endpoint: str, timeout_s: float = 2.0) -> bool:
    """Unbind ``endpoint`` (a resolved one: ``LAST_ENDPOINT``) from ``sock`` and wait until
    libzmq has closed the listener; ``True`` once it has.

    libzmq closes listeners in its I/O thread, after ``close`` or ``unbind`` return: binding
    the same TCP port again at once failed with ``EADDRINUSE`` about once in 200 tries here,
    and an old ``ipc://`` listener may unlink the new socket's file. The monitor's
    ``EVENT_CLOSED`` says the listener is gone (for ipc after the unlink). ``inproc://`` is
    unbound synchronously. The connections the socket has are not touched: close it next.
    """
    if endpoint.startswith("inproc://"):
        try:
            sock.unbind(endpoint)
        except zmq.ZMQError:
            pass
        return True
    try:  # a fresh address each time: libzmq releases a monitor's inproc address asynchronously
        monitor = sock.get_monitor_socket(
            zmq.EVENT_CLOSED | zmq.EVENT_CLOSE_FAILED, addr=f"inproc://vigil-release-{uuid.uuid4().hex}"
        )
    except zmq.ZMQError as exc:
        log.warning("aggregator: cannot monitor %s while releasing it: %s", endpoint, exc)
        try:
            sock.unbind(endpoint)
        except zmq.ZMQError:
            pass
        return False
    try:
        try:
            sock.unbind(endpoint)
        except zmq.ZMQError as exc:
            if exc.errno == errno.ENOENT:  # not bound (released already)
                return True
            log.warning("aggregator: cannot unbind %s: %s", endpoint, exc)
            return False
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if not monitor.poll(int(left * 1000) + 1):
                break
            event = recv_monitor_message(monitor)
            if event["event"] in (zmq.EVENT_CLOSED, zmq.EVENT_CLOSE_FAILED):
                return True
        log.warning("aggregator: the listener on %s did not close within %.1f s", endpoint, timeout_s)
        return False
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
