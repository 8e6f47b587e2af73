"""``vigil bench bus``: synthetic alarm events through the real edge outbox and transport.

Each publisher (``--publishers K``; one process each beyond the first, so that they do not
share one interpreter lock) is an :class:`~vigil.alerts.publisher.EventPublisher` with the
durable SQLite outbox (``--outbox PATH``; ``PATH.1``, ``PATH.2`` ... for the others), sending
``--events N`` events in all at ``--rate R`` events/s in all (0: as fast as it goes) to a
running aggregator, then waiting for every acknowledgement. Events left in an outbox by an
earlier run (a killed bench) are resent first and reported as ``recovered``. Each event's
``seq`` comes from the outbox (``next_seq``), so the sequence of each camera continues
across restarts without gaps.

With ``--stream EP`` an operator client (:class:`~vigil.alerts.tail.StreamClient`)
subscribed before the first event measures the latency edge → operator (the event carries
its wall-clock send time; the client stamps the arrival; same host, same clock).

Output (``--json``): ``published`` (new events this run), ``recovered``, ``acknowledged``,
``undelivered``, ``send_s``, ``acked_s`` (first send → last acknowledgement),
``stored_per_s`` (acknowledged / acked_s: the sustained rate the aggregator committed),
``latency_ms`` ``{n, p50, p90, p99, max}`` and ``received`` by the client.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

from vigil.alerts.events import Event, utc_iso
from vigil.alerts.keys import client_configurator
from vigil.alerts.publisher import EventPublisher
from vigil.alerts.tail import StreamClient
from vigil.alerts.transport import StreamFilter, is_local_endpoint

log = logging.getLogger(__name__)

__all__ = ["add_bench_command", "run_bus_bench"]

#: a small alarm update (``risk_level``, schema 2, no tracks: about the size the toy ``bench``
#: events of schema 1 had); the run id goes in ``zone``, the event's index in ``frame``, and the
#: latency is measured from the event's ``time`` (microseconds)
_BENCH_PAYLOAD = {
    "rule": "risk",
    "tracks": [],
    "positions_m": {},
    "metric": "risk_level",
    "value": 0.62,
    "threshold": 0.5,
    "duration_s": 12.5,
    "worst": 0.64,
    "exposure": 41.2,
    "proximity": 0.81,
}


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = sorted(values)

    def q(p: float) -> float:
        return round(v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))], 3)

    return {"n": len(v), "p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "max": round(v[-1], 3)}


def _publisher_run(index: int, opts: dict) -> dict:
    """One publisher: send opts['events'] new events at opts['rate'] per second; wait for acks."""

    configure = None
    if opts.get("keys"):
        configure = client_configurator(opts["keys"], opts["name"])
    outbox = opts["outbox"] if index == 0 else f"{opts['outbox']}.{index}"
    pub = EventPublisher(
        opts["connect"],
        outbox=outbox,
        configure_socket=configure,
        timeout_s=opts.get("ack_timeout_s", 2.0),
        backoff_max_s=5.0,
        max_buffer=max(200_000, 2 * opts["events"]),
    )
    cameras = [f"bench{index}-{c}" for c in range(opts.get("cameras", 1))]
    n, rate = opts["events"], opts["rate"]
    run_id = opts["run_id"]
    run_alarm = str(uuid.UUID(hex=run_id)) if len(run_id) == 32 else str(uuid.uuid5(uuid.NAMESPACE_URL, run_id))
    t0 = time.monotonic()
    try:
        k = 0
        while k < n:
            # every event due by now goes in one outbox transaction (as a video frame's events do)
            if rate > 0:
                due = t0 + k / rate
                delay = due - time.monotonic()
                if delay > 0.0005:
                    time.sleep(delay)
                batch = min(n - k, max(1, int((time.monotonic() - t0) * rate) + 1 - k), 256)
            else:
                batch = min(n - k, 64)
            events = []
            per_camera = Counter(cameras[j % len(cameras)] for j in range(k, k + batch))
            seqs = {c: iter(pub.next_seqs(c, count)) for c, count in per_camera.items()}
            for j in range(k, k + batch):
                camera = cameras[j % len(cameras)]
                now = time.time()
                events.append(
                    Event(
                        type="risk_level",
                        camera=camera,
                        seq=next(seqs[camera]),
                        time=utc_iso(now),
                        severity="info",
                        state="update",
                        payload={**_BENCH_PAYLOAD, "alarm_id": run_alarm, "zone": f"bench-{run_id}", "frame": j},
                    )
                )
            pub.publish_many(events)
            k += batch
        t_sent = time.monotonic()
        report = pub.flush(opts["flush_timeout_s"])
        t_acked = time.monotonic()
    finally:
        final = pub.close(0)
    return {
        "published": final.published - final.recovered,
        "recovered": final.recovered,
        "acknowledged": final.acknowledged,
        "undelivered": final.undelivered,
        "resent": final.resent,
        "send_s": t_sent - t0,
        "acked_s": (t_acked - t0) if report.complete else None,
        "complete": final.complete,
    }


def _child(index: int, opts: dict, queue) -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        queue.put((index, _publisher_run(index, opts)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, not hidden
        queue.put((index, {"error": f"{type(exc).__name__}: {exc}"}))


class _LatencyClient(threading.Thread):
    def __init__(self, endpoint: str, run_id: str, configure, since=None) -> None:
        super().__init__(daemon=True, name="bench-stream-client")

        self.client = StreamClient(
            endpoint, filters=[StreamFilter.of(type="risk_level")], since=since, configure_socket=configure
        )
        self.run_id = run_id.encode()
        self.latencies_ms: list[float] = []
        self.received = 0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                item = self.client.recv(0.1)
                if item is None:
                    continue
                arrived = time.time()
                raw = item[1]
                if self.run_id not in raw:
                    continue
                obj = json.loads(raw)
                self.received += 1
                sent = datetime.fromisoformat(obj["time"].replace("Z", "+00:00")).timestamp()
                self.latencies_ms.append((arrived - sent) * 1000.0)
        finally:
            self.client.close()


def run_bus_bench(opts: dict) -> dict:
    """Run the benchmark described by ``opts`` (see :func:`add_bench_command`); the result dict."""
    opts = dict(opts)
    opts.setdefault("run_id", uuid.uuid4().hex)
    k = max(1, int(opts.get("publishers", 1)))
    per = dict(opts)
    per["events"] = opts["events"] // k
    per["rate"] = opts["rate"] / k if opts["rate"] else 0
    configure = None
    if opts.get("keys"):
        configure = client_configurator(opts["keys"], opts["name"])
    client = None
    if opts.get("stream"):
        client = _LatencyClient(opts["stream"], opts["run_id"], configure)
        client.start()
        deadline = time.monotonic() + 10
        while not client.client.subscribed and time.monotonic() < deadline:
            time.sleep(0.01)
        if not client.client.subscribed:
            log.warning("bench bus: the stream client is not subscribed after 10 s; latency will be missing")
    t0 = time.monotonic()
    results: list[dict] = []
    if k == 1:
        results.append(_publisher_run(0, per))
    else:
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        procs = [ctx.Process(target=_child, args=(i, per, queue), daemon=True) for i in range(k)]
        for p in procs:
            p.start()
        for _ in procs:
            results.append(queue.get()[1])
        for p in procs:
            p.join()
    wall = time.monotonic() - t0
    errors = [r["error"] for r in results if "error" in r]
    ok = [r for r in results if "error" not in r]
    acked = sum(r["acknowledged"] for r in ok)
    out = {
        "publishers": k,
        "events": per["events"] * k,
        "rate": opts["rate"] or None,
        "published": sum(r["published"] for r in ok),
        "recovered": sum(r["recovered"] for r in ok),
        "acknowledged": acked,
        "undelivered": sum(r["undelivered"] for r in ok),
        "resent": sum(r["resent"] for r in ok),
        "send_s": round(max((r["send_s"] for r in ok), default=0.0), 3),
        "acked_s": None,
        "stored_per_s": None,
        "wall_s": round(wall, 3),
        "errors": errors,
    }
    if ok and all(r["acked_s"] is not None for r in ok):
        acked_s = max(r["acked_s"] for r in ok)
        out["acked_s"] = round(acked_s, 3)
        out["stored_per_s"] = round(acked / acked_s, 1) if acked_s > 0 else None
    if client is not None:
        expected = out["published"]
        deadline = time.monotonic() + opts.get("drain_s", 5.0)
        while client.received < expected and time.monotonic() < deadline:
            time.sleep(0.02)
        client.stop.set()
        client.join(5)
        out["received"] = client.received
        out["latency_ms"] = _percentiles(client.latencies_ms)
    out["complete"] = not errors and out["undelivered"] == 0
    return out


def cmd_bench_bus(args: argparse.Namespace) -> int:
    if bool(args.keys) == bool(args.insecure_dev):
        print("vigil bench bus: error: give --keys DIR --name NAME, or --insecure-dev", file=sys.stderr)
        return 2
    if args.keys and not args.name:
        print("vigil bench bus: error: --keys needs --name NAME", file=sys.stderr)
        return 2
    if args.insecure_dev:
        for ep in [*args.connect, *(args.stream or [])]:
            if not is_local_endpoint(ep):
                print(f"vigil bench bus: error: --insecure-dev only on loopback/ipc, not {ep}", file=sys.stderr)
                return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    opts = {
        "connect": args.connect,
        "stream": args.stream,
        "events": args.events,
        "rate": args.rate,
        "publishers": args.publishers,
        "outbox": str(args.outbox),
        "keys": args.keys,
        "name": args.name,
        "cameras": args.cameras,
        "flush_timeout_s": args.flush_timeout,
    }
    result = run_bus_bench(opts)
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        lat = result.get("latency_ms") or {}
        print(
            f"{result['published']} events sent ({result['recovered']} recovered from the outbox), "
            f"{result['acknowledged']} acknowledged, {result['undelivered']} undelivered; "
            f"stored {result['stored_per_s']} events/s; latency edge→operator p50 {lat.get('p50')} ms, "
            f"p99 {lat.get('p99')} ms"
        )
    return 0 if result["complete"] else 1


def add_bench_command(bench_sub) -> None:
    """Register ``bus`` on the ``vigil bench`` subparsers."""
    p = bench_sub.add_parser(
        "bus",
        help="alarm bus throughput and latency through the real outbox and transport",
        description="Send synthetic events through the durable edge outbox and the transport to a "
        "running aggregator; print what was sent and acknowledged, the sustained stored "
        "rate and the latency edge → operator client.",
    )
    p.add_argument(
        "--connect",
        required=True,
        action="append",
        help="aggregator ingest endpoint; repeat for several aggregators on one PostgreSQL database "
        "(each publisher connects to all of them)",
    )
    p.add_argument(
        "--stream",
        action="append",
        help="aggregator stream endpoint: measure latency edge → operator client; repeat for several "
        "aggregators (the client follows one, failing over to the next)",
    )
    p.add_argument("--events", type=int, required=True, help="events to send in all")
    p.add_argument("--rate", type=float, default=0.0, help="events per second in all (0: as fast as possible)")
    p.add_argument("--publishers", type=int, default=1, help="publisher processes (each its own outbox)")
    p.add_argument("--cameras", type=int, default=1, help="cameras per publisher")
    p.add_argument("--outbox", required=True, type=Path, help="durable outbox file (PATH.i for publisher i > 0)")
    p.add_argument("--keys", help="CURVE keys folder")
    p.add_argument(
        "--name", help="this client's key name in --keys (authorised as edge, and as operator too with --stream)"
    )
    p.add_argument("--insecure-dev", action="store_true", help="no CURVE (loopback only)")
    p.add_argument("--flush-timeout", type=float, default=120.0, help="wait this long for the last acknowledgements")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=cmd_bench_bus)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil-bench-bus")
    sub = parser.add_subparsers(dest="what", required=True)
    add_bench_command(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
