"""The edge node's commands: ``run``, ``status``, ``check-config`` and ``config``.

:func:`add_commands` registers them on the ``vigil`` parser (:mod:`vigil.cli`). ``run``
only turns its flags into :class:`~vigil.edge.node.RunOptions`, installs the SIGINT/SIGTERM
handlers (a stop finishes the current frame and flushes) and calls
:func:`vigil.edge.node.run_node`; the node is assembled there.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from vigil.alerts.aggregator.status import check_status
from vigil.edge.config import load_config
from vigil.edge.logs import tag_camera
from vigil.edge.node import OptionsError, RunOptions, run_node, select_cameras
from vigil.edge.status import describe_state, effective_state, read_statuses
from vigil.edge.validate import check_node, format_problems, raise_for_errors

log = logging.getLogger("vigil")

__all__ = ["EXIT_OK", "EXIT_ERROR", "add_commands", "options_from_args"]

EXIT_OK = 0
EXIT_ERROR = 2


# ------------------------------------------------------------------------------------ check-config
def cmd_check_config(args: argparse.Namespace) -> int:
    """Parse the config, then every check ``run`` makes at start (:func:`vigil.edge.validate.check_node`):
    all errors and warnings, each naming the camera, the field and the line; exit 2 on an error."""
    cfg = load_config(args.config)
    problems = check_node(cfg, args.config)
    if problems:
        print(format_problems(problems, args.config), file=sys.stderr)
    if any(p.level == "error" for p in problems):
        return EXIT_ERROR
    plural = "s" if len(cfg.cameras) != 1 else ""
    names = ", ".join(c.name for c in cfg.cameras)
    warned = sum(p.level == "warning" for p in problems)
    tail = f"; {warned} warning{'s' if warned != 1 else ''}" if warned else ""
    print(f"{args.config}: OK ({len(cfg.cameras)} camera{plural}: {names}; detector {cfg.detector.type}{tail})")
    return EXIT_OK


# ------------------------------------------------------------------------------------ run
def options_from_args(args: argparse.Namespace) -> RunOptions:
    """``vigil run``'s flags (and the global ``-v``, ``--log-json``) as :class:`RunOptions`."""
    return RunOptions(
        camera=args.camera,
        source=args.source,
        max_frames=args.max_frames,
        mot_out=Path(args.mot_out) if args.mot_out else None,
        mot_classes=tuple(args.mot_classes.split(",")) if args.mot_classes else None,
        events_out=Path(args.events_out) if args.events_out else None,
        publish=not args.no_publish,
        media=not args.no_media,
        progress=not args.quiet,
        log_level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        log_json=getattr(args, "log_json", False),
    )


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    options = options_from_args(args)
    cams = select_cameras(cfg, options)
    if len(cams) > 1 and options.single_camera_only:
        print("vigil run: --source, --mot-out and --events-out need one camera: add --camera NAME", file=sys.stderr)
        return EXIT_ERROR
    # the checks of check-config, before any camera starts: every error at once
    problems = check_node(cfg, args.config, cameras=[c.name for c in cams], source_override=options.source)
    raise_for_errors(problems, args.config)
    for p in problems:
        log.warning("config: %s", p)

    stopping = threading.Event()

    def _on_signal(signum, _frame):
        stopping.set()
        log.warning("signal %d: finishing the current frame and flushing", signum)

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    if len(cams) == 1:
        tag_camera(cams[0].name)  # this process serves one camera: its log records name it
    try:
        reports = run_node(cfg, options, stop=stopping)
    except OptionsError as exc:  # pragma: no cover - checked above with the flags' names
        print(f"vigil run: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for rep in reports:
        if args.json:
            print(json.dumps(rep.as_dict()))
        else:
            _print_report(rep.as_dict())
    return EXIT_OK if all(r.ok for r in reports) else EXIT_ERROR


def cmd_status(args: argparse.Namespace) -> int:
    if bool(args.config) == bool(args.aggregator):
        print("vigil status: error: give --config FILE (a node) or --aggregator STATUS_FILE", file=sys.stderr)
        return EXIT_ERROR
    if args.aggregator:
        ok, line, doc = check_status(args.aggregator, max_age_s=args.max_age_s)
        print(json.dumps({"ok": ok, "message": line, "status": doc}) if args.json else line)
        return EXIT_OK if ok else 1  # unhealthy (2 stays "bad input")
    cfg = load_config(args.config)
    statuses = {s.get("camera"): s for s in read_statuses(cfg.operations.status_dir)}
    now = time.time()
    rows = []
    for cam in cfg.cameras:
        st = statuses.get(cam.name)
        if st is None:
            rows.append({"camera": cam.name, "state": "disabled" if not cam.enabled else "not started"})
            continue
        rows.append({**st, "state": effective_state(st, now), "age_s": round(now - float(st.get("updated", now)), 1)})
    # --check: the node's health check (containers, systemd): every enabled camera's worker alive
    # and reporting (running, connecting to its source, or a replay that finished), none failed
    # or silent (stale), none not started
    unhealthy = [r["camera"] for r in rows if r["state"] not in ("running", "connecting", "finished", "disabled")]
    code = 1 if args.check and unhealthy else EXIT_OK
    if args.json:
        print(json.dumps({"node": cfg.node, "cameras": rows, "healthy": not unhealthy}))
        return code
    print(
        f"node {cfg.node}: {len(rows)} camera{'s' if len(rows) != 1 else ''} (status from {cfg.operations.status_dir})"
    )
    print(
        f"  {'camera':<20} {'state':<28} {'fps':>6} {'frames':>8} {'events':>7} {'outbox':>7} {'drops':>6} "
        f"{'reconn':>6} {'restarts':>8} {'updated':>9}"
    )
    for r in rows:
        if "frames" not in r:
            print(f"  {r['camera']:<20} {r['state']:<28}" + (f"  {r['error']}" if r.get("error") else ""))
            continue
        drops = int(r.get("stale_dropped", 0)) + int(r.get("corrupt_frames", 0))
        print(
            f"  {r['camera']:<20} {describe_state(r, now):<28} {float(r.get('fps', 0)):>6.1f} {int(r['frames']):>8} "
            f"{int(r.get('events', 0)):>7} {int(r.get('outbox_depth', 0)):>7} {drops:>6} "
            f"{int(r.get('reconnects', 0)):>6} {int(r.get('restarts', 0)):>8} {r['age_s']:>7.1f} s"
        )
    if args.check and unhealthy:
        print(f"unhealthy: {', '.join(unhealthy)}", file=sys.stderr)
    return code


def _print_report(res: dict) -> None:
    if res.get("ok") is False:
        print(f"camera {res['camera']}: FAILED: {res.get('error', 'unknown error')}", file=sys.stderr)
        return
    lines = [
        f"camera {res['camera']}: {res['frames']} frames in {res['wall_s']:.1f} s ({res['fps']:.1f} fps), "
        f"{res['tracks']} tracks, {res['violations']} violations, {res['events']} events",
    ]
    if res.get("health_episodes"):
        lines.append("  stream health: " + ", ".join(f"{k} x{v}" for k, v in res["health_episodes"].items()))
    if res.get("voice_failures"):
        lines.append(f"  voice reminders not spoken: {res['voice_failures']}")
    if res.get("corrupt_frames_skipped"):
        lines.append(f"  corrupt frames skipped: {res['corrupt_frames_skipped']}")
    if res.get("delivered") is not None:
        lines.append(f"  delivered to the aggregator: {res['delivered']}, undelivered: {res['undelivered']}")
        if res["undelivered"]:
            lines.append("  WARNING: some events were not acknowledged by the aggregator (see --events-out for a copy)")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in res["stages_ms"].items())
    lines.append(f"  ms per frame: {stages}")
    for name, path in res.get("outputs", {}).items():
        lines.append(f"  {name}: {path}")
    print("\n".join(lines), file=sys.stderr)


