"""The operator console on PostgreSQL and on SQLite, behind one interface (``ConsoleDB``):
accounts, sessions, alarm actions, the audit log, event reads, retention (``purge``), the
health check, the command line's ``--dsn``/``--dsn-file`` and repeated ``--stream``.

PostgreSQL is a real server on loopback (the ``pg_server`` / ``dsn`` fixtures of
tests/conftest.py; the PostgreSQL cases skip with the reason when its binaries are missing);
the event table is the aggregator's own (``PgEventStore`` / ``EventStore``)."""

from __future__ import annotations

import io
import os
import re
import sqlite3
import sys
import types
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import pytest

pytest.importorskip("jinja2")
psycopg = pytest.importorskip("psycopg", reason="psycopg (PostgreSQL driver) not installed")

import vigil.alerts.console.db as console_db  # noqa: E402
from vigil.alerts.console.app import create_app  # noqa: E402
from vigil.alerts.console.db import ConsoleDB, ConsoleError, console_tables_exist, open_console_db  # noqa: E402
from vigil.alerts.store import EventStore, PgEventStore  # noqa: E402

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
DAY = 86400.0


@dataclass
class Backend:
    """One database of the aggregator's events, and how to open the console on it."""

    kind: str
    store: Any  # the aggregator's event store on it (EventStore | PgEventStore)
    target: dict[str, str]  # open_console_db / console_tables_exist keywords
    cli: list[str]  # the command line's database options

    def open(self, **options) -> ConsoleDB:
        return open_console_db(**self.target, **options)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    if request.param == "postgres":
        dsn = request.getfixturevalue("dsn")
        b = Backend("postgres", PgEventStore(dsn), {"dsn": dsn}, ["--dsn", dsn])
    else:
        path = str(tmp_path / "events.db")
        b = Backend("sqlite", EventStore(path), {"db": path}, ["--db", path])
    yield b
    b.store.close()


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The console database's clock (epoch seconds), set by the test: ``clock[0] = t``."""
    now = [T0]
    monkeypatch.setattr(console_db, "time", types.SimpleNamespace(time=lambda: now[0]))
    return now


def _login(client, user: str, password: str):
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"csrf": token, "username": user, "password": password}, follow_redirects=False)


# ---------------------------------------------------------------------- accounts, sessions, audit
def test_accounts_sessions_and_the_audit_log(backend, clock):
    assert console_tables_exist(**backend.target) is False
    db = backend.open()
    try:
        assert db.kind == backend.kind and console_tables_exist(**backend.target) is True
        db.add_user("op", "operator", "op-password")
        with pytest.raises(ValueError, match="exists"):
            db.add_user("op", "admin", "other-password")
        with pytest.raises(ValueError, match="role must be"):
            db.add_user("x", "root", "x-password")
        assert db.user("op") == {"name": "op", "role": "operator", "enabled": True}
        assert db.user("nobody") is None
        assert db.check_login("op", "op-password") == {"name": "op", "role": "operator"}
        assert db.check_login("op", "bad-password") is None and db.check_login("nobody", "op-password") is None

        a, b, c = (db.new_session("op", f"10.0.0.{i}") for i in (1, 2, 3))
        sa = db.session(a)
        assert sa is not None and sa["user"] == "op" and sa["role"] == "operator" and len(sa["csrf"]) >= 20
        assert db.session("not-a-token") is None and db.session(None) is None
        # a self-service change keeps its own session, ends the others
        assert db.set_password("op", "new-password", keep_token=a) == 2
        assert db.session(a) is not None and db.session(b) is None and db.session(c) is None
        assert db.check_login("op", "op-password") is None
        assert db.check_login("op", "new-password") == {"name": "op", "role": "operator"}
        with pytest.raises(ValueError, match="no user"):
            db.set_password("nobody", "some-password")
        # an administrator's reset: new role and password, every session ended
        db.add_user("op", "supervisor", "reset-password", replace=True)
        assert db.session(a) is None
        assert db.check_login("op", "reset-password") == {"name": "op", "role": "supervisor"}
        # sessions end after their idle time
        d = db.new_session("op")
        clock[0] = T0 + 1801
        assert db.session(d) is None

        db.audit("op", "login", "", "role=supervisor", "10.0.0.1")
        log = db.audit_log()
        assert [(r["user"], r["action"], r["target"], r["detail"], r["client"]) for r in log] == [
            ("op", "login", "", "role=supervisor", "10.0.0.1"),
            ("-", "user_add", "op", "role=supervisor sessions_ended=1", ""),
            ("-", "user_add", "op", "role=operator", ""),
        ]
        assert log[0]["time"] == "2027-01-15T08:30:01.000000Z" and log[2]["time"] == "2027-01-15T08:00:00.000000Z"
        assert log[0]["id"] > log[1]["id"] > log[2]["id"]
        assert [r["action"] for r in db.audit_log(1)] == ["login"]
        assert [r["detail"] for r in db.audit_log(action="user_add")] == [
            "role=supervisor sessions_ended=1",
            "role=operator",
        ]
    finally:
        db.close()
    db = backend.open()  # reopening: the tables and rows are there, schema recorded once
    try:
        assert db.user("op") == {"name": "op", "role": "supervisor", "enabled": True}
        assert len(db.audit_log()) == 3
    finally:
        db.close()


