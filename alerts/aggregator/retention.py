"""Retention at the aggregator: each data class deleted once it is older than its limit.

Classes (:class:`RetentionPolicy`, all in days; defaults and their reasons in docs/retention.md):

* ``transits``: plate transits of vehicles on no watch list (pseudonymised), 15 days, the
  limit the SCNTT keeps transits; with every copy of them in the events table (their
  ``plate_transit`` events, which carry the ``evidence_id``, and ``event_conflicts`` copies):
  :meth:`vigil.plates.transits.TransitRecords.purge_all`.
* ``plate_hits``: transits that hit a watch list (plate in clear), 15 days unless configured:
  the municipality's copy of a hit is vehicle-pass data like any other; the alarm reaches the
  police when it is raised, and what the police keep they keep in their own systems.
* ``events``: every other event type but heat maps, 90 days (``events.time``, the
  observation's UTC time). Plate events (``plate_transit``, ``plate_hit``) are left to the two
  plate classes, so a longer event retention never keeps a plate pass longer than its transit's.
* ``heatmaps``: ``heatmap`` events, 7 days: a camera's occupancy grid once a minute, which
  the live map and a week's pattern use; they are most of the database (about 1.8 GB a day for
  Modena's 300 cameras in SQLite: ``vigil bench city``), so they are not kept as long as alarms.
* ``console_audit`` (365 days) and ``console_actions`` (90 days): the operator console's
  audit trail and alarm actions, through a hook (``console_purge``) that the command line
  gives (this package does not import the console).

Evidence images (plate crops of hits) live on the edge node and are purged there
(``plates.evidence_retention_days``, :meth:`vigil.plates.pipeline.PlatePipeline.purge_evidence_if_due`).

:class:`Retention` runs one pass (:meth:`Retention.run_once`: one log line per class, a
report) and schedules them (:meth:`Retention.due`, :meth:`Retention.start` for a short-lived
thread, :meth:`Retention.serve` for a thread of its own). It needs only the event store: event
deletes go through the store (its lock, short chunked transactions, see
:meth:`~vigil.alerts.store.sqlite.EventStore.purge_events`), transits through a transit store of
its own on the same database (its own connection). Every delete is "older than a cutoff", so
two jobs at once (two aggregators on one PostgreSQL database) are harmless: each row goes once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from vigil.plates.transits import TRANSIT_EVENT_TYPES

from ..store import Store

__all__ = ["RetentionPolicy", "Retention", "ConsolePurge", "DAY_S", "CLASSES", "HEATMAP_TYPES"]

log = logging.getLogger(__name__)

DAY_S = 86400.0
#: the classes a report has, in the order they are purged
CLASSES = ("transits", "plate_hits", "events", "heatmaps", "console_audit", "console_actions")
#: the event types of the ``heatmaps`` class (the ``events`` class leaves them out)
HEATMAP_TYPES = ("heatmap",)

#: ``hook(now=epoch_s, audit_days=days, actions_days=days)`` -> rows deleted per table
#: (``{"console_audit": n, "console_actions": m}``; ``audit``/``actions`` accepted too), or
#: ``None`` when there are no console tables to purge
ConsolePurge = Callable[..., "Mapping[str, int] | None"]


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each data class is kept (days, each > 0) and how often the job runs
    (``interval_s``, seconds > 0)."""

    transit_days: float = 15.0
    hit_days: float = 15.0
    events_days: float = 90.0
    heatmap_days: float = 7.0
    audit_days: float = 365.0
    actions_days: float = 90.0
    interval_s: float = 3600.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"retention {f.name} must be a positive number, got {value!r}")
            object.__setattr__(self, f.name, float(value))

    def days(self, cls: str) -> float:
        """The retention of class ``cls`` (one of :data:`CLASSES`), in days."""
        return {
            "transits": self.transit_days,
            "plate_hits": self.hit_days,
            "events": self.events_days,
            "heatmaps": self.heatmap_days,
            "console_audit": self.audit_days,
            "console_actions": self.actions_days,
        }[cls]


