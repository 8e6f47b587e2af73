"""CURVE keys for the alarm path, in pyzmq's certificate format (``NAME.key``, ``NAME.key_secret``).

Layout of a keys folder::

    DIR/aggregator.key                  the aggregator's public key (every client needs it)
    DIR/aggregator.key_secret           the aggregator's secret key (only on the aggregator)
    DIR/NAME.key[_secret]               an edge node's or operator's key pair (secret only on that host)
    DIR/authorized/edge/NAME.key        edge keys: may publish (the ingest socket), nothing else
    DIR/authorized/operators/NAME.key   operator keys: may read the stream, nothing else
    DIR/authorized/NAME.key             the layout before roles: read as *edge* keys (a warning
                                        names each file; see "Compatibility" below)

A key needing both (``vigil bench bus`` with ``--stream``) is listed in both folders.

**Roles are ZAP domains.** The aggregator's ingest socket has ``ZAP_DOMAIN = "ingest"``, its
stream socket ``"stream"`` (:data:`ROLE_DOMAINS`); the authenticator (pyzmq's
:class:`~zmq.auth.thread.ThreadAuthenticator` on the aggregator's context) checks each
handshake against the allow-list of that domain's role only. A socket configured without a
domain is refused by pyzmq ("Unknown domain"), so a forgotten domain fails closed.

**Reloaded by content.** A watcher thread re-reads every ``*.key`` file of the allow-lists
every :data:`RELOAD_INTERVAL_S` (and a handshake with an unknown key re-reads them at once if
the last reading is older than :data:`MISS_RELOAD_S`, so a key just added is accepted without
waiting). The allowed set is computed from the public keys *in* the files, not from the
folder's mtime or file count: a file overwritten in place with another key is noticed, and a
key renamed or moved between files is not a change. Hidden files (``.NAME.key...``, e.g. the
temporary file of an atomic write) are skipped. An unreadable or malformed file is skipped and
logged once (again only when its problem changes); the other files still count, so one bad
file neither freezes the list nor revokes the other keys. Its own key, if it had one, is no
longer accepted (fail closed). A folder that cannot be listed at all (other than missing:
a missing folder holds no keys) keeps its last good keys, logged once: that is a broken
installation, not a revocation.

**Revocation.** Removing a key from a role's folder (or overwriting its file) revokes it: new
handshakes with it are refused at once, and :attr:`CurveServer.revocations` counts, per ZAP
domain, the readings in which that domain lost a key. The aggregator watches that counter
and reopens the affected socket (every connection on it is dropped; honest clients reconnect
and pass the handshake again, the revoked one cannot): see
:mod:`vigil.alerts.aggregator.service`.

**Refusals** are counted (:attr:`CurveServer.denied`, per domain in
:attr:`CurveServer.denied_by_domain`): the aggregator's ``unauthorized`` counter. The first
refusal of each key is logged with the key (and a hint when the key holds the other role),
then every 1000th.

**Compatibility.** Keys directly in ``authorized/`` (the layout before roles) are read as edge
keys, with one warning per file telling how to migrate: alarms keep flowing after an upgrade,
and no key gains a right it did not have; operator keys stop reading the stream until moved
to ``authorized/operators/`` (``vigil keys authorize DIR/NAME.key --dir DIR --role operator``,
then remove the old file). Refusing to start instead would stop the alarms of every node for
a layout change. In Python, ``new_key_pair(..., authorize=True)`` still works and means edge.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from vigil.errors import UserError
from vigil.fileio import atomic_write_bytes

__all__ = [
    "KeyFileError",
    "AGGREGATOR_KEY_NAME",
    "ROLES",
    "ROLE_FOLDERS",
    "ROLE_DOMAINS",
    "RELOAD_INTERVAL_S",
    "AuthorizedKey",
    "new_key_pair",
    "authorize_key",
    "revoke_key",
    "list_authorized",
    "client_configurator",
    "CurveServer",
]

log = logging.getLogger(__name__)

AGGREGATOR_KEY_NAME = "aggregator"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

ROLES = ("edge", "operator")
#: the folder under ``authorized/`` holding each role's public keys
ROLE_FOLDERS = {"edge": "edge", "operator": "operators"}
#: the ZAP domain (the aggregator socket) each role may use
ROLE_DOMAINS = {"edge": "ingest", "operator": "stream"}
_DOMAIN_ROLES = {domain: role for role, domain in ROLE_DOMAINS.items()}

RELOAD_INTERVAL_S = 1.0  # the watcher re-reads the allow-lists this often
MISS_RELOAD_S = 0.25  # a handshake with an unknown key re-reads them if older than this
_MAX_KEY_FILE_BYTES = 64 * 1024


class KeyFileError(UserError, ValueError):
    """A key file or folder is missing or unreadable, or a key name or role is invalid (the
    message names it)."""


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name) or name.endswith((".key", ".key_secret")):
        raise KeyFileError(f"invalid key name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")


def _roles(authorize: bool | str | Iterable[str] | None) -> tuple[str, ...]:
    """``False``/``None``: none; ``True``: edge (the meaning before roles); a role or several."""
    if authorize is None or authorize is False:
        return ()
    if authorize is True:
        return ("edge",)
    roles = (authorize,) if isinstance(authorize, str) else tuple(authorize)
    for role in roles:
        if role not in ROLES:
            raise KeyFileError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    return tuple(dict.fromkeys(roles))


def _parse_public(content: bytes) -> tuple[bytes, bool]:
    """The z85 public key in a certificate's text (as :func:`zmq.auth.load_certificate` reads
    it) and whether it also holds a secret key; :class:`ValueError` if it has no valid one."""
    public = None
    has_secret = False
    for line in content.splitlines():
        line = line.strip()
        if line.startswith(b"#"):
            continue
        if line.startswith(b"public-key") and b"=" in line and public is None:
            public = line.split(b"=", 1)[1].strip(b" \t'\"")
        elif line.startswith(b"secret-key"):
            has_secret = True
    if public is None:
        raise ValueError("no public-key line")
    try:
        raw = z85.decode(public)
    except (ValueError, KeyError, TypeError):
        raw = b""
    if len(public) != 40 or len(raw) != 32:
        raise ValueError("the public key is not 40 z85 characters")
    return public, has_secret


def _read_public(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            content = fh.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read key {path}: {exc.strerror or exc}") from None
    try:
        if len(content) > _MAX_KEY_FILE_BYTES:
            raise ValueError(f"larger than {_MAX_KEY_FILE_BYTES} bytes")
        return _parse_public(content)[0]
    except ValueError as exc:
        raise KeyFileError(f"{path} holds no valid public key: {exc}") from None


def _authorized_path(keys_dir: Path, role: str, name: str) -> Path:
    return keys_dir / "authorized" / ROLE_FOLDERS[role] / f"{name}.key"


def authorize_key(
    public_key_file: str | Path,
    keys_dir: str | Path,
    role: str,
    *,
    name: str | None = None,
    force: bool = False,
) -> Path:
    """Copy a public key file into ``DIR/authorized/<role folder>/NAME.key`` (atomically, so the
    aggregator never reads half a file); return that path. ``name`` defaults to the file's stem.
    Refuses a file without a valid public key, and replacing a *different* key of that name
    unless ``force`` (that would revoke it)."""
    (role,) = _roles(role)
    source = Path(public_key_file)
    name = name or source.name.removesuffix(".key_secret").removesuffix(".key")
    _check_name(name)
    public = _read_public(source)
    target = _authorized_path(Path(keys_dir), role, name)
    if target.exists() and not force:
        try:
            same = _read_public(target) == public
        except KeyFileError:
            same = False
        if not same:
            raise KeyFileError(f"{target} already holds another key (refusing to replace it without --force)")
    # only the public line goes in: a secret key file given by mistake never lands in authorized/
    text = (
        f"#   ZeroMQ CURVE public key (authorized {role}: {name})\n"
        f'metadata\ncurve\n    public-key = "{public.decode()}"\n'
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, text.encode("ascii"))
    os.chmod(target, 0o644)
    return target


def revoke_key(name: str, keys_dir: str | Path, roles: Iterable[str] | None = None) -> list[Path]:
    """Remove ``NAME.key`` from the allow-lists of ``roles`` (default: every role, and the old
    flat ``authorized/``); the removed paths. :class:`KeyFileError` if there was none."""
    _check_name(name)
    keys_dir = Path(keys_dir)
    chosen = ROLES if roles is None else _roles(tuple(roles))
    candidates = [_authorized_path(keys_dir, role, name) for role in chosen]
    if "edge" in chosen:
        candidates.append(keys_dir / "authorized" / f"{name}.key")  # the flat layout is read as edge
    removed = []
    for path in candidates:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise KeyFileError(f"cannot remove {path}: {exc.strerror or exc}") from None
        removed.append(path)
    if not removed:
        raise KeyFileError(f"no authorized key {name!r} ({', '.join(chosen)}) in {keys_dir / 'authorized'}")
    return removed


@dataclass(frozen=True)
class AuthorizedKey:
    """One file of the allow-lists: its role, name and key, or the ``problem`` that makes it
    ignored; ``legacy``: directly in ``authorized/`` (read as edge)."""

    role: str
    name: str
    path: Path
    key: str | None
    problem: str | None = None
    legacy: bool = False


def _role_folders(authorized: Path, role: str) -> list[tuple[Path, bool]]:
    folders = [(authorized / ROLE_FOLDERS[role], False)]
    if role == "edge":
        folders.append((authorized, True))
    return folders


def _key_files(folder: Path) -> list[Path]:
    """The ``*.key`` entries of ``folder`` (not hidden), sorted; ``FileNotFoundError`` passes."""
    with os.scandir(folder) as it:
        return sorted(
            Path(entry.path) for entry in it if entry.name.endswith(".key") and not entry.name.startswith(".")
        )


def list_authorized(keys_dir: str | Path) -> list[AuthorizedKey]:
    """Every file of ``DIR/authorized/``'s allow-lists, read as the aggregator reads them."""
    authorized = Path(keys_dir) / "authorized"
    out = []
    for role in ROLES:
        for folder, legacy in _role_folders(authorized, role):
            try:
                files = _key_files(folder)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise KeyFileError(f"cannot list {folder}: {exc.strerror or exc}") from None
            for path in files:
                name = path.name.removesuffix(".key")
                try:
                    out.append(AuthorizedKey(role, name, path, _read_public(path).decode(), legacy=legacy))
                except KeyFileError as exc:
                    out.append(AuthorizedKey(role, name, path, None, str(exc), legacy=legacy))
    return out