def test_actions_and_statuses(backend, make_event, clock):
    e1, e2, e3 = (make_event(camera="cam-a") for _ in range(3))
    backend.store.add_many([e1, e2, e3])
    db = backend.open()
    try:
        db.add_action(e1.id, "op", "ack", "", "10.0.0.1")
        clock[0] = T0 + 1
        db.add_action(e1.id, "op", "note", "  called the guard  ")
        clock[0] = T0 + 2
        db.add_action(e1.id, "sam", "close")
        db.add_action(e2.id, "op", "ack")
        db.add_action(e2.id, "sam", "reopen")
        with pytest.raises(ValueError, match="action must be"):
            db.add_action(e1.id, "op", "delete")
        assert [(a["time"], a["user"], a["action"], a["note"]) for a in db.actions(e1.id)] == [
            ("2027-01-15T08:00:00.000000Z", "op", "ack", ""),
            ("2027-01-15T08:00:01.000000Z", "op", "note", "called the guard"),
            ("2027-01-15T08:00:02.000000Z", "sam", "close", ""),
        ]
        assert db.actions(e3.id) == []
        assert db.statuses([e1.id, e2.id, e3.id]) == {
            e1.id: {"status": "closed", "user": "sam", "time": "2027-01-15T08:00:02.000000Z"},
            e2.id: {"status": "new", "user": "sam", "time": "2027-01-15T08:00:02.000000Z"},
        }
        assert db.statuses([]) == {}
        assert [(r["user"], r["action"], r["target"], r["detail"]) for r in db.audit_log()] == [
            ("sam", "alarm_reopen", e2.id, ""),
            ("op", "alarm_ack", e2.id, ""),
            ("sam", "alarm_close", e1.id, ""),
            ("op", "alarm_note", e1.id, "called the guard"),
            ("op", "alarm_ack", e1.id, ""),
        ]
        assert db.audit_log(action="alarm_ack")[-1]["client"] == "10.0.0.1"
    finally:
        db.close()


