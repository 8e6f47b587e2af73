"""The per-camera edge worker: decode → detect → track → ground plane → rules → events.

:func:`run_camera` drives one camera to the end of its source (or ``max_frames``) and
returns a :class:`RunReport`. Events go to every sink given (ZeroMQ publisher, JSON Lines
file); a replay always finishes whether or not the aggregator answers, and what could not
be delivered is reported, never silently dropped. Every frame also goes through the
stream-health check (:mod:`vigil.edge.health`: blank, frozen, garbled pictures, no
detections), whose changes are ``camera_health`` events like any alarm's and whose state is in
the status snapshot.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from vigil.alarm import AlarmChange
from vigil.alerts.events import Event, event_from_change, event_from_heatmap, utc_iso
from vigil.detectors.detections import Detections
from vigil.detectors.registry import build_detector
from vigil.edge.config import CameraConfig, ConfigError, NodeConfig
from vigil.edge.health import HealthThresholds, StreamHealth
from vigil.edge.media import MediaRecorder
from vigil.edge.outputs import AnnotatedVideo, BirdsEye, MotWriter
from vigil.edge.overlay import SceneGeometry
from vigil.edge.sources import Frame, open_source
from vigil.edge.tracking import Tracker
from vigil.edge.voice import VoiceReminder
from vigil.geometry.calibration_io import load_camera
from vigil.geometry.ground_filter import GroundEstimator
from vigil.geometry.rules import RulesEngine
from vigil.geometry.zones import ZoneError

log = logging.getLogger(__name__)

__all__ = ["RunReport", "CameraPipeline", "run_camera", "STAGES"]

STAGES = ("decode", "health", "detect", "track", "geometry", "rules", "events", "outputs")


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
    last_frame_monotonic: float | None = None
    last_event_monotonic: float | None = None
    stage_s: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    outputs: dict[str, str] = field(default_factory=dict)
    #: bad stream-health episodes by state (``{"frozen": 1}``; see vigil.edge.health)
    health: dict[str, int] = field(default_factory=dict)
    voice_failures: int = 0

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
            "health_episodes": self.health,
            "voice_failures": self.voice_failures,
        }


def amodal_boxes(tracked: Detections, foot_px: np.ndarray, corrected: np.ndarray) -> Detections:
    """``tracked`` with the boxes of the ``corrected (N,) bool`` rows reaching down to their estimated
    feet ``foot_px (N, 2)`` pixels (the bottom edge moved to the foot's ``v``: lower for hidden legs,
    higher for a box that ran into a nearer person); ``data["visible_xyxy"]`` keeps the detector's
    boxes. Pixels; the top edge and the width are kept."""
    xyxy = tracked.xyxy.copy()
    rows = np.flatnonzero(corrected & (foot_px[:, 1] > xyxy[:, 1]))
    xyxy[rows, 3] = foot_px[rows, 1]
    return replace(tracked, xyxy=xyxy, data={**tracked.data, "visible_xyxy": tracked.xyxy})


class CameraPipeline:
    """Everything after decoding for one camera: detect, track, project, rules, events.

    ``process(frame) -> (tracked, events, changes)`` with ``tracked`` a :class:`Detections` carrying
    ``tracker_id`` and ``data["world_xy"]`` ``(N, 2)`` metres (NaN where a foot point has no
    ground position); with ``tracker.ground`` also ``data["world_cov"]`` ``(N, 2, 2)`` m^2, which
    the rules engine gets too (each pair's distance sigma and confidence, ``decision: sure``).
    """

    def __init__(
        self,
        node: NodeConfig,
        camera: CameraConfig,
        fps: float,
        detector=None,
        wall_t0: float | None = None,
        seq_start: int = 0,
    ) -> None:
        self.node = node
        self.camera = camera
        self.model = load_camera(camera.calibration)
        self.detector = detector if detector is not None else build_detector(node.detector)
        self.class_names = list(self.detector.class_names)
        self.tracker = Tracker.from_config(node.tracker, fps=fps)
        self.ground = None
        if node.tracker.ground.enabled:
            people = [i for i, n in enumerate(self.class_names) if n == "person"]
            self.ground = GroundEstimator.from_config(self.model, people, node.tracker.ground)
        self.amodal = node.tracker.ground.occlusion_feet and node.tracker.ground.amodal_boxes
        rule = camera.rules.distance
        self.rule = rule
        self.rule_classes = np.array(
            [i for i, n in enumerate(self.class_names) if n in set(rule.all_classes)], np.int64
        )
        try:
            self.engine = RulesEngine(camera.rules, camera.zones, camera=self.model)
        except (ZoneError, ValueError) as exc:
            raise ConfigError(f"camera {camera.name!r}: {exc}") from None
        unknown = sorted(self.engine.classes - set(self.class_names))
        if unknown:
            raise ConfigError(
                f"camera {camera.name!r}: rules name classes {unknown} "
                f"that are not classes of the detector ({self.class_names})"
            )
        self.engine_classes = np.array(
            [i for i, n in enumerate(self.class_names) if n in self.engine.classes], np.int64
        )
        self.voice = None
        v = camera.rules.voice
        if v.enabled:
            self.voice = VoiceReminder(v.message, v.voice, v.speed_wpm, v.min_interval_s)
            self.voice_zones_off = {z.name for z in camera.zones if not z.voice}
        self.wall_t0 = time.time() if wall_t0 is None else wall_t0
        self.seq = seq_start  # the last seq already used by this camera (durable outbox), 0 if none
        self.open_pairs: set[tuple[int, int]] = set()
        self.stage_s = {s: 0.0 for s in STAGES}
        self.track_ids: set[int] = set()
        hm = camera.rules.heatmap
        self.heatmap_interval_s = float(hm.publish_interval_s) if self.engine.heatmap is not None else 0.0
        self._heatmap_next: float | None = None
        media = node.output.media
        self.scene = SceneGeometry(self.model, camera.zones)
        try:  # snapshots, plate clips, live tiles (vigil.edge.media); record: false writes no picture at all
            clips = camera.plates.enabled and bool(camera.plates.watchlists)
            self.media = MediaRecorder(media, camera.name, self.class_names, self.scene, fps=fps, clips=clips)
        except ValueError as exc:
            raise ConfigError(f"camera {camera.name!r}: {exc}") from None
        self._last_tracked: Detections | None = None
        self.last_raw: Detections | None = None  # the last frame's detections before tracking (masked too)
        self.plates = None
        if camera.plates.enabled:
            from vigil.plates.pipeline import PlatePipeline  # noqa: PLC0415 - plate OCR: only cameras that read plates

            plates_cfg = camera.plates if media.record else camera.plates.model_copy(update={"evidence_dir": None})
            self.plates = PlatePipeline(plates_cfg, camera.name)
        self.health = StreamHealth(HealthThresholds.from_config(camera.health)) if camera.health.enabled else None

    # -------------------------------------------------------------------------------------
    def _event(self, change: AlarmChange, frame: Frame) -> Event:
        """An :class:`AlarmChange` (a rule's or a plate pass's) as the camera's next event."""
        self.seq += 1
        return event_from_change(
            change,
            camera=self.camera.name,
            seq=self.seq,
            time=utc_iso(self.wall_t0 + change.timestamp_s),
            frame=frame.index,
        )

    def _heatmap_events(self, frame: Frame, final: bool = False) -> list[Event]:
        """A ``heatmap`` event (info, update) every ``publish_interval_s`` of stream time, and
        one at the end of the stream (``final``): both layers as compact 0-255 grids."""
        if self.heatmap_interval_s <= 0:
            return []
        if self._heatmap_next is None:
            self._heatmap_next = frame.timestamp + self.heatmap_interval_s
            if not final:
                return []
        if not final and frame.timestamp < self._heatmap_next:
            return []
        while self._heatmap_next <= frame.timestamp:
            self._heatmap_next += self.heatmap_interval_s
        self.seq += 1
        event = event_from_heatmap(
            self.engine.heatmap,
            camera=self.camera.name,
            seq=self.seq,
            time=utc_iso(self.wall_t0 + frame.timestamp),
            frame=frame.index,
            max_cells=self.camera.rules.heatmap.publish_max_cells,
            final=final,
        )
        return [event]

    def _voice(self, changes) -> None:
        if self.voice is None:
            return
        self.voice.poll()  # a reminder that finished with an error is counted now
        rules = set(self.camera.rules.voice.rules)
        for ch in changes:
            if ch.state == "start" and ch.rule in rules and ch.zone not in self.voice_zones_off:
                self.voice.remind(ch.zone)

    def _health_events(self, frame: Frame, detections: int) -> list[Event]:
        """``camera_health`` events of this frame's stream-health check (see vigil.edge.health)."""
        if self.health is None:
            return []
        t = time.perf_counter()
        changes = self.health.update(frame.timestamp, frame.image, detections, frame.index)
        self.stage_s["health"] += time.perf_counter() - t
        return [self._event(ch, frame) for ch in changes]

    def process(self, frame: Frame) -> tuple[Detections, list[Event], list]:
        """Detect, track, project, rules, events for one frame; ``changes`` are the rules' (the
        plate pass's and the stream-health check's changes are only in ``events``)."""
        t0 = time.perf_counter()
        meta = {"camera": self.camera.name, "frame_index": frame.index, "timestamp": frame.timestamp}
        dets = None  # the frame's raw detections (masked in pictures too: not yet tracked people)
        if self.tracker.wants_detection():
            dets = self.detector.detect(frame.image).with_metadata(**meta)
            t1 = time.perf_counter()
            tracked = self.tracker.update(dets, frame.image)
        else:  # tracker.detect_every: no detector on this frame, the tracks carried on (data["carried"])
            t1 = t0
            tracked = self.tracker.carry(frame.image, **meta)
        t2 = time.perf_counter()
        if self.ground is None:
            world = self.model.image_to_ground(tracked.foot_points) if len(tracked) else np.zeros((0, 2))
            tracked = tracked.with_data(world_xy=world)
        else:  # tracker.ground: corrected feet, filtered positions, data["world_cov"]
            measured = self.tracker.measured(tracked)  # not coasting, not carried by prediction
            size = (frame.image.shape[1], frame.image.shape[0])
            g = self.ground.update(frame.timestamp, tracked.tracker_id, tracked.xyxy, tracked.class_id, size, measured)
            foot_px = g.pop("foot_px")
            tracked = tracked.with_data(**g)
            if self.amodal and np.any(g["foot_corrected"]):
                tracked = amodal_boxes(tracked, foot_px, g["foot_corrected"])
        t3 = time.perf_counter()
        sel = tracked[np.isin(tracked.class_id, self.engine_classes)]
        names = np.array(self.class_names, dtype=object)[sel.class_id] if len(sel) else np.zeros(0, dtype=object)
        changes = self.engine.update(
            frame.timestamp, sel.tracker_id, names, sel.data["world_xy"], world_cov=sel.data.get("world_cov")
        )
        self._voice(changes)
        t4 = time.perf_counter()
        for ch in changes:
            if ch.rule != "distance":
                continue
            pair = tuple(int(x) for x in ch.pair)
            if ch.state == "end":
                self.open_pairs.discard(pair)
            else:
                self.open_pairs.add(pair)
        plate_changes = []
        if self.plates is not None:
            plate_changes = self.plates.process(frame.image, frame.timestamp, tracked, self.class_names)
        tm = time.perf_counter()
        changes, plate_changes = self._media(frame, tracked, changes, plate_changes, dets)
        tm = time.perf_counter() - tm
        events = [self._event(ch, frame) for ch in changes]
        events.extend(self._heatmap_events(frame))
        events.extend(self._event(ch, frame) for ch in plate_changes)
        t5 = time.perf_counter() - tm
        self.stage_s["outputs"] += tm
        self.track_ids.update(int(t) for t in tracked.tracker_id)
        for name, dt in zip(
            ("detect", "track", "geometry", "rules", "events"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
        ):
            self.stage_s[name] += dt
        events.extend(self._health_events(frame, self.tracker.detected))  # times itself (stage "health")
        return tracked, events, changes

    def _media(
        self, frame: Frame, tracked: Detections, changes: list, plate_changes: list, raw: Detections | None = None
    ) -> tuple[list, list]:
        """Feed the frame to the media recorder (clip buffer, tile) and add what was recorded to
        the alarm starts (``snapshot_id``, ``clip_id``, ``recording``; vigil.edge.media). ``raw``:
        the frame's detections before tracking (``None`` on a carried frame), masked as well."""
        self._last_tracked, self.last_raw = tracked, raw
        overlay = self.plates.overlay(frame.timestamp) if self.plates is not None else ()
        pairs = sorted(self.open_pairs)
        self.media.observe(frame.image, frame.timestamp, tracked, pairs, overlay, raw=raw)
        note = self.media.annotate
        return (
            note(changes, frame.image, frame.index, tracked, pairs, overlay, raw=raw),
            note(plate_changes, frame.image, frame.index, tracked, pairs, overlay, raw=raw),
        )

    def finish(self, frame: Frame | None) -> tuple[list[Event], list]:
        """End every open alarm at the end of the stream; wait for the clips being written."""
        if self.voice is not None:
            self.voice.close()
        if frame is None:  # nothing was processed: only stop the plate reader's thread
            if self.plates is not None:
                self.plates.flush()
            self.media.close()
            return [], []
        changes = self.engine.flush(frame.timestamp)
        self.open_pairs.clear()
        events = [self._event(ch, frame) for ch in changes]
        events.extend(self._heatmap_events(frame, final=True))
        if self.plates is not None:
            tracked = self._last_tracked if self._last_tracked is not None else Detections.empty()
            flushed = self.media.annotate(self.plates.flush(), frame.image, frame.index, tracked)
            events.extend(self._event(ch, frame) for ch in flushed)
        self.media.close()
        if self.health is not None:
            events.extend(self._event(ch, frame) for ch in self.health.flush(frame.timestamp))
        return events, changes


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
    status: Callable[[dict], None] | None = None,
    status_interval_s: float = 1.0,
    seq_start: int = 0,
    realtime: bool = False,
    realtime_start: float | None = None,
) -> RunReport:
    """Run one camera to the end of its source; see the module docstring.

    ``seq_start``: the camera's last event sequence number from an earlier run (events
    continue at ``seq_start + 1``). ``status``: called about every ``status_interval_s`` from a reporter thread with a
    snapshot dict (see :class:`StatusReporter`), also while the source is down; it also
    interrupts a live source's wait when ``stop()`` turns true. ``realtime``: replay a recorded
    file at its frame rate as a live camera (frames it is too slow for are dropped and counted
    in ``stale_dropped``; ``max_frames`` then counts the frames offered), frame 0 due at the
    UNIX time ``realtime_start`` (see :class:`vigil.edge.sources.FileSource`).
    """
    replay = {"realtime": True, "start_at": realtime_start, "max_frames": max_frames} if realtime else {}
    src = open_source(source or camera.source, fps=camera.fps, loop=camera.loop, **replay)
    fps = getattr(src, "fps", None) or camera.fps or 25.0
    pipeline = CameraPipeline(node, camera, fps=fps, detector=detector, seq_start=seq_start)
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
    if recorded and write_media and node.output.annotated_video and node.output.media.record:
        video = AnnotatedVideo(
            out_dir / f"{camera.name}.annotated.mp4",
            fps,
            (src.width, src.height),
            pipeline.class_names,
            scene=pipeline.scene,
            mask=lambda image, tracked: pipeline.media.mask(image, tracked, raw=pipeline.last_raw),
        )

    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415 - a progress bar: never in a supervised worker

        bar = tqdm(total=total, unit="frame", desc=camera.name, disable=None, leave=False)

    def emit(events: list[Event]) -> None:
        for ev in events:
            for sink in sinks:
                sink.publish(ev)
        report.events += len(events)

    ok = False
    last: Frame | None = None
    wall0 = time.perf_counter()
    reporter = (
        StatusReporter(camera.name, report, pipeline, src, sinks, status, status_interval_s, stop) if status else None
    )
    try:
        if reporter is not None:
            reporter.start()
        it = iter(src)
        while True:
            if stop is not None and stop():
                break
            if max_frames is not None and report.frames >= max_frames:
                break
            td = time.perf_counter() - getattr(src, "paced_wait_s", 0.0)  # a real-time replay's wait is not decoding
            frame = next(it, None)
            pipeline.stage_s["decode"] += time.perf_counter() - getattr(src, "paced_wait_s", 0.0) - td
            if frame is None:
                break
            last = frame
            tracked, events, changes = pipeline.process(frame)
            emit(events)
            to = time.perf_counter()
            report.violations += sum(1 for c in changes if c.state == "start" and c.rule == "distance")
            if mot is not None:
                mot.write(frame.index, tracked[np.isin(tracked.class_id, mot_ids)])
            if birdseye is not None:
                birdseye.add(tracked[np.isin(tracked.class_id, pipeline.rule_classes)])
                for c in changes:
                    if c.state == "start" and c.rule == "distance":
                        pa, pb = (c.positions[k] for k in c.pair)
                        birdseye.add_violation(pa, pb)
            if video is not None:
                video.write(
                    frame.image,
                    tracked,
                    sorted(pipeline.open_pairs),
                    label=f"{camera.name}  frame {frame.index}  t={frame.timestamp:.1f}s",
                    plates=pipeline.plates.overlay(frame.timestamp) if pipeline.plates is not None else (),
                )
            pipeline.stage_s["outputs"] += time.perf_counter() - to
            report.frames += 1
            report.last_frame_monotonic = time.monotonic()
            if events:
                report.last_event_monotonic = report.last_frame_monotonic
            if bar is not None:
                bar.update(1)
        events, _ = pipeline.finish(last)
        emit(events)
        ok = True
    finally:
        if reporter is not None:
            reporter.finish("finished" if ok else "failed")
        if bar is not None:
            bar.close()
        src.close()
        report.wall_s = time.perf_counter() - wall0
        report.corrupt_skipped = src.stats.corrupt_skipped
        report.stale_dropped = src.stats.stale_dropped
        report.stage_s = dict(pipeline.stage_s)
        report.tracks = len(pipeline.track_ids)
        if pipeline.health is not None:
            report.health = dict(pipeline.health.episodes)
        if pipeline.voice is not None:
            report.voice_failures = pipeline.voice.failures
        if mot is not None:
            mot.close(ok)
            if ok:
                report.outputs["mot"] = str(mot.path)
        if video is not None:
            video.close(ok)
            if ok:
                report.outputs["annotated_video"] = str(video.path)
        if ok and recorded and write_media and pipeline.engine.heatmap is not None:
            files = pipeline.engine.heatmap.save(out_dir / f"{camera.name}.heatmap")
            report.outputs.update({f"heatmap_{k}": v for k, v in files.items()})
        if birdseye is not None and ok:
            report.outputs["birdseye"] = str(birdseye.save(out_dir / f"{camera.name}.birdseye.png", title=camera.name))
    return report


class StatusReporter:
    """A thread that snapshots a running camera every ``interval_s`` and hands it to ``sink``.

    Snapshot keys: ``camera``, ``state`` (``running`` | ``connecting`` | ``finished`` |
    ``failed``), ``pid``, ``updated`` (UNIX time), ``frames``, ``fps`` (over the last
    interval), ``stages_ms`` (mean per frame over the last interval), ``corrupt_frames``,
    ``stale_dropped``, ``reconnects``, ``connected``, ``events``, ``outbox_depth`` (events not
    yet acknowledged), ``queue_depth`` (frames waiting in a shared detector), ``seconds_since_frame``,
    ``seconds_since_event``; with the stream-health check (on by default) ``health`` (``ok`` |
    ``blank`` | ``frozen`` | ``garbled`` | ``no_detections``), ``health_s`` (stream seconds in
    that state, null while ok), ``health_checks``, ``health_measures``; with voice reminders
    ``voice_spoken``, ``voice_skipped``, ``voice_failures``, ``voice_last_failure``; with plate
    reading also ``plate_queue_depth``, ``plate_queued``, ``plate_dropped``, ``plate_processed``,
    ``plate_errors``.
    """

    def __init__(
        self,
        camera: str,
        report: RunReport,
        pipeline: CameraPipeline,
        src,
        sinks,
        sink: Callable[[dict], None],
        interval_s: float,
        stop,
    ) -> None:
        self.camera, self.report, self.pipeline, self.src, self.sinks = camera, report, pipeline, src, sinks
        self.sink, self.interval_s, self.stop = sink, interval_s, stop
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"status:{camera}", daemon=True)
        self._t0 = time.monotonic()
        self._last = (self._t0, 0, dict(pipeline.stage_s))

    def start(self) -> None:
        self._thread.start()

    def snapshot(self, state: str | None = None) -> dict:
        now = time.monotonic()
        t_prev, n_prev, st_prev = self._last
        n = self.report.frames
        st = dict(self.pipeline.stage_s)
        dn = n - n_prev
        self._last = (now, n, st)
        connected = getattr(self.src, "connected", True)
        depth = 0
        link: dict = {}
        for s in self.sinks:
            rep = getattr(s, "report", None)
            if callable(rep):
                try:
                    r = rep()
                    depth += int(getattr(r, "pending", 0) or 0)
                    if getattr(r, "link", None) is not None:  # the publisher's link to the aggregator
                        link = {
                            "aggregator_link": r.link,
                            "aggregator_refused": r.refused,
                            "aggregator_refusals": int(r.refusals),
                        }
                except Exception:  # noqa: BLE001 - a status read must never break the worker
                    log.debug("status: outbox depth unavailable", exc_info=True)
        last_frame = self.report.last_frame_monotonic
        last_event = self.report.last_event_monotonic
        return (
            {
                "camera": self.camera,
                "state": state or ("running" if connected else "connecting"),
                "pid": os.getpid(),
                "updated": time.time(),
                "frames": n,
                "fps": round(dn / (now - t_prev), 3) if now > t_prev else 0.0,
                "stages_ms": {k: round(1000.0 * (st[k] - st_prev.get(k, 0.0)) / dn, 3) if dn else 0.0 for k in st},
                "corrupt_frames": self.src.stats.corrupt_skipped,
                "stale_dropped": self.src.stats.stale_dropped,
                "reconnects": self.src.stats.reconnects,
                "connected": bool(connected),
                "events": self.report.events,
                "outbox_depth": depth,
                "queue_depth": int(getattr(self.pipeline.detector, "pending", 0) or 0),
                "seconds_since_frame": round(now - (last_frame or self._t0), 3),
                "seconds_since_event": round(now - last_event, 3) if last_event else None,
            }
            | link
            | self._extra_status()
        )

    def _extra_status(self) -> dict:
        return self._health_status() | self._voice_status() | self._plate_status()

    def _health_status(self) -> dict:
        """``health``, ``health_s``, ``health_checks``, ``health_measures`` (vigil.edge.health)."""
        health = getattr(self.pipeline, "health", None)
        try:
            return health.status() if health is not None else {}
        except Exception:  # noqa: BLE001 - a status read must never break the worker
            log.debug("status: health unavailable", exc_info=True)
            return {}

    def _voice_status(self) -> dict:
        """``voice_spoken``, ``voice_skipped``, ``voice_failures``, ``voice_last_failure`` (voice reminders on)."""
        voice = getattr(self.pipeline, "voice", None)
        try:
            return voice.status() if voice is not None else {}
        except Exception:  # noqa: BLE001 - a status read must never break the worker
            log.debug("status: voice counters unavailable", exc_info=True)
            return {}

    def _plate_status(self) -> dict:
        """``plate_queue_depth``, ``plate_dropped``, ... of the plate OCR thread (cameras reading plates)."""
        plates = getattr(self.pipeline, "plates", None)
        try:
            return plates.status() if plates is not None else {}
        except Exception:  # noqa: BLE001 - a status read must never break the worker
            return {}

    def _run(self) -> None:
        while not self._done.wait(self.interval_s):
            if self.stop is not None and self.stop() and getattr(self.src, "live", False):
                self.src.close()  # wake the main loop if it waits for a frame that will not come
            try:
                self.sink(self.snapshot())
            except Exception:  # noqa: BLE001
                log.warning("status: reporting failed for camera %s", self.camera, exc_info=True)

    def finish(self, state: str) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        try:
            self.sink(self.snapshot(state))
        except Exception:  # noqa: BLE001
            log.warning("status: final report failed for camera %s", self.camera, exc_info=True)
