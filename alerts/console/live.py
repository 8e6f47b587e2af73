"""New events to browsers: a follower thread feeds a :class:`Hub`, which wakes each browser's
Server-Sent-Events generator.

The follower is a :class:`~vigil.alerts.tail.StreamClient` on the aggregator's operator
stream (CURVE keys as for ``vigil tail``; several endpoints: the client fails over between
the aggregators serving the stream), started from the database's last ``stream_seq``
so nothing stored between start-up and subscription is missed. Without a stream endpoint
(``poll_db``), it polls the database every 250 ms instead.

The hub only signals "something after stream_seq N exists"; each browser connection reads
the rows itself from the database after its own cursor, with its own filters. So a slow
browser, a reconnection (``Last-Event-ID``) or a console restart never loses or duplicates
an alarm, and the hub holds no per-client queue that could grow.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence

import zmq

from ..tail import StreamClient

log = logging.getLogger("vigil.alerts.console")

__all__ = ["Hub", "StreamFollower"]


class Hub:
    """The latest known ``stream_seq`` and a wake-up for every waiting coroutine."""

    def __init__(self) -> None:
        self.last_seq = 0
        self.closing = False
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()

    def publish(self, stream_seq: int) -> None:
        """Called from any thread."""
        with self._lock:
            if stream_seq > self.last_seq:
                self.last_seq = stream_seq
            waiters = list(self._waiters)
        for loop, ev in waiters:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # loop closed
                pass

    def close(self) -> None:
        self.closing = True
        self.publish(self.last_seq)

    async def wait(self, after: int, timeout_s: float) -> int:
        """Until ``last_seq > after`` (or the timeout, or closing); returns ``last_seq``."""
        if self.last_seq > after or self.closing:
            return self.last_seq
        ev = asyncio.Event()
        item = (asyncio.get_running_loop(), ev)
        with self._lock:
            self._waiters.add(item)
        try:
            if self.last_seq <= after:
                try:
                    await asyncio.wait_for(ev.wait(), timeout_s)
                except asyncio.TimeoutError:
                    pass
        finally:
            with self._lock:
                self._waiters.discard(item)
        return self.last_seq


class StreamFollower:
    """A background thread following the aggregator's stream (or polling the database).

    ``endpoint``: one stream endpoint, a list of them (failover, in order), or ``None`` /
    an empty list (poll the database through ``last_seq_in_db`` every 250 ms)."""

    def __init__(
        self,
        hub: Hub,
        *,
        endpoint: str | Sequence[str] | None,
        start_seq: int,
        configure_socket: Callable[[zmq.Socket], None] | None = None,
        last_seq_in_db: Callable[[], int] | None = None,
    ) -> None:
        self.hub = hub
        self.endpoints: list[str] = [endpoint] if isinstance(endpoint, str) else list(endpoint or [])
        self.endpoint = ", ".join(self.endpoints) or None  # for messages
        self.start_seq = start_seq
        self.configure_socket = configure_socket
        self.last_seq_in_db = last_seq_in_db
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-console-stream", daemon=True)
        hub.publish(start_seq)

    def start(self) -> "StreamFollower":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        if not self.endpoints:
            while not self._stop.wait(0.25):
                try:
                    self.hub.publish(self.last_seq_in_db())
                except Exception as exc:  # noqa: BLE001 - keep polling through a transient database error
                    log.warning("console: cannot read the event database: %s", exc)
            return
        while not self._stop.is_set():
            try:
                # one endpoint as a str, several as the list StreamClient fails over between
                target = self.endpoints[0] if len(self.endpoints) == 1 else list(self.endpoints)
                with StreamClient(target, since=self.hub.last_seq, configure_socket=self.configure_socket) as client:
                    log.info("console: following %s from stream_seq %d", self.endpoint, self.hub.last_seq)
                    while not self._stop.is_set():
                        got = client.recv(0.2)
                        if got is not None:
                            self.hub.publish(got[0])
            except zmq.ZMQError as exc:
                log.error("console: stream %s failed: %s; retrying in 1 s", self.endpoint, exc)
                self._stop.wait(1.0)