# ---------------------------------------------------------------------- events
def test_event_reads_filters_detail_and_lifecycle(backend, make_event):
    alarm = str(uuid.uuid4())
    life = [
        make_event(camera="cam-a", seq=10, state="start", severity="warning", payload={"alarm_id": alarm}),
        make_event(camera="cam-a", seq=11, state="update", severity="critical", payload={"alarm_id": alarm}),
        make_event(camera="cam-a", seq=12, state="end", severity="info", payload={"alarm_id": alarm}),
    ]
    other = make_event(camera="cam-a", seq=13, state="start", severity="warning")
    occ = make_event(camera="cam-b", type="occupancy_limit", seq=5, severity="critical", payload={"value": 9})
    heat = make_event(camera="cam-b", type="heatmap", seq=6, severity="info", state="update")
    seqs = backend.store.add_many_seq([*life, other, occ, heat])
    ids = [e.id for e in (*life, other, occ, heat)]
    by_seq = dict(zip(seqs, ids))
    db = backend.open()
    try:
        assert db.last_stream_seq() == max(seqs)
        newest_first = [by_seq[s] for s in sorted(seqs, reverse=True)]
        assert [e["id"] for e in db.events()] == newest_first
        assert [e["stream_seq"] for e in db.events()] == sorted(seqs, reverse=True)
        assert [e["id"] for e in db.events(camera="cam-b")] == [heat.id, occ.id]
        assert [e["id"] for e in db.events(type="occupancy_limit")] == [occ.id]
        assert [e["id"] for e in db.events(severity="critical")] == [occ.id, life[1].id]
        assert [e["id"] for e in db.events(state="end")] == [life[2].id]
        assert [e["id"] for e in db.events(camera="cam-a", state="start")] == [other.id, life[0].id]
        assert [e["id"] for e in db.events(exclude_types=("heatmap",))] == newest_first[1:]
        assert [e["id"] for e in db.events(limit=2)] == newest_first[:2]
        assert [e["id"] for e in db.events(before=seqs[2])] == [life[1].id, life[0].id]
        assert [e["id"] for e in db.events(after=seqs[3])] == [occ.id, heat.id]  # oldest first
        assert db.events(camera="nowhere") == []
        assert db.distinct("camera") == ["cam-a", "cam-b"]
        assert db.distinct("type") == ["distance_violation", "heatmap", "occupancy_limit"]

        ev = db.event(life[1].id)
        assert ev is not None and ev["unreadable"] == ""
        assert (ev["id"], ev["camera"], ev["seq"], ev["type"], ev["severity"], ev["state"]) == (
            life[1].id,
            "cam-a",
            11,
            "distance_violation",
            "critical",
            "update",
        )
        assert ev["stream_seq"] == seqs[1] and ev["alarm_id"] == alarm and ev["payload"]["alarm_id"] == alarm
        assert [e["id"] for e in db.related(ev)] == [e.id for e in life]
        assert [e["id"] for e in db.related(db.event(other.id))] == [other.id]
        assert db.event(occ.id)["payload"]["value"] == 9
        # ids that name nothing: not found, never a database error (uuid casts in PostgreSQL)
        for bad in ("not-a-uuid", "", "'; DROP TABLE events; --", life[0].id.upper(), str(uuid.uuid4()), "x" * 500):
            assert db.event(bad) is None
        cams = {c["camera"]: c for c in db.camera_overview()}
        assert cams["cam-a"]["last"]["id"] == other.id and cams["cam-a"]["open"] == 1
        assert cams["cam-b"]["occupancy"]["value"] == 9 and cams["cam-b"]["heatmap"]["id"] == heat.id
        # the highest current severity among open alarms: life ended (its critical update no longer counts)
        assert cams["cam-a"]["worst"] == "warning" and cams["cam-b"]["worst"] == "critical"
    finally:
        db.close()


def test_pages_actions_malformed_ids_and_healthz(backend, make_event):
    from starlette.testclient import TestClient

    ev = make_event(camera="cam-a", severity="critical")
    backend.store.add_many([ev])
    db = backend.open()
    db.add_user("op", "operator", "op-password")
    try:
        with TestClient(create_app(db, follow=False)) as client:
            health = client.get("/healthz")
            assert (health.status_code, health.text) == (200, "ok")
            assert health.headers["cache-control"] == "no-store"
            assert client.get("/alarm/not-a-uuid", follow_redirects=False).status_code == 303  # login first
            assert _login(client, "op", "op-password").status_code == 303
            alarm_id = ev.payload["alarm_id"]
            assert f'data-id="{alarm_id}"' in client.get("/").text  # a row per alarm, by its alarm id
            r = client.get(f"/alarm/{ev.id}", follow_redirects=False)  # an event's id: to its alarm
            assert (r.status_code, r.headers["location"]) == (303, f"/alarm/{alarm_id}")
            page = client.get(f"/alarm/{alarm_id}")
            assert page.status_code == 200 and "cam-a" in page.text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            for bad in ("not-a-uuid", ev.id.upper(), str(uuid.uuid4()), "1%27%20OR%201%3D1"):
                assert client.get(f"/alarm/{bad}").status_code == 404
                r = client.post(f"/alarm/{bad}/action", data={"csrf": csrf, "action": "ack"}, follow_redirects=False)
                assert r.status_code == 404
            r = client.post(f"/alarm/{ev.id}/action", data={"csrf": csrf, "action": "ack"}, follow_redirects=False)
            assert (r.status_code, r.headers["location"]) == (303, f"/alarm/{alarm_id}")
            assert db.statuses([ev.id])[ev.id]["status"] == "acknowledged"  # an event id resolves to its alarm
            assert db.statuses([alarm_id])[alarm_id]["status"] == "acknowledged"
            assert client.get("/healthz").status_code == 200
            actions = [(a["user"], a["action"], a["target"]) for a in db.audit_log()]
            assert actions == [
                ("op", "alarm_ack", ev.id),
                ("op", "alarm_view", alarm_id),
                ("op", "login", ""),
                ("-", "user_add", "op"),
            ]  # the health checks and the refused ids left no row
            db.close()  # a database that does not answer
            health = client.get("/healthz")
            assert (health.status_code, health.text) == (503, "unavailable")
    finally:
        db.close()


