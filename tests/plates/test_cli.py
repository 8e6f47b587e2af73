"""``vigil transits ...`` on SQLite (the key: made only by ``keygen``, refused when missing
or short) and ``vigil watchlist check`` (``vigil plates read``: test_reader.py; ``--dsn``:
test_transits_pg.py)."""

from __future__ import annotations

import json
import time

from vigil.plates.cli import main
from vigil.plates.pseudonym import load_key
from vigil.plates.transits import TransitStore

KEY = b"k" * 32
HIT = {"list": "A1", "list_name": "stolen", "plate": "AB123CD", "note": "", "exact": True}


def test_transits_search_export_purge_on_sqlite(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIGIL_PLATE_KEY", KEY.hex())
    db = tmp_path / "events.db"
    now = time.time()
    with TransitStore(db) as store:
        store.add({"camera": "gate-nord", "time": now - 16 * 86400, "plate": "EF456GH", "id": "old"})
        store.add({"camera": "gate-nord", "time": now, "plate": "AB123CD", "hits": [HIT], "direction": "in"})
    assert main(["transits", "search", "ef 456 gh", "--db", str(db)]) == 0
    assert "EF456GH (pseudonymised)" in capsys.readouterr().out
    assert main(["transits", "search", "AB123CD", "--db", str(db)]) == 0
    line = capsys.readouterr().out.strip()
    assert "gate-nord  AB123CD  conf -  dir in  -  hits A1" in line
    assert main(["transits", "search", "ZZ999ZZ", "--db", str(db)]) == 0
    assert capsys.readouterr().err.strip() == "no transit of ZZ999ZZ"
    assert main(["transits", "export", "--db", str(db), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 2 and "2 transit(s) exported" in captured.err
    assert main(["transits", "purge", "--db", str(db)]) == 0
    assert "1 transit(s) deleted, 0 event copies of plates deleted" in capsys.readouterr().err
    assert main(["transits", "search", "EF456GH", "--db", str(db), "--since", "yesterday"]) == 1
    assert "bad time 'yesterday'" in capsys.readouterr().err
    assert main(["transits", "search", "EF456GH"]) == 2
    assert "give exactly one of --db PATH (SQLite) or --dsn/--dsn-file (PostgreSQL)" in capsys.readouterr().err


def test_keygen_then_search_with_that_key_and_no_other(tmp_path, monkeypatch, capsys):
    """A key exists only through ``keygen``; a mistyped ``--key-file`` is an error (exit 2,
    the file named), never a new key under which a stored plate reads as "no transit"."""
    monkeypatch.delenv("VIGIL_PLATE_KEY", raising=False)
    monkeypatch.delenv("VIGIL_PLATE_KEY_FILE", raising=False)
    key = tmp_path / "secrets" / "plate.key"
    assert main(["transits", "keygen", "--key-file", str(key)]) == 0
    assert f"written to {key} (mode 0600)" in capsys.readouterr().err
    assert (key.stat().st_mode & 0o777) == 0o600
    first = key.read_bytes()
    assert main(["transits", "keygen", "--key-file", str(key)]) == 2
    assert f"plate key file {key} already exists: not replaced" in capsys.readouterr().err
    assert key.read_bytes() == first
    db = tmp_path / "events.db"
    with TransitStore(db, key_file=key) as store:
        store.add({"camera": "gate-nord", "time": time.time(), "plate": "EF456GH"})
    assert main(["transits", "search", "EF456GH", "--db", str(db), "--key-file", str(key)]) == 0
    assert "EF456GH (pseudonymised)" in capsys.readouterr().out
    typo = tmp_path / "secrets" / "plate.kye"
    assert main(["transits", "search", "EF456GH", "--db", str(db), "--key-file", str(typo)]) == 2
    err = capsys.readouterr().err
    assert f"plate key file {typo} does not exist" in err and "no transit" not in err
    assert not typo.exists()
    short = tmp_path / "short.key"
    short.write_text("k" * 31)
    short.chmod(0o600)
    assert main(["transits", "search", "EF456GH", "--db", str(db), "--key-file", str(short)]) == 2
    assert f"plate key file {short}: too short (31 bytes" in capsys.readouterr().err
    # export and purge read no key: they work without one
    assert main(["transits", "export", "--db", str(db), "--key-file", str(typo)]) == 0
    assert "1 transit(s) exported" in capsys.readouterr().err


def test_keygen_default_path_is_the_one_load_key_reads(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("VIGIL_PLATE_KEY", raising=False)
    monkeypatch.delenv("VIGIL_PLATE_KEY_FILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert main(["transits", "keygen"]) == 0
    path = tmp_path / "config" / "vigil" / "plate-hmac.key"
    assert path.is_file() and (path.stat().st_mode & 0o777) == 0o600
    assert load_key() == path.read_bytes().strip()


def test_watchlist_check_reports_bad_rows(tmp_path, capsys):
    good = tmp_path / "a1.csv"
    good.write_text("plate,list\nAB123CD,A1\n")
    assert main(["watchlist", "check", str(good)]) == 0
    assert capsys.readouterr().out.strip() == "1 entries loaded, 0 problem(s)"
    bad = tmp_path / "bad.csv"
    bad.write_text("AB123CD,A1\nXY,A1\n")
    assert main(["watchlist", "check", str(good), str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{bad}:2: plate 'XY'") and out[-1] == "2 entries loaded, 1 problem(s)"
