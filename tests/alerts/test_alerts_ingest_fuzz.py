"""Property-based fuzzing of the aggregator's ingest (hypothesis): any frames, batches, payloads
and sizes. After every example an honest event must be stored and acknowledged within a few
seconds (nothing stalls); at the end the aggregator is still serving, every honest event is
stored once, and its memory has stayed bounded.

The run is bounded (``max_examples``) and derandomised (the same examples on every run), so it
costs the same time in CI each run and a failure reproduces.
"""

from __future__ import annotations

import json
import os
import resource
import uuid
from itertools import count

import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.alerts.transport import decode_reply
from vigil.bench.procs import rss_kib

# JSON values of every kind, including the awkward ones: huge integers, extreme floats, deep nesting
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)

_FIELDS = ("schema", "id", "type", "camera", "seq", "time", "severity", "state", "payload")


@st.composite
def _mutated_event(draw, base: dict) -> bytes:
    """A valid event with some fields replaced, removed or added, or its payload's fields."""
    obj = json.loads(json.dumps(base))
    obj["id"] = str(uuid.UUID(int=draw(st.integers(min_value=1, max_value=2**64))))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = draw(st.sampled_from(("top", "payload", "drop", "extra")))
        if where == "top":
            obj[draw(st.sampled_from(_FIELDS))] = draw(_json)
        elif where == "payload" and isinstance(obj.get("payload"), dict) and obj["payload"]:
            obj["payload"][draw(st.sampled_from(sorted(obj["payload"])))] = draw(_json)
        elif where == "drop":
            obj.pop(draw(st.sampled_from(_FIELDS)), None)
        else:
            obj[draw(st.text(min_size=1, max_size=8))] = draw(_json)
    return json.dumps(obj).encode()


_frame_sizes = st.sampled_from([0, 1, 100, 4096, 64 * 1024, 64 * 1024 + 1, 200 * 1024])


@st.composite
def _message(draw, base: dict) -> list[bytes]:
    """One ingest message: 1..40 frames of mutated events, random bytes or big blobs."""
    frames = []
    for _ in range(draw(st.integers(min_value=1, max_value=40))):
        kind = draw(st.sampled_from(("event", "event", "bytes", "blob", "empty")))
        if kind == "event":
            frames.append(draw(_mutated_event(base)))
        elif kind == "bytes":
            frames.append(draw(st.binary(max_size=300)))
        elif kind == "blob":
            frames.append(b"{" * draw(_frame_sizes))
        else:
            frames.append(b"")
    return frames


def _rss_mb() -> float:
    return (rss_kib(os.getpid()) or 0) / 1024


def test_ingest_survives_any_input_and_keeps_storing_honest_events(tmp_path, running_aggregator, make_event):
    with running_aggregator(tmp_path / "e.db") as agg:
        _fuzz(agg, make_event)


def _fuzz(agg, make_event) -> None:
    ctx = zmq.Context.instance()
    hostile = ctx.socket(zmq.DEALER)
    hostile.setsockopt(zmq.LINGER, 0)
    hostile.connect(agg.ingest_endpoint)
    honest = ctx.socket(zmq.DEALER)
    honest.setsockopt(zmq.LINGER, 0)
    honest.setsockopt(zmq.RCVTIMEO, 5000)
    honest.connect(agg.ingest_endpoint)
    # a fixed base event: the strategies' repr (so hypothesis's derandomised seed) depends on it
    base = json.loads(
        make_event(
            camera="fuzz",
            seq=1,
            time="2026-12-02T00:00:00.000000Z",
            id="01a235b2-7c29-7fa9-9bd1-2e500619332f",
            payload={"alarm_id": "7b762152-6738-48b3-bde1-676783447788"},
        ).to_json()
    )
    seqs = count(1)
    sent: list[str] = []
    rss0 = _rss_mb()
    peak = [rss0]

    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )
    @given(message=_message(base))
    def one_example(message):
        hostile.send_multipart(message)
        try:
            while True:
                hostile.recv(zmq.NOBLOCK)  # nacks: read and ignored
        except zmq.Again:
            pass
        ev = make_event(camera="honest", seq=next(seqs))
        honest.send(ev.to_bytes())
        reply = decode_reply(honest.recv())  # within 5 s, or zmq.Again fails the test
        assert reply == {"ack": ev.id, "status": "stored"}, reply
        sent.append(ev.id)
        peak[0] = max(peak[0], _rss_mb())

    try:
        one_example()
    finally:
        hostile.close(linger=0)
        honest.close(linger=0)
    stored = [s.event.id for s in agg.store.iter_events() if s.event.camera == "honest"]
    assert stored == sent
    # the test process holds the aggregator, the clients and hypothesis: its growth is bounded
    assert peak[0] - rss0 < 300, f"RSS {rss0:.0f} MB -> peak {peak[0]:.0f} MB"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 < rss0 + 400
