"""`vigil keys new`, CURVE between publisher/operator client and aggregator (in-process)."""

import argparse
import os
import stat

import pytest
import zmq

from vigil.alerts.aggregator import Aggregator, AggregatorError
from vigil.alerts.cli import add_commands
from vigil.alerts.keys import KeyFileError, client_configurator, new_key_pair
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
    assert zmq.auth.load_certificate(str(d / "authorized" / "edge1.key"))[0] == pub
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
    new_key_pair("op", keys, authorize=True)
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
