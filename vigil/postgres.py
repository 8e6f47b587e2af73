"""PostgreSQL helpers shared by the stores that live in PostgreSQL (events, transits)."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["redact_dsn"]


def redact_dsn(dsn: str) -> str:
    """The DSN without its password (for messages and logs); ``<dsn>`` when it cannot be parsed."""
    try:
        parts = conninfo_to_dict(dsn)
        if "password" in parts:
            parts["password"] = "***"
        return make_conninfo(**parts)
    except (psycopg.Error, TypeError, ValueError):  # unparsable: show nothing of it
        return "<dsn>"
