"""Camera status files and the node's Prometheus endpoint.

Each camera worker writes ``STATUS_DIR/CAMERA.json`` about once a second (atomically: a
temporary file renamed over the old one), from a snapshot made by
:class:`vigil.edge.worker.StatusReporter`. The supervisor adds ``restarts`` and marks
failed cameras. ``vigil status`` and the metrics endpoint only read these files, so they
work whatever process (or how many) runs the cameras.

A running camera's stream health (``health``: ``ok`` | ``blank`` | ``frozen`` | ``garbled`` |
``no_detections``, see :mod:`vigil.edge.health`) qualifies its state: :func:`describe_state`
gives ``running (frozen 42 s)`` where :func:`effective_state` gives ``running``; the metrics
add ``vigil_camera_health{state}`` (1 for the current one), ``vigil_camera_health_seconds``
and, with voice reminders, ``vigil_voice_failures_total``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Iterator

from vigil.fileio import atomic_write_text

log = logging.getLogger(__name__)

__all__ = [
    "write_status",
    "read_statuses",
    "StatusWriter",
    "StatusCollector",
    "serve_metrics",
    "effective_state",
    "describe_state",
]

#: a status not refreshed for this many seconds means its worker stopped reporting
STALE_AFTER_S = 5.0


def write_status(status_dir: Path, status: dict) -> None:
    """Atomically (re)write ``status_dir/<camera>.json`` (no fsync: it is rewritten every second)."""
    atomic_write_text(Path(status_dir) / f"{status['camera']}.json", json.dumps(status, separators=(",", ":")))


def read_statuses(status_dir: Path) -> Iterator[dict]:
    """Every camera's last status (unreadable files are skipped and logged)."""
    status_dir = Path(status_dir)
    if not status_dir.is_dir():
        return
    for path in sorted(status_dir.glob("*.json")):
        if path.name.startswith("."):  # a status being written (vigil.fileio's temporary file)
            continue
        try:
            yield json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable status file: %s", path, exc)


def effective_state(status: dict, now: float | None = None) -> str:
    """The status's state, or ``stale`` when a live state has not been refreshed lately."""
    now = time.time() if now is None else now
    state = status.get("state", "unknown")
    if state in ("running", "connecting") and now - float(status.get("updated", 0)) > STALE_AFTER_S:
        return "stale"
    return state


def describe_state(status: dict, now: float | None = None) -> str:
    """:func:`effective_state`, with what is wrong with a running camera: its bad stream health
    and how long it has held (``running (frozen 42 s)``, ``running (no_detections 610 s)``) and
    an aggregator that refuses its key (``running (aggregator refused the key)``); plain
    ``running`` while all is well (or unknown)."""
    now = time.time() if now is None else now
    state = effective_state(status, now)
    if state != "running":
        return state
    notes = []
    health = status.get("health")
    if health and health != "ok":
        held = status.get("health_s")
        if isinstance(held, (int, float)):
            age = max(0.0, now - float(status.get("updated", now)))
            notes.append(f"{health} {held + age:.0f} s")
        else:
            notes.append(str(health))
    if status.get("aggregator_link") == "refused":
        notes.append("aggregator refused the key")
    return f"{state} ({', '.join(notes)})" if notes else state


class StatusWriter:
    """A ``status`` callback for :func:`vigil.edge.worker.run_camera` writing status files.

    ``extra``: fields merged into every status (the supervisor passes ``restarts``).
    """

    def __init__(self, status_dir: Path, extra: dict | None = None) -> None:
        self.status_dir = Path(status_dir)
        self.extra = dict(extra or {})

    def __call__(self, snapshot: dict) -> None:
        write_status(self.status_dir, {**snapshot, **self.extra})


