"""The PostgreSQL store against a real server started on loopback (the ``pg_server`` / ``dsn``
fixtures of tests/conftest.py: Debian's postgresql binaries; skipped with the reason when they
or psycopg are missing)."""

from __future__ import annotations

import json

import pytest

from vigil.alerts.events import Event
from vigil.alerts.publisher import EventPublisher
from vigil.alerts.store import StoreError

psycopg = pytest.importorskip("psycopg", reason="psycopg (PostgreSQL driver) not installed")


def test_pg_store_idempotent_migrated_and_readable(dsn, make_event):
    from vigil.alerts.store.postgres import PG_SCHEMA_VERSION, PgEventStore

    events = [make_event(camera=f"c{i % 2}") for i in range(5)]
    with PgEventStore(dsn) as store:
        assert store.schema_version == PG_SCHEMA_VERSION
        seqs = store.add_many_seq(events[:3] + [events[0]])
        assert seqs[3] is None and all(s is not None for s in seqs[:3]) and seqs[:3] == sorted(seqs[:3])
        assert store.add_many(events[2:] + [events[4]]) == [False, True, True, False]
        forged = events[1].model_copy(update={"severity": "critical"})
        conflicts: list[str] = []
        assert store.add_many_seq([forged], conflicts=conflicts) == [None]
        assert conflicts == [events[1].id]
        assert store.add_many_seq([forged]) == [None]  # kept aside once per content
        assert [(i, text) for i, _, text in store.conflicts()] == [(events[1].id, forged.to_json())]
        assert store.count() == (5, 5)
        assert [s.event for s in store.iter_events(batch=2)] == events
        rows = store.read_after(seqs[0], 2)
        assert [r[4] for r in rows] == [events[1].to_json(), events[2].to_json()]
        assert store.last_stream_seq() >= 5
    with PgEventStore(dsn, readonly=True) as ro:  # reopening does not migrate again
        assert ro.count() == (5, 5)
        with pytest.raises(StoreError, match="read-only"):
            ro.add(make_event())


def test_pg_two_writers_commit_in_stream_seq_order(dsn, make_event):
    """Two stores (two aggregators) write to one database at once: every event stored once,
    and rows become visible in stream_seq order (a reader never finds a row below one it saw)."""
    import threading

    from vigil.alerts.store.postgres import PgEventStore

    a, b, reader = PgEventStore(dsn), PgEventStore(dsn), PgEventStore(dsn, readonly=True)
    events = [make_event() for _ in range(2000)]
    seen: list[int] = []
    done = threading.Event()

    def write(store, part):
        for k in range(0, len(part), 25):
            store.add_many_seq(part[k : k + 25])

    def follow():
        cursor = 0
        while not done.is_set() or reader.last_stream_seq() > cursor:
            rows = reader.read_after(cursor, 500)
            seen.extend(r[0] for r in rows)
            if rows:
                cursor = rows[-1][0]

    try:
        threads = [
            threading.Thread(target=write, args=(a, events[0::2])),
            threading.Thread(target=write, args=(b, events[1::2])),
            # the same events resent to the other aggregator: stored once
            threading.Thread(target=write, args=(b, events[0:200])),
        ]
        follower = threading.Thread(target=follow)
        follower.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        follower.join()
        assert a.count() == (2000, 2000)
        # the follower saw every row exactly once: no row committed below one already read
        assert len(seen) == 2000 and len(set(seen)) == 2000 and seen == sorted(seen)
    finally:
        for s in (a, b, reader):
            s.close()


def test_pg_newer_schema_refused(dsn):
    from vigil.alerts.store.postgres import PG_SCHEMA_VERSION, PgEventStore

    PgEventStore(dsn).close()
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("INSERT INTO vigil_schema_version VALUES (%s, 'future')", (PG_SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="upgrade vigil"):
        PgEventStore(dsn)


def test_pg_aggregator_end_to_end_and_cli(dsn, make_event, running_aggregator, capsys):
    from vigil.alerts.cli import main
    from vigil.alerts.store.postgres import PgEventStore

    store = PgEventStore(dsn)
    events = [make_event() for _ in range(300)]
    try:
        with running_aggregator(store) as agg:
            with EventPublisher(agg.ingest_endpoint) as pub:
                pub.publish_many(events)
                pub.publish(events[0])
                assert pub.flush(10).complete
    finally:
        store.close()
    assert main(["events", "count", "--dsn", dsn, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"events": 300, "distinct_ids": 300}
    assert main(["events", "export", "--dsn", dsn, "--format", "jsonl"]) == 0
    assert [Event.from_json(x) for x in capsys.readouterr().out.splitlines()] == events


def test_pg_refusing_one_events_data_is_a_data_error(dsn, make_event):
    """Text PostgreSQL cannot hold (a NUL character) is the event's fault, not the database's:
    the writer splits the batch on such an error and commits the rest."""
    from vigil.alerts.store.postgres import PgEventStore

    good = make_event()
    bad = good.model_construct(**{**make_event().__dict__, "camera": "cam\x00"})  # around validation
    with PgEventStore(dsn) as store:
        with pytest.raises(StoreError) as info:
            store.add_many_seq([good, bad], [good.to_json(), bad.to_json()])
        assert info.value.data_error
        assert store.add_many_seq([good]) != [None] and store.count() == (1, 1)


def _terminate(dsn: str, pid: int) -> None:
    """End the server session ``pid`` and wait (up to 5 s) until it has ended (PostgreSQL >= 14)."""
    with psycopg.connect(dsn, autocommit=True) as db:
        ((ended,),) = db.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchall()
    assert ended


def test_pg_store_reconnects_after_the_server_dropped_its_connection(dsn, make_event):
    """A dropped connection (PostgreSQL restarted, failed over, an administrator ended the
    session) costs the one call that met it: a StoreError, nothing stored; the next reconnects."""
    from vigil.alerts.store.postgres import PgEventStore

    with PgEventStore(dsn) as store:
        store.add(make_event())
        _terminate(dsn, store._db.info.backend_pid)
        with pytest.raises(StoreError, match="terminating connection"):
            store.add(make_event())
        assert store.add(make_event()) and store.count() == (2, 2)
        _terminate(dsn, store._db.info.backend_pid)
        with pytest.raises(StoreError):
            store.last_stream_seq()
        assert store.last_stream_seq() > 0


def test_pg_aggregator_loses_nothing_when_its_connection_is_dropped(dsn, make_event, running_aggregator):
    from vigil.alerts.store.postgres import PgEventStore

    store = PgEventStore(dsn)
    events = [make_event() for _ in range(400)]
    try:
        with running_aggregator(store) as agg:
            with EventPublisher(agg.ingest_endpoint, timeout_s=0.5) as pub:
                pub.publish_many(events[:200])
                assert pub.flush(10).complete
                _terminate(dsn, store._db.info.backend_pid)  # the next batch meets a dead connection
                pub.publish_many(events[200:])
                report = pub.flush(20)
                assert report.complete, report
            assert agg.stats()["store_errors"] >= 1
    finally:
        store.close()
    with PgEventStore(dsn, readonly=True) as reader:
        assert reader.count() == (400, 400)
        assert [s.event.id for s in reader.iter_events()] == [e.id for e in events]
