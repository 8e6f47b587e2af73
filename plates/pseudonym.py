"""Plate pseudonymisation: the key, the keyed pseudonym of a plate, and plate-free events.

The rules of privacy that both transit stores (:mod:`vigil.plates.transits`) and the aggregator
(``alerts/aggregator/plate_transits.py``) share, failing closed:

- A transit that hits no watch list is stored **pseudonymised**: its row keeps no plate, only
  :func:`pseudonym` = ``HMAC-SHA256(key, plate)``. A search by plate hashes the query with the
  same key, so an authorised lookup still finds pseudonymised passes, while the table alone
  reveals no plate.
- The key (:func:`load_key`) comes from outside the repository: the ``key`` / ``key_file``
  given, ``VIGIL_PLATE_KEY`` (hex or text), the file named by ``VIGIL_PLATE_KEY_FILE``, or
  ``$XDG_CONFIG_HOME/vigil/plate-hmac.key`` (:func:`key_path`). It is **never created on the
  fly**: a missing, unreadable or short (< :data:`MIN_KEY_BYTES` bytes) key is a
  :class:`PlateKeyError` naming the file, and nothing is stored or searched. A key created
  silently on a mistyped path would pseudonymise new passes under a key nobody else has and
  answer "not found" for every stored plate. Keys are made only by :func:`create_key`
  (``vigil transits keygen``: mode 0600, never overwriting one).
- The aggregator stores a no-hit transit's *event* without any copy of the plate
  (:func:`redact_event_payload`: no ``plate``, ``votes``, ``raw_readings``, ``evidence_id``,
  and no ``plate_hash`` either: a keyed hash shown to operators would let them follow a
  vehicle across cameras without an audited search; the event links to its row by
  ``transit_id``).

:class:`TransitError`, the error of the transit records, is defined here as the base of
:class:`PlateKeyError` (a store that cannot get its key cannot store a transit); the stores
raise it and :mod:`vigil.plates.transits` exports it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from vigil.errors import UserError
from vigil.fileio import read_private_file

from .grammar import clean

__all__ = [
    "TransitError",
    "PlateKeyError",
    "MIN_KEY_BYTES",
    "key_path",
    "load_key",
    "create_key",
    "pseudonym",
    "PLATE_FIELDS",
    "redact_event_payload",
]


class TransitError(ValueError):
    """A transit record that cannot be stored (missing plate, bad time...), or a transit
    database that cannot be opened."""


class PlateKeyError(TransitError, UserError):
    """No usable pseudonymisation key: missing, unreadable or too short (the message names the
    file and what to do). Nothing is stored or searched without one."""


#: the shortest key accepted, in bytes (a key made by :func:`create_key` has 64: hex text)
MIN_KEY_BYTES = 32


# ---------------------------------------------------------------------------------- the key
def _default_key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vigil" / "plate-hmac.key"


def key_path(key_file: str | Path | None = None) -> Path:
    """The key file :func:`load_key` reads when no key is given: ``key_file``, else
    ``VIGIL_PLATE_KEY_FILE``, else ``$XDG_CONFIG_HOME/vigil/plate-hmac.key``."""
    return Path(key_file or os.environ.get("VIGIL_PLATE_KEY_FILE") or _default_key_file())


def _long_enough(data: bytes, what: str) -> bytes:
    if len(data) < MIN_KEY_BYTES:
        raise PlateKeyError(
            f"{what}: too short ({len(data)} bytes, need at least {MIN_KEY_BYTES}); "
            "make a key with `vigil transits keygen --key-file FILE` and point VIGIL_PLATE_KEY_FILE at it"
        )
    return data


def load_key(key: bytes | str | None = None, key_file: str | Path | None = None) -> bytes:
    """The pseudonymisation key, from the first of: ``key``; the file ``key_file``;
    ``VIGIL_PLATE_KEY`` (hex, else its text); the file ``VIGIL_PLATE_KEY_FILE``; the default
    file (:func:`key_path`). A key file holds the key as text (surrounding whitespace ignored).

    Fails closed, never creating a key: :class:`PlateKeyError` when the file is missing,
    unreadable, not a regular file or readable or writable by its group or others (mode 0600 or
    stricter only, as every secret file: :func:`vigil.fileio.read_private_file`), or the key is
    shorter than :data:`MIN_KEY_BYTES` bytes."""
    if key is not None:
        return _long_enough(key.encode() if isinstance(key, str) else bytes(key), "the plate key given")
    env = os.environ.get("VIGIL_PLATE_KEY")
    if env and not key_file:
        try:
            data = bytes.fromhex(env)
        except ValueError:
            data = env.encode()
        return _long_enough(data, "plate key VIGIL_PLATE_KEY")
    path = key_path(key_file)
    if not path.exists():
        raise PlateKeyError(
            f"plate key file {path} does not exist: no plate is stored or searched without the key. "
            "Give the path of the existing key (--key-file, VIGIL_PLATE_KEY_FILE), or, on a new "
            f"installation only, create one with `vigil transits keygen --key-file {path}`"
        )
    # a key others can read is refused, not warned about: with it, every pseudonym can be undone
    # by trying each possible plate (a few hundred million), so the pseudonymisation is gone
    data = read_private_file(
        path,
        "plate key file",
        PlateKeyError,
        why="anyone who can read the key can recover every pseudonymised plate; only its owner may read it",
    ).strip()
    return _long_enough(data, f"plate key file {path}")


def create_key(key_file: str | Path | None = None) -> Path:
    """Write a new random key (32 random bytes as 64 hex characters) to ``key_file`` (default:
    :func:`key_path`) with mode 0600, creating its folder (0700); returns the path.

    Never replaces a key: :class:`PlateKeyError` if the file exists (the transits stored with
    it could no longer be searched)."""
    path = key_path(key_file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: an existing key, or one another process creates at the same moment, is never replaced
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise PlateKeyError(
            f"plate key file {path} already exists: not replaced (the transits pseudonymised with it "
            "could no longer be searched)"
        ) from None
    except OSError as exc:
        raise PlateKeyError(f"cannot create plate key file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return path


def pseudonym(plate: str, key: bytes) -> str:
    """Keyed HMAC-SHA256 of the normalised plate (hex)."""
    return hmac.new(key, clean(plate).encode("ascii"), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------------- events
#: the payload fields of a plate event that hold (or stand for) the plate; a no-hit transit's
#: stored event keeps none of them. ``plate_hash`` is among them: a keyed hash that operators
#: see would let them follow a vehicle across cameras without an audited search.
PLATE_FIELDS = ("plate", "plate_hash", "votes", "raw_readings", "evidence_id")


def redact_event_payload(payload: dict) -> dict:
    """The payload to store for a plate event: unchanged for a list hit; for a transit that hit
    no list, a copy without any of :data:`PLATE_FIELDS` (the clear plate, its pseudonym, the
    readings voted, the evidence id). The pseudonym lives only in the transit table, reached by
    ``transit_id`` through an audited search."""
    if payload.get("hits"):
        return payload
    if not any(name in payload for name in PLATE_FIELDS):
        return payload
    return {k: v for k, v in payload.items() if k not in PLATE_FIELDS}
