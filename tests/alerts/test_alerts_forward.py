"""Forwarding stored alarms (vigil.alerts.aggregator.forward) against real receivers on loopback:
an http.server that checks the HMAC signature, Debian's mosquitto broker (started here on a free
port with a private config), real SQLite stores and, where the binaries are there, PostgreSQL.
Receivers that answer 503 or are not there for a while must still get every event, in order."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vigil.alerts.aggregator.forward import BODY_FORMAT, Forwarding, sign, url_origin
from vigil.alerts.aggregator.forward_config import (
    ForwardConfigError,
    load_forward_config,
    parse_forward_config,
    read_secret_file,
)
from vigil.alerts.aggregator.forward_mqtt import topic_for
from vigil.alerts.cli import main as cli_main
from vigil.alerts.publisher import EventPublisher
from vigil.alerts.store import EventStore

SECRET = b"s3cret-key-for-tests-0123456789"
FAST = {"retry_initial_s": 0.02, "retry_max_s": 0.2, "timeout_s": 5}


def _secret_file(tmp_path: Path, data: bytes = SECRET, mode: int = 0o600) -> Path:
    p = tmp_path / "hook.secret"
    p.write_bytes(data + b"\n")
    p.chmod(mode)
    return p


class Receiver:
    """A webhook receiver on 127.0.0.1: checks each request's signature and records it.

    ``fail_next``: answer that many requests 503 first; :meth:`stop` / :meth:`start` take it
    down and bring it back on the same port (HTTP/1.0: one connection per request)."""

    def __init__(self, secret: bytes, *, keep_alive: bool = False, tls: ssl.SSLContext | None = None) -> None:
        self.secret, self.keep_alive, self.tls = secret, keep_alive, tls
        self.port = 0
        self.got: list[dict] = []  # accepted deliveries: the body's JSON and the headers
        self.refused = 0
        self.bad_signatures = 0
        self.fail_next = 0
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(receiver.secret, body, hashlib.sha256).hexdigest()
                with receiver.lock:
                    if not hmac.compare_digest(expected, self.headers.get("X-Vigil-Signature", "")):
                        receiver.bad_signatures += 1
                        code = 401
                    elif receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        receiver.refused += 1
                        code = 503
                    else:
                        receiver.got.append({"doc": json.loads(body), "headers": dict(self.headers)})
                        code = 204
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> list[str]:
        with self.lock:
            return [g["doc"]["event_id"] for g in self.got]


@pytest.fixture
def receiver():
    r = Receiver(SECRET).start()
    yield r
    r.stop()


def _webhook_config(tmp_path: Path, port: int, **target) -> object:
    secret = _secret_file(tmp_path)
    doc = {"targets": [{"name": "cr", "kind": "webhook", "url": f"http://127.0.0.1:{port}/hook", **FAST, **target}]}
    doc["targets"][0].setdefault("secret_file", secret.name)
    path = tmp_path / "forward.json"
    path.write_text(json.dumps(doc))
    return load_forward_config(path)


@pytest.fixture
def store(tmp_path):
    s = EventStore(tmp_path / "events.db", single_writer=True)
    yield s
    s.close()


def test_webhook_signed_filtered_in_stream_order(tmp_path, store, make_event, wait_until):
    recv = Receiver(SECRET, keep_alive=True).start()
    match = [{"types": ["plate_hit"]}, {"types": ["distance_violation"], "severities": ["critical"]}]
    cfg = _webhook_config(tmp_path, recv.port, start="beginning", match=match)
    events = [
        make_event(type="distance_violation", severity="critical"),  # yes
        make_event(type="distance_violation", severity="warning"),  # no: severity
        make_event(camera="gate/north", type="plate_hit", severity="warning"),  # yes
        make_event(type="heatmap", severity="info"),  # no: type
        make_event(type="occupancy_limit", severity="critical"),  # no: type
        make_event(type="distance_violation", severity="critical", state="end"),  # yes
    ]
    seqs = store.add_many_seq(events)
    fwd = Forwarding(cfg, store)
    fwd.start()
    try:
        assert wait_until(lambda: fwd.status()["cr"]["cursor"] == seqs[-1], 10)
    finally:
        fwd.stop()
        recv.stop()
    assert recv.ids() == [events[0].id, events[2].id, events[5].id]
    assert recv.bad_signatures == 0
    first = recv.got[0]
    assert first["doc"]["format"] == BODY_FORMAT and first["doc"]["target"] == "cr"
    assert first["doc"]["stream_seq"] == seqs[0]
    assert first["doc"]["event"] == json.loads(events[0].to_json())  # the stored event as stored
    assert first["doc"]["alarm_id"] == events[0].payload["alarm_id"]
    assert first["headers"]["X-Vigil-Event-Id"] == events[0].id
    assert first["headers"]["X-Vigil-Timestamp"] == str(first["doc"]["sent"])
    assert first["headers"]["Content-Type"] == "application/json"
    st = fwd.status(store.last_stream_seq())["cr"]
    assert (st["delivered"], st["skipped"], st["retries"], st["backlog"], st["role"]) == (3, 3, 0, 0, "active")
    assert st["failing_since"] is None and st["last_error"] is None
    # the cursor is durable: a new forwarder on the same database starts after it
    ((target, cursor),) = store._fetch("SELECT target, stream_seq FROM forward_cursors", ())
    assert (target, cursor) == ("cr", seqs[-1])


def test_webhook_down_then_back_nothing_lost(tmp_path, store, make_event, wait_until):
    recv = Receiver(SECRET).start()
    port = recv.port
    cfg = _webhook_config(tmp_path, port, start="beginning")
    fwd = Forwarding(cfg, store)
    events = [make_event(type="distance_violation", severity="warning") for _ in range(30)]
    recv.fail_next = 4  # 503 for a while
    store.add_many_seq(events[:10])
    fwd.start()
    try:
        assert wait_until(lambda: len(recv.ids()) == 10, 15)
        assert recv.refused == 4
        recv.stop()  # not listening at all now
        store.add_many_seq(events[10:20])
        fwd.notify()
        assert wait_until(lambda: fwd.status()["cr"]["retries"] >= 8, 15)
        st = fwd.status()["cr"]
        assert st["failing_since"] is not None and "Connection refused" in st["last_error"]
        store.add_many_seq(events[20:])
        recv.start()  # back on the same port
        assert recv.port == port
        assert wait_until(lambda: len(recv.ids()) == 30, 15)
        assert wait_until(lambda: fwd.status()["cr"]["failing_since"] is None, 5)
    finally:
        fwd.stop()
        recv.stop()
    assert recv.ids() == [e.id for e in events]  # every one, once, in stream order
    seqs = [g["doc"]["stream_seq"] for g in recv.got]
    assert seqs == sorted(seqs)
    st = fwd.status(store.last_stream_seq())["cr"]
    assert (st["delivered"], st["backlog"], st["last_error"]) == (30, 0, None)


def test_cursor_survives_a_restart_and_start_now_skips_history(tmp_path, store, make_event, receiver, wait_until):
    old = [make_event() for _ in range(3)]
    store.add_many_seq(old)
    cfg = _webhook_config(tmp_path, receiver.port)  # start: now (the default)
    fwd = Forwarding(cfg, store)
    fwd.start()
    assert wait_until(lambda: fwd.status()["cr"]["cursor"] == store.last_stream_seq(), 10)
    first = [make_event() for _ in range(2)]
    store.add_many_seq(first)
    fwd.notify()
    assert wait_until(lambda: len(receiver.ids()) == 2, 10)
    fwd.stop()
    later = [make_event() for _ in range(2)]
    store.add_many_seq(later)  # stored while no forwarder ran
    again = Forwarding(cfg, store)
    again.start()
    try:
        assert wait_until(lambda: len(receiver.ids()) == 4, 10)
    finally:
        again.stop()
    assert receiver.ids() == [e.id for e in first + later]  # history before the first start left out


def test_aggregator_forwards_and_reports_in_status_file(
    tmp_path, store, make_event, receiver, wait_until, running_aggregator
):
    cfg = _webhook_config(tmp_path, receiver.port, start="beginning")
    status = tmp_path / "status.json"
    with running_aggregator(store, forward=cfg, status_file=status) as agg:
        events = [make_event(type="contact_time") for _ in range(5)]
        with EventPublisher(agg.ingest_endpoint) as pub:
            pub.publish_many(events)
            assert pub.flush(15).complete
        assert wait_until(lambda: len(receiver.ids()) == 5, 15)

        def reported() -> bool:
            try:
                doc = json.loads(status.read_text())
            except (OSError, ValueError):
                return False
            return doc.get("forwarding", {}).get("cr", {}).get("delivered") == 5

        assert wait_until(reported, 10)
    doc = json.loads(status.read_text())["forwarding"]["cr"]
    assert (doc["kind"], doc["backlog"], doc["retries"], doc["role"]) == ("webhook", 0, 0, "active")
    assert sorted(receiver.ids()) == sorted(e.id for e in events)


def test_https_verifies_the_certificate(tmp_path, store, make_event, wait_until):
    """A receiver with a self-signed certificate (openssl): refused without its CA, delivered with
    ``ca_file`` naming it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl missing (Debian package openssl; scripts/test.sh installs it)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    recv = Receiver(SECRET, keep_alive=True, tls=tls).start()
    event = make_event()
    store.add_many_seq([event])
    url = f"https://127.0.0.1:{recv.port}/hook"
    try:
        fwd = Forwarding(_webhook_config(tmp_path, recv.port, start="beginning", url=url), store)
        fwd.start()
        try:
            assert wait_until(lambda: fwd.status()["cr"]["retries"] >= 2, 10)
        finally:
            fwd.stop()
        assert "CERTIFICATE_VERIFY_FAILED" in fwd.status()["cr"]["last_error"] and recv.ids() == []
        fwd = Forwarding(_webhook_config(tmp_path, recv.port, start="beginning", url=url, ca_file=str(cert)), store)
        fwd.start()
        try:
            assert wait_until(lambda: recv.ids() == [event.id], 10)
        finally:
            fwd.stop()
    finally:
        recv.stop()
    assert recv.bad_signatures == 0


