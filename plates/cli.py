"""The plate commands: ``vigil plates read``, ``vigil transits search|export|purge|keygen`` and
``vigil watchlist check``; :func:`add_commands` adds them to the main parser.

``vigil plates read IMAGE... [--json]``: read licence plates in still images. One line per
image; with ``--json`` one JSON object per line:
``{"file": ..., "plates": [{"text": ..., "confidence": ..., "box": [x1, y1, x2, y2]}]}``
(an unreadable image gets ``"error"`` and an empty ``plates``; the exit code is then 1).

``vigil transits search|export|purge`` work on the aggregator's transit table, in its SQLite
file (``--db``) or its PostgreSQL database (``--dsn``); see :mod:`vigil.plates.transits`.
``search`` needs the pseudonymisation key and refuses to run without a usable one (exit 2): a
missing key file is never created on the fly, so a mistyped ``--key-file`` is an error, not a
search under a new key that finds nothing. ``vigil transits keygen [--key-file F]`` is the one
way to make a key (:func:`~vigil.plates.pseudonym.create_key`: mode 0600; an existing file is
never replaced).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from vigil.postgres import DsnError, add_db_options, db_target

from .formats import region_code
from .fusion import CROSS_CHECK_DEFAULT, CROSS_CHECK_MODES
from .grammar import clean
from .line_model import train_and_export
from .ocr import OcrUnavailable
from .pseudonym import PlateKeyError, create_key
from .reader import ImageError, PlateReader, load_image
from .transits import TransitError, TransitRecords, open_transit_store
from .watchlists import WatchLists

__all__ = ["add_commands", "main"]


# ---------------------------------------------------------------------------------- plates read
def cmd_read(args: argparse.Namespace) -> int:
    try:
        reader = PlateReader(
            region=args.region,
            det_max_side=args.det_size,
            threads=args.threads,
            max_plates=args.max_plates,
            use_haar=args.haar,
            cross_check=args.cross_check,
        )
    except OcrUnavailable as exc:
        print(f"vigil plates read: {exc}", file=sys.stderr)
        return 2
    status = 0
    for name in args.images:
        record: dict = {"file": name, "plates": []}
        try:
            img = load_image(name)
            readings = reader.read(img)
            record["plates"] = [r.to_dict() for r in readings]
            if args.details:
                for d, r in zip(record["plates"], readings):
                    d.update({"kind": r.kind, "country": r.country, "raw": r.raw})
        except ImageError as exc:
            record["error"] = str(exc)
            status = 1
        if args.json:
            print(json.dumps(record), flush=True)
        elif "error" in record:
            print(f"{name}: error: {record['error']}", flush=True)
        elif not record["plates"]:
            print(f"{name}: no plate", flush=True)
        else:
            print(f"{name}: " + ", ".join(f"{p['text']} ({p['confidence']:.2f})" for p in record["plates"]), flush=True)
    return status


# ---------------------------------------------------------------------------------- transits
def _open_store(args: argparse.Namespace, **options) -> TransitRecords:
    """The store ``--db``, ``--dsn`` or ``--dsn-file`` names (:func:`vigil.postgres.db_target`)."""
    db, dsn = db_target(args)
    return open_transit_store(sqlite_path=db, dsn=dsn, key_file=args.key_file, **options)


def _transit_command(name: str, run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run(args)`` with a transit or database problem reported in one line (exit 1; 2 for
    a missing or doubled --db/--dsn, as argparse gives for a missing required option)."""

    def command(args: argparse.Namespace) -> int:
        try:
            db_target(args)  # checked first: a missing, doubled or password-holding database option
        except DsnError as exc:
            print(f"vigil transits {name}: error: {exc}", file=sys.stderr)
            return 2
        try:
            return run(args)
        except PlateKeyError as exc:  # bad input: the key named, or the lack of one
            print(f"vigil transits {name}: error: {exc}", file=sys.stderr)
            return 2
        except TransitError as exc:
            print(f"vigil transits {name}: error: {exc}", file=sys.stderr)
            return 1

    return command


