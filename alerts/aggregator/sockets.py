"""The aggregator's two bound ROUTER sockets: common options, keep-alive, CURVE, binding."""

from __future__ import annotations

from typing import Callable

import zmq

from ..keys import CurveServer

__all__ = ["AggregatorError", "router_socket", "server_keepalive"]


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
    silent drop), ``options``, keep-alive, CURVE (``curve``) and ``configure`` applied, bound
    to ``endpoint``; :class:`AggregatorError` (socket closed) if it cannot bind."""
    sock = ctx.socket(zmq.ROUTER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        for option, value in options.items():
            sock.setsockopt(option, value)
        server_keepalive(sock)
        if curve is not None:
            curve.configure(sock)
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