# ---------------------------------------------------------------------- configuration
def _config_error(tmp_path: Path, doc) -> str:
    path = tmp_path / "fw.yaml"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(ForwardConfigError) as exc:
        load_forward_config(path)
    return str(exc.value)


def test_bad_configurations_name_file_and_field(tmp_path):
    _secret_file(tmp_path)
    hook = {"name": "cr", "kind": "webhook", "url": "https://cr.example/h", "secret_file": "hook.secret"}
    path = str(tmp_path / "fw.yaml")
    msg = _config_error(tmp_path, {"targets": [{**hook, "colour": "red"}]})
    assert msg.splitlines() == [f"{path}: invalid forwarding configuration", "  targets.0 (cr).colour: unknown key"]
    msg = _config_error(tmp_path, {"targets": [{**hook, "match": [{"types": ["fire"]}]}]})
    assert f"{path}: invalid forwarding configuration" in msg
    assert "targets.0 (cr).match.0.types: unknown event type 'fire'" in msg
    msg = _config_error(tmp_path, {"targets": [{**hook, "url": "http://10.1.2.3/h"}]})
    assert "targets.0 (cr): url 'http://10.1.2.3/h' is plain http to a host other than loopback" in msg
    msg = _config_error(tmp_path, {"targets": [hook, hook]})
    assert "target names must be unique: cr given more than once" in msg
    mq = {"name": "mq", "kind": "mqtt", "host": "127.0.0.1", "topic": "vigil/+/{type}"}
    assert "has no wildcards" in _config_error(tmp_path, {"targets": [mq]})
    msg = _config_error(tmp_path, {"targets": [{**mq, "topic": "vigil/{site}"}]})
    assert "targets.0 (mq).topic: topic template 'vigil/{site}' names {site}" in msg
    msg = _config_error(tmp_path, {"targets": [{**hook, "severities": ["loud"]}]})
    assert "targets.0 (cr).severities: unknown key" in msg
    msg = _config_error(tmp_path, {"targets": [{**hook, "match": [{"severities": ["loud"]}]}]})
    assert "targets.0 (cr).match.0.severities.0: Input should be 'info', 'warning' or 'critical'" in msg
    msg = _config_error(tmp_path, {"targets": [{**hook, "retry_initial_s": 5, "retry_max_s": 1}]})
    assert "retry_max_s (1) is below retry_initial_s (5)" in msg
    assert _config_error(tmp_path, "targets: [unclosed").startswith(f"{path}: not valid YAML or JSON")
    assert _config_error(tmp_path, {"targets": []}).splitlines()[1].startswith("  targets: List should have at least 1")
    msg = _config_error(tmp_path, {"targets": [{**hook, "kind": "smtp"}]})
    assert "targets.0 (cr): Input tag 'smtp' found using 'kind' does not match" in msg


