"""``vigil bench hostile``: honest publishers keep their rate while a hostile client attacks.

A real aggregator runs in a process of its own (``vigil aggregator``, SQLite, loopback), with
its log going to a file. An honest :class:`~vigil.alerts.publisher.EventPublisher` (another
process) sends ``--rate`` events/s all the time. The run is cut into phases of ``--seconds``
each: for each hostile class below, in turn, a ``clean_before_<class>`` phase (nobody
attacks), then the class's phase. Per phase the bench reports:

- ``stored_per_s``: honest events acknowledged per second (the publisher's report, sampled
  every 0.1 s) and ``stored_ratio`` against the clean phase just before (goal >= 0.95);
- ``peak_rss_mb``: the aggregator's largest resident set during the phase (``/proc``, every
  20 ms) and ``rss_ratio`` against the clean phase just before (goal <= 1.5);
- ``log_lines``: lines the aggregator wrote to its log during the phase;
- ``hostile_sent``: what the attacker sent (messages or connections).

Flooding classes send 2,000 messages of 10 frames per second (ten times the honest rate of
events). Classes (``--classes``, default all): ``out_of_range`` (integers outside 64 bits,
resent forever), ``loose_types`` (``"7"``, ``7.0``, ``true`` for integers; no schema),
``odd_payloads`` (a number for the track list, positions as a list, coordinates of 1e308),
``garbage`` (random bytes), ``big_messages`` (65 MB messages of 255 KiB frames, each under
``MAXMSGSIZE``), ``big_frames`` (1 MB frames, above ``MAXMSGSIZE``), ``conflicts`` (a stored id
resent with other content), ``replaying_operators`` (100 stream clients replaying history from
0 and never reading; the store is preloaded with ``--preload`` events first), ``unknown_key``
(100 connections a second with a key on no allow-list), ``operator_key_publishes`` (the same
with an operator's key, which may only read).

The aggregator runs with CURVE keys made for the run (``--insecure-dev``: without): the honest
publisher and the attacker have edge keys (an attacker with a valid key is a compromised or
broken node: everything above gets past the handshake), the replaying clients operator keys.

All figures come from one run on one machine: compare phases with each other, not with other
runs. ``--json`` prints everything as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import zmq

from vigil.alerts.events import Event, new_event_id, utc_iso
from vigil.alerts.keys import client_configurator, new_key_pair
from vigil.alerts.publisher import EventPublisher
from vigil.alerts.store import EventStore
from vigil.alerts.transport import MAX_BATCH_BYTES, StreamFilter, encode_subscribe
from vigil.bench.procs import free_port, rss_kib

__all__ = ["CLASSES", "AggregatorProcess", "run_hostile", "add_bench_command", "good_event"]

_PAYLOAD = {
    "rule": "risk",
    "tracks": [],
    "positions_m": {},
    "metric": "risk_level",
    "value": 0.62,
    "threshold": 0.5,
    "zone": "bench",
    "duration_s": 12.5,
    "worst": 0.64,
    "exposure": 41.2,
    "proximity": 0.81,
}


def good_event(camera: str, seq: int, frame: int = 0) -> Event:
    """A small valid ``risk_level`` update (what the honest publisher sends)."""
    return Event(
        type="risk_level",
        camera=camera,
        seq=seq,
        time=utc_iso(time.time()),
        severity="info",
        state="update",
        payload={**_PAYLOAD, "alarm_id": "6f1c2a4e-9b8d-4c3e-a7f1-0d2b4c6e8a10", "frame": frame},
    )


class AggregatorProcess:
    """``vigil aggregator`` on loopback in a child process (``--insecure-dev``), log to
    ``workdir/aggregator.log``; :meth:`rss_kb` reads its resident set, :meth:`log_lines` counts
    its log. Use as a context manager (SIGTERM, then SIGKILL after 10 s)."""

    def __init__(self, workdir: Path, db: Path | None = None, keys: Path | None = None) -> None:
        self.workdir = Path(workdir)
        self.keys = keys
        self.db = db or self.workdir / "events.db"
        self.ingest = f"tcp://127.0.0.1:{free_port()}"
        self.stream = f"tcp://127.0.0.1:{free_port()}"
        self.log_path = self.workdir / "aggregator.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "AggregatorProcess":
        cmd = [sys.executable, "-m", "vigil", "aggregator", "--db", str(self.db)]
        cmd += ["--keys", str(self.keys)] if self.keys else ["--insecure-dev"]
        cmd += ["--ingest", self.ingest, "--stream", self.stream]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until one event is acknowledged (the aggregator serves)."""
        sock = self.client("hostile")
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    tail = self.log_path.read_text()[-2000:]
                    raise RuntimeError(f"aggregator exited ({self.proc.returncode}): {tail}")
                sock.send(good_event("ready", 1).to_bytes())
                if sock.poll(500):
                    sock.recv()
                    return
            raise RuntimeError("aggregator did not answer within 60 s")
        finally:
            sock.close(linger=0)

    def client(self, name: str, kind: int = zmq.DEALER, endpoint: str | None = None) -> zmq.Socket:
        """A socket connected to ingest (or ``endpoint``), a CURVE client as key ``name`` when
        the aggregator has keys."""
        sock = zmq.Context.instance().socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if self.keys:
            client_configurator(self.keys, name)(sock)
        sock.connect(endpoint or self.ingest)
        return sock

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kb(self) -> int:
        return rss_kib(self.proc.pid) or 0

    def log_lines(self) -> int:
        self._log.flush()
        with open(self.log_path, "rb") as fh:
            return sum(1 for _ in fh)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ---------------------------------------------------------------------- the honest publisher
