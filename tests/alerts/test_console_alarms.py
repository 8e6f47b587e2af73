"""Alarms, not events: synthetic alarm lifecycles (start, updates, end; several alarms
overlapping on several cameras; a store and a console restarted in between; a resent
duplicate and an update that arrives after its end) through the real event store (SQLite and
PostgreSQL) give exactly one console row per alarm and exact open counts; filters, sorting,
actions by event id or alarm id, the store migration that back-fills ``alarm_id``, and the
alarm pages."""

from __future__ import annotations

import re
import sqlite3
import time
import uuid

import pytest

pytest.importorskip("jinja2")

from vigil.alerts.console.alarmdb import site_of  # noqa: E402
from vigil.alerts.console.db import open_console_db  # noqa: E402
from vigil.alerts.events import schema1_alarm_id, utc_iso  # noqa: E402
from vigil.alerts.store import EventStore, PgEventStore  # noqa: E402


def T(n: int) -> str:
    """The observation time of the ``n``-th event built (seconds after 2026-11-23T07:00:00Z)."""
    return utc_iso(1795417200.0 + n)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    """``(open_store, console target)``: a function opening the aggregator's store anew (a
    restart), and the keywords of :func:`open_console_db`."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("dsn")
        return (lambda: PgEventStore(dsn)), {"dsn": dsn}
    path = str(tmp_path / "events.db")
    return (lambda: EventStore(path)), {"db": path}


class Alarms:
    """Builds the events of alarms: ``ev(name, state, ...)`` (the same ``name``, the same alarm)."""

    def __init__(self, make_event):
        self.make = make_event
        self.ids: dict[str, str] = {}
        self.seq: dict[str, int] = {}
        self.n = 0

    def ev(self, name, state, *, camera, type="distance_violation", severity="warning", **payload):
        alarm = self.ids.setdefault(name, str(uuid.uuid4()))
        self.seq[camera] = self.seq.get(camera, 0) + 1
        self.n += 1
        if state == "end":
            payload.setdefault("reason", "clear")
        return self.make(
            camera=camera,
            type=type,
            seq=self.seq[camera],
            time=T(self.n),
            state=state,
            severity=severity,
            payload={"alarm_id": alarm, **payload},
        )


def _rows(db, **filters):
    return {a["id"]: a for a in db.alarms(**filters, limit=1000)}


def test_one_row_per_alarm_and_exact_open_counts_across_restarts(backend, make_event):
    open_store, target = backend
    al = Alarms(make_event)
    store = open_store()
    a1 = al.ev("a", "start", camera="piazza-nord", value=1.2, distance_m=1.2, min_distance_m=1.2)
    b1 = al.ev("b", "start", camera="piazza-nord", type="occupancy_limit", severity="critical", zone="fontana")
    c1 = al.ev("c", "start", camera="gate/1", type="risk_level")
    a2 = al.ev("a", "update", camera="piazza-nord", severity="critical", value=0.8, distance_m=0.8, min_distance_m=0.8)
    store.add_many([a1, b1, c1, a2])
    store.close()
    db = open_console_db(**target)
    try:
        assert (len(_rows(db)), db.open_count()) == (3, 3)
    finally:
        db.close()
    # the aggregator restarts; the alarms go on; one event is resent (a duplicate, stored once)
    store = open_store()
    a3 = al.ev("a", "end", camera="piazza-nord", severity="info", value=2.4, distance_m=2.4, min_distance_m=0.8)
    c2 = al.ev("c", "update", camera="gate/1", type="risk_level")
    d1 = al.ev("d", "start", camera="gate/1", type="risk_level", severity="critical")
    b2 = al.ev("b", "end", camera="piazza-nord", type="occupancy_limit", severity="info", zone="fontana")
    late = al.ev("b", "update", camera="piazza-nord", type="occupancy_limit", zone="fontana")  # after its end
    store.add_many([a3, c2, a2, d1, b2, late])
    store.close()
    db = open_console_db(**target)  # the console restarts too
    try:
        rows = _rows(db)
        assert sorted(rows) == sorted(al.ids.values())  # one row per alarm, whatever its events
        a, b, c, d = (rows[al.ids[k]] for k in "abcd")
        assert (a["state"], a["events"], a["severity"], a["max_severity"]) == ("ended", 3, "info", "critical")
        assert (a["first_time"], a["last_time"], a["camera"]) == (T(1), T(5), "piazza-nord")
        assert (b["state"], b["events"], b["zone"]) == ("ended", 3, "fontana")  # the late update does not reopen it
        assert (c["state"], c["events"], d["state"], d["events"]) == ("open", 2, "open", 1)
        assert db.open_count() == 2
        assert db.open_count(site="piazza") == 0 and db.open_count(site="gate") == 2
        assert db.open_count(camera="gate/1", type="risk_level") == 2
        assert db.open_by_camera() == {"gate/1": (2, "critical")}
        # filters: state, severity (highest seen), site, type
        assert set(_rows(db, state="open")) == {al.ids["c"], al.ids["d"]}
        assert set(_rows(db, state="ended")) == {al.ids["a"], al.ids["b"]}
        assert set(_rows(db, severity="critical")) == {al.ids[k] for k in "abd"}
        assert set(_rows(db, site="piazza")) == {al.ids["a"], al.ids["b"]}
        assert _rows(db, site="nowhere") == {}
        assert set(_rows(db, type="risk_level", site="gate")) == {al.ids["c"], al.ids["d"]}
        # priority: open first, then highest severity, then newest start; age: newest start first
        assert [r["id"] for r in db.alarms()] == [al.ids[k] for k in "dcba"]
        assert [r["id"] for r in db.alarms(sort="age")] == [al.ids[k] for k in "dcba"]
        # actions by an event's id belong to its alarm; by the alarm id too
        assert db.alarm_key(a2.id) == al.ids["a"] and db.alarm_key(al.ids["a"]) == al.ids["a"]
        assert db.alarm_key(str(uuid.uuid4())) is None
        assert db.add_action(a1.id, "op", "ack") == al.ids["a"]
        db.add_action(al.ids["a"], "op", "note", "on it")
        db.add_action(d1.id, "sam", "close")
        with pytest.raises(ValueError, match="no stored alarm"):
            db.add_action(str(uuid.uuid4()), "op", "ack")
        assert [x["action"] for x in db.actions(a3.id)] == ["ack", "note"]
        rows = _rows(db)
        assert (rows[al.ids["a"]]["status"], rows[al.ids["a"]]["status_user"]) == ("acknowledged", "op")
        assert rows[al.ids["d"]]["status"] == "closed" and rows[al.ids["c"]]["status"] == "new"
        assert set(_rows(db, status="new")) == {al.ids["b"], al.ids["c"]}
        assert set(_rows(db, status="closed")) == {al.ids["d"]}
        assert db.statuses([a2.id])[a2.id]["status"] == "acknowledged"
        # the lifecycle: every event of the alarm in order
        assert [e["id"] for e in db.alarm_events(al.ids["b"])] == [b1.id, b2.id, late.id]
        assert [e["state"] for e in db.alarm_events(al.ids["a"])] == ["start", "update", "end"]
    finally:
        db.close()


def test_sites_are_the_camera_names_before_the_first_dash_or_slash():
    assert [site_of(c) for c in ("piazza-nord", "piazza/2", "piazza", "gate-1/b", "-x")] == [
        "piazza",
        "piazza",
        "piazza",
        "gate",
        "",
    ]


def test_store_migration_backfills_alarm_ids_of_schema_1_and_2_rows(tmp_path, make_event):
    """A file of store schema 2 (no alarm_id column) opened by this build: the column is added
    and filled from each row's JSON (schema 1 rows: the derived id), odd rows left NULL."""
    path = tmp_path / "old.db"
    ev = make_event(camera="cam-a", seq=1)
    schema1 = '{"schema": 1, "id": "%s", "type": "occupancy_limit", "camera": "cam-b", "seq": 1,' % uuid.uuid4()
    schema1 += ' "time": "2026-11-23T07:00:00Z", "payload": {"zone": "hall"}}'
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);"
        "INSERT INTO schema_version VALUES (1, 'x'), (2, 'x');"
        "CREATE TABLE events (stream_seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
        " camera TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, time TEXT NOT NULL,"
        " severity TEXT NOT NULL, state TEXT NOT NULL, json TEXT NOT NULL, received_at TEXT NOT NULL);"
        "CREATE INDEX events_camera_seq ON events (camera, seq); CREATE INDEX events_time ON events (time);"
        "CREATE TABLE event_conflicts (id TEXT NOT NULL, digest TEXT NOT NULL, json TEXT NOT NULL,"
        " received_at TEXT NOT NULL, PRIMARY KEY (id, digest));"
    )
    rows = [
        (ev.id, "cam-a", 1, ev.type, ev.time, "warning", "start", ev.to_json()),
        (str(uuid.uuid4()), "cam-b", 1, "occupancy_limit", ev.time, "warning", "start", schema1),
        (str(uuid.uuid4()), "cam-c", 1, "distance_violation", ev.time, "warning", "start", "{not json"),
        (str(uuid.uuid4()), "cam-c", 2, "heatmap", ev.time, "info", "update", '{"payload": {"alarm_id": "x"}}'),
    ]
    con.executemany(
        "INSERT INTO events (id, camera, seq, type, time, severity, state, json, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'x')",
        rows,
    )
    con.commit()
    con.close()
    EventStore(path).close()
    con = sqlite3.connect(path)
    got = [r[0] for r in con.execute("SELECT alarm_id FROM events ORDER BY stream_seq")]
    con.close()
    assert got == [ev.payload["alarm_id"], schema1_alarm_id("cam-b", "occupancy_limit", {"zone": "hall"}), None, None]


