"""Publisher → aggregator → SQLite store and → SUB tail, through real ZeroMQ sockets."""

import io
import json
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import zmq

from vigil.alerts.aggregator import Aggregator, AggregatorError
from vigil.alerts.events import MAX_EVENT_BYTES, Event, EventError
from vigil.alerts.publisher import EventPublisher, PublisherError
from vigil.alerts.store import EventStore, StoreError
from vigil.alerts.tail import format_event, tail
from vigil.alerts.transport import StreamFilter, decode_reply


class TailThread:
    """`tail()` running in a thread, writing into a StringIO."""

    def __init__(self, endpoint, **kwargs):
        self.out = io.StringIO()
        self.stop = threading.Event()
        self.count = None
        self.thread = threading.Thread(target=self._run, args=(endpoint, kwargs), daemon=True)
        self.thread.start()

    def _run(self, endpoint, kwargs):
        kwargs.setdefault("timeout_s", 10)
        self.count = tail(endpoint, out=self.out, stop=self.stop, **kwargs)

    def join(self):
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.out.getvalue().splitlines()


def test_round_trip_to_store_and_tail(tmp_path, make_event, running_aggregator, wait_until):
    db = tmp_path / "events.db"
    with running_aggregator(db) as agg:
        as_json = TailThread(agg.stream_endpoint, as_json=True, max_events=3)
        human = TailThread(agg.stream_endpoint, max_events=3)
        assert wait_until(lambda: agg.stats()["subscriptions"] >= 2)  # no slow-joiner loss
        events = [
            make_event(camera="cam1"),
            make_event(camera="cam2", state="update"),
            make_event(camera="cam1", state="end", severity="info"),
        ]
        with EventPublisher(agg.ingest_endpoint, timeout_s=1.0) as pub:
            for ev in events:
                pub.publish(ev)
            report = pub.flush(5)
        assert report.complete
        assert (report.published, report.sent, report.acknowledged, report.pending) == (3, 3, 3, 0)
        json_lines = as_json.join()
        human_lines = human.join()
        stats = agg.stats()
    assert [Event.from_json(line) for line in json_lines] == events
    assert human_lines == [format_event(ev) for ev in events]
    assert "cam2  distance_violation  update warning   tracks=3,7 distance_m=1.2 threshold_m=2" in human_lines[1]
    assert stats["received"] == stats["stored"] == 3
    assert stats["published"] == 6  # to each of the two clients
    with EventStore(db, readonly=True) as store:
        assert store.count() == (3, 3)
        assert [s.event for s in store.iter_events()] == events


def test_tail_topic_filter(tmp_path, make_event, running_aggregator, wait_until):
    with running_aggregator(tmp_path / "e.db") as agg:
        t = TailThread(agg.stream_endpoint, as_json=True, max_events=1, filters=[StreamFilter.of(camera="cam2")])
        assert wait_until(lambda: agg.stats()["subscriptions"] >= 1)
        with EventPublisher(agg.ingest_endpoint) as pub:
            pub.publish(make_event(camera="cam1"))
            wanted = make_event(camera="cam2")
            pub.publish(wanted)
            assert pub.flush(5).complete
        assert [Event.from_json(x) for x in t.join()] == [wanted]


def test_duplicate_resend_is_acked_and_stored_once(tmp_path, make_event, running_aggregator, dealer, wait_until):
    ev = make_event()
    with running_aggregator(tmp_path / "e.db") as agg:
        t = TailThread(agg.stream_endpoint, as_json=True)
        assert wait_until(lambda: agg.stats()["subscriptions"] >= 1)
        sock = dealer(agg.ingest_endpoint)
        sock.send(ev.to_bytes())
        assert decode_reply(sock.recv()) == {"ack": ev.id, "status": "stored"}
        sock.send(ev.to_bytes())  # as after a lost ack
        assert decode_reply(sock.recv()) == {"ack": ev.id, "status": "duplicate"}
        # a publisher sending an id that is already stored gets it acknowledged too
        with EventPublisher(agg.ingest_endpoint) as pub:
            pub.publish(ev)
            report = pub.flush(5)
        assert report.complete and report.acknowledged == 1
        assert wait_until(lambda: agg.stats()["duplicates"] == 2)
        t.stop.set()
        lines = t.join()
        stats = agg.stats()
        assert agg.store.count() == (1, 1)
    assert lines == [ev.to_json()]  # re-published once
    assert (stats["stored"], stats["duplicates"], stats["published"]) == (1, 2, 1)


