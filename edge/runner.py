"""One camera of a node, assembled from typed options and run: sinks, publisher, status file.

- :class:`RunOptions`: how to run a node (``vigil run``'s flags as a frozen, picklable
  dataclass): which camera, a source override, ``max_frames``, the MOT and events files,
  publishing and media on or off, the progress bar, and the logging of worker processes.
- :func:`run_node_camera`: wires one camera's event sinks (the JSON Lines writer when
  ``events_out`` is set; the publisher with its CURVE keys from :mod:`vigil.alerts.keys`
  and one durable outbox per camera when the config publishes), its status writer, and
  runs :func:`vigil.edge.worker.run_camera`; the publisher is always closed (flushed for
  ``aggregator.flush_timeout_s``) and what it could not deliver is reported.
- :func:`camera_process`: the entry point of a supervised worker process
  (:mod:`vigil.edge.supervisor`): it receives the validated config and the options, never
  re-reads the YAML, and reports a :class:`CameraReport` on the results queue. A bad input
  (:data:`USER_ERRORS`) exits with :data:`EXIT_BAD_INPUT`: restarting cannot help.

:mod:`vigil.edge.node` runs a whole node (one camera in-process, several supervised).
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from vigil.alerts.jsonl import JsonlEventWriter
from vigil.alerts.keys import client_configurator
from vigil.alerts.publisher import EventPublisher
from vigil.edge.config import CameraConfig, NodeConfig
from vigil.edge.logs import configure_logging, tag_camera
from vigil.edge.status import StatusWriter
from vigil.edge.worker import RunReport, run_camera
from vigil.errors import EXIT_BAD_INPUT, USER_ERRORS

log = logging.getLogger(__name__)

__all__ = ["USER_ERRORS", "EXIT_BAD_INPUT", "RunOptions", "CameraReport", "run_node_camera", "camera_process"]


@dataclass(frozen=True)
class RunOptions:
    """How to run a node, beside its config (``vigil run``'s flags).

    ``camera``: run only this camera (default: every enabled one). ``source``: override the
    camera's source (file path or URL). ``max_frames``: stop after this many frames.
    ``mot_out``: write MOTChallenge lines (``frame,id,left,top,width,height,conf,x,y,-1``,
    ``x, y`` ground metres) of the ``mot_classes`` (default: the distance rule's classes).
    ``events_out``: write every event as JSON Lines (this run's events only: an existing
    file is replaced). ``publish``: send events to the aggregator when the config says so.
    ``media``: write the annotated video and the bird's-eye PNG of a recorded replay.
    ``progress``: a progress bar (never in worker processes). ``log_level``, ``log_json``:
    the logging of supervised worker processes (the calling process keeps its own).
    ``realtime``: replay recorded files at their frame rate as live cameras (frames a worker is
    too slow for are dropped and counted as stale; ``max_frames`` counts the frames offered),
    frame 0 due at the UNIX time ``realtime_start`` (default: when each camera is ready).
    ``source``, ``mot_out`` and ``events_out`` need a single camera.
    """

    camera: str | None = None
    source: str | None = None
    max_frames: int | None = None
    mot_out: Path | None = None
    mot_classes: tuple[str, ...] | None = None
    events_out: Path | None = None
    publish: bool = True
    media: bool = True
    progress: bool = True
    log_level: int = logging.INFO
    log_json: bool = False
    realtime: bool = False
    realtime_start: float | None = None

    def __post_init__(self) -> None:
        for name in ("mot_out", "events_out"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if self.mot_classes is not None:
            object.__setattr__(self, "mot_classes", tuple(self.mot_classes))
        if self.max_frames is not None and self.max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {self.max_frames}")

    @property
    def single_camera_only(self) -> bool:
        """True when an option names files or a source that only one camera can use."""
        return bool(self.source or self.mot_out or self.events_out)


@dataclass(frozen=True)
class CameraReport:
    """The outcome of one camera of a node run.

    ``run``: the worker's :class:`~vigil.edge.worker.RunReport` (``None`` when the camera
    failed before finishing). ``supervised``: run by the supervisor (its report then says
    ``ok`` and ``restarts``). :meth:`as_dict` is what ``vigil run --json`` prints.
    """

    camera: str
    ok: bool = True
    error: str | None = None
    restarts: int | None = None
    run: RunReport | None = None
    supervised: bool = False

    def as_dict(self) -> dict:
        d = self.run.as_dict() if self.run is not None else {"camera": self.camera}
        if self.supervised or not self.ok:
            d["ok"] = self.ok
        if self.error is not None:
            d["error"] = self.error
        if self.restarts is not None:
            d["restarts"] = self.restarts
        return d


def _outbox_path(config: NodeConfig, camera: str) -> Path:
    """One durable outbox per camera: unacknowledged events survive a restart and are resent."""
    link = config.aggregator
    outbox_dir = link.outbox_dir if link.outbox_dir is not None else config.output.dir / "outbox"
    return Path(outbox_dir) / (re.sub(r"[^A-Za-z0-9._-]", "_", camera) + ".outbox.db")


def _publisher(config: NodeConfig, camera: str) -> EventPublisher:
    link = config.aggregator
    configure = None
    if link.keys_dir is not None:
        configure = client_configurator(link.keys_dir, link.key_name or config.node)
    return EventPublisher(link.ingest_endpoints, outbox=_outbox_path(config, camera), configure_socket=configure)


def run_node_camera(
    config: NodeConfig,
    camera: CameraConfig,
    options: RunOptions,
    stop: Callable[[], bool] | None = None,
    *,
    status_extra: dict | None = None,
    detector=None,
) -> RunReport:
    """Run ``camera`` of ``config`` to the end of its source (or ``stop()``); see the module docstring.

    ``detector``: a shared detector's client (closed at the end), else the camera builds its
    own. ``status_extra``: fields merged into every status file (the supervisor's ``restarts``).
    """
    sinks = []
    publisher = None
    writer = None
    if options.events_out is not None:
        options.events_out.parent.mkdir(parents=True, exist_ok=True)
        options.events_out.unlink(missing_ok=True)  # this run's events only, like mot_out
        writer = JsonlEventWriter(options.events_out)
        sinks.append(writer)
    try:
        if config.aggregator.publish and options.publish:
            publisher = _publisher(config, camera.name)
            sinks.append(publisher)
        report = run_camera(
            config,
            camera,
            source=options.source,
            max_frames=options.max_frames,
            sinks=sinks,
            mot_out=options.mot_out,
            mot_classes=list(options.mot_classes) if options.mot_classes else None,
            write_media=options.media,
            progress=options.progress,
            stop=stop,
            status=StatusWriter(config.operations.status_dir, status_extra),
            detector=detector,
            # publisher.last_seq(camera) is where this camera's seq continues
            seq_start=publisher.last_seq(camera.name) if publisher is not None else 0,
            realtime=options.realtime,
            realtime_start=options.realtime_start,
        )
    finally:
        if detector is not None and hasattr(detector, "close"):
            detector.close()
        if writer is not None:
            writer.close()
        if publisher is not None:
            delivery = publisher.close(config.aggregator.flush_timeout_s)
    if publisher is not None:
        report.delivered = delivery.acknowledged
        report.undelivered = delivery.undelivered
    if options.events_out is not None:
        report.outputs["events"] = str(options.events_out)
    return report


def camera_process(config: NodeConfig, options: RunOptions, camera: str, restarts: int, results, detector=None) -> None:
    """Process entry point for one supervised camera (``spawn``: everything arrives pickled).

    SIGINT is ignored (the supervisor forwards a stop as SIGTERM); SIGTERM finishes the
    current frame and flushes the outbox. Puts one :class:`CameraReport` on ``results``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    configure_logging(options.log_level, as_json=options.log_json)
    tag_camera(camera)
    options = replace(options, progress=False)
    try:
        report = run_node_camera(
            config,
            config.camera(camera),
            options,
            stopping.is_set,
            status_extra={"restarts": restarts},
            detector=detector,
        )
        results.put(CameraReport(camera, ok=True, run=report, supervised=True))
    except USER_ERRORS as exc:  # bad input: restarting cannot help
        log.error("camera %s: %s", camera, exc, extra={"camera": camera})
        results.put(CameraReport(camera, ok=False, error=f"{type(exc).__name__}: {exc}", supervised=True))
        raise SystemExit(EXIT_BAD_INPUT) from None
    except Exception as exc:  # noqa: BLE001 - reported to the supervisor, then the process fails
        log.exception("camera %s: worker failed", camera, extra={"camera": camera})
        results.put(CameraReport(camera, ok=False, error=f"{type(exc).__name__}: {exc}", supervised=True))
        raise SystemExit(1) from None
