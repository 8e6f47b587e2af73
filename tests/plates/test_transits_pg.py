"""The PostgreSQL transit store against a real server on loopback (the ``dsn`` fixture of
tests/conftest.py): the same pseudonymisation, search, export, retention and duplicate rules as
the SQLite store, migrations, and ``vigil transits ... --dsn``."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from vigil.plates.cli import main
from vigil.plates.pseudonym import PlateKeyError, pseudonym, redact_event_payload
from vigil.plates.transits import (
    TRANSITS_SCHEMA_VERSION,
    PgTransitStore,
    TransitError,
    TransitStore,
    open_transit_store,
)

psycopg = pytest.importorskip("psycopg", reason="psycopg (PostgreSQL driver) not installed")

KEY = b"k" * 32
DAY = 86400.0
HIT = {"list": "A1", "list_name": "stolen", "plate": "AB123CD", "note": "", "exact": True}


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


def test_pg_transits_pseudonymised_searchable_and_idempotent(dsn):
    now = time.time()
    with open_transit_store(dsn=dsn, key=KEY) as store:
        assert isinstance(store, PgTransitStore) and "password" not in str(store.path)
        store.add(_transit("EF 456 GH", now - 60, id="t-nohit"))
        store.add(_transit("AB123CD", now - 30, hits=[HIT], id="t-hit"))
        assert store.add(_transit("EF456GH", now - 60, id="t-nohit")) is None  # same id: stored once
        assert store.count() == 2
        rows = store.search_plate("ef456gh")
        assert len(rows) == 1 and rows[0]["pseudonymised"] is True and rows[0]["plate"] is None
        assert rows[0]["direction"] == "in" and rows[0]["confidence"] == pytest.approx(0.93)
        hit = store.search_plate("AB 123 CD")
        assert hit[0]["plate"] == "AB123CD" and hit[0]["hits"][0]["list"] == "A1" and hit[0]["evidence_id"]
        assert store.search_plate("EF456GH", since=now - 10) == []
        assert len(store.search_plate("EF456GH", since=now - 120, until=now)) == 1
        assert [r["id"] for r in store.all()] == ["t-nohit", "t-hit"]
    with psycopg.connect(dsn) as db:
        raw = db.execute("SELECT plate, plate_hash, evidence_id FROM transits ORDER BY ts").fetchall()
        (version,) = db.execute("SELECT MAX(version) FROM vigil_transits_version").fetchone()
    assert raw[0] == (None, pseudonym("EF456GH", KEY), None) and raw[1][0] == "AB123CD"
    assert version == TRANSITS_SCHEMA_VERSION
    with PgTransitStore(dsn, key=b"x" * 32) as other:  # reopening does not migrate again
        assert other.count() == 2
        # another key is refused, not answered "not found" (one key per database)
        with pytest.raises(PlateKeyError, match="is not the key the transits in"):
            other.search_plate("EF456GH")


def test_pg_export_retention_and_events(dsn):
    now = time.time()
    with open_transit_store(dsn=dsn, key=KEY, retention_days=7) as store:
        store.add(_transit("OLD1AA", now - 8 * DAY, id="old-nohit"))
        store.add(_transit("AB123CD", now - 30 * DAY, hits=[HIT], id="old-hit"))
        store.add(_transit("NEW1AA", now - 6 * DAY, id="recent-nohit"))
        event = SimpleNamespace(
            id="ev-1",
            camera="gate-sud",
            time=datetime.fromtimestamp(now - 3600, timezone.utc).isoformat(),
            payload={"transit_id": "now-nohit", "plate": "NEW2AA", "confidence": 0.8, "hits": []},
        )
        assert store.add_event(event) == "now-nohit"  # any object with id, camera, time, payload
        buf = io.StringIO()
        assert store.export(buf, "csv") == 4
        rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
        assert [r["plate"] for r in rows] == ["AB123CD", "", "", ""] and rows[0]["hits"] == "A1"
        assert rows[3]["camera"] == "gate-sud" and rows[3]["event_id"] == "ev-1"
        assert store.purge(now) == 1
        assert sorted(r["id"] for r in store.all()) == ["now-nohit", "old-hit", "recent-nohit"]
        store.hit_retention_days = 10
        assert store.purge(now) == 1
        with pytest.raises(TransitError):
            store.add({"camera": "c", "plate": ""})
    assert "plate" not in redact_event_payload({"plate": "NEW2AA", "hits": []})


def test_pg_newer_schema_refused_and_bad_dsn(dsn):
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("CREATE TABLE vigil_transits_version (version integer PRIMARY KEY, applied_at text NOT NULL)")
        db.execute("INSERT INTO vigil_transits_version VALUES (99, 'later')")
    with pytest.raises(TransitError, match="schema 99"):
        open_transit_store(dsn=dsn, key=KEY)
    with pytest.raises(TransitError, match="cannot connect"):
        open_transit_store(dsn="host=127.0.0.1 port=1 user=vigil password=secret connect_timeout=2", key=KEY)
    with pytest.raises(TransitError, match="exactly one"):
        open_transit_store(key=KEY)
    with pytest.raises(TransitError, match="exactly one"):
        open_transit_store(sqlite_path="x.db", dsn=dsn, key=KEY)


def test_pg_and_sqlite_stores_answer_alike(dsn, tmp_path):
    now = time.time()
    items = [
        _transit("EF456GH", now - 50, id="b"),
        _transit("EF456GH", now - 50, id="a"),
        _transit("AB123CD", now - 20, hits=[HIT], id="c"),
    ]
    with open_transit_store(dsn=dsn, key=KEY) as pg, open_transit_store(sqlite_path=tmp_path / "t.db", key=KEY) as lite:
        assert isinstance(lite, TransitStore)
        for t in items:
            pg.add(t)
            lite.add(t)
        for plate in ("EF456GH", "AB123CD"):
            assert pg.search_plate(plate) == lite.search_plate(plate)
        assert pg.all() == lite.all() and [r["id"] for r in pg.all()] == ["a", "b", "c"]
        a, b = io.StringIO(), io.StringIO()
        pg.export(a, "json")
        lite.export(b, "json")
        assert json.loads(a.getvalue()) == json.loads(b.getvalue())


def test_transits_cli_on_postgresql(dsn, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIGIL_PLATE_KEY", KEY.hex())
    now = time.time()
    with open_transit_store(dsn=dsn) as store:
        store.add(_transit("EF456GH", now - 16 * DAY, id="old"))
        store.add(_transit("EF456GH", now - 60, id="new"))
    assert main(["transits", "search", "EF456GH", "--dsn", dsn, "--json"]) == 0
    assert [json.loads(x)["id"] for x in capsys.readouterr().out.splitlines()] == ["old", "new"]
    assert main(["transits", "purge", "--dsn", dsn]) == 0
    assert "1 transit(s) deleted" in capsys.readouterr().err
    out = tmp_path / "t.csv"
    assert main(["transits", "export", "--dsn", dsn, "-o", str(out)]) == 0
    assert "1 transit(s) exported" in capsys.readouterr().err
    assert [r["id"] for r in csv.DictReader(out.open())] == ["new"]
    assert main(["transits", "search", "EF456GH", "--dsn", dsn, "--db", str(tmp_path / "x.db")]) == 2
    assert "exactly one of --db PATH (SQLite) or --dsn/--dsn-file (PostgreSQL)" in capsys.readouterr().err
    bad = "host=127.0.0.1 port=1 user=vigil password=secret connect_timeout=2"
    # a password on the command line (where `ps` shows it) is refused before anything is tried
    assert main(["transits", "search", "EF456GH", "--dsn", bad]) == 2
    err = capsys.readouterr().err
    assert "--dsn holds a password" in err and "secret" not in err
    # from a DSN file (mode 0600) it is used, and never shown
    dsn_file = tmp_path / "pg.dsn"
    dsn_file.write_text(bad + "\n")
    dsn_file.chmod(0o644)
    assert main(["transits", "search", "EF456GH", "--dsn-file", str(dsn_file)]) == 2
    assert "has mode 0644" in capsys.readouterr().err
    dsn_file.chmod(0o600)
    assert main(["transits", "search", "EF456GH", "--dsn-file", str(dsn_file)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("vigil transits search: error: cannot connect to PostgreSQL") and "secret" not in err
