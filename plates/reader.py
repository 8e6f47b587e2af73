"""Plate localisation and reading: :class:`PlateReader`.

Localisation: the PP-OCRv4 text detector at a reduced input size (``det_max_side``, 480 px
by default: ≈ 60-90 ms on 2 cores for a whole frame or ROI) finds text lines; lines on the
same row with a small gap (a plate split by its emblem or band) are also tried merged. Each
plausible line (aspect, size) is read by the recogniser (≈ 18 ms per crop, batched), the text
normalised by :mod:`.grammar`, and candidates scored for plate-likeness. Optionally, Debian's
``opencv-data`` Haar cascade adds candidates where it is installed (never required).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import grammar
from .ocr import TextBox, TextDetector, TextRecognizer, crop_quad

log = logging.getLogger(__name__)

__all__ = ["PlateReading", "PlateReader", "ImageError", "HAAR_CASCADES", "load_image"]

HAAR_CASCADES = [
    "/usr/share/opencv4/haarcascades/haarcascade_russian_plate_number.xml",
    "/usr/share/opencv4/haarcascades/haarcascade_licence_plate_rus_16stages.xml",
]


class ImageError(ValueError):
    """An image file that cannot be read or decoded."""


def load_image(path: str | Path) -> np.ndarray:
    """Read an image as BGR; :class:`ImageError` with the reason if it cannot be."""
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"{path}: no such file")
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ImageError(f"{path}: not a readable image")
    return img


@dataclass
class PlateReading:
    """One plate read in an image."""

    text: str
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 pixels
    kind: str = "free"
    country: str | None = None
    raw: str = ""
    crop: np.ndarray | None = field(default=None, repr=False)
    score: float = 0.0

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "confidence": round(float(self.confidence), 4),
            "box": [round(float(v), 1) for v in self.box],
        }


def _merge_pairs(boxes: list[TextBox]) -> list[TextBox]:
    """Boxes for pairs of lines on one row separated by a small gap (e.g. ``RK`` ⎵ ``099AN``)."""
    out = []
    for i, a in enumerate(boxes):
        ax1, ay1, ax2, ay2 = a.xyxy
        for b in boxes[i + 1 :]:
            bx1, by1, bx2, by2 = b.xyxy
            if bx1 < ax1:
                (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = (bx1, by1, bx2, by2), (ax1, ay1, ax2, ay2)
            ha, hb = ay2 - ay1, by2 - by1
            if min(ha, hb) <= 0 or max(ha, hb) / min(ha, hb) > 1.4:
                continue
            overlap = min(ay2, by2) - max(ay1, by1)
            if overlap < 0.6 * min(ha, hb):
                continue
            gap = bx1 - ax2
            if gap < -0.3 * min(ha, hb) or gap > 1.2 * max(ha, hb):
                continue
            x1, y1, x2, y2 = min(ax1, bx1), min(ay1, by1), max(ax2, bx2), max(ay2, by2)
            out.append(TextBox(np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32), min(a.score, b.score)))
    return out


def _pad_quad(quad: np.ndarray, pad: float, shape) -> np.ndarray:
    """Widen a text quad by ``pad`` × its height on the left and right (thin end glyphs such
    as ``I`` fall outside the detector's box)."""
    q = np.asarray(quad, np.float32).copy()
    h = max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2]))
    u = q[1] - q[0]
    n = np.linalg.norm(u)
    if n < 1e-6 or pad <= 0:
        return q
    u = u / n * pad * h
    q[0] -= u
    q[3] -= u
    q[1] += u
    q[2] += u
    q[:, 0] = np.clip(q[:, 0], 0, shape[1] - 1)
    q[:, 1] = np.clip(q[:, 1], 0, shape[0] - 1)
    return q


def _plausible(box: TextBox, min_height: float) -> bool:
    q = box.quad
    w = max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[2] - q[3]))
    h = max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2]))
    if h > w:
        w, h = h, w
    return h >= min_height and 1.3 <= w / max(h, 1e-6) <= 12


