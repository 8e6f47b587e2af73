"""The aggregator's status file: what a health check reads (containers, systemd, monitoring).

With ``--status-file PATH`` the serving loop rewrites ``PATH`` (atomically) every
:data:`STATUS_INTERVAL_S` with one JSON object::

    {"pid": 123, "updated": 1764669000.5 (Unix seconds), "updated_at": "...Z",
     "ingest": "tcp://0.0.0.0:5555", "stream": "tcp://0.0.0.0:5556", "store": "<file or DSN without password>",
     "store_ok": true, "store_error": null, "last_stream_seq": 41234, "counters": {...}}

``store_ok`` comes from a real read of the store at each rewrite (its last ``stream_seq``)
and from the last commit: a database that is gone, locked or full shows as ``false`` with
the error. :func:`check_status` is the health check: fresh (rewritten within ``max_age_s``),
the process alive, the store answering.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from vigil.fileio import atomic_write_bytes

from ..events import utc_iso

__all__ = ["STATUS_INTERVAL_S", "check_status", "write_status"]

#: the status file is rewritten this often (seconds)
STATUS_INTERVAL_S = 2.0


def write_status(path: str | Path, status: dict[str, Any]) -> None:
    """Write ``status`` (with ``pid`` and ``updated`` added) to ``path`` atomically."""
    now = time.time()
    doc = {"pid": os.getpid(), "host": os.uname().nodename, "updated": round(now, 3), "updated_at": utc_iso(now)}
    doc.update(status)
    atomic_write_bytes(path, json.dumps(doc, sort_keys=True).encode("utf-8"))


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def check_status(path: str | Path, *, max_age_s: float = 15.0, now: float | None = None) -> tuple[bool, str, dict]:
    """``(healthy, one line saying why, the status read)`` for the status file at ``path``."""
    now = time.time() if now is None else now
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        return False, f"no aggregator status at {p} (is the aggregator running with --status-file {p}?)", {}
    except (OSError, ValueError) as exc:
        return False, f"unreadable aggregator status {p}: {exc}", {}
    try:
        age = now - float(doc.get("updated", 0.0))
    except (TypeError, ValueError):
        return False, f"aggregator status {p} has no valid 'updated' time", doc
    if age > max_age_s:
        return (
            False,
            f"aggregator status {p} is {age:.0f} s old (more than {max_age_s:g} s): the aggregator is stuck or gone",
            doc,
        )
    pid = doc.get("pid")
    # a status written inside a container names the container's pid: only check a local one
    if doc.get("host") == os.uname().nodename and not _alive(pid):
        return False, f"aggregator process {pid} (from {p}) is not running", doc
    if not doc.get("store_ok", False):
        return (
            False,
            f"aggregator at {doc.get('ingest')} cannot use its store {doc.get('store')}: {doc.get('store_error')}",
            doc,
        )
    c = doc.get("counters") or {}
    return (
        True,
        f"aggregator ok: ingest {doc.get('ingest')}, store {doc.get('store')}, last stream_seq "
        f"{doc.get('last_stream_seq')}, stored {c.get('stored', 0)}, {c.get('subscriptions', 0)} stream client(s), "
        f"updated {age:.1f} s ago",
        doc,
    )