def new_key_pair(
    name: str,
    keys_dir: str | Path,
    *,
    authorize: bool | str | Iterable[str] = False,
    force: bool = False,
) -> tuple[Path, Path]:
    """Write ``DIR/NAME.key`` and ``DIR/NAME.key_secret`` (mode 0600); return both paths.

    ``authorize``: also authorize the public key for a role (``"edge"``, ``"operator"``, or
    several), i.e. copy it into ``DIR/authorized/edge/`` or ``DIR/authorized/operators/``;
    ``True`` means edge. Refuses to overwrite an existing pair unless ``force``.
    """
    _check_name(name)
    roles = _roles(authorize)
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
    for role in roles:
        authorize_key(pub_s, keys_dir, role, name=name, force=True)
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


class _DomainCheck:
    """The ZAP credentials provider of one domain (pyzmq calls ``callback(domain, z85_key)``)."""

    def __init__(self, server: "CurveServer", domain: str) -> None:
        self.server, self.domain, self.role = server, domain, _DOMAIN_ROLES[domain]

    def callback(self, domain: str, key: bytes) -> bool:
        return self.server._check(self.domain, self.role, key)


class CurveServer:
    """CURVE server side for the aggregator: its key pair plus the allow-lists per role (see
    the module docstring for the layout, the reloading and the compatibility rule).

    ``start(context)`` runs the authenticator on ``context`` (one per context) and the watcher
    thread; ``configure(socket, domain)`` is the hook making a socket a CURVE server for one
    ZAP domain (``"ingest"`` or ``"stream"``). :meth:`refresh` re-reads the allow-lists now.
    """

    def __init__(self, keys_dir: str | Path, *, reload_interval_s: float = RELOAD_INTERVAL_S) -> None:
        self.keys_dir = Path(keys_dir)
        self.public, self.secret = _load(self.keys_dir / f"{AGGREGATOR_KEY_NAME}.key_secret", secret=True)
        self.folder = self.keys_dir / "authorized"
        if not self.folder.is_dir():
            raise KeyFileError(
                f"no allow-list folder {self.folder} (put edge nodes' public keys in {self.folder / 'edge'}"
                f" and operators' in {self.folder / 'operators'}; see `vigil keys authorize`)"
            )
        self.reload_interval_s = float(reload_interval_s)
        self.denied = 0
        self.denied_by_domain = dict.fromkeys(_DOMAIN_ROLES, 0)
        #: per ZAP domain, the readings of the allow-lists in which that domain lost a key
        self.revocations = dict.fromkeys(_DOMAIN_ROLES, 0)
        self._allowed: dict[str, frozenset[bytes]] = {role: frozenset() for role in ROLES}
        self._files: dict[str, dict[bytes, tuple[str, ...]]] = {role: {} for role in ROLES}
        self._last_good: dict[Path, dict[bytes, str]] = {}  # per folder, for a folder that cannot be listed
        self._problems: dict[tuple[Path, str], str] = {}  # (file or folder, kind) -> the message last logged
        self._parsed: dict[bytes, tuple[bytes, bool]] = {}  # file content -> (key, holds a secret): last reading
        self._refused_logged: set[tuple[str, bytes]] = set()
        self._log_lock = threading.Lock()
        self._scan_lock = threading.Lock()
        self._scanned_at = 0.0
        self._auth: ThreadAuthenticator | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.refresh(initial=True)

    # ------------------------------------------------------------------ reading the lists
    def allowed(self, role: str) -> frozenset[bytes]:
        """The z85 public keys ``role`` accepts now."""
        return self._allowed[role]

    def refresh(self, *, initial: bool = False) -> bool:
        """Re-read every allow-list file now; ``True`` if some role's set changed."""
        with self._scan_lock:
            parsed: dict[bytes, tuple[bytes, bool]] = {}
            new_files = {role: self._read_role(role, parsed) for role in ROLES}
            self._parsed = parsed
            self._scanned_at = time.monotonic()
            changed = False
            for role in ROLES:
                old, new = self._allowed[role], frozenset(new_files[role])
                self._allowed[role] = new
                old_files, self._files[role] = self._files[role], new_files[role]
                if old == new or initial:
                    continue
                changed = True
                with self._log_lock:  # a refused key now allowed (or changed) is logged again when refused
                    self._refused_logged.clear()
                added, lost = new - old, old - new
                if added:
                    log.info(
                        "CURVE allow-list: %d %s key(s) added (%s)",
                        len(added),
                        role,
                        ", ".join(n for k in added for n in new_files[role][k]),
                    )
                if lost:
                    self.revocations[ROLE_DOMAINS[role]] += 1
                    log.warning(
                        "CURVE allow-list: %d %s key(s) revoked (%s): their connections to the %s socket are dropped",
                        len(lost),
                        role,
                        ", ".join(n for k in lost for n in old_files.get(k, ("?",))),
                        ROLE_DOMAINS[role],
                    )
            if initial:
                self._log_summary()
            return changed

    def _log_summary(self) -> None:
        counts = {role: len(self._allowed[role]) for role in ROLES}
        log.info(
            "CURVE allow-lists in %s: %d edge key(s) (may publish), %d operator key(s) (may read the stream)",
            self.folder,
            counts["edge"],
            counts["operator"],
        )
        if not any(counts.values()):
            log.warning(
                "CURVE allow-lists in %s are empty: every client is refused (see `vigil keys authorize`)", self.folder
            )

    def _read_role(self, role: str, parsed: dict[bytes, tuple[bytes, bool]]) -> dict[bytes, tuple[str, ...]]:
        keys: dict[bytes, list[str]] = {}
        for folder, legacy in _role_folders(self.folder, role):
            for key, name in self._read_folder(folder, legacy, parsed).items():
                keys.setdefault(key, []).append(name)
        return {key: tuple(names) for key, names in keys.items()}

    def _read_folder(self, folder: Path, legacy: bool, parsed: dict[bytes, tuple[bytes, bool]]) -> dict[bytes, str]:
        try:
            files = _key_files(folder)
        except FileNotFoundError:
            self._last_good[folder] = {}
            self._solved(folder, "folder")
            return {}
        except OSError as exc:
            kept = self._last_good.get(folder, {})
            why = exc.strerror or exc
            self._problem(folder, "folder", f"cannot list {folder}: {why}; keeping its last {len(kept)} key(s)")
            return kept
        self._solved(folder, "folder")
        keys: dict[bytes, str] = {}
        for path in files:
            try:
                with open(path, "rb") as fh:
                    content = fh.read(_MAX_KEY_FILE_BYTES + 1)
            except OSError as exc:
                self._problem(path, "read", f"cannot read the allow-list file {path}: {exc.strerror or exc}; ignored")
                continue
            found = self._parsed.get(content) or parsed.get(content)
            if found is None:
                try:
                    if len(content) > _MAX_KEY_FILE_BYTES:
                        raise ValueError(f"larger than {_MAX_KEY_FILE_BYTES} bytes")
                    found = _parse_public(content)
                except ValueError as exc:
                    self._problem(path, "read", f"the allow-list file {path} has no valid public key ({exc}); ignored")
                    continue
            parsed[content] = found
            key, has_secret = found
            self._solved(path, "read")
            if has_secret:
                self._problem(path, "secret", f"{path} holds a SECRET key: an allow-list needs the public key only")
            else:
                self._problems.pop((path, "secret"), None)
            if legacy:
                self._problem(
                    path,
                    "legacy",
                    f"{path} is directly in {self.folder} (the layout before roles): read as an edge key (may "
                    f"publish, may not read the stream); move it to {self.folder / 'edge'}, or an operator's to "
                    f"{self.folder / 'operators'} (`vigil keys authorize`)",
                )
            keys.setdefault(key, str(path.relative_to(self.folder)))
        self._last_good[folder] = keys
        # forget the problems of files now gone, so that one coming back is logged again
        present = set(files)
        for where, kind in [k for k in self._problems if k[1] != "folder" and k[0].parent == folder]:
            if where not in present:
                del self._problems[(where, kind)]
        return keys

    def _problem(self, path: Path, kind: str, message: str) -> None:
        """Log ``message`` once: again only when the problem of this kind with ``path`` changes."""
        if self._problems.get((path, kind)) != message:
            self._problems[(path, kind)] = message
            log.warning("CURVE allow-list: %s", message)

    def _solved(self, path: Path, kind: str) -> None:
        if self._problems.pop((path, kind), None) is not None:
            log.info("CURVE allow-list: %s is readable again", path)

    # ------------------------------------------------------------------ handshakes
    def _check(self, domain: str, role: str, key: bytes) -> bool:
        """ZAP: may ``key`` (z85) use ``domain``? Counts and logs refusals."""
        if len(key) == 32:
            key = z85.encode(key)
        if key in self._allowed[role]:
            return True
        if time.monotonic() - self._scanned_at > MISS_RELOAD_S:
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the authenticator thread must keep answering
                log.exception("CURVE allow-list: reading failed")
            if key in self._allowed[role]:
                return True
        self.denied += 1
        self.denied_by_domain[domain] += 1
        with self._log_lock:
            first = (domain, key) not in self._refused_logged
            if first and len(self._refused_logged) < 4096:
                self._refused_logged.add((domain, key))
        if first or self.denied % 1000 == 0:
            other = [r for r in ROLES if r != role and key in self._allowed[r]]
            hint = f"; it is an {other[0]} key, see `vigil keys authorize --role {role}`" if other else ""
            log.warning(
                "refused a CURVE client whose key is not in %s (%s socket, %s keys): %s%s (%d refused so far)",
                self.folder / ROLE_FOLDERS[role],
                domain,
                role,
                key.decode("ascii", "replace"),
                hint,
                self.denied,
            )
        return False

    # ------------------------------------------------------------------ serving
    def start(self, context: zmq.Context) -> None:
        auth = ThreadAuthenticator(context, log=logging.getLogger("vigil.alerts.zap"))
        auth.start()
        for domain in _DOMAIN_ROLES:
            auth.configure_curve_callback(domain=domain, credentials_provider=_DomainCheck(self, domain))
        self._auth = auth
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="vigil-curve-keys", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_interval_s):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - keep watching; the last good lists stay
                log.exception("CURVE allow-list: reading failed")

    def configure(self, sock: zmq.Socket, domain: str) -> None:
        """Make ``sock`` a CURVE server authenticated for ``domain`` (``"ingest"``: edge keys,
        ``"stream"``: operator keys). Call before ``bind``."""
        if self._auth is None:
            raise RuntimeError("CurveServer.start(context) must run before configuring sockets")
        if domain not in _DOMAIN_ROLES:
            raise ValueError(f"unknown ZAP domain {domain!r}: expected one of {', '.join(_DOMAIN_ROLES)}")
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True
        sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(5)
            self._watcher = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
