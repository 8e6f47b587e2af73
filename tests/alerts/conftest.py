"""Fixtures for the alarm path tests: real ZeroMQ sockets on loopback/ipc, real SQLite."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from itertools import count
from typing import Callable, Iterator

import pytest

from vigil.alerts.aggregator import Aggregator
from vigil.alerts.events import Event, utc_iso


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0, interval_s: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


@contextmanager
def running_aggregator(
    db, ingest: str = "tcp://127.0.0.1:*", stream: str = "tcp://127.0.0.1:*", **kwargs
) -> Iterator[Aggregator]:
    """An aggregator serving in a background thread; stopped and closed on exit."""
    agg = Aggregator(db, ingest, stream, stats_interval_s=3600, **kwargs)
    stop = threading.Event()
    thread = threading.Thread(target=agg.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield agg
    finally:
        stop.set()
        thread.join(5)
        assert not thread.is_alive(), "aggregator did not stop within 5 s"
        agg.close()


@pytest.fixture
def make_event() -> Callable[..., Event]:
    seqs = count(1)

    def make(camera: str = "cam1", type: str = "distance_violation", **fields) -> Event:
        fields.setdefault("seq", next(seqs))
        fields.setdefault("time", utc_iso(time.time()))
        fields.setdefault("payload", {"track_ids": [3, 7], "distance_m": 1.2, "threshold_m": 2.0})
        return Event(camera=camera, type=type, **fields)

    return make


@pytest.fixture(name="wait_until")
def _wait_until_fixture() -> Callable[..., bool]:
    return wait_until


@pytest.fixture(name="running_aggregator")
def _running_aggregator_fixture():
    return running_aggregator