def test_mqtt_without_tls_only_to_loopback_unless_insecure_mqtt(tmp_path):
    mq = {"name": "mq", "kind": "mqtt", "host": "broker.example"}
    msg = _config_error(tmp_path, {"targets": [mq]})
    assert msg.splitlines() == [
        f"{tmp_path / 'fw.yaml'}: invalid forwarding configuration",
        "  targets.0 (mq): tls is false to host 'broker.example', not loopback: alarms and credentials would go "
        "in clear; use tls: true (or insecure_mqtt: true)",
    ]
    for ok in ({**mq, "tls": True}, {**mq, "insecure_mqtt": True}, {**mq, "host": "127.0.0.1"}, {**mq, "host": "::1"}):
        assert parse_forward_config(json.dumps({"targets": [ok]})).targets[0].host == ok["host"]


def test_webhook_errors_show_only_scheme_host_port(tmp_path, store, make_event, wait_until, caplog):
    assert url_origin("https://cr.example/h/T0KEN?key=abc") == "https://cr.example:443"
    assert url_origin("http://[::1]:8080/x?y") == "http://[::1]:8080"
    recv = Receiver(SECRET).start()
    recv.fail_next = 10**6
    url = f"http://127.0.0.1:{recv.port}/hook/T0KEN?key=abc"
    fwd = Forwarding(_webhook_config(tmp_path, recv.port, start="beginning", url=url), store)
    store.add_many_seq([make_event()])
    caplog.set_level("DEBUG", logger="vigil.alerts.aggregator.forward")
    fwd.start()
    try:
        assert wait_until(lambda: fwd.status()["cr"]["retries"] >= 2, 10)
    finally:
        fwd.stop()
        recv.stop()
    last_error = fwd.status()["cr"]["last_error"]
    assert last_error == f"http://127.0.0.1:{recv.port} answered HTTP 503 Service Unavailable"
    assert "T0KEN" not in caplog.text and "key=abc" not in caplog.text


