"""Password hashing (scrypt from the standard library) and random tokens.

Stored form: ``scrypt$N$r$p$salt_b64$hash_b64``. Parameters are read back from the stored
string, so they can be raised later without invalidating existing accounts
(:func:`needs_rehash` says when a login should store a new hash).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["hash_password", "verify_password", "needs_rehash", "new_token", "token_digest", "ROLES"]

ROLES = ("operator", "supervisor", "admin")
_N, _R, _P = 2**14, 8, 1  # ~16 MiB, tens of ms on one core
_DUMMY = None


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def hash_password(password: str, *, n: int = _N, r: int = _R, p: int = _P) -> str:
    if not isinstance(password, str) or len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    if len(password) > 1024:
        raise ValueError("password too long (at most 1024 characters)")
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(dk)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-time check; an unknown user (``stored=None``) costs the same as a known one."""
    global _DUMMY
    if stored is None:
        if _DUMMY is None:
            _DUMMY = hash_password("not-a-real-password")
        stored, known = _DUMMY, False
    else:
        known = True
    try:
        kind, n, r, p, salt, dk = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode("utf-8")[:4096],
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 1024 * 1024,
            dklen=len(base64.b64decode(dk)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(dk)) and known


def needs_rehash(stored: str) -> bool:
    try:
        kind, n, r, p, *_ = stored.split("$")
        return kind != "scrypt" or (int(n), int(r), int(p)) < (_N, _R, _P)
    except ValueError:
        return True


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """Sessions are stored by digest: a copy of the database does not hand out live sessions."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