def _honest(endpoint: str, keys: str | None, rate: float, stop, out) -> None:
    """Publish ``rate`` events/s until ``stop`` is set; put ``[(monotonic, acknowledged), ...]``."""
    configure = client_configurator(keys, "honest") if keys else None
    pub = EventPublisher(endpoint, timeout_s=2.0, backoff_max_s=2.0, max_buffer=500_000, configure_socket=configure)
    samples = []
    t0 = time.monotonic()
    k = 0
    next_sample = t0
    try:
        while not stop.is_set():
            now = time.monotonic()
            due = int((now - t0) * rate) - k
            if due > 0:
                seqs = pub.next_seqs("honest", due)
                pub.publish_many([good_event("honest", s, k + i) for i, s in enumerate(seqs)])
                k += due
            if now >= next_sample:
                samples.append((now, pub.report().acknowledged))
                next_sample = now + 0.1
            time.sleep(0.002)
        samples.append((time.monotonic(), pub.report().acknowledged))
    finally:
        pub.close(timeout_s=1.0)
        out.put(samples)


# ---------------------------------------------------------------------- the attacker
def _dealer(agg: "AggregatorProcess", name: str = "hostile") -> zmq.Socket:
    """The attacker's DEALER: with keys, an authorised edge key (a compromised or broken node)."""
    sock = agg.client(name)
    sock.setsockopt(zmq.SNDHWM, 1000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    return sock


def _drain(sock: zmq.Socket) -> None:
    try:
        while True:
            sock.recv(zmq.NOBLOCK)
    except zmq.Again:
        pass


#: messages per second a flooding attacker sends (10 frames each: ten times the honest rate of
#: events; the attacker shares this machine's cores with the aggregator, a real one would not)
FLOOD_MESSAGES_PER_S = 2000


def _flood(frames_of: Callable[[int], list[bytes]], pace_s: float = 1.0 / FLOOD_MESSAGES_PER_S):
    """An attack that sends ``frames_of(k)`` as one message, again and again, every ``pace_s``."""

    def attack(agg: AggregatorProcess, stop: threading.Event) -> int:
        sock = _dealer(agg)
        k = 0
        t0 = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    sock.send_multipart(frames_of(k), zmq.NOBLOCK)
                    k += 1
                except zmq.Again:
                    time.sleep(0.001)
                _drain(sock)
                delay = t0 + k * pace_s - time.monotonic()
                if delay > 0:
                    stop.wait(delay)
        finally:
            sock.close(linger=0)
        return k

    return attack


def _mutated(k: int, change: Callable[[dict], None]) -> bytes:
    obj = json.loads(good_event("hostile", 1 + k % 1000, k).to_json())
    obj["id"] = str(uuid.UUID(int=(k % 1000) + 1))  # the same thousand ids resent forever
    change(obj)
    return json.dumps(obj).encode()


def _out_of_range(k: int) -> list[bytes]:
    def change(obj: dict) -> None:
        which = k % 3
        if which == 0:
            obj["seq"] = 2**63
        elif which == 1:
            obj["payload"]["frame"] = -(2**70)
        else:
            obj["payload"]["tracks"] = [2**64]

    return [_mutated(k * 10 + j, change) for j in range(10)]


def _loose_types(k: int) -> list[bytes]:
    changes = [
        lambda o: o.__setitem__("seq", str(o["seq"])),
        lambda o: o.__setitem__("seq", float(o["seq"])),
        lambda o: o.__setitem__("seq", True),
        lambda o: o.pop("schema"),
        lambda o: o["payload"].__setitem__("frame", "7"),
    ]
    return [_mutated(k * 10 + j, changes[j % len(changes)]) for j in range(10)]


def _odd_payloads(k: int) -> list[bytes]:
    changes = [
        lambda o: o["payload"].__setitem__("tracks", 5),
        lambda o: o["payload"].__setitem__("positions_m", [[1.0, 2.0]]),
        lambda o: o["payload"].__setitem__("positions_m", {"1": [1e308, -1e308]}),
        lambda o: o["payload"].__setitem__("value", 1e308),
        lambda o: o.__setitem__("payload", [1, 2, 3]),
    ]
    return [_mutated(k * 10 + j, changes[j % len(changes)]) for j in range(10)]


_rng = random.Random(7)


def _garbage(k: int) -> list[bytes]:
    return [bytes(_rng.getrandbits(8) for _ in range(_rng.randint(1, 200))) for _ in range(20)]


#: just under MAXMSGSIZE with CURVE's framing added (a frame of exactly MAX_BATCH_BYTES is
#: refused by libzmq once encrypted, and its sender disconnected, before it is buffered)
_BIG_FRAME = b"x" * (MAX_BATCH_BYTES - 1024)


def _big_message(k: int) -> list[bytes]:
    return [_BIG_FRAME] * (65 * 1024 * 1024 // len(_BIG_FRAME))  # 65 MB in 255 KiB frames


def _big_frame(k: int) -> list[bytes]:
    return [b"y" * (1024 * 1024)]


def _conflicts(agg: AggregatorProcess, stop: threading.Event) -> int:
    """Store one event, then resend its id with other content (ten variants), again and again."""
    sock = _dealer(agg)
    base = good_event("hostile-conflict", 1)
    sock.send(base.to_bytes())
    sock.poll(5000)
    _drain(sock)
    k = 0
    t0 = time.monotonic()
    try:
        while not stop.is_set():
            variant = base.model_copy(update={"payload": {**base.payload, "value": float(k % 10)}})
            try:
                sock.send_multipart([variant.to_bytes()] * 10, zmq.NOBLOCK)
                k += 1
            except zmq.Again:
                time.sleep(0.001)
            _drain(sock)
            delay = t0 + k / FLOOD_MESSAGES_PER_S - time.monotonic()
            if delay > 0:
                stop.wait(delay)
    finally:
        sock.close(linger=0)
    return k


def _replaying_operators(agg: AggregatorProcess, stop: threading.Event, n: int = 100) -> int:
    """``n`` stream clients subscribe from 0, renew every second and never read."""
    socks = []
    for _ in range(n):
        s = agg.client("reader", endpoint=agg.stream)
        s.setsockopt(zmq.RCVHWM, 1000)
        socks.append(s)
    try:
        while not stop.is_set():
            for s in socks:
                try:
                    s.send(encode_subscribe([StreamFilter()], 0), zmq.NOBLOCK)
                except zmq.Again:
                    pass
            stop.wait(1.0)
    finally:
        for s in socks:
            s.close(linger=0)
    return n


def _knocking(name: str):
    """A client that connects with key ``name`` (not allowed to publish), sends an event and
    drops the connection, 100 times a second: each a CURVE handshake the aggregator refuses."""

    def attack(agg: AggregatorProcess, stop: threading.Event) -> int:
        k = 0
        while not stop.is_set():
            sock = agg.client(name)
            try:
                sock.send(good_event("intruder", 1 + k).to_bytes(), zmq.NOBLOCK)
            except zmq.Again:
                pass
            stop.wait(0.01)
            sock.close(linger=0)
            k += 1
        return k

    return attack


CLASSES: dict[str, Callable[[AggregatorProcess, threading.Event], int]] = {
    "out_of_range": _flood(_out_of_range),
    "loose_types": _flood(_loose_types),
    "odd_payloads": _flood(_odd_payloads),
    "garbage": _flood(_garbage),
    "big_messages": _flood(_big_message, pace_s=0.8),
    "big_frames": _flood(_big_frame, pace_s=0.01),
    "conflicts": _conflicts,
    "replaying_operators": _replaying_operators,
    "unknown_key": _knocking("stranger"),
    "operator_key_publishes": _knocking("reader"),
}


def _make_keys(folder: Path) -> Path:
    """The aggregator's keys; ``honest`` and ``hostile`` edge keys, a ``reader`` operator key,
    a ``stranger`` key on no allow-list."""
    new_key_pair("aggregator", folder)
    for name, role in (("honest", "edge"), ("hostile", "edge"), ("reader", "operator"), ("stranger", None)):
        new_key_pair(name, folder, authorize=role or False)
    return folder


def _attack(attack, agg: AggregatorProcess, halt: threading.Event, result: dict) -> None:
    result["sent"] = attack(agg, halt)


def _preload(db: Path, n: int) -> None:
    """``n`` stored events of camera ``history`` (what replaying operators read back)."""
    with EventStore(db) as store:
        for k in range(0, n, 5000):
            events = [good_event("history", s + 1) for s in range(k, min(n, k + 5000))]
            events = [e.model_copy(update={"id": new_event_id()}) for e in events]
            store.add_many_seq(events)


def run_hostile(
    classes: list[str] | None = None,
    *,
    seconds: float = 5.0,
    rate: float = 2000.0,
    preload: int = 50_000,
    workdir: str | Path | None = None,
    curve: bool = True,
) -> dict:
    """Run the phases (see the module docstring); the report as a dict."""
    classes = list(CLASSES) if classes is None else classes
    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        raise ValueError(f"unknown hostile class(es) {', '.join(unknown)} (known: {', '.join(CLASSES)})")
    tmp = tempfile.TemporaryDirectory(prefix="vigil-hostile-") if workdir is None else None
    work = Path(tmp.name if tmp else workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        db = work / "events.db"
        if db.exists():
            db.unlink()
        shutil.rmtree(work / "keys", ignore_errors=True)
        if preload and "replaying_operators" in classes:
            _preload(db, preload)
        keys = _make_keys(work / "keys") if curve else None
        with AggregatorProcess(work, db, keys) as agg:
            mp = multiprocessing.get_context("spawn")
            stop, out = mp.Event(), mp.Queue()
            honest = mp.Process(
                target=_honest, args=(agg.ingest, str(keys) if keys else None, rate, stop, out), daemon=True
            )
            honest.start()
            rss: list[tuple[float, int]] = []
            sampling = threading.Event()

            def sample() -> None:
                while not sampling.is_set():
                    rss.append((time.monotonic(), agg.rss_kb()))
                    sampling.wait(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            time.sleep(2.0)  # the honest publisher warms up
            phases = []
            # each class right after a clean phase of its own: the honest rate and the
            # aggregator's memory (its page cache grows as the database does) drift over a run
            for name in [p for c in classes for p in (f"clean_before_{c}", c)]:
                lines0, t0 = agg.log_lines(), time.monotonic()
                halt = threading.Event()
                result: dict = {}
                attacker = None
                if name in CLASSES:
                    attacker = threading.Thread(target=_attack, args=(CLASSES[name], agg, halt, result), daemon=True)
                    attacker.start()
                time.sleep(seconds)
                halt.set()
                t1 = time.monotonic()
                if attacker is not None:
                    attacker.join(30)
                phases.append({"name": name, "t0": t0, "t1": t1, "log_lines": agg.log_lines() - lines0, **result})
                time.sleep(0.5)  # the attack's tail drains before the next phase
            stop.set()
            samples = out.get(timeout=60)
            honest.join(30)
            sampling.set()
            sampler.join(5)
            alive = agg.proc.poll() is None
    finally:
        if tmp is not None:
            tmp.cleanup()
    return _report(phases, samples, rss, rate, seconds, alive)


def _acked_at(samples: list[tuple[float, int]], t: float) -> int:
    best = 0
    for ts, n in samples:
        if ts > t:
            break
        best = n
    return best


def _report(phases, samples, rss, rate, seconds, alive) -> dict:
    out: dict = {"rate": rate, "seconds_per_phase": seconds, "aggregator_alive": alive, "phases": {}}
    clean = None
    for p in phases:
        if p["name"].startswith("clean"):
            clean = None  # this clean phase is the reference of the next class
        acked = _acked_at(samples, p["t1"]) - _acked_at(samples, p["t0"])
        during = [kb for ts, kb in rss if p["t0"] <= ts <= p["t1"] + 0.5]
        row = {
            "stored_per_s": round(acked / (p["t1"] - p["t0"]), 1),
            "peak_rss_mb": round(max(during, default=0) / 1024, 1),
            "log_lines": p["log_lines"],
        }
        if "sent" in p:
            row["hostile_sent"] = p["sent"]
        if clean is None:
            clean = row
        row["stored_ratio"] = round(row["stored_per_s"] / clean["stored_per_s"], 3) if clean["stored_per_s"] else None
        row["rss_ratio"] = round(row["peak_rss_mb"] / clean["peak_rss_mb"], 3) if clean["peak_rss_mb"] else None
        row["meets_goals"] = bool(
            row["stored_ratio"] is not None
            and row["stored_ratio"] >= 0.95
            and row["rss_ratio"] is not None
            and row["rss_ratio"] <= 1.5
        )
        out["phases"][p["name"]] = row
    out["all_goals_met"] = alive and all(r["meets_goals"] for r in out["phases"].values())
    return out


def _main(args: argparse.Namespace) -> int:
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    try:
        report = run_hostile(
            classes, seconds=args.seconds, rate=args.rate, preload=args.preload, curve=not args.insecure_dev
        )
    except ValueError as exc:
        print(f"vigil bench hostile: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"honest rate {report['rate']:.0f}/s, {report['seconds_per_phase']:.0f} s per phase")
        print(f"{'phase':<30}{'stored/s':>10}{'ratio':>8}{'peak MB':>9}{'ratio':>7}{'log':>6}  goals")
        for name, r in report["phases"].items():
            print(
                f"{name:<30}{r['stored_per_s']:>10.0f}{r['stored_ratio']:>8.3f}{r['peak_rss_mb']:>9.1f}"
                f"{r['rss_ratio']:>7.2f}{r['log_lines']:>6}  {'ok' if r['meets_goals'] else 'MISSED'}"
            )
        print("aggregator alive at the end" if report["aggregator_alive"] else "AGGREGATOR DIED")
    return 0 if report["aggregator_alive"] else 1


def add_bench_command(bench_sub) -> None:
    p = bench_sub.add_parser(
        "hostile",
        help="honest publishers' stored rate, aggregator memory and log volume while a hostile client attacks",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--classes", help=f"comma-separated, default all: {','.join(CLASSES)}")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per phase (default 5)")
    p.add_argument("--rate", type=float, default=2000.0, help="honest events per second (default 2000)")
    p.add_argument("--preload", type=int, default=50_000, help="stored events replaying operators read back")
    p.add_argument("--insecure-dev", action="store_true", help="without CURVE (default: keys made for the run)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_main)
