"""`vigil keys`, CURVE between publisher/operator client and aggregator (in-process): roles
(edge keys publish, operator keys read), allow-lists read by content, bad files skipped,
refusals counted, revoked keys losing their live connections."""

import argparse
import json
import logging
import os
import re
import shutil
import stat
import time

import pytest
import zmq

from vigil.alerts.aggregator import Aggregator, AggregatorError
from vigil.alerts.cli import add_commands
from vigil.alerts.keys import (
    CurveServer,
    KeyFileError,
    authorize_key,
    client_configurator,
    new_key_pair,
    revoke_key,
)
from vigil.alerts.publisher import EventPublisher
from vigil.alerts.tail import StreamClient


def run(argv):
    parser = argparse.ArgumentParser(prog="vigil")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_keys_new_writes_pyzmq_certificates(tmp_path, capsys):
    d = tmp_path / "keys"
    assert run(["keys", "new", "aggregator", "--dir", str(d)]) == 0
    assert run(["keys", "new", "edge1", "--dir", str(d), "--authorize"]) == 0
    pub, sec = zmq.auth.load_certificate(str(d / "edge1.key_secret"))
    assert len(pub) == 40 and len(sec) == 40
    assert zmq.auth.load_certificate(str(d / "authorized" / "edge" / "edge1.key"))[0] == pub
    assert stat.S_IMODE(os.stat(d / "edge1.key_secret").st_mode) == 0o600
    assert run(["keys", "new", "edge1", "--dir", str(d)]) == 2  # no silent overwrite
    assert "already exists" in capsys.readouterr().err
    assert run(["keys", "new", "../evil", "--dir", str(d)]) == 2


def test_aggregator_needs_keys_or_insecure_dev(tmp_path, capsys):
    assert run(["aggregator", "--db", str(tmp_path / "e.db")]) == 2
    assert "--insecure-dev" in capsys.readouterr().err
    assert run(["aggregator", "--db", str(tmp_path / "e.db"), "--keys", str(tmp_path / "none")]) == 2
    assert "aggregator.key_secret" in capsys.readouterr().err
    assert not (tmp_path / "e.db").exists()


def test_curve_round_trip_and_public_bind_allowed_with_keys(tmp_path, make_event, running_aggregator, wait_until):
    keys = tmp_path / "k"
    new_key_pair("aggregator", keys)
    new_key_pair("edge", keys, authorize=True)
    new_key_pair("op", keys, authorize="operator")
    with pytest.raises(KeyFileError):
        client_configurator(keys, "missing")
    # with keys, a non-loopback bind is allowed (here all interfaces, random port)
    with running_aggregator(tmp_path / "e.db", "tcp://0.0.0.0:*", "tcp://127.0.0.1:*", keys=keys) as agg:
        port = agg.ingest_endpoint.rsplit(":", 1)[1]
        client = StreamClient(agg.stream_endpoint, since=0, configure_socket=client_configurator(keys, "op"))
        try:
            ev = make_event()
            with EventPublisher(f"tcp://127.0.0.1:{port}", configure_socket=client_configurator(keys, "edge")) as pub:
                pub.publish(ev)
                assert pub.flush(5).complete
            item = client.recv(5)
            assert item is not None and item[1] == ev.to_bytes()
        finally:
            client.close()
        # a key added to authorized/ later is accepted without a restart
        new_key_pair("late", keys, authorize=True)
        with EventPublisher(f"tcp://127.0.0.1:{port}", configure_socket=client_configurator(keys, "late")) as pub:
            pub.publish(make_event())
            assert pub.flush(5).complete


