"""``vigil console``: serve the operator console; ``vigil console user add``: manage accounts.

    vigil console --db events.db --stream tcp://127.0.0.1:5556 --keys DIR --name console
    vigil console --dsn 'host=db dbname=vigil user=console' --stream tcp://agg-a:5556 --stream tcp://agg-b:5556 ...
    vigil console --dsn-file /run/secrets/vigil-dsn ...   (PostgreSQL, password in a mode-0600 file)
    vigil console --db events.db --stream ipc:///run/vigil/stream --insecure-dev
    vigil console --db events.db ... --host 127.0.0.1 --trusted-proxy 127.0.0.1   (nginx on this host)
    echo 'secret-pass' | vigil console user add alice --role supervisor --db events.db
    echo 'secret-pass' | vigil console user add alice --role supervisor --dsn 'host=db dbname=vigil'

The database is the aggregator's: a SQLite file (``--db``) or PostgreSQL (``--dsn``,
``--dsn-file``, or ``VIGIL_DSN_FILE`` / ``VIGIL_DSN``: :func:`vigil.postgres.db_target`; a
``--dsn`` holding a password is refused).

Exit codes as the other alarm commands: 0, 1 runtime failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

from vigil.postgres import DsnError, add_db_options, db_target

from ..keys import KeyFileError, client_configurator
from ..transport import INSECURE_BIND_MESSAGE, is_local_endpoint
from .app import serve
from .db import ConsoleDB, ConsoleError
from .security import parse_proxies
from .sitemap import SitesError, load_sites

__all__ = ["add_commands"]


def _error(message: str, code: int = 1) -> int:
    print(f"vigil console: error: {message}", file=sys.stderr)
    return code


def _target(args: argparse.Namespace, state_db: str | None) -> tuple[str | None, str | None] | int:
    """``(sqlite_path, dsn)`` from the database options, or the exit code of a usage error
    (printed): a DSN refused by :func:`vigil.postgres.db_target`, ``--state-db`` with a DSN."""
    try:
        path, dsn = db_target(args)
    except DsnError as exc:
        return _error(str(exc), 2)
    if dsn is not None and state_db:
        return _error("--state-db goes with --db (SQLite); in PostgreSQL the console tables are in --dsn's database", 2)
    return path, dsn


def _open_db(path: str | None, dsn: str | None, state_db: str | None) -> ConsoleDB | int:
    """The console database (SQLite ``path`` with ``state_db``, or PostgreSQL ``dsn``), or an
    exit code (the error printed)."""
    try:
        return ConsoleDB(path, state_db) if dsn is None else ConsoleDB(dsn=dsn)
    except ConsoleError as exc:
        return _error(str(exc))


def cmd_console(args: argparse.Namespace) -> int:
    configure = None
    target = _target(args, args.state_db)
    if isinstance(target, int):
        return target
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
        else:
            for endpoint in args.stream:
                if not is_local_endpoint(endpoint):
                    message = INSECURE_BIND_MESSAGE.format(endpoint=endpoint)
                    return _error(message + " (--insecure-dev never lifts this)", 2)
    proxies = list(args.trusted_proxy or []) + ([args.forwarded_allow_ips] if args.forwarded_allow_ips else [])
    try:
        parse_proxies(proxies)
    except ValueError as exc:
        return _error(f"--trusted-proxy: {exc}", 2)
    sites = None
    if args.sites:
        try:
            sites = load_sites(args.sites)
        except SitesError as exc:
            return _error(str(exc), 2)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db = _open_db(*target, args.state_db)
    if isinstance(db, int):
        return db
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
            stream_endpoint=list(args.stream) if args.stream else None,
            configure_socket=configure,
            transits_db=args.transits_db,
            evidence_dir=args.evidence_dir,
            secure_cookies=args.secure_cookies,
            sites=sites,
            tiles_dir=args.tiles_dir,
        )
    finally:
        db.close()


def cmd_user_add(args: argparse.Namespace) -> int:
    state_db = args.user_state_db or args.state_db
    target = _target(args, state_db)  # usage errors before the password prompt
    if isinstance(target, int):
        return target
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            return _error("the passwords differ", 2)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    db = _open_db(*target, state_db)
    if isinstance(db, int):
        return db
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
        description="Serve the operator console: reads the aggregator's event database (SQLite or "
        "PostgreSQL) and follows its operator stream. Put it behind an HTTPS reverse proxy for anything "
        "but localhost.",
    )
    add_db_options(p, "the aggregator's event database")
    p.add_argument(
        "--state-db", help="keep the console's accounts, sessions and audit log in this file (default: tables in --db)"
    )
    p.add_argument(
        "--stream",
        action="append",
        metavar="ENDPOINT",
        help="aggregator stream endpoint to follow; repeat it for the other aggregators of an active-active "
        "pair (failover, in order) (default: poll the database every 250 ms)",
    )
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
    p.add_argument("--transits-db", help="SQLite database of plate transits (default: the event database)")
    p.add_argument("--evidence-dir", help="folder of evidence crops, named <evidence id>.jpg|.png")
    p.add_argument("--sites", metavar="FILE", help="sites file: plan images and camera placements for /map")
    p.add_argument("--tiles-dir", metavar="DIR", help="folder of the edge nodes' live tiles (<camera>.jpg) for /tiles")
    p.set_defaults(func=cmd_console)
    sub = p.add_subparsers(dest="console_command", metavar="{user}")
    u = sub.add_parser("user", help="manage console accounts")
    us = u.add_subparsers(dest="user_command", metavar="{add}")
    us.required = True
    # the database options again after `user add`; absent unless given (default SUPPRESS), so
    # `vigil console --db X user add ...` keeps the X given before
    db_options = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    add_db_options(db_options, "the aggregator's event database")
    a = us.add_parser("add", parents=[db_options], help="add an account (password from standard input, or prompted)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=["operator", "supervisor", "admin"])
    a.add_argument("--state-db", dest="user_state_db", help="the console's state database, if separate")
    a.add_argument(
        "--replace", action="store_true", help="reset an existing account's password and role (ends its sessions)"
    )
    a.set_defaults(func=cmd_user_add)