def test_unacked_event_is_resent(tmp_path, make_event):
    """A peer that swallows the first copy gets a resend; acking that completes delivery."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.RCVTIMEO, 5000)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    ev = make_event()
    pub = EventPublisher(f"tcp://127.0.0.1:{port}", timeout_s=0.1, backoff_max_s=0.2)
    try:
        pub.publish(ev)
        first = router.recv_multipart()  # lost ack: no reply
        second = router.recv_multipart()
        assert first[1] == second[1] == ev.to_bytes()
        router.send_multipart([second[0], json.dumps({"ack": ev.id}).encode()])
        report = pub.flush(5)
        assert report.complete and report.resent >= 1 and report.sent == 1
    finally:
        pub.close(0)
        router.close(0)
        ctx.term()


def test_queued_events_travel_in_batches_of_at_most_batch_max_frames(make_event):
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.RCVTIMEO, 5000)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    events = [make_event() for _ in range(10)]
    pub = EventPublisher(f"tcp://127.0.0.1:{port}", timeout_s=30, backoff_max_s=60, batch_max=4)
    try:
        pub.publish_many(events)
        messages = []
        for _ in range(3):  # one window in flight: the next goes out once this one is acked
            messages.append(router.recv_multipart())
            with pytest.raises(zmq.Again):
                router.recv_multipart(zmq.NOBLOCK)
            ids = [Event.from_json(f).id for f in messages[-1][1:]]
            router.send_multipart([messages[-1][0], json.dumps({"acks": ids}).encode()])
        assert [len(m) - 1 for m in messages] == [4, 4, 2]  # identity + one frame per event
        assert [f for m in messages for f in m[1:]] == [ev.to_bytes() for ev in events]
        report = pub.flush(5)
        assert report.complete and (report.sent, report.acknowledged, report.resent) == (10, 10, 0)
    finally:
        pub.close(0)
        router.close(0)
        ctx.term()


def test_buffered_while_aggregator_down(tmp_path, make_event, running_aggregator):
    ingest = f"ipc://{tmp_path}/ingest.ipc"
    events = [make_event() for _ in range(5)]
    pub = EventPublisher(ingest, timeout_s=0.5)
    try:
        for ev in events:
            pub.publish(ev)
        report = pub.flush(0.3)
        assert (report.sent, report.pending, report.acknowledged) == (0, 5, 0)
        assert not report.complete
        with running_aggregator(tmp_path / "e.db", ingest, f"ipc://{tmp_path}/stream.ipc") as agg:
            report = pub.flush(5)
            assert report.complete and report.acknowledged == 5
            assert [s.event for s in agg.store.iter_events()] == events
    finally:
        pub.close(0)


def test_full_buffer_drops_oldest_and_counts(tmp_path, make_event, running_aggregator, caplog):
    ingest = f"ipc://{tmp_path}/ingest.ipc"
    events = [make_event() for _ in range(5)]
    pub = EventPublisher(ingest, max_buffer=3)
    try:
        for ev in events:
            pub.publish(ev)
        report = pub.report()
        assert (report.published, report.dropped, report.pending) == (5, 2, 3)
        assert "buffer full" in caplog.text
        with running_aggregator(tmp_path / "e.db", ingest, f"ipc://{tmp_path}/stream.ipc") as agg:
            report = pub.flush(5)
            assert [s.event for s in agg.store.iter_events()] == events[2:]  # the newest kept
    finally:
        pub.close(0)
    assert (report.acknowledged, report.dropped, report.pending, report.undelivered) == (3, 2, 0, 2)
    assert report.published == report.acknowledged + report.dropped + report.rejected + report.pending


def test_close_never_hangs_and_reports_undelivered(tmp_path, make_event, caplog):
    pub = EventPublisher(f"ipc://{tmp_path}/nobody.ipc")
    for _ in range(4):
        pub.publish(make_event())
    t0 = time.monotonic()
    report = pub.close(timeout_s=0.2)
    assert time.monotonic() - t0 < 2.0
    assert report.pending == 4 and report.undelivered == 4
    assert "4 event(s) undelivered" in caplog.text
    assert pub.close().pending == 4  # idempotent
    with pytest.raises(PublisherError):
        pub.publish(make_event())


def test_publish_is_cheap(tmp_path, make_event):
    """The video loop's cost per publish(): a lock and a deque append, aggregator or not."""
    events = [make_event() for _ in range(2000)]
    pub = EventPublisher(f"ipc://{tmp_path}/nobody.ipc", max_buffer=500)
    try:
        t0 = time.perf_counter()
        for ev in events:
            pub.publish(ev)
        per_event = (time.perf_counter() - t0) / len(events)
        assert per_event < 0.002
        assert pub.report().dropped == 1500
    finally:
        pub.close(0)


