"""Fault tests of the alarm path (issue 5): real processes (`vigil aggregator`, `vigil bench bus`
as the edge), real sockets on loopback, real SQLite files.

1. 20,000 events at 2,000/s, the aggregator SIGKILLed after 3 s and restarted 2 s later:
   20,000 stored, 20,000 distinct.
2. The edge process SIGKILLed mid-stream and restarted on the same outbox: nothing lost
   (every camera's stored seq is exactly 1..last, the outbox ends empty).
3. The aggregator down for 30 s (SLOW: about 40 s): the outbox grows, then drains; nothing lost.
4. A slow operator client does not slow the edge or the aggregator, and still gets everything.
5. A client whose key is not in authorized/ receives nothing and stores nothing.
6. A node the aggregator refuses (key not in the allow-list, the wrong aggregator key, no CURVE
   at all) says why, once, and shows it in its report; once its key is authorized it connects
   by itself (libzmq alone gives up on a peer that refused it).
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from vigil.alerts.keys import authorize_key, client_configurator, new_key_pair
from vigil.alerts.outbox import count_pending
from vigil.alerts.publisher import EventPublisher
from vigil.alerts.store import EventStore
from vigil.alerts.tail import StreamClient

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AggregatorProc:
    """`vigil aggregator` in its own process; start/kill/restart on the same db and ports."""

    def __init__(self, tmp: Path, *, keys: Path | None = None, extra: list[str] | None = None) -> None:
        self.db = tmp / "events.db"
        self.ingest = f"tcp://127.0.0.1:{free_port()}"
        self.stream = f"tcp://127.0.0.1:{free_port()}"
        self.keys = keys
        self.extra = extra or []
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def start(self) -> "AggregatorProc":
        self.runs += 1
        self.log = self.tmp / f"aggregator.{self.runs}.log"
        security = ["--keys", str(self.keys)] if self.keys else ["--insecure-dev"]
        self.proc = subprocess.Popen(
            [
                PY,
                "-m",
                "vigil.alerts.cli",
                "aggregator",
                *security,
                "--db",
                str(self.db),
                "--ingest",
                self.ingest,
                "--stream",
                self.stream,
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "w"),
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if "aggregator serving" in self.log.read_text():
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"aggregator exited: {self.log.read_text()}")
            time.sleep(0.02)
        raise AssertionError(f"aggregator not ready: {self.log.read_text()}")

    def kill(self, sig=signal.SIGKILL) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(10)

    def stop(self) -> str:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log.read_text()

    def count(self) -> tuple[int, int]:
        with EventStore(self.db, readonly=True) as store:
            return store.count()

    def seqs_by_camera(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        with EventStore(self.db, readonly=True) as store:
            for s in store.iter_events(batch=5000):
                out.setdefault(s.event.camera, []).append(s.event.seq)
        return out


def bench(agg: AggregatorProc, outbox: Path, events: int, rate: float, *extra: str) -> subprocess.Popen:
    security = [] if "--keys" in extra else ["--insecure-dev"]
    return subprocess.Popen(
        [
            PY,
            "-m",
            "vigil.bench.bus_bench",
            "bus",
            "--connect",
            agg.ingest,
            "--events",
            str(events),
            "--rate",
            str(rate),
            "--outbox",
            str(outbox),
            *security,
            "--json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result_of(proc: subprocess.Popen, timeout: float) -> dict:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"edge (bench) did not finish in {timeout} s: {out[-2000:]} {err[-5000:]}") from None
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def aggregator(tmp_path):
    procs = []

    def make(**kw) -> AggregatorProc:
        a = AggregatorProc(tmp_path, **kw)
        procs.append(a)
        return a.start()

    yield make
    for a in procs:
        a.stop()


def test_fault1_aggregator_sigkill_and_restart_loses_and_duplicates_nothing(tmp_path, aggregator):
    agg = aggregator()
    edge = bench(agg, tmp_path / "outbox.db", 20_000, 2000, "--flush-timeout", "60")
    try:
        time.sleep(3)
        agg.kill(signal.SIGKILL)
        time.sleep(2)
        agg.start()
        res = result_of(edge, 90)
    finally:
        if edge.poll() is None:
            edge.kill()
    assert res["published"] == res["acknowledged"] == 20_000 and res["undelivered"] == 0
    assert agg.count() == (20_000, 20_000)
    seqs = agg.seqs_by_camera()
    assert sorted(seqs["bench0-0"]) == list(range(1, 20_001))
    assert count_pending(tmp_path / "outbox.db") == 0


def test_fault2_edge_killed_mid_stream_and_restarted_loses_nothing(tmp_path, aggregator):
    agg = aggregator()
    outbox = tmp_path / "outbox.db"
    edge = bench(agg, outbox, 20_000, 2000)
    time.sleep(1.5)
    agg.proc.send_signal(signal.SIGSTOP)  # acks stop: the edge's outbox now holds unacknowledged events
    time.sleep(0.7)
    edge.kill()  # SIGKILL mid-stream
    edge.wait(10)
    agg.proc.send_signal(signal.SIGCONT)
    pending = count_pending(outbox)
    assert pending > 0
    res = result_of(bench(agg, outbox, 1000, 2000, "--flush-timeout", "40"), 60)  # the restarted edge
    assert res["recovered"] == pending and res["published"] == 1000 and res["undelivered"] == 0
    assert count_pending(outbox) == 0
    seqs = sorted(agg.seqs_by_camera()["bench0-0"])
    # every event the killed edge had committed, and the restarted edge's, each stored once,
    # and the sequence continued across the restart without a gap or a repeat
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= pending + 1000
    assert agg.count()[0] == agg.count()[1] == len(seqs)


def test_fault3_aggregator_down_30s_outbox_grows_then_drains(tmp_path, aggregator):
    """SLOW (about 40 s): the issue's 30-second outage."""
    agg = aggregator()
    outbox = tmp_path / "outbox.db"
    n, rate = 16_500, 500  # 33 s of events: sending spans the whole outage
    edge = bench(agg, outbox, n, rate, "--flush-timeout", "60")
    try:
        time.sleep(1.5)
        agg.kill(signal.SIGKILL)
        samples = []
        for _ in range(3):
            time.sleep(10)
            samples.append(count_pending(outbox))
        agg.start()  # after 30 s down
        res = result_of(edge, 90)
    finally:
        if edge.poll() is None:
            edge.kill()
    assert samples[0] > 1000 and samples[0] < samples[1] < samples[2], samples  # grows while down
    assert res["acknowledged"] == n and res["undelivered"] == 0
    assert count_pending(outbox) == 0  # drained
    assert agg.count() == (n, n)


