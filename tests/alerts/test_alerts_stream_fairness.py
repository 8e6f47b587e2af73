"""Operator stream fairness: replaying clients share one store-read budget per loop turn, and a
client whose queue is full backs off, so operators replaying history without reading cannot
starve ingest (Hardening issue, finding 8).

The unit tests drive :class:`OperatorStream` on ``inproc://`` (queues fill at exactly the
high-water marks) with a clock of their own, so they are deterministic.
"""

from __future__ import annotations

import time
import uuid

import pytest
import zmq

from vigil.alerts.aggregator.stream import (
    BACKOFF_MAX_S,
    PROBE_SLICE,
    REPLAY_BUDGET,
    STREAM_SLICE,
    OperatorStream,
)
from vigil.alerts.events import Event, utc_iso
from vigil.alerts.publisher import EventPublisher
from vigil.alerts.store import EventStore
from vigil.alerts.transport import encode_subscribe


class CountingStore:
    """The event store, counting the replay reads and the rows they returned."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.reads = 0
        self.rows = 0

    def read_after(self, since: int, limit: int = 500):
        rows = self.store.read_after(since, limit)
        self.reads += 1
        self.rows += len(rows)
        return rows

    def __getattr__(self, name):
        return getattr(self.store, name)


def _events(n: int, payload: dict) -> list[Event]:
    now = utc_iso(time.time())
    return [Event(camera="cam1", type="risk_level", seq=i + 1, time=now, payload=payload) for i in range(n)]


@pytest.fixture
def history(tmp_path, sample_payload):
    store = EventStore(tmp_path / "e.db")
    store.add_many_seq(_events(3000, sample_payload("risk_level")))
    yield CountingStore(store)
    store.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _stream(ctx, store, clock, hwm=4):
    counters = dict.fromkeys(("published", "replayed", "lagging", "subscriptions", "stream_malformed"), 0)
    endpoint = f"inproc://stream-{uuid.uuid4().hex}"
    return OperatorStream(ctx, endpoint, counters, store, hwm=hwm, client_timeout_s=1e9, clock=clock), endpoint


def _subscribe(ctx, stream, endpoint, n, *, rcvhwm=1, since=0):
    """``n`` DEALERs subscribed ``since`` (they never read unless the test does)."""
    socks = []
    for i in range(n):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVHWM, rcvhwm)
        s.setsockopt(zmq.ROUTING_ID, b"client-%d" % (len(stream.clients) + i))
        s.connect(endpoint)
        s.send(encode_subscribe([], since))
        socks.append(s)
    deadline = time.monotonic() + 5
    while len(stream.clients) < len(socks) and time.monotonic() < deadline:
        stream.socket.poll(50)
        stream.handle_requests()
    assert len(stream.clients) == len(socks)
    return socks


def test_replay_reads_share_one_budget_per_turn_round_robin(history):
    ctx = zmq.Context()
    clock = Clock()
    stream, endpoint = _stream(ctx, history, clock, hwm=100_000)
    socks = _subscribe(ctx, stream, endpoint, 20, rcvhwm=100_000)  # 20 readers replaying everything
    try:
        served_turns = {identity: 0 for identity in stream.clients}
        for _ in range(20):
            before = {identity: c.cursor for identity, c in stream.clients.items()}
            rows = history.rows
            stream.serve_lagging()
            assert history.rows - rows <= REPLAY_BUDGET  # however many clients lag
            for identity, c in stream.clients.items():
                served_turns[identity] += c.cursor != before[identity]
        # round-robin: in 20 turns each of the 20 clients was served, none starved
        assert all(n >= 1 for n in served_turns.values()), served_turns
        # they all catch up and go live in the end
        for _ in range(20 * 3000 // REPLAY_BUDGET + 40):
            stream.serve_lagging()
            clock.now += 0.01
        assert all(c.live and c.cursor == 3000 for c in stream.clients.values())
    finally:
        stream.close()
        for s in socks:
            s.close()
        ctx.term()


def test_clients_that_never_read_back_off_and_cost_little(history):
    ctx = zmq.Context()
    clock = Clock()
    stream, endpoint = _stream(ctx, history, clock, hwm=4)
    socks = _subscribe(ctx, stream, endpoint, 100)  # 100 operators replaying history, never reading
    try:
        for _ in range(300):  # their queues fill (a first 256-row read each, one budget a turn)
            stream.serve_lagging()
            clock.now += 0.01
            if all(c.backoff_s > 0 for c in stream.clients.values()):
                break
        assert all(not c.live and c.backoff_s > 0 and c.cursor < 3000 for c in stream.clients.values())
        reads, rows = history.reads, history.rows
        for _ in range(1000):  # 10 s at a turn every 10 ms
            before = history.rows
            stream.serve_lagging()
            assert history.rows - before <= REPLAY_BUDGET
            clock.now += 0.01
        per_client = (history.reads - reads) / 100
        # backing off from 50 ms to 1 s: about 15 reads each in 10 s (256-row reads every 50 ms
        # before: 200 each, 5 million rows read for nothing in all)
        assert per_client <= 10 / BACKOFF_MAX_S + 8, per_client
        assert history.rows - rows <= 100 * per_client * PROBE_SLICE
        assert all(c.backoff_s == BACKOFF_MAX_S for c in stream.clients.values())
        # a client that starts reading again is served again, from where it stopped
        reader = socks[0]
        client = stream.clients[b"client-0"]
        got = []

        def drain():
            while reader.poll(0):
                frames = reader.recv_multipart()
                if len(frames) == 2:
                    got.append(int(frames[0]))

        deadline = time.monotonic() + 30
        while not client.live and time.monotonic() < deadline:
            drain()
            stream.serve_lagging()
            clock.now += 0.05
        assert client.live
        drain()
        assert got == list(range(got[0], 3001))
        assert client.slice == STREAM_SLICE and client.backoff_s == 0.0
    finally:
        stream.close()
        for s in socks:
            s.close()
        ctx.term()


def test_reopen_forgets_clients_and_binds_the_same_endpoint(history):
    ctx = zmq.Context()
    clock = Clock()
    stream, endpoint = _stream(ctx, history, clock)
    socks = _subscribe(ctx, stream, endpoint, 3)
    try:
        old = stream.socket
        stream.reopen()
        assert stream.socket is not old and old.closed
        assert stream.clients == {} and stream.counters["subscriptions"] == 0
        assert stream.endpoint == endpoint
        more = _subscribe(ctx, stream, endpoint, 1)
        socks += more
    finally:
        stream.close()
        for s in socks:
            s.close()
        ctx.term()


def test_ingest_keeps_flowing_while_many_operators_replay_without_reading(
    tmp_path, running_aggregator, make_event, sample_payload
):
    """End to end, no rate asserted (2 shared cores): every event is acknowledged while 50
    non-reading clients replay a 3000-event history (the bounds are the unit tests' above)."""
    store = EventStore(tmp_path / "e.db")
    store.add_many_seq(_events(3000, sample_payload("risk_level")))
    counting = CountingStore(store)
    ctx = zmq.Context()
    socks = []
    try:
        with running_aggregator(counting, stream_hwm=50) as agg:
            for _ in range(50):
                s = ctx.socket(zmq.DEALER)
                s.setsockopt(zmq.LINGER, 0)
                s.setsockopt(zmq.RCVHWM, 10)
                s.setsockopt(zmq.RCVBUF, 4096)
                s.connect(agg.stream_endpoint)
                s.send(encode_subscribe([], 0))
                socks.append(s)
            deadline = time.monotonic() + 10
            while agg.stats()["subscriptions"] < 50 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert agg.stats()["subscriptions"] == 50
            with EventPublisher(agg.ingest_endpoint, context=ctx) as pub:
                for _ in range(2000):
                    pub.publish(make_event())
                assert pub.flush(60).complete
            assert agg.stats()["stored"] == 2000
            assert counting.reads > 0 and agg.stats()["replayed"] > 0  # they were replaying meanwhile
    finally:
        for s in socks:
            s.close()
        ctx.term()
        store.close()
