import argparse
import json

import pytest
import zmq

from vigil.alerts.cli import add_commands, main
from vigil.alerts.store import EventStore


def run(argv):
    parser = argparse.ArgumentParser(prog="vigil")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def db_with_events(tmp_path, make_event):
    path = tmp_path / "events.db"
    events = [make_event() for _ in range(3)]
    with EventStore(path) as store:
        store.add_many(events + [events[0]])
    return path, events


def test_events_count_json(db_with_events, capsys):
    path, _ = db_with_events
    assert run(["events", "count", "--db", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"events": 3, "distinct_ids": 3}
    assert run(["events", "count", "--db", str(path)]) == 0
    assert "3 event(s)" in capsys.readouterr().out


def test_events_export_jsonl(db_with_events, tmp_path, capsys):
    path, events = db_with_events
    assert run(["events", "export", "--db", str(path), "--format", "jsonl"]) == 0
    assert capsys.readouterr().out.splitlines() == [e.to_json() for e in events]
    out = tmp_path / "out.jsonl"
    assert main(["events", "export", "--db", str(path), "-o", str(out), "--since", "1"]) == 0
    assert out.read_text().splitlines() == [e.to_json() for e in events[1:]]
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_events_errors(tmp_path, capsys):
    assert run(["events", "count", "--db", str(tmp_path / "missing.db"), "--json"]) == 1
    err = capsys.readouterr().err
    assert "vigil events count: error: no event database" in err
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00garbage" * 200)
    assert run(["events", "export", "--db", str(junk)]) == 1
    assert "not a database" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run(["events", "export", "--db", str(junk), "--format", "csv"])
    assert exc.value.code == 2


def test_aggregator_refuses_public_bind(tmp_path, capsys):
    code = run(["aggregator", "--db", str(tmp_path / "e.db"), "--ingest", "tcp://0.0.0.0:5555", "--insecure-dev"])
    assert code == 2
    err = capsys.readouterr().err
    assert "refusing to bind tcp://0.0.0.0:5555" in err and "--insecure-dev" in err
    assert not (tmp_path / "e.db").exists()


def test_aggregator_address_in_use(tmp_path, capsys):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    try:
        code = run(
            [
                "aggregator",
                "--insecure-dev",
                "--db",
                str(tmp_path / "e.db"),
                "--ingest",
                f"tcp://127.0.0.1:{port}",
                "--stream",
                "tcp://127.0.0.1:*",
            ]
        )
    finally:
        sock.close(0)
        ctx.term()
    assert code == 1
    assert "in use" in capsys.readouterr().err


def test_tail_timeout_without_events(tmp_path, capsys):
    ctx = zmq.Context()
    pub = ctx.socket(zmq.ROUTER)  # an aggregator that never answers
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    try:
        code = run(["tail", "--connect", f"tcp://127.0.0.1:{port}", "--max-events", "1", "--timeout", "0.3"])
    finally:
        pub.close(0)
        ctx.term()
    assert code == 1
    assert "0 of 1 event(s)" in capsys.readouterr().err
