"""Transit recording at the aggregator: a list hit reaching `vigil tail` before its transit
ends, the no-hit transit stored pseudonymised, and privacy failing closed: without a usable key
or transit store a no-hit transit is refused, nothing of its plate stored (the store itself:
tests/plates/test_transits.py)."""

import io
import json
import sqlite3
import time

import pytest

from vigil.alerts.aggregator.plate_transits import PlateRefused, PlateTransits
from vigil.alerts.events import event_from_change, utc_iso
from vigil.alerts.publisher import EventPublisher
from vigil.alerts.store import EventStore
from vigil.plates.pseudonym import PLATE_FIELDS, create_key, pseudonym
from vigil.plates.transits import TransitStore

KEY = b"k" * 32


def test_aggregator_records_transits_and_hit_reaches_tail_first(tmp_path, monkeypatch, running_aggregator, wait_until):
    """Edge plate pipeline → publisher → aggregator → tail: the hit alarm arrives while the
    vehicle is still in view, before the transit; the no-hit transit is stored pseudonymised."""
    import numpy as np

    from vigil.edge.config_parts import PlatesConfig
    from vigil.plates.pipeline import PlatePipeline

    from .test_alerts_pipeline import TailThread

    monkeypatch.setenv("VIGIL_PLATE_KEY", KEY.hex())
    lists = tmp_path / "a1.csv"
    lists.write_text("AB123CD,A1,stolen\n")
    cfg = PlatesConfig(
        enabled=True,
        mode="gate",
        watchlists=[lists],
        min_readings=2,
        close_after_s=0.5,
        evidence_dir=tmp_path / "evidence",
        line=[[0, 100], [400, 100]],
        queue_size=0,
    )
    reader = _ScriptedReader(
        {
            0: [("AB123CD", (100, 150))],
            1: [("A8123CD", (100, 120))],
            2: [("AB123CD", (100, 90))],
            3: [("AB123CD", (100, 60))],
            10: [("EF456GH", (300, 150))],
            11: [("EF456GH", (300, 140))],
        }
    )
    pipe = PlatePipeline(cfg, "gate-nord", reader=reader)
    db = tmp_path / "events.db"
    with running_aggregator(db) as agg:
        t = TailThread(agg.stream_endpoint, as_json=True, max_events=3)
        assert wait_until(lambda: agg.stats()["subscriptions"] >= 1)
        seq = 0
        with EventPublisher(agg.ingest_endpoint, timeout_s=1.0) as pub:
            for frame in range(20):
                for change in pipe.process(np.zeros((200, 400, 3), np.uint8), frame * 0.1):
                    seq += 1
                    pub.publish(
                        event_from_change(change, camera="gate-nord", seq=seq, time=utc_iso(time.time()), frame=frame)
                    )
            for change in pipe.flush():
                seq += 1
                pub.publish(event_from_change(change, camera="gate-nord", seq=seq, time=utc_iso(time.time()), frame=19))
            assert pub.flush(5).complete
        lines = [json.loads(x) for x in t.join()]
    assert [(e["type"], e["severity"]) for e in lines] == [
        ("plate_hit", "critical"),
        ("plate_transit", "critical"),
        ("plate_transit", "info"),
    ]
    hit, transit, other = lines
    assert hit["payload"]["plate"] == "AB123CD" and hit["payload"]["lists"] == ["A1"]
    assert hit["payload"]["evidence_id"] and (tmp_path / "evidence" / f"{hit['payload']['evidence_id']}.jpg").is_file()
    assert transit["payload"]["transit_id"] == hit["payload"]["transit_id"]
    assert transit["payload"]["direction"] == "in" and transit["payload"]["readings"] == 4
    assert not set(PLATE_FIELDS) & set(other["payload"])  # no plate, pseudonym, votes: nothing to follow
    with TransitStore(db, key=KEY) as ts:
        assert [r["hits"][0]["list"] for r in ts.search_plate("AB123CD")] == ["A1"]
        rows = ts.search_plate("EF456GH")
        assert len(rows) == 1 and rows[0]["pseudonymised"]
        assert rows[0]["id"] == other["payload"]["transit_id"]  # the event links to its row
    with EventStore(db, readonly=True) as es:
        buf = io.StringIO()
        es.export_jsonl(buf)
    assert "EF456GH" not in buf.getvalue() and pseudonym("EF456GH", KEY) not in buf.getvalue()