def test_pg_healthz_follows_the_server(dsn, pg_server):
    """A dropped connection is reopened (one failed check, then ok); a database that is gone
    answers 503."""
    from starlette.testclient import TestClient

    PgEventStore(dsn).close()
    db = ConsoleDB(dsn=dsn)
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    try:
        with (
            TestClient(create_app(db, follow=False)) as client,
            psycopg.connect(pg_server + " dbname=postgres", autocommit=True) as admin,
        ):
            assert client.get("/healthz").status_code == 200
            (killed,) = admin.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()) t",
                (name,),
            ).fetchone()
            assert killed == 1
            assert client.get("/healthz").status_code == 503
            assert client.get("/healthz").status_code == 200  # reconnected
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
            assert client.get("/healthz").status_code == 503
            assert client.get("/healthz").status_code == 503
    finally:
        db.close()


# ---------------------------------------------------------------------- retention
def test_purge_counts_and_rows_left(backend, make_event, clock):
    ev = make_event()
    backend.store.add_many([ev])
    db = backend.open()
    try:
        clock[0] = T0 - 40 * DAY
        db.add_user("op", "operator", "op-password")  # audit: user_add
        db.add_action(ev.id, "op", "ack")  # audit: alarm_ack
        clock[0] = T0 - 10 * DAY
        db.audit("op", "login")
        db.add_action(ev.id, "op", "close")  # audit: alarm_close
        clock[0] = T0 - DAY
        db.add_action(ev.id, "op", "note", "recent")  # audit: alarm_note
        clock[0] = T0
        live = db.new_session("op")
        clock[0] = T0 - 3600  # idle for an hour at T0 (idle timeout 30 min)
        idle = db.new_session("op")
        clock[0] = T0 - DAY  # past its 12-hour lifetime at T0
        old = db.new_session("op")
        clock[0] = T0
        with pytest.raises(ValueError, match="audit_days"):
            db.purge(now=T0, audit_days=-1, actions_days=7)
        with pytest.raises(ValueError, match="actions_days"):
            db.purge(now=T0, audit_days=30, actions_days=float("nan"))
        assert db.purge(now=T0, audit_days=30, actions_days=7) == {
            "console_audit": 2,
            "console_actions": 2,
            "console_sessions": 2,
        }
        assert [(a["action"], a["note"]) for a in db.actions(ev.id)] == [("note", "recent")]
        assert db.statuses([ev.id]) == {}  # its ack and close are gone with the retention
        assert [(r["time"], r["action"], r["detail"]) for r in db.audit_log()] == [
            ("2027-01-15T08:00:00.000000Z", "purge", "console_audit=2 console_actions=2 console_sessions=2"),
            ("2027-01-14T08:00:00.000000Z", "alarm_note", "recent"),
            ("2027-01-05T08:00:00.000000Z", "alarm_close", ""),
            ("2027-01-05T08:00:00.000000Z", "login", ""),
        ]
        assert db.session(live) is not None and db.session(idle) is None and db.session(old) is None
        # nothing left to delete: zeros, and no purge row
        assert db.purge(audit_days=30, actions_days=7) == {
            "console_audit": 0,
            "console_actions": 0,
            "console_sessions": 0,
        }
        assert len(db.audit_log()) == 4
        # an action goes with the event it acts on: a recent note on an event that the event
        # retention has purged (a plate hit after its 15 days) is deleted with it
        gone = make_event(type="plate_hit")
        backend.store.add_many([gone])
        db.add_action(gone.id, "op", "note", "AB123CD seen at the north gate")
        backend.store.purge_events("9999-01-01T00:00:00.000000Z", only_types=("plate_hit",))
        assert db.purge(audit_days=30, actions_days=7)["console_actions"] == 1
        assert db.actions(gone.id) == [] and [a["note"] for a in db.actions(ev.id)] == ["recent"]
    finally:
        db.close()


