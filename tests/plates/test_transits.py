"""Transit records (SQLite store): pseudonymisation, search, export, retention, keys.
The same rules on PostgreSQL: test_transits_pg.py; recording at the aggregator:
tests/alerts/test_alerts_transits.py."""

import csv
import io
import json
import sqlite3
import time

import pytest

from vigil.alerts.events import utc_iso
from vigil.plates.transits import TransitStore, load_key, pseudonym

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
    from vigil.plates.transits import TransitError

    with pytest.raises(TransitError):
        store.add({"camera": "c", "plate": ""})
    with pytest.raises(TransitError):
        store.add({"camera": "c", "plate": "AB123CD", "time": "yesterday"})


def test_a_file_from_before_the_version_table_opens_and_keeps_its_rows(tmp_path):
    """Transit tables written before ``transits_version`` existed are adopted as version 1."""
    db = tmp_path / "events.db"
    old = sqlite3.connect(db)
    old.executescript(
        """
        CREATE TABLE transits (id TEXT PRIMARY KEY, ts REAL NOT NULL, time TEXT NOT NULL, camera TEXT NOT NULL,
            plate TEXT, plate_hash TEXT NOT NULL, pseudonymised INTEGER NOT NULL, confidence REAL, direction TEXT,
            vehicle_class TEXT, hits TEXT NOT NULL DEFAULT '[]', evidence_id TEXT, event_id TEXT, kind TEXT,
            country TEXT);
        CREATE INDEX transits_hash_ts ON transits (plate_hash, ts);
        CREATE INDEX transits_ts ON transits (ts);
        """
    )
    old.execute(
        "INSERT INTO transits (id, ts, time, camera, plate_hash, pseudonymised) VALUES (?, ?, ?, ?, ?, 1)",
        ("t0", 1.0e9, "2001-09-09T01:46:40.000Z", "gate", pseudonym("EF456GH", KEY)),
    )
    old.commit()
    old.close()
    with TransitStore(db, key=KEY) as store:
        assert [r["id"] for r in store.search_plate("EF456GH")] == ["t0"]
    version = sqlite3.connect(db).execute("SELECT version FROM transits_version").fetchall()
    assert version == [(1,)]
    sqlite3.connect(db).execute("UPDATE transits_version SET version = 9").connection.commit()
    from vigil.plates.transits import TransitError

    with pytest.raises(TransitError, match="schema 9"):
        TransitStore(db, key=KEY)


def test_without_a_usable_key_nothing_is_stored(tmp_path, monkeypatch):
    """Fail closed: the pseudonym is computed before the row is written."""
    monkeypatch.delenv("VIGIL_PLATE_KEY", raising=False)
    short = tmp_path / "short.key"
    short.write_text("tooshort")
    monkeypatch.setenv("VIGIL_PLATE_KEY_FILE", str(short))
    from vigil.plates.transits import TransitError

    with TransitStore(tmp_path / "events.db") as store:
        for hits in ([], [HIT]):
            with pytest.raises(TransitError, match="too short"):
                store.add(_transit("EF456GH", time.time(), hits=hits))
        assert store.count() == 0
