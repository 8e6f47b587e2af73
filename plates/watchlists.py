"""Watch lists (SCNTT-style): CSV files of plates to alarm on.

File format (UTF-8 CSV, header optional)::

    plate,list,note,valid_until
    AB123CD,A1,stolen 2026-11-01,2027-05-01
    EF 456 GH,C,,

``list``: ``A1`` (stolen), ``C`` (flagged by police), ``A2`` (not inspected), ``UNINSURED``
(also ``uninsured``/``U``). ``valid_until`` (ISO date or date-time, optional): the entry stops
matching after it. Malformed rows are reported with their line number and skipped; the rest
loads. An empty file is an empty list.

:class:`WatchLists` re-reads a file when its modification time, size or inode change (checked
at most every ``check_interval_s``), so an edited list takes effect without a restart; a file
that fails to read keeps its previous entries. Matching tolerates confusable characters
(0/O/D/Q, 1/I/L, 8/B, 2/Z, 5/S, ...): a reading matches an entry whose confusable key is equal.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterable

from .grammar import MIN_CHARS, clean, confusable_key

log = logging.getLogger(__name__)

__all__ = ["WatchEntry", "ListHit", "WatchLists", "parse_list", "LIST_NAMES"]

LIST_NAMES = {"A1": "stolen", "C": "flagged", "A2": "not inspected", "UNINSURED": "uninsured"}
_ALIASES = {
    "A1": "A1",
    "C": "C",
    "A2": "A2",
    "UNINSURED": "UNINSURED",
    "U": "UNINSURED",
    "STOLEN": "A1",
    "FLAGGED": "C",
    "NOT_INSPECTED": "A2",
    "NOTINSPECTED": "A2",
    "NO_INSURANCE": "UNINSURED",
}


@dataclass(frozen=True)
class WatchEntry:
    plate: str
    list: str
    note: str
    valid_until: datetime | None
    source: str
    line: int

    def active(self, when: datetime) -> bool:
        return self.valid_until is None or when <= self.valid_until


@dataclass(frozen=True)
class ListHit:
    plate: str  #: the list's plate
    read: str  #: the plate as read
    list: str  #: A1, C, A2, UNINSURED
    list_name: str
    note: str
    exact: bool  #: False: matched through confusable characters
    source: str
    line: int

    def to_dict(self) -> dict:
        return {
            "list": self.list,
            "list_name": self.list_name,
            "plate": self.plate,
            "note": self.note,
            "exact": self.exact,
            "source": self.source,
            "line": self.line,
        }


def _parse_until(text: str) -> datetime:
    text = text.strip()
    if len(text) == 10:
        d = date.fromisoformat(text)
        return datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=timezone.utc)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def parse_list(text: str, source: str = "<list>") -> tuple[list[WatchEntry], list[str]]:
    """Entries and ``"source:line: reason"`` errors from CSV text."""
    entries, errors = [], []
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        line = reader.line_num
        cells = [c.strip() for c in row]
        if not cells or all(not c for c in cells) or cells[0].startswith("#"):
            continue
        if line == 1 and cells[0].lower() == "plate":
            continue  # header
        if len(cells) < 2:
            errors.append(f"{source}:{line}: expected plate,list[,note[,valid_until]], got {len(cells)} column")
            continue
        if len(cells) > 4:
            errors.append(f"{source}:{line}: expected at most 4 columns, got {len(cells)}")
            continue
        plate = clean(cells[0])
        if len(plate) < MIN_CHARS:
            errors.append(f"{source}:{line}: plate {cells[0]!r} has fewer than {MIN_CHARS} letters/digits")
            continue
        lst = _ALIASES.get(cells[1].upper().replace(" ", "_"))
        if lst is None:
            errors.append(f"{source}:{line}: unknown list {cells[1]!r} (A1, C, A2, UNINSURED)")
            continue
        until = None
        if len(cells) > 3 and cells[3]:
            try:
                until = _parse_until(cells[3])
            except ValueError:
                errors.append(f"{source}:{line}: bad valid_until {cells[3]!r} (YYYY-MM-DD)")
                continue
        entries.append(WatchEntry(plate, lst, cells[2] if len(cells) > 2 else "", until, source, line))
    return entries, errors


class WatchLists:
    """Watch-list files, reloaded on change. Thread-safe."""

    def __init__(self, paths: Iterable[str | Path] = (), check_interval_s: float = 1.0) -> None:
        self.paths = [Path(p) for p in paths]
        self.check_interval_s = float(check_interval_s)
        self._lock = threading.Lock()
        self._stamp: dict[Path, tuple | None] = {}
        self._entries: dict[Path, list[WatchEntry]] = {}
        self._errors: dict[Path, list[str]] = {}
        self._index: dict[str, list[WatchEntry]] = {}
        self._last_check = float("-inf")
        self.reloads = 0
        self.reload(force=True)

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return [e for p in self.paths for e in self._errors.get(p, [])]

    def entries(self) -> list[WatchEntry]:
        with self._lock:
            return [e for p in self.paths for e in self._entries.get(p, [])]

    def __len__(self) -> int:
        return len(self.entries())

    @staticmethod
    def _stat(path: Path) -> tuple | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self, force: bool = False) -> bool:
        """Re-read changed files (all with ``force``); True if anything was re-read."""
        changed = False
        with self._lock:
            self._last_check = time.monotonic()
            for path in self.paths:
                stamp = self._stat(path)
                if not force and stamp == self._stamp.get(path, ()):
                    continue
                self._stamp[path] = stamp
                changed = True
                if stamp is None:
                    self._errors[path] = [f"{path}: no such file (list empty until it appears)"]
                    self._entries[path] = []
                    continue
                try:
                    text = path.read_text(encoding="utf-8-sig")
                except (OSError, UnicodeDecodeError) as exc:
                    self._errors[path] = [f"{path}: cannot read: {exc} (previous entries kept)"]
                    continue
                entries, errors = parse_list(text, str(path))
                self._entries[path], self._errors[path] = entries, errors
                for e in errors:
                    log.warning("watch list: %s", e)
                log.info("watch list %s: %d entries loaded, %d malformed rows", path, len(entries), len(errors))
            if changed:
                self.reloads += 1
                index: dict[str, list[WatchEntry]] = {}
                for path in self.paths:
                    for e in self._entries.get(path, []):
                        index.setdefault(confusable_key(e.plate), []).append(e)
                self._index = index
        return changed

    def maybe_reload(self) -> bool:
        if time.monotonic() - self._last_check >= self.check_interval_s:
            return self.reload()
        return False

    def match(self, plate: str, when: datetime | float | None = None) -> list[ListHit]:
        """Active entries matching ``plate`` (exact first); reloads changed files first."""
        self.maybe_reload()
        read = clean(plate)
        if len(read) < MIN_CHARS:
            return []
        if when is None:
            when_dt = datetime.now(timezone.utc)
        elif isinstance(when, (int, float)):
            when_dt = datetime.fromtimestamp(float(when), timezone.utc)
        else:
            when_dt = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        with self._lock:
            candidates = list(self._index.get(confusable_key(read), []))
        hits = [
            ListHit(e.plate, read, e.list, LIST_NAMES[e.list], e.note, e.plate == read, e.source, e.line)
            for e in candidates
            if e.active(when_dt)
        ]
        hits.sort(key=lambda h: (not h.exact, h.list))
        return hits
