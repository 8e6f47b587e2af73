"""The console's live tiles and clips (vigil.alerts.console.media) over the real application:
``/tile/{camera}`` serves the latest tile, never cached, 404 when there is none; ``/clip/{id}``
serves an evidence MP4 and logs the view like every evidence view; ``/tiles`` lists the cameras
with a tile, with its refresh script (no inline script); all need a session."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("jinja2")

from starlette.testclient import TestClient  # noqa: E402

from vigil.alerts.console.app import create_app  # noqa: E402
from vigil.alerts.console.db import ConsoleDB  # noqa: E402
from vigil.alerts.console.pictures import alarm_media, snapshot_url  # noqa: E402
from vigil.alerts.store import EventStore  # noqa: E402

CLIP = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def client(tmp_path):
    EventStore(tmp_path / "events.db").close()
    db = ConsoleDB(tmp_path / "events.db")
    db.add_user("op", "operator", "op-password")
    tiles, evidence = tmp_path / "tiles", tmp_path / "evidence"
    tiles.mkdir()
    evidence.mkdir()
    (tiles / "pets-view001.jpg").write_bytes(b"\xff\xd8tile-one\xff\xd9")
    (tiles / "gate.north.jpg").write_bytes(b"\xff\xd8tile-two\xff\xd9")
    (tiles / ".gate.jpg.tmp.jpg").write_bytes(b"half")  # a tile being written: not a camera
    (evidence / f"{CLIP}.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(100))
    app = create_app(db, follow=False, tiles_dir=tiles, evidence_dir=evidence)
    with TestClient(app) as c:
        c.db, c.tiles, c.evidence = db, tiles, evidence
        yield c
    db.close()


def _login(c):
    page = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = c.post("/login", data={"csrf": token, "username": "op", "password": "op-password"}, follow_redirects=False)
    assert r.status_code == 303


def test_everything_needs_a_session(client):
    for url in ("/tiles", "/tile/pets-view001", f"/clip/{CLIP}"):
        r = client.get(url, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/login"), url


def test_a_tile_is_served_uncached_and_a_missing_one_is_404(client):
    _login(client)
    r = client.get("/tile/pets-view001?t=1700000000000")
    assert (r.status_code, r.content) == (200, b"\xff\xd8tile-one\xff\xd9")
    assert r.headers["content-type"] == "image/jpeg" and r.headers["cache-control"] == "no-store"
    r = client.get("/tile/nobody")
    assert r.status_code == 404 and r.headers["cache-control"] == "no-store"
    for bad in ("/tile/.gate.jpg.tmp", "/tile/%2e%2e%2fevents", "/tile/%2e%2e"):
        assert client.get(bad).status_code == 404, bad
    (client.tiles / "pets-view001.jpg").write_bytes(b"\xff\xd8tile-new\xff\xd9")  # overwritten by the node
    assert client.get("/tile/pets-view001").content == b"\xff\xd8tile-new\xff\xd9"


def test_the_tiles_page_shows_each_camera_with_a_tile_and_its_script(client):
    _login(client)
    page = client.get("/tiles")
    assert page.status_code == 200
    assert re.findall(r'<img src="(/tile/[^"]+)"', page.text) == ["/tile/gate.north", "/tile/pets-view001"]
    assert '<script src="/static/tiles.js" defer></script>' in page.text and "<script>" not in page.text
    assert 'data-refresh-ms="2000"' in page.text and 'id="nav-tiles"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    js = client.get("/static/tiles.js")
    assert js.status_code == 200 and "setInterval" in js.text
    assert [a["action"] for a in client.db.audit_log(action="tiles_view")] == ["tiles_view"]


def test_a_clip_is_served_and_its_view_is_logged(client):
    _login(client)
    r = client.get(f"/clip/{CLIP}")
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert r.headers["cache-control"] == "private, no-store" and r.content.startswith(b"\x00\x00\x00\x20ftyp")
    part = client.get(f"/clip/{CLIP}", headers={"range": "bytes=4-11"})
    assert (part.status_code, part.content) == (206, b"ftypisom")  # browsers seek with ranges
    logged = client.db.audit_log(action="evidence_view")
    assert [(a["user"], a["target"], a["detail"]) for a in logged] == [("op", CLIP, "clip")]  # not per range
    assert client.get("/clip/" + "f" * 32).status_code == 404
    assert client.get("/clip/%2e%2e%2fevents.db").status_code == 404


def test_snapshot_url_only_for_a_stored_snapshot(client):
    sid = "fedcba9876543210fedcba9876543210"
    (client.evidence / f"{sid}.jpg").write_bytes(b"\xff\xd8")
    root = client.evidence.resolve()
    assert snapshot_url({"snapshot_id": sid}, root) == f"/evidence/{sid}"
    assert snapshot_url({"snapshot_id": CLIP}, root) is None  # no such JPEG (a clip id)
    assert snapshot_url({"snapshot_id": "../x"}, root) is None
    assert snapshot_url({}, root) is None and snapshot_url({"snapshot_id": sid}, None) is None


def test_alarm_media_reads_the_start_of_an_alarm(client):
    sid = "fedcba9876543210fedcba9876543210"
    (client.evidence / f"{sid}.jpg").write_bytes(b"\xff\xd8")
    root = client.evidence.resolve()
    start = {"state": "start", "payload": {"alarm_id": "a", "snapshot_id": sid, "clip_id": CLIP, "recording": "on"}}
    later = {"state": "end", "payload": {"alarm_id": "a"}}
    assert alarm_media([start, later], root) == {
        "snapshot_url": f"/evidence/{sid}", "clip_url": f"/clip/{CLIP}", "recording": "on",
    }  # fmt: skip
    off = {"state": "start", "payload": {"alarm_id": "b", "recording": "off"}}
    assert alarm_media([off], root) == {"snapshot_url": None, "clip_url": None, "recording": "off"}
    assert alarm_media([later], root) == {"snapshot_url": None, "clip_url": None, "recording": None}
    assert alarm_media([start], None)["snapshot_url"] is None


def _stored_alarm(client, payload: dict, state: str = "start") -> str:
    from vigil.alerts.events import Event

    from .conftest import sample_payload

    ev = Event(type="distance_violation", camera="pets-view001", seq=1, time="2026-12-02T10:00:00Z",
               state=state, payload=sample_payload(**payload))  # fmt: skip
    with EventStore(client.db.events_path) as store:
        store.add(ev)
    return ev.payload["alarm_id"]


def test_the_alarm_page_shows_the_masked_snapshot_and_the_clip_and_no_raw_ids(client):
    sid = "fedcba9876543210fedcba9876543210"
    (client.evidence / f"{sid}.jpg").write_bytes(b"\xff\xd8")
    alarm = _stored_alarm(client, {"snapshot_id": sid, "clip_id": CLIP, "recording": "on"})
    _login(client)
    page = client.get(f"/alarm/{alarm}")
    assert page.status_code == 200
    assert f'<img id="snapshot" class="evidence" src="/evidence/{sid}"' in page.text
    assert f'<video id="clip" class="evidence" controls preload="metadata" src="/clip/{CLIP}"></video>' in page.text
    assert "snapshot_id" not in page.text and "clip_id" not in page.text and "not-recorded" not in page.text


def test_the_alarm_page_of_a_site_that_records_nothing_says_so(client):
    alarm = _stored_alarm(client, {"recording": "off"})
    _login(client)
    page = client.get(f"/alarm/{alarm}")
    assert 'id="not-recorded"' in page.text and 'id="snapshot"' not in page.text and 'id="clip"' not in page.text