def test_oversized_event_is_refused_by_publish(tmp_path, make_event):
    pub = EventPublisher(f"ipc://{tmp_path}/nobody.ipc")
    try:
        with pytest.raises(EventError, match="limit"):
            pub.publish(make_event(payload={"zone": "x" * MAX_EVENT_BYTES}))
        assert pub.report().published == 0
    finally:
        pub.close(0)


def test_invalid_event_is_nacked_not_retried(tmp_path, make_event, running_aggregator):
    good = make_event()
    bad = Event.model_construct(**{**good.model_dump(), "id": str(uuid.uuid4()), "seq": 0})
    with running_aggregator(tmp_path / "e.db") as agg:
        with EventPublisher(agg.ingest_endpoint, timeout_s=0.2) as pub:
            pub.publish(bad)
            pub.publish(good)
            report = pub.flush(5)
        stats = agg.stats()
        assert agg.store.count() == (1, 1)
    assert (report.acknowledged, report.rejected, report.pending) == (1, 1, 0)
    assert (stats["malformed"], stats["nacked"], stats["stored"]) == (1, 1, 1)


def test_malformed_and_oversized_frames_are_dropped_and_counted(
    tmp_path, make_event, running_aggregator, dealer, wait_until
):
    rng = random.Random(1234)
    with running_aggregator(tmp_path / "e.db") as agg:
        sock = dealer(agg.ingest_endpoint)
        n_bad = 0
        for _ in range(60):  # random bytes, some shaped like JSON
            blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
            if rng.random() < 0.3:
                blob = b'{"schema":1,' + blob + b"}"
            sock.send(blob)
            n_bad += 1
        sock.send_multipart([b"a", b"b"])  # a message of two junk event frames: each one counted
        sock.send(b"{" + b" " * (MAX_EVENT_BYTES + 10) + b"}")  # oversized, under MAXMSGSIZE
        sock.send(b'{"x": ' * 5000)  # deeply nested garbage
        sock.send(json.dumps({**make_event().model_dump(by_alias=True), "extra": 1}).encode())
        sock.send(b"\xff\xfe not utf-8")
        n_bad += 6
        ev = make_event()
        with EventPublisher(agg.ingest_endpoint) as pub:
            pub.publish(ev)
            assert pub.flush(5).complete
        assert wait_until(lambda: agg.stats()["malformed"] == n_bad)
        # the frame with a valid id but an extra field is answered with a nack
        reply = decode_reply(sock.recv())
        assert "nack" in reply and "extra" in reply["error"]
        stats = agg.stats()
        assert [s.event for s in agg.store.iter_events()] == [ev]
    assert stats["malformed"] == n_bad
    assert stats["oversized"] == 1
    assert stats["stored"] == 1


