"""Fixtures for the alarm path tests: real ZeroMQ sockets on loopback/ipc, real SQLite."""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from itertools import count
from typing import Callable, Iterator

import pytest
import zmq

from vigil.alerts.aggregator import Aggregator
from vigil.alerts.events import Event, utc_iso
from vigil.alerts.payloads import PAYLOADS


def sample_payload(type: str = "distance_violation", **fields) -> dict:
    """A valid schema-2 payload of event ``type`` (a new ``alarm_id`` each call), ``fields`` replacing its values."""
    alarm = {
        "alarm_id": str(uuid.uuid4()),
        "tracks": [3, 7],
        "positions_m": {"3": [1.0, 2.0], "7": [1.72, 2.96]},  # 1.2 m apart, as value says
        "value": 1.2,
        "threshold": 2.0,
        "zone": None,
        "duration_s": 0.0,
        "frame": 1,
    }
    zone = {**alarm, "zone": "hall", "worst": 1.2}
    plate = {
        "alarm_id": (tid := str(uuid.uuid4())),
        "transit_id": tid,
        "plate": "AB123CD",
        "confidence": 0.97,
        "hits": [],
        "vehicle_class": "car",
        "evidence_id": None,
        "frame": 1,
    }
    grid = {"origin_m": [0.0, 0.0], "cell_m": 1.0, "shape": [1, 1], "downsample": 1, "scale": 0.0, "unit": ""}
    grid |= {"encoding": "u8-b64", "data": "AA=="}
    samples = {
        "distance_violation": {
            **alarm,
            "rule": "distance",
            "metric": "distance_m",
            "distance_m": 1.2,
            "min_distance_m": 1.2,
            "threshold_m": 2.0,
            "classes": ["person", "person"],
        },
        "contact_time": {
            **alarm,
            "rule": "contact",
            "metric": "contact_s",
            "worst": 1.2,
            "window_s": 900.0,
            "distance_m": 0.5,
            "contact_threshold_m": 1.0,
        },
        "occupancy_limit": {**zone, "rule": "occupancy", "metric": "people", "area_m2": 8.0},
        "density_limit": {**zone, "rule": "density", "metric": "density_per_m2", "people": 2, "area_m2": 8.0},
        "queue_spacing": {**zone, "rule": "queue", "metric": "min_spacing_m", "queue_length": 2, "gaps_m": [1.2]},
        "risk_level": {**zone, "rule": "risk", "metric": "risk_level", "exposure": 1.0, "proximity": 0.5},
        "heatmap": {
            "rule": "heatmap",
            "layers": {"occupancy": grid, "risk": grid},
            "bounds_m": [0.0, 1.0, 0.0, 1.0],
            "decay_tau_s": None,
            "final": False,
            "frame": 1,
        },
        "camera_health": {
            "alarm_id": str(uuid.uuid4()),
            "rule": "health",
            "condition": "frozen",
            "health": "frozen",
            "metric": "frame_change",
            "value": 0.0,
            "threshold": 0.25,
            "duration_s": 20.0,
            "frame": 1,
        },
        "plate_hit": {**plate, "lists": []},
        "plate_transit": {
            **plate,
            "readings": 3,
            "votes": {"AB123CD": 2.9},
            "direction": None,
            "kind": None,
            "country": None,
            "duration_s": 1.5,
            "mode": "gate",
        },
    }
    out = {**samples[type], **fields}
    if type == "distance_violation" and "value" in fields:
        # one distance told several ways (the payload model refuses disagreeing fields): a new
        # value moves distance_m, min_distance_m and the second person along the same bearing
        d = float(fields["value"])
        for key in ("distance_m", "min_distance_m"):
            if key not in fields:
                out[key] = d
        if "positions_m" not in fields:
            out["positions_m"] = {"3": [1.0, 2.0], "7": [round(1.0 + 0.6 * d, 3), round(2.0 + 0.8 * d, 3)]}
    return out


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
        """A valid event of ``type``: its payload is :func:`sample_payload` with the fields of
        ``payload`` (if given) replacing its values. A type with no payload model (for tests of
        topics and routing only) is built without validation."""
        fields.setdefault("seq", next(seqs))
        fields.setdefault("time", utc_iso(time.time()))
        if type not in PAYLOADS:
            fields.setdefault("payload", {})
            return Event.model_construct(camera=camera, type=type, **fields)
        fields["payload"] = sample_payload(type, **fields.get("payload", {}))
        return Event(camera=camera, type=type, **fields)

    return make


@pytest.fixture
def dealer() -> Iterator[Callable[..., zmq.Socket]]:
    """``dealer(endpoint, kind=zmq.DEALER, timeout_ms=5000)``: a raw socket connected to
    ``endpoint`` (a receive waits at most ``timeout_ms``); all closed at the end of the test."""
    ctx = zmq.Context()
    socks = []

    def make(endpoint: str, kind: int = zmq.DEALER, timeout_ms: int = 5000) -> zmq.Socket:
        s = ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, timeout_ms)
        s.connect(endpoint)
        socks.append(s)
        return s

    yield make
    for s in socks:
        s.close(linger=0)
    ctx.term()


@pytest.fixture(name="wait_until")
def _wait_until_fixture() -> Callable[..., bool]:
    return wait_until


@pytest.fixture(name="running_aggregator")
def _running_aggregator_fixture():
    return running_aggregator


@pytest.fixture(name="sample_payload")
def _sample_payload_fixture() -> Callable[..., dict]:
    return sample_payload