def test_a_stored_payload_that_is_not_an_object_does_not_stop_a_target(tmp_path, store):
    fwd = Forwarding(_webhook_config(tmp_path, 9, start="beginning"), store).forwarders[0]
    odd = json.dumps({"id": "e1", "state": "start", "payload": [1, 2]})
    picked, left_out = fwd._pick([(7, "cam", "distance_violation", "warning", odd)])
    assert left_out == []
    assert [(it.event_id, it.fields["alarm_id"]) for it in picked] == [("e1", None)]


def test_secret_file_permissions(tmp_path):
    loose = _secret_file(tmp_path, mode=0o640)
    with pytest.raises(ForwardConfigError) as exc:
        read_secret_file(loose, "webhook target 'cr'")
    assert str(exc.value) == (
        f"webhook target 'cr': secret file {loose} has mode 0640: its group or others may read it; "
        f"only its owner may (chmod 600 {loose})"
    )
    hook = {"name": "cr", "kind": "webhook", "url": "https://cr.example/h", "secret_file": "hook.secret"}
    msg = _config_error(tmp_path, {"targets": [hook]})
    assert f"target 'cr': secret file {loose} has mode 0640" in msg
    loose.chmod(0o600)
    assert read_secret_file(loose) == SECRET
    empty = _secret_file(tmp_path, data=b"  ")
    with pytest.raises(ForwardConfigError, match="is empty"):
        read_secret_file(empty)
    missing = tmp_path / "nope.secret"
    with pytest.raises(ForwardConfigError, match=f"secret file {missing}: No such file"):
        read_secret_file(missing)


