"""The durable edge outbox and the publisher on top of it."""

import sqlite3

import pytest

from vigil.alerts.outbox import OutboxError, SqliteOutbox, count_pending
from vigil.alerts.publisher import EventPublisher


def test_outbox_survives_reopen_in_order_with_sequences(tmp_path, make_event):
    path = tmp_path / "o.db"
    events = [make_event(camera="a" if i % 2 else "b") for i in range(6)]
    ob = SqliteOutbox(path)
    for ev in events:
        ob.put(ev.id, ev.to_bytes(), ev.camera, ev.seq)
    assert ob.ack_many([events[0].id, events[3].id, "nope"]) == [True, True, False]
    ob.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ob = SqliteOutbox(path)
    assert list(ob.ids()) == [e.id for i, e in enumerate(events) if i not in (0, 3)]
    assert ob.get(events[1].id) == events[1].to_bytes()
    assert ob.last_seq("a") == events[5].seq and ob.last_seq("b") == events[4].seq and ob.last_seq("z") == 0
    for ev in events:
        ob.ack(ev.id)
    assert len(ob) == 0 and ob.last_seq("a") == events[5].seq  # sequences outlive the events
    ob.close()
    assert count_pending(path) == 0


def test_outbox_bounded_drops_oldest(tmp_path, make_event):
    ob = SqliteOutbox(tmp_path / "o.db", max_events=3)
    events = [make_event() for _ in range(5)]
    dropped = []
    for ev in events:
        dropped += ob.put(ev.id, ev.to_bytes(), ev.camera, ev.seq)
    assert dropped == [events[0].id, events[1].id]
    assert ob.put_many([(e.id, e.to_bytes(), e.camera, e.seq) for e in events[2:]]) == []  # already there
    ob.close()
    assert list(SqliteOutbox(tmp_path / "o.db").ids()) == [e.id for e in events[2:]]


def test_outbox_batch_larger_than_bound_keeps_only_the_newest_in_memory_and_file(tmp_path, make_event):
    ob = SqliteOutbox(tmp_path / "o.db", max_events=3)
    old = make_event()
    ob.put(old.id, old.to_bytes(), old.camera, old.seq)
    events = [make_event() for _ in range(5)]
    dropped = ob.put_many([(e.id, e.to_bytes(), e.camera, e.seq) for e in events])
    assert dropped == [old.id, events[0].id, events[1].id]
    assert list(ob.ids()) == [e.id for e in events[2:]]
    ob.close()
    assert count_pending(tmp_path / "o.db") == 3
    again = SqliteOutbox(tmp_path / "o.db", max_events=3)
    assert list(again.ids()) == [e.id for e in events[2:]] and again.last_seq("cam1") == events[-1].seq
    assert again.ack_many([e.id for e in events[2:]]) == [True] * 3
    again.close()
    assert count_pending(tmp_path / "o.db") == 0


def test_outbox_schema_1_file_is_migrated_with_its_pending_events(tmp_path, make_event):
    """Schema 1 had a UNIQUE index on the event id; schema 2 addresses rows by rowid."""
    path = tmp_path / "o.db"
    events = [make_event(camera="cam1") for _ in range(3)]
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE outbox_version (version INTEGER PRIMARY KEY);
        INSERT INTO outbox_version VALUES (1);
        CREATE TABLE outbox (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, camera TEXT,
                             seq INTEGER, data BLOB NOT NULL, put_at REAL NOT NULL);
        CREATE TABLE sequences (camera TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
    """)
    db.executemany(
        "INSERT INTO outbox (id, camera, seq, data, put_at) VALUES (?, ?, ?, ?, 0)",
        [(e.id, e.camera, e.seq, e.to_bytes()) for e in events],
    )
    db.execute("INSERT INTO sequences VALUES ('cam1', ?)", (events[-1].seq,))
    db.commit()
    db.close()
    ob = SqliteOutbox(path)
    assert list(ob.ids()) == [e.id for e in events] and ob.get(events[0].id) == events[0].to_bytes()
    assert ob.last_seq("cam1") == events[-1].seq
    assert ob.ack_many([events[1].id]) == [True]
    new = make_event(camera="cam1")
    ob.put(new.id, new.to_bytes(), new.camera, new.seq)
    ob.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM outbox_version").fetchall() == [(2,)]
    assert db.execute("SELECT id FROM outbox ORDER BY n").fetchall() == [(events[0].id,), (events[2].id,), (new.id,)]
    assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox'").fetchone() == (
        0,
    )
    db.close()


def test_outbox_errors(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(OutboxError, match="bad.db"):
        SqliteOutbox(bad)


def test_publisher_resends_what_a_previous_run_left_and_continues_seq(tmp_path, make_event, running_aggregator):
    path = tmp_path / "o.db"
    ingest = f"ipc://{tmp_path}/in.ipc"
    pub = EventPublisher(ingest, outbox=path)
    seqs = [pub.next_seq("cam9") for _ in range(3)]
    assert seqs == [1, 2, 3]
    events = [make_event(camera="cam9", seq=s) for s in seqs[:2]]  # seq 3 reserved, never used
    pub.publish_many(events)
    report = pub.close(0.1)  # nobody listening: both stay in the outbox
    assert report.pending == 2
    assert count_pending(path) == 2
    with running_aggregator(tmp_path / "e.db", ingest, f"ipc://{tmp_path}/out.ipc") as agg:
        pub = EventPublisher(ingest, outbox=path)
        assert pub.last_seq("cam9") == 2 and pub.next_seq("cam9") == 3  # no gap left
        later = make_event(camera="cam9", seq=3)
        pub.publish(later)
        report = pub.close(5)
        assert report.complete and report.recovered == 2 and report.published == 3
        assert [s.event for s in agg.store.iter_events()] == events + [later]
    assert count_pending(path) == 0
