"""Replay outputs: MOTChallenge text, an annotated video and a bird's-eye PNG.

- :class:`MotWriter`: ``frame,id,left,top,width,height,conf,x,y,-1`` per tracked object,
  frames counted from 1 (video frame 0 is frame 1), ``x, y`` the ground position in metres
  in the calibration's world frame (``-1,-1`` where the foot point has no ground position).
- :class:`AnnotatedVideo`: H.264 MP4 with the overlay (zones, queue lines, boxes with track ids,
  ground distance lines of violating pairs), people masked first.
- :class:`BirdsEye`: every track's path on the ground plane (metres, 1 m grid) and every
  violation as a red segment, written once at the end.

All writers write to a temporary name and rename on success, so an interrupted run never
leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from vigil.detectors.detections import Detections
from vigil.edge.overlay import SceneGeometry, draw_overlay, track_colour
from vigil.edge.video import VideoFileWriter
from vigil.fileio import atomic_write

__all__ = ["MotWriter", "AnnotatedVideo", "BirdsEye", "track_colour"]


class _AtomicFile:
    """A file written as a stream under a temporary name and renamed over ``path`` on success.

    :func:`vigil.fileio.atomic_write` takes the whole content at once; the MOT lines and the
    video frames of a replay arrive one frame at a time, so these writers keep the file open.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.part")

    def commit(self) -> None:
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass


class MotWriter(_AtomicFile):
    """MOTChallenge lines for tracked detections (see module docstring)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._fh = open(self.tmp, "w", encoding="ascii")

    def write(self, frame_index: int, tracked: Detections) -> None:
        if len(tracked) == 0:
            return
        world = tracked.data.get("world_xy")
        for i in range(len(tracked)):
            x1, y1, x2, y2 = (float(v) for v in tracked.xyxy[i])
            if world is not None and np.all(np.isfinite(world[i])):
                wx, wy = f"{world[i, 0]:.3f}", f"{world[i, 1]:.3f}"
            else:
                wx, wy = "-1", "-1"
            self._fh.write(
                f"{frame_index + 1},{int(tracked.tracker_id[i])},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
                f"{float(tracked.confidence[i]):.4f},{wx},{wy},-1\n"
            )

    def close(self, ok: bool = True) -> None:
        self._fh.close()
        self.commit() if ok else self.discard()


class AnnotatedVideo(_AtomicFile):
    """A browser-playable MP4 (H.264, yuv420p, +faststart; :mod:`vigil.edge.video`, mp4v without
    PyAV) copy of the replay with the overlay (:func:`vigil.edge.overlay.draw_overlay`: zones,
    queue lines, boxes, ids, violations, plate reads). ``mask``: a function ``(image, tracked) ->
    image`` that hides people first (:func:`vigil.privacy.privacy_mask` on the person boxes);
    ``None``: unmasked."""

    def __init__(
        self,
        path: Path,
        fps: float,
        size: tuple[int, int],
        class_names: list[str],
        scene: SceneGeometry | None = None,
        mask: Callable[[np.ndarray, Detections], np.ndarray] | None = None,
    ) -> None:
        super().__init__(path)
        self.tmp = self.tmp.with_suffix(".mp4")
        self._writer = VideoFileWriter(self.tmp, float(fps), size)
        self.codec = self._writer.codec
        self._names = class_names
        self._scene = scene
        self._mask = mask

    def write(
        self,
        image: np.ndarray,
        tracked: Detections,
        violating: list[tuple[int, int]],
        label: str = "",
        plates: list[tuple[tuple[float, float, float, float], str, bool]] = (),
    ) -> None:
        """``plates``: (box in pixels, text, on a watch list) of the plates read recently,
        drawn as a box with the text above it (red for a list hit, yellow otherwise)."""
        if self._mask is not None:
            image = self._mask(image, tracked)
        self._writer.write(draw_overlay(image, tracked, violating, self._names, label, plates, self._scene))

    def close(self, ok: bool = True) -> None:
        self._writer.close()
        self.commit() if ok else self.discard()


class BirdsEye:
    """Collects ground positions per track; renders a top-down PNG at the end.

    ``pixels_per_m``: drawing scale. The view covers the tracks' extent plus a 1 m margin.
    """

    def __init__(self, pixels_per_m: float = 25.0) -> None:
        self.ppm = float(pixels_per_m)
        self._paths: dict[int, list[tuple[float, float]]] = defaultdict(list)
        self._violations: list[tuple[tuple[float, float], tuple[float, float]]] = []

    def add(self, tracked: Detections) -> None:
        world = tracked.data.get("world_xy")
        if world is None or tracked.tracker_id is None:
            return
        for tid, (x, y) in zip(tracked.tracker_id, world):
            if np.isfinite(x) and np.isfinite(y):
                self._paths[int(tid)].append((float(x), float(y)))

    def add_violation(self, pa: tuple[float, float], pb: tuple[float, float]) -> None:
        self._violations.append((tuple(pa), tuple(pb)))

    def render(self, title: str = "") -> np.ndarray:
        """``(H, W, 3) uint8`` BGR picture; x grows to the right, y grows upwards."""
        pts = [p for path in self._paths.values() for p in path] + [p for seg in self._violations for p in seg]
        if pts:
            arr = np.asarray(pts)
            lo = np.floor(np.percentile(arr, 0.5, axis=0)) - 1.0
            hi = np.ceil(np.percentile(arr, 99.5, axis=0)) + 1.0
        else:
            lo, hi = np.array([0.0, 0.0]), np.array([10.0, 10.0])
        span = np.maximum(hi - lo, 1.0)
        scale = min(self.ppm, 1600.0 / span.max())
        w, h = int(span[0] * scale) + 1, int(span[1] * scale) + 1
        top = 28
        img = np.full((h + top, w, 3), 255, np.uint8)

        def to_px(p) -> tuple[int, int]:
            return int(round((p[0] - lo[0]) * scale)), int(round(top + (hi[1] - p[1]) * scale))

        for gx in np.arange(np.ceil(lo[0]), hi[0] + 1e-9, 1.0):
            c = (200, 200, 200) if int(gx) % 5 else (150, 150, 150)
            cv2.line(img, to_px((gx, lo[1])), to_px((gx, hi[1])), c, 1)
        for gy in np.arange(np.ceil(lo[1]), hi[1] + 1e-9, 1.0):
            c = (200, 200, 200) if int(gy) % 5 else (150, 150, 150)
            cv2.line(img, to_px((lo[0], gy)), to_px((hi[0], gy)), c, 1)
        for tid, path in self._paths.items():
            poly = np.array([to_px(p) for p in path], np.int32).reshape(-1, 1, 2)
            cv2.polylines(img, [poly], False, track_colour(tid), 1, cv2.LINE_AA)
            cv2.putText(
                img, str(tid), to_px(path[-1]), cv2.FONT_HERSHEY_SIMPLEX, 0.35, track_colour(tid), 1, cv2.LINE_AA
            )
        for pa, pb in self._violations:
            cv2.line(img, to_px(pa), to_px(pb), (0, 0, 255), 2, cv2.LINE_AA)
        label = (
            f"{title}  grid 1 m  x {lo[0]:.0f}..{hi[0]:.0f} m, y {lo[1]:.0f}..{hi[1]:.0f} m  "
            f"tracks {len(self._paths)}  violations {len(self._violations)}"
        )
        cv2.putText(img, label.strip(), (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        return img

    def save(self, path: Path, title: str = "") -> Path:
        path = Path(path)
        image = self.render(title)

        def write(tmp: Path) -> None:
            if not cv2.imwrite(str(tmp), image):
                raise OSError(f"{path}: cannot write PNG")

        return atomic_write(path, write)