def _plate_score(parsed: grammar.PlateParse, conf: float, box: TextBox) -> float:
    """How plate-like a reading is (higher is better)."""
    t = parsed.text
    if not parsed.valid:
        return -1.0
    s = conf
    has_d = any(c.isdigit() for c in t)
    has_l = any(c.isalpha() for c in t)
    s += 0.4 * has_d + 0.1 * (has_d and has_l)
    s += 0.5 if 5 <= len(t) <= 8 else (0.2 if len(t) in (4, 9, 10) else -0.5)
    if parsed.country == "IT" or parsed.kind == "generic":
        s += 0.5 - 0.1 * parsed.corrections
    x1, y1, x2, y2 = box.xyxy
    s += 0.002 * min(y2 - y1, 100)  # larger text is more likely a plate than a sticker
    return s


class PlateReader:
    """Finds and reads plates in a BGR image (a frame, an ROI or a vehicle crop).

    ``region``: ``"IT"`` for an Italian camera (Italian grammar wins) or ``"auto"``.
    ``max_plates``: readings returned per image (best first).
    """

    def __init__(
        self,
        region: str = "auto",
        det_max_side: int = 480,
        threads: int = 2,
        max_plates: int = 1,
        min_text_height: float = 8.0,
        min_confidence: float = 0.5,
        pad: float = 0.0,
        use_haar: bool = False,
        det_model: str | None = None,
        rec_model: str | None = None,
        recognizer=None,
    ):
        self.region = region
        self.pad = float(pad)
        self.detector = TextDetector(det_model, max_side=det_max_side, threads=threads, unclip_ratio=1.8)
        self.recognizer = recognizer or TextRecognizer(rec_model, threads=threads)
        self.max_plates = max_plates
        self.min_text_height = min_text_height
        self.min_confidence = min_confidence
        self.cascades = []
        if use_haar:
            for path in HAAR_CASCADES:
                if Path(path).is_file():
                    c = cv2.CascadeClassifier(path)
                    if not c.empty():
                        self.cascades.append(c)
            if not self.cascades:
                log.info("plate Haar cascades not installed (Debian opencv-data); using OCR detection only")

    def _haar_boxes(self, image: np.ndarray) -> list[TextBox]:
        boxes = []
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        for c in self.cascades:
            for x, y, w, h in c.detectMultiScale(gray, 1.1, 4, minSize=(40, 10)):
                q = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)
                boxes.append(TextBox(q, 0.5))
        return boxes

    def read(self, image: np.ndarray, roi: tuple[int, int, int, int] | None = None) -> list[PlateReading]:
        """Plates in ``image`` (optionally only inside ``roi`` = x1, y1, x2, y2), best first."""
        if image is None or not hasattr(image, "ndim") or image.ndim not in (2, 3) or min(image.shape[:2]) < 8:
            return []
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        ox, oy = 0, 0
        if roi is not None:
            x1, y1, x2, y2 = [int(round(v)) for v in roi]
            x1, y1 = max(0, x1), max(0, y1)
            x2, y2 = min(image.shape[1], x2), min(image.shape[0], y2)
            if x2 - x1 < 8 or y2 - y1 < 8:
                return []
            image, ox, oy = image[y1:y2, x1:x2], x1, y1
        boxes = [b for b in self.detector(image) if _plausible(b, self.min_text_height)]
        boxes += [b for b in _merge_pairs(boxes)]
        if self.cascades:
            boxes += self._haar_boxes(image)
        if not boxes:
            return []
        crops = [crop_quad(image, _pad_quad(b.quad, self.pad, image.shape)) for b in boxes]
        results = self.recognizer(crops)
        readings: list[PlateReading] = []
        for box, crop, (text, conf, _) in zip(boxes, crops, results):
            parsed = grammar.parse(text, self.region)
            if not parsed.valid or conf < self.min_confidence:
                continue
            x1, y1, x2, y2 = box.xyxy
            readings.append(
                PlateReading(
                    parsed.text,
                    conf,
                    (x1 + ox, y1 + oy, x2 + ox, y2 + oy),
                    parsed.kind,
                    parsed.country,
                    text,
                    crop,
                    _plate_score(parsed, conf, box),
                )
            )
        readings.sort(key=lambda r: -r.score)
        # drop readings overlapping a better one
        kept: list[PlateReading] = []
        for r in readings:
            if all(_iou(r.box, k.box) < 0.3 for k in kept):
                kept.append(r)
            if len(kept) >= self.max_plates:
                break
        return kept


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
