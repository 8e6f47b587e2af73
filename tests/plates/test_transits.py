"""Transit records (SQLite store): pseudonymisation, search, export, retention, keys (failing
closed: never created on the fly, refused when missing, unreadable or short), the redaction of
a no-hit event. The same rules on PostgreSQL: test_transits_pg.py; recording at the aggregator:
tests/alerts/test_alerts_transits.py; purging the events' copies:
tests/alerts/test_alerts_store_transits.py."""

import csv
import io
import json
import sqlite3
import time

import pytest

from vigil.alerts.events import utc_iso
from vigil.errors import UserError
from vigil.plates.pseudonym import (
    MIN_KEY_BYTES,
    PLATE_FIELDS,
    PlateKeyError,
    create_key,
    load_key,
    pseudonym,
    redact_event_payload,
)
from vigil.plates.transits import TransitError, TransitStore

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
    # a different key cannot link the pseudonym, and is refused rather than answering "not found"
    with TransitStore(tmp_path / "events.db", key=b"x" * 32) as other:
        with pytest.raises(PlateKeyError, match="is not the key the transits in .* were pseudonymised with"):
            other.search_plate("EF456GH")
        with pytest.raises(PlateKeyError):
            other.add(_transit("GH789JK", now))
    assert len(store.search_plate("EF456GH")) == 1  # nothing was written with the other key


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


@pytest.fixture
def no_env_key(monkeypatch):
    monkeypatch.delenv("VIGIL_PLATE_KEY", raising=False)
    monkeypatch.delenv("VIGIL_PLATE_KEY_FILE", raising=False)


def test_key_from_env_and_key_file(tmp_path, monkeypatch, no_env_key):
    path = tmp_path / "keys" / "plate.key"
    monkeypatch.setenv("VIGIL_PLATE_KEY_FILE", str(path))
    assert create_key() == path
    assert (path.stat().st_mode & 0o777) == 0o600 and (path.parent.stat().st_mode & 0o777) == 0o700
    k1 = load_key()
    assert len(k1) == 64 and load_key() == k1 == path.read_bytes().strip()
    monkeypatch.setenv("VIGIL_PLATE_KEY", "00ff" * 16)
    assert load_key() == bytes.fromhex("00ff" * 16)
    assert load_key(key_file=path) == k1  # a file named explicitly beats the environment's key
    assert load_key(b"x" * MIN_KEY_BYTES) == b"x" * MIN_KEY_BYTES


