"""A Vigil edge node, built from a validated config and typed options, and run.

    config = load_config("node.yaml")
    reports = run_node(config, RunOptions(max_frames=100, publish=False), stop=threading.Event())

:func:`run_node` picks the cameras (:func:`select_cameras`), serves the Prometheus
endpoint when ``operations.metrics_port`` is set, and runs one camera in this process
(:func:`vigil.edge.runner.run_node_camera`: sinks, publisher, status writer) or several
through the supervisor (:mod:`vigil.edge.supervisor`: one worker process per camera,
restarted within limits). It returns one :class:`CameraReport` per camera. Setting
``stop`` finishes the current frame of every camera and flushes the outboxes.

Process-wide settings stay with the caller: logging (:func:`vigil.edge.logs.configure_logging`)
and signal handlers (``vigil run`` turns SIGINT/SIGTERM into ``stop``).
"""

from __future__ import annotations

import threading

from vigil.edge.config import CameraConfig, NodeConfig
from vigil.edge.runner import USER_ERRORS, CameraReport, RunOptions, run_node_camera
from vigil.edge.status import serve_metrics
from vigil.edge.supervisor import run_cameras

__all__ = ["OptionsError", "RunOptions", "CameraReport", "USER_ERRORS", "select_cameras", "run_node"]


class OptionsError(ValueError):
    """Run options that do not fit the node (e.g. an output file for several cameras)."""


def select_cameras(config: NodeConfig, options: RunOptions) -> list[CameraConfig]:
    """``options.camera`` (a :class:`~vigil.edge.config.ConfigError` if unknown), else every enabled camera."""
    if options.camera:
        return [config.camera(options.camera)]
    return [c for c in config.cameras if c.enabled]


def run_node(
    config: NodeConfig, options: RunOptions | None = None, *, stop: threading.Event | None = None
) -> list[CameraReport]:
    """Run the node until its sources end, ``options.max_frames``, or ``stop`` is set.

    Raises :class:`OptionsError` when ``options`` name a source or output file but several
    cameras would run, and the :data:`USER_ERRORS` of a bad config, calibration, model or key
    when the node runs one camera in this process (supervised cameras report them instead).
    """
    options = options or RunOptions()
    stop = stop or threading.Event()
    cameras = select_cameras(config, options)
    if len(cameras) > 1 and options.single_camera_only:
        raise OptionsError("source, mot_out and events_out need one camera: choose one with camera")
    ops = config.operations
    metrics = None
    if ops.metrics_port is not None:
        metrics = serve_metrics(ops.status_dir, ops.metrics_host, ops.metrics_port)
    try:
        if len(cameras) == 1:
            return [CameraReport(cameras[0].name, run=run_node_camera(config, cameras[0], options, stop.is_set))]
        return run_cameras(config, options, [c.name for c in cameras], stop_event=stop)
    finally:
        if metrics is not None:
            metrics.shutdown()
