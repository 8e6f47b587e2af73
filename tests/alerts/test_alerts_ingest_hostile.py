"""Hostile input at the aggregator's ingest: strict, bounded validation; one bad event never
holds up the others; big messages do not keep memory; conflicts are kept aside; the log is
not flooded; a flooding peer is put in a penalty (real ZeroMQ sockets, real SQLite)."""

from __future__ import annotations

import json
import logging
import time

import pytest

from vigil.alerts.events import Event, EventError
from vigil.alerts.store import EventStore, StoreError
from vigil.alerts.tail import format_event, json_line
from vigil.alerts.transport import MAX_BATCH_BYTES, decode_reply
from vigil.bench.hostile import AggregatorProcess, good_event
from vigil.cli import main


def _replies(sock, n: int) -> list[dict]:
    return [decode_reply(sock.recv()) for _ in range(n)]


def _wire(event: Event, **changes) -> dict:
    obj = json.loads(event.to_json())
    for key, value in changes.items():
        if key.startswith("payload."):
            obj["payload"][key.removeprefix("payload.")] = value
        else:
            obj[key] = value
    return obj


# ---------------------------------------------------------------------- finding 2: bounds, strictness
@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"seq": 2**63}, "seq: Input should be less than or equal to 9007199254740991"),
        ({"payload.frame": -(2**70)}, "payload.frame: integer -1180591620717411303424 outside +-2**53-1"),
        ({"payload.tracks": [3, 2**64]}, "payload.tracks.1: integer 18446744073709551616 outside +-2**53-1"),
        ({"payload.value": 1e308}, "payload.value: number 1e+308 outside +-1e12"),
        ({"seq": "7"}, "seq: Input should be a valid integer"),
        ({"seq": 7.0}, "seq: Input should be a valid integer"),
        ({"seq": True}, "seq: Input should be a valid integer"),
        ({"payload.frame": "7"}, "payload.frame: Input should be a valid integer"),
        ({"camera": "cam\x1b[2J"}, "camera: camera name has control characters"),
    ],
)
def test_out_of_bounds_or_loosely_typed_events_are_refused_with_the_field(make_event, changes, reason):
    with pytest.raises(EventError) as info:
        Event.from_json(json.dumps(_wire(make_event(), **changes)))
    assert reason in str(info.value)
    assert "input_value" not in str(info.value)  # the hostile value is not echoed at length


def test_schema_is_required_on_the_wire_and_times_are_normalised_to_utc(make_event):
    obj = _wire(make_event())
    del obj["schema"]
    with pytest.raises(EventError, match="schema: field required"):
        Event.from_json(json.dumps(obj))
    ev = Event.from_json(json.dumps(_wire(make_event(), time="2026-12-02T07:30:00.5+02:00")))
    assert ev.time == "2026-12-02T05:30:00.500000Z"
    with pytest.raises(EventError, match="time has no time zone"):
        Event.from_json(json.dumps(_wire(make_event(), time="2026-12-02T07:30:00")))


def test_one_out_of_range_event_is_nacked_and_the_rest_of_its_message_stored(
    tmp_path, make_event, running_aggregator, dealer, wait_until
):
    """Before: the integer passed validation, failed the batch's commit, was never refused,
    and its sender resent it forever while the honest events of its batch waited."""
    with running_aggregator(tmp_path / "e.db") as agg:
        sock = dealer(agg.ingest_endpoint, timeout_ms=10_000)
        good = [make_event(seq=k) for k in (1, 2, 3)]
        bad = _wire(make_event(seq=4), **{"payload.tracks": [2**63]})
        sock.send_multipart([good[0].to_bytes(), json.dumps(bad).encode(), good[1].to_bytes(), good[2].to_bytes()])
        replies = _replies(sock, 2)
        nack = next(r for r in replies if "nack" in r)
        acks = next(r for r in replies if "acks" in r)
        assert nack == {"nack": bad["id"], "error": nack["error"]}
        assert "payload.tracks.0: integer 9223372036854775808 outside +-2**53-1" in nack["error"]
        assert acks == {"acks": [e.id for e in good]}
        assert [s.event for s in agg.store.iter_events()] == good
        stats = agg.stats()
    assert (stats["stored"], stats["nacked"], stats["store_errors"]) == (3, 1, 0)


class _RefusingStore:
    """A real SQLite store that refuses the data of one event id, as PostgreSQL refuses text
    with NUL characters (a data error of that event, not of the database)."""

    def __init__(self, inner: EventStore, bad_id: str) -> None:
        self.inner, self.bad_id = inner, bad_id

    def add_many_seq(self, events, texts=None, conflicts=None):
        events = list(events)
        if any(e.id == self.bad_id for e in events):
            raise StoreError("text fields cannot contain NUL (0x00) bytes", data_error=True)
        return self.inner.add_many_seq(events, texts, conflicts)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_an_event_the_store_refuses_is_isolated_from_its_batch_and_rejected(
    tmp_path, make_event, running_aggregator, dealer, wait_until
):
    good = [make_event(seq=k) for k in range(1, 8)]
    poison = make_event(seq=8)
    with EventStore(tmp_path / "e.db") as inner:
        store = _RefusingStore(inner, poison.id)
        with running_aggregator(store) as agg:
            sock = dealer(agg.ingest_endpoint, timeout_ms=10_000)
            frames = [e.to_bytes() for e in good[:4]] + [poison.to_bytes()] + [e.to_bytes() for e in good[4:]]
            sock.send_multipart(frames)
            replies = _replies(sock, 2)
            assert {"nack": poison.id, "error": replies[0].get("error", replies[-1].get("error"))} in replies
            acked = next(r for r in replies if "acks" in r)["acks"]
            assert acked == [e.id for e in good]
            # resent: still refused with its reason, never stored, nothing else held up
            sock.send(poison.to_bytes())
            (again,) = _replies(sock, 1)
            assert again["nack"] == poison.id and "NUL" in again["error"]
            stats = agg.stats()
        assert [s.event for s in inner.iter_events()] == good
    assert (stats["stored"], stats["rejected"], stats["store_errors"]) == (7, 2, 0)


