"""The ``vigil`` command line.

Commands: ``run`` (edge worker on one or all cameras of a node config), ``check-config``,
and those registered by the other packages (``aggregator``, ``tail``, ``events`` from
:mod:`vigil.alerts.cli`; ``models`` from :mod:`vigil.models.cli`; ``eval`` and ``bench``
from :mod:`vigil.bench.cli`).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

log = logging.getLogger("vigil")

EXIT_OK = 0
EXIT_ERROR = 2


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (reported in one line, no traceback)."""
    from vigil.edge.config import ConfigError
    from vigil.edge.sources import SourceError
    from vigil.geometry.camera import CalibrationError

    errors: list[type[BaseException]] = [ConfigError, SourceError, CalibrationError, FileNotFoundError, PermissionError]
    try:
        from vigil.models.darknet import DarknetError

        errors.append(DarknetError)
    except ImportError:  # pragma: no cover
        pass
    try:
        from vigil.detectors.registry import ModelError

        errors.append(ModelError)
    except ImportError:  # pragma: no cover
        pass
    try:
        from vigil.models.manifest import ManifestError

        errors.append(ManifestError)
    except ImportError:  # pragma: no cover
        pass
    from vigil.alerts.keys import KeyFileError

    errors.append(KeyFileError)
    return tuple(errors)


