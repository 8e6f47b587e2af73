"""Seeded synthetic licence plates with real variety, to *measure* a plate reader.

Never tune a reader on these: they only tell how it fails (angle, resolution, blur, night,
dirt, occlusion, tight crops, two-line plates, other fonts, foreign formats) on plates whose
label is known exactly. Formats, plate looks and the flat plate live in :mod:`.synth_formats`.

A sample is a plate drawn flat (Pillow TrueType glyphs, :data:`FONT_FILES`; OpenCV Hershey
glyphs where a font file is missing) on a vehicle panel with distractor text (dealer stickers,
phone numbers, badges), posed by a real 3-D rotation (yaw about the vertical axis, pitch about
the horizontal one, a little roll) and pinhole projection into a cluttered scene, then degraded
by the sample's :data:`VARIATIONS` entry and JPEG-compressed. ``tight_crop`` samples are the
character area alone. All lengths are pixels, angles degrees, colours BGR.

Every sample stays legible to a person: each variation bounds its degradation by the plate's
own size and contrast, not by fixed amounts that would wreck a small plate.

=============== =============================================================================
``clean``       near-frontal pose (yaw ±8, pitch ±6, roll ±3), plate 120-240 px wide (two-line
                plates 0.55 x), JPEG quality 70-95
``typeface``    as ``clean``, one of :data:`TYPEFACES` drawn at random
``perspective`` yaw 15-45, pitch ±20, roll ±5, camera 2.5-5 plate widths away; the mean of the
                top and bottom edges is still 120-240 px
``lowres``      plate 60-90 px wide
``motion_blur`` a linear motion kernel on the vehicle layer, length 0.08-0.22 x the plate's
                character height in image pixels (at least 3 px), within ±25 of horizontal
                (the direction of travel); no further Gaussian blur
``night_ir``    grey near-infrared look. 65 %: the retroreflective plate lit, the rest dark,
                a bloom of at most 0.35. 35 %: very dark (gain 0.12-0.25 raised where needed
                so the faintest character keeps >= 32 grey levels; noise sigma <= a quarter
                of that: >= ~25 levels after noise and JPEG)
``dirt``        12-30 % contrast loss towards dust, mud blotches and spray streaks of opacity
                <= 0.6 (characters stay readable through them)
``occlusion``   one bar or blob over <= 15 % of one character's box and <= 3 % of any other
``tight_crop``  the character area alone (0-3 px margin), 30-90 px high (two-line 60-130),
                blur sigma <= 0.9
``two_line``    two-line kinds (Italian motorcycle, moped, square; foreign motorcycle)
=============== =============================================================================

All but ``tight_crop`` then get a Gaussian blur of sigma <= 0.8 (not ``motion_blur``), sensor
noise of sigma 1-4 grey levels (``night_ir`` 3-9, bounded as above) and JPEG quality 40-90
(``clean``, ``typeface``, ``two_line``: 70-95).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Iterator

import cv2
import numpy as np

from .synth_formats import (
    FONT_FILES,
    FONT_PACKAGES,
    FOREIGN_COUNTRIES,
    FORMAT_PATTERNS,
    TWO_LINE_KINDS,
    TYPEFACES,
    FlatPlate,
    PlateLook,
    blend,
    draw_plate,
    plate_look,
    put_text,
    random_plate,
    render_plate,
    resolve_typeface,
)

__all__ = [
    "FAMILIES",
    "FONT_FILES",
    "FONT_PACKAGES",
    "FOREIGN_COUNTRIES",
    "FORMAT_PATTERNS",
    "TWO_LINE_KINDS",
    "TYPEFACES",
    "VARIATIONS",
    "PlateSample",
    "PlateSpec",
    "random_plate",
    "render_plate",
    "render_scene",
    "resolve_typeface",
    "synthetic_set",
]

VARIATIONS: tuple[str, ...] = (
    "clean",
    "typeface",
    "perspective",
    "lowres",
    "motion_blur",
    "night_ir",
    "dirt",
    "occlusion",
    "tight_crop",
    "two_line",
)
FAMILIES = ("it", "foreign")


_WORDS = (
    "PIZZERIA", "FARMACIA", "PARCHEGGIO", "VIA EMILIA", "TABACCHI", "AUTOFFICINA", "GOMMISTA",
    "VENDESI", "BAR SPORT", "HOTEL", "TAXI", "ZTL", "USCITA", "SALDI 50%", "Ristorante", "Lavaggio",
)  # fmt: skip
_BADGES = ("1.6 TDI", "GT LINE", "HYBRID", "4x4", "2.0 d", "Sport", "AUTO ROSSI", "CONCESSIONARIA")


@dataclass
class PlateSample:
    """One synthetic sample (pixels; the quad of a ``tight_crop`` sample reaches outside its image)."""

    image: np.ndarray  #: (H, W, 3) uint8 BGR scene (the character crop for ``tight_crop``)
    text: str  #: label: A-Z0-9, the lines joined top then bottom
    quad: np.ndarray  #: (4, 2) float32 plate corners tl, tr, br, bl in image pixels (whole plate)
    country: str  #: "IT", "DE", ...
    kind: str  #: "car", "trailer", "motorcycle", "moped", "square", "police", ...
    lines: int  #: 1 or 2
    variation: str  #: one of VARIATIONS
    typeface: str  #: the typeface actually drawn (after any fallback)

    @property
    def plate_width_px(self) -> float:
        """Mean length of the quad's top and bottom edges, pixels."""
        q = self.quad.astype(np.float64)
        return float((np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2)


@dataclass(frozen=True)
class PlateSpec:
    """What :func:`render_scene` draws: the label, its displayed lines and the variation."""

    text: str
    lines: tuple[str, ...]
    country: str = "IT"
    kind: str = "car"
    variation: str = "clean"
    typeface: str | None = None  #: None: the default (``typeface`` variation: a random one)


# --- scene -------------------------------------------------------------------------------


def _phone(rng) -> str:
    d = "".join(str(v) for v in rng.integers(0, 10, 10))
    return [f"0{d[:2]} {d[2:5]} {d[5:8]}", f"+39 3{d[:2]} {d[2:9]}", f"TEL. 0{d[:3]} {d[3:9]}", f"0{d[:2]}-{d[2:8]}"][
        int(rng.integers(0, 4))
    ]


def _background(rng, w: int, h: int) -> np.ndarray:
    """A cluttered street-like background with a sign carrying text (uint8 BGR)."""
    top, bottom = rng.integers(30, 220, 3).astype(np.float32), rng.integers(30, 160, 3).astype(np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = top * (1 - t) + bottom * t
    img = img + cv2.resize(
        rng.normal(0, 12, (h // 32, w // 32, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(6, 14))):
        x, y = int(rng.integers(-40, w)), int(rng.integers(-40, h))
        bw, bh = int(rng.integers(10, w // 3)), int(rng.integers(10, h // 3))
        cv2.rectangle(img, (x, y), (x + bw, y + bh), tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
    for _ in range(int(rng.integers(2, 6))):
        p = [int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(0, w)), int(rng.integers(0, h))]
        cv2.line(img, p[:2], p[2:], tuple(int(v) for v in rng.integers(0, 256, 3)), int(rng.integers(1, 6)))
    for _ in range(int(rng.integers(1, 3))):  # a shop sign
        sw, sh = int(rng.uniform(0.25, 0.45) * w), int(rng.uniform(0.06, 0.12) * h)
        x, y = int(rng.integers(0, w - sw)), int(rng.integers(0, h // 3))
        bg = rng.integers(0, 256, 3)
        cv2.rectangle(img, (x, y), (x + sw, y + sh), tuple(int(v) for v in bg), -1)
        fg = tuple(int(v) for v in (255 - bg + rng.integers(-40, 40, 3)).clip(0, 255))
        text = _WORDS[int(rng.integers(0, len(_WORDS)))] if rng.random() < 0.6 else _phone(rng)
        put_text(img, text, x + sw / 2, y + sh * 0.2, sh * 0.55, fg, max_w=sw * 0.95, center=True)
    return img


def _vehicle(rng, plate: np.ndarray, pv: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The vehicle's rear panel with the plate ``pv`` px wide pasted in.

    Returns (panel BGR, panel alpha 0-255, plate corners (4, 2) in panel pixels).
    """
    ph = pv * plate.shape[0] / plate.shape[1]
    W, H = int(pv * rng.uniform(3.0, 3.8)), int(max(pv * rng.uniform(1.2, 1.7), ph * 3.2))
    body = np.array([rng.integers(10, 240) for _ in range(3)], np.float32)
    if rng.random() < 0.4:
        body[:] = rng.integers(15, 235)  # grey, white, black cars are common
    t = np.linspace(1.1, 0.8, H, dtype=np.float32)[:, None, None]
    panel = np.clip(body * t, 0, 255).astype(np.uint8).repeat(W, 1)
    panel = np.ascontiguousarray(panel)
    alpha = np.zeros((H, W), np.uint8)
    r = int(pv * 0.3)
    cv2.rectangle(alpha, (r, 0), (W - r, H), 255, -1)
    cv2.rectangle(alpha, (0, r), (W, H), 255, -1)
    for cx in (r, W - r):
        cv2.circle(alpha, (cx, r), r, 255, -1)
    px = W / 2 + rng.uniform(-0.25, 0.25) * pv - pv / 2
    py = H * rng.uniform(0.55, 0.68) - ph / 2
    cv2.rectangle(panel, (0, int(py + ph * 1.25)), (W, H), tuple(int(v * 0.55) for v in body), -1)  # bumper
    cv2.rectangle(panel, (int(W * 0.12), int(H * 0.03)), (int(W * 0.88), int(H * 0.3)), (40, 35, 30), -1)  # glass
    for lx in (0.03, 0.83):  # lights
        cv2.rectangle(panel, (int(W * lx), int(H * 0.35)), (int(W * (lx + 0.14)), int(H * 0.48)), (30, 30, 170), -1)
    ink = (20, 20, 20) if body.mean() > 110 else (235, 235, 235)
    put_text(panel, _BADGES[int(rng.integers(0, len(_BADGES)))], W * 0.7, H * 0.34, ph * 0.35, ink)
    sticker = _phone(rng) if rng.random() < 0.7 else "www.autorossi.it"
    put_text(panel, sticker, W * 0.5, H * 0.08, ph * 0.3, (230, 230, 230), max_w=W * 0.6, center=True)
    if rng.random() < 0.6:  # dealer frame text under the plate
        put_text(panel, "AUTO " + _phone(rng), px + pv / 2, py + ph * 1.05, ph * 0.16, ink, center=True)
    cv2.rectangle(panel, (int(px - 3), int(py - 3)), (int(px + pv + 3), int(py + ph + 3)), (25, 25, 25), -1)
    small = cv2.resize(plate, (max(2, round(pv)), max(2, round(ph))), interpolation=cv2.INTER_AREA)
    ix, iy = int(round(px)), int(round(py))
    panel[iy : iy + small.shape[0], ix : ix + small.shape[1]] = small
    sw, sh = small.shape[1], small.shape[0]
    corners = np.array([[ix, iy], [ix + sw, iy], [ix + sw, iy + sh], [ix, iy + sh]], np.float32)
    return panel, alpha, corners


def _pose(yaw: float, pitch: float, roll: float) -> np.ndarray:
    a, b, c = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ rx @ ry


def _project(points: np.ndarray, center: np.ndarray, rot: np.ndarray, dist: float) -> np.ndarray:
    """Pinhole projection of panel points (z = 0 plane, origin at ``center``), focal = ``dist``."""
    p = np.c_[points - center, np.zeros(len(points))] @ rot.T
    z = p[:, 2] + dist
    return (p[:, :2] * dist / z[:, None]).astype(np.float32)


#: motion blur length as a fraction of the character height in image pixels, its floor (px)
#: and the largest angle from horizontal (degrees)
_BLUR_FRAC, _BLUR_MIN, _BLUR_ANGLE = (0.08, 0.22), 3.0, 25.0


def _motion_params(rng, char_px: float) -> tuple[float, float]:
    """(length px, angle degrees) of a motion blur legible on characters ``char_px`` high."""
    length = max(_BLUR_MIN, rng.uniform(*_BLUR_FRAC) * float(char_px))
    return length, rng.uniform(-_BLUR_ANGLE, _BLUR_ANGLE)


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised line kernel (float32, odd square): a segment ``length`` px long at ``angle``
    degrees, sampled densely and splatted bilinearly (sub-pixel lengths and angles)."""
    size = 2 * math.ceil(length / 2) + 1
    c = size // 2
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, max(2, math.ceil(length * 8)))
    x, y = c + t * math.cos(math.radians(angle)), c + t * math.sin(math.radians(angle))
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    k = np.zeros((size + 1, size + 1), np.float64)
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(k, (y0 + dy, x0 + dx), wgt)
    k = k[:size, :size]
    return (k / k.sum()).astype(np.float32)


def _motion_blur(fg: np.ndarray, alpha: np.ndarray, rng, char_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear motion blur of a premultiplied layer and its alpha (see :func:`_motion_params`)."""
    k = _motion_kernel(*_motion_params(rng, char_px))
    out = cv2.filter2D(np.dstack([fg, alpha]).astype(np.float32), -1, k, borderType=cv2.BORDER_REPLICATE)
    return out[..., :3], out[..., 3]


def _char_quads(plate: FlatPlate, quad: np.ndarray) -> np.ndarray:
    """The plate's character boxes projected into the image: (N, 4, 2) float32 tl, tr, br, bl."""
    H, W = plate.image.shape[:2]
    m = cv2.getPerspectiveTransform(np.float32([[0, 0], [W, 0], [W, H], [0, H]]), quad.astype(np.float32))
    b = plate.boxes
    pts = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], 1).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(pts.astype(np.float32), m).reshape(-1, 4, 2)


def _char_height(chars: np.ndarray) -> float:
    """The characters' height in image pixels (the tallest box: POLIZIA's small letters aside)."""
    left, right = np.linalg.norm(chars[:, 3] - chars[:, 0], axis=1), np.linalg.norm(chars[:, 2] - chars[:, 1], axis=1)
    return float(((left + right) / 2).max())


def _char_contrast(gray: np.ndarray, chars: np.ndarray) -> float:
    """Grey levels between ink and background of the faintest character (p90 - p10 in its box):
    red prefixes (CC, POLIZIA) go pale in the infrared and must stay readable too."""
    out = []
    for q in chars:
        x0, y0 = np.maximum(np.floor(q.min(0)).astype(int), 0)
        x1, y1 = np.ceil(q.max(0)).astype(int) + 1
        m = np.zeros((max(0, y1 - y0), max(0, x1 - x0)), np.uint8)
        cv2.fillConvexPoly(m, np.round(q - [x0, y0]).astype(np.int32), 255)
        vals = gray[y0:y1, x0:x1][m[: gray.shape[0] - y0, : gray.shape[1] - x0] > 0]
        if vals.size >= 4:
            out.append(float(np.percentile(vals, 90) - np.percentile(vals, 10)))
    return min(out, default=0.0)


def _dirt(img: np.ndarray, rng) -> None:
    """Road dirt on the flat plate, in place: contrast loss, blotches, spray streaks."""
    H, W = img.shape[:2]
    dust = np.array([rng.uniform(90, 140), rng.uniform(120, 160), rng.uniform(140, 180)], np.float32)
    f = img.astype(np.float32) * (1 - (c := rng.uniform(0.12, 0.3))) + dust * c
    mud = np.zeros((H, W), np.float32)
    for _ in range(int(rng.integers(3, 10))):
        ax = (int(rng.uniform(0.04, 0.2) * H) + 1, int(rng.uniform(0.04, 0.2) * H) + 1)
        ctr = (int(rng.integers(0, W)), int(rng.integers(0, H)))
        cv2.ellipse(mud, ctr, ax, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.25, 0.55)), -1)
    for _ in range(int(rng.integers(3, 12))):
        x = int(rng.integers(0, W))
        cv2.line(mud, (x, H), (x + int(rng.integers(-4, 5)), int(H * rng.uniform(0.2, 0.8))), 0.3, max(1, H // 25))
    mud = cv2.GaussianBlur(mud, (0, 0), max(0.8, H * 0.02))[..., None].clip(0, 0.6)
    brown = np.array([40, 60, 80], np.float32) * rng.uniform(0.7, 1.3)
    img[:] = (f * (1 - mud) + brown * mud).clip(0, 255).astype(np.uint8)


def _occlude(plate: FlatPlate, rng, max_frac: float = 0.15) -> int:
    """A bar or blob over at most ``max_frac`` of one character's box (and at most 3 % of any
    other), in place; returns the character's index."""
    i = int(rng.integers(0, len(plate.boxes)))
    x0, y0, x1, y1 = plate.boxes[i]
    cw, ch = x1 - x0, y1 - y0
    img = plate.image
    H, W = img.shape[:2]
    for shrink in (1.0, 0.8, 0.6, 0.45, 0.3, 0.2):
        m = np.zeros((H, W), np.uint8)
        if rng.random() < 0.5:  # a bar (a clip or a tow bar) reaching in from above or below
            t = max(1, round(cw * rng.uniform(0.12, 0.22) * shrink))
            depth = min(ch, 0.14 * cw * ch / t) * shrink
            xc = x0 + cw * rng.uniform(0.3, 0.7)
            ya, yb = (y0 - ch, y0 + depth) if rng.random() < 0.5 else (y1 - depth, y1 + ch)
            cv2.rectangle(m, (round(xc - t / 2), round(ya)), (round(xc + t / 2), round(yb)), 255, -1)
        else:  # a blob (a screw, mud, a leaf) on the character's edge
            rad = math.sqrt(0.26 * cw * ch / math.pi) * rng.uniform(0.7, 1.0) * shrink
            cx, cy = [(x0 + cw / 2, y0), (x0 + cw / 2, y1), (x0, y0 + ch / 2), (x1, y0 + ch / 2)][
                int(rng.integers(0, 4))
            ]
            cv2.circle(m, (round(cx), round(cy)), max(1, round(rad)), 255, -1)
        covered = [np.count_nonzero(m[int(b) : math.ceil(d), int(a) : math.ceil(c)]) / max(1.0, (c - a) * (d - b))
                   for a, b, c, d in plate.boxes]  # fmt: skip
        if covered[i] <= max_frac and max(covered[:i] + covered[i + 1 :], default=0) <= 0.03:
            break
    else:
        m[:] = 0  # (never seen) nothing small enough fitted: leave the plate clean
    color = [(40, 40, 40), (170, 170, 175), (30, 110, 40), (40, 60, 80)][int(rng.integers(0, 4))]
    blend(img, m, 0, 0, color)
    return i


#: the least character contrast (grey levels) of a very dark ``night_ir`` sample before noise
_NIGHT_CONTRAST = 32.0


def _ir(img: np.ndarray) -> np.ndarray:
    """A near-infrared look (float32 gray): inks stay dark, blue bands and red letters go pale."""
    brightest = np.maximum(np.maximum(img[..., 0], img[..., 1]), img[..., 2]).astype(np.float32)
    return 0.6 * brightest + 0.4 * cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img


@lru_cache(maxsize=1)
def _gauss_table() -> np.ndarray:
    """Standard normal quantiles of 256 equal-probability bins (a byte of uniform noise -> Gaussian)."""
    nd = NormalDist()
    return np.array([nd.inv_cdf((k + 0.5) / 256) for k in range(256)], np.float32)


def _noise(img: np.ndarray, sigma: float, rng) -> np.ndarray:
    """Gaussian sensor noise of ``sigma`` grey levels (quantised to 256 levels: bytes are cheap to draw)."""
    table = np.round(_gauss_table() * np.float32(sigma)).astype(np.int16)
    n = table[rng.integers(0, 256, img.shape, dtype=np.uint8)]
    return np.clip(img.astype(np.int16) + n, 0, 255).astype(np.uint8)


def _tight_crop(spec: PlateSpec, look: PlateLook, face: str, rng) -> PlateSample:
    height = int(rng.uniform(30, 90) if len(spec.lines) == 1 else rng.uniform(60, 130))
    plate = draw_plate(list(spec.lines), spec.country, spec.kind, height, rng, face, look)
    H, W = plate.image.shape[:2]
    m = rng.integers(0, 4, 4)
    x0 = max(0, int(np.floor(plate.boxes[:, 0].min())) - int(m[0]))
    y0 = max(0, int(np.floor(plate.boxes[:, 1].min())) - int(m[1]))
    x1 = min(W, int(np.ceil(plate.boxes[:, 2].max())) + int(m[2]))
    y1 = min(H, int(np.ceil(plate.boxes[:, 3].max())) + int(m[3]))
    crop = plate.image[y0:y1, x0:x1].astype(np.float32)
    crop = crop * rng.uniform(0.7, 1.05) + rng.uniform(-10, 15)
    crop = np.clip(crop, 0, 255).astype(np.uint8)
    if (s := rng.uniform(0, 0.9)) > 0.3:
        crop = cv2.GaussianBlur(crop, (0, 0), s)
    crop = _jpeg(_noise(crop, rng.uniform(1, 5), rng), int(rng.integers(50, 95)))
    quad = np.array([[0, 0], [W, 0], [W, H], [0, H]], np.float32) - np.array([x0, y0], np.float32)
    return PlateSample(crop, spec.text, quad, spec.country, spec.kind, len(spec.lines), spec.variation, plate.typeface)


def render_scene(spec: PlateSpec, rng: np.random.Generator, size: tuple[int, int] = (640, 480)) -> PlateSample:
    """Draw ``spec`` into a scene of ``size`` = (width, height) pixels under its variation.

    The plate is posed by a 3-D rotation and a pinhole projection; ``quad`` is the projected
    plate. ``tight_crop`` returns the character area alone (0-3 px margin, no band nor border):
    its quad is the whole plate in crop pixels, so it reaches outside the image.
    """
    var = spec.variation
    if var not in VARIATIONS:
        raise ValueError(f"unknown variation {var!r}; known: {', '.join(VARIATIONS)}")
    face = spec.typeface or (TYPEFACES[int(rng.integers(0, len(TYPEFACES)))] if var == "typeface" else None)
    face = resolve_typeface(face)
    look = plate_look(spec.country, spec.kind, spec.text.ljust(5, "0"), rng)
    if var == "tight_crop":
        return _tight_crop(spec, look, face, rng)
    w, h = int(size[0]), int(size[1])
    square = look.aspect < 2.5
    pw = rng.uniform(60, 90) if var == "lowres" else rng.uniform(120, 240) * (0.55 if square else 1.0)
    pw = min(pw, 0.6 * w, 0.5 * h * look.aspect)
    if var == "perspective":
        yaw = rng.uniform(15, 45) * rng.choice([-1, 1])
        pitch, roll, dist = rng.uniform(-20, 20), rng.uniform(-5, 5), rng.uniform(2.5, 5.0)
    else:
        yaw, pitch, roll, dist = rng.uniform(-8, 8), rng.uniform(-6, 6), rng.uniform(-3, 3), rng.uniform(4, 10)
    ph = int(np.clip(2.2 * pw / look.aspect, 24, 240))
    plate = draw_plate(list(spec.lines), spec.country, spec.kind, ph, rng, face, look)
    if var == "dirt":
        _dirt(plate.image, rng)
    if var == "occlusion":
        _occlude(plate, rng)
    pv = 1.4 * pw
    panel, alpha, corners = _vehicle(rng, plate.image, pv)
    if var == "dirt":  # road grime on the lower body too
        grime = np.linspace(0, rng.uniform(0.2, 0.5), panel.shape[0], dtype=np.float32)[:, None, None]
        panel[:] = (panel * (1 - grime) + np.array([40, 60, 80], np.float32) * grime).astype(np.uint8)
    rot = _pose(yaw, pitch, roll)
    center = corners.mean(0)
    proj_plate = _project(corners, center, rot, dist * pv)
    proj_plate *= pw / (
        (np.linalg.norm(proj_plate[1] - proj_plate[0]) + np.linalg.norm(proj_plate[2] - proj_plate[3])) / 2
    )
    lo, hi = proj_plate.min(0), proj_plate.max(0)
    mx = 8
    ox = rng.uniform(mx - lo[0], max(mx - lo[0], w - mx - hi[0]))
    oy_lo = max(mx - lo[1], min(0.45 * h, h - mx - hi[1]))
    oy = rng.uniform(oy_lo, max(oy_lo, h - mx - hi[1]))
    off = np.array([ox, oy], np.float32)
    quad = (proj_plate + off).astype(np.float32)
    hm = cv2.getPerspectiveTransform(corners, quad)  # the panel is coplanar with the plate
    layer = cv2.warpPerspective(panel, hm, (w, h), flags=cv2.INTER_LINEAR)
    a = cv2.warpPerspective(alpha, hm, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32) / 255
    bg = _background(rng, w, h).astype(np.float32)
    fg = layer.astype(np.float32) * a[..., None]
    chars = _char_quads(plate, quad)
    if var == "motion_blur":
        fg, a = _motion_blur(fg, a, rng, _char_height(chars))
    scene = bg * (1 - a[..., None]) + fg
    if var == "night_ir":
        gray = _ir(np.clip(scene, 0, 255).astype(np.uint8))
        pm = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(pm, np.round(quad).astype(np.int32), 255)
        pm = cv2.GaussianBlur(pm.astype(np.float32) / 255, (0, 0), 1.0)
        if rng.random() < 0.65:  # the retroreflective plate shines in the illuminator, the rest is dark
            lit = np.clip(gray * rng.uniform(1.0, 1.3), 0, 255)
            scene = gray * rng.uniform(0.1, 0.3) * (1 - pm) + lit * pm
            scene += cv2.GaussianBlur(lit * pm, (0, 0), max(1.0, pw * 0.03)) * rng.uniform(0.1, 0.35)
            sigma = rng.uniform(3, 9)
        else:  # very dark, low contrast, but the characters keep >= 32 grey levels
            contrast = max(1.0, _char_contrast(gray, chars))
            gain = min(1.0, max(rng.uniform(0.12, 0.25), _NIGHT_CONTRAST / contrast))
            scene = gray * gain + rng.uniform(4, 14)
            sigma = min(rng.uniform(3, 9), max(2.0, gain * contrast / 4))
        scene = np.repeat(np.clip(scene, 0, 255)[..., None], 3, 2)
    else:
        scene = scene * rng.uniform(0.75, 1.1) + rng.uniform(-10, 10)
        sigma = rng.uniform(1, 4)
    img = np.clip(scene, 0, 255).astype(np.uint8)
    if (s := rng.uniform(0, 0.8)) > 0.3 and var not in ("motion_blur",):
        img = cv2.GaussianBlur(img, (0, 0), s)
    img = _noise(img, sigma, rng)
    if var == "night_ir":
        img = np.repeat(img[..., :1], 3, 2)
    q = rng.integers(70, 95) if var in ("clean", "typeface", "two_line") else rng.integers(40, 90)
    return PlateSample(
        _jpeg(img, int(q)), spec.text, quad, spec.country, spec.kind, len(spec.lines), var, plate.typeface
    )


def synthetic_set(
    n: int,
    seed: int = 0,
    family: str = "it",
    variations=None,
    countries=None,
) -> Iterator[PlateSample]:
    """``n`` samples, reproducible from ``seed`` (sample ``i`` depends only on ``seed`` and ``i``).

    Variations cycle evenly over ``variations`` (default :data:`VARIATIONS`); ``two_line``
    draws two-line kinds (Italian motorcycle, moped, square; foreign motorcycle), the others a
    mix with mostly one-line cars. ``family`` "it" draws Italian plates, "foreign" cycles evenly
    over :data:`FOREIGN_COUNTRIES`; ``countries`` replaces the family's list.
    """
    for rng, spec in _specs(n, seed, family, variations, countries):
        yield render_scene(spec, rng)


def _specs(n, seed=0, family="it", variations=None, countries=None) -> Iterator[tuple[np.random.Generator, PlateSpec]]:
    """What :func:`synthetic_set` draws, before rendering: (the sample's rng, its spec)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    vs = tuple(variations) if variations else VARIATIONS
    bad = [v for v in vs if v not in VARIATIONS]
    if bad:
        raise ValueError(f"unknown variations {bad}; known: {', '.join(VARIATIONS)}")
    cs = tuple(c.upper() for c in countries) if countries else (("IT",) if family == "it" else FOREIGN_COUNTRIES)
    bad = [c for c in cs if c not in FORMAT_PATTERNS]
    if bad:
        raise ValueError(f"unknown countries {bad}; known: IT, {', '.join(FOREIGN_COUNTRIES)}")
    block = math.lcm(len(vs), len(cs))
    for i in range(int(n)):
        rng = np.random.default_rng([int(seed), i])
        var = vs[i % len(vs)]
        country = cs[(i + i // block) % len(cs)]  # every block of lcm samples shifts by one: all pairs occur
        kind = None
        if var == "two_line":
            kinds = TWO_LINE_KINDS.get(country, ("motorcycle",))
            kind = kinds[int(rng.integers(0, len(kinds)))]
        label, kind, lines = random_plate(rng, country, kind)
        yield rng, PlateSpec(label, tuple(lines), country, kind, var)
