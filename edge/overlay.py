"""The scene overlay drawn on every picture Vigil shows: the annotated replay video, live tiles and
alarm snapshots.

:func:`draw_overlay` draws, on a copy of a frame: the camera's zones and queue lines (ground
metres projected into the image through the calibration, :class:`SceneGeometry`), each tracked
box with its id and class, a red line between the two people of every open distance violation,
the plate reads (red: a watch-list hit, yellow otherwise) and a label in the top-left corner.
People are masked (:func:`vigil.privacy.privacy_mask`) by the caller BEFORE this is drawn, so
the boxes and labels stay readable over the mask.
"""

from __future__ import annotations

import cv2
import numpy as np

from vigil.detectors.detections import Detections

__all__ = ["SceneGeometry", "draw_overlay", "track_colour"]

#: BGR colours of zone outlines and queue lines
ZONE_BGR = (255, 200, 0)
QUEUE_BGR = (255, 0, 255)
#: points per polygon edge when projecting ground lines (a lens-distorted edge is a curve)
EDGE_SAMPLES = 12


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per track id."""
    hue = (int(track_id) * 47) % 180
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _project_path(model, points_m, closed: bool) -> list[np.ndarray]:
    """Ground points ``(K, 2)`` metres -> image polylines ``(n, 1, 2) int32`` pixels, each edge
    sampled :data:`EDGE_SAMPLES` times; split where a point has no image position (NaN)."""
    pts = np.asarray(points_m, np.float64)
    if closed:
        pts = np.vstack([pts, pts[:1]])
    t = np.linspace(0.0, 1.0, EDGE_SAMPLES, endpoint=False)[:, None]
    dense = np.vstack([a + t * (b - a) for a, b in zip(pts[:-1], pts[1:])] + [pts[-1:]])
    px = np.asarray(model.ground_to_image(dense), np.float64)
    ok = np.all(np.isfinite(px), axis=1) & np.all(np.abs(px) < 1e5, axis=1)
    out, run = [], []
    for p, good in zip(px, ok):
        if good:
            run.append(p)
        elif run:
            out.append(run)
            run = []
    if run:
        out.append(run)
    return [np.rint(np.array(r)).astype(np.int32).reshape(-1, 1, 2) for r in out if len(r) >= 2]


class SceneGeometry:
    """A camera's zones and queue lines as image polylines, computed once from its calibration.

    ``zones``: objects with ``name``, ``polygon`` (ground ``[x, y]`` metres) and ``queue`` (``None``
    or an object with ``line``: two ground points, metres), i.e. ``CameraConfig.zones``;
    ``model``: the camera model (``ground_to_image``)."""

    def __init__(self, model=None, zones=()) -> None:
        self.zones: list[tuple[str, list[np.ndarray]]] = []
        self.queues: list[list[np.ndarray]] = []
        if model is None:
            return
        for z in zones:
            self.zones.append((z.name, _project_path(model, z.polygon, closed=True)))
            if getattr(z, "queue", None) is not None:
                self.queues.append(_project_path(model, z.queue.line, closed=False))

    def draw(self, canvas: np.ndarray) -> None:
        """Draw the zones (outline and name) and queue lines onto ``canvas`` in place."""
        for name, lines in self.zones:
            cv2.polylines(canvas, lines, False, ZONE_BGR, 2, cv2.LINE_AA)
            if lines:
                x, y = lines[0][0, 0]
                cv2.putText(canvas, name, (int(x) + 4, int(y) - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, ZONE_BGR, 1)
        for lines in self.queues:
            cv2.polylines(canvas, lines, False, QUEUE_BGR, 2, cv2.LINE_AA)


def draw_overlay(
    image: np.ndarray,
    tracked: Detections,
    violating: list[tuple[int, int]],
    class_names: list[str],
    label: str = "",
    plates: list[tuple[tuple[float, float, float, float], str, bool]] = (),
    scene: SceneGeometry | None = None,
) -> np.ndarray:
    """A copy of ``image`` (BGR) with the overlay (module docstring). ``plates``: (box in pixels,
    text, on a watch list) of the plates read recently; ``scene``: the zones and queue lines.
    Boxes are in ``image``'s pixels (draw on the full frame, shrink afterwards)."""
    canvas = image.copy()
    if scene is not None:
        scene.draw(canvas)
    centre = {}
    for i in range(len(tracked)):
        tid = int(tracked.tracker_id[i]) if tracked.tracker_id is not None else -1
        x1, y1, x2, y2 = (int(round(v)) for v in tracked.xyxy[i])
        colour = track_colour(tid)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        cls = int(tracked.class_id[i])
        name = class_names[cls] if 0 <= cls < len(class_names) else str(cls)
        cv2.putText(
            canvas, f"{tid} {name}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA
        )
        centre[tid] = ((x1 + x2) // 2, y2)
    for a, b in violating:
        if a in centre and b in centre:
            cv2.line(canvas, centre[a], centre[b], (0, 0, 255), 2, cv2.LINE_AA)
            cv2.circle(canvas, centre[a], 5, (0, 0, 255), -1)
            cv2.circle(canvas, centre[b], 5, (0, 0, 255), -1)
    for box, text, hit in plates:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        colour = (0, 0, 255) if hit else (0, 220, 255)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 2)
        ty = max(th + 4, y1 - 6)
        cv2.rectangle(canvas, (x1, ty - th - 4), (x1 + tw + 6, ty + 4), (0, 0, 0), -1)
        cv2.putText(canvas, text, (x1 + 3, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2, cv2.LINE_AA)
    if label:
        cv2.putText(canvas, label, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.putText(canvas, label, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