def test_fault4_slow_operator_client_does_not_slow_edge_or_aggregator(tmp_path, aggregator, artifacts_dir):
    agg = aggregator(extra=["--stream-hwm", "100"])
    ctx = zmq.Context()
    slow = StreamClient(
        agg.stream, since=None, context=ctx, rcvhwm=10, configure_socket=lambda s: s.setsockopt(zmq.RCVBUF, 4096)
    )
    try:
        deadline = time.monotonic() + 10
        while not slow.subscribed and time.monotonic() < deadline:
            slow.recv(0.05)
        assert slow.subscribed
        # the slow client reads one event per 20 ms (50/s) while 10,000 events go through at
        # 2,000/s, measured by a fast operator client (the bench's own)
        n = 10_000
        got: list[int] = []
        fast_phase = threading.Event()
        done = threading.Event()
        stop = threading.Event()  # set when the test ends early: the socket closes only after the reader

        def read() -> None:
            deadline = time.monotonic() + 60
            while len(got) < n and time.monotonic() < deadline and not stop.is_set():
                item = slow.recv(0.5)
                if item is not None:
                    got.append(item[0])
                    if not fast_phase.is_set():
                        time.sleep(0.02)
            done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        res = result_of(bench(agg, tmp_path / "outbox.db", n, 2000, "--stream", agg.stream), 60)
        assert res["acknowledged"] == n and res["undelivered"] == 0
        (artifacts_dir / "fault4-slow-operator-client.json").write_text(json.dumps(res, indent=2))
        # The bounds tell the failure apart from this machine's load: an edge or a fast client held
        # back by the slow one would go at its pace, 50 events/s, n / 50 = 200 s for the run. On
        # 2 shared cores the edge takes 5-7 s, and the fast client's p99 was under 0.5 s in earlier
        # runs but 1.4-2.0 s in others of the same code, made while other work held the cores (on a
        # quiet VM 48-83 ms, as without a slow client: bench/README), so the figures go to the
        # artifacts instead of a tight bound
        assert res["acked_s"] < n / 2000 + 15.0, res  # the edge kept its pace (held back: 200 s)
        assert res["received"] == n and res["latency_ms"]["p99"] < 10_000, res  # the fast client too
        assert len(got) < n / 2  # the slow client really was behind
        # it was switched to catching up from the store, and gets everything, in order
        fast_phase.set()
        assert done.wait(40)
        reader.join(5)
        assert got == list(range(got[0], got[0] + n))
    finally:
        stop.set()
        if "reader" in locals():
            reader.join(5)
        slow.close()
        ctx.term()
    agg.stop()


