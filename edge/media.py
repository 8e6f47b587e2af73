"""What happened, in pictures: alarm snapshots, plate clips and live tiles of one camera.

:class:`MediaRecorder` (one per camera worker, configured by ``output.media``,
:class:`~vigil.edge.config_parts.MediaConfig`) is the only writer of camera pictures besides the
replay's annotated video, and every picture it writes is privacy-masked first
(:func:`vigil.privacy.privacy_mask` over the boxes of ``mask_classes``, before the overlay):

- **snapshot** (evidence): at an alarm's start, the frame, masked, with the overlay
  (:func:`vigil.edge.overlay.draw_overlay`), stored in ``evidence_dir`` through
  :class:`vigil.plates.evidence.EvidenceStore` (folder 0700, files 0600, atomic writes); its id goes
  into the start event's payload as ``snapshot_id``. Starts of one frame share one snapshot.
  Camera-health alarms get none (a broken picture shows nothing useful).
- **clip** (evidence): for a plate hit, the last ``clip_s`` seconds before it, from a ring buffer
  of masked frames shrunk to ``clip_max_width_px`` at ``clip_fps`` (memory bound:
  ``ceil(clip_s * clip_fps)`` frames of at most ``clip_max_width_px`` x its height x 3 bytes, about
  28 MB at 3 s, 10 fps, 640x480); written as H.264 MP4 (:mod:`vigil.edge.video`) on a background
  thread, so the video loop never waits for the encoder; ``clip_id`` in the payload (the file
  appears a moment later).
- **tile** (not evidence): every ``tile_interval_s`` of stream time, the masked frame with the
  overlay, shrunk to ``tile_max_width_px``, JPEG quality 70, written atomically over
  ``<tiles_dir>/<camera>.jpg`` (never a history; folder 0700, file 0600).

Masked are the ``mask_classes`` boxes of the tracks and of the frame's raw detections (a person
not yet in a confirmed track is masked too); the overlay draws the tracks, and of the plate reads
only watch-list hits (a no-hit plate is never kept in clear). A failing tile or clip frame is
counted in ``counts["failures"]`` and logged once per cause; it never stops the camera.

Snapshots and clips are kept ``evidence_retention_days`` (purged hourly, like the plate crops).
``record: false`` ("nothing is recorded"): nothing at all is written and every alarm start says
``recording: off``; with ``evidence_dir`` set, starts say ``recording: on``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from vigil.alarm import AlarmChange
from vigil.detectors.detections import Detections
from vigil.edge.overlay import SceneGeometry, draw_overlay
from vigil.edge.video import write_clip
from vigil.fileio import atomic_write_bytes
from vigil.plates.evidence import EvidenceStore
from vigil.privacy import downscale, privacy_mask

log = logging.getLogger(__name__)

__all__ = ["MediaRecorder", "TILE_JPEG_QUALITY", "SNAPSHOT_JPEG_QUALITY"]

#: JPEG quality of live tiles (small, refreshed every second) and of snapshots (evidence)
TILE_JPEG_QUALITY = 70
SNAPSHOT_JPEG_QUALITY = 90
#: how often (seconds, wall clock) the evidence folder is purged of expired snapshots and clips
PURGE_INTERVAL_S = 3600.0


class MediaRecorder:
    """Snapshots, clips and tiles of one camera (module docstring). ``cfg``: ``output.media``;
    ``class_names``: the detector's classes (``mask_classes`` must be among them: ``ValueError``);
    ``scene``: the camera's zones and queue lines for the overlay; ``fps``: the camera's frame
    rate; ``clips``: the camera reads plates against watch lists (no clips otherwise)."""

    def __init__(
        self,
        cfg,
        camera: str,
        class_names: list[str],
        scene: SceneGeometry | None = None,
        fps: float = 25.0,
        clips: bool = False,
    ) -> None:
        unknown = sorted(set(cfg.mask_classes) - set(class_names))
        if unknown:
            raise ValueError(f"output.media.mask_classes: {unknown} are not detector classes ({class_names})")
        self.cfg, self.camera, self.class_names, self.scene = cfg, camera, list(class_names), scene
        self.mask_ids = np.array([i for i, n in enumerate(class_names) if n in set(cfg.mask_classes)], np.int64)
        self.record = bool(cfg.record)
        # blur_faces=False: every picture is privacy-masked (mask_classes) before it reaches the
        # store; a face cascade on each full-frame snapshot would only cost the video loop time
        on = self.record and cfg.evidence_dir is not None
        self.evidence = EvidenceStore(cfg.evidence_dir, blur_faces=False) if on else None
        self.tiles_dir = Path(cfg.tiles_dir) if self.record and cfg.tiles_dir is not None else None
        if self.tiles_dir is not None:
            self.tiles_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.tiles_dir, 0o700)  # tiles show the scene: the service user only
        self.clip_fps = min(float(cfg.clip_fps), float(fps) if fps and fps > 0 else float(cfg.clip_fps))
        n = math.ceil(cfg.clip_s * self.clip_fps) if (clips and self.evidence is not None) else 0
        self._ring: deque[np.ndarray] | None = deque(maxlen=n) if n > 0 else None
        self._ring_next: float | None = None
        self._tile_next: float | None = None
        self._snap: tuple[int, str | None] | None = None  # (frame index, snapshot id) of the last snapshot
        self._purged_at: float | None = None
        self._threads: list[threading.Thread] = []
        self.counts = {"snapshots": 0, "clips": 0, "tiles": 0, "failures": 0}
        self._logged: set[tuple[str, str]] = set()  # (what, cause) already logged: once each

    def _failed(self, what: str, exc: BaseException) -> None:
        """Count one failure writing ``what``; log it once per (``what``, exception type)."""
        self.counts["failures"] += 1
        key = (what, type(exc).__name__)
        if key not in self._logged:
            self._logged.add(key)
            log.warning("%s of camera %s not written: %s (logged once per cause)", what, self.camera, exc)

    @property
    def active(self) -> bool:
        """Whether anything is written (snapshots, clips or tiles)."""
        return self.evidence is not None or self.tiles_dir is not None

    def mask(
        self, image: np.ndarray, tracked: Detections, scale: float = 1.0, raw: Detections | None = None
    ) -> np.ndarray:
        """``image`` with the boxes (pixels, scaled by ``scale``) of ``mask_classes`` masked, in
        ``tracked`` and in ``raw`` (the frame's detections before tracking: a person not yet in a
        confirmed track, or detected with low confidence, is masked too)."""
        if len(self.mask_ids) == 0:
            return image.copy()
        boxes = [np.zeros((0, 4), np.float32)]
        for dets in (tracked, raw):
            if dets is None or len(dets) == 0:
                continue
            rows = np.isin(dets.class_id, self.mask_ids)
            boxes.append(np.asarray(dets.xyxy, np.float32)[rows])
            visible = dets.data.get("visible_xyxy")  # amodal boxes: also the detector's own boxes
            if visible is not None:
                boxes.append(np.asarray(visible, np.float32)[rows])
        boxes = np.vstack(boxes)
        if len(boxes) == 0:
            return image.copy()
        return privacy_mask(image, boxes * scale, self.cfg.mask)

    def picture(self, image, tracked, violating=(), plates=(), label: str = "", raw=None) -> np.ndarray:
        """The masked frame (``tracked`` and ``raw`` masked) with the overlay of ``tracked``, full
        size (BGR). Of ``plates`` (box, text, hit) only watch-list hits are drawn (privacy: a
        no-hit plate is never kept in clear)."""
        hits = [p for p in plates if p[2]]
        return draw_overlay(
            self.mask(image, tracked, raw=raw), tracked, list(violating), self.class_names, label, hits, self.scene
        )

    # ------------------------------------------------------------------------ per frame
    def observe(
        self, image, timestamp_s: float, tracked: Detections, violating=(), plates=(), raw: Detections | None = None
    ) -> None:
        """Feed one frame: the clip ring buffer and, when due, the camera's tile. ``raw``: the
        frame's detections before tracking (masked as well), ``None`` when none ran."""
        if self._ring is not None and (self._ring_next is None or timestamp_s >= self._ring_next):
            self._ring_next = timestamp_s + 1.0 / self.clip_fps
            try:
                small, s = downscale(image, self.cfg.clip_max_width_px)
                small = self.mask(small, tracked, s, raw)
                if small.shape[0] % 2 or small.shape[1] % 2:  # H.264 4:2:0 wants even sizes
                    small = np.ascontiguousarray(small[: small.shape[0] // 2 * 2, : small.shape[1] // 2 * 2])
                self._ring.append(small)
            except Exception as exc:  # noqa: BLE001 - a clip frame must never stop the camera
                self._failed("clip frame", exc)
        if self.tiles_dir is not None and (self._tile_next is None or timestamp_s >= self._tile_next):
            self._tile_next = timestamp_s + self.cfg.tile_interval_s
            self._write_tile(image, tracked, violating, plates, timestamp_s, raw)
        if self.evidence is not None:
            self.purge_if_due()

    def _write_tile(self, image, tracked, violating, plates, timestamp_s: float, raw=None) -> None:
        try:
            pic = self.picture(image, tracked, violating, plates, raw=raw)
            tile, _ = downscale(pic, self.cfg.tile_max_width_px)
            ok, buf = cv2.imencode(".jpg", tile, [cv2.IMWRITE_JPEG_QUALITY, TILE_JPEG_QUALITY])
            if not ok:
                raise OSError("cannot encode the tile")
            path = atomic_write_bytes(self.tiles_dir / f"{self.camera}.jpg", buf.tobytes())
            os.chmod(path, 0o600)  # the folder is 0700: nobody else saw the file before this
            self.counts["tiles"] += 1
        except Exception as exc:  # noqa: BLE001 - a tile must never stop the camera
            self._failed("tile", exc)

    # ------------------------------------------------------------------------ alarms
    def annotate(
        self,
        changes: list[AlarmChange],
        image,
        frame_index: int,
        tracked: Detections,
        violating=(),
        plates=(),
        raw: Detections | None = None,
    ) -> list[AlarmChange]:
        """``changes`` with what was recorded added to each start's ``extra`` (``snapshot_id``,
        ``clip_id`` for plate hits, ``recording``); other changes unchanged. ``raw``: the frame's
        detections before tracking (masked as well)."""
        out = []
        for ch in changes:
            if ch.state != "start" or ch.rule == "health":
                out.append(ch)
                continue
            extra = dict(ch.extra)
            if not self.record:
                extra["recording"] = "off"
            elif self.evidence is not None:
                extra["recording"] = "on"
                sid = self._snapshot(ch, image, frame_index, tracked, violating, plates, raw)
                if sid is not None:
                    extra["snapshot_id"] = sid
                if ch.event_type == "plate_hit":
                    cid = self._clip(ch)
                    if cid is not None:
                        extra["clip_id"] = cid
            out.append(replace(ch, extra=extra) if extra != dict(ch.extra) else ch)
        return out

    def _snapshot(self, ch: AlarmChange, image, frame_index: int, tracked, violating, plates, raw=None) -> str | None:
        if self._snap is not None and self._snap[0] == frame_index:
            return self._snap[1]
        sid = None
        try:
            pic = self.picture(image, tracked, violating, plates, raw=raw)
            sid = self.evidence.put(
                pic, camera=self.camera, kind="snapshot", alarm_id=ch.alarm_id, type=ch.event_type, frame=frame_index
            )
            self.counts["snapshots"] += 1
        except Exception as exc:  # noqa: BLE001 - evidence must never stop the alarm
            self.counts["failures"] += 1
            log.warning("snapshot of camera %s not stored: %s", self.camera, exc)
        self._snap = (frame_index, sid)
        return sid

    def _clip(self, ch: AlarmChange) -> str | None:
        if self._ring is None or not self._ring:
            return None
        frames = list(self._ring)
        if any(f.shape != frames[-1].shape for f in frames):
            frames = [f for f in frames if f.shape == frames[-1].shape]
        cid = self.evidence.new_id()
        meta = {"camera": self.camera, "kind": "clip", "alarm_id": ch.alarm_id, "type": ch.event_type}

        def write() -> None:
            try:
                self.evidence.put_file(cid, ".mp4", lambda tmp: write_clip(tmp, frames, self.clip_fps), **meta)
                self.counts["clips"] += 1
            except Exception as exc:  # noqa: BLE001 - evidence must never stop the camera
                self.counts["failures"] += 1
                log.warning("clip of camera %s not stored: %s", self.camera, exc)

        t = threading.Thread(target=write, name=f"clip:{self.camera}", daemon=True)
        t.start()
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        return cid

    # ------------------------------------------------------------------------ retention, end
    def purge_if_due(self, now: float | None = None) -> int | None:
        """Delete snapshots and clips older than ``evidence_retention_days`` when an hour has passed
        since the last purge (or none ran yet); the number deleted, ``None`` when not due."""
        now = time.time() if now is None else float(now)
        if self.evidence is None or (self._purged_at is not None and 0 <= now - self._purged_at < PURGE_INTERVAL_S):
            return None
        self._purged_at = now
        try:
            n = self.evidence.purge(self.cfg.evidence_retention_days * 86400.0, now=now)
        except OSError as exc:
            log.error("retention: evidence purge failed on camera %s (%s): %s", self.camera, self.evidence.folder, exc)
            return None
        if n:
            log.info("retention: %d snapshots/clips older than %g days deleted", n, self.cfg.evidence_retention_days)
        return n

    def close(self, timeout_s: float = 30.0) -> None:
        """Wait (up to ``timeout_s`` each) for the clips still being written."""
        for t in self._threads:
            t.join(timeout=timeout_s)
        self._threads = []
