"""Transit records: pseudonymisation, search, export, retention; aggregator recording; a list
hit reaching `vigil tail` before its transit ends."""

import csv
import io
import json
import sqlite3
import time

import pytest

from vigil.alerts.events import Event, utc_iso
from vigil.alerts.transits import TransitStore, load_key, pseudonym

KEY = b"k" * 32
DAY = 86400.0


@pytest.fixture
def store(tmp_path):
    with TransitStore(tmp_path / "events.db", key=KEY, retention_days=7) as s:
        yield s


def _transit(plate, t, hits=(), **kw):
    return {
        "camera": "gate-nord",
        "time": t,
        "plate": plate,
        "confidence": 0.93,
        "direction": "in",
        "vehicle_class": "car",
        "hits": list(hits),
        "evidence_id": "e" * 32 if hits else None,
        **kw,
    }


HIT = {"list": "A1", "list_name": "stolen", "plate": "AB123CD", "note": "", "exact": True}


def test_no_hit_transits_are_pseudonymised_and_still_searchable(store, tmp_path):
    now = time.time()
    store.add(_transit("EF 456 GH", now - 60))
    store.add(_transit("AB123CD", now - 30, hits=[HIT]))
    raw = (
        sqlite3.connect(tmp_path / "events.db")
        .execute("SELECT plate, plate_hash, evidence_id FROM transits ORDER BY ts")
        .fetchall()
    )
    assert raw[0][0] is None and raw[0][1] == pseudonym("EF456GH", KEY) and raw[0][2] is None
    assert raw[1][0] == "AB123CD" and raw[1][2] == "e" * 32
    dump = "\n".join(sqlite3.connect(tmp_path / "events.db").iterdump())
    assert "EF456GH" not in dump
    rows = store.search_plate("ef456gh")
    assert len(rows) == 1 and rows[0]["pseudonymised"] and rows[0]["plate"] is None
    assert rows[0]["direction"] == "in" and rows[0]["camera"] == "gate-nord"
    hit = store.search_plate("AB 123 CD")
    assert hit[0]["plate"] == "AB123CD" and hit[0]["hits"][0]["list"] == "A1"
    assert store.search_plate("EF456GH", since=now - 10) == []
    assert len(store.search_plate("EF456GH", since=utc_iso(now - 120), until=utc_iso(now))) == 1
    assert store.search_plate("") == [] and store.search_plate("ZZ999ZZ") == []
    # a different key cannot link the pseudonym
    with TransitStore(tmp_path / "events.db", key=b"x" * 32) as other:
        assert other.search_plate("EF456GH") == []


def test_duplicate_ids_are_stored_once(store):
    t = _transit("EF456GH", time.time(), id="t1")
    assert store.add(t) == "t1"
    assert store.add(t) is None
    assert store.count() == 1


def test_export_csv_and_json(store):
    now = time.time()
    store.add(_transit("EF456GH", now - 5))
    store.add(_transit("AB123CD", now, hits=[HIT]))
    buf = io.StringIO()
    assert store.export(buf, "csv") == 2
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert [r["plate"] for r in rows] == ["", "AB123CD"] and rows[1]["hits"] == "A1"
    buf = io.StringIO()
    store.export(buf, "json")
    data = json.loads(buf.getvalue())
    assert data[1]["hits"][0]["list"] == "A1" and data[0]["pseudonymised"] is True
    with pytest.raises(ValueError):
        store.export(io.StringIO(), "xml")


def test_retention_deletes_what_it_must_and_nothing_else(store):
    now = time.time()
    store.add(_transit("OLD1AA", now - 8 * DAY, id="old-nohit"))
    store.add(_transit("AB123CD", now - 30 * DAY, hits=[HIT], id="old-hit"))
    store.add(_transit("NEW1AA", now - 6 * DAY, id="recent-nohit"))
    store.add(_transit("NEW2AA", now, id="now-nohit"))
    assert store.purge(now) == 1
    assert sorted(r["id"] for r in store.all()) == ["now-nohit", "old-hit", "recent-nohit"]
    assert store.purge(now) == 0
    store.hit_retention_days = 60
    assert store.purge(now) == 0
    store.hit_retention_days = 10
    assert store.purge(now) == 1
    assert sorted(r["id"] for r in store.all()) == ["now-nohit", "recent-nohit"]


def test_key_from_env_and_key_file(tmp_path, monkeypatch):
    monkeypatch.delenv("VIGIL_PLATE_KEY", raising=False)
    path = tmp_path / "keys" / "plate.key"
    monkeypatch.setenv("VIGIL_PLATE_KEY_FILE", str(path))
    k1 = load_key()
    assert path.is_file() and (path.stat().st_mode & 0o777) == 0o600
    assert load_key() == k1
    monkeypatch.setenv("VIGIL_PLATE_KEY", "00ff" * 8)
    assert load_key() == bytes.fromhex("00ff" * 8)


def test_bad_transits_are_rejected(store):
    from vigil.alerts.transits import TransitError

    with pytest.raises(TransitError):
        store.add({"camera": "c", "plate": ""})
    with pytest.raises(TransitError):
        store.add({"camera": "c", "plate": "AB123CD", "time": "yesterday"})


def test_aggregator_records_transits_and_hit_reaches_tail_first(tmp_path, monkeypatch, running_aggregator, wait_until):
    """Edge plate pipeline → publisher → aggregator → tail: the hit alarm arrives while the
    vehicle is still in view, before the transit; the no-hit transit is stored pseudonymised."""
    import numpy as np

    from vigil.alerts.publisher import EventPublisher
    from vigil.alerts.store import EventStore
    from vigil.edge.config import PlatesConfig
    from vigil.edge.plates import PlatePipeline

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
                for spec in pipe.process(np.zeros((200, 400, 3), np.uint8), frame * 0.1):
                    seq += 1
                    pub.publish(
                        Event(
                            type=spec["type"],
                            camera="gate-nord",
                            seq=seq,
                            time=utc_iso(time.time()),
                            severity=spec["severity"],
                            state=spec["state"],
                            payload=spec["payload"],
                        )
                    )
            for spec in pipe.flush():
                seq += 1
                pub.publish(
                    Event(
                        type=spec["type"],
                        camera="gate-nord",
                        seq=seq,
                        time=utc_iso(time.time()),
                        severity=spec["severity"],
                        state=spec["state"],
                        payload=spec["payload"],
                    )
                )
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
    assert "plate" not in other["payload"] and other["payload"]["plate_hash"] == pseudonym("EF456GH", KEY)
    with TransitStore(db, key=KEY) as ts:
        assert [r["hits"][0]["list"] for r in ts.search_plate("AB123CD")] == ["A1"]
        rows = ts.search_plate("EF456GH")
        assert len(rows) == 1 and rows[0]["pseudonymised"]
    with EventStore(db, readonly=True) as es:
        buf = io.StringIO()
        es.export_jsonl(buf)
    assert "EF456GH" not in buf.getvalue()


class _ScriptedReader:
    """Stands in for PlateReader: frame index -> [(text, (cx, cy))]."""

    def __init__(self, script):
        self.script, self.frame = script, -1

    def read(self, image, roi=None):
        import numpy as np

        from vigil.detectors.plates.reader import PlateReading

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
