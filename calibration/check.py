"""``vigil calibrate check``: see at a glance whether a calibration puts the ground right.

:func:`render_check` returns one image: on the left the camera frame with a metric grid
(1 m lines, thicker every 5 m, labelled; the world axes in red/green) projected through
the camera model; on the right a bird's-eye view of the same frame warped onto the ground
(north-up: +y up, +x right) with the same grid. Straight, evenly spaced grid lines on flat
pavement, people standing upright in the warp with their feet on the right spot, and
paving joints parallel to the grid mean the calibration is right.

Both views use the model's own ``ground_to_image`` (lens distortion included), so the
warp is exact for every model, not only homographies.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vigil.geometry.camera import CalibrationError, CameraModel

__all__ = ["ground_extent", "polyline_segments", "render_birdseye", "render_check", "draw_grid"]


def ground_extent(
    camera: CameraModel, image_size: tuple[int, int], max_range_m: float = 60.0, max_m_per_px: float = 0.25
) -> tuple[float, float, float, float]:
    """``(xmin, xmax, ymin, ymax)`` metres of the ground the frame shows usefully.

    Only pixels whose ground footprint is below ``max_m_per_px`` count (far ground near the
    horizon would stretch the view without showing anything measurable); robust
    percentiles, capped at ``max_range_m`` from the median.
    """
    w, h = image_size
    us, vs = np.meshgrid(np.linspace(0, w - 1, 64), np.linspace(0, h - 2, 48))
    px = np.c_[us.ravel(), vs.ravel()]
    g = camera.image_to_ground(px)
    step = np.linalg.norm(camera.image_to_ground(px + [0.0, 1.0]) - g, axis=1)
    g = g[np.all(np.isfinite(g), axis=1) & (step <= max_m_per_px)]
    if len(g) < 10:
        raise CalibrationError("the calibration maps almost none of the frame onto the ground; is it for this camera?")
    centre = np.median(g, axis=0)
    g = g[np.linalg.norm(g - centre, axis=1) <= max_range_m]
    lo = np.percentile(g, 2, axis=0)
    hi = np.percentile(g, 98, axis=0)
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def polyline_segments(px: np.ndarray, image_size) -> list[np.ndarray]:
    """Split an ``(N, 2)`` pixel polyline into the runs of finite points near the frame
    (within 4 frame sizes), each ``(M, 2)`` with ``M >= 2``."""
    w, h = image_size
    ok = np.all(np.isfinite(px), axis=1) & (np.abs(px[:, 0]) < 4 * w) & (np.abs(px[:, 1]) < 4 * h)
    segs, cur = [], []
    for p, good in zip(px, ok):
        if good:
            cur.append(p)
        elif cur:
            segs.append(np.array(cur))
            cur = []
    if cur:
        segs.append(np.array(cur))
    return [s for s in segs if len(s) >= 2]


def draw_grid(
    image: np.ndarray, to_px, extent, step: float = 1.0, major: int = 5, labels: bool = True, minor_alpha: float = 1.0
) -> np.ndarray:
    """Draw ground grid lines on ``image``; ``to_px`` maps (N,2) metres -> (N,2) pixels of ``image``."""

    out = image.copy()
    h, w = out.shape[:2]
    xmin, xmax, ymin, ymax = extent
    x0, x1 = math.floor(xmin / step) * step, math.ceil(xmax / step) * step
    y0, y1 = math.floor(ymin / step) * step, math.ceil(ymax / step) * step
    overlay = out.copy()
    for axis in (0, 1):
        values = np.arange(x0 if axis == 0 else y0, (x1 if axis == 0 else y1) + step / 2, step)
        for val in values:
            t = np.linspace(y0, y1, 200) if axis == 0 else np.linspace(x0, x1, 200)
            pts = np.c_[np.full_like(t, val), t] if axis == 0 else np.c_[t, np.full_like(t, val)]
            is_axis = abs(val) < 1e-9
            is_major = abs(val / (step * major) - round(val / (step * major))) < 1e-6
            colour = (
                ((0, 0, 255) if axis == 1 else (0, 200, 0))
                if is_axis
                else ((0, 255, 255) if is_major else (255, 255, 0))
            )
            thick = 2 if (is_axis or is_major) else 1
            if not (is_axis or is_major) and minor_alpha <= 0:
                continue
            for seg in polyline_segments(to_px(pts), (w, h)):
                cv2.polylines(
                    overlay, [np.round(seg * 16).astype(np.int32)], False, colour, thick, cv2.LINE_AA, shift=4
                )
    out = cv2.addWeighted(overlay, 0.75, out, 0.25, 0)
    if labels:
        xs = np.arange(math.ceil(x0 / (step * major)) * step * major, x1 + 1e-9, step * major)
        ys = np.arange(math.ceil(y0 / (step * major)) * step * major, y1 + 1e-9, step * major)
        for x in xs:
            for y in ys:
                p = to_px(np.array([[x, y]]))[0]
                if np.all(np.isfinite(p)) and 0 <= p[0] < w - 40 and 12 <= p[1] < h:
                    org = (int(p[0]) + 3, int(p[1]) - 3)
                    cv2.putText(out, f"{x:g},{y:g}", org, cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 3, cv2.LINE_AA)
                    cv2.putText(
                        out, f"{x:g},{y:g}", org, cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA
                    )
    return out


def render_birdseye(frame: np.ndarray, camera: CameraModel, extent, px_per_m: float) -> tuple[np.ndarray, callable]:
    """Warp ``frame`` onto the ground: +x right, +y up. Returns the image and metres -> its pixels."""

    xmin, xmax, ymin, ymax = extent
    bw = max(2, int(round((xmax - xmin) * px_per_m)))
    bh = max(2, int(round((ymax - ymin) * px_per_m)))
    cols, rows = np.meshgrid(np.arange(bw), np.arange(bh))
    gx = xmin + (cols + 0.5) / px_per_m
    gy = ymax - (rows + 0.5) / px_per_m
    src = camera.ground_to_image(np.c_[gx.ravel(), gy.ravel()]).astype(np.float32)
    src[~np.all(np.isfinite(src), axis=1)] = -1.0
    mapx = src[:, 0].reshape(bh, bw)
    mapy = src[:, 1].reshape(bh, bw)
    bird = cv2.remap(frame, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(40, 40, 40))

    def to_px(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, np.float64).reshape(-1, 2)
        return np.c_[(m[:, 0] - xmin) * px_per_m, (ymax - m[:, 1]) * px_per_m]

    return bird, to_px


def render_check(
    frame: np.ndarray, camera: CameraModel, *, extent=None, step: float = 1.0, title: str | None = None
) -> np.ndarray:
    """Frame with the metric grid | bird's-eye warp with the same grid, side by side (BGR)."""

    h, w = frame.shape[:2]
    if camera.image_size is not None and tuple(camera.image_size) != (w, h):
        raise CalibrationError(
            f"calibration is for {camera.image_size[0]}x{camera.image_size[1]} frames but the frame is {w}x{h}"
        )
    extent = extent or ground_extent(camera, (w, h))
    left = draw_grid(frame, camera.ground_to_image, extent, step)
    span_x, span_y = extent[1] - extent[0], extent[3] - extent[2]
    px_per_m = h / max(span_y, 1e-6)
    if span_x * px_per_m > 2 * w:
        px_per_m = 2 * w / span_x
    bird, to_px = render_birdseye(frame, camera, extent, px_per_m)
    bird = draw_grid(bird, to_px, extent, step, minor_alpha=0.0)
    canvas = np.full((max(h, bird.shape[0]) + 28, w + 8 + bird.shape[1], 3), 24, np.uint8)
    canvas[28 : 28 + h, :w] = left
    canvas[28 : 28 + bird.shape[0], w + 8 :] = bird
    head = title or "calibration check"
    cv2.putText(
        canvas,
        f"{head}: grid {step:g} m (yellow every {5 * step:g} m; red x-axis y=0, green y-axis x=0)",
        (6, 19),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    cv2.putText(
        canvas,
        f"bird's-eye, +x right, +y up, {px_per_m:.1f} px/m",
        (w + 14, 19),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return canvas
