"""Operator console without a browser: accounts and hashing, the CLI, cookies behind an HTTPS
proxy, CSRF on login, role checks and the bird's-eye shapes."""

from __future__ import annotations

import io
import re
import sys

import pytest

pytest.importorskip("jinja2")

from vigil.alerts.console.app import create_app  # noqa: E402
from vigil.alerts.console.auth import hash_password, verify_password  # noqa: E402
from vigil.alerts.console.db import ConsoleDB, ConsoleError  # noqa: E402
from vigil.alerts.console.views import birdseye  # noqa: E402
from vigil.alerts.store import EventStore  # noqa: E402


@pytest.fixture
def cdb(tmp_path):
    EventStore(tmp_path / "events.db").close()
    db = ConsoleDB(tmp_path / "events.db")
    db.add_user("op", "operator", "op-password")
    yield db
    db.close()


def test_password_hashing():
    h = hash_password("correct horse")
    assert h.startswith("scrypt$") and "correct" not in h
    assert verify_password("correct horse", h)
    assert not verify_password("wrong horse", h)
    assert not verify_password("anything", None)
    with pytest.raises(ValueError):
        hash_password("short")


def test_console_db_needs_events_db(tmp_path):
    with pytest.raises(ConsoleError, match="no event database"):
        ConsoleDB(tmp_path / "missing.db")


def test_user_add_cli(tmp_path, monkeypatch, capsys):
    from vigil.cli import main

    EventStore(tmp_path / "e.db").close()
    monkeypatch.setattr(sys, "stdin", io.StringIO("sup-password\n"))
    assert main(["console", "user", "add", "sup", "--role", "supervisor", "--db", str(tmp_path / "e.db")]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("sup-password\n"))
    assert main(["console", "user", "add", "sup", "--role", "admin", "--db", str(tmp_path / "e.db")]) == 2
    db = ConsoleDB(tmp_path / "e.db")
    assert db.check_login("sup", "sup-password") == {"name": "sup", "role": "supervisor"}
    assert db.check_login("sup", "nope-nope-nope") is None
    db.close()
    assert main(["console", "--db", str(tmp_path / "e.db"), "--stream", "tcp://127.0.0.1:5556"]) == 2
    assert "no CURVE keys" in capsys.readouterr().err


def _login(client, user, password, **headers):
    page = client.get("/login", headers=headers)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/login", data={"csrf": token, "username": user, "password": password}, headers=headers, follow_redirects=False
    )


def test_cookies_secure_behind_https_proxy(cdb):
    from starlette.testclient import TestClient

    app = create_app(cdb, follow=False)
    with TestClient(app, base_url="https://console.example") as client:
        r = _login(client, "op", "op-password")
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("__Host-vigil_session=") and "Secure" in cookie and "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        assert "max-age=31536000" in r.headers["strict-transport-security"]
        assert "script-src 'self'" in r.headers["content-security-policy"]
        page = client.get("/")
        assert page.status_code == 200 and "op (operator)" in page.text
        assert client.get("/transits?plate=AB123CD").status_code == 403
        assert client.get("/audit").status_code == 403


def test_login_refuses_missing_csrf_and_throttles(cdb):
    from starlette.testclient import TestClient

    with TestClient(create_app(cdb, follow=False)) as client:
        r = client.post("/login", data={"csrf": "x", "username": "op", "password": "op-password"})
        assert r.status_code == 400
        for _ in range(5):
            assert _login(client, "op", "bad-password").status_code == 401
        r = _login(client, "op", "op-password")  # right password, but throttled now
        assert r.status_code == 401 and ("Too many attempts" in r.text or "Troppi tentativi" in r.text)
        assert client.get("/", follow_redirects=False).status_code == 303  # not logged in
    actions = [a["action"] for a in cdb.audit_log()]
    assert actions.count("login_failed") == 5 and "login_throttled" in actions and "csrf_refused" in actions


def test_birdseye_shapes():
    shapes = birdseye({"positions_m": {"1": [0, 0], "2": [3, 4]}, "threshold_m": 6.0})
    assert len(shapes["people"]) == 2 and shapes["lines"][0]["d"] == 5.0 and shapes["lines"][0]["close"]
    (a, b) = (p["px"] for p in shapes["people"])
    assert b[1] < a[1]  # world y up is screen up
    # the distance is written off the segment, left of it (the people's labels are on their right)
    line = shapes["lines"][0]
    assert line["anchor"] == "end" and line["label"][0] < line["mid"][0]
    # 12 px along the unit normal (-0.8, -0.6) of the screen segment (3, -4)/5, plus the baseline's 4
    assert line["label"] == (round(line["mid"][0] - 9.6, 1), round(line["mid"][1] - 7.2 + 4, 1))
    level = birdseye({"positions_m": {"1": [0, 0], "2": [3, 0]}})["lines"][0]
    assert level["anchor"] == "middle" and level["label"] == (level["mid"][0], level["mid"][1] - 12 + 4)
    assert birdseye({}) is None and birdseye({"positions_m": {"1": "x"}}) is None


