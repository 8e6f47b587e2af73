"""Plate transit records at the aggregator: :class:`TransitStore`.

One row per vehicle pass (gate or traffic camera): time, camera, plate, confidence, direction,
vehicle class, list hits, evidence id. Lives in the aggregator's SQLite database (its own
table, its own connection).

Privacy: a transit that hits no watch list is stored **pseudonymised**: the plate column is
empty and ``plate_hash`` holds ``HMAC-SHA256(key, plate)``; the key lives outside the
repository (``VIGIL_PLATE_KEY`` — hex or text — or the file named by ``VIGIL_PLATE_KEY_FILE``,
default ``$XDG_CONFIG_HOME/vigil/plate-hmac.key``, created with 32 random bytes and mode 0600
on first use). A search by plate hashes the query with the same key, so an authorised lookup
still finds pseudonymised passes, while the table alone reveals no plate. Hits keep the plate
in clear (and their evidence id). :meth:`TransitStore.purge` deletes pseudonymised transits
older than the retention (``retention_days``, default 7); hits are kept unless
``hit_retention_days`` is set.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from vigil.detectors.plates.grammar import clean

log = logging.getLogger(__name__)

__all__ = [
    "TransitStore",
    "TransitError",
    "load_key",
    "pseudonym",
    "transit_from_event",
    "redact_event_payload",
    "TRANSIT_EVENT_TYPES",
    "EXPORT_FIELDS",
]

TRANSIT_EVENT_TYPES = ("plate_transit", "plate_hit")
EXPORT_FIELDS = [
    "id",
    "time",
    "camera",
    "plate",
    "plate_hash",
    "pseudonymised",
    "confidence",
    "direction",
    "vehicle_class",
    "hits",
    "evidence_id",
    "event_id",
    "kind",
    "country",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transits (
    id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    time TEXT NOT NULL,
    camera TEXT NOT NULL,
    plate TEXT,
    plate_hash TEXT NOT NULL,
    pseudonymised INTEGER NOT NULL,
    confidence REAL,
    direction TEXT,
    vehicle_class TEXT,
    hits TEXT NOT NULL DEFAULT '[]',
    evidence_id TEXT,
    event_id TEXT,
    kind TEXT,
    country TEXT
);
CREATE INDEX IF NOT EXISTS transits_hash_ts ON transits (plate_hash, ts);
CREATE INDEX IF NOT EXISTS transits_ts ON transits (ts);
"""


class TransitError(ValueError):
    """A transit record that cannot be stored (missing plate, bad time...)."""


def _default_key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vigil" / "plate-hmac.key"


def load_key(key: bytes | str | None = None, key_file: str | Path | None = None) -> bytes:
    """The pseudonymisation key: argument, ``VIGIL_PLATE_KEY``, or a key file (created if absent)."""
    if key:
        return key.encode() if isinstance(key, str) else bytes(key)
    env = os.environ.get("VIGIL_PLATE_KEY")
    if env:
        try:
            return bytes.fromhex(env)
        except ValueError:
            return env.encode()
    path = Path(key_file or os.environ.get("VIGIL_PLATE_KEY_FILE") or _default_key_file())
    if path.is_file():
        data = path.read_bytes().strip()
        if len(data) < 16:
            raise TransitError(f"plate key file {path}: too short (need at least 16 bytes)")
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    log.warning("plate pseudonymisation key created at %s (keep it outside the repository; back it up)", path)
    return path.read_bytes().strip()


def pseudonym(plate: str, key: bytes) -> str:
    """Keyed HMAC-SHA256 of the normalised plate (hex)."""
    return hmac.new(key, clean(plate).encode("ascii"), hashlib.sha256).hexdigest()


def _to_ts(value: Any) -> float:
    if value is None:
        return time.time()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo else value.replace(tzinfo=timezone.utc).timestamp()
    text = str(value).strip()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TransitError(f"bad time {value!r} (ISO 8601 or epoch seconds)") from None
    return dt.timestamp() if dt.tzinfo else dt.replace(tzinfo=timezone.utc).timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def transit_from_event(event) -> dict:
    """A transit record from a ``plate_transit`` / ``plate_hit`` event (or its dict)."""
    d = event if isinstance(event, dict) else event.model_dump(by_alias=True)
    p = dict(d.get("payload") or {})
    return {
        "id": p.get("transit_id") or d.get("id"),
        "event_id": d.get("id"),
        "time": d.get("time"),
        "camera": d.get("camera"),
        "plate": p.get("plate"),
        "plate_hash": p.get("plate_hash"),
        "confidence": p.get("confidence"),
        "direction": p.get("direction"),
        "vehicle_class": p.get("vehicle_class"),
        "hits": p.get("hits") or [],
        "evidence_id": p.get("evidence_id"),
        "kind": p.get("kind"),
        "country": p.get("country"),
    }