def test_a_missing_key_is_refused_and_never_created(tmp_path, monkeypatch, no_env_key):
    """A mistyped key path must not make a new key (whose searches find nothing stored)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    missing = tmp_path / "keys" / "plate.kye"
    with pytest.raises(PlateKeyError, match=f"plate key file {missing} does not exist.*vigil transits keygen"):
        load_key(key_file=missing)
    with pytest.raises(PlateKeyError, match="plate-hmac.key does not exist"):
        load_key()  # the default file: refused too
    assert not missing.exists() and not missing.parent.exists() and not (tmp_path / "config").exists()
    with TransitStore(tmp_path / "events.db", key_file=missing) as store:
        for hits in ([], [HIT]):
            with pytest.raises(PlateKeyError, match="does not exist"):
                store.add(_transit("EF456GH", time.time(), hits=hits))
        with pytest.raises(PlateKeyError, match="does not exist"):
            store.search_plate("EF456GH")  # not "no transit": the plate may well be stored
        assert store.count() == 0
    assert not missing.exists()


@pytest.mark.parametrize("content", [b"", b"k" * (MIN_KEY_BYTES - 1), b"  " + b"k" * 20 + b"\n\n"])
def test_a_short_key_file_is_refused_naming_the_file(tmp_path, no_env_key, content):
    path = tmp_path / "plate.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(PlateKeyError, match=f"plate key file {path}: too short .*need at least {MIN_KEY_BYTES}"):
        load_key(key_file=path)
    with TransitStore(tmp_path / "events.db", key_file=path) as store:
        with pytest.raises(PlateKeyError, match="too short"):
            store.add(_transit("EF456GH", time.time()))
        assert store.count() == 0


def test_short_keys_from_the_environment_or_the_caller_are_refused(monkeypatch, no_env_key):
    monkeypatch.setenv("VIGIL_PLATE_KEY", "00ff" * 8)  # 8 bytes of hex
    with pytest.raises(PlateKeyError, match="VIGIL_PLATE_KEY: too short"):
        load_key()
    monkeypatch.setenv("VIGIL_PLATE_KEY", "short text key")
    with pytest.raises(PlateKeyError, match="too short"):
        load_key()
    for key in (b"", "", b"k" * (MIN_KEY_BYTES - 1)):
        with pytest.raises(PlateKeyError, match="the plate key given: too short"):
            load_key(key)


def test_an_unreadable_key_file_is_refused(tmp_path, no_env_key):
    folder = tmp_path / "plate.key"
    folder.mkdir()  # (as root, a 000 file is still readable: a folder is not)
    with pytest.raises(PlateKeyError, match=f"plate key file {folder} is not a regular file"):
        load_key(key_file=folder)


def test_a_key_file_others_can_read_is_refused_and_nothing_stored(tmp_path, no_env_key):
    """With the key, every pseudonym can be undone by trying each plate: a key file its group or
    others may read is refused (not warned about), naming the file and the fix."""
    path = create_key(tmp_path / "plate.key")
    key = load_key(key_file=path)
    for mode in (0o644, 0o640, 0o604, 0o660):
        path.chmod(mode)
        with pytest.raises(PlateKeyError, match=rf"plate key file {path} has mode {mode:04o}: .*\(chmod 600 {path}\)"):
            load_key(key_file=path)
        with TransitStore(tmp_path / "events.db", key_file=path) as store:
            with pytest.raises(PlateKeyError, match="has mode"):
                store.add(_transit("EF456GH", time.time()))
            assert store.count() == 0
    path.chmod(0o400)  # read-only for its owner is fine
    assert load_key(key_file=path) == key


def test_key_errors_are_user_errors_and_transit_errors():
    assert issubclass(PlateKeyError, UserError) and issubclass(PlateKeyError, TransitError)


def test_create_key_writes_0600_and_never_replaces_a_key(tmp_path, no_env_key):
    path = tmp_path / "plate.key"
    assert create_key(path) == path
    first = path.read_bytes()
    assert (path.stat().st_mode & 0o777) == 0o600 and len(first.strip()) == 64
    bytes.fromhex(first.strip().decode())  # 32 random bytes as hex
    with pytest.raises(PlateKeyError, match=f"plate key file {path} already exists: not replaced"):
        create_key(path)
    assert path.read_bytes() == first
    other = create_key(tmp_path / "other.key")
    assert other.read_bytes() != first


def test_a_no_hit_event_payload_keeps_no_copy_of_the_plate():
    payload = {
        "transit_id": "t",
        "plate": "EF456GH",
        "plate_hash": "ab" * 32,
        "votes": {"EF456GH": 2.0, "EF4S6GH": 0.5},
        "raw_readings": ["EF456GH"],
        "evidence_id": "e" * 32,
        "hits": [],
        "direction": "in",
        "confidence": 0.9,
    }
    out = redact_event_payload(payload)
    assert not set(PLATE_FIELDS) & set(out)
    assert out == {"transit_id": "t", "hits": [], "direction": "in", "confidence": 0.9}
    assert "EF456GH" not in json.dumps(out) and "EF4S6GH" not in json.dumps(out)
    assert payload["plate"] == "EF456GH"  # the caller's payload is not changed
    # no plate but still its readings (an odd sender): those go too
    assert redact_event_payload({"plate": None, "votes": {"EF456GH": 1.0}, "hits": []}) == {"hits": []}
    hit = {**payload, "hits": [HIT]}
    assert redact_event_payload(hit) is hit  # a list hit keeps its plate


def test_bad_transits_are_rejected(store):
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
    assert version == [(2,)]  # adopted as 1, then migrated (the key check table)
    sqlite3.connect(db).execute("UPDATE transits_version SET version = 9").connection.commit()
    with pytest.raises(TransitError, match="schema 9"):
        TransitStore(db, key=KEY)


def test_without_a_usable_key_nothing_is_stored(tmp_path, monkeypatch):
    """Fail closed: the pseudonym is computed before the row is written."""
    monkeypatch.delenv("VIGIL_PLATE_KEY", raising=False)
    short = tmp_path / "short.key"
    short.write_text("tooshort")
    short.chmod(0o600)
    monkeypatch.setenv("VIGIL_PLATE_KEY_FILE", str(short))
    with TransitStore(tmp_path / "events.db") as store:
        for hits in ([], [HIT]):
            with pytest.raises(TransitError, match="too short"):
                store.add(_transit("EF456GH", time.time(), hits=hits))
        assert store.count() == 0
