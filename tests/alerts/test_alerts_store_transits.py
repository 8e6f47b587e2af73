"""Each event store opens the plate transit store on its own database, and :func:`open_store`
picks the backend; the aggregator takes its transit store from the event store, so with
``--dsn`` nothing lands in a SQLite file named after the connection string."""

from __future__ import annotations

import pytest

from vigil.alerts.publisher import EventPublisher
from vigil.alerts.store import EventStore, PgEventStore, StoreError, open_store
from vigil.plates.transits import PgTransitStore, TransitStore, open_transit_store

KEY = b"k" * 32


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