def test_supervisor_searches_real_transit_records_and_every_search_is_logged(cdb, tmp_path):
    from starlette.testclient import TestClient

    from vigil.plates.transits import TransitStore

    store = TransitStore(tmp_path / "events.db", key=b"k" * 32)
    store.add(
        {
            "camera": "gate-north",
            "plate": "AB123CD",
            "time": "2026-11-23T07:00:00Z",
            "hits": [{"list": "A1", "note": "stolen"}],
            "direction": "in",
        }
    )
    store.add(
        {"camera": "gate-north", "plate": "AB123CD", "time": "2026-11-23T07:05:00Z", "hits": [], "direction": "out"}
    )
    store.add({"camera": "gate-south", "plate": "ZZ999ZZ", "time": "2026-11-23T07:06:00Z", "hits": []})
    cdb.add_user("sam", "supervisor", "sam-password")
    with TestClient(create_app(cdb, follow=False, transits=store)) as client:
        assert _login(client, "sam", "sam-password").status_code == 303
        page = client.get("/transits?plate=ab 123 cd")
        assert page.status_code == 200
        assert page.text.count("gate-north") >= 2 and "ZZ999ZZ" not in page.text and "gate-south" not in page.text
        assert "A1" in page.text
    store.close()
    searches = [a for a in cdb.audit_log() if a["action"] == "transit_search"]
    assert searches and searches[-1]["user"] == "sam" and "AB123CD" in str(searches[-1])


def test_cameras_page_draws_the_latest_heat_map_and_the_alarm_list_leaves_it_out(tmp_path):
    import numpy as np
    from starlette.testclient import TestClient

    from vigil.alerts.events import Event
    from vigil.geometry.risk import HeatMap

    hm = HeatMap((-2, 4, 0, 3), cell_m=1.0)  # 3 rows x 6 cols
    xy = np.array([[-1.5, 0.5], [-0.6, 0.5], [3.5, 2.5]])
    hm.update(0.0, xy)
    hm.update(2.0, xy)
    layers = hm.compact()
    nonzero = {k: int(np.count_nonzero(v)) for k, v in (("occupancy", hm.occupancy), ("risk", hm.risk))}
    assert nonzero == {"occupancy": 3, "risk": 2}
    store = EventStore(tmp_path / "events.db")
    alarm = Event(
        type="distance_violation",
        camera="cam-a",
        seq=1,
        time="2026-11-23T07:00:00Z",
        severity="warning",
        state="start",
        payload={
            "alarm_id": "0b0d5a52-9d1e-4c39-9a4e-2f1f3c1d0a01",
            "rule": "distance",
            "tracks": [1, 2],
            "positions_m": {"1": [0.0, 1.0], "2": [0.8, 1.0]},
            "metric": "distance_m",
            "value": 0.8,
            "threshold": 1.0,
            "zone": None,
            "duration_s": 0.0,
            "frame": 1,
            "distance_m": 0.8,
            "min_distance_m": 0.8,
            "threshold_m": 1.0,
            "classes": ["person", "person"],
        },
    )
    old = Event(
        type="heatmap",
        camera="cam-a",
        seq=2,
        time="2026-11-23T07:00:30Z",
        severity="info",
        state="update",
        payload={
            "rule": "heatmap",
            "layers": HeatMap((0, 1, 0, 1), 1.0).compact(),
            "bounds_m": [0.0, 1.0, 0.0, 1.0],
            "decay_tau_s": 600.0,
            "final": False,
            "frame": 12,
        },
    )
    heat = Event(
        type="heatmap",
        camera="cam-a",
        seq=3,
        time="2026-11-23T07:01:00Z",
        severity="info",
        state="update",
        payload={
            "rule": "heatmap",
            "layers": layers,
            "bounds_m": [-2.0, 4.0, 0.0, 3.0],
            "decay_tau_s": 600.0,
            "final": False,
            "frame": 42,
        },
    )
    store.add_many([alarm, old, heat])
    store.close()
    db = ConsoleDB(tmp_path / "events.db")
    db.add_user("op", "operator", "op-password")
    try:
        assert {e["type"] for e in db.events()} == {"distance_violation", "heatmap"}  # kept in the database
        with TestClient(create_app(db, follow=False)) as client:
            assert _login(client, "op", "op-password").status_code == 303
            page = client.get("/cameras")
            assert page.status_code == 200
            svgs = re.findall(r'<figure class="heat-layer" data-layer="(\w+)">(.*?)</figure>', page.text, re.S)
            assert [name for name, _ in svgs] == ["occupancy", "risk"]
            for name, body in svgs:
                assert 'data-rows="3" data-cols="6"' in body
                assert body.count('class="hm-cell"') == nonzero[name]
                assert "person-seconds" in body
            assert "2026-11-23 07:01:00" in page.text  # the time of the latest map
            assert "<script>" not in page.text and " style=" not in page.text
            # the open alarm counts, the heat map (state update) does not
            assert re.search(r'class="open">1<', page.text)
            alarms = client.get("/")
            assert "distance_violation" in alarms.text and "heatmap" not in alarms.text
            assert "heatmap" not in client.get("/?type=heatmap").text.split("<tbody", 1)[-1]
    finally:
        db.close()
