"""Delivering forwarded events to an MQTT broker at QoS 1 (paho-mqtt, MQTT v3.1.1).

:class:`MqttSender` keeps one connection (clean session: the forwarder's cursor, not the
broker, remembers what was delivered) and publishes a batch, waiting for each message's PUBACK;
what is confirmed is a prefix of the batch (:meth:`MqttSender.deliver`). A lost connection, a
refused login or a missing PUBACK within ``timeout_s`` fails the rest of the batch: the
connection is dropped and the next attempt connects anew and publishes again from the cursor
(duplicates possible, loss not). paho-mqtt is dual-licensed EPL-2.0 / EDL-1.0 (BSD-3-Clause).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .forward_config import MqttTarget, read_secret_file

__all__ = ["MqttSender", "topic_for"]

log = logging.getLogger(__name__)

_BAD_TOPIC_CHARS = str.maketrans({"/": "_", "+": "_", "#": "_", "\0": "_"})


def topic_for(template: str, fields: dict[str, str | None]) -> str:
    """The topic of one event: ``template`` with its ``{field}`` names (:data:`~.forward_config.TOPIC_FIELDS`)
    filled in; '/', '+', '#' and NUL inside a value become '_' so a camera name never adds a
    level or a wildcard; a missing value (``alarm_id`` of a non-alarm) is ``-``."""
    clean = {k: ("-" if v is None else str(v).translate(_BAD_TOPIC_CHARS) or "-") for k, v in fields.items()}
    return template.format(**clean)


def _credentials(target: MqttTarget) -> tuple[str, str] | None:
    if target.credentials_file is None:
        return None
    lines = read_secret_file(target.credentials_file, f"MQTT target {target.name!r}").decode("utf-8").splitlines()
    user = lines[0].strip() if lines else ""
    password = lines[1].strip() if len(lines) > 1 else ""
    if not user:
        raise ValueError(f"MQTT target {target.name!r}: {target.credentials_file} has no user name on its first line")
    return user, password


class MqttSender:
    """Publishes to the broker of one :class:`~.forward_config.MqttTarget` (one forwarder thread uses it).

    ``deliver(messages)``: ``messages`` are ``(topic, payload bytes)``; returns ``(n, error)``
    with ``n`` the count confirmed by PUBACK (a prefix) and ``error`` ``None`` when all were."""

    def __init__(self, target: MqttTarget) -> None:
        self.target = target
        self._auth = _credentials(target)  # read at start: a wrong file stops the aggregator there
        self._client: mqtt.Client | None = None
        self._lost = threading.Event()

    def _connect(self) -> mqtt.Client:
        t = self.target
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=t.client_id or f"vigil-{t.name}"[:23],
            clean_session=True,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        if self._auth is not None:
            client.username_pw_set(*self._auth)
        if t.tls:
            client.tls_set(ca_certs=str(t.ca_file) if t.ca_file else None, cert_reqs=ssl.CERT_REQUIRED)
        client.max_inflight_messages_set(max(20, min(t.batch, 100)))
        connected = threading.Event()
        outcome: dict = {}
        self._lost.clear()

        def on_connect(_c, _u, _flags, reason_code, _props) -> None:
            outcome["rc"] = reason_code
            connected.set()

        def on_disconnect(_c, _u, _flags, reason_code, _props) -> None:
            outcome.setdefault("rc", reason_code)
            self._lost.set()
            connected.set()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.connect(t.host, t.broker_port, keepalive=t.keepalive_s)  # OSError: refused, unreachable
        client.loop_start()
        if not connected.wait(t.timeout_s) or self._lost.is_set() or getattr(outcome.get("rc"), "is_failure", True):
            self._drop(client)
            rc = outcome.get("rc")
            raise ConnectionError(
                f"broker {t.host}:{t.broker_port} did not accept the connection"
                + (f": {rc}" if rc is not None else f" within {t.timeout_s:g} s")
            )
        log.info("forward %s: connected to MQTT broker %s:%d", t.name, t.host, t.broker_port)
        return client

    @staticmethod
    def _drop(client: mqtt.Client) -> None:
        try:
            client.disconnect()
        except Exception:  # noqa: BLE001 - a broken connection is being thrown away anyway
            pass
        client.loop_stop()

    def deliver(self, messages: list[tuple[str, bytes]]) -> tuple[int, str | None]:
        t = self.target
        if self._client is not None and self._lost.is_set():
            self.close()
        try:
            if self._client is None:
                self._client = self._connect()
        except (OSError, ConnectionError, ssl.SSLError) as exc:
            return 0, f"MQTT {t.host}:{t.broker_port}: {exc}"
        infos = [self._client.publish(topic, payload, qos=1, retain=t.retain) for topic, payload in messages]
        deadline = time.monotonic() + t.timeout_s
        for i, info in enumerate(infos):
            while not info.is_published():
                if self._lost.is_set():
                    self.close()
                    return i, f"MQTT {t.host}:{t.broker_port}: connection lost before PUBACK"
                if time.monotonic() >= deadline:
                    self.close()
                    return i, f"MQTT {t.host}:{t.broker_port}: no PUBACK within {t.timeout_s:g} s"
                try:
                    info.wait_for_publish(0.05)
                except (RuntimeError, ValueError) as exc:
                    self.close()
                    return i, f"MQTT {t.host}:{t.broker_port}: {exc}"
        return len(infos), None

    def close(self) -> None:
        if self._client is not None:
            self._drop(self._client)
            self._client = None
