"""Active-active aggregators (issue 17): two `vigil aggregator` processes on one real PostgreSQL
database, the edge (`vigil bench bus`) connected to both, an operator client following them.

1. 20,000 events at 2,000/s; one aggregator SIGKILLed after 3 s and not restarted: 20,000
   stored, all distinct, every camera's events stored in ``seq`` order (``stream_seq`` order is
   ``seq`` order, 1..n without a gap), and the operator client, following the aggregator that
   died, still receives the alarms through the survivor. The edge → operator latency of this run
   is written to the test artifacts, not asserted: on 2 shared cores it is a figure of the
   machine's load (p99 from 0.2 to 1.3 s in runs of the same code), which a unit test cannot hold
   steady; `vigil bench bus` measures it.
2. Operators follow from any aggregator: a client on B receives the events A stored.
3. A SQLite file keeps one aggregator: a second is refused, saying why.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.alerts.test_alerts_faults import free_port, result_of
from vigil.alerts.publisher import EventPublisher
from vigil.alerts.store import PgEventStore, StoreError, open_store
from vigil.alerts.tail import StreamClient

PY = sys.executable


class PgAggregator:
    """`vigil aggregator --dsn` in its own process (the DSN given without a password: trust auth)."""

    def __init__(self, tmp: Path, dsn: str, name: str) -> None:
        self.dsn, self.name, self.tmp = dsn, name, tmp
        self.ingest = f"tcp://127.0.0.1:{free_port()}"
        self.stream = f"tcp://127.0.0.1:{free_port()}"
        self.status = tmp / f"{name}.status.json"
        self.log = tmp / f"{name}.log"
        cmd = [PY, "-m", "vigil.alerts.cli", "aggregator", "--insecure-dev", "--dsn", dsn]
        cmd += ["--ingest", self.ingest, "--stream", self.stream, "--status-file", str(self.status)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        deadline = time.monotonic() + 20
        while "aggregator serving" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"aggregator {name} did not start: {self.log.read_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def two_aggregators(tmp_path, dsn):
    PgEventStore(dsn).close()  # the schema, once, before both start
    aggs = [PgAggregator(tmp_path, dsn, "a"), PgAggregator(tmp_path, dsn, "b")]
    yield aggs
    for a in aggs:
        a.stop()


def _stored_by_camera(dsn: str) -> dict[str, list[int]]:
    """Each camera's ``seq`` values in ``stream_seq`` order."""
    out: dict[str, list[int]] = {}
    with open_store(dsn=dsn, readonly=True) as store:
        for s in store.iter_events(batch=5000):
            out.setdefault(s.event.camera, []).append(s.event.seq)
    return out


def test_two_aggregators_one_sigkilled_under_load_loses_and_duplicates_nothing(
    tmp_path, dsn, two_aggregators, artifacts_dir
):
    a, b = two_aggregators
    cmd = [PY, "-m", "vigil.bench.bus_bench", "bus", "--insecure-dev", "--json", "--flush-timeout", "60"]
    cmd += ["--connect", a.ingest, "--connect", b.ingest, "--stream", a.stream, "--stream", b.stream]
    cmd += ["--events", "20000", "--rate", "2000", "--publishers", "2", "--cameras", "2"]
    cmd += ["--outbox", str(tmp_path / "outbox.db")]
    edge = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        a.proc.send_signal(signal.SIGKILL)  # the aggregator the operator client follows
        a.proc.wait(10)
        res = result_of(edge, 90)
    finally:
        if edge.poll() is None:
            edge.kill()
    assert res["published"] == res["acknowledged"] == 20_000 and res["undelivered"] == 0, res
    with open_store(dsn=dsn, readonly=True) as store:
        assert store.count() == (20_000, 20_000)
    by_camera = _stored_by_camera(dsn)
    assert sorted(by_camera) == ["bench0-0", "bench0-1", "bench1-0", "bench1-1"]
    for camera, seqs in by_camera.items():
        # stored in seq order, each once, none missing: per-camera order kept across the failover
        assert seqs == list(range(1, 5001)), camera
    latency = res["latency_ms"]
    assert latency["n"] > 15_000, latency  # the operator client saw the alarms through the failover
    (artifacts_dir / "active-active-failover.json").write_text(json.dumps(res, indent=2))
    # the survivor says it is healthy, with its last retention pass (run at start: nothing old)
    doc = json.loads(b.status.read_text())
    assert doc["store_ok"] and doc["counters"]["stored"] > 0
    assert doc["retention"]["events"]["deleted"] == 0 and doc["retention"]["transits"]["days"] == 15
    # the killed one's status goes stale
    assert (
        subprocess.run([PY, "-m", "vigil", "status", "--aggregator", str(b.status)], capture_output=True).returncode
        == 0
    )
    stale = subprocess.run(
        [PY, "-m", "vigil", "status", "--aggregator", str(a.status), "--max-age-s", "1", "--json"],
        capture_output=True,
        text=True,
    )
    assert stale.returncode == 1 and not json.loads(stale.stdout)["ok"]


def test_operators_follow_events_stored_by_another_aggregator(dsn, two_aggregators, make_event):
    a, b = two_aggregators
    events = [make_event() for _ in range(50)]
    with StreamClient(b.stream, since=None) as client:
        deadline = time.monotonic() + 10
        while not client.subscribed and time.monotonic() < deadline:
            client.recv(0.05)
        assert client.subscribed
        with EventPublisher(a.ingest) as pub:  # published to A only
            pub.publish_many(events)
            assert pub.flush(10).complete
        got = []
        deadline = time.monotonic() + 10
        while len(got) < len(events) and time.monotonic() < deadline:
            item = client.recv(0.2)
            if item is not None:
                got.append(json.loads(item[1])["id"])
    assert got == [e.id for e in events]  # all of them, once, in order


def test_a_sqlite_file_has_one_aggregator(tmp_path):
    first = open_store(db=tmp_path / "events.db")
    try:
        with pytest.raises(StoreError, match="another aggregator is writing to .*PostgreSQL"):
            open_store(db=tmp_path / "events.db")
        # readers are not writers
        with open_store(db=tmp_path / "events.db", readonly=True) as reader:
            assert reader.count() == (0, 0)
    finally:
        first.close()
    open_store(db=tmp_path / "events.db").close()  # released on close


def test_a_hung_aggregator_is_left_for_the_other(dsn, two_aggregators, make_event):
    """A (SIGSTOPped: its connections stay open, it answers nothing) is left by the operator
    client after ``failover_s`` of silence and by the publisher after its heartbeat timeout;
    what is published meanwhile arrives once, in order, through B."""
    a, b = two_aggregators
    events = [make_event() for _ in range(40)]
    with StreamClient([a.stream, b.stream], since=None, failover_s=2.0) as client:
        deadline = time.monotonic() + 10
        while not client.subscribed and time.monotonic() < deadline:
            client.recv(0.05)
        assert client.subscribed and client.endpoint == a.stream
        a.proc.send_signal(signal.SIGSTOP)
        try:
            with EventPublisher([a.ingest, b.ingest], timeout_s=1.0) as pub:
                pub.publish_many(events)
                got = []
                deadline = time.monotonic() + 20
                while len(got) < len(events) and time.monotonic() < deadline:
                    item = client.recv(0.2)
                    if item is not None:
                        got.append(json.loads(item[1])["id"])
                assert pub.flush(10).complete
        finally:
            a.proc.send_signal(signal.SIGCONT)
        assert client.endpoint == b.stream and client.failovers == 1
    assert got == [e.id for e in events]
