"""Training samples for Vigil's plate line recogniser: what :func:`.reader.plate_crops` cuts from
a located plate, rendered from scratch with labels known exactly.

This is *not* the evaluation generator (:mod:`.synth`), and it must stay apart from it:

- its typefaces (:data:`.synth_formats.TRAIN_FONT_FILES`) are none of the evaluation's
  (:data:`.synth_formats.TYPEFACES`), so the synthetic evaluation judges the trained model on
  typefaces it never saw;
- it draws no scene: a flat plate (the formats of :mod:`.synth_formats`, which are facts about
  plates) on a plain car body, its glyphs condensed or widened and its strokes made bolder or
  thinner, warped by a random homography to 50-260 px wide, degraded in its own way (defocus,
  motion, gain, infrared grey, noise, JPEG), then located with an error (each corner off by a
  few percent of the plate) and cut exactly as the reader cuts;
- the openalpr sets are never used here.

A sample is one text line: ``(crop, label)`` with ``crop`` the BGR uint8 line crop (any size)
and ``label`` its characters (``0-9A-Z``). All lengths are pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .localise import PlateCandidate
from .reader import plate_crops
from .synth_formats import FOREIGN_COUNTRIES, TRAIN_FONT_FILES, TWO_LINE_KINDS, draw_plate, plate_look, random_plate

__all__ = ["LineSample", "line_samples", "render_lines"]


@dataclass(frozen=True)
class LineSample:
    crop: np.ndarray  #: (h, w, 3) uint8 BGR, as :func:`.reader.plate_crops` cuts it
    label: str  #: the line's characters, 0-9A-Z
    country: str


@dataclass(frozen=True)
class _Quad:
    """A text line for :func:`.reader.plate_crops`: only its quad is used."""

    quad: np.ndarray


def _alnum(s: str) -> str:
    return "".join(c for c in s if c.isalnum())


def _body(rng, h: int, w: int) -> np.ndarray:
    """A car body around the plate: a colour, a vertical gradient, a little texture."""
    base = rng.uniform(10, 245, 3)
    grad = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.1), h, dtype=np.float32)[:, None, None]
    img = base[None, None, :] * grad + rng.normal(0, rng.uniform(1, 10), (h, w, 1))
    if rng.random() < 0.4:  # a bumper edge or grille bar above or below the plate
        y = int(rng.uniform(0.05, 0.95) * h)
        img[y : y + max(1, h // 20)] *= rng.uniform(0.2, 0.6)
    return np.clip(img, 0, 255).astype(np.uint8)


def _smudge(img: np.ndarray, boxes: np.ndarray, rng) -> None:
    """Dirt blotches and, sometimes, a bar over part of one character (a bolt, a frame edge)."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(0, 4))):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        ax = (int(rng.uniform(0.03, 0.2) * w), int(rng.uniform(0.05, 0.4) * h))
        over = img.copy()
        colour = tuple(float(v) for v in rng.uniform(40, 140, 3))
        cv2.ellipse(over, c, ax, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        a = rng.uniform(0.1, 0.45)
        img[:] = cv2.addWeighted(over, a, img, 1 - a, 0)
    if boxes.size and rng.random() < 0.15:
        x0, y0, x1, y1 = boxes[int(rng.integers(0, len(boxes)))]
        bw = max(1, int((x1 - x0) * rng.uniform(0.15, 0.35)))
        bx = int(rng.uniform(x0, max(x0 + 1, x1 - bw)))
        cv2.rectangle(img, (bx, int(y0)), (bx + bw, int(y0 + (y1 - y0) * rng.uniform(0.1, 0.3))), (90, 90, 90), -1)


def _restyle(img: np.ndarray, boxes: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Typeface variety beyond the training faces: glyphs condensed or widened (the plate
    squeezed horizontally by 0.75-1.25) and strokes made bolder or thinner by one pixel of a
    70-120 px plate; ``boxes`` (N, 4) x0, y0, x1, y1 follow the squeeze."""
    k = float(np.exp(rng.uniform(np.log(0.75), np.log(1.25))))
    h, w = img.shape[:2]
    out = cv2.resize(img, (max(8, round(w * k)), h), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    boxes = boxes.astype(np.float32) * np.float32([out.shape[1] / w, 1, out.shape[1] / w, 1])
    r = rng.random()
    if r < 0.2:  # dark glyphs on a light plate: a min filter makes them bolder
        out = cv2.erode(out, np.ones((3, 3), np.uint8))
    elif r < 0.4:
        out = cv2.dilate(out, np.ones((3, 3), np.uint8))
    return out, boxes


def _line_boxes(boxes: np.ndarray, lines: list[str]) -> list[np.ndarray]:
    """The character boxes of each displayed line (boxes are in label order, top line first)."""
    out, i = [], 0
    for ln in lines:
        n = len(_alnum(ln))
        out.append(boxes[i : i + n])
        i += n
    return out


def render_lines(
    rng: np.random.Generator, country: str | None = None, two_line: bool | None = None
) -> list[LineSample]:
    """One plate, posed, degraded, located with an error and cut: its line samples (1 or 2)."""
    if country is None:
        country = "IT" if rng.random() < 0.45 else FOREIGN_COUNTRIES[int(rng.integers(0, len(FOREIGN_COUNTRIES)))]
    if two_line is None:
        two_line = rng.random() < 0.2
    kind = None
    if two_line:
        kinds = TWO_LINE_KINDS.get(country, ("motorcycle",))
        kind = kinds[int(rng.integers(0, len(kinds)))]
    label, kind, lines = random_plate(rng, country, kind)
    faces = tuple(TRAIN_FONT_FILES)
    face = faces[int(rng.integers(0, len(faces)))]
    look = plate_look(country, kind, label.ljust(5, "0"), rng)
    flat = draw_plate(list(lines), country, kind, int(rng.uniform(70, 120)), rng, face, look)
    pimg, boxes = _restyle(flat.image, flat.boxes, rng)
    if rng.random() < 0.35:
        _smudge(pimg, boxes, rng)
    ph, pw = pimg.shape[:2]
    # the plate on a body, margin half a plate height; the tight-crop case keeps the characters only
    tight = rng.random() < 0.08
    m = int(0.5 * ph)
    canvas = _body(rng, ph + 2 * m, pw + 2 * m)
    canvas[m : m + ph, m : m + pw] = pimg
    plate_q = np.float32([[m, m], [m + pw, m], [m + pw, m + ph], [m, m + ph]])
    # pose: foreshortening of one side (yaw), rotation, shear; then the plate's width in the image
    yaw_k = rng.uniform(0.55, 1.0) if rng.random() < 0.5 else 1.0
    tgt_w = float(np.exp(rng.uniform(np.log(50), np.log(260))))
    if len(lines) > 1:
        tgt_w *= 0.6
    s = tgt_w / pw
    ang = np.radians(rng.normal(0, 5))
    shear = rng.normal(0, 0.12)
    c, si = np.cos(ang), np.sin(ang)
    a = np.array([[c, -si], [si, c]]) @ np.array([[1, shear], [0, 1]]) * s
    pts = (plate_q - plate_q.mean(0)) @ a.T
    side = 1 if rng.random() < 0.5 else 2  # which edge is farther (right or left)
    if side == 1:
        pts[[1, 2], 1] = pts[[1, 2], 1] * yaw_k
    else:
        pts[[0, 3], 1] = pts[[0, 3], 1] * yaw_k
    pts[:, 0] *= 0.85 + 0.15 * yaw_k
    src_all = np.float32([[0, 0], [canvas.shape[1], 0], [canvas.shape[1], canvas.shape[0]], [0, canvas.shape[0]]])
    hm = cv2.getPerspectiveTransform(plate_q, pts.astype(np.float32))
    corners = cv2.perspectiveTransform(src_all.reshape(1, 4, 2), hm)[0]
    lo = corners.min(0)
    t = np.array([[1, 0, -lo[0]], [0, 1, -lo[1]], [0, 0, 1]], np.float64)
    hm = t @ hm
    size = np.ceil(corners.max(0) - lo).astype(int) + 1
    # anti-alias before shrinking (what a lens and a sensor do)
    src = cv2.GaussianBlur(canvas, (0, 0), max(0.01, 0.45 / s)) if s < 0.8 else canvas
    img = cv2.warpPerspective(
        src, hm, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    quad = cv2.perspectiveTransform(plate_q.reshape(1, 4, 2), hm)[0]
    ch_px = ph * 0.5 * s
    # photometry: defocus or motion, gain and offset, infrared grey, noise, JPEG
    r = rng.random()
    if r < 0.25:
        k = int(np.clip(rng.uniform(0.08, 0.25) * ch_px, 2, 15))
        ker = np.zeros((k, k), np.float32)
        ker[k // 2, :] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(-20, 20)), 1.0)
        ker = cv2.warpAffine(ker, rot, (k, k))
        img = cv2.filter2D(img, -1, ker / max(ker.sum(), 1e-6))
    elif r < 0.7:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.1))
    f = img.astype(np.float32)
    if rng.random() < 0.25:  # infrared: grey, the retroreflective plate bright
        g = f.mean(2, keepdims=True) * rng.uniform(0.6, 1.3)
        f = np.repeat(g, 3, 2)
    f = f * rng.uniform(0.35, 1.15) + rng.uniform(-25, 25)
    f += rng.normal(0, rng.uniform(1, 8), f.shape[:2])[..., None]
    img = np.clip(f, 0, 255).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 95))])
    img = cv2.imdecode(enc, cv2.IMREAD_COLOR) if ok else img
    # located with an error: each corner off by a few percent, the whole quad a little loose or tight
    if tight:
        b = boxes
        bx0, by0, bx1, by1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
        cq = np.float32([[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]])
        quad = cv2.perspectiveTransform((cq + m).reshape(1, 4, 2), hm)[0]
    qh = float(np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
    ctr = quad.mean(0)
    quad = ctr + (quad - ctr) * np.array([rng.uniform(0.95, 1.06), rng.uniform(0.9, 1.12)], np.float32)
    quad = (quad + rng.normal(0, (0.08 if rng.random() < 0.3 else 0.04) * qh, (4, 2))).astype(np.float32)
    per_line = _line_boxes(boxes, list(lines))
    text_lines: list = [_Quad(quad)]
    if len(lines) > 1:
        text_lines = []
        for bx in per_line:
            if not bx.size:
                continue
            x0, y0, x1, y1 = bx[:, 0].min(), bx[:, 1].min(), bx[:, 2].max(), bx[:, 3].max()
            pad = 0.2 * (y1 - y0)
            q = np.float32([[x0 - pad, y0 - pad], [x1 + pad, y0 - pad], [x1 + pad, y1 + pad], [x0 - pad, y1 + pad]]) + m
            text_lines.append(_Quad(cv2.perspectiveTransform(q.reshape(1, 4, 2), hm)[0]))
    _, crops, _ = plate_crops(img, PlateCandidate(quad, text_lines, 1.0, 4))
    labels = [_alnum(ln) for ln in lines] if len(crops) == len(lines) else [label]
    return [LineSample(c, lab, country) for c, lab in zip(crops, labels) if lab and c.size]


def line_samples(n: int, seed: int = 0):
    """About ``n`` line samples (plates until ``n`` lines), reproducible from ``seed``."""
    i = got = 0
    while got < n:
        for s in render_lines(np.random.default_rng([int(seed), i])):
            yield s
            got += 1
        i += 1
