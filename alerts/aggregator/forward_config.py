"""The forwarding configuration (``vigil aggregator --forward FILE``): which alarms go where.

A YAML or JSON file (JSON is YAML) with one ``targets`` list; each target is a webhook
(``kind: webhook``) or an MQTT broker (``kind: mqtt``) with its filters (``match``) and its
retry pacing. Validated at start by :func:`load_forward_config`: an error names the file and
the field (``forward.yaml: targets.0 (control-room).url: ...``). Secrets (the webhook's HMAC
key, the broker's user name and password) live in files of their own that only their owner may
read (:func:`read_secret_file`), never in this file nor on a command line. Reference and
examples: docs/forwarding.md.
"""

from __future__ import annotations

import ipaddress
import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vigil.errors import UserError
from vigil.fileio import read_private_file

from ..events import Severity, State
from ..payloads import ALARM_TYPES, PAYLOADS

__all__ = [
    "ForwardConfig",
    "ForwardConfigError",
    "Match",
    "MqttTarget",
    "TOPIC_FIELDS",
    "WebhookTarget",
    "load_forward_config",
    "parse_forward_config",
    "read_secret_file",
]

#: the event fields a topic template may name (``vigil/{camera}/{type}``)
TOPIC_FIELDS = ("camera", "type", "severity", "state", "alarm_id")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ForwardConfigError(UserError, ValueError):
    """The forwarding file, or a secret file it names, is wrong (the message names file and field)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """One filter: an event matches when each given field matches (an omitted field matches
    anything, ``types`` omitted: every alarm type, so heat-map snapshots are left out)."""

    types: list[str] | None = Field(None, description="event types (default: every alarm type)")
    severities: list[Severity] | None = Field(None, description="severities (default: any)")
    states: list[State] = Field(["start", "update", "end"], description="alarm phases (default: all three)")
    cameras: list[str] | None = Field(None, description="camera names (default: any)")

    @field_validator("types")
    @classmethod
    def _known_types(cls, v: list[str] | None) -> list[str] | None:
        for t in v or ():
            if t not in PAYLOADS:
                raise ValueError(f"unknown event type {t!r} (known: {', '.join(sorted(PAYLOADS))})")
        return v

    def matches(self, event_type: str, severity: str, state: str, camera: str) -> bool:
        """Whether an event of these fields passes this filter."""
        types = ALARM_TYPES if self.types is None else self.types
        return (
            event_type in types
            and (self.severities is None or severity in self.severities)
            and state in self.states
            and (self.cameras is None or camera in self.cameras)
        )


class _Target(_Strict):
    name: str = Field(description="target name: names its cursor and its status; letters, digits, . _ -")
    match: list[Match] = Field(
        default_factory=lambda: [Match()], min_length=1, description="filters; an event goes out if any matches"
    )
    start: Literal["now", "beginning"] = Field(
        "now", description="where a new target starts: events stored from now on, or every stored event"
    )
    retry_initial_s: float = Field(1.0, ge=0.01, le=600, description="first wait after a failed delivery (s)")
    retry_max_s: float = Field(60.0, ge=0.01, le=3600, description="longest wait between retries (s)")
    timeout_s: float = Field(10.0, gt=0, le=300, description="connect and answer timeout of one delivery (s)")
    batch: int = Field(100, ge=1, le=1000, description="stored events read at a time")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError("a name of letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit")
        return v

    @model_validator(mode="after")
    def _retry_order(self) -> "_Target":
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError(f"retry_max_s ({self.retry_max_s:g}) is below retry_initial_s ({self.retry_initial_s:g})")
        return self

    def wants(self, event_type: str, severity: str, state: str, camera: str) -> bool:
        """Whether this target forwards an event of these fields (any of its filters)."""
        return any(m.matches(event_type, severity, state, camera) for m in self.match)


def _loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebhookTarget(_Target):
    """POST each event as JSON to ``url``, signed with HMAC-SHA256 (docs/forwarding.md)."""

    kind: Literal["webhook"]
    url: str = Field(description="https:// URL (http:// only to a loopback host, or with insecure_http)")
    secret_file: Path = Field(description="file holding the HMAC key (mode 0600; relative to the config file)")
    ca_file: Path | None = Field(None, description="CA certificates (PEM) to verify the server with, not the system's")
    insecure_http: bool = Field(False, description="allow plain http:// to a host other than loopback")

    @model_validator(mode="after")
    def _url(self) -> "WebhookTarget":
        parts = urlsplit(self.url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"url must be an https:// (or http://) URL with a host, got {self.url!r}")
        if parts.scheme == "http" and not (_loopback_host(parts.hostname) or self.insecure_http):
            raise ValueError(
                f"url {self.url!r} is plain http to a host other than loopback: use https:// (or insecure_http: true)"
            )
        if parts.username or parts.password:
            raise ValueError("url must not carry a user name or password (the body is signed with secret_file)")
        return self


class MqttTarget(_Target):
    """Publish each event at QoS 1 to an MQTT broker (v3.1.1); the cursor moves on PUBACK."""

    kind: Literal["mqtt"]
    host: str = Field(min_length=1, description="broker host name or address")
    port: int | None = Field(None, ge=1, le=65535, description="broker port (default 1883, 8883 with tls)")
    topic: str = Field("vigil/{camera}/{type}", description=f"topic template; fields: {', '.join(TOPIC_FIELDS)}")
    tls: bool = Field(False, description="TLS with certificate verification")
    ca_file: Path | None = Field(None, description="CA certificates (PEM) for TLS instead of the system's")
    credentials_file: Path | None = Field(
        None, description="file of two lines, user name then password (mode 0600; relative to the config file)"
    )
    client_id: str | None = Field(None, max_length=23, description="MQTT client id (default vigil-<name>)")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive (s)")
    retain: bool = Field(False, description="publish with the retain flag")
    insecure_mqtt: bool = Field(False, description="allow MQTT without TLS to a host other than loopback")

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        try:
            names = [f for _, f, spec, conv in string.Formatter().parse(v) if f is not None]
        except ValueError as exc:
            raise ValueError(f"topic template {v!r}: {exc}") from None
        for f in names:
            if f not in TOPIC_FIELDS:
                raise ValueError(f"topic template {v!r} names {{{f}}}; known: {', '.join(TOPIC_FIELDS)}")
        literal = "".join(text for text, *_ in string.Formatter().parse(v))
        if not v or "+" in literal or "#" in literal or "\0" in literal or v.startswith("$"):
            raise ValueError(f"topic template {v!r}: a topic to publish to has no wildcards (+ #) and no leading $")
        return v

    @model_validator(mode="after")
    def _ca_needs_tls(self) -> "MqttTarget":
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is given but tls is false")
        if not self.tls and not (_loopback_host(self.host) or self.insecure_mqtt):
            raise ValueError(
                f"tls is false to host {self.host!r}, not loopback: alarms and credentials would go in clear; "
                "use tls: true (or insecure_mqtt: true)"
            )
        return self

    @property
    def broker_port(self) -> int:
        return self.port if self.port is not None else (8883 if self.tls else 1883)


Target = Annotated[WebhookTarget | MqttTarget, Field(discriminator="kind")]


class ForwardConfig(_Strict):
    """The whole file: ``targets`` (names unique)."""

    targets: list[Target] = Field(min_length=1, description="webhooks and MQTT brokers to forward alarms to")

    @model_validator(mode="after")
    def _unique(self) -> "ForwardConfig":
        names = [t.name for t in self.targets]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"target names must be unique: {', '.join(dup)} given more than once")
        return self


def _where(data: Any, loc: tuple) -> str:
    parts = []
    node = data
    for p in loc:
        if isinstance(p, str) and p in ("webhook", "mqtt") and parts and parts[-1].endswith(")"):
            continue  # the discriminator's tag in the path
        label = str(p)
        if isinstance(node, list) and isinstance(p, int) and p < len(node):
            node = node[p]
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                label = f"{p} ({node['name']})"
        elif isinstance(node, dict):
            node = node.get(p)
        parts.append(label)
    return ".".join(parts)


def parse_forward_config(text: str, source: str = "<forward config>", base_dir: Path | None = None) -> ForwardConfig:
    """Validate the YAML/JSON ``text``; relative secret and CA paths resolve against ``base_dir``.
    :class:`ForwardConfigError` names ``source`` and each wrong field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ForwardConfigError(f"{source}: not valid YAML or JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ForwardConfigError(f"{source}: expected a mapping with 'targets' at the top level")
    try:
        cfg = ForwardConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: invalid forwarding configuration"]
        for err in exc.errors():
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            where = _where(data, tuple(err["loc"]))
            lines.append(f"  {where}: {msg}" if where else f"  {msg}")
        raise ForwardConfigError("\n".join(lines)) from None
    if base_dir is None:
        return cfg
    targets = []
    for t in cfg.targets:
        update = {}
        for field in ("secret_file", "ca_file", "credentials_file"):
            p = getattr(t, field, None)
            if p is not None and not p.expanduser().is_absolute():
                update[field] = base_dir / p.expanduser()
        targets.append(t.model_copy(update=update) if update else t)
    return cfg.model_copy(update={"targets": targets})


def load_forward_config(path: str | Path) -> ForwardConfig:
    """Read and validate the forwarding file at ``path``, and check that every secret file it
    names can be used (:func:`read_secret_file`), so a mistake stops the aggregator at start."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ForwardConfigError(f"cannot read forwarding configuration {p}: {exc}") from None
    cfg = parse_forward_config(text, str(p), p.parent)
    for t in cfg.targets:
        secret = t.secret_file if isinstance(t, WebhookTarget) else t.credentials_file
        if secret is not None:
            read_secret_file(secret, f"{p}: target {t.name!r}")
        if t.ca_file is not None and not t.ca_file.is_file():
            raise ForwardConfigError(f"{p}: target {t.name!r}: ca_file {t.ca_file} is not a file")
    return cfg


def read_secret_file(path: str | Path, what: str = "secret") -> bytes:
    """The bytes of the secret file ``path`` (surrounding white space removed). Refused, naming
    the file: missing, not a regular file, readable or writable by its group or others (it must
    be mode 0600 or stricter: :func:`vigil.fileio.read_private_file`), or empty."""
    data = read_private_file(path, f"{what}: secret file", ForwardConfigError).strip()
    if not data:
        raise ForwardConfigError(f"{what}: secret file {path} is empty")
    return data
