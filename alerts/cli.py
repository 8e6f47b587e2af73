"""``vigil`` subcommands of the alarm path: ``aggregator``, ``tail``, ``events count|export``.

The main ``vigil`` CLI calls :func:`add_commands` with its ``argparse`` subparsers; each
subcommand sets ``func(args) -> int`` (the exit code). Standalone:
``python -m vigil.alerts.cli <command> ...``.

Exit codes: 0 success; 1 runtime failure (message on stderr: unreadable database, address
in use, ...); 2 usage error (argparse), including a refused non-loopback bind.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Callable

import zmq

from .aggregator import Aggregator, AggregatorError
from .store import EventStore, StoreError
from .tail import tail
from .transport import DEFAULT_INGEST_ENDPOINT, DEFAULT_STREAM_ENDPOINT, is_local_endpoint, INSECURE_BIND_MESSAGE, topic_prefix

__all__ = ["add_commands", "main"]

log = logging.getLogger(__name__)


def _error(command: str, message: str, code: int = 1) -> int:
    print(f"vigil {command}: error: {message}", file=sys.stderr)
    return code


def _ensure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _stdout_closed() -> int:
    # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


# ---------------------------------------------------------------------- commands
def cmd_aggregator(args: argparse.Namespace) -> int:
    for endpoint in (args.ingest, args.stream):
        if not is_local_endpoint(endpoint):
            extra = (" (--insecure-dev does not lift this in this build: it has no CURVE support yet)"
                     if args.insecure_dev else "")
            return _error("aggregator", INSECURE_BIND_MESSAGE.format(endpoint=endpoint) + extra, 2)
    _ensure_logging()
    try:
        agg = Aggregator(args.db, args.ingest, args.stream)
    except AggregatorError as exc:
        return _error("aggregator", str(exc))
    try:
        log.info("aggregator serving; stop with Ctrl-C or SIGTERM")
        agg.serve_forever()
    finally:
        agg.close()
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    if args.camera is not None and args.topic:
        return _error("tail", "give --camera or --topic, not both", 2)
    topic = topic_prefix(camera=args.camera) if args.camera is not None else (args.topic or "")
    try:
        n = tail(args.connect, topic_filter=topic, as_json=args.json, out=sys.stdout,
                 max_events=args.max_events, timeout_s=args.timeout)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return _stdout_closed()
    except zmq.ZMQError as exc:
        return _error("tail", f"cannot follow {args.connect}: {exc}")
    if args.max_events is not None and n < args.max_events:
        print(f"vigil tail: {n} of {args.max_events} event(s) before the {args.timeout} s timeout",
              file=sys.stderr)
        return 1
    return 0


def _open_store(path: str) -> EventStore:
    return EventStore(path, readonly=True)


def cmd_events_count(args: argparse.Namespace) -> int:
    try:
        with _open_store(args.db) as store:
            events, distinct = store.count()
    except StoreError as exc:
        return _error("events count", str(exc))
    if args.json:
        print(json.dumps({"events": events, "distinct_ids": distinct}))
    else:
        print(f"{events} event(s), {distinct} distinct id(s) in {args.db}")
    return 0


def cmd_events_export(args: argparse.Namespace) -> int:
    try:
        with _open_store(args.db) as store:
            if args.output in (None, "-"):
                try:
                    n = store.export_jsonl(sys.stdout, since_stream_seq=args.since)
                    sys.stdout.flush()
                except BrokenPipeError:
                    return _stdout_closed()
            else:
                tmp = f"{args.output}.tmp{os.getpid()}"
                try:
                    with open(tmp, "w", encoding="utf-8") as fh:
                        n = store.export_jsonl(fh, since_stream_seq=args.since)
                    os.replace(tmp, args.output)  # never a half-written export under the real name
                except OSError as exc:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                    return _error("events export", f"cannot write {args.output}: {exc}")
    except StoreError as exc:
        return _error("events export", str(exc))
    print(f"vigil events export: {n} event(s)", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------- registration
def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``aggregator``, ``tail`` and ``events`` on the ``vigil`` subparsers."""
    p = subparsers.add_parser(
        "aggregator", help="receive, store and re-publish alarm events",
        description="Receive events from edge workers (ROUTER, acknowledged), store them in "
                    "SQLite and re-publish new ones on the stream (PUB). Stops on Ctrl-C/SIGTERM.",
    )
    p.add_argument("--db", required=True, help="SQLite event database (created if missing)")
    p.add_argument("--ingest", default=DEFAULT_INGEST_ENDPOINT,
                   help=f"endpoint edge workers connect to (default {DEFAULT_INGEST_ENDPOINT})")
    p.add_argument("--stream", default=DEFAULT_STREAM_ENDPOINT,
                   help=f"endpoint operator clients subscribe to (default {DEFAULT_STREAM_ENDPOINT})")
    p.add_argument("--insecure-dev", action="store_true",
                   help="run without CURVE keys (this build has no CURVE: always so, and therefore "
                        "only on loopback or ipc:// endpoints)")
    p.set_defaults(func=cmd_aggregator)

    p = subparsers.add_parser("tail", help="follow the live event stream",
                              description="Print one line per event from the aggregator's stream.")
    p.add_argument("--connect", default=DEFAULT_STREAM_ENDPOINT,
                   help=f"aggregator stream endpoint (default {DEFAULT_STREAM_ENDPOINT})")
    p.add_argument("--json", action="store_true", help="print each event's JSON instead of a summary line")
    p.add_argument("--camera", help="only this camera's events")
    p.add_argument("--topic", default="", help="raw topic prefix filter (camera/type/severity)")
    p.add_argument("--max-events", type=_positive_int, help="stop after N events")
    p.add_argument("--timeout", type=_positive_float,
                   help="stop after S seconds (exit 1 if --max-events was not reached)")
    p.set_defaults(func=cmd_tail)

    p = subparsers.add_parser("events", help="inspect the event database")
    ev = p.add_subparsers(dest="events_command", metavar="{count,export}")
    ev.required = True
    c = ev.add_parser("count", help="number of stored events")
    c.add_argument("--db", required=True, help="SQLite event database")
    c.add_argument("--json", action="store_true", help='print {"events": N, "distinct_ids": M}')
    c.set_defaults(func=cmd_events_count)
    x = ev.add_parser("export", help="write stored events, one JSON object per line")
    x.add_argument("--db", required=True, help="SQLite event database")
    x.add_argument("--format", choices=["jsonl"], default="jsonl", help="output format (jsonl)")
    x.add_argument("--output", "-o", help="output file (default: standard output)")
    x.add_argument("--since", type=int, default=0, metavar="STREAM_SEQ",
                   help="only events stored after this stream sequence number")
    x.set_defaults(func=cmd_events_export)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil", description="Vigil alarm path commands")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