def test_cli_refuses_a_bad_forward_file(tmp_path, capsys):
    bad = tmp_path / "fw.yaml"
    bad.write_text("targets:\n  - name: cr\n    kind: webhook\n    url: ftp://x/\n    secret_file: s\n")
    code = cli_main(["aggregator", "--insecure-dev", "--db", str(tmp_path / "e.db"), "--forward", str(bad)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"vigil aggregator: error: {bad}: invalid forwarding configuration" in err
    assert "url must be an https:// (or http://) URL with a host, got 'ftp://x/'" in err
    assert not (tmp_path / "e.db").exists()


def test_signature_and_topic_helpers():
    body = b'{"a":1}'
    assert sign(b"k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    fields = {"camera": "gate/north+#", "type": "plate_hit", "severity": "warning", "state": "start", "alarm_id": None}
    assert topic_for("vigil/{camera}/{type}/{alarm_id}", fields) == "vigil/gate_north__/plate_hit/-"
    cfg = parse_forward_config('{"targets": [{"name": "m", "kind": "mqtt", "host": "h", "tls": true}]}')
    assert cfg.targets[0].broker_port == 8883 and cfg.targets[0].topic == "vigil/{camera}/{type}"
    hook = {"name": "h", "kind": "webhook", "url": "http://localhost/", "secret_file": "s"}
    only = {"types": ["plate_hit"], "states": ["start"], "cameras": ["gate"]}
    (t,) = parse_forward_config(json.dumps({"targets": [{**hook, "match": [only]}]})).targets
    assert [
        t.wants("plate_hit", "warning", "start", "gate"),
        t.wants("plate_hit", "warning", "end", "gate"),
        t.wants("plate_hit", "warning", "start", "lane"),
        t.wants("plate_transit", "info", "start", "gate"),
    ] == [True, False, False, False]
    (default,) = parse_forward_config(json.dumps({"targets": [hook]})).targets
    assert [default.wants(k, "info", "update", "c") for k in ("camera_health", "heatmap")] == [True, False]


# ---------------------------------------------------------------------- MQTT (Debian's mosquitto)
def _mosquitto() -> str | None:
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.access(p, os.X_OK)), None)


class Broker:
    """A private mosquitto on 127.0.0.1 (temp config; persistence in its folder so the test's
    subscriber keeps its session across :meth:`stop` / :meth:`start`)."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary, self.folder = binary, folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nlog_dest stderr\n"
            # as root mosquitto would switch to the user 'mosquitto', who cannot use this folder
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=open(self.folder / "log", "ab")
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError(f"mosquitto did not start: {(self.folder / 'log').read_text()}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(15)
            self.proc = None


@pytest.fixture
def broker(tmp_path):
    binary = _mosquitto()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed but CI must run the MQTT tests (scripts/test.sh installs it)")
        pytest.skip("mosquitto is not installed (Debian package mosquitto; scripts/test.sh installs it)")
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(binary, folder)
    b.start()
    yield b
    b.stop()


class Subscriber:
    """A paho client with a persistent session (QoS 1) recording ``(topic, body)`` of every message."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.got: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="vigil-test-sub", clean_session=False)
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("vigil/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _message(self, _c, _u, msg) -> None:
        with self.lock:
            self.got.append((msg.topic, json.loads(msg.payload)))

    def ids(self) -> list[str]:
        """Event ids in order of first arrival (QoS 1 may repeat one)."""
        seen: list[str] = []
        with self.lock:
            for _, doc in self.got:
                if doc["event_id"] not in seen:
                    seen.append(doc["event_id"])
        return seen

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _mqtt_config(port: int, **target):
    doc = {"targets": [{"name": "mq", "kind": "mqtt", "host": "127.0.0.1", "port": port, **FAST, **target}]}
    return parse_forward_config(json.dumps(doc))


def test_mqtt_qos1_topics_and_filters(broker, store, make_event, wait_until):
    sub = Subscriber(broker.port)
    cfg = _mqtt_config(broker.port, start="beginning", match=[{"severities": ["critical"]}])
    events = [
        make_event(camera="piazza", type="distance_violation", severity="critical"),
        make_event(camera="piazza", type="distance_violation", severity="warning"),  # left out
        make_event(camera="gate/north", type="plate_hit", severity="critical"),
    ]
    seqs = store.add_many_seq(events)
    fwd = Forwarding(cfg, store)
    fwd.start()
    try:
        assert wait_until(lambda: len(sub.ids()) == 2, 15)
        assert wait_until(lambda: fwd.status()["mq"]["cursor"] == seqs[-1], 5)
    finally:
        fwd.stop()
        sub.close()
    assert sub.ids() == [events[0].id, events[2].id]
    topics = [t for t, _ in sub.got]
    assert topics[:2] == ["vigil/piazza/distance_violation", "vigil/gate_north/plate_hit"]
    doc = sub.got[0][1]
    assert (doc["format"], doc["target"], doc["stream_seq"]) == (BODY_FORMAT, "mq", seqs[0])
    assert doc["event"] == json.loads(events[0].to_json())
    st = fwd.status(store.last_stream_seq())["mq"]
    assert (st["delivered"], st["skipped"], st["backlog"]) == (2, 1, 0)


def test_mqtt_broker_down_then_back_nothing_lost(broker, store, make_event, wait_until):
    sub = Subscriber(broker.port)
    fwd = Forwarding(_mqtt_config(broker.port, start="beginning"), store)
    events = [make_event(camera=f"c{i % 3}", type="occupancy_limit") for i in range(30)]
    store.add_many_seq(events[:10])
    fwd.start()
    try:
        assert wait_until(lambda: len(sub.ids()) == 10, 15)
        broker.stop()
        store.add_many_seq(events[10:20])
        fwd.notify()
        assert wait_until(lambda: fwd.status()["mq"]["retries"] >= 5, 15)
        assert fwd.status()["mq"]["failing_since"] is not None
        store.add_many_seq(events[20:])
        broker.start()
        assert wait_until(lambda: len(sub.ids()) == 30, 20)
        assert wait_until(lambda: fwd.status()["mq"]["failing_since"] is None, 5)
    finally:
        fwd.stop()
        sub.close()
    assert sub.ids() == [e.id for e in events]  # none lost, first arrivals in stream order
    st = fwd.status(store.last_stream_seq())["mq"]
    assert (st["backlog"], st["last_error"]) == (0, None) and st["delivered"] >= 30


def test_mqtt_credentials_file(broker, tmp_path, store, make_event, wait_until, caplog):
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not os.access(passwd, os.X_OK):
        pytest.skip("mosquitto_passwd missing")
    broker.stop()
    pw = broker.folder / "passwd"
    subprocess.run([passwd, "-b", "-c", str(pw), "vigil", "pa55 word"], check=True, capture_output=True)
    pw.chmod(0o600)
    conf = broker.conf.read_text().replace("allow_anonymous true", f"allow_anonymous false\npassword_file {pw}")
    broker.conf.write_text(conf)
    broker.start()
    creds = tmp_path / "mqtt.cred"
    creds.write_text("vigil\nwrong\n")
    creds.chmod(0o600)
    cfg = _mqtt_config(broker.port, start="beginning", credentials_file=str(creds))
    fwd = Forwarding(cfg, store)
    store.add_many_seq([make_event()])
    fwd.start()
    try:
        assert wait_until(lambda: fwd.status()["mq"]["retries"] >= 1, 10)
        assert "did not accept the connection" in fwd.status()["mq"]["last_error"]
    finally:
        fwd.stop()
    creds.write_text("vigil\npa55 word\n")
    caplog.set_level("DEBUG", logger="vigil.alerts.aggregator")
    fwd = Forwarding(cfg, store)
    fwd.start()
    try:
        assert wait_until(lambda: fwd.status()["mq"]["delivered"] == 1, 10)
    finally:
        fwd.stop()
    assert "pa55" not in caplog.text and "pa55" not in json.dumps(fwd.status())  # never logged nor reported


# ---------------------------------------------------------------------- PostgreSQL, two aggregators
def test_pg_one_aggregator_forwards_a_target_the_other_takes_over(dsn, tmp_path, make_event, receiver, wait_until):
    from vigil.alerts.store import PgEventStore

    cfg = _webhook_config(tmp_path, receiver.port, start="beginning")
    a_store, b_store = PgEventStore(dsn), PgEventStore(dsn)
    a, b = Forwarding(cfg, a_store), Forwarding(cfg, b_store)
    events = [make_event() for _ in range(20)]
    try:
        a.start()
        assert wait_until(lambda: a.status()["cr"]["role"] == "active", 10)
        b.start()
        assert wait_until(lambda: b.status()["cr"]["role"] == "standby", 10)
        a_store.add_many_seq(events[:10])
        a.notify()
        assert wait_until(lambda: len(receiver.ids()) == 10, 10)
        a.stop()  # its connection closes: the lock goes with it
        b_store.add_many_seq(events[10:])
        assert wait_until(lambda: b.status()["cr"]["role"] == "active", 10)
        assert wait_until(lambda: len(set(receiver.ids())) == 20, 15)
    finally:
        a.stop()
        b.stop()
        a_store.close()
        b_store.close()
    assert receiver.ids() == [e.id for e in events]  # each once: b started from a's stored cursor
