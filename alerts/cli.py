"""``vigil`` subcommands of the alarm path: ``aggregator``, ``tail``, ``events count|export|conflicts|purge``,
``keys new|authorize|revoke|list``. They only parse arguments and call :class:`~vigil.alerts.aggregator.Aggregator`,
:func:`~vigil.alerts.tail.tail`, the event stores (:func:`~vigil.alerts.store.open_store`) and
:mod:`vigil.alerts.keys`.

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
from pathlib import Path
from typing import Callable

import zmq

from vigil.fileio import atomic_write
from vigil.postgres import DsnError, add_db_options, db_target

from .aggregator import Aggregator, AggregatorError
from .aggregator.forward_config import ForwardConfigError, load_forward_config
from .aggregator.retention import CLASSES, Retention, RetentionPolicy
from .keys import (
    ROLE_FOLDERS,
    ROLES,
    CurveServer,
    KeyFileError,
    authorize_key,
    client_configurator,
    list_authorized,
    new_key_pair,
    revoke_key,
)
from .store import EventStore, PgEventStore, StoreError, open_store
from .tail import printable, tail
from .transport import (
    DEFAULT_INGEST_ENDPOINT,
    DEFAULT_STREAM_ENDPOINT,
    INSECURE_BIND_MESSAGE,
    StreamFilter,
    is_local_endpoint,
)

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
def _open_events(args: argparse.Namespace, *, readonly: bool):
    """The event store the options name (``open_store``); raises ``DsnError`` or ``StoreError``."""
    db, dsn = db_target(args)
    return open_store(db=db, dsn=dsn, readonly=readonly)


def cmd_aggregator(args: argparse.Namespace) -> int:
    try:
        db, dsn = db_target(args)
    except DsnError as exc:
        return _error("aggregator", str(exc), 2)
    if args.keys and args.insecure_dev:
        return _error("aggregator", "give --keys DIR or --insecure-dev, not both", 2)
    if not args.keys:
        if not args.insecure_dev:
            return _error(
                "aggregator",
                "no CURVE keys: give --keys DIR (see `vigil keys new`), or "
                "--insecure-dev to run without transport security on loopback only",
                2,
            )
        for endpoint in (args.ingest, args.stream):
            if not is_local_endpoint(endpoint):
                return _error(
                    "aggregator",
                    INSECURE_BIND_MESSAGE.format(endpoint=endpoint) + " (--insecure-dev never lifts this)",
                    2,
                )
    _ensure_logging()
    try:
        keys = CurveServer(args.keys) if args.keys else None
    except KeyFileError as exc:
        return _error("aggregator", str(exc), 2)
    try:
        policy = _retention_policy(args)
    except ValueError as exc:
        return _error("aggregator", str(exc), 2)
    try:
        forward = load_forward_config(args.forward) if args.forward else None
    except ForwardConfigError as exc:
        return _error("aggregator", str(exc), 2)
    try:
        store = open_store(db=db, dsn=dsn)
    except StoreError as exc:
        return _error("aggregator", str(exc))
    retention = Retention(store, policy, console_purge=_console_purge_hook(db, dsn))
    try:
        agg = Aggregator(
            store,
            args.ingest,
            args.stream,
            keys=keys,
            stream_hwm=args.stream_hwm,
            status_file=args.status_file,
            status_extra=lambda: {"retention": retention.last_report},
            forward=forward,
        )
    except AggregatorError as exc:
        store.close()
        return _error("aggregator", str(exc))
    try:
        log.info(
            "aggregator serving%s; stop with Ctrl-C or SIGTERM",
            " with CURVE" if keys else " WITHOUT transport security (--insecure-dev)",
        )
        with retention.in_background():
            agg.serve_forever()
    finally:
        agg.close()
        store.close()
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    args.connect = args.connect or [DEFAULT_STREAM_ENDPOINT]
    if bool(args.keys) != bool(args.name):
        return _error("tail", "--keys DIR and --name NAME go together", 2)
    configure = None
    if args.keys:
        try:
            configure = client_configurator(args.keys, args.name)
        except KeyFileError as exc:
            return _error("tail", str(exc), 2)
    filters = []
    if args.camera or args.type or args.severity:
        filters = [StreamFilter.of(camera=args.camera, type=args.type, severity=args.severity)]
    state: dict = {}
    try:
        n = tail(
            args.connect,
            filters=filters,
            since=args.since,
            as_json=args.json,
            out=sys.stdout,
            max_events=args.max_events,
            timeout_s=args.timeout,
            configure_socket=configure,
            state=state,
        )
    except KeyboardInterrupt:
        n = None
    except BrokenPipeError:
        return _stdout_closed()
    except zmq.ZMQError as exc:
        return _error("tail", f"cannot follow {', '.join(args.connect)}: {exc}")
    if state.get("last_stream_seq") is not None:
        print(
            f"vigil tail: last stream_seq {state['last_stream_seq']} (resume with --since {state['last_stream_seq']})",
            file=sys.stderr,
        )
    if n is None:
        return 0
    if args.max_events is not None and n < args.max_events:
        print(f"vigil tail: {n} of {args.max_events} event(s) before the {args.timeout} s timeout", file=sys.stderr)
        return 1
    return 0


def cmd_keys_new(args: argparse.Namespace) -> int:
    roles = tuple(dict.fromkeys(args.authorize or ()))
    try:
        public, secret = new_key_pair(args.name, args.dir, authorize=roles, force=args.force)
    except KeyFileError as exc:
        return _error("keys new", str(exc), 2)
    except OSError as exc:
        return _error("keys new", f"cannot write to {args.dir}: {exc}")
    print(f"public key {public}\nsecret key {secret} (keep it on this host only)")
    for role in roles:
        print(f"authorized as {role}: {Path(args.dir) / 'authorized' / ROLE_FOLDERS[role] / public.name}")
    return 0


def cmd_keys_authorize(args: argparse.Namespace) -> int:
    try:
        path = authorize_key(args.public_key, args.dir, args.role, name=args.name, force=args.force)
    except KeyFileError as exc:
        return _error("keys authorize", str(exc), 2)
    except OSError as exc:
        return _error("keys authorize", f"cannot write to {args.dir}: {exc}")
    print(f"authorized as {args.role}: {path} (a running aggregator accepts it within a second)")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    try:
        removed = revoke_key(args.name, args.dir, args.role)
    except KeyFileError as exc:
        return _error("keys revoke", str(exc), 2)
    for path in removed:
        print(f"removed {path}")
    print("a running aggregator refuses the key and drops its connections within a few seconds")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    try:
        keys = list_authorized(args.dir)
    except KeyFileError as exc:
        return _error("keys list", str(exc), 2)
    if args.json:
        fields = ("role", "name", "key", "problem", "legacy")
        print(json.dumps([{**{f: getattr(k, f) for f in fields}, "path": str(k.path)} for k in keys]))
        return 0
    for k in keys:
        note = f"IGNORED: {k.problem}" if k.problem else k.key
        legacy = " (flat authorized/: move it, see `vigil keys authorize`)" if k.legacy else ""
        print(f"{k.role:8} {k.name:24} {note}{legacy}")
    if not keys:
        print(f"no authorized keys in {Path(args.dir) / 'authorized'}", file=sys.stderr)
    return 0


def cmd_events_count(args: argparse.Namespace) -> int:
    try:
        with _open_events(args, readonly=True) as store:
            events, distinct = store.count()
    except DsnError as exc:
        return _error("events count", str(exc), 2)
    except StoreError as exc:
        return _error("events count", str(exc))
    if args.json:
        print(json.dumps({"events": events, "distinct_ids": distinct}))
    else:
        print(f"{events} event(s), {distinct} distinct id(s) in {args.db or store.path}")
    return 0


def cmd_events_export(args: argparse.Namespace) -> int:
    try:
        with _open_events(args, readonly=True) as store:
            if args.output in (None, "-"):
                try:
                    n = store.export_jsonl(sys.stdout, since_stream_seq=args.since)
                    sys.stdout.flush()
                except BrokenPipeError:
                    return _stdout_closed()
            else:
                written: list[int] = []

                def write(tmp: Path) -> None:
                    with open(tmp, "w", encoding="utf-8") as fh:
                        written.append(store.export_jsonl(fh, since_stream_seq=args.since))

                try:  # never a half-written export under the real name
                    atomic_write(args.output, write, durable=True, allow_empty=True)
                except OSError as exc:
                    return _error("events export", f"cannot write {args.output}: {exc}")
                n = written[0]
    except DsnError as exc:
        return _error("events export", str(exc), 2)
    except StoreError as exc:
        return _error("events export", str(exc))
    print(f"vigil events export: {n} event(s)", file=sys.stderr)
    return 0


def cmd_events_conflicts(args: argparse.Namespace) -> int:
    """Events resent with an id already stored but other content: the copies kept aside."""
    try:
        with _open_events(args, readonly=True) as store:
            rows = store.conflicts(args.limit)
    except DsnError as exc:
        return _error("events conflicts", str(exc), 2)
    except StoreError as exc:
        return _error("events conflicts", str(exc))
    for event_id, received_at, text in rows:
        if args.json:
            print(json.dumps({"id": event_id, "received_at": received_at, "event": text}))
        else:
            print(printable(f"{received_at}  {event_id}  {text}"))
    if not rows and not args.json:
        print("no conflicting resends kept aside", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------- retention
def _add_retention_options(p: argparse.ArgumentParser, *, interval: bool = True) -> None:
    """The retention days per data class (docs/retention.md) and, for the aggregator, the interval."""
    d = RetentionPolicy()
    for name, default, what in (
        ("transit", d.transit_days, "plate transits of vehicles on no watch list (and their events)"),
        ("hit", d.hit_days, "plate transits that hit a watch list (and their events)"),
        ("events", d.events_days, "events other than plate events and heat maps"),
        ("heatmap", d.heatmap_days, "heat-map events"),
        ("audit", d.audit_days, "the console's audit log"),
        ("actions", d.actions_days, "the console's alarm actions"),
    ):
        p.add_argument(
            f"--retention-{name}-days",
            type=_finite_positive,
            default=default,
            metavar="DAYS",
            help=f"keep {what} this many days (default {default:g})",
        )
    if interval:
        p.add_argument(
            "--retention-interval-s",
            type=_finite_positive,
            default=d.interval_s,
            metavar="S",
            help=f"run the retention job every S seconds, the first at start-up (default {d.interval_s:g})",
        )


def _finite_positive(text: str) -> float:
    value = _positive_float(text)
    if value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def _retention_policy(args: argparse.Namespace) -> RetentionPolicy:
    return RetentionPolicy(
        transit_days=args.retention_transit_days,
        hit_days=args.retention_hit_days,
        events_days=args.retention_events_days,
        heatmap_days=args.retention_heatmap_days,
        audit_days=args.retention_audit_days,
        actions_days=args.retention_actions_days,
        interval_s=getattr(args, "retention_interval_s", RetentionPolicy().interval_s),
    )


def _console_purge_hook(db: str | None, dsn: str | None) -> Callable[..., dict | None]:
    """The retention job's hook for the console tables of the event database (``None`` from the
    hook: no console tables there, or a console without ``purge``)."""

    def purge(*, now: float, audit_days: float, actions_days: float) -> dict | None:
        # imported when the job runs: the console package pulls its web stack (starlette, jinja2)
        from .console import db as console_db  # noqa: PLC0415 - optional heavy web stack, retention only

        exists = getattr(console_db, "console_tables_exist", None)
        opener = getattr(console_db, "open_console_db", None)
        if exists is None or opener is None or not exists(db=db, dsn=dsn):
            return None
        cdb = opener(db=db, dsn=dsn)
        try:
            return cdb.purge(now=now, audit_days=audit_days, actions_days=actions_days)
        finally:
            cdb.close()

    return purge


def cmd_events_purge(args: argparse.Namespace) -> int:
    """One retention pass now (the aggregator's job), its report printed."""
    try:
        db, dsn = db_target(args)
    except DsnError as exc:
        return _error("events purge", str(exc), 2)
    if db and not Path(db).is_file():
        return _error("events purge", f"no event database at {db}")
    try:
        store = PgEventStore(dsn, readonly=args.dry_run) if dsn else EventStore(db, readonly=args.dry_run)
    except StoreError as exc:
        return _error("events purge", str(exc))
    _ensure_logging()
    try:
        with store:
            job = Retention(store, _retention_policy(args), console_purge=_console_purge_hook(db, dsn))
            try:
                report = job.run_once(dry_run=args.dry_run)
            finally:
                job.close()
    except StoreError as exc:
        return _error("events purge", str(exc))
    if args.json:
        print(json.dumps(report))
    else:
        for cls in CLASSES:
            r = report[cls]
            n = r.get("error") or r.get("skipped") or r.get("would_delete", r["deleted"])
            verb = "would delete" if args.dry_run and "would_delete" in r else "deleted"
            print(f"{cls:16} older than {r['cutoff']}: {verb} {n}" if isinstance(n, int) else f"{cls:16} {n}")
    return 1 if any("error" in r for r in report.values()) else 0


# ---------------------------------------------------------------------- registration
def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``aggregator``, ``tail``, ``events`` and ``keys`` on the ``vigil`` subparsers."""
    p = subparsers.add_parser(
        "aggregator",
        help="receive, store and re-publish alarm events",
        description="Receive events from edge workers (ROUTER, acknowledged after commit), store "
        "them once each (SQLite or PostgreSQL) and stream them to operator clients "
        "(replay from a sequence number, then live). Stops on Ctrl-C/SIGTERM.",
    )
    add_db_options(p, "the event database (created or migrated; SQLite: one aggregator per file, PostgreSQL: several)")
    p.add_argument(
        "--status-file",
        help="rewrite this JSON file every few seconds with the aggregator's counters and store state "
        "(`vigil status --aggregator FILE` checks it: container and systemd health checks)",
    )
    p.add_argument(
        "--keys",
        help="CURVE keys folder: DIR/aggregator.key_secret; allow-lists DIR/authorized/edge/*.key (may publish) "
        "and DIR/authorized/operators/*.key (may read the stream), re-read every second",
    )
    p.add_argument(
        "--ingest",
        default=DEFAULT_INGEST_ENDPOINT,
        help=f"endpoint edge workers connect to (default {DEFAULT_INGEST_ENDPOINT})",
    )
    p.add_argument(
        "--stream",
        default=DEFAULT_STREAM_ENDPOINT,
        help=f"endpoint operator clients subscribe to (default {DEFAULT_STREAM_ENDPOINT})",
    )
    p.add_argument(
        "--stream-hwm",
        type=_positive_int,
        default=10_000,
        help="messages queued per operator client before it is switched to catching up from the store (default 10000)",
    )
    p.add_argument(
        "--insecure-dev",
        action="store_true",
        help="run without CURVE keys (no transport security): loopback or ipc:// endpoints only",
    )
    p.add_argument(
        "--forward",
        metavar="FILE",
        help="forward stored alarms to the webhooks and MQTT brokers of this YAML/JSON file "
        "(at least once, signed; docs/forwarding.md)",
    )
    _add_retention_options(p)
    p.set_defaults(func=cmd_aggregator)

    p = subparsers.add_parser(
        "tail",
        help="follow the live event stream",
        description="Print one line per event from the aggregator's stream.",
    )
    p.add_argument(
        "--connect",
        action="append",
        help=f"aggregator stream endpoint (default {DEFAULT_STREAM_ENDPOINT}); repeat for several aggregators "
        "on one PostgreSQL database: the first that answers is followed, the next on silence",
    )
    p.add_argument("--json", action="store_true", help="print each event's JSON instead of a summary line")
    p.add_argument("--camera", action="append", help="only this camera's events (repeatable)")
    p.add_argument("--type", action="append", help="only events of this type (repeatable)")
    p.add_argument(
        "--severity",
        action="append",
        choices=["info", "warning", "critical"],
        help="only events of this severity (repeatable)",
    )
    p.add_argument(
        "--since",
        type=int,
        metavar="SEQ",
        help="first replay the stored events after stream sequence number SEQ (0: all)",
    )
    p.add_argument("--keys", help="CURVE keys folder (DIR/NAME.key_secret, DIR/aggregator.key)")
    p.add_argument("--name", help="this client's key name in --keys")
    p.add_argument("--max-events", type=_positive_int, help="stop after N events")
    p.add_argument(
        "--timeout", type=_positive_float, help="stop after S seconds (exit 1 if --max-events was not reached)"
    )
    p.set_defaults(func=cmd_tail)

    p = subparsers.add_parser("events", help="inspect the event database")
    ev = p.add_subparsers(dest="events_command", metavar="{count,export,conflicts,purge}")
    ev.required = True
    c = ev.add_parser("count", help="number of stored events")
    add_db_options(c)
    c.add_argument("--json", action="store_true", help='print {"events": N, "distinct_ids": M}')
    c.set_defaults(func=cmd_events_count)
    x = ev.add_parser("export", help="write stored events, one JSON object per line")
    add_db_options(x)
    x.add_argument("--format", choices=["jsonl"], default="jsonl", help="output format (jsonl)")
    x.add_argument("--output", "-o", help="output file (default: standard output)")
    x.add_argument(
        "--since",
        type=int,
        default=0,
        metavar="STREAM_SEQ",
        help="only events stored after this stream sequence number",
    )
    x.set_defaults(func=cmd_events_export)
    k = ev.add_parser(
        "conflicts",
        help="copies of events resent with a stored id but other content (kept aside, newest first)",
    )
    add_db_options(k)
    k.add_argument("--limit", type=_positive_int, default=100, help="at most N (default 100)")
    k.add_argument("--json", action="store_true", help='one {"id", "received_at", "event"} object per line')
    k.set_defaults(func=cmd_events_conflicts)
    k = ev.add_parser(
        "purge",
        help="run the retention job once: delete what is older than each class's retention (docs/retention.md)",
    )
    add_db_options(k)
    _add_retention_options(k, interval=False)
    k.add_argument("--dry-run", action="store_true", help="delete nothing; count what would be deleted")
    k.add_argument("--json", action="store_true", help="print the report as one JSON object")
    k.set_defaults(func=cmd_events_purge)

    p = subparsers.add_parser("keys", help="CURVE key pairs for the aggregator, edge nodes and operators")
    ks = p.add_subparsers(dest="keys_command", metavar="{new,authorize,revoke,list}")
    ks.required = True
    roles_help = "edge (may publish events) or operator (may read the stream)"
    k = ks.add_parser(
        "new",
        help="write DIR/NAME.key and DIR/NAME.key_secret (pyzmq certificate format)",
        description="Create a CURVE key pair. The aggregator's is named 'aggregator'. On the "
        "aggregator, each client's public NAME.key goes into DIR/authorized/edge/ (edge nodes: may "
        "publish) or DIR/authorized/operators/ (operators: may read the stream): `vigil keys authorize`.",
    )
    k.add_argument("name", help="key name (aggregator, an edge node, an operator)")
    k.add_argument("--dir", required=True, help="keys folder (created if missing)")
    k.add_argument(
        "--authorize",
        nargs="?",
        const="edge",
        action="append",
        choices=ROLES,
        metavar="ROLE",
        help=f"also authorize the public key in DIR/authorized/ for ROLE: {roles_help}; "
        "without ROLE: edge; repeat for both",
    )
    k.add_argument("--force", action="store_true", help="overwrite an existing key pair")
    k.set_defaults(func=cmd_keys_new)
    k = ks.add_parser(
        "authorize",
        help="add a public key to the aggregator's allow-list of a role",
        description="Copy a client's public key file (NAME.key) into DIR/authorized/edge/ or "
        "DIR/authorized/operators/. A running aggregator accepts it within a second.",
    )
    k.add_argument("public_key", help="the client's public key file (NAME.key)")
    k.add_argument("--dir", required=True, help="the aggregator's keys folder")
    k.add_argument("--role", required=True, choices=ROLES, help=roles_help)
    k.add_argument("--name", help="name in the allow-list (default: the file's name without .key)")
    k.add_argument("--force", action="store_true", help="replace another key of that name (revoking it)")
    k.set_defaults(func=cmd_keys_authorize)
    k = ks.add_parser(
        "revoke",
        help="remove a key from the aggregator's allow-lists",
        description="Remove DIR/authorized/{edge,operators}/NAME.key (and a NAME.key directly in "
        "DIR/authorized/, the layout before roles). A running aggregator refuses the key from then "
        "on and drops its live connections within a few seconds.",
    )
    k.add_argument("name", help="the key's name in the allow-lists")
    k.add_argument("--dir", required=True, help="the aggregator's keys folder")
    k.add_argument("--role", action="append", choices=ROLES, help="only this role's allow-list (default: every role)")
    k.set_defaults(func=cmd_keys_revoke)
    k = ks.add_parser(
        "list",
        help="the aggregator's allow-lists as it reads them",
        description="One line per allow-list file: role, name, key, or why it is ignored.",
    )
    k.add_argument("--dir", required=True, help="the aggregator's keys folder")
    k.add_argument("--json", action="store_true", help="print a JSON list")
    k.set_defaults(func=cmd_keys_list)


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
