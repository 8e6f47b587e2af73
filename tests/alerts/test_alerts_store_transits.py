"""Each event store opens the plate transit store on its own database, and :func:`open_store`
picks the backend; the aggregator takes its transit store from the event store, so with
``--dsn`` nothing lands in a SQLite file named after the connection string. The transit purge
deletes every copy of a purged pass in the events tables, on both backends."""

from __future__ import annotations

import io
import json
import time

import pytest

from vigil.alerts.events import utc_iso
from vigil.alerts.publisher import EventPublisher
from vigil.alerts.store import EventStore, PgEventStore, StoreError, open_store
from vigil.plates.pseudonym import pseudonym
from vigil.plates.transits import PgTransitStore, Purged, TransitStore, open_transit_store

KEY = b"k" * 32
DAY = 86400.0
HIT = {
    "list": "A1",
    "list_name": "stolen",
    "plate": "AB123CD",
    "note": "",
    "exact": True,
    "source": "a1.csv",
    "line": 1,
}


def test_open_store_needs_exactly_one_of_db_and_dsn(tmp_path):
    with pytest.raises(StoreError, match="exactly one of --db PATH or --dsn DSN"):
        open_store()
    with pytest.raises(StoreError, match="exactly one"):
        open_store(db=tmp_path / "e.db", dsn="host=127.0.0.1")
    with open_store(db=tmp_path / "e.db") as store:
        assert isinstance(store, EventStore) and not store.readonly
    with open_store(db=tmp_path / "e.db", readonly=True) as store:
        assert store.readonly


def test_sqlite_store_opens_transits_in_its_own_file(tmp_path):
    with EventStore(tmp_path / "e.db") as store:
        transits = store.open_transits(key=KEY)
        try:
            assert isinstance(transits, TransitStore) and transits.path == tmp_path / "e.db"
        finally:
            transits.close()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("e.db-")) == ["e.db"]


def test_aggregator_on_postgres_records_transits_there(
    dsn, make_event, running_aggregator, tmp_path, monkeypatch, wait_until
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIGIL_PLATE_KEY", KEY.hex())
    store = open_store(dsn=dsn)
    assert isinstance(store, PgEventStore) and store.dsn == dsn
    event = make_event(type="plate_transit")
    try:
        with running_aggregator(store) as agg:
            with EventPublisher(agg.ingest_endpoint) as pub:
                pub.publish(event)
                assert pub.flush(10).complete
            assert agg.stats()["stored"] == 1
    finally:
        store.close()
    assert list(tmp_path.iterdir()) == []  # no SQLite file named like the DSN
    with open_transit_store(dsn=dsn, key=KEY) as transits:
        assert isinstance(transits, PgTransitStore)
        assert transits.count() == 1
    with open_store(dsn=dsn, readonly=True) as reader:
        assert reader.count() == (1, 1)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_purge_deletes_the_event_copies_of_every_purged_transit(backend, request, tmp_path, make_event):
    """The transit rows and, in the same database, their ``plate_transit`` / ``plate_hit``
    events, old plate events with no transit row (stored before the purge covered them), and
    the conflicting copies kept aside; nothing else."""
    if backend == "sqlite":
        store = open_store(db=tmp_path / "events.db")
    else:
        store = open_store(dsn=request.getfixturevalue("dsn"))
    now = time.time()

    def at(days, type, **payload):
        return make_event(camera="gate", type=type, time=utc_iso(now - days * DAY), payload=payload)

    old = at(8, "plate_transit", plate="EF456GH", votes={"EF456GH": 2.0})
    legacy = {**old.payload, "plate_hash": pseudonym("EF456GH", KEY)}  # as stored before the fix
    orphan = at(9, "plate_transit", plate="GH789JK", votes={"GH789JK": 2.0})  # fail-open era: no row
    recent = at(1, "plate_transit", plate="KL012MN", votes={"KL012MN": 2.0})
    hit = at(30, "plate_hit", plate="AB123CD", hits=[HIT], lists=["A1"])
    tid = hit.payload["transit_id"]
    hit_end = at(30, "plate_transit", plate="AB123CD", votes={"AB123CD": 2.0}, hits=[HIT], transit_id=tid)
    rule = at(30, "distance_violation")
    try:
        with store.open_transits(key=KEY, retention_days=7) as transits:
            for event in (old, recent, hit_end):
                transits.add_event(event)
            store.add(old.model_copy(update={"payload": legacy}))
            store.add(old)  # the same id resent with other content: kept aside in event_conflicts
            for event in (orphan, recent, hit, hit_end, rule):
                store.add(event)
            assert len(store.conflicts()) == 1
            assert transits.purge_all(now) == Purged(transits=1, events=3)
            assert _stored_ids(store) == sorted([recent.id, hit.id, hit_end.id, rule.id])
            assert store.conflicts() == []
            assert transits.purge_all(now) == Purged(0, 0)
            transits.hit_retention_days = 10
            assert transits.purge(now) == 1
            assert _stored_ids(store) == sorted([recent.id, rule.id])
            assert [r["id"] for r in transits.all()] == [recent.payload["transit_id"]]
        text = _export(store)
        for plate in ("EF456GH", "GH789JK", "AB123CD", pseudonym("EF456GH", KEY)):
            assert plate not in text
    finally:
        store.close()


def test_purge_of_a_transit_file_without_events_tables(tmp_path):
    with TransitStore(tmp_path / "transits.db", key=KEY) as transits:
        transits.add({"camera": "gate", "time": time.time() - 8 * DAY, "plate": "EF456GH"})
        assert transits.purge_all() == Purged(1, 0)


def _stored_ids(store) -> list[str]:
    return sorted(json.loads(line)["id"] for line in _export(store).splitlines())


def _export(store) -> str:
    buf = io.StringIO()
    store.export_jsonl(buf)
    return buf.getvalue()