# ---------------------------------------------------------------------- opening
def test_open_console_db_and_console_tables_exist_need_exactly_one_target(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        open_console_db()
    with pytest.raises(ValueError, match="exactly one"):
        open_console_db(db=str(tmp_path / "e.db"), dsn="host=x")
    with pytest.raises(ValueError, match="exactly one"):
        console_tables_exist()
    assert console_tables_exist(db=str(tmp_path / "missing.db")) is False
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(ConsoleError, match="no event database"):
        open_console_db(db=str(tmp_path / "missing.db"))


def test_schema_versioned_and_a_newer_one_refused(backend):
    backend.open().close()
    backend.open().close()
    if backend.kind == "postgres":
        conn = psycopg.connect(backend.target["dsn"], autocommit=True)
    else:
        conn = sqlite3.connect(backend.target["db"], isolation_level=None)
    try:
        assert [r[0] for r in conn.execute("SELECT version FROM console_schema ORDER BY version").fetchall()] == [1, 2]
        conn.execute("INSERT INTO console_schema VALUES (3, 'future')")
    finally:
        conn.close()
    with pytest.raises(ConsoleError, match="schema 3; upgrade vigil"):
        backend.open()


def test_pg_without_events_table_or_server(dsn):
    with pytest.raises(ConsoleError, match=r"no event table in PostgreSQL .*start the aggregator first"):
        ConsoleDB(dsn=dsn)
    assert console_tables_exist(dsn=dsn) is False  # the refused open created nothing
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('console_schema')").fetchone() == (None,)
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bad = f"host=127.0.0.1 port={port} user=vigil password=sekret-pw dbname=x connect_timeout=3"
    with pytest.raises(ConsoleError) as info:
        ConsoleDB(dsn=bad)
    assert "cannot connect to PostgreSQL" in str(info.value) and "password=***" in str(info.value)
    assert "sekret-pw" not in str(info.value)
    with pytest.raises(ConsoleError) as info:
        console_tables_exist(dsn=bad)
    assert "sekret-pw" not in str(info.value)


def test_pg_transit_search_uses_the_same_database(dsn):
    from vigil.plates.transits import PgTransitStore

    PgEventStore(dsn).close()
    db = ConsoleDB(dsn=dsn)
    try:
        app = create_app(db, follow=False)
        ctx = app.app.app.state.console
        assert ctx.transits_path is None and ctx.transits_dsn == dsn
        store = ctx.transit_store()
        assert isinstance(store, PgTransitStore)
        store.close()
    finally:
        db.close()


# ---------------------------------------------------------------------- command line
def test_cli_user_add_on_each_backend(backend, monkeypatch, capsys):
    from vigil.cli import main

    monkeypatch.setattr(sys, "stdin", io.StringIO("sup-password\n"))
    assert main(["console", "user", "add", "sup", "--role", "supervisor", *backend.cli]) == 0
    assert capsys.readouterr().out.strip() == "user sup (supervisor) saved"
    monkeypatch.setattr(sys, "stdin", io.StringIO("sup-password\n"))
    assert main(["console", "user", "add", "sup", "--role", "admin", *backend.cli]) == 2
    assert "exists" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("new-password\n"))
    assert main(["console", *backend.cli, "user", "add", "sup", "--role", "admin", "--replace"]) == 0
    db = backend.open()
    try:
        assert db.check_login("sup", "new-password") == {"name": "sup", "role": "admin"}
    finally:
        db.close()


def test_cli_dsn_refusals_and_dsn_file(dsn, tmp_path, monkeypatch, capsys):
    from vigil.cli import main

    PgEventStore(dsn).close()
    monkeypatch.delenv("VIGIL_DSN", raising=False)
    monkeypatch.delenv("VIGIL_DSN_FILE", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO("x-password\n"))
    assert main(["console", "user", "add", "x", "--role", "operator", "--dsn", "host=127.0.0.1 password=x"]) == 2
    err = capsys.readouterr().err
    assert "--dsn holds a password" in err and "password=x" not in err
    assert main(["console", "--dsn", "host=127.0.0.1 password=x"]) == 2
    assert "--dsn holds a password" in capsys.readouterr().err
    assert main(["console", "user", "add", "x", "--role", "operator"]) == 2
    assert "give exactly one of --db PATH" in capsys.readouterr().err
    assert main(["console", "--db", str(tmp_path / "e.db"), "--dsn", dsn]) == 2
    assert "give exactly one of --db PATH" in capsys.readouterr().err
    assert main(["console", "--dsn", dsn, "--state-db", str(tmp_path / "s.db")]) == 2
    assert "--state-db goes with --db" in capsys.readouterr().err

    secret = tmp_path / "dsn"
    secret.write_text(f"# the console's database\n{dsn} password=unused\n")
    secret.chmod(0o644)
    monkeypatch.setattr(sys, "stdin", io.StringIO("x-password\n"))
    assert main(["console", "user", "add", "x", "--role", "operator", "--dsn-file", str(secret)]) == 2
    assert "chmod 600" in capsys.readouterr().err
    os.chmod(secret, 0o600)  # trust auth: the password in the file is not checked
    monkeypatch.setattr(sys, "stdin", io.StringIO("x-password\n"))
    assert main(["console", "user", "add", "x", "--role", "operator", "--dsn-file", str(secret)]) == 0
    with ConsoleDBClosing(dsn) as db:
        assert db.check_login("x", "x-password") == {"name": "x", "role": "operator"}


