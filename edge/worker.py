"""The per-camera edge worker: decode → detect → track → ground plane → rules → events.

:func:`run_camera` drives one camera to the end of its source (or ``max_frames``) and
returns a :class:`RunReport`. Events go to every sink given (ZeroMQ publisher, JSON Lines
file); a replay always finishes whether or not the aggregator answers, and what could not
be delivered is reported, never silently dropped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from vigil.alerts.events import Event, utc_iso
from vigil.detectors.detections import Detections
from vigil.edge.config import CameraConfig, ConfigError, NodeConfig
from vigil.edge.sources import Frame, open_source
from vigil.edge.tracking import Tracker

log = logging.getLogger(__name__)

__all__ = ["RunReport", "CameraPipeline", "run_camera", "STAGES"]

STAGES = ("decode", "detect", "track", "geometry", "rules", "events", "outputs")


class EventSink(Protocol):
    def publish(self, event: Event) -> None: ...


@dataclass
class RunReport:
    camera: str
    frames: int = 0
    corrupt_skipped: int = 0
    stale_dropped: int = 0
    tracks: int = 0
    events: int = 0
    violations: int = 0
    delivered: int | None = None
    undelivered: int | None = None
    wall_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def stage_ms(self) -> dict[str, float]:
        return {k: (1000.0 * v / self.frames if self.frames else 0.0) for k, v in self.stage_s.items()}

    def as_dict(self) -> dict:
        return {
            "camera": self.camera,
            "frames": self.frames,
            "corrupt_frames_skipped": self.corrupt_skipped,
            "stale_frames_dropped": self.stale_dropped,
            "tracks": self.tracks,
            "events": self.events,
            "violations": self.violations,
            "delivered": self.delivered,
            "undelivered": self.undelivered,
            "wall_s": round(self.wall_s, 3),
            "fps": round(self.fps, 2),
            "stages_ms": {k: round(v, 2) for k, v in self.stage_ms().items()},
            "outputs": self.outputs,
        }


class CameraPipeline:
    """Everything after decoding for one camera: detect, track, project, rules, events.

    ``process(frame) -> (tracked, events)`` with ``tracked`` a :class:`Detections` carrying
    ``tracker_id`` and ``data["world_xy"]`` ``(N, 2)`` metres (NaN where a foot point has no
    ground position).
    """

    def __init__(self, node: NodeConfig, camera: CameraConfig, fps: float, detector=None, wall_t0: float | None = None) -> None:
        from vigil.detectors.registry import build_detector
        from vigil.geometry.calibration_io import load_camera
        from vigil.geometry.distancing import ViolationMonitor

        self.node = node
        self.camera = camera
        self.model = load_camera(camera.calibration)
        self.detector = detector if detector is not None else build_detector(node.detector)
        self.class_names = list(self.detector.class_names)
        self.tracker = Tracker.from_config(node.tracker, fps=fps)
        rule = camera.rules.distance
        self.rule = rule
        self.rule_classes = np.array([i for i, n in enumerate(self.class_names) if n in set(rule.classes)], np.int64)
        unknown = sorted(set(rule.classes) - set(self.class_names))
        if unknown:
            raise ConfigError(f"camera {camera.name!r}: rules.distance.classes {unknown} are not classes of the detector ({self.class_names})")
        self.monitor = ViolationMonitor(
            threshold_m=rule.threshold_m,
            hysteresis_m=rule.hysteresis_m,
            min_duration_s=rule.min_duration_s,
            end_after_s=rule.end_after_s,
        ) if rule.enabled else None
        self.wall_t0 = time.time() if wall_t0 is None else wall_t0
        self.seq = 0
        self.open_pairs: set[tuple[int, int]] = set()
        self.stage_s = {s: 0.0 for s in STAGES}
        self.track_ids: set[int] = set()

    # -------------------------------------------------------------------------------------
    def _event(self, change, frame: Frame) -> Event:
        self.seq += 1
        a, b = (int(x) for x in change.pair)
        payload = {
            "tracks": [a, b],
            "positions_m": {str(k): [round(float(v[0]), 3), round(float(v[1]), 3)] for k, v in change.positions.items()},
            "distance_m": round(float(change.distance_m), 3),
            "min_distance_m": round(float(change.min_distance_m), 3),
            "threshold_m": self.rule.threshold_m,
            "duration_s": round(float(change.duration_s), 2),
            "frame": frame.index,
        }
        return Event(
            type="distance_violation",
            camera=self.camera.name,
            seq=self.seq,
            time=utc_iso(self.wall_t0 + frame.timestamp),
            severity=self.rule.severity,
            state=change.state,
            payload=payload,
        )

    def process(self, frame: Frame) -> tuple[Detections, list[Event], list]:
        t0 = time.perf_counter()
        dets = self.detector.detect(frame.image).with_metadata(camera=self.camera.name, frame_index=frame.index, timestamp=frame.timestamp)
        t1 = time.perf_counter()
        tracked = self.tracker.update(dets)
        t2 = time.perf_counter()
        world = self.model.image_to_ground(tracked.foot_points) if len(tracked) else np.zeros((0, 2))
        tracked = tracked.with_data(world_xy=world)
        t3 = time.perf_counter()
        changes = []
        if self.monitor is not None:
            sel = tracked[np.isin(tracked.class_id, self.rule_classes)]
            changes = self.monitor.update(frame.timestamp, sel.tracker_id, sel.data["world_xy"])
        t4 = time.perf_counter()
        events = []
        for ch in changes:
            events.append(self._event(ch, frame))
            pair = tuple(int(x) for x in ch.pair)
            if ch.state == "end":
                self.open_pairs.discard(pair)
            else:
                self.open_pairs.add(pair)
        t5 = time.perf_counter()
        self.track_ids.update(int(t) for t in tracked.tracker_id)
        for name, dt in zip(("detect", "track", "geometry", "rules", "events"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            self.stage_s[name] += dt
        return tracked, events, changes

    def finish(self, frame: Frame | None) -> tuple[list[Event], list]:
        """End every open violation at the end of the stream."""
        if self.monitor is None or frame is None:
            return [], []
        changes = self.monitor.flush(frame.timestamp)
        self.open_pairs.clear()
        return [self._event(ch, frame) for ch in changes], changes


def run_camera(
    node: NodeConfig,
    camera: CameraConfig,
    *,
    source: str | None = None,
    max_frames: int | None = None,
    sinks: list[EventSink] = (),
    mot_out: Path | None = None,
    mot_classes: list[str] | None = None,
    write_media: bool = True,
    progress: bool = True,
    stop: Callable[[], bool] | None = None,
    detector=None,
) -> RunReport:
    """Run one camera to the end of its source; see the module docstring."""
    from vigil.edge.outputs import AnnotatedVideo, BirdsEye, MotWriter

    src = open_source(source or camera.source, fps=camera.fps)
    fps = getattr(src, "fps", None) or camera.fps or 25.0
    pipeline = CameraPipeline(node, camera, fps=fps, detector=detector)
    report = RunReport(camera=camera.name)
    recorded = not src.live
    total = getattr(src, "frame_count", None)
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames

    wanted = set(mot_classes or camera.rules.distance.classes)
    unknown = wanted - set(pipeline.class_names)
    if unknown:
        src.close()
        raise ConfigError(f"--mot-classes: {sorted(unknown)} are not detector classes ({pipeline.class_names})")
    mot_ids = np.array([i for i, n in enumerate(pipeline.class_names) if n in wanted], np.int64)
    mot = MotWriter(mot_out) if mot_out else None
    video = None
    birdseye = BirdsEye() if (recorded and write_media and node.output.birdseye) else None
    out_dir = Path(node.output.dir)
    if recorded and write_media and node.output.annotated_video:
        video = AnnotatedVideo(out_dir / f"{camera.name}.annotated.mp4", fps, (src.width, src.height), pipeline.class_names)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc=camera.name, disable=None, leave=False)

    def emit(events: list[Event]) -> None:
        for ev in events:
            for sink in sinks:
                sink.publish(ev)
        report.events += len(events)

    ok = False
    last: Frame | None = None
    wall0 = time.perf_counter()
    try:
        it = iter(src)
        while True:
            if stop is not None and stop():
                break
            if max_frames is not None and report.frames >= max_frames:
                break
            td = time.perf_counter()
            frame = next(it, None)
            pipeline.stage_s["decode"] += time.perf_counter() - td
            if frame is None:
                break
            last = frame
            tracked, events, changes = pipeline.process(frame)
            emit(events)
            to = time.perf_counter()
            report.violations += sum(1 for c in changes if c.state == "start")
            if mot is not None:
                mot.write(frame.index, tracked[np.isin(tracked.class_id, mot_ids)])
            if birdseye is not None:
                birdseye.add(tracked[np.isin(tracked.class_id, pipeline.rule_classes)])
                for c in changes:
                    if c.state == "start":
                        pa, pb = (c.positions[k] for k in c.pair)
                        birdseye.add_violation(pa, pb)
            if video is not None:
                video.write(frame.image, tracked, sorted(pipeline.open_pairs), label=f"{camera.name}  frame {frame.index}  t={frame.timestamp:.1f}s")
            pipeline.stage_s["outputs"] += time.perf_counter() - to
            report.frames += 1
            if bar is not None:
                bar.update(1)
        events, _ = pipeline.finish(last)
        emit(events)
        ok = True
    finally:
        if bar is not None:
            bar.close()
        src.close()
        report.wall_s = time.perf_counter() - wall0
        report.corrupt_skipped = src.stats.corrupt_skipped
        report.stale_dropped = src.stats.stale_dropped
        report.stage_s = dict(pipeline.stage_s)
        report.tracks = len(pipeline.track_ids)
        if mot is not None:
            mot.close(ok)
            if ok:
                report.outputs["mot"] = str(mot.path)
        if video is not None:
            video.close(ok)
            if ok:
                report.outputs["annotated_video"] = str(video.path)
        if birdseye is not None and ok:
            report.outputs["birdseye"] = str(birdseye.save(out_dir / f"{camera.name}.birdseye.png", title=camera.name))
    return report