# ------------------------------------------------------------------------------------ config
def cmd_config_reference(args: argparse.Namespace) -> int:
    """Write docs/config-reference.md and the JSON Schema; ``--check``: exit 1 when they drift."""
    from vigil.edge import config_reference as ref  # noqa: PLC0415 - only this command needs it

    if args.check:
        stale = ref.check_reference(args.docs)
        for path in stale:
            print(f"{path}: differs from the config models; run `vigil config reference`", file=sys.stderr)
        return 1 if stale else EXIT_OK
    for path in ref.write_reference(args.docs):
        print(f"wrote {path}")
    return EXIT_OK


def cmd_config_schema(args: argparse.Namespace) -> int:
    """Print the node config's JSON Schema (or write it to ``--out``)."""
    from vigil.edge import config_reference as ref  # noqa: PLC0415

    text = ref.schema_text()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


# ------------------------------------------------------------------------------------ parser
def add_commands(sub) -> None:
    """``run``, ``status``, ``check-config`` and ``config`` on the ``vigil`` subparsers."""
    p = sub.add_parser("run", help="run the edge worker on a node config (replay a file or serve live cameras)")
    p.add_argument("--config", required=True, help="node config YAML")
    p.add_argument("--camera", help="run only this camera (default: every enabled camera)")
    p.add_argument("--source", help="override the camera's source (file path or URL)")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    p.add_argument(
        "--mot-out", help="write MOTChallenge lines frame,id,left,top,width,height,conf,x,y,-1 (x, y ground metres)"
    )
    p.add_argument(
        "--mot-classes",
        help="comma-separated detector classes written to --mot-out "
        "(default: the distance rule's classes, i.e. person)",
    )
    p.add_argument("--events-out", help="write every event as JSON Lines")
    p.add_argument("--no-publish", action="store_true", help="do not send events to the aggregator")
    p.add_argument("--no-media", action="store_true", help="skip the annotated video and the bird's-eye PNG")
    p.add_argument("--json", action="store_true", help="print the run report as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "status",
        help="show every camera's state as reported by its worker, or check an aggregator's health",
        description="--config: every camera's state (exit 0; with --check, 1 when a camera is failed, "
        "stale or not started). --aggregator FILE: the health check of an "
        "aggregator run with --status-file FILE: exit 0 when it was rewritten within --max-age-s and the "
        "store answers, 1 otherwise (for container and systemd health checks).",
    )
    p.add_argument("--config", help="node config YAML")
    p.add_argument("--aggregator", metavar="STATUS_FILE", help="an aggregator's --status-file")
    p.add_argument(
        "--check",
        action="store_true",
        help="--config: exit 1 when an enabled camera is failed, stale (its worker silent) or not started",
    )
    p.add_argument(
        "--max-age-s", type=float, default=15.0, help="--aggregator: older than this is unhealthy (default 15)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "check-config",
        help="validate a node config and every file it names (calibrations, zones, models) without running",
    )
    p.add_argument("config", help="node config YAML")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("config", help="the node config reference (docs/config-reference.md) and its JSON Schema")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    c = csub.add_parser("reference", help="write docs/config-reference.md and docs/vigil-node-config.schema.json")
    c.add_argument("--check", action="store_true", help="write nothing; exit 1 when the files differ from the models")
    c.add_argument("--docs", help="folder to write to or check (default: the repository's docs/)")
    c.set_defaults(func=cmd_config_reference)
    c = csub.add_parser("schema", help="print the node config's JSON Schema")
    c.add_argument("--out", help="write it to this file instead")
    c.set_defaults(func=cmd_config_schema)