# ------------------------------------------------------------------------------------ check-config
def cmd_check_config(args: argparse.Namespace) -> int:
    from vigil.edge.config import load_config
    from vigil.geometry.calibration_io import load_camera

    cfg = load_config(args.config)
    problems = []
    for cam in cfg.cameras:
        try:
            load_camera(cam.calibration)
        except Exception as exc:  # noqa: BLE001 - reported below with the camera's name
            problems.append(f"camera {cam.name!r}: calibration: {exc}")
        if (
            "://" not in cam.source
            and not cam.source.isdigit()
            and not cam.source.startswith("/dev/")
            and not Path(cam.source).is_file()
        ):
            problems.append(f"camera {cam.name!r}: source: file not found: {cam.source}")
    link = cfg.aggregator
    if link.publish and link.keys_dir is not None:
        for key in (link.keys_dir / f"{link.key_name or cfg.node}.key_secret", link.keys_dir / "aggregator.key"):
            if not key.is_file():
                problems.append(f"aggregator.keys_dir: key file not found: {key} (see `vigil keys new`)")
    if problems:
        print(f"{args.config}: invalid configuration", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return EXIT_ERROR
    print(
        f"{args.config}: OK ({len(cfg.cameras)} camera{'s' if len(cfg.cameras) != 1 else ''}: {', '.join(c.name for c in cfg.cameras)}; detector {cfg.detector.type})"
    )
    return EXIT_OK


# ------------------------------------------------------------------------------------ run
def _run_one(cfg, cam, args, stop, status_extra: dict | None = None, detector=None) -> dict:
    from vigil.edge.status import StatusWriter
    from vigil.edge.worker import run_camera

    sinks = []
    publisher = None
    writer = None
    if args.events_out:
        from vigil.alerts.jsonl import JsonlEventWriter

        events_out = Path(args.events_out)
        events_out.parent.mkdir(parents=True, exist_ok=True)
        events_out.unlink(missing_ok=True)  # this run's events only, like --mot-out
        writer = JsonlEventWriter(events_out)
        sinks.append(writer)
    if cfg.aggregator.publish and not args.no_publish:
        import re

        from vigil.alerts.publisher import EventPublisher

        link = cfg.aggregator
        configure = None
        if link.keys_dir is not None:
            from vigil.alerts.keys import client_configurator

            configure = client_configurator(link.keys_dir, link.key_name or cfg.node)
        outbox_dir = link.outbox_dir if link.outbox_dir is not None else cfg.output.dir / "outbox"
        # one durable outbox per camera: unacknowledged events survive a restart and are resent;
        # publisher.last_seq(cam.name) is where this camera's seq continues
        publisher = EventPublisher(
            link.endpoint,
            outbox=Path(outbox_dir) / (re.sub(r"[^A-Za-z0-9._-]", "_", cam.name) + ".outbox.db"),
            configure_socket=configure,
        )
        sinks.append(publisher)
    try:
        report = run_camera(
            cfg,
            cam,
            source=args.source,
            max_frames=args.max_frames,
            sinks=sinks,
            mot_out=Path(args.mot_out) if args.mot_out else None,
            mot_classes=args.mot_classes.split(",") if args.mot_classes else None,
            write_media=not args.no_media,
            progress=not args.quiet,
            stop=stop,
            status=StatusWriter(cfg.operations.status_dir, status_extra),
            detector=detector,
            seq_start=publisher.last_seq(cam.name) if publisher is not None else 0,
        )
    finally:
        if detector is not None and hasattr(detector, "close"):
            detector.close()
        if writer is not None:
            writer.close()
        if publisher is not None:
            delivery = publisher.close(cfg.aggregator.flush_timeout_s)
    result = report
    if publisher is not None:
        result.delivered = delivery.acknowledged
        result.undelivered = delivery.undelivered
    if args.events_out:
        result.outputs["events"] = str(args.events_out)
    return result.as_dict()


def cmd_run(args: argparse.Namespace) -> int:
    import threading

    from vigil.edge.config import load_config

    cfg = load_config(args.config)
    cams = [cfg.camera(args.camera)] if args.camera else [c for c in cfg.cameras if c.enabled]
    if len(cams) > 1 and (args.source or args.mot_out or args.events_out):
        print("vigil run: --source, --mot-out and --events-out need one camera: add --camera NAME", file=sys.stderr)
        return EXIT_ERROR

    stopping = threading.Event()

    def _on_signal(signum, _frame):
        stopping.set()
        log.warning("signal %d: finishing the current frame and flushing", signum)

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    ops = cfg.operations
    metrics = None
    if ops.metrics_port is not None:
        from vigil.edge.status import serve_metrics

        metrics = serve_metrics(ops.status_dir, ops.metrics_host, ops.metrics_port)
    try:
        if len(cams) == 1:
            from vigil.edge.logs import tag_camera

            tag_camera(cams[0].name)
            results = [_run_one(cfg, cams[0], args, stopping.is_set)]
        else:
            from vigil.edge.supervisor import run_cameras

            results = run_cameras(args, [c.name for c in cams], ops, stop_event=stopping)
    finally:
        if metrics is not None:
            metrics.shutdown()
    for res in results:
        if args.json:
            print(json.dumps(res))
        else:
            _print_report(res)
    return EXIT_OK if all(r.get("ok", True) for r in results) else EXIT_ERROR


def cmd_status(args: argparse.Namespace) -> int:
    import time

    from vigil.edge.config import load_config
    from vigil.edge.status import effective_state, read_statuses

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
    if args.json:
        print(json.dumps({"node": cfg.node, "cameras": rows}))
        return EXIT_OK
    print(
        f"node {cfg.node}: {len(rows)} camera{'s' if len(rows) != 1 else ''} (status from {cfg.operations.status_dir})"
    )
    print(
        f"  {'camera':<20} {'state':<12} {'fps':>6} {'frames':>8} {'events':>7} {'outbox':>7} {'drops':>6} {'reconn':>6} {'restarts':>8} {'updated':>9}"
    )
    for r in rows:
        if "frames" not in r:
            print(f"  {r['camera']:<20} {r['state']:<12}" + (f"  {r['error']}" if r.get("error") else ""))
            continue
        drops = int(r.get("stale_dropped", 0)) + int(r.get("corrupt_frames", 0))
        print(
            f"  {r['camera']:<20} {r['state']:<12} {float(r.get('fps', 0)):>6.1f} {int(r['frames']):>8} {int(r.get('events', 0)):>7} "
            f"{int(r.get('outbox_depth', 0)):>7} {drops:>6} {int(r.get('reconnects', 0)):>6} {int(r.get('restarts', 0)):>8} {r['age_s']:>7.1f} s"
        )
    return EXIT_OK


def _print_report(res: dict) -> None:
    if res.get("ok") is False:
        print(f"camera {res['camera']}: FAILED: {res.get('error', 'unknown error')}", file=sys.stderr)
        return
    lines = [
        f"camera {res['camera']}: {res['frames']} frames in {res['wall_s']:.1f} s ({res['fps']:.1f} fps), "
        f"{res['tracks']} tracks, {res['violations']} violations, {res['events']} events",
    ]
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


# ------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vigil", description="Vigil: edge-AI video service for city safety")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log-json", action="store_true", help="structured JSON logs on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        help="comma-separated detector classes written to --mot-out (default: the distance rule's classes, i.e. person)",
    )
    p.add_argument("--events-out", help="write every event as JSON Lines")
    p.add_argument("--no-publish", action="store_true", help="do not send events to the aggregator")
    p.add_argument("--no-media", action="store_true", help="skip the annotated video and the bird's-eye PNG")
    p.add_argument("--json", action="store_true", help="print the run report as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="show every camera's state as reported by its worker")
    p.add_argument("--config", required=True, help="node config YAML")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("check-config", help="validate a node config (and its calibration files) without running")
    p.add_argument("config", help="node config YAML")
    p.set_defaults(func=cmd_check_config)

    for module in (
        "vigil.alerts.cli",
        "vigil.models.cli",
        "vigil.bench.cli",
        "vigil.calibration.cli",
        "vigil.detectors.plates.cli",
    ):
        try:
            mod = __import__(module, fromlist=["add_commands"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        mod.add_commands(sub)
    return parser


def _setup_logging(verbose: bool, as_json: bool) -> None:
    from vigil.edge.logs import configure_logging

    configure_logging(logging.DEBUG if verbose else logging.INFO, as_json=as_json)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.log_json)
    try:
        return int(args.func(args) or 0)
    except _user_errors() as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("vigil: interrupted", file=sys.stderr)
        return 130