def redact_event_payload(payload: dict, key: bytes) -> dict:
    """The payload of a no-hit transit event with the plate replaced by its pseudonym."""
    if payload.get("hits") or not payload.get("plate"):
        return payload
    out = dict(payload)
    out["plate_hash"] = pseudonym(out.pop("plate"), key)
    out.pop("votes", None)  # the readings voted: plates in clear
    out.pop("raw_readings", None)
    out.pop("evidence_id", None)
    return out


class TransitStore:
    """Transit records in the SQLite database at ``db_path`` (thread-safe)."""

    def __init__(
        self,
        db_path: str | Path,
        *,
        key: bytes | str | None = None,
        key_file: str | Path | None = None,
        retention_days: float = 7.0,
        hit_retention_days: float | None = None,
    ) -> None:
        self.path = Path(db_path)
        self._key_arg, self._key_file = key, key_file
        self._key: bytes | None = None
        self.retention_days = float(retention_days)
        self.hit_retention_days = hit_retention_days
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.executescript(_SCHEMA)

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = load_key(self._key_arg, self._key_file)
        return self._key

    # ------------------------------------------------------------------ write
    def add(self, transit: dict) -> str | None:
        """Store one transit; returns its id, or None when the id is already stored."""
        plate = clean(transit.get("plate") or "")
        given_hash = transit.get("plate_hash")
        if not plate and not given_hash:
            raise TransitError("transit without plate or plate_hash")
        hits = list(transit.get("hits") or [])
        camera = str(transit.get("camera") or "").strip()
        if not camera:
            raise TransitError("transit without camera")
        ts = _to_ts(transit.get("time"))
        tid = str(transit.get("id") or uuid.uuid4())
        plate_hash = pseudonym(plate, self.key) if plate else str(given_hash)
        pseudonymised = not hits
        row = (
            tid,
            ts,
            _iso(ts),
            camera,
            None if pseudonymised else plate,
            plate_hash,
            int(pseudonymised),
            _num(transit.get("confidence")),
            transit.get("direction"),
            transit.get("vehicle_class"),
            json.dumps(hits, separators=(",", ":")),
            None if pseudonymised else transit.get("evidence_id"),
            transit.get("event_id"),
            transit.get("kind"),
            transit.get("country"),
        )
        with self._lock:
            cur = self._db.execute(
                f"INSERT OR IGNORE INTO transits ({', '.join(_COLS)}) VALUES ({', '.join('?' * len(_COLS))})", row
            )
        return tid if cur.rowcount else None

    def add_event(self, event) -> str | None:
        return self.add(transit_from_event(event))

    # ------------------------------------------------------------------ read
    def _rows(self, where: str, params: tuple) -> list[dict]:
        with self._lock:
            cur = self._db.execute(f"SELECT {', '.join(_COLS)} FROM transits {where} ORDER BY ts, id", params)
            rows = cur.fetchall()
        out = []
        for r in rows:
            d = dict(zip(_COLS, r))
            d.pop("ts")
            d["pseudonymised"] = bool(d["pseudonymised"])
            d["hits"] = json.loads(d["hits"] or "[]")
            out.append(d)
        return out

    def search_plate(self, plate: str, since=None, until=None) -> list[dict]:
        """Transits of ``plate`` (any spacing/case), oldest first; ``since``/``until``: ISO time or epoch."""
        text = clean(plate)
        if not text:
            return []
        return self._rows_in_window(
            "WHERE (plate_hash = ? OR plate = ?)", [pseudonym(text, self.key), text], since, until
        )

    def all(self, since=None, until=None) -> list[dict]:
        return self._rows_in_window("WHERE 1=1", [], since, until)

    def _rows_in_window(self, where: str, params: list, since, until) -> list[dict]:
        """:meth:`_rows` for ``where`` narrowed to ``since <= ts <= until`` (either may be None)."""
        if since is not None:
            where += " AND ts >= ?"
            params.append(_to_ts(since))
        if until is not None:
            where += " AND ts <= ?"
            params.append(_to_ts(until))
        return self._rows(where, tuple(params))

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM transits").fetchone()[0])

    def export(self, fh: IO[str], format: str = "csv", since=None, until=None, plate: str | None = None) -> int:
        """Write transits as CSV (header + one row each) or JSON (an array); returns the count."""
        rows = self.search_plate(plate, since, until) if plate else self.all(since, until)
        if format == "csv":
            w = csv.DictWriter(fh, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow(
                    {
                        **r,
                        "hits": ";".join(h.get("list", "") for h in r["hits"]),
                        "plate": r["plate"] or "",
                        "pseudonymised": int(r["pseudonymised"]),
                    }
                )
        elif format == "json":
            json.dump(rows, fh, indent=1)
            fh.write("\n")
        else:
            raise ValueError(f"export format must be csv or json, got {format!r}")
        return len(rows)

    # ------------------------------------------------------------------ retention
    def purge(self, now: float | None = None) -> int:
        """Delete pseudonymised transits older than the retention (and hits older than
        ``hit_retention_days`` when set); returns the number deleted."""
        now = time.time() if now is None else _to_ts(now)
        deleted = 0
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM transits WHERE pseudonymised = 1 AND ts < ?", (now - self.retention_days * 86400.0,)
            )
            deleted += cur.rowcount
            if self.hit_retention_days is not None:
                cur = self._db.execute(
                    "DELETE FROM transits WHERE pseudonymised = 0 AND ts < ?",
                    (now - float(self.hit_retention_days) * 86400.0,),
                )
                deleted += cur.rowcount
        return deleted

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "TransitStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_COLS = [
    "id",
    "ts",
    "time",
    "camera",
    "plate",
    "plate_hash",
    "pseudonymised",
    "confidence",
    "direction",
    "vehicle_class",
    "hits",
    "evidence_id",
    "event_id",
    "kind",
    "country",
]


