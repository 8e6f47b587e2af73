"""Synthetic Italian plates for tests and benchmarks (rendered with OpenCV, seeded).

Each sample is a one-line plate of the car format (``AA 000 AA``; letters without I, O, Q, U;
X-series trailers and Y-series local police included) with the blue EU band (``I``) and the
right-hand blue band, placed in a cluttered scene with a random perspective, blur, low light,
sensor noise and JPEG compression. Two-line plates (motorcycles, mopeds) are not rendered.
"""

from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np

from .grammar import IT_LETTERS

__all__ = ["random_plate", "render_plate", "render_scene", "synthetic_set"]

_LETTERS = sorted(IT_LETTERS)


def random_plate(rng: np.random.Generator) -> str:
    first = rng.choice(_LETTERS)
    r = rng.random()
    if r < 0.1:
        first = "X"  # trailer
    elif r < 0.15:
        first = "Y"  # local police
    letters = [first] + [rng.choice(_LETTERS) for _ in range(3)]
    digits = "".join(str(d) for d in rng.integers(0, 10, 3))
    return f"{letters[0]}{letters[1]}{digits}{letters[2]}{letters[3]}"


def render_plate(text: str, height: int = 110, rng: np.random.Generator | None = None) -> np.ndarray:
    """A flat, frontal plate image (BGR) of ``text`` (7 characters, car format)."""
    rng = rng or np.random.default_rng(0)
    width = int(height * 4.7)
    img = np.full((height, width, 3), 245, np.uint8)
    band = int(height * 0.42)
    blue = (153, 51, 0)
    img[:, :band] = blue
    img[:, width - band :] = blue
    # EU stars ring and the country letter
    cx, cy, r = band // 2, int(height * 0.3), int(band * 0.3)
    for k in range(12):
        a = 2 * np.pi * k / 12
        cv2.circle(img, (int(cx + r * np.cos(a)), int(cy + r * np.sin(a))), max(1, height // 60), (0, 204, 255), -1)
    cv2.putText(
        img,
        "I",
        (int(band * 0.35), int(height * 0.85)),
        cv2.FONT_HERSHEY_SIMPLEX,
        height / 90,
        (255, 255, 255),
        max(1, height // 40),
    )
    cv2.rectangle(img, (0, 0), (width - 1, height - 1), (40, 40, 40), max(1, height // 50))
    # the series "AB 123 CD" in a fixed pitch, as the plate font is
    font = cv2.FONT_HERSHEY_DUPLEX if rng.random() < 0.5 else cv2.FONT_HERSHEY_SIMPLEX
    thick = max(2, int(height / 18 * rng.uniform(0.9, 1.2)))
    scale = cv2.getFontScaleFromHeight(font, int(height * 0.62), thick)
    slots = list(text[:2]) + [" "] + list(text[2:5]) + [" "] + list(text[5:])
    widths = [0.45 if c == " " else 1.0 for c in slots]
    avail = width - 2 * band - height * 0.12
    pitch = avail / sum(widths)
    (_, th), _ = cv2.getTextSize("A", font, scale, thick)
    (cw, _), _ = cv2.getTextSize("W", font, scale, thick)
    if cw > pitch * 0.95:
        scale *= pitch * 0.95 / cw
        (_, th), _ = cv2.getTextSize("A", font, scale, thick)
    x = band + height * 0.06
    y = int((height + th) / 2)
    for c, wgt in zip(slots, widths):
        if c != " ":
            (gw, _), _ = cv2.getTextSize(c, font, scale, thick)
            cv2.putText(img, c, (int(x + (pitch - gw) / 2), y), font, scale, (20, 20, 20), thick, cv2.LINE_AA)
        x += pitch * wgt
    return img


def render_scene(
    text: str, rng: np.random.Generator, size: tuple[int, int] = (640, 480)
) -> tuple[np.ndarray, np.ndarray]:
    """A scene (BGR) with the plate under a random perspective; returns (image, plate quad)."""
    w, h = size
    scene = rng.integers(40, 200, (h // 8, w // 8, 3), dtype=np.uint8)
    scene = cv2.resize(scene, (w, h), interpolation=cv2.INTER_CUBIC)
    car = tuple(int(v) for v in rng.integers(20, 230, 3))
    cx0, cy0 = int(rng.integers(40, w // 4)), int(rng.integers(h // 4, h // 2))
    cv2.rectangle(scene, (cx0, cy0), (w - int(rng.integers(40, w // 4)), h - 10), car, -1)
    plate_h = int(rng.integers(26, 70))
    plate = render_plate(text, height=max(60, plate_h * 2), rng=rng)
    ph, pw = plate.shape[:2]
    dst_w = plate_h * 4.7
    x0 = rng.uniform(0.1 * w, w - dst_w - 0.1 * w)
    y0 = rng.uniform(0.45 * h, h - plate_h - 20)
    j = plate_h * 0.18
    dst = np.array([[x0, y0], [x0 + dst_w, y0], [x0 + dst_w, y0 + plate_h], [x0, y0 + plate_h]], np.float32)
    dst += rng.uniform(-j, j, dst.shape).astype(np.float32)
    dst[:, 1] += (dst[:, 0] - x0) * rng.uniform(-0.08, 0.08)  # slant
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(plate, m, (w, h), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), m, (w, h))
    scene[mask > 127] = warped[mask > 127]
    # degradations: blur, low light, noise, JPEG
    k = float(rng.uniform(0.0, 1.3))
    if k > 0.3:
        scene = cv2.GaussianBlur(scene, (0, 0), k)
    gain = rng.uniform(0.35, 1.0)
    scene = np.clip(scene.astype(np.float32) * gain + rng.normal(0, rng.uniform(1, 6), scene.shape), 0, 255).astype(
        np.uint8
    )
    ok, buf = cv2.imencode(".jpg", scene, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 90))])
    scene = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return scene, dst


def synthetic_set(n: int, seed: int = 0) -> Iterator[tuple[np.ndarray, str]]:
    """``n`` (scene, plate text) pairs, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    for _ in range(int(n)):
        text = random_plate(rng)
        img, _ = render_scene(text, rng)
        yield img, text
