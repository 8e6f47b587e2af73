"""Console entry point: ``vigil``.

The parser is built from an explicit table of command groups (:data:`COMMAND_GROUPS`, in
``--help`` order): each names the module whose ``add_commands(subparsers)`` hook adds its
commands, and the top-level commands it adds. A command line that names a command imports
that one group only; ``vigil --help``, no command or an unknown one import them all, so help
and errors read exactly as one full parser would give them. Importing every group costs
about 2 s on a 2-core node (onnx, onnxruntime, OpenCV, supervision, scipy, psycopg) and
``vigil tail`` or ``vigil keys`` need none of that: the same reason pip gives for its lazily
imported command table. ``tests/test_cli.py`` checks that the table matches what the hooks add.

Bad input (:data:`vigil.errors.USER_ERRORS`) is reported in one line with exit code 2;
Ctrl-C exits with 130. Logging is set up here, once per process, from ``-v`` and ``--log-json``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from vigil.edge.logs import configure_logging
from vigil.errors import EXIT_BAD_INPUT, USER_ERRORS

__all__ = ["CommandGroup", "COMMAND_GROUPS", "build_parser", "main"]

EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class CommandGroup:
    """A module with an ``add_commands(subparsers)`` hook and the top-level commands it adds."""

    module: str
    commands: tuple[str, ...]


#: every command group, in the order ``vigil --help`` lists them
COMMAND_GROUPS = (
    CommandGroup("vigil.edge.cli", ("run", "status", "check-config", "config")),
    CommandGroup("vigil.alerts.cli", ("aggregator", "tail", "events", "keys")),
    CommandGroup("vigil.alerts.console.cli", ("console",)),
    CommandGroup("vigil.models.cli", ("models",)),
    CommandGroup("vigil.bench.cli", ("eval", "bench")),
    CommandGroup("vigil.calibration.cli", ("calibrate",)),
    CommandGroup("vigil.plates.cli", ("plates", "transits", "watchlist")),
)


def _command_of(argv: Sequence[str]) -> str | None:
    """The command an argument list names: its first word that is not a top-level option."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
        if arg in ("-h", "--help"):
            return None
    return None


def build_parser(groups: Sequence[CommandGroup] = COMMAND_GROUPS) -> argparse.ArgumentParser:
    """The ``vigil`` parser with the commands of ``groups`` (each group's module imported)."""
    parser = argparse.ArgumentParser(prog="vigil", description="Vigil: edge-AI video service for city safety")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log-json", action="store_true", help="structured JSON logs on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in groups:
        importlib.import_module(group.module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    groups = [g for g in COMMAND_GROUPS if command in g.commands] or COMMAND_GROUPS
    args = build_parser(groups).parse_args(argv)
    configure_logging(logging.DEBUG if args.verbose else logging.INFO, as_json=args.log_json)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("vigil: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