def _num(v) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------- CLI
def _cmd_search(args) -> int:
    import sys

    with TransitStore(args.db, key_file=args.key_file) as store:
        rows = store.search_plate(args.plate, args.since, args.until)
    if args.json:
        for r in rows:
            print(json.dumps(r))
    elif not rows:
        print(f"no transit of {clean(args.plate)}", file=sys.stderr)
    else:
        for r in rows:
            hits = ",".join(h.get("list", "") for h in r["hits"]) or "-"
            print(
                f"{r['time']}  {r['camera']}  {r['plate'] or clean(args.plate) + ' (pseudonymised)'}  "
                f"conf {r['confidence'] if r['confidence'] is not None else '-'}  dir {r['direction'] or '-'}  "
                f"{r['vehicle_class'] or '-'}  hits {hits}"
            )
    return 0


def _cmd_export(args) -> int:
    import sys

    with TransitStore(args.db, key_file=args.key_file) as store:
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as fh:
                n = store.export(fh, args.format, args.since, args.until, args.plate)
        else:
            n = store.export(sys.stdout, args.format, args.since, args.until, args.plate)
    print(f"{n} transit(s) exported", file=sys.stderr)
    return 0


def _cmd_purge(args) -> int:
    import sys

    with TransitStore(
        args.db, key_file=args.key_file, retention_days=args.retention_days, hit_retention_days=args.hit_retention_days
    ) as store:
        n = store.purge()
    print(f"{n} transit(s) deleted", file=sys.stderr)
    return 0


def _cmd_check_list(args) -> int:
    from vigil.alerts.watchlists import WatchLists

    lists = WatchLists(args.files)
    for e in lists.errors:
        print(e)
    print(f"{len(lists)} entries loaded, {len(lists.errors)} problem(s)")
    return 1 if lists.errors else 0


def add_transit_commands(subparsers) -> None:
    """``vigil transits search|export|purge`` and ``vigil watchlist check``."""
    p = subparsers.add_parser("transits", help="plate transit records: search, export, retention")
    ts = p.add_subparsers(dest="transits_command", required=True, metavar="{search,export,purge}")

    def common(q):
        q.add_argument("--db", required=True, help="the aggregator's SQLite database")
        q.add_argument(
            "--key-file",
            help="pseudonymisation key file (default $VIGIL_PLATE_KEY / $VIGIL_PLATE_KEY_FILE / ~/.config/vigil/plate-hmac.key)",
        )

    s = ts.add_parser("search", help="transits of one plate (also pseudonymised ones)")
    common(s)
    s.add_argument("plate")
    s.add_argument("--since", help="ISO time")
    s.add_argument("--until", help="ISO time")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.set_defaults(func=_cmd_search)
    x = ts.add_parser("export", help="write transits as CSV or JSON")
    common(x)
    x.add_argument("--format", choices=["csv", "json"], default="csv")
    x.add_argument("--output", "-o", help="output file (default: standard output)")
    x.add_argument("--plate", help="only this plate")
    x.add_argument("--since", help="ISO time")
    x.add_argument("--until", help="ISO time")
    x.set_defaults(func=_cmd_export)
    g = ts.add_parser("purge", help="delete pseudonymised transits older than the retention")
    common(g)
    g.add_argument("--retention-days", type=float, default=7.0, help="no-hit transits kept this long (default 7)")
    g.add_argument("--hit-retention-days", type=float, help="also delete list hits older than this (default: keep)")
    g.set_defaults(func=_cmd_purge)

    p = subparsers.add_parser("watchlist", help="plate watch lists (CSV: plate,list,note,valid_until)")
    ws = p.add_subparsers(dest="watchlist_command", required=True, metavar="{check}")
    c = ws.add_parser("check", help="load list files and report malformed rows with line numbers")
    c.add_argument("files", nargs="+")
    c.set_defaults(func=_cmd_check_list)
