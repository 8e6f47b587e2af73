"""`vigil bench bus` against a real aggregator (in a thread, loopback): counts and latency."""

import json
import threading

import pytest

from vigil.alerts.aggregator import Aggregator
from vigil.alerts.outbox import count_pending
from vigil.bench.bus_bench import main


@pytest.fixture
def agg(tmp_path):
    a = Aggregator(tmp_path / "events.db", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", stats_interval_s=3600)
    stop = threading.Event()
    t = threading.Thread(target=a.run, args=(stop,), daemon=True)
    t.start()
    yield a
    stop.set()
    t.join(5)
    a.close()


@pytest.mark.parametrize("publishers", [1, 2])
def test_bench_bus_sends_through_outbox_and_reports(tmp_path, agg, capsys, publishers):
    outbox = tmp_path / "ob.db"
    rc = main(
        [
            "bus",
            "--connect",
            agg.ingest_endpoint,
            "--stream",
            agg.stream_endpoint,
            "--events",
            "400",
            "--rate",
            "2000",
            "--publishers",
            str(publishers),
            "--outbox",
            str(outbox),
            "--insecure-dev",
            "--json",
        ]
    )
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0, res
    assert res["published"] == res["acknowledged"] == 400 and res["undelivered"] == 0 and res["complete"]
    assert res["received"] == 400 and res["latency_ms"]["n"] == 400
    assert 0 < res["latency_ms"]["p50"] <= res["latency_ms"]["p99"] <= res["latency_ms"]["max"]
    assert res["stored_per_s"] > 0
    assert agg.store.count() == (400, 400)
    assert count_pending(outbox) == 0


def test_bench_bus_needs_security_choice(tmp_path, capsys):
    assert main(["bus", "--connect", "tcp://127.0.0.1:1", "--events", "1", "--outbox", str(tmp_path / "o")]) == 2
    assert "--insecure-dev" in capsys.readouterr().err