def _iso(ts: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC), the stored events' ``time`` format."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Retention:
    """The retention job of one aggregator (see the module docstring).

    ``store``: the aggregator's event store (SQLite or PostgreSQL, open for writing);
    ``console_purge``: the console hook (:data:`ConsolePurge`), ``None``: console tables are
    left alone (reported as skipped). Thread-safe: one pass at a time (a second caller while one
    runs gets ``None`` from :meth:`run_once` unless it waits)."""

    def __init__(
        self, store: Store, policy: RetentionPolicy | None = None, *, console_purge: ConsolePurge | None = None
    ) -> None:
        self.store = store
        self.policy = policy or RetentionPolicy()
        self.console_purge = console_purge
        self.last_run: float | None = None  #: wall-clock time (epoch s) of the last pass started
        self.last_report: dict | None = None
        self._run_lock = threading.Lock()
        self._transits: Any = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ scheduling
    def due(self, now: float | None = None) -> bool:
        """Whether a pass is due at ``now`` (epoch seconds, default the wall clock): none yet,
        ``interval_s`` since the last one started, or the clock went back."""
        now = time.time() if now is None else float(now)
        last = self.last_run
        return last is None or now - last >= self.policy.interval_s or now < last

    @property
    def running(self) -> bool:
        return self._run_lock.locked()

    def start(self, now: float | None = None) -> threading.Thread | None:
        """When due and no pass is running, run one in a short-lived daemon thread (so the
        caller, e.g. the serving loop, is never held); the thread, else ``None``. Cheap to call
        on every loop turn."""
        if self.running or not self.due(now):
            return None
        self.last_run = time.time() if now is None else float(now)  # not due again while it runs
        t = threading.Thread(target=self._run_logged, args=(now,), name="retention", daemon=True)
        self._thread = t
        t.start()
        return t

    def serve(self, stop: threading.Event, *, check_s: float = 30.0) -> None:
        """Run a pass whenever due until ``stop`` is set (checked every ``check_s`` seconds):
        the body of a thread of its own beside the aggregator."""
        while not stop.is_set():
            if self.due():
                self._run_logged(None)
            stop.wait(min(check_s, self.policy.interval_s))

    @contextmanager
    def in_background(self, *, check_s: float = 30.0, join_s: float = 30.0) -> Iterator[Retention]:
        """``with retention.in_background(): aggregator.serve_forever()``: :meth:`serve` in a
        daemon thread for the block; on leaving, waits up to ``join_s`` seconds for a running
        pass, then :meth:`close`."""
        stop = threading.Event()
        t = threading.Thread(target=self.serve, args=(stop,), kwargs={"check_s": check_s}, name="retention")
        t.daemon = True
        t.start()
        try:
            yield self
        finally:
            stop.set()
            t.join(join_s)
            self.close(join_s)

    def _run_logged(self, now: float | None) -> None:
        try:
            self.run_once(now)
        except Exception:  # noqa: BLE001 - a failed pass is retried at the next interval
            log.exception("retention: pass failed")

    # ------------------------------------------------------------------ one pass
    def run_once(self, now: float | None = None, *, dry_run: bool = False, wait: bool = True) -> dict | None:
        """Purge every class once at ``now`` (epoch seconds, default the wall clock); the report
        ``{class: {"deleted": n, "cutoff": iso, "days": d, ...}}`` (``transits``/``plate_hits``
        also give ``events``: the event copies deleted with them; a class that failed gives
        ``error``, one skipped ``skipped``). ``dry_run``: delete nothing, report
        ``would_delete`` (rows older than the cutoff; plate classes: transit rows) instead.
        One log line per class. ``wait=False``: ``None`` at once if a pass is running."""
        if not self._run_lock.acquire(blocking=wait):
            return None
        try:
            now = time.time() if now is None else float(now)
            if not dry_run:
                self.last_run = now
            report = {cls: self._purge(cls, now, dry_run) for cls in CLASSES[:4]}
            report.update(self._purge_console(now, dry_run))
            for cls in CLASSES:
                self._log(cls, report[cls], dry_run)
            if not dry_run:
                self.last_report = report
            return report
        finally:
            self._run_lock.release()

    def _cutoff(self, cls: str, now: float) -> tuple[float, dict]:
        days = self.policy.days(cls)
        cutoff = now - days * DAY_S
        return cutoff, {"deleted": 0, "cutoff": _iso(cutoff), "days": days}

    def _purge(self, cls: str, now: float, dry_run: bool) -> dict:
        cutoff, entry = self._cutoff(cls, now)
        try:
            if cls in ("events", "heatmaps"):
                types = (
                    {"only_types": HEATMAP_TYPES}
                    if cls == "heatmaps"
                    else {"exclude_types": (*TRANSIT_EVENT_TYPES, *HEATMAP_TYPES)}
                )
                if dry_run:
                    entry["would_delete"] = self.store.count_events_before(entry["cutoff"], **types)
                else:
                    entry["deleted"] = self.store.purge_events(entry["cutoff"], **types)
            elif dry_run:
                entry["would_delete"] = self.store.count_transits_before(cutoff, hits=cls == "plate_hits")
            else:
                purged = self._purge_transits(cls, now)
                entry["deleted"], entry["events"] = purged.transits, purged.events
        except Exception as exc:  # noqa: BLE001 - one class failing must not stop the others
            if cls in ("transits", "plate_hits"):
                self._drop_transits()  # a broken connection: reopened on the next pass
            entry["error"] = str(exc) or type(exc).__name__
        return entry

    def _purge_transits(self, cls: str, now: float) -> Any:
        """One plate class: ``transits`` purges the no-hit class only, ``plate_hits`` adds the
        hits' (the no-hit class, at the same ``now``, has nothing left), so each is counted."""
        if self._transits is None:
            self._transits = self.store.open_transits(
                retention_days=self.policy.transit_days, hit_retention_days=self.policy.hit_days
            )
        self._transits.retention_days = self.policy.transit_days
        self._transits.hit_retention_days = self.policy.hit_days if cls == "plate_hits" else None
        return self._transits.purge_all(now)

    def _purge_console(self, now: float, dry_run: bool) -> dict:
        audit_cut, audit = self._cutoff("console_audit", now)
        actions_cut, actions = self._cutoff("console_actions", now)
        out = {"console_audit": audit, "console_actions": actions}
        if self.console_purge is None:
            skip = "no console hook"
        elif dry_run:
            skip = "dry run: console rows are not counted"
        else:
            try:
                counts = self.console_purge(
                    now=now, audit_days=self.policy.audit_days, actions_days=self.policy.actions_days
                )
            except Exception as exc:  # noqa: BLE001 - reported and logged, the others went through
                audit["error"] = actions["error"] = str(exc) or type(exc).__name__
                return out
            if counts is None:
                skip = "no console tables"
            else:
                audit["deleted"] = int(counts.get("console_audit", counts.get("audit", 0)))
                actions["deleted"] = int(counts.get("console_actions", counts.get("actions", 0)))
                return out
        audit["skipped"] = actions["skipped"] = skip
        return out

    @staticmethod
    def _log(cls: str, entry: dict, dry_run: bool) -> None:
        what = cls.replace("_", " ")
        if "error" in entry:
            log.error("retention: %s older than %g days: purge failed: %s", what, entry["days"], entry["error"])
        elif "skipped" in entry:
            log.info("retention: %s older than %g days: skipped (%s)", what, entry["days"], entry["skipped"])
        elif dry_run:
            log.info(
                "retention: %s older than %g days: %d would be deleted (dry run)",
                what,
                entry["days"],
                entry["would_delete"],
            )
        elif "events" in entry:
            log.info(
                "retention: %s older than %g days: %d deleted (and %d event copies)",
                what,
                entry["days"],
                entry["deleted"],
                entry["events"],
            )
        else:
            log.info("retention: %s older than %g days: %d deleted", what, entry["days"], entry["deleted"])

    # ------------------------------------------------------------------ lifecycle
    def _drop_transits(self) -> None:
        transits, self._transits = self._transits, None
        if transits is not None:
            try:
                transits.close()
            except Exception:  # noqa: BLE001, S110 - it is being discarded because it broke
                pass

    def close(self, timeout_s: float = 30.0) -> None:
        """Wait (up to ``timeout_s`` seconds) for a pass started by :meth:`start`, then close the
        transit store this job opened (the event store is the caller's)."""
        t = self._thread
        if t is not None and t.is_alive():
            t.join(timeout_s)
        if self._run_lock.acquire(timeout=max(0.0, timeout_s)):
            try:
                self._drop_transits()
            finally:
                self._run_lock.release()