def test_fault5_unauthorized_key_receives_nothing(tmp_path, aggregator):
    keys = tmp_path / "keys"
    new_key_pair("aggregator", keys)
    new_key_pair("edge1", keys, authorize=True)
    new_key_pair("op1", keys, authorize="operator")
    new_key_pair("intruder", keys)  # a valid key pair, but not in authorized/
    agg = aggregator(keys=keys)
    ctx = zmq.Context()
    good = StreamClient(agg.stream, since=0, context=ctx, configure_socket=client_configurator(keys, "op1"))
    bad = StreamClient(agg.stream, since=0, context=ctx, configure_socket=client_configurator(keys, "intruder"))
    plain = StreamClient(agg.stream, since=0, context=ctx)  # no CURVE at all
    bad_pub = EventPublisher(agg.ingest, context=ctx, configure_socket=client_configurator(keys, "intruder"))
    try:
        from vigil.alerts.events import Event, utc_iso

        for i in range(5):
            bad_pub.publish(Event.model_construct(type="forged", camera="x", seq=i + 1, time=utc_iso(time.time())))
        res = result_of(bench(agg, tmp_path / "outbox.db", 200, 0, "--keys", str(keys), "--name", "edge1"), 60)
        assert res["acknowledged"] == 200
        got = {"good": [], "bad": [], "plain": []}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(got["good"]) < 200:
            for name, c in (("good", good), ("bad", bad), ("plain", plain)):
                item = c.recv(0.05 if name == "good" else 0)
                while item is not None:
                    got[name].append(item[0])
                    item = c.recv(0)
        for name, c in (("bad", bad), ("plain", plain)):  # a little longer for the refused ones
            item = c.recv(0.5)
            if item is not None:
                got[name].append(item[0])
        assert len(got["good"]) == 200
        assert got["bad"] == [] and got["plain"] == []
        assert not bad.subscribed and not plain.subscribed
        assert bad_pub.report().acknowledged == 0
    finally:
        bad_pub.close(0)
        for c in (good, bad, plain):
            c.close()
        ctx.term()
    assert agg.count() == (200, 200)  # nothing from the intruder
    log = agg.stop()
    assert "refused a CURVE client whose key is not in" in log


def test_fault6_refused_node_says_why_once_and_connects_once_authorized(
    tmp_path, make_event, running_aggregator, wait_until, caplog
):
    keys = tmp_path / "keys"
    new_key_pair("aggregator", keys)
    new_key_pair("edge1", keys, authorize=True)
    new_key_pair("intruder", keys)  # a valid key pair, not (yet) in the allow-list
    other = tmp_path / "other"  # edge1's keys, but another aggregator's public key
    new_key_pair("aggregator", other)
    for name in ("edge1.key", "edge1.key_secret"):
        shutil.copy(keys / name, other / name)
    caplog.set_level(logging.INFO, logger="vigil.alerts.publisher")
    with running_aggregator(tmp_path / "e.db", keys=keys) as agg:
        intruder = EventPublisher(agg.ingest_endpoint, configure_socket=client_configurator(keys, "intruder"))
        wrong = EventPublisher(agg.ingest_endpoint, configure_socket=client_configurator(other, "edge1"))
        plain = EventPublisher(agg.ingest_endpoint)  # no CURVE at all
        pubs = (intruder, wrong, plain)
        try:
            ev = make_event()
            for pub in pubs:
                pub.publish(ev)
            where = f"aggregator at {agg.ingest_endpoint}"
            curve = f"{where} refused this node's CURVE key (not in its allow-list, or the wrong aggregator key)"
            expected = [
                f"{curve}: authentication failed (ZAP status 400)",
                f"{curve}: the handshake failed (no reason given; when that repeats, this node's copy of "
                "the aggregator's public key is not the aggregator's)",
                f"{where} refused this node's handshake: the aggregator requires CURVE keys and this node has "
                "none (aggregator.keys_dir)",
            ]

            # the plain node learns the mechanism mismatch from the aggregator's greeting; under load
            # the aggregator's close can beat that greeting on every try, and the node says both causes
            plain_vague = (
                f"{where} refused this node's handshake (no reason given): either the aggregator requires CURVE "
                "keys and this node has none (aggregator.keys_dir), or no Vigil aggregator is listening there"
            )

            def cause_ok(pub, want) -> bool:
                return pub.report().refused == want or (pub is plain and pub.report().refused == plain_vague)

            def settled() -> bool:  # each refused a few times (libzmq retries the wrong key, we the others)
                return all(cause_ok(p, e) and p.report().refusals >= 3 for p, e in zip(pubs, expected))

            assert wait_until(settled, 20), [p.report() for p in pubs]
            reports = [p.report() for p in pubs]
            assert all(r.link == "refused" and r.acknowledged == 0 for r in reports), reports
            errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            for r in reports:  # logged once per change of state, not per attempt
                assert sum(r.refused in m for m in errors) == 1, errors
            assert not any("lost its connection" in r.getMessage() for r in caplog.records)  # never connected
            # authorized now: the refused node reconnects by itself and delivers what it buffered
            authorize_key(keys / "intruder.key", keys, "edge")
            report = intruder.flush(15)
            assert report.complete and report.link == "connected" and report.refused is None, report
            assert any("now accepts this node" in r.getMessage() for r in caplog.records)
            assert agg.store.count() == (1, 1)
        finally:
            for pub in pubs:
                pub.close(0)
