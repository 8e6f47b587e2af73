import io
import json
import sqlite3

import pytest

from vigil.alerts.store import StoreError
from vigil.alerts.store.sqlite import STORE_SCHEMA_VERSION, EventStore


def test_add_is_idempotent_on_id(tmp_path, make_event):
    with EventStore(tmp_path / "ev.db") as store:
        a, b = make_event(), make_event()
        assert store.add(a) is True
        assert store.add(a) is False  # a resend
        assert store.add(b) is True
        assert store.count() == (2, 2)


def test_stream_seq_is_gapless_arrival_order(tmp_path, make_event):
    with EventStore(tmp_path / "ev.db") as store:
        events = [make_event(camera=f"cam{i % 2}") for i in range(5)]
        store.add(events[0])
        store.add(events[0])  # a duplicate must not burn a stream_seq
        assert store.add_many(events[1:] + [events[1]]) == [True, True, True, True, False]
        stored = list(store.iter_events())
        assert [s.stream_seq for s in stored] == [1, 2, 3, 4, 5]
        assert [s.event for s in stored] == events
        assert [s.event.id for s in store.iter_events(since_stream_seq=3)] == [events[3].id, events[4].id]
        assert store.last_stream_seq() == 5


def test_iter_in_batches(tmp_path, make_event):
    with EventStore(tmp_path / "ev.db") as store:
        events = [make_event() for _ in range(7)]
        store.add_many(events)
        assert [s.event for s in store.iter_events(batch=3)] == events
        buf = io.StringIO()
        assert store.export_jsonl(buf, batch=3) == 7
        assert buf.getvalue().splitlines() == [e.to_json() for e in events]


def test_wal_and_schema_version(tmp_path):
    path = tmp_path / "ev.db"
    with EventStore(path) as store:
        assert store.schema_version == STORE_SCHEMA_VERSION
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = [r[1] for r in db.execute("PRAGMA table_info(events)")]
    assert cols[:9] == ["stream_seq", "id", "camera", "seq", "type", "time", "severity", "state", "json"]
    db.close()
    with EventStore(path) as again:  # reopening does not migrate twice
        assert again.schema_version == STORE_SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "ev.db"
    EventStore(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_version VALUES (?, 'future')", (STORE_SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="upgrade vigil"):
        EventStore(path)


def test_same_id_different_content_keeps_first_and_sets_the_other_aside(tmp_path, make_event):
    first = make_event()
    forged = first.model_copy(update={"severity": "critical"})
    with EventStore(tmp_path / "ev.db") as store:
        assert store.add(first)
        conflicts: list[str] = []
        assert store.add_many_seq([forged], conflicts=conflicts) == [None]
        assert conflicts == [first.id]
        # the same conflicting copy again: reported again, kept aside once
        again: list[str] = []
        assert store.add_many_seq([forged, first], conflicts=again) == [None, None]
        assert again == [first.id]
        assert [s.event for s in store.iter_events()] == [first]
        ((cid, _received, text),) = store.conflicts()
        assert cid == first.id and text == forged.to_json()
        # an identical resend is a plain duplicate, not a conflict
        plain: list[str] = []
        assert store.add_many_seq([first], conflicts=plain) == [None] and plain == []


def test_a_value_the_database_cannot_hold_is_a_data_error(tmp_path, make_event):
    ev = make_event()
    # built around validation (model_construct): the store is the last line of defence
    bad = ev.model_construct(**{**ev.__dict__, "seq": 2**70})
    with EventStore(tmp_path / "ev.db") as store:
        with pytest.raises(StoreError) as info:
            store.add_many_seq([bad], [ev.to_json()])
        assert info.value.data_error
        assert store.count()[0] == 0


def test_readonly(tmp_path, make_event):
    with pytest.raises(StoreError, match="no event database"):
        EventStore(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="not a database"):
        EventStore(tmp_path / "junk.db", readonly=True)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StoreError, match="not a vigil event database"):
        EventStore(empty, readonly=True)

    path = tmp_path / "ev.db"
    writer = EventStore(path)
    writer.add(make_event())
    with EventStore(path, readonly=True) as reader:  # while the writer is open (WAL)
        assert reader.count() == (1, 1)
        with pytest.raises(StoreError, match="read-only"):
            reader.add(make_event())
    writer.close()


def test_export_is_one_json_object_per_line(tmp_path, make_event):
    with EventStore(tmp_path / "ev.db") as store:
        store.add(make_event(payload={"zone": "line\nbreak", "positions_m": {"3": [1.5, 2]}}))
        buf = io.StringIO()
        assert store.export_jsonl(buf) == 1
        lines = buf.getvalue().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["payload"]["zone"] == "line\nbreak"
