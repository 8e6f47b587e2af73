"""``vigil console``: serve the operator console; ``vigil console user add``: manage accounts.

    vigil console --db events.db --stream tcp://127.0.0.1:5556 --keys DIR --name console
    vigil console --db events.db --stream ipc:///run/vigil/stream --insecure-dev
    vigil console --db events.db ... --host 127.0.0.1 --trusted-proxy 127.0.0.1   (nginx on this host)
    echo 'secret-pass' | vigil console user add alice --role supervisor --db events.db

Exit codes as the other alarm commands: 0, 1 runtime failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

from ..keys import KeyFileError, client_configurator
from ..transport import INSECURE_BIND_MESSAGE, is_local_endpoint
from .app import serve
from .db import ConsoleDB, ConsoleError
from .security import parse_proxies

__all__ = ["add_commands"]


def _error(message: str, code: int = 1) -> int:
    print(f"vigil console: error: {message}", file=sys.stderr)
    return code


def cmd_console(args: argparse.Namespace) -> int:
    if not args.db:
        return _error("give --db PATH (the aggregator's SQLite database)", 2)
    configure = None
    if args.stream:
        if bool(args.keys) != bool(args.name):
            return _error("--keys DIR and --name NAME go together", 2)
        if args.keys and args.insecure_dev:
            return _error("give --keys DIR --name NAME or --insecure-dev, not both", 2)
        if args.keys:
            try:
                configure = client_configurator(args.keys, args.name)
            except KeyFileError as exc:
                return _error(str(exc), 2)
        elif not args.insecure_dev:
            return _error(
                "no CURVE keys for the stream: give --keys DIR --name NAME, or --insecure-dev "
                "for a loopback/ipc stream without transport security",
                2,
            )
        elif not is_local_endpoint(args.stream):
            return _error(INSECURE_BIND_MESSAGE.format(endpoint=args.stream) + " (--insecure-dev never lifts this)", 2)
    proxies = list(args.trusted_proxy or []) + ([args.forwarded_allow_ips] if args.forwarded_allow_ips else [])
    try:
        parse_proxies(proxies)
    except ValueError as exc:
        return _error(f"--trusted-proxy: {exc}", 2)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        db = ConsoleDB(args.db, args.state_db)
    except ConsoleError as exc:
        return _error(str(exc))
    if args.host not in ("127.0.0.1", "::1", "localhost") and not args.secure_cookies:
        logging.getLogger("vigil.alerts.console").warning(
            "console listening on %s: put it behind an HTTPS reverse proxy (and consider --secure-cookies)", args.host
        )
    try:
        return serve(
            db,
            host=args.host,
            port=args.port,
            trusted_proxies=proxies,
            stream_endpoint=args.stream,
            configure_socket=configure,
            transits_db=args.transits_db,
            evidence_dir=args.evidence_dir,
            secure_cookies=args.secure_cookies,
        )
    finally:
        db.close()


def cmd_user_add(args: argparse.Namespace) -> int:
    db_path = args.user_db or args.db
    if not db_path:
        return _error("give --db PATH", 2)
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            return _error("the passwords differ", 2)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        db = ConsoleDB(db_path, args.user_state_db or args.state_db)
    except ConsoleError as exc:
        return _error(str(exc))
    try:
        db.add_user(args.name, args.role, password, replace=args.replace)
    except ValueError as exc:
        return _error(str(exc), 2)
    finally:
        db.close()
    print(f"user {args.name} ({args.role}) saved")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "console",
        help="the operator web console (live alarms, acknowledgements, transit search)",
        description="Serve the operator console: reads the aggregator's SQLite database and follows its "
        "operator stream. Put it behind an HTTPS reverse proxy for anything but localhost.",
    )
    p.add_argument("--db", help="the aggregator's SQLite event database")
    p.add_argument(
        "--state-db", help="keep the console's accounts, sessions and audit log in this file (default: tables in --db)"
    )
    p.add_argument("--stream", help="aggregator stream endpoint to follow (default: poll --db every 250 ms)")
    p.add_argument("--keys", help="CURVE keys folder for the stream (DIR/NAME.key_secret, DIR/aggregator.key)")
    p.add_argument("--name", help="this client's key name in --keys (authorised as an operator key)")
    p.add_argument("--insecure-dev", action="store_true", help="follow a loopback/ipc stream without CURVE")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="listen port (default 8080)")
    p.add_argument(
        "--trusted-proxy",
        action="append",
        metavar="ADDR",
        help="a reverse proxy (address or network, e.g. 127.0.0.1 or 10.0.0.0/24) whose X-Forwarded-For/-Proto "
        "and Forwarded headers are believed; repeatable (default: none, the socket's peer is the client)",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        metavar="ADDRS",
        help="the same as --trusted-proxy, comma-separated (older name; no longer defaults to 127.0.0.1)",
    )
    p.add_argument("--secure-cookies", action="store_true", help="always mark cookies Secure (HTTPS proxy in front)")
    p.add_argument("--transits-db", help="database of plate transits (default: --db)")
    p.add_argument("--evidence-dir", help="folder of evidence crops, named <evidence id>.jpg|.png")
    p.set_defaults(func=cmd_console)
    sub = p.add_subparsers(dest="console_command", metavar="{user}")
    u = sub.add_parser("user", help="manage console accounts")
    us = u.add_subparsers(dest="user_command", metavar="{add}")
    us.required = True
    a = us.add_parser("add", help="add an account (password from standard input, or prompted)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=["operator", "supervisor", "admin"])
    a.add_argument("--db", dest="user_db", help="the aggregator's SQLite event database")
    a.add_argument("--state-db", dest="user_state_db", help="the console's state database, if separate")
    a.add_argument(
        "--replace", action="store_true", help="reset an existing account's password and role (ends its sessions)"
    )
    a.set_defaults(func=cmd_user_add)