def test_console_refuses_an_event_table_without_alarm_ids(tmp_path):
    from vigil.alerts.console.db import ConsoleDB, ConsoleError

    path = tmp_path / "e.db"
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE events (stream_seq INTEGER PRIMARY KEY, id TEXT, camera TEXT, seq INTEGER,"
        " type TEXT, time TEXT, severity TEXT, state TEXT, json TEXT, received_at TEXT)"
    )
    con.close()
    with pytest.raises(ConsoleError, match="no alarm_id column .*start this build's aggregator"):
        ConsoleDB(path)


def test_pages_show_alarms_in_words_and_the_detail_lists_every_event(tmp_path, make_event):
    from starlette.testclient import TestClient

    from vigil.alerts.console.app import create_app

    al = Alarms(make_event)
    store = EventStore(tmp_path / "events.db")
    dist = dict(min_distance_m=0.76, duration_s=40.0, zone="piazza")
    evs = [
        al.ev("a", "start", camera="centro-1", value=0.9, distance_m=0.9, **dist),
        al.ev("a", "update", camera="centro-1", severity="critical", value=0.76, distance_m=0.76, **dist),
        al.ev("a", "end", camera="centro-1", value=1.9, distance_m=1.9, **dist),
        al.ev("b", "start", camera="centro-1", type="occupancy_limit", severity="critical", zone="fontana"),
    ]
    store.add_many(evs)
    store.close()
    db = open_console_db(db=tmp_path / "events.db")
    db.add_user("op", "operator", "op-password")
    try:
        with TestClient(create_app(db, follow=False)) as client:
            page = client.get("/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            client.post("/login", data={"csrf": csrf, "username": "op", "password": "op-password"})
            client.cookies.set("vigil_lang", "it")
            listing = client.get("/")
            assert listing.text.count("<tr class=") == 2
            assert re.search(r'id="open-count">1<', listing.text)
            assert "2 persone a 0,76 m per 40 s — piazza" in listing.text
            assert listing.text.index(f'data-id="{al.ids["b"]}"') < listing.text.index(f'data-id="{al.ids["a"]}"')
            ended = client.get("/?state=ended&site=centro")
            assert ended.text.count("<tr class=") == 1 and f'data-id="{al.ids["a"]}"' in ended.text
            r = client.get(f"/alarm/{evs[1].id}", follow_redirects=False)
            assert (r.status_code, r.headers["location"]) == (303, f"/alarm/{al.ids['a']}")
            detail = client.get(f"/alarm/{al.ids['a']}").text
            lifecycle = detail.split('id="lifecycle"', 1)[1]
            assert [m for m in re.findall(r'<tr data-id="([^"]+)"', lifecycle)] == [e.id for e in evs[:3]]
            assert re.search(r'id="alarm-events">3<', detail) and "0,76 m" in detail
            client.cookies.set("vigil_lang", "en")
            assert "2 people 0.76 m apart for 40 s — piazza" in client.get("/").text
    finally:
        db.close()


def test_the_alarm_list_stays_fast_on_many_events(tmp_path, make_event):
    """20k events (5k alarms of 4 events): the grouped list query, the open count and one
    alarm's detail, each well under a second (measured about 100k in bench console-alarms)."""
    store = EventStore(tmp_path / "events.db", synchronous="OFF")
    al = Alarms(make_event)
    batch = []
    for k in range(5000):
        cam = f"site{k % 7}-cam{k % 13}"
        for state in ("start", "update", "update", "end" if k % 3 else "update"):
            batch.append(al.ev(k, state, camera=cam))
        if len(batch) >= 2000:
            store.add_many(batch)
            batch = []
    store.add_many(batch)
    store.close()
    db = open_console_db(db=tmp_path / "events.db")
    try:
        t0 = time.perf_counter()
        rows = db.alarms(limit=200)
        n_open = db.open_count()
        one = db.alarm_events(rows[0]["id"])
        took = time.perf_counter() - t0
        assert (len(rows), n_open, len(one)) == (200, 1667, 4)
        assert all(r["state"] == "open" for r in rows)
        assert took < 3.0, f"alarm list took {took:.2f} s"
        print(f"alarm list + open count + detail on 20k events: {took * 1000:.0f} ms")
    finally:
        db.close()


def test_console_migration_gives_old_actions_their_alarm(tmp_path, make_event):
    """Actions recorded by event id before console schema 2 belong to their event's alarm after
    it; an action whose event is gone keeps its event id as its alarm's."""
    import vigil.alerts.console.db as console_db
    from vigil.alerts.console.dbconn import DDL_TOKENS

    al = Alarms(make_event)
    start, end = al.ev("a", "start", camera="c"), al.ev("a", "end", camera="c")
    path = tmp_path / "events.db"
    store = EventStore(path)
    store.add_many([start, end])
    store.close()
    gone = str(uuid.uuid4())
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(console_db._SCHEMA_TABLE)
    for stmt in console_db._MIGRATIONS[1]:
        for token, forms in DDL_TOKENS.items():
            stmt = stmt.replace(token, forms[0])
        con.execute(stmt)
    con.execute("INSERT INTO console_schema VALUES (1, 'x')")
    for eid, action in ((start.id, "ack"), (end.id, "close"), (gone, "ack")):
        con.execute(
            'INSERT INTO console_actions (event_id, time, "user", action, note) VALUES (?, ?, ?, ?, ?)',
            (eid, T(1), "op", action, ""),
        )
    con.close()
    db = open_console_db(db=path)
    try:
        assert db.statuses([al.ids["a"], start.id]) == {
            al.ids["a"]: {"status": "closed", "user": "op", "time": T(1)},
            start.id: {"status": "closed", "user": "op", "time": T(1)},
        }
        assert [a["action"] for a in db.actions(al.ids["a"])] == ["ack", "close"]
        assert db.actions(gone)[0]["action"] == "ack"
        assert db.purge(audit_days=365, actions_days=365)["console_actions"] == 1  # the one of no stored alarm
        assert [a["action"] for a in db.actions(end.id)] == ["ack", "close"]
    finally:
        db.close()


def test_pg_store_migration_backfills_alarm_ids(dsn, make_event):
    import psycopg

    import vigil.alerts.store.postgres as pg

    ev = make_event(camera="cam-a", seq=1)
    odd = str(uuid.uuid4())
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("CREATE TABLE vigil_schema_version (version integer PRIMARY KEY, applied_at text NOT NULL)")
        for v in (1, 2):
            for stmt in pg._MIGRATIONS[v]:
                con.execute(stmt)
            con.execute("INSERT INTO vigil_schema_version VALUES (%s, 'x')", (v,))
        con.execute(
            "INSERT INTO events (id, camera, seq, type, time, severity, state, json, received_at) VALUES"
            " (%s, 'cam-a', 1, %s, %s, 'warning', 'start', %s, 'x'),"
            " (%s, 'cam-b', 1, 'risk_level', %s, 'warning', 'start', '{not json', 'x')",
            (ev.id, ev.type, ev.time, ev.to_json(), odd, ev.time),
        )
    store = PgEventStore(dsn)
    try:
        assert store.schema_version == 3
        assert store._fetch("SELECT id::text, alarm_id FROM events ORDER BY stream_seq", ()) == [
            (ev.id, ev.payload["alarm_id"]),
            (odd, None),
        ]
    finally:
        store.close()
