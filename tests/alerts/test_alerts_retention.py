"""Retention per data class at the aggregator (:mod:`vigil.alerts.aggregator.retention`):
exact rows deleted and kept around each cutoff on SQLite and on a real PostgreSQL server,
plate events left to their transit retention, console tables through the hook, the one-shot
``vigil events purge`` (``--dry-run`` deletes nothing) and the log line per class."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import time

import pytest

from vigil.alerts.aggregator.retention import CLASSES, DAY_S, Retention, RetentionPolicy
from vigil.alerts.cli import main as alerts_main
from vigil.alerts.events import utc_iso
from vigil.alerts.store import EventStore, PgEventStore

KEY = b"k" * 32
NOW = 1_700_000_000.0  # a fixed "now" (2023-11-14), every time below relative to it
HIT = {
    "list": "A1",
    "list_name": "stolen",
    "plate": "AB123CD",
    "note": "",
    "exact": True,
    "source": "a1.csv",
    "line": 1,
}


def _open(backend, request, tmp_path, **kw):
    if backend == "sqlite":
        return EventStore(tmp_path / "events.db", **kw)
    return PgEventStore(request.getfixturevalue("dsn"), **kw)


def _ids(store) -> list[str]:
    buf = io.StringIO()
    store.export_jsonl(buf)
    return sorted(json.loads(line)["id"] for line in buf.getvalue().splitlines())


class Fixture:
    """Events, transits and conflicts at known ages (days before :data:`NOW`) around each
    default cutoff (transits and hits 15 days, events 90 days)."""

    def __init__(self, store, make_event) -> None:
        self.store = store
        self.make = make_event
        self.kept: list[str] = []
        self.gone: list[str] = []

    def at(self, days: float, type: str = "distance_violation", *, keep: bool, store: bool = True, **payload):
        event = self.make(camera="gate", type=type, time=utc_iso(NOW - days * DAY_S), payload=payload)
        (self.kept if keep else self.gone).append(event.id)
        if store:
            self.store.add(event)
        return event

    def build(self) -> None:
        at = self.at
        # events class (90 days): just older / exactly at / just younger than the cutoff
        at(90 + 1 / DAY_S, keep=False)
        at(90, keep=True)  # exactly at the cutoff: not older, kept
        at(90 - 1 / DAY_S, keep=True)
        at(1, "camera_health", keep=True)
        # heat maps (7 days): their own class, whatever the events class keeps
        at(200, "heatmap", keep=False)
        at(7 + 1 / DAY_S, "heatmap", keep=False)
        at(7, "heatmap", keep=True)
        at(6, "heatmap", keep=True)
        # conflicting copies kept aside: an old one goes with the events class, a recent one stays
        old = at(100, keep=False)
        self.store.add(old.model_copy(update={"payload": {**old.payload, "value": 9.9}}))
        recent = at(10, keep=True)
        self.store.add(recent.model_copy(update={"payload": {**recent.payload, "value": 9.9}}))
        # plate transits (15 days) and list hits (15 days), with their transit rows
        with self.store.open_transits(key=KEY) as transits:
            for days, keep in ((16, False), (15 - 60 / DAY_S, True), (14, True)):
                transits.add_event(at(days, "plate_transit", keep=keep, plate="EF456GH", votes={"EF456GH": 2.0}))
            for days, keep in ((16, False), (14, True)):
                start = at(days, "plate_hit", keep=keep, plate="AB123CD", hits=[HIT], lists=["A1"])
                tid = start.payload["transit_id"]
                end = at(days, "plate_transit", keep=keep, plate="AB123CD", hits=[HIT], transit_id=tid)
                transits.add_event(end)
        at(40, "plate_transit", keep=False, plate="GH789JK")  # an orphan plate event (no transit row)


EXPECTED = {  # what the default policy deletes from Fixture at NOW
    "transits": {"deleted": 1, "events": 2},  # its plate_transit and the orphan
    "plate_hits": {"deleted": 1, "events": 2},  # its plate_hit and plate_transit
    "events": {"deleted": 3},  # 2 events (90 d + 1 s, the old conflicted one) and 1 conflict copy
    "heatmaps": {"deleted": 2},  # 200 days and 7 days + 1 s
}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_each_class_deletes_exactly_what_is_older_than_its_cutoff(backend, request, tmp_path, make_event, caplog):
    store = _open(backend, request, tmp_path)
    try:
        data = Fixture(store, make_event)
        data.build()
        not_plates = ("plate_transit", "plate_hit")
        assert store.count_events_before(utc_iso(NOW - 90 * DAY_S), exclude_types=not_plates) == 4  # heat map too
        assert store.count_events_before(utc_iso(NOW - 7 * DAY_S), only_types=("heatmap",)) == 2
        assert store.count_transits_before(NOW - 15 * DAY_S, hits=False) == 1
        assert store.count_transits_before(NOW - 15 * DAY_S, hits=True) == 1
        job = Retention(store)
        with caplog.at_level(logging.INFO, logger="vigil.alerts.aggregator.retention"):
            report = job.run_once(NOW)
        for cls, expected in EXPECTED.items():
            assert {k: report[cls][k] for k in expected} == expected, cls
        assert report["events"]["cutoff"] == utc_iso(NOW - 90 * DAY_S)
        assert report["transits"]["cutoff"] == report["plate_hits"]["cutoff"] == utc_iso(NOW - 15 * DAY_S)
        assert report["console_audit"]["skipped"] == "no console hook"
        assert _ids(store) == sorted(data.kept)
        assert len(store.conflicts()) == 1  # the recent copy
        with store.open_transits(key=KEY) as transits:
            assert transits.count() == 3  # two no-hit passes and one hit, all younger than 15 days
        lines = [r.getMessage() for r in caplog.records]
        assert "retention: events older than 90 days: 3 deleted" in lines
        assert "retention: heatmaps older than 7 days: 2 deleted" in lines
        assert "retention: transits older than 15 days: 1 deleted (and 2 event copies)" in lines
        assert "retention: plate hits older than 15 days: 1 deleted (and 2 event copies)" in lines
        assert sum(line.startswith("retention: ") for line in lines) == len(CLASSES)
        again = job.run_once(NOW)  # idempotent
        assert [again[c]["deleted"] for c in EXPECTED] == [0, 0, 0, 0]
        job.close()
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_plate_events_follow_their_transit_retention_not_the_events_one(backend, request, tmp_path, make_event):
    """A shorter event retention does not cut a plate pass short, a longer one does not keep it."""
    store = _open(backend, request, tmp_path)
    try:
        data = Fixture(store, make_event)
        with store.open_transits(key=KEY) as transits:
            transits.add_event(data.at(10, "plate_transit", keep=True, plate="EF456GH"))
            transits.add_event(data.at(20, "plate_transit", keep=False, plate="KL012MN"))
        data.at(10, keep=False)
        data.at(4, keep=True)
        report = Retention(store, RetentionPolicy(events_days=5, transit_days=15)).run_once(NOW)
        assert report["events"]["deleted"] == 1 and report["transits"]["deleted"] == 1
        assert _ids(store) == sorted(data.kept)
        report = Retention(store, RetentionPolicy(events_days=365, transit_days=5)).run_once(NOW)
        assert report["transits"] == {**report["transits"], "deleted": 1, "events": 1}
        assert _ids(store) == sorted(data.kept[1:])  # only the 4-day event is left
    finally:
        store.close()


def test_purge_events_deletes_in_chunks(tmp_path, make_event):
    with EventStore(tmp_path / "e.db") as store:
        for i in range(10):
            store.add(make_event(time=utc_iso(NOW - (100 + i) * DAY_S)))
        store.add(make_event(time=utc_iso(NOW)))
        assert store.purge_events(utc_iso(NOW - 90 * DAY_S), chunk_rows=3) == 10
        assert store.count() == (1, 1)


def test_two_jobs_at_once_on_one_postgres_database(dsn, make_event):
    """Two aggregators' jobs purging one database at the same moment: every row goes once,
    neither fails (their chunks skip the rows the other has locked)."""
    with PgEventStore(dsn) as store:
        for i in range(2500):
            store.add(make_event(camera=f"c{i % 7}", time=utc_iso(NOW - (91 + i % 50) * DAY_S)))
        store.add(make_event(time=utc_iso(NOW - DAY_S)))
    stores = [PgEventStore(dsn), PgEventStore(dsn)]
    reports: list[dict] = []
    barrier = threading.Barrier(2)

    def run(store):
        barrier.wait()
        reports.append(Retention(store).run_once(NOW))

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(reports) == 2 and not any("error" in r[c] for r in reports for c in EXPECTED)
        assert sum(r["events"]["deleted"] for r in reports) == 2500
        assert stores[0].count() == (1, 1)
    finally:
        for s in stores:
            s.close()


def test_policy_validates_days_and_interval():
    p = RetentionPolicy()
    assert (p.transit_days, p.hit_days, p.events_days, p.audit_days, p.actions_days, p.interval_s) == (
        15,
        15,
        90,
        365,
        90,
        3600,
    )
    for bad in (0, -1, float("nan"), float("inf"), True, "7"):
        with pytest.raises(ValueError, match="positive"):
            RetentionPolicy(events_days=bad)
    with pytest.raises(ValueError, match="interval_s"):
        RetentionPolicy(interval_s=0)


def test_schedule_due_start_and_one_pass_at_a_time(tmp_path):
    with EventStore(tmp_path / "e.db") as store:
        job = Retention(store, RetentionPolicy(interval_s=3600))
        assert job.due(NOW)
        t = job.start(NOW)
        assert t is not None
        t.join(10)
        assert job.last_report is not None and job.last_run == NOW
        assert not job.due(NOW + 3599) and job.start(NOW + 3599) is None
        assert job.due(NOW + 3600) and job.due(NOW - 1)  # the interval passed; the clock went back
        with job._run_lock:  # a pass running: a second one is not started
            assert job.start(NOW + 7200) is None
            assert job.run_once(NOW + 7200, wait=False) is None
        job.close()
        background = Retention(store)
        with background.in_background(check_s=0.01):
            deadline = time.monotonic() + 10
            while background.last_report is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert background.last_report is not None  # a pass at once, on the wall clock
        assert abs(background.last_run - time.time()) < 60


def test_console_hook_gets_the_policy_and_failures_are_reported(tmp_path):
    calls = []

    def hook(**kw):
        calls.append(kw)
        return {"console_audit": 3, "console_actions": 2, "console_sessions": 1}

    with EventStore(tmp_path / "e.db") as store:
        policy = RetentionPolicy(audit_days=100, actions_days=50)
        report = Retention(store, policy, console_purge=hook).run_once(NOW)
        assert calls == [{"now": NOW, "audit_days": 100.0, "actions_days": 50.0}]
        assert report["console_audit"]["deleted"] == 3 and report["console_actions"]["deleted"] == 2
        assert report["console_audit"]["cutoff"] == utc_iso(NOW - 100 * DAY_S)
        assert Retention(store, console_purge=lambda **kw: None).run_once(NOW)["console_actions"] == {
            "deleted": 0,
            "cutoff": utc_iso(NOW - 90 * DAY_S),
            "days": 90.0,
            "skipped": "no console tables",
        }

        def broken(**kw):
            raise RuntimeError("console database locked")

        report = Retention(store, console_purge=broken).run_once(NOW)
        assert report["console_audit"]["error"] == "console database locked"
        assert "error" not in report["events"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_console_tables_purged_through_the_cli_hook(backend, request, tmp_path, make_event):
    console_db = pytest.importorskip("vigil.alerts.console.db")
    if not hasattr(console_db, "open_console_db") or not hasattr(console_db.ConsoleDB, "purge"):
        pytest.skip("the console's purge interface is not there yet")
    from vigil.alerts.cli import _console_purge_hook

    store = _open(backend, request, tmp_path)
    try:
        stored = make_event()
        store.add(stored)
        target = {"db": str(tmp_path / "events.db")} if backend == "sqlite" else {"dsn": store.dsn}
        hook = _console_purge_hook(target.get("db"), target.get("dsn"))
        assert hook(now=time.time(), audit_days=1, actions_days=1) is None  # no console tables: none created
        assert not console_db.console_tables_exist(**target)
        cdb = console_db.open_console_db(**target)
        try:
            cdb.audit("ana", "login")
            cdb.add_action(stored.id, "ana", "ack")  # one action (on a stored alarm) and its audit row
        finally:
            cdb.close()
        job = Retention(store, RetentionPolicy(audit_days=365, actions_days=90), console_purge=hook)
        report = job.run_once(time.time() + 100 * DAY_S)  # actions are past 90 days, audit within 365
        assert (report["console_audit"]["deleted"], report["console_actions"]["deleted"]) == (0, 1)
        report = job.run_once(time.time() + 400 * DAY_S)
        assert report["console_audit"]["deleted"] >= 2 and report["console_actions"]["deleted"] == 0
    finally:
        store.close()


def test_cli_events_purge_dry_run_deletes_nothing_then_purges(tmp_path, make_event, capsys):
    path = tmp_path / "events.db"
    with EventStore(path) as store:
        data = Fixture(store, make_event)
        data.build()
        before = _ids(store)
    now = time.time()
    # the fixture is relative to NOW; shift the policy so the CLI's wall-clock now sees the same
    # ages (half a second early: the command runs a few milliseconds after this line)
    shift = (now - NOW + 0.5) / DAY_S
    days = ["--retention-events-days", f"{90 + shift!r}", "--retention-transit-days", f"{15 + shift!r}"]
    days += ["--retention-hit-days", f"{15 + shift!r}", "--retention-heatmap-days", f"{7 + shift!r}"]
    assert alerts_main(["events", "purge", "--db", str(path), "--dry-run", "--json", *days]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == set(CLASSES)
    classes = ("transits", "plate_hits", "events", "heatmaps")
    assert [report[c]["would_delete"] for c in classes] == [1, 1, 3, 2]
    assert all(report[c]["deleted"] == 0 for c in CLASSES)
    with EventStore(path, readonly=True) as store:
        assert _ids(store) == before
    assert alerts_main(["events", "purge", "--db", str(path), "--json", *days]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [report[c]["deleted"] for c in classes] == [1, 1, 3, 2]
    with EventStore(path, readonly=True) as store:
        assert _ids(store) == sorted(data.kept)
    assert alerts_main(["events", "purge", "--db", str(path), *days]) == 0
    out = capsys.readouterr().out
    assert "events" in out and "deleted 0" in out


def test_cli_events_purge_refuses_a_missing_file_and_bad_days(tmp_path, capsys):
    assert alerts_main(["events", "purge", "--db", str(tmp_path / "none.db")]) == 1
    assert "no event database" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(SystemExit):
        alerts_main(["events", "purge", "--db", "x.db", "--retention-events-days", "0"])


def test_cli_aggregator_has_the_retention_options():
    import argparse

    from vigil.alerts.cli import _retention_policy, add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(
        ["aggregator", "--db", "x.db", "--retention-hit-days", "30", "--retention-interval-s", "60"]
    )
    assert _retention_policy(args) == RetentionPolicy(hit_days=30, interval_s=60)


def test_the_console_purge_does_not_load_the_web_stack_into_the_aggregator(tmp_path):
    """The aggregator's retention thread purges the console's tables through
    :mod:`vigil.alerts.console.db`. It once imported the whole console package with it (web
    stack, site map, geometry, OpenCV and OpenBLAS threads: about 55 MB of the aggregator's RSS,
    appearing at a moment that depended on the thread's timing). Run in a fresh interpreter."""
    db = tmp_path / "events.db"
    EventStore(db).close()
    code = (
        "import sys, time, json\n"
        "from vigil.alerts.cli import _console_purge_hook\n"
        "from vigil.alerts.console import db as cdb\n"
        f"c = cdb.open_console_db(db={str(db)!r}); c.audit('ana', 'login'); c.close()\n"
        f"report = _console_purge_hook({str(db)!r}, None)(now=time.time(), audit_days=1, actions_days=1)\n"
        "heavy = ('cv2', 'numpy', 'starlette', 'jinja2', 'uvicorn', 'shapely', 'onnxruntime')\n"
        "print(json.dumps({'report': report, 'loaded': [m for m in heavy if m in sys.modules]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert result["report"] is not None  # the console tables were there and purged
