"""CURVE keys for the alarm path, in pyzmq's certificate format (``NAME.key``, ``NAME.key_secret``).

Layout of a keys folder::

    DIR/aggregator.key          the aggregator's public key (every client needs it)
    DIR/aggregator.key_secret   the aggregator's secret key (only on the aggregator)
    DIR/NAME.key[_secret]       an edge node's or operator's key pair (secret only on that host)
    DIR/authorized/*.key        public keys the aggregator accepts (the allow-list)

The aggregator authenticates every connection through ZAP (pyzmq's
:class:`zmq.auth.thread.ThreadAuthenticator` on the aggregator's own context) with a callback
that re-reads ``authorized/`` whenever the folder changes, so keys can be added or revoked
without a restart (a revoked key keeps a connection it already has until that reconnects).
Connections whose key is not listed are refused in the handshake: nothing reaches the
application from them, and each refusal is counted.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Callable

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from vigil.errors import UserError

__all__ = [
    "KeyFileError",
    "AGGREGATOR_KEY_NAME",
    "new_key_pair",
    "client_configurator",
    "CurveServer",
]

log = logging.getLogger(__name__)

AGGREGATOR_KEY_NAME = "aggregator"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class KeyFileError(UserError, ValueError):
    """A key file or folder is missing or unreadable (the message names it)."""


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name) or name.endswith((".key", ".key_secret")):
        raise KeyFileError(f"invalid key name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")


def new_key_pair(name: str, keys_dir: str | Path, *, authorize: bool = False, force: bool = False) -> tuple[Path, Path]:
    """Write ``DIR/NAME.key`` and ``DIR/NAME.key_secret`` (mode 0600); return both paths.

    ``authorize`` also copies the public key into ``DIR/authorized/``. Refuses to overwrite
    an existing pair unless ``force``.
    """
    _check_name(name)
    keys_dir = Path(keys_dir)
    keys_dir.mkdir(parents=True, exist_ok=True)
    public, secret = keys_dir / f"{name}.key", keys_dir / f"{name}.key_secret"
    if not force and (public.exists() or secret.exists()):
        raise KeyFileError(f"{public} or {secret} already exists (refusing to overwrite a key)")
    old_umask = os.umask(0o077)
    try:
        pub_s, sec_s = zmq.auth.create_certificates(str(keys_dir), name)
    finally:
        os.umask(old_umask)
    os.chmod(sec_s, 0o600)
    os.chmod(pub_s, 0o644)
    if authorize:
        auth_dir = keys_dir / "authorized"
        auth_dir.mkdir(exist_ok=True)
        shutil.copyfile(pub_s, auth_dir / f"{name}.key")
    return Path(pub_s), Path(sec_s)


def _load(path: Path, *, secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read key {path}: {exc}") from None
    if secret and not secret_key:
        raise KeyFileError(f"{path} holds no secret key")
    return public, secret_key


def client_configurator(keys_dir: str | Path, name: str) -> Callable[[zmq.Socket], None]:
    """A ``configure_socket`` hook making a socket a CURVE client as ``NAME``.

    Reads ``DIR/NAME.key_secret`` and ``DIR/aggregator.key`` now (so that a missing key is an
    error at start, not a silent connection that never completes).
    """
    keys_dir = Path(keys_dir)
    _check_name(name)
    public, secret = _load(keys_dir / f"{name}.key_secret", secret=True)
    server_public, _ = _load(keys_dir / f"{AGGREGATOR_KEY_NAME}.key", secret=False)

    def configure(sock: zmq.Socket) -> None:
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_serverkey = server_public

    return configure


class _AllowList:
    """ZAP credentials callback: is this public key in ``authorized/``? Counts refusals."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.denied = 0
        self.allowed = 0
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[bytes, bool] = {}
        self.reload()

    def reload(self) -> None:
        try:
            st = self.folder.stat()
            stamp = (st.st_mtime_ns, sum(1 for _ in self.folder.glob("*.key")))
        except OSError as exc:
            raise KeyFileError(f"cannot read the allow-list folder {self.folder}: {exc}") from None
        if stamp == self._stamp:
            return
        keys = zmq.auth.load_certificates(str(self.folder))
        with self._lock:
            self._keys, self._stamp = keys, stamp
        log.info("CURVE allow-list %s: %d key(s)", self.folder, len(keys))

    def callback(self, domain: str, key: bytes) -> bool:
        try:
            self.reload()
        except (KeyFileError, ValueError, OSError) as exc:  # keep the last good list
            log.error("%s", exc)
        with self._lock:
            ok = bool(self._keys.get(key))
        if ok:
            self.allowed += 1
        else:
            self.denied += 1
            if self.denied <= 10 or self.denied % 1000 == 0:
                log.warning(
                    "refused a CURVE client whose key is not in %s: %s (%d refused so far)",
                    self.folder,
                    key.decode("ascii", "replace"),
                    self.denied,
                )
        return ok


class CurveServer:
    """CURVE server side for the aggregator: its key pair plus a ZAP allow-list.

    ``start(context)`` runs the authenticator on ``context`` (one per context);
    ``configure(socket)`` is the ``configure_*`` hook making a socket a CURVE server.
    """

    def __init__(self, keys_dir: str | Path) -> None:
        self.keys_dir = Path(keys_dir)
        self.public, self.secret = _load(self.keys_dir / f"{AGGREGATOR_KEY_NAME}.key_secret", secret=True)
        folder = self.keys_dir / "authorized"
        if not folder.is_dir():
            raise KeyFileError(f"no allow-list folder {folder} (put the public keys of edge nodes and operators there)")
        self.allow_list = _AllowList(folder)
        self._auth: ThreadAuthenticator | None = None

    @property
    def denied(self) -> int:
        return self.allow_list.denied

    def start(self, context: zmq.Context) -> None:
        auth = ThreadAuthenticator(context, log=logging.getLogger("vigil.alerts.zap"))
        auth.start()
        auth.configure_curve_callback(domain="*", credentials_provider=self.allow_list)
        self._auth = auth

    def configure(self, sock: zmq.Socket) -> None:
        if self._auth is None:
            raise RuntimeError("CurveServer.start(context) must run before configuring sockets")
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def stop(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