class StatusCollector:
    """A Prometheus collector that turns the status files into metrics, per camera."""

    def __init__(self, status_dir: Path) -> None:
        self.status_dir = Path(status_dir)

    def collect(self):
        # prometheus_client is imported here and in serve_metrics, not with the module: every camera
        # worker imports this module for StatusWriter and never serves metrics
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: PLC0415 - see above

        now = time.time()
        up = GaugeMetricFamily(
            "vigil_camera_up", "1 when the camera's worker runs and its source delivers frames", labels=["camera"]
        )
        state = GaugeMetricFamily(
            "vigil_camera_state", "The camera's state (1 for the current one)", labels=["camera", "state"]
        )
        frames = CounterMetricFamily("vigil_frames", "Frames processed", labels=["camera"])
        fps = GaugeMetricFamily("vigil_fps", "Frames per second over the last status interval", labels=["camera"])
        stage = GaugeMetricFamily(
            "vigil_stage_latency_ms", "Mean latency per frame of each pipeline stage (ms)", labels=["camera", "stage"]
        )
        dropped = CounterMetricFamily(
            "vigil_dropped_frames",
            "Frames dropped: stale (live source too fast) or corrupt (undecodable)",
            labels=["camera", "reason"],
        )
        reconnects = CounterMetricFamily(
            "vigil_source_reconnects", "Reconnections to the camera's source", labels=["camera"]
        )
        events = CounterMetricFamily("vigil_events", "Alarm events produced", labels=["camera"])
        outbox = GaugeMetricFamily(
            "vigil_outbox_depth", "Events waiting for the aggregator's acknowledgement", labels=["camera"]
        )
        queue = GaugeMetricFamily(
            "vigil_queue_depth", "Frames waiting in the camera's detector queue", labels=["camera"]
        )
        since_event = GaugeMetricFamily(
            "vigil_seconds_since_last_event",
            "Seconds since the camera's last alarm event (absent before the first)",
            labels=["camera"],
        )
        since_frame = GaugeMetricFamily(
            "vigil_seconds_since_last_frame", "Seconds since the camera's last processed frame", labels=["camera"]
        )
        restarts = CounterMetricFamily(
            "vigil_worker_restarts", "Restarts of the camera's worker by the supervisor", labels=["camera"]
        )
        health = GaugeMetricFamily(
            "vigil_camera_health",
            "The camera's stream health (1 for the current one): ok, blank, frozen, garbled, no_detections",
            labels=["camera", "state"],
        )
        health_s = GaugeMetricFamily(
            "vigil_camera_health_seconds",
            "Stream seconds the camera's stream health has been bad (0 while ok)",
            labels=["camera"],
        )
        voice_failures = CounterMetricFamily(
            "vigil_voice_failures",
            "Voice reminders due that could not be spoken (espeak-ng missing or failing, no sound device)",
            labels=["camera"],
        )
        for st in read_statuses(self.status_dir):
            cam = str(st.get("camera"))
            eff = effective_state(st, now)
            age = max(0.0, now - float(st.get("updated", now)))
            up.add_metric([cam], 1.0 if eff == "running" else 0.0)
            state.add_metric([cam, eff], 1.0)
            frames.add_metric([cam], float(st.get("frames", 0)))
            fps.add_metric([cam], float(st.get("fps", 0.0)) if eff == "running" else 0.0)
            for name, ms in (st.get("stages_ms") or {}).items():
                stage.add_metric([cam, name], float(ms))
            dropped.add_metric([cam, "stale"], float(st.get("stale_dropped", 0)))
            dropped.add_metric([cam, "corrupt"], float(st.get("corrupt_frames", 0)))
            reconnects.add_metric([cam], float(st.get("reconnects", 0)))
            events.add_metric([cam], float(st.get("events", 0)))
            outbox.add_metric([cam], float(st.get("outbox_depth", 0)))
            queue.add_metric([cam], float(st.get("queue_depth", 0)))
            if st.get("seconds_since_event") is not None:
                since_event.add_metric([cam], float(st["seconds_since_event"]) + age)
            since_frame.add_metric([cam], float(st.get("seconds_since_frame", 0.0)) + age)
            restarts.add_metric([cam], float(st.get("restarts", 0)))
            if st.get("health") and eff == "running":
                health.add_metric([cam, str(st["health"])], 1.0)
                held = st.get("health_s")
                health_s.add_metric([cam], float(held) + age if isinstance(held, (int, float)) else 0.0)
            if st.get("voice_failures") is not None:
                voice_failures.add_metric([cam], float(st["voice_failures"]))
        yield from (
            up,
            state,
            frames,
            fps,
            stage,
            dropped,
            reconnects,
            events,
            outbox,
            queue,
            since_event,
            since_frame,
            restarts,
            health,
            health_s,
            voice_failures,
        )


def serve_metrics(status_dir: Path, host: str, port: int):
    """Start the Prometheus endpoint (``/metrics``) in a daemon thread; returns the server."""
    from prometheus_client import CollectorRegistry, start_http_server  # noqa: PLC0415 - not in camera workers

    registry = CollectorRegistry(auto_describe=True)
    registry.register(StatusCollector(status_dir))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server