# ---------------------------------------------------------------------- finding 3: big messages
def test_a_message_over_the_batch_limits_is_dropped_and_its_memory_returned(tmp_path, dealer):
    """Six 65 MB messages (256 KiB frames, each under MAXMSGSIZE) used to leave the aggregator
    at 1.16 GB. Each is dropped unread beyond the limit and the memory handed back."""
    with AggregatorProcess(tmp_path) as agg:
        sock = dealer(agg.ingest, timeout_ms=10_000)
        sock.send(good_event("cam", 1).to_bytes())
        assert decode_reply(sock.recv())["status"] == "stored"
        before = agg.rss_kb()
        frame = b"x" * MAX_BATCH_BYTES
        for _ in range(6):
            sock.send_multipart([frame] * 260)  # 65 MB
        sock.send(good_event("cam", 2).to_bytes())
        assert decode_reply(sock.recv())["status"] == "stored"  # served after the six
        deadline = time.monotonic() + 10
        while agg.rss_kb() > before + 40_000 and time.monotonic() < deadline:
            time.sleep(0.1)
        after = agg.rss_kb()
        log = agg.log_path.read_text()
    assert after < before + 40_000, f"RSS {before} kB -> {after} kB"
    assert "message of 260 frames and 68157440 bytes, limit 1024 event frames and 262144 bytes" in log


# ---------------------------------------------------------------------- finding 8: conflicts, floods
def test_a_resend_with_other_content_is_counted_and_kept_aside(
    tmp_path, make_event, running_aggregator, dealer, caplog
):
    ev = make_event()
    forged = ev.model_copy(update={"severity": "critical"})
    with running_aggregator(tmp_path / "e.db") as agg:
        sock = dealer(agg.ingest_endpoint, timeout_ms=10_000)
        sock.send(ev.to_bytes())
        assert _replies(sock, 1) == [{"ack": ev.id, "status": "stored"}]
        sock.send(forged.to_bytes())
        assert _replies(sock, 1) == [{"ack": ev.id, "status": "duplicate"}]  # the sender stops resending
        stats = agg.stats()
        kept = agg.store.conflicts()
        assert [s.event for s in agg.store.iter_events()] == [ev]
    assert (stats["duplicates"], stats["conflicts"]) == (1, 1)
    assert [(i, text) for i, _, text in kept] == [(ev.id, forged.to_json())]
    assert "resent with other content" in caplog.text


def test_twenty_thousand_bad_frames_write_a_few_log_lines(tmp_path, make_event, running_aggregator, dealer, caplog):
    caplog.set_level(logging.WARNING, logger="vigil.alerts.aggregator")
    with running_aggregator(tmp_path / "e.db") as agg:
        sock = dealer(agg.ingest_endpoint, timeout_ms=10_000)
        for k in range(200):
            sock.send_multipart([b"not json %d" % k] * 100)
        ev = make_event()
        honest = dealer(agg.ingest_endpoint, timeout_ms=10_000)
        deadline = time.monotonic() + 30
        while agg.stats()["received"] < 20_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        honest.send(ev.to_bytes())
        assert _replies(honest, 1) == [{"ack": ev.id, "status": "stored"}]
        stats = agg.stats()
    lines = [r for r in caplog.records if r.name.startswith("vigil.alerts.aggregator")]
    assert stats["malformed"] + stats["penalised"] >= 20_000 - 100
    assert len(lines) <= 15, [r.getMessage() for r in lines]
    # the flooding peer was put in a penalty: most of its frames were dropped unread
    assert stats["penalties"] >= 1 and stats["penalised"] > 0


def test_tail_escapes_what_a_terminal_would_act_on(make_event):
    ev = make_event(payload={"zone": "hall\x1b[2J\x1b[1;1H\u202eforged\nALARM"})
    line = format_event(ev)
    assert "\x1b" not in line and "\n" not in line and "\u202e" not in line
    assert "zone=hall\\x1b[2J\\x1b[1;1H\\u202eforged\\x0a" in line
    text = json_line(ev)
    assert "\x1b" not in text and "\u202e" not in text
    assert json.loads(text) == json.loads(ev.to_json())  # the same JSON value


def test_vigil_events_conflicts_lists_the_copies_kept_aside(tmp_path, make_event, capsys):
    ev = make_event()
    forged = ev.model_copy(update={"severity": "critical"})
    with EventStore(tmp_path / "e.db") as store:
        store.add(ev)
        store.add_many_seq([forged])
    assert main(["events", "conflicts", "--db", str(tmp_path / "e.db"), "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    row = json.loads(line)
    assert row["id"] == ev.id and row["event"] == forged.to_json()
