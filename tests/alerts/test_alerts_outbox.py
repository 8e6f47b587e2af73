"""The durable edge outbox and the publisher on top of it."""

import sqlite3
from pathlib import Path

import pytest

from vigil.alerts.outbox import OutboxCorruptError, OutboxError, SqliteOutbox, count_pending
from vigil.alerts.publisher import EventPublisher
from vigil.errors import UserError


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


def _fill_to_the_limit(ob: SqliteOutbox, make_event) -> tuple:
    """Cap the outbox file at its current size plus one page (SQLite then answers SQLITE_FULL,
    'database or disk is full', as on a full disk) and put events until a write fails."""
    (pages,) = ob._db.execute("PRAGMA page_count").fetchone()
    ob._db.execute(f"PRAGMA max_page_count = {pages + 1}")
    kept = []
    for _ in range(1000):
        ev = make_event(payload={"rule": "distance" + "x" * 2000})
        try:
            ob.put(ev.id, ev.to_bytes(), ev.camera, ev.seq)
        except OutboxError as exc:
            return kept, ev, exc
        kept.append(ev)
    raise AssertionError("the capped outbox never filled up")


def test_full_disk_is_reported_as_full_not_as_a_failed_rollback(tmp_path, make_event):
    """Issue 10: SQLite rolls back by itself on SQLITE_FULL; the ROLLBACK that followed failed
    with 'cannot rollback - no transaction is active' and its message replaced the real one."""
    path = tmp_path / "o.db"
    ob = SqliteOutbox(path)
    kept, refused, exc = _fill_to_the_limit(ob, make_event)
    message = str(exc)
    assert "database or disk is full" in message and str(path) in message, message
    assert "rollback" not in message, message
    # nothing half-done: the refused event is in neither the mirror nor the file, the rest are
    assert refused.id not in ob and list(ob.ids()) == [e.id for e in kept]
    ob._db.execute("PRAGMA max_page_count = 1073741823")  # room again: the outbox goes on
    ob.put(refused.id, refused.to_bytes(), refused.camera, refused.seq)
    ob.close()
    assert list(SqliteOutbox(path).ids()) == [e.id for e in kept] + [refused.id]


def test_full_disk_reaches_the_publisher_caller_as_full(tmp_path, make_event):
    ob = SqliteOutbox(tmp_path / "o.db")
    pub = EventPublisher(f"ipc://{tmp_path}/nobody.ipc", outbox=ob)
    try:
        _fill_to_the_limit(ob, make_event)  # the same file, now at its cap
        with pytest.raises(OutboxError, match="database or disk is full") as info:
            pub.publish(make_event(payload={"rule": "distance" + "x" * 2000}))
        assert "rollback" not in str(info.value)
    finally:
        pub.close(0)
        ob.close()


@pytest.mark.parametrize("damage", ["garbage", "malformed"])
def test_corrupt_outbox_is_moved_aside_and_refused_with_a_clear_error(tmp_path, make_event, damage):
    """Issue 10: a damaged outbox is a UserError naming the file (exit 2 on the command line),
    not a traceback; the file is moved aside intact, and the next open starts a fresh one."""
    path = tmp_path / "o.db"
    if damage == "garbage":
        path.write_bytes(b"not a database" * 100)
    else:  # a real outbox whose table pages were overwritten
        ob = SqliteOutbox(path)
        for _ in range(100):
            ev = make_event()
            ob.put(ev.id, ev.to_bytes(), ev.camera, ev.seq)
        ob.close()
        data = bytearray(path.read_bytes())
        for offset in range(2 * 4096, len(data), 4096):
            data[offset : offset + 64] = b"\xa5" * 64
        path.write_bytes(bytes(data))
    before = path.read_bytes()
    with pytest.raises(OutboxCorruptError) as info:
        SqliteOutbox(path)
    err = info.value
    assert isinstance(err, UserError) and isinstance(err, OutboxError)
    assert err.path == path and err.aside is not None
    assert err.aside.name.startswith("o.db.corrupt-") and err.aside.name.endswith("Z")
    assert err.aside.read_bytes() == before  # kept aside, untouched
    assert not path.exists()
    assert str(path) in str(err) and str(err.aside) in str(err) and "damaged" in str(err)
    expected = "file is not a database" if damage == "garbage" else "malformed"
    assert expected in str(err)
    fresh = SqliteOutbox(path)  # started again: a fresh outbox, the damaged one still aside
    assert len(fresh) == 0
    fresh.close()
    assert err.aside.read_bytes() == before


def test_node_with_a_corrupt_outbox_exits_2_with_the_message(tmp_path, vtest, capsys):
    """Through `vigil run`, the way a node opens its outbox (edge/runner.py): exit code 2, one
    line naming the file and where it went, no traceback."""
    from vigil.cli import main

    repo = Path(__file__).resolve().parents[2]
    cfg = tmp_path / "node.yaml"
    cfg.write_text(
        f"""
version: 1
aggregator: {{endpoint: "tcp://127.0.0.1:9", flush_timeout_s: 0.2}}
output: {{dir: "{tmp_path / "out"}"}}
cameras:
  - name: pets
    source: "{vtest}"
    fps: 7
    calibration: "{repo / "deploy" / "examples" / "pets2009-view001.calib.yaml"}"
"""
    )
    outbox = tmp_path / "out" / "outbox" / "pets.outbox.db"
    outbox.parent.mkdir(parents=True)
    outbox.write_bytes(b"\x00garbage, not SQLite" * 64)
    before = outbox.read_bytes()
    assert main(["run", "--config", str(cfg), "--max-frames", "1", "--no-media", "-q"]) == 2
    err = capsys.readouterr().err
    (aside,) = outbox.parent.glob("pets.outbox.db.corrupt-*")
    assert aside.read_bytes() == before and not outbox.exists()
    assert f"the event outbox {outbox} is damaged" in err and str(aside) in err
    assert "Traceback" not in err