HIT = {
    "list": "A1",
    "list_name": "stolen",
    "plate": "AB123CD",
    "note": "",
    "exact": True,
    "source": "a1.csv",
    "line": 1,
}


@pytest.fixture
def no_key(tmp_path, monkeypatch):
    """The path of a key file that does not exist, where the aggregator looks for its key."""
    monkeypatch.delenv("VIGIL_PLATE_KEY", raising=False)
    path = tmp_path / "keys" / "plate.key"
    monkeypatch.setenv("VIGIL_PLATE_KEY_FILE", str(path))
    return path


def _plate_rows(db) -> list[str]:
    """Every text of the database's events and transits tables."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [repr(row) for t in tables if t in ("events", "transits") for row in con.execute(f"SELECT * FROM {t}")]
    finally:
        con.close()


@pytest.mark.parametrize("key_content", [None, b"k" * 31], ids=["missing", "short"])
def test_without_a_usable_key_a_no_hit_transit_is_refused_and_nothing_of_it_stored(
    tmp_path, no_key, make_event, key_content
):
    if key_content is not None:
        no_key.parent.mkdir()
        no_key.write_bytes(key_content)
        no_key.chmod(0o600)
    db = tmp_path / "events.db"
    with EventStore(db) as store:
        transits = PlateTransits(store)
        assert str(no_key) in transits.key_problem()
        event = make_event(camera="gate", type="plate_transit", payload={"plate": "EF456GH", "votes": {"EF456GH": 2.0}})
        with pytest.raises(PlateRefused, match=f"not recorded, so not stored.*plate key file {no_key}") as info:
            transits.record(event)
        assert info.value.reason == str(info.value)
        # a list hit keeps its clear plate by right: stored even without its transit record
        hit = make_event(camera="gate", type="plate_transit", payload={"hits": [HIT]})
        assert transits.record(hit) is hit
        transits.close()
    assert key_content is not None or not no_key.exists()  # never created on the fly
    assert not any("EF456GH" in row for row in _plate_rows(db))


def test_the_key_is_picked_up_once_fixed_without_a_restart(tmp_path, no_key, make_event):
    with EventStore(tmp_path / "events.db") as store:
        transits = PlateTransits(store)
        with pytest.raises(PlateRefused):
            transits.record(make_event(camera="gate", type="plate_transit"))
        create_key(no_key)
        assert transits.key_problem() is None
        event = make_event(camera="gate", type="plate_transit", payload={"plate": "EF456GH"})
        stored = transits.record(event)
        assert stored.id == event.id and stored.payload["transit_id"] == event.payload["transit_id"]
        assert not set(PLATE_FIELDS) & set(stored.payload)
        assert event.payload["plate"] == "EF456GH"  # the caller's event is not changed
        transits.close()


def test_an_explicit_key_file_is_the_one_used(tmp_path, monkeypatch, make_event):
    monkeypatch.setenv("VIGIL_PLATE_KEY", KEY.hex())  # usable, but not the file named
    key = tmp_path / "plate.key"
    with EventStore(tmp_path / "events.db") as store:
        transits = PlateTransits(store, key_file=key)
        assert str(key) in transits.key_problem()
        with pytest.raises(PlateRefused, match=f"plate key file {key} does not exist"):
            transits.record(make_event(camera="gate", type="plate_transit"))
        create_key(key)
        event = make_event(camera="gate", type="plate_transit", payload={"plate": "EF456GH"})
        transits.record(event)
        transits.close()
        with TransitStore(tmp_path / "events.db", key_file=key) as ts:
            assert [r["id"] for r in ts.search_plate("EF456GH")] == [event.payload["transit_id"]]


def test_a_transit_store_that_cannot_be_opened_refuses_no_hit_transits(tmp_path, monkeypatch, make_event):
    monkeypatch.setenv("VIGIL_PLATE_KEY", KEY.hex())
    db = tmp_path / "events.db"
    with EventStore(db) as store:
        TransitStore(db, key=KEY).close()
        con = sqlite3.connect(db)
        con.execute("UPDATE transits_version SET version = 99")  # written by a newer build
        con.commit()
        con.close()
        transits = PlateTransits(store)
        with pytest.raises(PlateRefused, match="schema 99"):
            transits.record(make_event(camera="gate", type="plate_transit"))
        hit = make_event(camera="gate", type="plate_transit", payload={"hits": [HIT]})
        assert transits.record(hit) is hit
        transits.close()


def test_a_plate_hit_without_a_list_hit_is_refused(tmp_path, monkeypatch, make_event):
    monkeypatch.setenv("VIGIL_PLATE_KEY", KEY.hex())
    with EventStore(tmp_path / "events.db") as store:
        transits = PlateTransits(store)
        with pytest.raises(PlateRefused, match="plate_hit without a watch-list hit"):
            transits.record(make_event(camera="gate", type="plate_hit", payload={"hits": []}))
        hit = make_event(camera="gate", type="plate_hit", payload={"hits": [HIT], "lists": ["A1"]})
        assert transits.record(hit) is hit
        other = make_event(camera="gate")
        assert transits.record(other) is other
        transits.close()


def test_the_aggregator_refuses_a_no_hit_transit_without_a_key(tmp_path, no_key, make_event, running_aggregator):
    """End to end: nacked with the reason (the publisher counts it rejected), not stored, not
    streamed; a list hit on the same connection is stored; once the key exists (no restart)
    the next transit is stored, without any copy of its plate."""
    db = tmp_path / "events.db"
    transit = make_event(camera="gate", type="plate_transit", seq=1, payload={"plate": "EF456GH"})
    hit = make_event(camera="gate", type="plate_transit", seq=2, payload={"hits": [HIT]})
    later = make_event(camera="gate", type="plate_transit", seq=3, payload={"plate": "ZZ999ZZ"})
    with running_aggregator(db) as agg:
        with EventPublisher(agg.ingest_endpoint, timeout_s=1.0) as pub:
            pub.publish(transit)
            pub.publish(hit)
            report = pub.flush(10)
            assert (report.acknowledged, report.rejected, report.pending) == (1, 1, 0)
            assert not no_key.exists()  # never created on the fly
            create_key(no_key)
            pub.publish(later)
            report = pub.flush(10)
        stats = agg.stats()
    assert (report.acknowledged, report.rejected, report.pending) == (2, 1, 0)
    assert stats["rejected"] == 1 and stats["stored"] == 2
    with EventStore(db, readonly=True) as es:
        buf = io.StringIO()
        es.export_jsonl(buf)
    stored = {e["id"]: e for e in map(json.loads, buf.getvalue().splitlines())}
    assert set(stored) == {hit.id, later.id}
    assert not set(PLATE_FIELDS) & set(stored[later.id]["payload"])
    rows = _plate_rows(db)
    assert not any("EF456GH" in row or "ZZ999ZZ" in row for row in rows)  # the transit row keeps a pseudonym


class _ScriptedReader:
    """Stands in for PlateReader: frame index -> [(text, (cx, cy))]."""

    def __init__(self, script):
        self.script, self.frame = script, -1

    def read(self, image, roi=None):
        import numpy as np

        from vigil.plates.reader import PlateReading

        self.frame += 1
        out = []
        for text, (cx, cy) in self.script.get(self.frame, []):
            out.append(
                PlateReading(
                    text,
                    0.9,
                    (cx - 40, cy - 10, cx + 40, cy + 10),
                    "car",
                    "IT",
                    text,
                    np.full((20, 80, 3), 200, np.uint8),
                )
            )
        return out


def test_a_dropped_transit_connection_is_reopened_and_the_transit_recorded(dsn, monkeypatch, make_event):
    """PostgreSQL restarted or failed over: the transit that meets the dead connection is
    recorded through a new one, not refused (a refusal is final)."""
    import psycopg

    from vigil.alerts.store import PgEventStore

    monkeypatch.setenv("VIGIL_PLATE_KEY", KEY.hex())
    with PgEventStore(dsn) as store:
        transits = PlateTransits(store)
        transits.record(make_event(camera="gate", type="plate_transit"))
        pid = transits._transits._db.info.backend_pid
        with psycopg.connect(dsn, autocommit=True) as db:
            assert db.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0]
        stored = transits.record(make_event(camera="gate", type="plate_transit"))
        assert "plate" not in stored.payload  # recorded, so stored without its plate
        assert transits._transits.count() == 2
        transits.close()
