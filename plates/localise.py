"""Plate localisation: text lines → plate quadrilaterals, and rectification to a frontal view.

A text detector (PP-OCR's DB) finds text fragments; a plate is not a text fragment. This module
turns fragments into plates:

1. :func:`group_lines`: fragments on one row with a small gap (a plate split by its hyphen,
   emblem or inspection sticker) are joined into one text line; lines stacked right above one
   another with the same width class (motorcycle, moped and square plates) into one two-line
   group.
2. :func:`plate_quad`: around a group, the plate's four edges are searched in the image's
   gradients, in the group's own rotated frame: the top and bottom edges as the strongest rows of
   vertical gradient just outside the character rows (fitted separately on the left and right
   halves, so that a plate under yaw gets converging edges), the left and right edges as the
   outermost strong columns of horizontal gradient beyond the characters (the blue EU band
   included). Where an edge is not found, the plate geometry prior stands in for it (character
   height ≈ 0.72 of the plate's, side margins ≈ 0.3 character heights, the band ≈ 0.5).
3. :func:`rectify`: the quadrilateral is warped to a frontal, upright plate image.
4. :func:`find_band`: the blue EU band (left) and the Italian right-hand band, located in the
   rectified plate by colour, so that the reader can cut them off and read the band letters
   separately; :func:`find_top_band`: the blue band across the top of a Mercosul plate, whose
   presence tells the Mercosul format from the older one of the same country.

All coordinates are image pixels; quads are ``(4, 2) float32`` corners tl, tr, br, bl.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .ocr import TextBox

__all__ = [
    "TextLine",
    "PlateCandidate",
    "group_lines",
    "plate_quad",
    "top_line_guess",
    "rectify",
    "find_band",
    "find_top_band",
    "quad_size",
    "quad_xyxy",
    "read_quality",
]

#: character height / plate height of a one-line European plate (79 mm / 110 mm)
CHAR_TO_PLATE_H = 0.72


def quad_size(q: np.ndarray) -> tuple[float, float]:
    """(width, height) of a quad tl, tr, br, bl: the means of its top and bottom edges and of
    its left and right edges, pixels."""
    q = np.asarray(q, np.float32)
    w = (np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2
    h = (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2
    return float(w), float(h)


def quad_xyxy(q: np.ndarray) -> tuple[float, float, float, float]:
    """Axis-aligned bounds (x1, y1, x2, y2) of a quad, pixels."""
    q = np.asarray(q, np.float32).reshape(-1, 2)
    return float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())


@dataclass
class TextLine:
    """One text line: an oriented rectangle (centre, width along the text, height, angle in degrees)."""

    center: tuple[float, float]
    width: float
    height: float
    angle: float
    score: float
    parts: int = 1

    @property
    def quad(self) -> np.ndarray:
        """(4, 2) corners tl, tr, br, bl."""
        c, s = np.cos(np.radians(self.angle)), np.sin(np.radians(self.angle))
        u, v = np.array([c, s]) * self.width / 2, np.array([-s, c]) * self.height / 2
        m = np.array(self.center)
        return np.array([m - u - v, m + u - v, m + u + v, m - u + v], np.float32)


@dataclass
class PlateCandidate:
    """A plate hypothesis: its quad, its text lines (top to bottom) and how it was found."""

    quad: np.ndarray
    lines: list[TextLine]
    score: float
    edges_found: int = 0  #: how many of the four edges came from the image (the rest: the prior)

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return quad_xyxy(self.quad)


def _as_line(box: TextBox) -> TextLine:
    q = box.quad.astype(np.float32)
    top, left = (q[1] - q[0]), (q[3] - q[0])
    w, h = float(np.linalg.norm(top)), float(np.linalg.norm(left))
    ang = float(np.degrees(np.arctan2(top[1], top[0])))
    if h > w * 1.5:  # a vertical line: not a plate's text (plates are read upright)
        w, h = h, w
        ang += 90.0
    if ang > 90:
        ang -= 180
    elif ang < -90:
        ang += 180
    c = q.mean(0)
    return TextLine((float(c[0]), float(c[1])), w, h, ang, box.score)


def _join(a: TextLine, b: TextLine) -> TextLine:
    qa, qb = a.quad, b.quad
    pts = np.vstack([qa, qb])
    ang = np.radians((a.angle * a.width + b.angle * b.width) / (a.width + b.width))
    u, v = np.array([np.cos(ang), np.sin(ang)]), np.array([-np.sin(ang), np.cos(ang)])
    pu, pv = pts @ u, pts @ v
    cu, cv = (pu.min() + pu.max()) / 2, (pv.min() + pv.max()) / 2
    c = u * cu + v * cv
    return TextLine(
        (float(c[0]), float(c[1])),
        float(pu.max() - pu.min()),
        float(max(a.height, b.height)),
        float(np.degrees(ang)),
        max(a.score, b.score),
        a.parts + b.parts,
    )


def _frame(line: TextLine) -> tuple[np.ndarray, np.ndarray]:
    a = np.radians(line.angle)
    return np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])


def group_lines(boxes: list[TextBox], max_gap: float = 1.6) -> list[list[TextLine]]:
    """Fragments → text lines → groups of one or two stacked lines (top first).

    Two fragments join into one line when their heights agree within a factor 1.3, their centres
    lie on one row (offset across the text below 0.35 of the taller one's height) and the gap
    along the text is below ``max_gap`` heights (heights within 1.8: a gap below 0.4 heights).
    Every line is a group of its own; a line with another one right below it (horizontal overlap
    > 50 % of the narrower, heights within a factor 1.6, centres one line pitch apart) also forms
    a two-line group. Returns groups sorted by area, largest first.
    """
    lines = [_as_line(b) for b in boxes]
    lines = [ln for ln in lines if ln.height >= 4 and ln.width >= 4]
    # the detector sometimes boxes one text twice (nested boxes): keep the larger
    lines.sort(key=lambda ln: -ln.width * ln.height)
    kept: list[TextLine] = []
    for ln in lines:
        if all(_overlap_of_smaller(ln, k) < 0.6 for k in kept):
            kept.append(ln)
    lines = kept
    merged = True
    while merged and len(lines) > 1:
        merged = False
        lines.sort(key=lambda ln: ln.center[0])
        for i in range(len(lines)):
            for j in range(i + 1, len(lines)):
                a, b = lines[i], lines[j]
                ratio = max(a.height, b.height) / max(1e-6, min(a.height, b.height))
                if ratio > 1.8:
                    continue
                u, v = _frame(a if a.width >= b.width else b)
                d = np.subtract(b.center, a.center)
                h = max(a.height, b.height)
                if abs(d @ v) > 0.35 * h:
                    continue
                gap = abs(d @ u) - (a.width + b.width) / 2
                # equal heights: the parts of one plate line; up to 1.8: a smaller prefix right
                # beside the series (the red POLIZIA of a police plate), nearly touching it
                if gap > (max_gap if ratio <= 1.3 else 0.4) * h:
                    continue
                lines[i] = _join(a, b)
                del lines[j]
                merged = True
                break
            if merged:
                break
    groups: list[list[TextLine]] = [[ln] for ln in lines]
    for a in lines:
        for b in lines:
            if a is b or b.center[1] <= a.center[1]:
                continue
            if max(a.height, b.height) > 1.6 * min(a.height, b.height):
                continue
            ax1, _, ax2, _ = quad_xyxy(a.quad)
            bx1, _, bx2, _ = quad_xyxy(b.quad)
            overlap = min(ax2, bx2) - max(ax1, bx1)
            if overlap < 0.5 * min(ax2 - ax1, bx2 - bx1):
                continue
            # the detector's boxes are grown, so stacked lines' boxes overlap: judge by the
            # distance of the centres (one line pitch: 0.6-1.6 box heights)
            pitch = b.center[1] - a.center[1]
            if not 0.6 * min(a.height, b.height) <= pitch <= 1.6 * max(a.height, b.height):
                continue
            groups.append([a, b])
    groups.sort(key=lambda g: -sum(ln.width * ln.height for ln in g))
    return groups


def _frame_view(
    image: np.ndarray, u: np.ndarray, v: np.ndarray, u0: float, v0: float, scale: float, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``image`` in a rotated, scaled frame: local (x, y) is image point
    ``u * (u0 + x / scale) + v * (v0 + y / scale)``. Returns the ``(2, 3)`` local → image matrix
    and the view, ``size`` = (width, height), float32, smoothed by a 3 × 3 Gaussian."""
    origin = u * u0 + v * v0
    m_inv = np.array([[u[0] / scale, v[0] / scale, origin[0]], [u[1] / scale, v[1] / scale, origin[1]]], np.float32)
    local = cv2.warpAffine(
        image, m_inv, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    ).astype(np.float32)
    return m_inv, cv2.GaussianBlur(local, (3, 3), 0)


def _gradient(view: np.ndarray, dx: int) -> np.ndarray:
    """``|Sobel|`` of ``view`` along x (``dx`` 1) or y (``dx`` 0), the strongest colour channel
    kept: the blue EU band is as dark as a dark car in grey, not in its blue and red channels."""
    g = np.abs(cv2.Sobel(view, cv2.CV_32F, dx, 1 - dx, ksize=3))
    return g.max(2) if g.ndim == 3 else g


def top_line_guess(image: np.ndarray, line: TextLine, min_ink: float = 0.25) -> tuple[TextLine, TextLine] | None:
    """The short top line of a two-line plate right above ``line``, where the text detector found
    none (one or two characters, "L" over "7 DPC", "TN" over "118ZB", are often missed): the two
    lines (top, bottom) split in the middle of the gap between them, or None.

    In ``line``'s own frame, scaled so that its box is 40 px tall, with 1.3 box heights above
    it, a row's ink is its strongest stretch of one character's width (25 px) of horizontal
    gradient, inside the line's inner columns: one character counts as much as five, and a
    plate's side borders (which run on above the text) are left out. Rows reaching ``min_ink``
    of the line's strongest row are inked. The line's own characters are the inked run around
    that row; a second run above it, at least 0.3 box heights tall, at most 0.5 box heights
    above, and ending inside the window, is the top line. A plate's top border (a horizontal
    edge) has little horizontal gradient and is not taken for text. Both lines keep ``line``'s
    angle; the top one spans the columns of strong gradient in its rows, the bottom one keeps
    ``line``'s width.
    """
    u, v = _frame(line)
    hb, wb = float(line.height), float(line.width)
    if hb < 4 or wb < 4:
        return None
    scale = 40.0 / hb
    above = 1.3 * hb
    cu, cv = np.array(line.center) @ u, np.array(line.center) @ v
    u0, v0 = cu - wb / 2, cv - hb / 2 - above
    out_w, out_h = int(np.ceil(wb * scale)), int(np.ceil((hb + above) * scale))
    if out_w < 16 or out_w > 4000:
        return None
    _, local = _frame_view(image, u, v, u0, v0, scale, (out_w, out_h))
    gx = _gradient(local, 1)
    line_top = int(round(above * scale))
    inner = gx[:, int(0.08 * out_w) : max(int(0.08 * out_w) + 2, int(0.92 * out_w))]
    rows = cv2.blur(inner, (25, 1)).max(1)
    if rows[line_top:].size == 0 or float(rows[line_top:].max()) < 8.0:
        return None
    peak = line_top + int(rows[line_top:].argmax())
    ink = rows >= min_ink * float(rows[peak])
    b0 = peak  # the line's characters start here
    while b0 > 0 and ink[b0 - 1]:
        b0 -= 1
    end = b0 - 1  # the gap above them, then the top line's last row
    while end >= 0 and not ink[end]:
        end -= 1
    if end < 0 or b0 - 1 - end > 0.5 * 40:
        return None
    start = end
    while start > 0 and ink[start - 1]:
        start -= 1
    if end - start + 1 < 0.3 * 40 or start == 0:  # too thin, or running off the window: no line
        return None
    cols = gx[start : end + 1].mean(0)
    strong = np.flatnonzero(cols >= 0.35 * float(cols.max()))
    if strong.size < 2 or strong[-1] - strong[0] < 2:  # at least both edges of one stroke ("1", "I")
        return None
    split = (end + 1 + b0) / 2  # the middle of the gap
    margin = split - (end + 1)

    def at(x: float, y: float) -> tuple[float, float]:
        c = u * (x / scale + u0) + v * (y / scale + v0)
        return float(c[0]), float(c[1])

    top_w = (strong[-1] - strong[0]) / scale + 0.5 * hb
    top = TextLine(
        at((strong[0] + strong[-1]) / 2, (start - margin + split) / 2),
        top_w,
        (split - start + margin) / scale,
        line.angle,
        line.score * 0.5,
    )
    y_end = (hb + above) * scale  # the line's own bottom
    bottom = TextLine(at(wb * scale / 2, (split + y_end) / 2), wb, (y_end - split) / scale, line.angle, line.score)
    return top, bottom


def _overlap_of_smaller(a: TextLine, b: TextLine) -> float:
    """Intersection of the two lines' axis-aligned bounds over the smaller one's area."""
    ax1, ay1, ax2, ay2 = quad_xyxy(a.quad)
    bx1, by1, bx2, by2 = quad_xyxy(b.quad)
    ix, iy = max(0.0, min(ax2, bx2) - max(ax1, bx1)), max(0.0, min(ay2, by2) - max(ay1, by1))
    small = min((ax2 - ax1) * (ay2 - ay1), (bx2 - bx1) * (by2 - by1))
    return ix * iy / small if small > 0 else 0.0


def _edge_rows(profile: np.ndarray, lo: int, hi: int) -> int | None:
    """Index of the strongest row in ``profile[lo:hi]`` if it stands out (≥ 1.5× the window's median)."""
    lo, hi = max(0, lo), min(len(profile), hi)
    if hi - lo < 2:
        return None
    seg = profile[lo:hi]
    k = int(np.argmax(seg))
    if seg[k] < 1.5 * max(1e-6, float(np.median(seg))) or seg[k] < 8.0:
        return None
    return lo + k


def _outer_peak(profile: np.ndarray, lo: int, hi: int, outward: int) -> int | None:
    """The outermost column of ``profile[lo:hi]`` reaching 45 % of the window's maximum (a strong
    edge), walking ``outward`` (-1: to the left, +1: to the right)."""
    lo, hi = max(0, lo), min(len(profile), hi)
    if hi - lo < 2:
        return None
    seg = profile[lo:hi]
    m = float(seg.max())
    if m < 1.5 * max(1e-6, float(np.median(seg))) or m < 8.0:
        return None
    idx = np.flatnonzero(seg >= 0.45 * m)
    return lo + int(idx[0] if outward < 0 else idx[-1])


def plate_quad(image: np.ndarray, group: list[TextLine]) -> PlateCandidate:
    """The plate quad around a group of text lines (see the module docstring)."""
    u, v = _frame(max(group, key=lambda ln: ln.width))
    pts = np.vstack([ln.quad for ln in group])
    pu, pv = pts @ u, pts @ v
    box_h = float(pv.max() - pv.min())
    ch0 = float(np.mean([ln.height for ln in group])) * 0.62  # first guess of the character height
    text_w = float(pu.max() - pu.min())
    cu, cv = (pu.min() + pu.max()) / 2, (pv.min() + pv.max()) / 2
    # a local, rotated and scaled frame in which the characters are about 24 px tall
    scale = 24.0 / max(ch0, 1.0)
    half_w = text_w / 2 + 1.6 * ch0
    half_h = box_h / 2 + 1.0 * ch0
    out_w, out_h = int(np.ceil(2 * half_w * scale)), int(np.ceil(2 * half_h * scale))
    if out_w < 16 or out_h < 16 or out_w > 4000 or out_h > 2000:
        return PlateCandidate(_prior_quad(u, v, cu, cv, text_w, box_h, ch0), group, 0.0, 0)
    m_inv, local = _frame_view(image, u, v, cu - half_w, cv - half_h, scale, (out_w, out_h))
    gy, gx = _gradient(local, 0), _gradient(local, 1)
    # the text's columns: the detector's line, less its grown margin; its rows (one line):
    # where the horizontal gradient (character strokes) is dense inside those columns; two
    # lines of different widths: the grown boxes less their margins
    x_left = int(1.6 * ch0 * scale + 0.15 * 24)
    x_right = int(out_w - 1.6 * ch0 * scale - 0.15 * 24)
    if x_right - x_left < 8:
        return PlateCandidate(_prior_quad(u, v, cu, cv, text_w, box_h, ch0), group, 0.0, 0)
    rows = gx[:, x_left:x_right].mean(1)
    y_box0, y_box1 = int(1.0 * ch0 * scale), int(out_h - 1.0 * ch0 * scale)
    inner = rows[y_box0:y_box1]
    strong = np.flatnonzero(inner >= 0.35 * float(inner.max())) if inner.size and inner.max() > 0 else np.array([])
    if strong.size >= 6 and len(group) == 1:
        t_top, t_bot = y_box0 + float(strong[0]), y_box0 + float(strong[-1])
    else:
        t_top, t_bot = y_box0 + 0.19 * (y_box1 - y_box0), y_box1 - 0.19 * (y_box1 - y_box0)
    c24 = max(8.0, (t_bot - t_top) / max(1, len(group)))  # measured character height, local px
    found = 0.0
    # top and bottom edges on each half (yaw makes them converge)
    halves = []
    mid = (x_left + x_right) // 2
    for x0, x1 in ((x_left, mid), (mid, x_right)):
        prof = gy[:, x0 : max(x0 + 2, x1)].mean(1)
        top = _edge_rows(prof, int(t_top - 0.8 * c24), int(t_top - 0.03 * c24))
        bot = _edge_rows(prof, int(t_bot + 0.03 * c24), int(t_bot + 0.8 * c24))
        halves.append(((x0 + x1) / 2, top, bot))

    def edge_line(which: int, prior: float, text_edge: float) -> tuple[float, float]:
        """(y at x=0, slope) of an edge in the local frame."""
        nonlocal found
        ys = [(h[0], h[which]) for h in halves if h[which] is not None]
        if len(ys) == 2:
            (xa, ya), (xb, yb) = ys
            if abs(ya - yb) <= 0.35 * c24:
                found += 1
                slope = (yb - ya) / max(1e-6, xb - xa)
                return float(ya - slope * xa), float(slope)
            ys = [min(ys, key=lambda p: abs(p[1] - text_edge))]
        if len(ys) == 1:
            found += 0.5
            return float(ys[0][1]), 0.0
        return float(prior), 0.0

    top_b, top_m = edge_line(1, t_top - 0.22 * c24, t_top)
    bot_b, bot_m = edge_line(2, t_bot + 0.22 * c24, t_bot)
    y_lo = int(max(0, min(top_b, top_b + top_m * out_w)))
    y_hi = int(min(out_h, max(bot_b, bot_b + bot_m * out_w)))
    if y_hi - y_lo < 8:
        y_lo, y_hi = int(max(0, t_top)), int(min(out_h, t_bot))
    colp = gx[y_lo:y_hi].mean(0)
    # the windows reach a little inside the text's columns too: a detector box may end at the plate
    left = _outer_peak(colp, int(x_left - 1.4 * c24), int(x_left + 0.3 * c24), -1)
    right = _outer_peak(colp, int(x_right - 0.3 * c24), int(x_right + 0.8 * c24), +1)
    found += (left is not None) + (right is not None)
    xl = float(left) if left is not None else x_left - 0.3 * c24
    xr = float(right) if right is not None else x_right + 0.3 * c24
    local_quad = np.array(
        [[xl, top_b + top_m * xl], [xr, top_b + top_m * xr], [xr, bot_b + bot_m * xr], [xl, bot_b + bot_m * xl]],
        np.float32,
    )
    quad = (np.hstack([local_quad, np.ones((4, 1), np.float32)]) @ m_inv.T).astype(np.float32)
    quad[:, 0] = np.clip(quad[:, 0], 0, image.shape[1] - 1)
    quad[:, 1] = np.clip(quad[:, 1], 0, image.shape[0] - 1)
    return PlateCandidate(quad, group, float(np.mean([ln.score for ln in group])), int(found))


def _prior_quad(u, v, cu, cv, text_w, text_h, ch) -> np.ndarray:
    hw, hh = text_w / 2 + 0.3 * ch, text_h / 2
    c = u * cu + v * cv
    return np.array([c - u * hw - v * hh, c + u * hw - v * hh, c + u * hw + v * hh, c - u * hw + v * hh], np.float32)


def rectify(image: np.ndarray, quad: np.ndarray, height: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A frontal view of ``quad``: (plate image ``height`` px tall keeping the quad's aspect,
    3x3 homography image → plate)."""
    q = np.asarray(quad, np.float32)
    w = max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[3] - q[2]))
    h = max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2]), 1.0)
    out_w = int(np.clip(round(height * w / h), 8, 12 * height))
    dst = np.array([[0, 0], [out_w, 0], [out_w, height], [0, height]], np.float32)
    m = cv2.getPerspectiveTransform(q, dst)
    out = cv2.warpPerspective(image, m, (out_w, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return out, m


def _blue(bgr: np.ndarray, min_sat: int = 90, min_val: int = 40) -> np.ndarray:
    """Blue pixels of a BGR image (bool, same shape less the channels): hue 95-135 (OpenCV's
    0-180 scale), saturation ≥ ``min_sat``, value ≥ ``min_val`` (0-255)."""
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    h = hsv[..., 0]
    return (h >= 95) & (h <= 135) & (hsv[..., 1] >= min_sat) & (hsv[..., 2] >= min_val)


def find_band(plate: np.ndarray, side: str = "left", max_frac: float = 0.2) -> int:
    """Width in pixels of a blue band at the ``side`` of a rectified plate (0 when none).

    Blue: :func:`_blue` (saturation ≥ 90, value ≥ 40); a band column has ≥ 45 % blue pixels;
    the band is the run of such columns from the edge (the first three columns may be the
    plate's frame)."""
    if plate.ndim != 3 or plate.shape[1] < 16:
        return 0
    frac = _blue(plate).mean(0)
    if side == "right":
        frac = frac[::-1]
    limit = int(plate.shape[1] * max_frac)
    start = next((i for i in range(min(4, limit)) if frac[i] >= 0.45), None)
    if start is None:
        return 0
    i = start
    while i < limit and frac[i] >= 0.45:
        i += 1
    return i if i - start >= max(2, plate.shape[0] * 0.15) else 0


#: the window searched for a Mercosul band, in quad heights from the quad's top edge (negative:
#: above it): the quad may be the whole plate (band at its top, 0 to 0.25) or only its
#: characters (band above them, about -0.6 to -0.15)
TOP_BAND_ROWS = (-1.0, 0.5)
#: and its columns, in quad widths: the plate and some of what lies beside it
TOP_BAND_COLUMNS = (-0.35, 1.35)
#: the band's blue (saturation, value; 0-255): the Mercosul band is a vivid mid blue (about
#: RGB 0, 51, 153: saturation 255, value 153), well above a dark bluish car grille in shade
#: (saturation 100-170, value 55-100: the EU band's looser test found such grilles above 9 old
#: grey plates of openalpr-br, seen while measuring)
TOP_BAND_BLUE = (150, 90)


def find_top_band(image: np.ndarray, quad: np.ndarray, rows_per_height: int = 40) -> bool:
    """Whether a blue band runs across the top of the plate ``quad`` (a Mercosul plate's
    "BRASIL" band), BGR ``image`` in pixels.

    The band is searched in the quad's own frame, over the window of :data:`TOP_BAND_ROWS` and
    :data:`TOP_BAND_COLUMNS`, ``rows_per_height`` rows per quad height. A row is blue when
    ≥ 50 % of the quad's inner 80 % of columns is of :data:`TOP_BAND_BLUE` (the band's white
    lettering and flag leave most of it blue). The band is a run of blue rows 0.12 to 0.9 quad
    heights tall that ends above the quad's middle and is bounded: a row above it inside the
    window is not blue, and at its rows the window's outer 6 % on either side is mostly not
    blue (the band ends with the plate; a blue car's body above the plate runs on beside it).
    Grey images (an infrared camera) have no band."""
    if image is None or image.ndim != 3:
        return False
    (v0, v1), (u0, u1) = TOP_BAND_ROWS, TOP_BAND_COLUMNS
    src = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], np.float32)
    unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    to_image = cv2.getPerspectiveTransform(unit, np.asarray(quad, np.float32))
    window = cv2.perspectiveTransform(src.reshape(1, 4, 2), to_image)[0]
    view, _ = rectify(image, window, int(round((v1 - v0) * rows_per_height)))
    blue = _blue(view, *TOP_BAND_BLUE)
    w = blue.shape[1]
    inner = slice(int(w * (0.1 - u0) / (u1 - u0)), max(1, int(w * (0.9 - u0) / (u1 - u0))))
    edge = max(1, int(round(0.06 * w)))
    blue_rows = blue[:, inner].mean(1) >= 0.5
    middle = int(round((0.5 - v0) * rows_per_height))  # the row of the quad's middle
    lo, hi = 0.12 * rows_per_height, 0.9 * rows_per_height
    i = 0
    while i < len(blue_rows):
        if not blue_rows[i]:
            i += 1
            continue
        j = i
        while j < len(blue_rows) and blue_rows[j]:
            j += 1
        if i > 0 and j <= middle and lo <= j - i <= hi:
            band = blue[i:j]
            if band[:, :edge].mean() < 0.3 and band[:, -edge:].mean() < 0.3:
                return True
        i = j
    return False


def read_quality(plate: np.ndarray, quad: np.ndarray) -> float:
    """How much a reading of this plate image is worth in a pass's vote (0..1): the product of
    its size (width / 120 px, capped at 1), its sharpness (variance of the Laplacian of the
    rectified plate ``v``, as ``v / (v + 150)``) and its frontality (shorter / longer of the
    quad's left and right edges: a plate under yaw has one side shorter)."""
    q = np.asarray(quad, np.float32)
    width, _ = quad_size(q)
    hl, hr = float(np.linalg.norm(q[3] - q[0])), float(np.linalg.norm(q[2] - q[1]))
    size = min(1.0, width / 120.0)
    front = min(hl, hr) / max(hl, hr, 1e-6)
    gray = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY) if plate.ndim == 3 else plate
    v = float(cv2.Laplacian(gray, cv2.CV_32F).var()) if gray.size else 0.0
    sharp = v / (v + 150.0)
    return float(np.clip(size * front * sharp, 0.0, 1.0))