class ConsoleDBClosing:
    """``with ConsoleDBClosing(dsn) as db``: a PostgreSQL console database, closed at the end."""

    def __init__(self, dsn: str) -> None:
        self.db = ConsoleDB(dsn=dsn)

    def __enter__(self) -> ConsoleDB:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.close()


def test_cli_console_on_postgres_with_repeated_streams(dsn, monkeypatch, capsys):
    import vigil.alerts.console.cli as console_cli
    from vigil.cli import main

    PgEventStore(dsn).close()
    seen: dict[str, Any] = {}

    def fake_serve(db, **kwargs):
        seen.update(kwargs, kind=db.kind, where=db.where, ping=db.ping())
        return 0

    monkeypatch.setattr(console_cli, "serve", fake_serve)
    argv = ["console", "--dsn", dsn, "--stream", "ipc:///tmp/agg-a", "--stream", "ipc:///tmp/agg-b"]
    assert main([*argv, "--insecure-dev"]) == 0
    assert seen["stream_endpoint"] == ["ipc:///tmp/agg-a", "ipc:///tmp/agg-b"]
    assert (seen["kind"], seen["ping"]) == ("postgres", True)
    seen.clear()
    assert main(["console", "--dsn", dsn]) == 0 and seen["stream_endpoint"] is None
    # every endpoint is checked: a remote one without CURVE keys is refused
    assert main([*argv, "--stream", "tcp://192.0.2.7:5556", "--insecure-dev"]) == 2
    assert "192.0.2.7" in capsys.readouterr().err


@pytest.mark.parametrize(
    "endpoint, expected",
    [
        ("ipc:///tmp/a", "ipc:///tmp/a"),
        (["ipc:///tmp/a"], "ipc:///tmp/a"),
        (["ipc:///a", "ipc:///b"], ["ipc:///a", "ipc:///b"]),
    ],
)
def test_follower_passes_one_endpoint_or_the_failover_list(monkeypatch, endpoint, expected):
    import zmq

    import vigil.alerts.console.live as live

    got: list[Any] = []
    follower: list[live.StreamFollower] = []

    class FakeClient:
        def __init__(self, endpoints: Callable | Any, **kwargs) -> None:
            got.append(endpoints)
            follower[0]._stop.set()
            raise zmq.ZMQError(zmq.EAGAIN, "test")

    monkeypatch.setattr(live, "StreamClient", FakeClient)
    f = live.StreamFollower(live.Hub(), endpoint=endpoint, start_seq=0)
    follower.append(f)
    f.start()
    f.stop()
    assert got == [expected]


def test_account_administration_on_both_databases(backend):
    from vigil.alerts.console.accounts import AccountError

    db = backend.open()
    db.add_user("root", "admin", "admin-password")
    db.add_user("op", "operator", "op-password")
    with pytest.raises(AccountError, match="last enabled administrator"):
        db.set_role("root", "operator")  # on PostgreSQL under the accounts advisory lock
    with pytest.raises(AccountError, match="last enabled administrator"):
        db.set_enabled("root", False)
    token = db.new_session("op")
    assert db.set_enabled("op", False) == 1 and db.session(token) is None
    assert db.check_login("op", "op-password") is None
    assert db.set_enabled("op", True) == 0 and db.check_login("op", "op-password") is not None
    assert db.reset_password("op", "new-op-password") == 0 and db.check_login("op", "new-op-password")
    assert [(a["name"], a["role"], a["enabled"]) for a in db.accounts()] == [
        ("op", "operator", True), ("root", "admin", True),
    ]  # fmt: skip
    db.close()