def _cmd_search(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        rows = store.search_plate(args.plate, args.since, args.until)
    if args.json:
        for r in rows:
            print(json.dumps(r))
    elif not rows:
        print(f"no transit of {clean(args.plate)}", file=sys.stderr)
    else:
        for r in rows:
            hits = ",".join(h.get("list", "") for h in r["hits"]) or "-"
            print(
                f"{r['time']}  {r['camera']}  {r['plate'] or clean(args.plate) + ' (pseudonymised)'}  "
                f"conf {r['confidence'] if r['confidence'] is not None else '-'}  dir {r['direction'] or '-'}  "
                f"{r['vehicle_class'] or '-'}  hits {hits}"
            )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as fh:
                n = store.export(fh, args.format, args.since, args.until, args.plate)
        else:
            n = store.export(sys.stdout, args.format, args.since, args.until, args.plate)
    print(f"{n} transit(s) exported", file=sys.stderr)
    return 0


def _cmd_purge(args: argparse.Namespace) -> int:
    with _open_store(args, retention_days=args.retention_days, hit_retention_days=args.hit_retention_days) as store:
        done = store.purge_all()
    print(f"{done.transits} transit(s) deleted, {done.events} event copies of plates deleted", file=sys.stderr)
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    try:
        path = create_key(args.key_file)
    except PlateKeyError as exc:
        print(f"vigil transits keygen: error: {exc}", file=sys.stderr)
        return 2
    print(f"plate pseudonymisation key written to {path} (mode 0600)", file=sys.stderr)
    print(
        "keep it outside the repository and back it up: without it no stored plate can be searched; "
        f"give it to the aggregator and the console with VIGIL_PLATE_KEY_FILE={path}",
        file=sys.stderr,
    )
    if os.environ.get("VIGIL_PLATE_KEY") and not args.key_file:
        print("note: VIGIL_PLATE_KEY is set here and takes precedence over this file", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------- watch lists
def _cmd_check_list(args: argparse.Namespace) -> int:
    lists = WatchLists(args.files)
    for e in lists.errors:
        print(e)
    print(f"{len(lists)} entries loaded, {len(lists.errors)} problem(s)")
    return 1 if lists.errors else 0


def cmd_train_lines(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("torch") is None:
        print("vigil plates train-lines: needs torch (pip install torch==2.13.0, the CPU build)", file=sys.stderr)
        return 2
    out = Path(args.out)
    if not out.parent.is_dir():
        print(f"vigil plates train-lines: {out.parent}: no such folder", file=sys.stderr)
        return 2
    if args.steps is not None and args.steps < 1:
        print(f"vigil plates train-lines: --steps must be at least 1, got {args.steps}", file=sys.stderr)
        return 2
    summary = train_and_export(out, args.lines, args.minutes, args.seed, args.processes, args.threads, args.steps)
    print(json.dumps(summary))
    return 0


# ---------------------------------------------------------------------------------- parsers
def _add_plates_command(sub) -> None:
    p = sub.add_parser("plates", help="licence plates: read plates in images")
    psub = p.add_subparsers(dest="plates_command", required=True, metavar="WHAT")
    r = psub.add_parser("read", help="read plates in image files")
    r.add_argument("images", nargs="+", metavar="IMAGE")
    r.add_argument("--json", action="store_true", help="one JSON object per line per image")
    r.add_argument(
        "--region",
        type=region_code,
        default="auto",
        help="the camera's country, whose plate formats are preferred (IT, SK, DE, BR, ...), or auto (default)",
    )
    r.add_argument("--max-plates", type=int, default=1, help="plates reported per image (default 1)")
    r.add_argument("--det-size", type=int, default=640, help="text detector input size, longest side (default 640)")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--haar", action="store_true", help="add Haar-cascade candidates (Debian opencv-data, if installed)")
    r.add_argument("--details", action="store_true", help="with --json: add kind, country and raw OCR text")
    r.add_argument(
        "--cross-check",
        choices=CROSS_CHECK_MODES,
        default=CROSS_CHECK_DEFAULT,
        help="Vigil's own line recogniser checks the readings PP-OCRv4 is not sure of (unsure), every "
        f"reading (always) or none (off); default {CROSS_CHECK_DEFAULT}, as the camera config's plates.cross_check",
    )
    r.set_defaults(func=cmd_read)
    t = psub.add_parser(
        "train-lines",
        help="train Vigil's plate line recogniser on synthetic plates and write it as ONNX (needs torch)",
    )
    t.add_argument("--out", required=True, help="the ONNX file to write (the shipped one: plates/plate_lines.onnx)")
    t.add_argument("--lines", type=int, default=150_000, help="training lines rendered (default 150000)")
    t.add_argument("--minutes", type=float, default=30.0, help="training time (default 30), unless --steps")
    t.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train this many batches of 64 after the 30 warm-up ones (the same run on any machine; "
        "--minutes is ignored)",
    )
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--processes", type=int, default=2, help="processes rendering the training lines")
    t.add_argument("--threads", type=int, default=2, help="torch threads")
    t.set_defaults(func=cmd_train_lines)


def _add_transit_commands(subparsers) -> None:
    """``vigil transits search|export|purge|keygen`` and ``vigil watchlist check``."""
    p = subparsers.add_parser("transits", help="plate transit records: search, export, retention, key")
    ts = p.add_subparsers(dest="transits_command", required=True, metavar="{search,export,purge,keygen}")
    key_help = (
        "pseudonymisation key file (default: $VIGIL_PLATE_KEY, else $VIGIL_PLATE_KEY_FILE, else "
        "$XDG_CONFIG_HOME/vigil/plate-hmac.key); it must exist: make one with `vigil transits keygen`"
    )

    def common(q):
        add_db_options(q, "the aggregator's database")
        q.add_argument("--key-file", help=key_help)

    s = ts.add_parser("search", help="transits of one plate (also pseudonymised ones)")
    common(s)
    s.add_argument("plate")
    s.add_argument("--since", help="ISO time")
    s.add_argument("--until", help="ISO time")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.set_defaults(func=_transit_command("search", _cmd_search))
    x = ts.add_parser("export", help="write transits as CSV or JSON")
    common(x)
    x.add_argument("--format", choices=["csv", "json"], default="csv")
    x.add_argument("--output", "-o", help="output file (default: standard output)")
    x.add_argument("--plate", help="only this plate")
    x.add_argument("--since", help="ISO time")
    x.add_argument("--until", help="ISO time")
    x.set_defaults(func=_transit_command("export", _cmd_export))
    g = ts.add_parser("purge", help="delete pseudonymised transits older than the retention, and their events' copies")
    common(g)
    g.add_argument(
        "--retention-days",
        type=float,
        default=15.0,
        help="no-hit transits kept this long (default 15, as SCNTT and the aggregator's retention)",
    )
    g.add_argument(
        "--hit-retention-days",
        type=float,
        default=15.0,
        help="list hits kept this long (default 15, as the aggregator's --retention-hit-days)",
    )
    g.set_defaults(func=_transit_command("purge", _cmd_purge))
    k = ts.add_parser("keygen", help="create a new pseudonymisation key file (mode 0600; never replaces one)")
    k.add_argument(
        "--key-file",
        help="where to write it (default: $VIGIL_PLATE_KEY_FILE, else $XDG_CONFIG_HOME/vigil/plate-hmac.key)",
    )
    k.set_defaults(func=_cmd_keygen)

    p = subparsers.add_parser("watchlist", help="plate watch lists (CSV: plate,list,note,valid_until)")
    ws = p.add_subparsers(dest="watchlist_command", required=True, metavar="{check}")
    c = ws.add_parser("check", help="load list files and report malformed rows with line numbers")
    c.add_argument("files", nargs="+")
    c.set_defaults(func=_cmd_check_list)


def add_commands(subparsers) -> None:
    """Add ``plates``, ``transits`` and ``watchlist`` to the main parser's subcommands."""
    _add_plates_command(subparsers)
    _add_transit_commands(subparsers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