def test_batch_message_stores_good_frames_and_acks_them_together(
    tmp_path, make_event, running_aggregator, dealer, wait_until
):
    """One ingest message carries several events (one per frame): each frame is judged on
    its own, the good ones are stored and acknowledged in one ``acks`` reply, a bad one with
    an id is nacked, junk is counted."""
    with running_aggregator(tmp_path / "e.db") as agg:
        sock = dealer(agg.ingest_endpoint)
        good = [make_event(seq=k) for k in (1, 2, 3)]
        bad = {**make_event(seq=4).model_dump(by_alias=True), "seq": 0}
        sock.send_multipart(
            [
                good[0].to_bytes(),
                b"junk",
                json.dumps(bad).encode(),
                good[1].to_bytes(),
                good[2].to_bytes(),
                good[0].to_bytes(),
            ]
        )
        replies = [decode_reply(sock.recv()) for _ in range(2)]
        nack = next(r for r in replies if "nack" in r)
        acks = next(r for r in replies if "acks" in r)
        assert nack["nack"] == bad["id"]
        assert acks["acks"] == [good[0].id, good[1].id, good[2].id, good[0].id]
        assert [s.event for s in agg.store.iter_events()] == good
        stats = agg.stats()
    assert (stats["received"], stats["stored"], stats["duplicates"], stats["malformed"], stats["nacked"]) == (
        6,
        3,
        1,
        2,
        1,
    )


def test_req_client_is_acked(tmp_path, make_event, running_aggregator, dealer):
    with running_aggregator(tmp_path / "e.db") as agg:
        req = dealer(agg.ingest_endpoint, zmq.REQ)
        ev = make_event()
        req.send(ev.to_bytes())
        assert decode_reply(req.recv())["ack"] == ev.id


@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://10.1.2.3:5555"])
def test_refuses_non_loopback_bind(tmp_path, endpoint):
    with pytest.raises(AggregatorError, match="refusing to bind"):
        Aggregator(tmp_path / "e.db", endpoint, "tcp://127.0.0.1:*")


def test_address_in_use(tmp_path):
    with Aggregator(tmp_path / "a.db", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*") as first:
        with pytest.raises(AggregatorError, match="in use"):
            Aggregator(tmp_path / "b.db", first.ingest_endpoint, "tcp://127.0.0.1:*")


def test_sigterm_stops_the_aggregator_cleanly(tmp_path, make_event):
    ingest = tmp_path / "in.ipc"
    db = tmp_path / "e.db"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vigil.alerts.cli",
            "aggregator",
            "--insecure-dev",
            "--db",
            str(db),
            "--ingest",
            f"ipc://{ingest}",
            "--stream",
            f"ipc://{tmp_path}/out.ipc",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not ingest.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert ingest.exists(), proc.stderr.read() if proc.poll() is not None else "no ingest socket"
        with EventPublisher(f"ipc://{ingest}") as pub:
            pub.publish(make_event())
            assert pub.flush(5).complete
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "aggregator stopping: received=1, stored=1" in err
    with EventStore(db, readonly=True) as store:
        assert store.count() == (1, 1)


def test_aggregator_restart_and_in_flight_events_resent_on_reconnect(
    tmp_path, make_event, running_aggregator, wait_until
):
    """An event lost in flight (received, never acked) is resent as soon as the publisher
    reconnects — not after its (here 30 s) ack timeout — ahead of an event published after
    it, and the restarted aggregator continues the same database.

    Deterministic (issue 9): each step waits for the publisher's own view of the link
    (``report().link``), so no send can race the monitor; and the order no longer depends on
    timing at all (one window in flight: ``later`` waits until ``lost`` is acknowledged)."""
    ingest, stream = f"ipc://{tmp_path}/in.ipc", f"ipc://{tmp_path}/out.ipc"
    db = tmp_path / "e.db"
    first, lost, later = make_event(), make_event(), make_event()
    pub = EventPublisher(ingest, timeout_s=30, backoff_max_s=60)

    def link():
        return pub.report().link

    try:
        with running_aggregator(db, ingest, stream):
            pub.publish(first)
            assert pub.flush(10).complete
        assert wait_until(lambda: link() == "disconnected", 10)
        # a peer that takes the event and dies before acking it
        ctx = zmq.Context()
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.RCVTIMEO, 10_000)
        router.bind(ingest)
        assert wait_until(lambda: link() == "connected", 10)
        pub.publish(lost)
        assert router.recv_multipart()[1] == lost.to_bytes()
        router.close(0)
        ctx.term()
        assert wait_until(lambda: link() == "disconnected", 10)
        pub.publish(later)  # while nobody listens, and behind `lost`, still in flight
        t0 = time.monotonic()
        with running_aggregator(db, ingest, stream) as agg:
            report = pub.flush(20)
            assert report.complete, report
            assert time.monotonic() - t0 < 20  # well before the 30 s ack timeout
            assert [s.event for s in agg.store.iter_events()] == [first, lost, later]
        assert report.resent == 1 and report.sent == 3, report
    finally:
        pub.close(0)