def test_aggregator_without_allow_list_folder_refuses(tmp_path):
    keys = tmp_path / "k"
    new_key_pair("aggregator", keys)
    with pytest.raises(AggregatorError, match="authorized"):
        Aggregator(tmp_path / "e.db", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", keys=keys)


# ---------------------------------------------------------------------- roles, reloading, revocation
def _public(keys, name):
    return zmq.auth.load_certificate(str(keys / f"{name}.key"))[0]


def _keys(tmp_path, edge=(), operators=(), others=()):
    keys = tmp_path / "k"
    new_key_pair("aggregator", keys)
    (keys / "authorized").mkdir(exist_ok=True)
    for name in edge:
        new_key_pair(name, keys, authorize="edge")
    for name in operators:
        new_key_pair(name, keys, authorize="operator")
    for name in others:
        new_key_pair(name, keys)
    return keys


def test_keys_cli_authorizes_by_role_revokes_and_lists(tmp_path, capsys):
    d = tmp_path / "keys"
    assert run(["keys", "new", "aggregator", "--dir", str(d)]) == 0
    assert run(["keys", "new", "op1", "--dir", str(d), "--authorize", "operator"]) == 0
    assert run(["keys", "new", "both", "--dir", str(d), "--authorize", "edge", "--authorize", "operator"]) == 0
    assert (d / "authorized" / "operators" / "op1.key").is_file()
    assert not (d / "authorized" / "edge" / "op1.key").exists()
    assert all((d / "authorized" / role / "both.key").is_file() for role in ("edge", "operators"))
    # a key made on the node: its public file is authorized on the aggregator
    node = tmp_path / "node"
    new_key_pair("node7", node)
    new_key_pair("other", node)
    assert run(["keys", "authorize", str(node / "node7.key"), "--dir", str(d), "--role", "edge"]) == 0
    # given the secret file by mistake, only the public key lands in the allow-list
    assert run(["keys", "authorize", str(node / "node7.key_secret"), "--dir", str(d), "--role", "operator"]) == 0
    assert "secret-key" not in (d / "authorized" / "operators" / "node7.key").read_text()
    assert zmq.auth.load_certificate(str(d / "authorized" / "operators" / "node7.key"))[0] == _public(node, "node7")
    # another key under a name already authorized would revoke it: not without --force
    argv = ["keys", "authorize", str(node / "other.key"), "--dir", str(d), "--role", "edge", "--name", "node7"]
    assert run(argv) == 2
    assert "already holds another key" in capsys.readouterr().err
    assert run([*argv, "--force"]) == 0
    capsys.readouterr()
    assert run(["keys", "list", "--dir", str(d), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted((r["role"], r["name"]) for r in rows) == [
        ("edge", "both"),
        ("edge", "node7"),
        ("operator", "both"),
        ("operator", "node7"),
        ("operator", "op1"),
    ]
    assert run(["keys", "revoke", "op1", "--dir", str(d)]) == 0
    assert not (d / "authorized" / "operators" / "op1.key").exists()
    assert run(["keys", "revoke", "op1", "--dir", str(d)]) == 2
    assert run(["keys", "revoke", "both", "--dir", str(d), "--role", "edge"]) == 0
    assert (d / "authorized" / "operators" / "both.key").is_file()
    with pytest.raises(SystemExit):
        run(["keys", "new", "x", "--dir", str(d), "--authorize", "admin"])


def test_allow_list_is_read_by_content_so_an_in_place_overwrite_is_noticed(tmp_path):
    keys = _keys(tmp_path, edge=["a"], others=["b"])
    server = CurveServer(keys)
    a, b = _public(keys, "a"), _public(keys, "b")
    assert server.allowed("edge") == {a} and server.allowed("operator") == set()
    path = keys / "authorized" / "edge" / "a.key"
    before = os.stat(path)
    folder_before = os.stat(path.parent)
    content = path.read_bytes()
    with open(path, "r+b") as fh:  # same inode, same size, same file count; mtime put back
        fh.write(content.replace(a, b))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert os.stat(path.parent).st_mtime_ns == folder_before.st_mtime_ns
    assert server.refresh() is True
    assert server.allowed("edge") == {b}
    assert server.revocations == {"ingest": 1, "stream": 0}
    assert server.refresh() is False  # nothing changed since
    # the same key under another file name is not a revocation
    path.rename(path.with_name("renamed.key"))
    assert server.refresh() is False and server.revocations["ingest"] == 1


def test_a_bad_allow_list_file_is_skipped_and_logged_once(tmp_path, caplog):
    keys = _keys(tmp_path, edge=["e1", "e2"], others=["e3"])
    edge = keys / "authorized" / "edge"
    (edge / "garbage.key").write_text("not a certificate\n")
    (edge / "folder.key").mkdir()  # unreadable as a file (the tests run as root: chmod would not do)
    (edge / "dangling.key").symlink_to(tmp_path / "nowhere.key")
    caplog.set_level(logging.INFO, logger="vigil.alerts.keys")
    server = CurveServer(keys)
    e1, e2, e3 = (_public(keys, n) for n in ("e1", "e2", "e3"))
    assert server.allowed("edge") == {e1, e2}
    # the list is not frozen: a revocation and an addition still take effect
    (edge / "e2.key").unlink()
    authorize_key(keys / "e3.key", keys, "edge")
    for _ in range(3):
        server.refresh()
    assert server.allowed("edge") == {e1, e3}
    assert server.revocations["ingest"] == 1
    for name in ("garbage.key", "folder.key", "dangling.key"):
        lines = [r for r in caplog.records if r.levelno == logging.WARNING and name in r.getMessage()]
        assert len(lines) == 1, (name, [r.getMessage() for r in caplog.records])
    # a file repaired is read again, and said so
    (edge / "garbage.key").write_bytes((keys / "e2.key").read_bytes())
    server.refresh()
    assert server.allowed("edge") == {e1, e2, e3}
    assert any("garbage.key is readable again" in r.getMessage() for r in caplog.records)


def test_keys_directly_in_authorized_are_read_as_edge_keys_with_a_warning(tmp_path, caplog):
    keys = _keys(tmp_path, others=["old"])
    shutil.copyfile(keys / "old.key", keys / "authorized" / "old.key")  # the layout before roles
    caplog.set_level(logging.WARNING, logger="vigil.alerts.keys")
    server = CurveServer(keys)
    assert server.allowed("edge") == {_public(keys, "old")}
    assert server.allowed("operator") == set()
    assert "layout before roles" in caplog.text and "authorized/operators" in caplog.text
    # moving it into authorized/edge/ is not a revocation
    (keys / "authorized" / "edge").mkdir()
    os.replace(keys / "authorized" / "old.key", keys / "authorized" / "edge" / "old.key")
    assert server.refresh() is False and server.revocations["ingest"] == 0


def test_edge_keys_only_publish_operator_keys_only_read_and_refusals_are_counted(
    tmp_path, make_event, running_aggregator, wait_until, caplog
):
    keys = _keys(tmp_path, edge=["edge1"], operators=["op1"])
    server = CurveServer(keys)
    caplog.set_level(logging.INFO, logger="vigil.alerts")
    with running_aggregator(tmp_path / "e.db", keys=server) as agg:
        reader = StreamClient(agg.stream_endpoint, since=0, configure_socket=client_configurator(keys, "op1"))
        edge_reader = StreamClient(agg.stream_endpoint, since=0, configure_socket=client_configurator(keys, "edge1"))
        pub = EventPublisher(agg.ingest_endpoint, configure_socket=client_configurator(keys, "edge1"))
        op_pub = EventPublisher(agg.ingest_endpoint, configure_socket=client_configurator(keys, "op1"))
        try:
            ev = make_event()
            op_pub.publish(make_event(camera="forged"))
            pub.publish(ev)
            assert pub.flush(10).complete
            item = reader.recv(10)
            assert item is not None and item[1] == ev.to_bytes()
            # an operator key cannot publish, an edge key cannot read the stream
            assert wait_until(lambda: op_pub.report().link == "refused", 10)
            assert op_pub.report().acknowledged == 0
            assert edge_reader.recv(0.5) is None and not edge_reader.subscribed
            assert wait_until(lambda: min(server.denied_by_domain.values()) >= 1, 10)
            assert agg.stats()["unauthorized"] == server.denied >= 2
        finally:
            op_pub.close(0)
            pub.close()
            reader.close()
            edge_reader.close()
        assert agg.store.count() == (1, 1)
    # the counters (and so the log lines) carry the refusals, not only stats()
    (line,) = [r.getMessage() for r in caplog.records if "aggregator stopping" in r.getMessage()]
    assert int(re.search(r"unauthorized=(\d+)", line).group(1)) >= 2
    assert "it is an operator key" in caplog.text and "it is an edge key" in caplog.text


def test_a_revoked_key_loses_its_live_connections_and_honest_clients_lose_nothing(
    tmp_path, make_event, running_aggregator, wait_until
):
    keys = _keys(tmp_path, edge=["edge1", "edge2"], operators=["op1", "op2"])
    server = CurveServer(keys)
    with running_aggregator(tmp_path / "e.db", keys=server) as agg:
        cfg = {n: client_configurator(keys, n) for n in ("edge1", "edge2", "op1", "op2")}
        honest_reader = StreamClient(agg.stream_endpoint, since=0, configure_socket=cfg["op1"])
        revoked_reader = StreamClient(agg.stream_endpoint, since=0, configure_socket=cfg["op2"])
        honest = EventPublisher(agg.ingest_endpoint, configure_socket=cfg["edge1"], timeout_s=0.5)
        revoked = EventPublisher(agg.ingest_endpoint, configure_socket=cfg["edge2"], timeout_s=0.5)
        got = {"op1": [], "op2": []}

        def drain(client, name, until, timeout_s):
            deadline = time.monotonic() + timeout_s
            while len(got[name]) < until and time.monotonic() < deadline:
                item = client.recv(0.05)
                if item is not None:
                    got[name].append(item[0])

        try:
            honest.publish(make_event(camera="cam1"))
            revoked.publish(make_event(camera="cam2"))
            assert honest.flush(10).complete and revoked.flush(10).complete
            drain(honest_reader, "op1", 2, 10)
            drain(revoked_reader, "op2", 2, 10)
            assert got == {"op1": [1, 2], "op2": [1, 2]}
            # revoked while connected: the aggregator reopens both sockets within seconds
            revoke_key("edge2", keys)
            revoke_key("op2", keys)
            assert wait_until(lambda: agg.stats()["revocations"] >= 2, 10), agg.stats()
            for _ in range(20):
                honest.publish(make_event(camera="cam1"))
                revoked.publish(make_event(camera="cam2"))
            assert honest.flush(20).complete  # reconnected, resent what was unacknowledged
            assert wait_until(lambda: revoked.report().link == "refused", 10)
            assert revoked.report().acknowledged == 1  # nothing since the revocation
            drain(honest_reader, "op1", 22, 20)
            assert got["op1"] == list(range(1, 23))  # everything, in order, nothing lost
            assert wait_until(lambda: server.denied_by_domain["stream"] >= 1, 10)
            drain(revoked_reader, "op2", 3, 1.0)
            assert got["op2"] == [1, 2]  # nothing after the revocation
        finally:
            revoked.close(0)
            honest.close()
            honest_reader.close()
            revoked_reader.close()
        assert agg.store.count() == (22, 22)
