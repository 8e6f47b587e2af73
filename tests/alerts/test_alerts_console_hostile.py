"""The console against hostile input: stored events of any shape (written by an older build or
straight into the database), odd time forms on ``/transits``, forged forwarded headers, login
spraying, stale sessions after a password change, and keyed plate pseudonyms."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid

import pytest

pytest.importorskip("jinja2")

from starlette.testclient import TestClient  # noqa: E402

from vigil.alerts.console.app import create_app  # noqa: E402
from vigil.alerts.console.context import LoginThrottle  # noqa: E402
from vigil.alerts.console.db import ConsoleDB  # noqa: E402
from vigil.alerts.console.views import public_alarm, read_payload, stored_event  # noqa: E402
from vigil.alerts.store import EventStore  # noqa: E402

T0 = "2026-11-23T07:00:00Z"


def _login(client, user, password, **headers):
    page = client.get("/login", headers=headers)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/login", data={"csrf": token, "username": user, "password": password}, headers=headers, follow_redirects=False
    )


def _csrf(page_text: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page_text).group(1)


def _raw(path, text, *, camera="odd", seq, type="distance_violation", severity="warning", state="start", time=T0):
    """One row written straight into the event table (no validation); returns its id."""
    eid = str(uuid.uuid4())
    con = sqlite3.connect(path)
    with con:
        con.execute(
            "INSERT INTO events (id, camera, seq, type, time, severity, state, json, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (eid, camera, seq, type, time, severity, state, text, T0),
        )
    con.close()
    return eid


def _raw_event(path, payload, *, seq, camera="odd", type="distance_violation", text=None, doc=None, **cols):
    """A row whose JSON is an event document with ``payload`` (any shape), or ``text`` verbatim;
    ``doc`` overrides fields of the document only (the row's columns stay as given)."""
    eid = str(uuid.uuid4())
    severity, state = cols.get("severity", "warning"), cols.get("state", "start")
    ev = {"schema": 2, "id": eid, "type": type, "camera": camera, "seq": seq, "time": T0}
    ev |= {"severity": severity, "state": state, "payload": payload, **(doc or {})}
    body = text if text is not None else json.dumps(ev)
    con = sqlite3.connect(path)
    with con:
        con.execute(
            "INSERT INTO events (id, camera, seq, type, time, severity, state, json, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (eid, camera, seq, type, T0, severity, state, body, T0),
        )
    con.close()
    return eid


@pytest.fixture
def hostile(tmp_path, make_event):
    """An event database with one good alarm on ``good`` and a zoo of odd rows on ``odd``."""
    path = tmp_path / "events.db"
    store = EventStore(path)
    store.add(make_event(camera="good", seq=1, time=T0))
    store.close()
    ids = {}
    ids["tracks_int"] = _raw_event(path, {"tracks": 5, "value": 0.8, "threshold": 1.0, "zone": None}, seq=1)
    ids["positions_list"] = _raw_event(path, {"tracks": [1, 2], "positions_m": [[0, 1], [2, 3]], "value": 0.7}, seq=2)
    ids["huge_coords"] = _raw_event(
        path,
        {"tracks": [1, 2], "positions_m": {"1": [1e308, -1e308], "2": [0, 0]}, "value": 1e308, "threshold_m": 1e308},
        seq=3,
    )
    ids["payload_list"] = _raw_event(path, [1, 2, 3], seq=4)
    ids["payload_str"] = _raw_event(path, "hello", seq=5, type="occupancy_limit")
    ids["payload_null"] = _raw_event(path, None, seq=6, type="risk_level")
    ids["not_json"] = _raw_event(path, None, seq=7, text="{not json at all")
    ids["json_array"] = _raw_event(path, None, seq=8, text="[1, 2]")
    ids["deep"] = _raw_event(path, None, seq=9, text='{"payload": ' + "[" * 100000 + "]" * 100000 + "}")
    ids["huge_int"] = _raw_event(path, None, seq=10, text='{"payload": {"value": 1' + "0" * 5000 + "}}")
    ids["nan"] = _raw_event(path, None, seq=11, text='{"payload": {"value": NaN, "threshold": Infinity}}')
    ids["odd_alarm_id"] = _raw_event(path, {"alarm_id": {"x": 1}, "tracks": [{"a": 1}], "value": 2}, seq=12)
    ids["odd_strings"] = _raw_event(
        path,
        {
            "zone": {"nested": ["x"] * 5000},
            "plate": 12345,
            "lists": "A1",
            "evidence_id": ["../x"],
            "note": "y" * 100000,
        },
        seq=13,
        type="plate_hit",
        severity="bogus",
        state="weird",
    )
    ids["odd_doc_fields"] = _raw_event(
        path,
        {"value": 3},
        seq=14,
        type="occupancy_limit",
        doc={"time": 12345, "camera": ["x"], "severity": None, "state": 7, "id": 5, "seq": "x"},
    )
    ids["heat_odd"] = _raw_event(path, {"layers": [1, 2]}, seq=15, type="heatmap", severity="info", state="update")
    ids["heat_huge"] = _raw_event(
        path,
        {
            "layers": {
                "occupancy": {
                    "encoding": "u8-b64",
                    "shape": [1, 1],
                    "data": "AQ==",
                    "scale": 1e308,
                    "cell_m": 1e308,
                    "origin_m": [1e308, 1e308],
                }
            }
        },
        seq=16,
        type="heatmap",
        severity="info",
        state="update",
    )
    ids["bad_seq"] = _raw(path, "{}", seq="abc", camera="odd2")
    ids["blob"] = _raw(path, b"\xff\xfe\x00", seq=1, camera="odd3")
    db = ConsoleDB(path)
    db.add_user("op", "operator", "op-password")
    db.add_user("sam", "supervisor", "sam-password")
    yield db, ids
    db.close()


def test_stored_event_never_raises_and_marks_what_it_cannot_read(hostile):
    db, ids = hostile
    rows = db.events(limit=1000)
    assert len(rows) == len(ids) + 1
    by_id = {r["id"]: r for r in rows}
    for name in ("not_json", "json_array", "deep", "huge_int", "payload_list", "payload_str", "bad_seq", "blob"):
        assert by_id[ids[name]]["unreadable"], name
    assert by_id[ids["tracks_int"]]["unreadable"]  # tracks is not a list of ids
    assert by_id[ids["tracks_int"]]["payload"]["value"] == 0.8  # what can be read still is
    assert "tracks" not in by_id[ids["tracks_int"]]["payload"]
    huge = by_id[ids["huge_coords"]]["payload"]
    assert "value" not in huge and "positions_m" not in huge or huge["positions_m"] == {"2": [0.0, 0.0]}
    assert by_id[ids["nan"]]["payload"] == {}
    strings = by_id[ids["odd_strings"]]["payload"]
    assert len(json.dumps(strings)) < 20000
    # an event whose alarm id is unreadable is an alarm of its own, not grouped with other such events
    assert [e["id"] for e in db.related(by_id[ids["not_json"]])] == [ids["not_json"]]
    assert [e["id"] for e in db.related(by_id[ids["tracks_int"]])] == [ids["tracks_int"]]
    for r in rows:
        json.dumps(public_alarm(r, None))  # the live feed's JSON
        assert isinstance(r["camera"], str) and isinstance(r["time"], str) and isinstance(r["seq"], int)


def test_every_page_renders_odd_events(hostile):
    db, ids = hostile
    with TestClient(create_app(db, follow=False)) as client:
        assert _login(client, "op", "op-password").status_code == 303
        page = client.get("/cameras")
        assert page.status_code == 200, page.text
        for cam in ("good", "odd", "odd2", "odd3"):
            assert f'data-camera="{cam}"' in page.text
        listing = client.get("/")
        assert listing.status_code == 200
        assert listing.text.count("<tr class=") == len(ids) - 1  # the good one and the odd ones but the heat maps
        assert listing.text.count('class="badge unreadable"') == len(ids) - 1 - 2  # not the good one nor odd_doc_fields
        for q in ("?camera=odd", "?type=plate_hit", "?severity=bogus", "?state=weird"):
            assert client.get("/" + q).status_code == 200
        for name, eid in ids.items():
            page = client.get(f"/alarm/{eid}")
            assert page.status_code == 200, (name, page.text[-500:])
            marked = 'id="unreadable"' in page.text
            assert marked == (name != "odd_doc_fields"), name
        detail = client.get(f"/alarm/{ids['tracks_int']}").text
        assert "0,80 m" in detail and "distance_violation" in detail  # the value in words, Italian by default
        assert client.get(f"/alarm/{ids['positions_list']}").text.count('class="person"') == 0
        assert "1e+308" not in client.get(f"/alarm/{ids['huge_coords']}").text


def test_the_live_feed_sends_odd_events(hostile):
    import asyncio

    from vigil.alerts.console.routes import alarm_feed

    db, ids = hostile
    app = create_app(db, follow=False)
    ctx = app.state.console
    token = db.new_session("op")

    async def take(n):
        out = []
        async for chunk in alarm_feed(ctx, {"camera": None, "type": None, "severity": None, "state": None}, 0, token):
            if chunk.startswith("id:") and "\nevent: alarm\n" in chunk:  # one per alarm (its row)
                out.append(json.loads(chunk.split("data: ", 1)[1]))
            if len(out) == n:
                break
        return out

    got = asyncio.run(asyncio.wait_for(take(len(ids) - 2 + 1), 10))
    assert {g["id"] for g in got} >= {ids["tracks_int"], ids["not_json"], ids["blob"]}


def test_read_payload_bounds():
    p, problems = read_payload(
        "distance_violation",
        {"tracks": [1, True, 2], "positions_m": {"1": [1.0, 2.0], "2": [float("inf"), 0], "3": [1, 2, 3]}},
    )
    assert "tracks" not in p and problems
    assert p["positions_m"] == {"1": [1.0, 2.0]}
    p, problems = read_payload("distance_violation", {"tracks": [1, 2], "value": 1.5, "threshold_m": 2.0})
    assert p == {"tracks": [1, 2], "value": 1.5, "threshold_m": 2.0} and not problems
    ev = stored_event(1, T0, "{}", {})
    assert ev["unreadable"] and ev["id"] == "" and ev["camera"] == ""


@pytest.mark.parametrize(
    ("since", "code"),
    [
        ("0", 200),
        ("1700000000", 200),
        ("1700000000.5", 200),
        ("2026-11-23", 200),
        ("2026-11-23T07:00:00Z", 200),
        ("2026-11-23T07:00:00+01:00", 200),
        ("2026-11-23 07:00", 200),
        ("yesterday", 400),
        ("1e400", 400),
        ("nan", 400),
        ("-inf", 400),
        ("99999999999999999999", 400),
        ("2026-13-45", 400),
    ],
)
def test_transit_time_forms(tmp_path, since, code):
    from vigil.plates.transits import TransitStore

    EventStore(tmp_path / "events.db").close()
    db = ConsoleDB(tmp_path / "events.db")
    db.add_user("sam", "supervisor", "sam-password")
    store = TransitStore(tmp_path / "events.db", key=b"k" * 32)
    store.add({"camera": "gate", "plate": "AB123CD", "time": "2026-11-23T08:00:00Z", "hits": [{"list": "A1"}]})
    try:
        with TestClient(create_app(db, follow=False, transits=store)) as client:
            assert _login(client, "sam", "sam-password").status_code == 303
            r = client.get("/transits", params={"plate": "AB123CD", "since": since})
            assert r.status_code == code, r.text[-400:]
            if code == 200:
                assert "gate" in r.text
            else:
                assert 'id="transit-error"' in r.text and "since" in r.text
            r = client.get("/transits", params={"plate": "AB123CD", "until": since})
            assert r.status_code == code
    finally:
        store.close()
        db.close()


def test_plate_hash_never_shown_outside_the_audited_search(tmp_path, make_event):
    path = tmp_path / "events.db"
    store = EventStore(path)
    transit = make_event(camera="gate", type="plate_transit", seq=1, time=T0, payload={"plate": None})
    store.add(transit.model_copy(update={"payload": {**transit.payload, "plate_hash": "h" * 12 + "secrethash"}}))
    store.close()
    eid = transit.id
    db = ConsoleDB(path)
    db.add_user("op", "operator", "op-password")
    db.add_user("sam", "supervisor", "sam-password")
    try:
        for user in ("op", "sam"):
            with TestClient(create_app(db, follow=False)) as client:
                assert _login(client, user, f"{user}-password").status_code == 303
                for url in ("/", f"/alarm/{eid}", "/cameras", "/?type=plate_transit"):
                    page = client.get(url)
                    assert page.status_code == 200 and "secrethash" not in page.text, (user, url)
        for r in db.events():
            assert "secrethash" not in json.dumps(public_alarm(r, None))
    finally:
        db.close()


# ---------------------------------------------------------------------- login


def test_rotating_forwarded_for_from_loopback_neither_bypasses_the_lockout_nor_reaches_the_audit(tmp_path):
    EventStore(tmp_path / "events.db").close()
    db = ConsoleDB(tmp_path / "events.db")
    db.add_user("op", "operator", "op-password")
    try:
        with TestClient(create_app(db, follow=False), client=("127.0.0.1", 40000)) as client:
            for i in range(8):
                h = {"X-Forwarded-For": f"10.0.0.{i}", "Forwarded": f"for=10.1.0.{i}"}
                assert _login(client, "op", "bad-password", **h).status_code == 401
            r = _login(client, "op", "op-password", **{"X-Forwarded-For": "10.9.9.9"})
            assert r.status_code == 401  # locked out: the forged addresses were not believed
        logins = [a for a in db.audit_log() if a["action"].startswith("login")]
        assert len(logins) == 6 and {a["client"] for a in logins} == {"127.0.0.1"}  # 5 failed, 1 throttled
        # no forged address anywhere in the audit (the time is left out: "...:10.464Z" holds "10." too)
        assert "10." not in json.dumps([{k: v for k, v in a.items() if k != "time"} for a in db.audit_log()])
    finally:
        db.close()


def test_forwarded_for_is_believed_only_from_a_configured_proxy(tmp_path):
    EventStore(tmp_path / "events.db").close()
    db = ConsoleDB(tmp_path / "events.db")
    db.add_user("op", "operator", "op-password")
    try:
        app = create_app(db, follow=False, trusted_proxies=["127.0.0.1", "10.5.0.0/16"])
        with TestClient(app, client=("127.0.0.1", 40000)) as client:
            # the right-most address not a proxy is the client; what the client put left of it is ignored
            h = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.5.1.1"}
            assert _login(client, "op", "op-password", **h).status_code == 303
            client.cookies.clear()
            h = {"Forwarded": 'for=192.0.2.9, for="[2001:db8::1]:4711";by=10.5.0.1'}
            assert _login(client, "op", "nope-nope", **h).status_code == 401
            assert _login(client, "op", "nope-nope", **{"X-Forwarded-For": "not-an-ip"}).status_code == 401
            page = client.get("/login", headers={"X-Forwarded-Proto": "https"})  # the proxy speaks https
            assert "Secure" in page.headers["set-cookie"] and "strict-transport-security" in page.headers
        with TestClient(app, client=("192.0.2.50", 40000)) as client:  # not a proxy: headers ignored
            page = client.get("/login", headers={"X-Forwarded-Proto": "https"})
            assert "Secure" not in page.headers["set-cookie"] and "strict-transport-security" not in page.headers
        with TestClient(app, client=("192.0.2.50", 40000)) as client:  # not a proxy: headers ignored
            _login(client, "op", "nope-nope", **{"X-Forwarded-For": "198.51.100.1"})
        clients = [a["client"] for a in db.audit_log() if a["action"].startswith("login")]
        assert clients == ["192.0.2.50", "127.0.0.1", "2001:db8::1", "203.0.113.7"]
    finally:
        db.close()


def test_spraying_usernames_from_one_source_is_throttled(tmp_path):
    EventStore(tmp_path / "events.db").close()
    db = ConsoleDB(tmp_path / "events.db")
    db.add_user("op", "operator", "op-password")
    try:
        with TestClient(create_app(db, follow=False)) as client:
            codes = [_login(client, f"user{i}", "guess-guess").text for i in range(50)]
            throttled = [("Too many" in c or "Troppi" in c) for c in codes]
            assert any(throttled) and throttled.index(True) <= 20
            assert all(throttled[throttled.index(True) :])
            r = _login(client, "op", "op-password")  # the right password from the spraying source: refused too
            assert r.status_code == 401
        actions = [a["action"] for a in db.audit_log(1000)]
        assert actions.count("login_failed") <= 20
        assert 1 <= actions.count("login_throttled") <= 5  # not one audit row per refused attempt
    finally:
        db.close()


def test_login_throttle_per_user_across_sources_and_overall():
    t = LoginThrottle(window_s=300, per_pair=5, per_source=20, per_user=10, overall_per_min=30)
    for i in range(10):
        t.record_failure("op", f"10.0.0.{i}", 0.0)
    assert t.refused("op", "10.0.0.200", 1.0) == "user"
    assert t.refused("other", "10.0.0.200", 1.0) is None
    for i in range(30):
        t.record_failure(f"u{i}", f"10.1.0.{i}", 2.0)
    assert t.refused("fresh", "192.0.2.1", 3.0) == "overall"
    assert t.refused("fresh", "192.0.2.1", 70.0) is None  # a minute later
    # IPv6 sources count per /64
    for i in range(20):
        t.record_failure(f"v{i}", f"2001:db8:0:1::{i + 1:x}", 100.0)
    assert t.refused("zzz", "2001:db8:0:1::ffff", 101.0) == "source"
    # bounded memory under a spray from many addresses
    for i in range(30000):
        t.record_failure(f"n{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 200.0 + i / 1000)
    assert t.size() <= 3 * t.max_keys + 10


def test_a_password_change_ends_the_other_sessions(tmp_path):
    EventStore(tmp_path / "events.db").close()
    db = ConsoleDB(tmp_path / "events.db")
    db.add_user("op", "operator", "op-password")
    try:
        app = create_app(db, follow=False)
        with TestClient(app) as old, TestClient(app) as cur:
            assert _login(old, "op", "op-password").status_code == 303
            assert _login(cur, "op", "op-password").status_code == 303
            assert old.get("/", follow_redirects=False).status_code == 200
            page = cur.get("/account")
            assert page.status_code == 200
            form = {"csrf": _csrf(page.text), "current": "op-password", "new": "new-password-1", "repeat": "x"}
            assert cur.post("/account", data=form).status_code == 400  # the two differ
            form |= {"current": "wrong-password", "repeat": "new-password-1"}
            assert cur.post("/account", data=form).status_code == 400
            form |= {"current": "op-password"}
            r = cur.post("/account", data=form, follow_redirects=False)
            assert r.status_code == 303
            assert old.get("/", follow_redirects=False).status_code == 303  # the old session is gone
            assert cur.get("/", follow_redirects=False).status_code == 200  # this one is kept
            assert db.check_login("op", "new-password-1") and not db.check_login("op", "op-password")
            # an administrator's reset (vigil console user add --replace) ends every session
            db.add_user("op", "operator", "reset-password", replace=True)
            assert cur.get("/", follow_redirects=False).status_code == 303
        actions = [a["action"] for a in db.audit_log()]
        assert "password_change" in actions and "password_change_failed" in actions
    finally:
        db.close()


def test_cli_trusted_proxies_and_uvicorn_proxy_headers_off(tmp_path, monkeypatch, capsys):
    """uvicorn's own proxy handling (which believed X-Forwarded-For from 127.0.0.1 by default)
    is off; the console's one rule decides, with the proxies named on the command line."""
    import vigil.alerts.console.app as console_app
    from vigil.alerts.console.security import ProxyHeaders
    from vigil.cli import main

    EventStore(tmp_path / "e.db").close()
    assert main(["console", "--db", str(tmp_path / "e.db"), "--trusted-proxy", "not-an-address"]) == 2
    assert "not an IP address or network" in capsys.readouterr().err
    seen = {}
    monkeypatch.setattr(console_app.uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    argv = ["console", "--db", str(tmp_path / "e.db"), "--trusted-proxy", "127.0.0.1"]
    assert main([*argv, "--trusted-proxy", "10.0.0.0/24", "--forwarded-allow-ips", "::1,192.0.2.1"]) == 0
    assert seen["proxy_headers"] is False and "forwarded_allow_ips" not in seen
    assert isinstance(seen["app"], ProxyHeaders)
    assert [str(n) for n in seen["app"].trusted] == ["127.0.0.1/32", "10.0.0.0/24", "::1/128", "192.0.2.1/32"]
    seen.clear()
    assert main(["console", "--db", str(tmp_path / "e.db")]) == 0
    assert seen["app"].trusted == ()  # default: no proxy believed


def test_valid_and_schema1_events_read_whole(sample_payload):
    """The defensive reading leaves good events alone: every type's valid payload, and a
    schema-1 event (no alarm_id, fields the models do not know), read with nothing dropped."""
    from vigil.alerts.payloads import PAYLOADS

    for type_ in PAYLOADS:
        payload = sample_payload(type_)
        doc = {"schema": 2, "id": "x", "type": type_, "camera": "c", "seq": 1, "time": T0, "payload": payload}
        cols = {"id": "x", "camera": "c", "seq": 1, "type": type_, "time": T0, "severity": "info", "state": "start"}
        ev = stored_event(1, T0, json.dumps(doc), cols)
        assert ev["unreadable"] == "" and ev["payload"] == payload, type_
        assert (ev["alarm_id"] == payload.get("alarm_id")) or type_ == "heatmap"
    old = {
        "rule": "distance",
        "tracks": [7, 3],
        "positions_m": {"3": [1.0, 2.0], "7": [1.8, 2.0]},
        "metric": "distance_m",
        "value": 0.8,
        "threshold": 1.0,
        "zone": "fountain",
        "reason": "clear",
        "legacy_field": {"a": 1},
    }
    doc = {"schema": 1, "id": "y", "type": "distance_violation", "camera": "piazza", "seq": 41, "payload": old}
    cols = {"id": "y", "camera": "piazza", "seq": 41, "type": "distance_violation", "time": T0}
    cols |= {"severity": "warning", "state": "end"}
    ev = stored_event(3, T0, json.dumps(doc), cols)
    assert ev["unreadable"] == "" and ev["payload"] == old and ev["schema"] == 1
    from vigil.alerts.events import alarm_id_of

    assert ev["alarm_id"] == alarm_id_of(doc)  # the schema-1 grouping, as before


def test_a_transit_search_without_a_usable_key_answers_503_with_the_reason(tmp_path):
    from vigil.plates.transits import TransitStore

    EventStore(tmp_path / "events.db").close()
    db = ConsoleDB(tmp_path / "events.db")
    db.add_user("sam", "supervisor", "sam-password")
    store = TransitStore(tmp_path / "events.db", key_file=tmp_path / "mistyped.key")
    try:
        with TestClient(create_app(db, follow=False, transits=store)) as client:
            assert _login(client, "sam", "sam-password").status_code == 303
            r = client.get("/transits", params={"plate": "AB123CD"})
            assert r.status_code == 503
            assert "Ricerca non disponibile: la chiave delle targhe non è utilizzabile" in r.text
            assert not (tmp_path / "mistyped.key").exists()  # never created on the fly
    finally:
        store.close()
        db.close()