def test_events_lost_in_flight_are_stored_in_outbox_order_after_reconnect(
    tmp_path, make_event, running_aggregator, wait_until
):
    """Issue 9: whatever was lost in flight is stored before anything published after it.

    The peer swallows the first event and its resends (ack timeout 0.1 s); 29 more events are
    published meanwhile. Only the window in flight goes out (resent whole, in order), nothing
    behind it; after the reconnection the aggregator stores all 30 in publish order. (Before,
    every event went out at once and a reconnection resent the lot ordered by resend count,
    then by event id: random among ids of the same millisecond.)"""
    ingest, stream = f"ipc://{tmp_path}/in.ipc", f"ipc://{tmp_path}/out.ipc"
    events = [make_event(camera="cam1", seq=k + 1) for k in range(30)]
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.RCVTIMEO, 10_000)
    router.bind(ingest)
    pub = EventPublisher(ingest, timeout_s=0.1, backoff_max_s=0.2)
    try:
        pub.publish(events[0])
        assert router.recv_multipart()[1:] == [events[0].to_bytes()]
        assert router.recv_multipart()[1:] == [events[0].to_bytes()]  # resent: still the window
        for ev in events[1:]:
            pub.publish(ev)  # each could go alone: it must wait behind events[0]
        assert wait_until(lambda: pub.report().resent >= 4, 10)  # two more resends after all were published
        seen = []
        while router.poll(0):
            seen.append(router.recv_multipart()[1:])
        assert seen and all(frames == [events[0].to_bytes()] for frames in seen), seen
        router.close(0)
        assert wait_until(lambda: pub.report().link == "disconnected", 10)
        with running_aggregator(tmp_path / "e.db", ingest, stream) as agg:
            report = pub.flush(20)
            assert report.complete, report
            assert [s.event for s in agg.store.iter_events()] == events
        assert report.sent == 30
    finally:
        pub.close(0)
        router.close(0)
        ctx.term()


class _FirstCommitFails:
    """A real SQLite store whose first commit fails (a disk full for a moment, say)."""

    def __init__(self, path) -> None:
        self.inner = EventStore(path)
        self.failed = False

    def add_many_seq(self, events, texts=None, conflicts=None):
        if not self.failed:
            self.failed = True
            raise StoreError("database or disk is full")
        return self.inner.add_many_seq(events, texts, conflicts)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_events_are_stored_in_order_when_a_commit_fails(tmp_path, make_event, running_aggregator):
    """Issue 9: a batch the aggregator could not commit is resent (ack timeout) and stored
    before anything published after it: nothing behind it was sent meanwhile."""
    store = _FirstCommitFails(tmp_path / "e.db")
    events = [make_event(camera="cam1", seq=k + 1) for k in range(60)]
    with running_aggregator(store) as agg:
        with EventPublisher(agg.ingest_endpoint, timeout_s=0.2, backoff_max_s=0.4, batch_max=8) as pub:
            for k in range(0, len(events), 5):
                pub.publish_many(events[k : k + 5])
            report = pub.flush(20)
        assert report.complete and report.resent >= 1, report
        assert [s.event for s in agg.store.iter_events()] == events
        assert agg.stats()["store_errors"] == 1


