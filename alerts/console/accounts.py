"""Account administration reads and writes of the console database (mixed into
:class:`~.db.ConsoleDB`): list accounts with their active sessions, enable/disable, change a
role, reset a password. Disabling an account, changing its role or resetting its password ends
every session of that account in the same transaction. The last enabled administrator can be
neither disabled nor demoted (:class:`AccountError` says so), so the console never locks its
administrators out, also with several console processes on one database: SQLite's write
transaction is ``BEGIN IMMEDIATE`` (one writer at a time), and on PostgreSQL every account change
takes one transaction-scoped advisory lock first.
"""

from __future__ import annotations

import time
from typing import Any

from .auth import ROLES, hash_password

__all__ = ["AccountAdmin", "AccountError"]


class AccountError(ValueError):
    """An account change refused (the message says why, for the administrator)."""


#: PostgreSQL advisory lock key of account changes (any constant shared by every console)
_ACCOUNTS_LOCK = 0x76_69_67_69_6C_61_63  # "vigilac"


class AccountAdmin:
    """Needs the host class's ``_q(sql, params)`` and ``_tx()`` (see :class:`~.db.ConsoleDB`)."""

    def accounts(self) -> list[dict[str, Any]]:
        """Every account, by name: ``name``, ``role``, ``enabled``, ``created_at`` and
        ``sessions`` (live sessions now)."""
        now = time.time()
        rows = self._q(  # type: ignore[attr-defined]
            "SELECT u.name, u.role, u.enabled, u.created_at,"
            ' (SELECT COUNT(*) FROM console_sessions s WHERE s."user" = u.name AND s.expires > ?)'
            " FROM console_users u ORDER BY u.name",
            (now,),
        )
        return [
            {"name": n, "role": r, "enabled": bool(e), "created_at": c, "sessions": int(k)} for n, r, e, c, k in rows
        ]

    def _serialise(self, c) -> None:
        """Account changes one at a time across console processes (PostgreSQL; SQLite's
        ``BEGIN IMMEDIATE`` already does it), so two cannot each remove a different last admin."""
        if getattr(getattr(self, "_c", None), "kind", "") == "postgres":
            c.execute("SELECT pg_advisory_xact_lock(?)", (_ACCOUNTS_LOCK,))

    def _admins_left_without(self, c, name: str) -> int:
        return c.execute(
            "SELECT COUNT(*) FROM console_users WHERE role = 'admin' AND enabled = 1 AND name != ?", (name,)
        )[0][0][0]

    def _end_sessions(self, c, name: str) -> int:
        return c.execute('DELETE FROM console_sessions WHERE "user" = ?', (name,))[1]

    def _account(self, c, name: str) -> tuple[str, bool]:
        rows = c.execute("SELECT role, enabled FROM console_users WHERE name = ?", (name,))[0]
        if not rows:
            raise AccountError(f"no account {name!r}")
        return rows[0][0], bool(rows[0][1])

    def set_enabled(self, name: str, enabled: bool) -> int:
        """Enable or disable ``name``; disabling ends its sessions (returned: how many)."""
        with self._tx() as c:  # type: ignore[attr-defined]
            self._serialise(c)
            role, _ = self._account(c, name)
            if not enabled and role == "admin" and self._admins_left_without(c, name) == 0:
                raise AccountError(f"{name!r} is the last enabled administrator")
            c.execute("UPDATE console_users SET enabled = ? WHERE name = ?", (1 if enabled else 0, name))
            return 0 if enabled else self._end_sessions(c, name)

    def set_role(self, name: str, role: str) -> int:
        """Give ``name`` the role ``role``; ends its sessions (a role is read at login)."""
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}")
        with self._tx() as c:  # type: ignore[attr-defined]
            self._serialise(c)
            old, enabled = self._account(c, name)
            if old == "admin" and role != "admin" and enabled and self._admins_left_without(c, name) == 0:
                raise AccountError(f"{name!r} is the last enabled administrator")
            c.execute("UPDATE console_users SET role = ? WHERE name = ?", (role, name))
            return self._end_sessions(c, name)

    def reset_password(self, name: str, password: str) -> int:
        """An administrator sets ``name``'s password; every session of ``name`` ends."""
        try:
            pw = hash_password(password)
        except ValueError as exc:
            raise AccountError(str(exc)) from None
        with self._tx() as c:  # type: ignore[attr-defined]
            self._account(c, name)
            c.execute("UPDATE console_users SET password = ? WHERE name = ?", (pw, name))
            return self._end_sessions(c, name)
