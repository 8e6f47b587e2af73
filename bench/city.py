"""``vigil bench city``: a city's load on the real aggregator (issue 17, "Modena's load, simulated").

A real ``vigil aggregator`` runs in a process of its own (SQLite file, temporary by default, or
PostgreSQL: ``--db`` / ``--dsn`` / ``--dsn-file``), with CURVE keys made for the run
(``--insecure-dev``: none, loopback) and a plate key made for the run
(:func:`~vigil.plates.pseudonym.create_key`, given to it as ``VIGIL_PLATE_KEY_FILE``), so every
``plate_transit`` is recorded pseudonymised in the transit table as in service. The load
model (what ``--cameras`` cameras and ``--gates`` plate gates send) is
:mod:`vigil.bench.city_load`; its events are valid schema-2 events built from the project's
types. Cameras share publishers: an edge "node" is one
:class:`~vigil.alerts.publisher.EventPublisher` (in-memory outbox: the durable outbox costs
the edge node, not the central side) for up to 25 cameras or 4 gate lanes
(:func:`~vigil.bench.city_load.city_nodes`), each camera with its own name and ``seq``; the
nodes run in ``--procs`` [2] publisher processes. ``--consoles`` [4] operator stream clients
(:class:`~vigil.alerts.tail.StreamClient`, operator key, no filter: every event) subscribe
before the first event; each stamps the arrival of every event, and the latency is arrival
minus the event's ``time`` (set when the publisher creates it; same host, same clock).

Phases, one aggregator, one database:

1. **replay**: the model at its busiest-hour rate for ``--minutes`` [1] minutes:
   ``alarm_latency_p99_ms`` (every event type but heat maps, all consoles) and the
   aggregator's CPU share and peak RSS.
2. **storage**: ``--storage-events`` [1000] events of each kind alone; the database's growth
   (SQLite: file plus WAL after ``wal_checkpoint(TRUNCATE)``; PostgreSQL: the sum of
   ``pg_total_relation_size`` of the schema's tables) divided by their number is
   ``storage_bytes_per_event`` of the kind (indexes and transit rows included), and
   ``storage_bytes_per_day`` the sum over kinds of that times the model's daily volume.
3. **max sustained**: the model's mix played ``factor`` times faster than real time for
   ``--step-seconds`` [5] each step. A step *holds* when the aggregator stored (acknowledged)
   at least 95 % of the events offered during the step, the backlog left at its end was
   drained within 1 s (the backlog did not grow), and the alarm latency p99 of the step's
   events is under 1 s. Steps start at factor 10 (the goal), double while they hold (halve
   while they do not), then ``--refine`` [2] bisections (geometric) between the last holding
   and the first failing factor. ``max_sustained_events_per_s`` is the offered rate of the
   fastest step that held; ``headroom`` = ``max_sustained_events_per_s / peak_events_per_s``
   (rounded to 3 decimals). A step whose publishers could not offer its rate on time ends the
   ladder (``limited_by: publishers``: this machine's cores, shared by everything, not the
   aggregator, set the bound).

Output (``--json``: one object): ``peak_events_per_s``, ``max_sustained_events_per_s``
(events/s), ``headroom`` (ratio), ``limited_by``, ``alarm_latency_p99_ms`` (ms, replay),
``storage_bytes_per_event`` (bytes, per kind), ``storage_bytes_per_day`` and
``storage_bytes_15_days`` (bytes held after 15 days under the default retention: heat
maps kept 7 days, everything else at least 15; ``storage_days_kept_of_15`` per kind), ``load_model`` (its parameters),
``peak_rates_per_s`` and ``daily_events`` per kind, ``replay`` and ``steps`` (per phase:
offered and stored events/s, backlog in events, drain s, latency ms, aggregator CPU % of one
core and peak RSS MB), and the counts below.

At the end every event offered must be stored exactly once (``stored`` = ``stored_distinct``
= ``offered``, counted in the database) and every ``plate_transit`` be in the transit table.
All figures come from one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from vigil.alerts.aggregator.retention import RetentionPolicy
from vigil.alerts.keys import client_configurator, new_key_pair
from vigil.alerts.store import open_store
from vigil.alerts.tail import StreamClient
from vigil.bench.city_load import KINDS, LoadModel, camera_names, city_nodes, lane_names, publisher_process
from vigil.bench.procs import free_port, rss_kib
from vigil.plates.pseudonym import create_key
from vigil.postgres import DsnError, add_db_options, db_target

__all__ = ["run_city", "add_bench_command"]

#: a step holds when at least this share of its offered events was stored during it
STORED_SHARE = 0.95
#: ... its backlog was drained within this many seconds of its end
DRAIN_LIMIT_S = 1.0
#: ... and its alarm latency p99 is under this (milliseconds)
LATENCY_LIMIT_MS = 1000.0
_TIME = re.compile(rb'"time":\s*"([^"]+)"')
_TYPE = re.compile(rb'"type":\s*"([^"]+)"')


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = sorted(values)

    def q(p: float) -> float:
        return round(v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))], 1)

    return {"n": len(v), "p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "max": round(v[-1], 1)}


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (``/proc/PID/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


# ---------------------------------------------------------------------------------- aggregator
class _Aggregator:
    """``vigil aggregator`` in a child process on loopback; log to ``workdir/aggregator.log``."""

    def __init__(self, work: Path, db: str | None, dsn: str | None, keys: Path | None, plate_key: Path) -> None:
        self.work, self.db, self.dsn, self.keys = work, db, dsn, keys
        self.ingest = f"tcp://127.0.0.1:{free_port()}"
        self.stream = f"tcp://127.0.0.1:{free_port()}"
        self.log_path = work / "aggregator.log"
        self.plate_key = plate_key
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "_Aggregator":
        cmd = [sys.executable, "-m", "vigil", "aggregator", "--ingest", self.ingest, "--stream", self.stream]
        if self.dsn:
            dsn_file = self.work / "aggregator.dsn"  # the password never on a command line
            fd = os.open(dsn_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(self.dsn + "\n")
            cmd += ["--dsn-file", str(dsn_file)]
        else:
            cmd += ["--db", str(self.db)]
        cmd += ["--keys", str(self.keys)] if self.keys else ["--insecure-dev"]
        env = {k: v for k, v in os.environ.items() if k not in ("VIGIL_PLATE_KEY", "VIGIL_DSN", "VIGIL_DSN_FILE")}
        env["VIGIL_PLATE_KEY_FILE"] = str(self.plate_key)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        return self

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-2000:]

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ---------------------------------------------------------------------------------- consoles
class _Console(threading.Thread):
    """An operator console: a stream client receiving every event; it keeps, per event, its
    creation time (the event's ``time``, POSIX s), its latency (ms) and whether it is an alarm."""

    def __init__(self, endpoint: str, configure) -> None:
        super().__init__(daemon=True, name="city-console")
        self.client = StreamClient(endpoint, configure_socket=configure)
        self.samples: list[tuple[float, float, bool]] = []
        self.received = 0
        self.stop = threading.Event()

    def run(self) -> None:
        parse = _parse_time
        try:
            while not self.stop.is_set():
                item = self.client.recv(0.1)
                if item is None:
                    continue
                arrived = time.time()
                raw = item[1]
                self.received += 1
                m, k = _TIME.search(raw), _TYPE.search(raw)
                if m and k:
                    created = parse(m.group(1))
                    self.samples.append((created, (arrived - created) * 1000.0, k.group(1) != b"heatmap"))
        finally:
            self.client.close()


def _parse_time(text: bytes) -> float:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (the events' UTC time) -> POSIX seconds."""
    return datetime.strptime(text.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def _alarm_latency(consoles: list[_Console], t0: float, t1: float) -> dict:
    """Latency (ms) of the alarm events created in ``[t0, t1)`` over all consoles."""
    values = [lat for c in consoles for (ts, lat, alarm) in list(c.samples) if alarm and t0 <= ts < t1]
    return _percentiles(values)


# ---------------------------------------------------------------------------------- the database
def _db_bytes(db: str | None, dsn: str | None) -> int:
    """The database's size now: SQLite file + WAL after a TRUNCATE checkpoint; PostgreSQL the sum
    of ``pg_total_relation_size`` of the tables of the current schema (indexes, TOAST included)."""
    if dsn:
        import psycopg  # noqa: PLC0415 - PostgreSQL runs only

        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()"
            ).fetchone()
            return int(row[0])
    conn = sqlite3.connect(db, timeout=30)
    try:
        for _ in range(100):
            busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                break
            time.sleep(0.05)
    finally:
        conn.close()
    wal = Path(f"{db}-wal")
    return os.path.getsize(db) + (wal.stat().st_size if wal.exists() else 0)


def _counts(db: str | None, dsn: str | None, plate_key: Path) -> dict:
    with open_store(db=db, dsn=dsn, readonly=True) as store:
        n, distinct = store.count()
        transits = store.open_transits(key_file=plate_key)
        try:
            t = transits.count()
        finally:
            transits.close()
    return {"stored": n, "stored_distinct": distinct, "transits": t}


# ---------------------------------------------------------------------------------- the run
class _Run:
    """The publisher processes and the consoles of one run, and the phases they play."""

    def __init__(self, agg: _Aggregator, model: LoadModel, procs: int, keys: Path | None, consoles: int) -> None:
        self.agg, self.model = agg, model
        configure = client_configurator(keys, "console") if keys else None
        self.consoles = [_Console(agg.stream, configure) for _ in range(consoles)]
        for c in self.consoles:
            c.start()
        deadline = time.monotonic() + 60
        while not all(c.client.subscribed for c in self.consoles):  # the aggregator serves
            if not agg.alive():
                raise RuntimeError(f"aggregator exited ({agg.proc.returncode}): {agg.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError("the consoles are not subscribed after 60 s")
            time.sleep(0.02)
        nodes = city_nodes(camera_names(model.cameras), lane_names(model.gates, model.lanes_per_gate))
        share = [nodes[i::procs] for i in range(procs)]
        mp = multiprocessing.get_context("spawn")
        self.conns, self.procs = [], []
        for i, my_nodes in enumerate(s for s in share if s):
            parent, child = mp.Pipe()
            spec = {"ingest": agg.ingest, "keys": str(keys) if keys else None, "nodes": my_nodes}
            spec.update(model=dict(model.__dict__), run=f"{os.getpid()}-{time.time()}")
            p = mp.Process(target=publisher_process, args=(i, spec, child), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        self.info = [c.recv() for c in self.conns]
        self.nodes = len(nodes)
        self.offered = 0
        self.offered_kinds: Counter = Counter()

    def phase(self, factor: float, wall_s: float) -> dict:
        """Play the model at ``factor`` times real time for ``wall_s``; the step's figures."""
        start_at = time.monotonic() + 0.2
        t0 = time.time() + 0.2
        cpu0, rss = _cpu_s(self.agg.proc.pid), []
        for c in self.conns:
            c.send({"op": "phase", "factor": factor, "start_at": start_at, "wall_s": wall_s})
        results = []
        for c in self.conns:
            while not c.poll(0.05):
                rss.append(rss_kib(self.agg.proc.pid) or 0)
            results.append(c.recv())
        cpu = _cpu_s(self.agg.proc.pid) - cpu0
        t1 = time.time()
        time.sleep(0.1)  # the last events reach the consoles
        offered = sum(r["offered"] for r in results)
        self.offered += offered
        for r in results:
            self.offered_kinds.update(r["kinds"])
        acked = [r["acked_in_step"] for r in results]
        drains = [r["drain_s"] for r in results]
        emit_s = max(r["emit_s"] for r in results)
        row = {
            "factor": round(factor, 3),
            "target_per_s": round(float(self.model.peak_events_per_s()) * factor, 1),
            "offered_per_s": round(offered / wall_s, 1),
            "stored_in_step_per_s": round(sum(acked) / wall_s, 1) if None not in acked else None,
            "max_backlog": sum(r["max_backlog"] for r in results),
            "drain_s": round(max(drains), 3) if None not in drains else None,
            "alarm_latency_ms": _alarm_latency(self.consoles, t0, t1),
            "aggregator_cpu_pct": round(100.0 * cpu / (t1 - t0), 1),
            "aggregator_peak_rss_mb": round(max(rss, default=0) / 1024, 1),
            "offered": offered,
            "kept_up": emit_s <= wall_s * 1.05 + 0.1,
        }
        lat = row["alarm_latency_ms"].get("p99")
        row["holds"] = bool(
            offered
            and None not in acked
            and sum(acked) >= STORED_SHARE * offered
            and row["drain_s"] is not None
            and row["drain_s"] <= DRAIN_LIMIT_S
            and lat is not None
            and lat < LATENCY_LIMIT_MS
        )
        return row

    def burst(self, kind: str, n: int) -> bool:
        plate = kind.startswith("plate")
        for conn, info in zip(self.conns, self.info):
            if info["lanes" if plate else "cameras"]:
                conn.send({"op": "burst", "kind": kind, "n": n})
                ok = conn.recv()["complete"]
                self.offered += n
                self.offered_kinds[kind] += n
                return ok
        return False

    def close(self) -> dict:
        finals = []
        for c in self.conns:
            c.send({"op": "stop"})
            finals.append(c.recv())
        for p in self.procs:
            p.join(30)
        return {"undelivered": sum(f["undelivered"] for f in finals)}

    def stop_consoles(self, expected: int, timeout_s: float = 20.0) -> list[int]:
        deadline = time.monotonic() + timeout_s
        while any(c.received < expected for c in self.consoles) and time.monotonic() < deadline:
            time.sleep(0.05)
        for c in self.consoles:
            c.stop.set()
            c.join(5)
        return [c.received for c in self.consoles]


def _ladder(run: _Run, step_s: float, refine: int, max_factor: float = 8192.0) -> tuple[list[dict], dict | None, str]:
    """The max-sustained steps (see the module docstring): all rows, the fastest holding, why it stopped."""
    steps: list[dict] = []
    best, lo, hi, limited = None, None, None, "aggregator"

    def step(f: float) -> dict:
        row = run.phase(f, step_s)
        steps.append(row)
        return row

    f = 10.0
    row = step(f)
    if row["holds"]:
        best, lo = row, f
        while f < max_factor:
            f *= 2
            row = step(f)
            if not row["kept_up"]:
                limited, hi = "publishers", f
                break
            if not row["holds"]:
                hi = f
                break
            best, lo = row, f
        else:
            limited = "max_factor"
    else:
        hi = f
        while f > 1.0:
            f /= 2
            row = step(f)
            if row["holds"]:
                best, lo = row, f
                break
            hi = f
    if lo is not None and hi is not None:
        for _ in range(refine):
            mid = math.sqrt(lo * hi)
            row = step(mid)
            if row["holds"]:
                lo = mid
                if best is None or row["offered_per_s"] > best["offered_per_s"]:
                    best = row
            else:
                hi = mid
    return steps, best, limited


def run_city(
    *,
    cameras: int = 300,
    gates: int = 16,
    minutes: float = 1.0,
    db: str | None = None,
    dsn: str | None = None,
    curve: bool = True,
    procs: int = 2,
    consoles: int = 4,
    step_seconds: float = 5.0,
    refine: int = 2,
    storage_events: int = 1000,
    workdir: str | Path | None = None,
) -> dict:
    """Run the three phases (see the module docstring); the report as a dict."""
    model = LoadModel(cameras=cameras, gates=gates, consoles=consoles)
    peak = model.peak_events_per_s()
    tmp = tempfile.TemporaryDirectory(prefix="vigil-city-") if workdir is None else None
    work = Path(tmp.name if tmp else workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        if not dsn and not db:
            db = str(work / "events.db")
        keys = None
        if curve:
            keys = work / "keys"
            new_key_pair("aggregator", keys)
            new_key_pair("city-edge", keys, authorize="edge")
            new_key_pair("console", keys, authorize="operator")
        plate_key = create_key(work / "plate-hmac.key")
        with _Aggregator(work, db, dsn, keys, plate_key) as agg:
            run = _Run(agg, model, procs, keys, consoles)
            try:
                base = _counts(db, dsn, plate_key)
                replay = run.phase(1.0, minutes * 60.0)
                sizes: dict[str, float | None] = dict.fromkeys(KINDS)
                for kind in (k for k, rate in model.peak_rates().items() if rate > 0):  # none of a kind not in the city
                    before = _db_bytes(db, dsn)
                    if not run.burst(kind, storage_events):
                        raise RuntimeError(f"the {kind} storage burst was not acknowledged: {agg.tail()}")
                    sizes[kind] = (_db_bytes(db, dsn) - before) / storage_events
                steps, best, limited = _ladder(run, step_seconds, refine)
            finally:
                final = run.close()
            received = run.stop_consoles(run.offered)
            alive = agg.alive()
        counts = _counts(db, dsn, plate_key)
    finally:
        if tmp is not None:
            tmp.cleanup()
    daily = model.daily_events()
    per_day = sum(float(daily[k]) * sizes[k] for k in KINDS if sizes[k] is not None)
    kept = _days_kept(RetentionPolicy(), 15.0)
    after_15 = sum(float(daily[k]) * sizes[k] * kept[k] for k in KINDS if sizes[k] is not None)
    max_sustained = best["offered_per_s"] if best else 0.0
    transits_offered = run.offered_kinds["plate_transit"] + run.offered_kinds["plate_transit_hit"]
    out = {
        "cameras": cameras,
        "gates": gates,
        "minutes": minutes,
        "database": "postgresql" if dsn else "sqlite",
        "transport": "curve" if curve else "insecure-dev (loopback)",
        "load_model": model.params(),
        "peak_rates_per_s": {k: float(v) for k, v in model.peak_rates().items()},
        "daily_events": {k: float(v) for k, v in daily.items()},
        "peak_events_per_s": float(peak),
        "max_sustained_events_per_s": max_sustained,
        "headroom": round(max_sustained / float(peak), 3),
        "limited_by": limited,
        "alarm_latency_p99_ms": replay["alarm_latency_ms"].get("p99"),
        "storage_bytes_per_event": {k: None if v is None else round(v, 1) for k, v in sizes.items()},
        "storage_bytes_per_day": round(per_day),
        "storage_bytes_15_days": round(after_15),
        "storage_days_kept_of_15": kept,
        "replay": replay,
        "steps": steps,
        "publisher_procs": len(run.procs),
        "nodes": run.nodes,
        "offered": run.offered,
        "stored": counts["stored"] - base["stored"],
        "stored_distinct": counts["stored_distinct"] - base["stored_distinct"],
        "transits_offered": transits_offered,
        "transits": counts["transits"] - base["transits"],
        "undelivered": final["undelivered"],
        "console_received": received,
        "aggregator_alive": alive,
    }
    out["complete"] = bool(
        alive
        and out["undelivered"] == 0
        and out["stored"] == out["stored_distinct"] == out["offered"]
        and out["transits"] == transits_offered
    )
    return out


def _main(args: argparse.Namespace) -> int:
    db = dsn = None
    if args.db or args.dsn or args.dsn_file:
        try:
            db, dsn = db_target(args)
        except DsnError as exc:
            print(f"vigil bench city: error: {exc}", file=sys.stderr)
            return 2
    if args.cameras < 1 or args.gates < 0 or args.minutes <= 0:
        print("vigil bench city: error: --cameras >= 1, --gates >= 0 and --minutes > 0", file=sys.stderr)
        return 2
    report = run_city(
        cameras=args.cameras,
        gates=args.gates,
        minutes=args.minutes,
        db=db,
        dsn=dsn,
        curve=not args.insecure_dev,
        procs=args.procs,
        consoles=args.consoles,
        step_seconds=args.step_seconds,
        refine=args.refine,
        storage_events=args.storage_events,
    )
    if args.json:
        print(json.dumps(report), flush=True)
    else:
        r = report
        print(
            f"{r['cameras']} cameras, {r['gates']} gates, {r['database']}, {r['transport']}: peak "
            f"{r['peak_events_per_s']:.1f} events/s; max sustained {r['max_sustained_events_per_s']:.0f} events/s "
            f"(limited by {r['limited_by']}); headroom {r['headroom']:.1f}x"
        )
        print(
            f"alarm latency p99 at peak {r['alarm_latency_p99_ms']} ms; storage "
            f"{r['storage_bytes_per_day'] / 1e9:.2f} GB/day, {r['storage_bytes_15_days'] / 1e9:.1f} GB in 15 days"
        )
        print(
            f"offered {r['offered']}, stored {r['stored']} ({r['stored_distinct']} distinct), transits "
            f"{r['transits']} of {r['transits_offered']}; {'complete' if r['complete'] else 'INCOMPLETE'}"
        )
    return 0 if report["complete"] else 1


def _days_kept(policy: RetentionPolicy, days: float) -> dict[str, float]:
    """Per event kind, how many of ``days`` days of it the database holds once the aggregator's
    retention ``policy`` has run (docs/retention.md): ``min(days, the class's retention)``."""
    by_kind = {"heatmap": policy.heatmap_days, "plate_transit": policy.transit_days}
    by_kind.update(plate_transit_hit=policy.hit_days, plate_hit=policy.hit_days)
    return {k: min(days, by_kind.get(k, policy.events_days)) for k in KINDS}


def add_bench_command(bench_sub) -> None:
    """Register ``city`` on the ``vigil bench`` subparsers."""
    p = bench_sub.add_parser(
        "city",
        help="a city's cameras and plate gates on the real aggregator: headroom, latency, storage",
        description="Play a city's load model (alarms per camera, heat maps, plate gates at one car a second per "
        "lane, operator consoles) against a real aggregator and print the peak rate, the highest rate it "
        "sustains, the headroom, the storage per day and after 15 days, and the alarm latency p99 "
        "(bench/README.md, issue 17).",
    )
    p.add_argument("--cameras", type=int, default=300, help="cameras (default 300)")
    p.add_argument("--gates", type=int, default=16, help="plate gates of one lane (default 16)")
    p.add_argument("--minutes", type=float, default=1.0, help="minutes of the replay at the peak rate (default 1)")
    add_db_options(p, "the aggregator's database")
    p.add_argument("--insecure-dev", action="store_true", help="without CURVE on loopback (default: keys for the run)")
    p.add_argument("--procs", type=int, default=2, help="publisher processes (default 2)")
    p.add_argument("--consoles", type=int, default=4, help="operator stream clients (default 4)")
    p.add_argument("--step-seconds", type=float, default=5.0, help="seconds per max-sustained step (default 5)")
    p.add_argument("--refine", type=int, default=2, help="bisections after the doubling steps (default 2)")
    p.add_argument("--storage-events", type=int, default=1000, help="events of each kind measured for storage")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=_main)