def test_full_client_queue_switches_to_catch_up_from_store(tmp_path, make_event, running_aggregator, wait_until):
    """A client whose queue is full is served later from the store: nothing lost, in order."""
    from vigil.alerts.tail import StreamClient

    small = lambda s: s.setsockopt(zmq.SNDBUF, 2048)  # noqa: E731 - tiny kernel buffer: the queue fills
    with running_aggregator(tmp_path / "e.db", stream_hwm=20, configure_stream=small) as agg:
        client = StreamClient(
            agg.stream_endpoint, since=None, rcvhwm=5, configure_socket=lambda s: s.setsockopt(zmq.RCVBUF, 2048)
        )
        try:
            assert wait_until(lambda: client.recv(0.01) is None and client.subscribed, 5)
            events = [make_event(payload={"zone": "x" * 500, "frame": i}) for i in range(2000)]
            with EventPublisher(agg.ingest_endpoint) as pub:
                pub.publish_many(events)
                assert pub.flush(10).complete
            assert agg.stats()["lagging"] >= 1
            got = []
            deadline = time.monotonic() + 20
            while len(got) < len(events) and time.monotonic() < deadline:
                item = client.recv(0.5)
                if item is not None:
                    got.append(Event.from_json(item[1]).id)
            assert got == [e.id for e in events]
            assert agg.stats()["replayed"] > 0
        finally:
            client.close()


def test_replay_since_and_filters(tmp_path, make_event, running_aggregator):
    """`since` replays the store, then live; filters by camera, type, severity; resume after reconnect."""
    with running_aggregator(tmp_path / "e.db") as agg:
        first = [
            make_event(camera="a"),
            make_event(camera="b", severity="critical"),
            make_event(camera="a", type="occupancy_limit"),
        ]
        with EventPublisher(agg.ingest_endpoint) as pub:
            pub.publish_many(first)
            assert pub.flush(5).complete
            out = io.StringIO()
            assert tail(agg.stream_endpoint, since=0, as_json=True, out=out, max_events=3, timeout_s=5) == 3
            assert [Event.from_json(x) for x in out.getvalue().splitlines()] == first
            out = io.StringIO()
            state = {}
            n = tail(
                agg.stream_endpoint,
                since=0,
                as_json=True,
                out=out,
                max_events=1,
                timeout_s=5,
                state=state,
                filters=[StreamFilter.of(camera="a", type="occupancy_limit")],
            )
            assert n == 1 and Event.from_json(out.getvalue()) == first[2] and state["last_stream_seq"] == 3
            out = io.StringIO()
            assert (
                tail(
                    agg.stream_endpoint,
                    since=0,
                    as_json=True,
                    out=out,
                    max_events=1,
                    timeout_s=5,
                    filters=[StreamFilter.of(severity=["critical"])],
                )
                == 1
            )
            assert Event.from_json(out.getvalue()) == first[1]
            # resume: a client that saw up to stream_seq 2 gets 3 and then the live ones
            later = make_event(camera="c")
            t = TailThread(agg.stream_endpoint, since=2, as_json=True, max_events=2)
            time.sleep(0.3)
            pub.publish(later)
            assert pub.flush(5).complete
            assert [Event.from_json(x) for x in t.join()] == [first[2], later]


def test_stream_rejects_malformed_requests_and_keeps_serving(
    tmp_path, make_event, running_aggregator, dealer, wait_until
):
    with running_aggregator(tmp_path / "e.db") as agg:
        sock = dealer(agg.stream_endpoint)
        for junk in (
            b"",
            b"nope",
            b"[]",
            b'{"op":"subscribe","since":-1}',
            b'{"op":"subscribe","filters":[{"x":1}]}',
            b'{"op":"dance"}',
        ):
            sock.send(junk)
        sock.send_multipart([b"a", b"b"])
        assert wait_until(lambda: agg.stats()["stream_malformed"] == 7)
        t = TailThread(agg.stream_endpoint, as_json=True, max_events=1)
        assert wait_until(lambda: agg.stats()["subscriptions"] >= 1)
        ev = make_event()
        with EventPublisher(agg.ingest_endpoint) as pub:
            pub.publish(ev)
            assert pub.flush(5).complete
        assert [Event.from_json(x) for x in t.join()] == [ev]
