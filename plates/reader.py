"""Plate localisation and reading: :class:`PlateReader`.

1. **Text**: the PP-OCRv4 text detector at a bounded input size (``det_max_side``, 640 px by
   default) finds text fragments.
2. **Plates** (:mod:`.localise`): fragments are grouped into one- and two-line groups and each
   group's plate quadrilateral is found in the image's gradients.
3. **Rectification**: the quad is warped to a frontal plate; the blue EU band (and the Italian
   right-hand band) is located by colour and cut off, so that the characters next to it are
   read as characters, and the band's letters are read on their own (the country code). A blue
   band across the plate's top (a Mercosul plate, :func:`.localise.find_top_band`) is noted as
   evidence for the formats whose plates carry one (``PlateFormat.looks``).
4. **Reading** (:mod:`.decode`): the recogniser gives a CTC probability matrix per text line;
   the decision between the free reading and each country's formats is made on those
   probabilities (a positional correction is applied only where the model itself finds it
   likely), with per-character confidences and a calibrated plate confidence.
5. **Choice**: the candidate whose reading is most plate-like (its calibrated confidence, a known
   format, the camera's own country, the plate's edges) wins; text that fits no plate format (a
   phone number on a van) loses to one that does, text without a digit (a shop's name) to both.

A recogniser without CTC probabilities (a fixed-slot ONNX model) goes through the text-only
grammar (:func:`.grammar.parse`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vigil.detectors.ops import box_iou

from .decode import PlateDecision, decision_from_text, interpret
from .formats import EU_BAND_CODES
from .fusion import CROSS_CHECK_MODES, fuse
from .localise import (
    PlateCandidate,
    TextLine,
    find_top_band,
    group_lines,
    plate_quad,
    quad_size,
    quad_xyxy,
    read_quality,
    rectify,
    top_line_guess,
)
from .localise import find_band as _find_band
from .ocr import PLATE_ALPHABET, PlateLineRecognizer, TextBox, TextDetector, TextRecognizer

log = logging.getLogger(__name__)

__all__ = ["PlateReading", "PlateReader", "ImageError", "HAAR_CASCADES", "load_image", "plate_crops", "choose_plates"]

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
    """One plate read in an image.

    ``box``: the plate's axis-aligned bounds (x1, y1, x2, y2, pixels); ``quad``: its corners
    (``(4, 2)`` tl, tr, br, bl, pixels); ``confidence``: calibrated (0..1); ``sure``: the
    confidence reaches the decoder's threshold; ``char_confs``: one per character of ``text``.
    """

    text: str
    confidence: float
    box: tuple[float, float, float, float]
    kind: str = "free"
    country: str | None = None
    raw: str = ""
    crop: np.ndarray | None = field(default=None, repr=False)
    score: float = 0.0
    quad: np.ndarray | None = field(default=None, repr=False)
    sure: bool = False
    char_confs: tuple[float, ...] = ()
    lines: int = 1
    band: str | None = None
    format: str | None = None
    quality: float = 1.0  #: weight of this reading in a pass's vote (:func:`.localise.read_quality`)

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "confidence": round(float(self.confidence), 4),
            "sure": bool(self.sure),
            "country": self.country,
            "kind": self.kind,
            "box": [round(float(v), 1) for v in self.box],
        }


def _line_rows(line_quad: np.ndarray, m: np.ndarray, height: int) -> tuple[int, int]:
    """Rows of a text line in the rectified plate (its quad mapped by homography ``m``)."""
    q = cv2.perspectiveTransform(line_quad.reshape(1, 4, 2).astype(np.float32), m)[0]
    return int(np.clip(np.floor(q[:, 1].min()), 0, height - 1)), int(np.clip(np.ceil(q[:, 1].max()), 1, height))


@dataclass
class _Job:
    """The crops of one candidate: its text lines (top first) and, when a band was found, the band."""

    cand: PlateCandidate
    plate: np.ndarray
    lines: list[np.ndarray]
    band: np.ndarray | None
    aspect: float | None = None  #: the one-line plate's quad width / height (None: unknown, two lines)
    #: what the plate shows of its look (:data:`.formats.LOOKS`): its band across the top
    #: (:func:`.localise.find_top_band`)
    looks: frozenset[str] = frozenset()


class PlateReader:
    """Finds and reads plates in a BGR image (a frame, an ROI or a vehicle crop).

    ``region``: the camera's country (``"IT"``: Italian formats are preferred where the model
    finds them likely; another code likewise for that country) or ``"auto"`` (no preference).
    ``max_plates``: readings returned per image (best first). ``max_candidates``: plate
    candidates read per image (largest text first; 8, because a street scene's signs, stickers
    and phone numbers, larger than a far plate, often fill the first four), plus up to
    :attr:`MAX_TOP_GUESSES` two-line guesses made from them.
    ``min_confidence``: calibrated confidence below which a reading is dropped.
    ``cross_check``: when a second recogniser reads the plate's lines too
    (:data:`~vigil.plates.fusion.CROSS_CHECK_MODES`: ``off``, ``unsure``: readings the first is
    not sure of, ``always``); ``second_recognizer`` is that recogniser,
    Vigil's own line model (:class:`~vigil.plates.ocr.PlateLineRecognizer`) when not given.
    """

    #: height of the rectified plate, pixels
    PLATE_HEIGHT = 64
    #: padding of the line crops beyond the plate (left unless a band was cut, right; top, bottom),
    #: in plate heights
    PAD_X, PAD_Y = 0.12, 0.0
    #: a line whose frames give a sign's symbol (:data:`~.ocr.SIGN_SYMBOLS`) at least this
    #: probability is a sign's line
    SIGN_PROB = 0.5
    #: a two-line plate's bottom line (at most 6 characters) is at most this wide per height of
    #: its detector box; only such lines get a top-line guess, at most MAX_TOP_GUESSES per image
    MAX_BOTTOM_ASPECT = 3.5
    MAX_TOP_GUESSES = 3

    def __init__(
        self,
        region: str = "auto",
        det_max_side: int = 640,
        threads: int = 2,
        max_plates: int = 1,
        min_text_height: float = 8.0,
        min_confidence: float = 0.05,
        max_candidates: int = 8,
        use_haar: bool = False,
        det_model: str | None = None,
        rec_model: str | None = None,
        recognizer=None,
        second_recognizer=None,
        cross_check: str = "off",
    ):
        if cross_check not in CROSS_CHECK_MODES:
            raise ValueError(f"cross_check must be one of {', '.join(CROSS_CHECK_MODES)}, got {cross_check!r}")
        if cross_check == "off" and second_recognizer is not None:
            raise ValueError("a second recogniser is used only with cross_check 'unsure' or 'always', got 'off'")
        if cross_check != "off" and second_recognizer is None:
            second_recognizer = PlateLineRecognizer(threads=threads)  # Vigil's own line model
        self.second = second_recognizer
        self.cross_check = cross_check
        self.region = region
        self.detector = TextDetector(det_model, max_side=det_max_side, threads=threads, unclip_ratio=1.8)
        self.recognizer = recognizer or TextRecognizer(rec_model, threads=threads)
        self.max_plates = max_plates
        self.max_candidates = int(max_candidates)
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

    # ------------------------------------------------------------------ localise
    def candidates(self, image: np.ndarray) -> list[PlateCandidate]:
        """Plate candidates in ``image``, most plausible first (at most ``max_candidates``)."""
        boxes = [b for b in self.detector(image) if _text_height(b) >= self.min_text_height]
        if self.cascades:
            boxes += self._haar_boxes(image)
        cands = []
        for group in group_lines(boxes):
            c = plate_quad(image, group)
            x1, y1, x2, y2 = c.xyxy
            if x2 - x1 < 12 or y2 - y1 < 6:
                continue
            aspect = _aspect(c.quad)
            if not 0.8 <= aspect <= 8.0 or (len(group) == 1 and aspect < 1.6):
                continue
            cands.append(c)
        cands = cands[: self.max_candidates]
        return cands + self._top_line_guesses(image, cands)

    def _top_line_guesses(self, image: np.ndarray, cands: list[PlateCandidate]) -> list[PlateCandidate]:
        """Two-line candidates for short one-line ones with strokes right above them: a motorcycle
        or square plate whose short top line ("L", "TN") the text detector missed
        (:func:`.localise.top_line_guess`). At most :attr:`MAX_TOP_GUESSES`, in ``cands``' order;
        a line that already is the bottom of a two-line candidate gets none."""
        bottoms = {id(c.lines[-1]) for c in cands if len(c.lines) == 2}
        out: list[PlateCandidate] = []
        for c in cands:
            if len(out) >= self.MAX_TOP_GUESSES:
                break
            if len(c.lines) != 1 or id(c.lines[0]) in bottoms:
                continue
            line = c.lines[0]
            if line.width > self.MAX_BOTTOM_ASPECT * line.height:
                continue
            pair = top_line_guess(image, line)
            if pair is not None:
                out.append(plate_quad(image, list(pair)))
        return out

    def _job(self, image: np.ndarray, cand: PlateCandidate) -> _Job:
        plate, lines, band = plate_crops(image, cand, self.PLATE_HEIGHT, self.PAD_X, self.PAD_Y)
        aspect = _aspect(cand.quad) if len(cand.lines) == 1 else None
        looks = frozenset({"top_band"}) if find_top_band(image, cand.quad) else frozenset()
        return _Job(cand, plate, lines, band, aspect, looks)

    # ------------------------------------------------------------------ read
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
        return self.read_candidates(image, self.candidates(image), (ox, oy))

    def read_candidates(
        self, image: np.ndarray, cands: list[PlateCandidate], offset: tuple[int, int] = (0, 0)
    ) -> list[PlateReading]:
        """Read the given candidates of ``image`` (from :meth:`candidates`), best first;
        ``offset`` is added to the boxes (the ROI's corner)."""
        if not cands:
            return []
        jobs = [self._job(image, c) for c in cands]
        kept = choose_plates(self._read_jobs(jobs, offset), self.max_plates, self.region)
        # the confidence floor applies after the choice: a doubtful plate is dropped, and the
        # shop sign it beat stays beaten
        return [r for r in kept if r.confidence >= self.min_confidence]

    def read_plate(self, plate: np.ndarray, lines: int = 1) -> PlateReading | None:
        """Read an image that is already one plate (or a tight crop of its characters):
        no localisation; ``lines``: 1, or 2 for a two-line plate split at its middle."""
        if plate is None or plate.ndim != 3 or min(plate.shape[:2]) < 6:
            return None
        h, w = plate.shape[:2]
        quad = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
        group = [TextLine((w / 2, h / 2), w, h, 0.0, 1.0)]
        if lines == 2:
            group = [TextLine((w / 2, h / 4), w, h / 2, 0.0, 1.0), TextLine((w / 2, 3 * h / 4), w, h / 2, 0.0, 1.0)]
        job = self._job(plate, PlateCandidate(quad, group, 1.0, 4))
        job.aspect = None  # a crop's shape, not the plate's: a tight crop has no margins
        res = self._read_jobs([job], (0, 0))
        return res[0] if res else None

    def _read_jobs(self, jobs: list[_Job], offset: tuple[int, int]) -> list[PlateReading]:
        crops: list[np.ndarray] = []
        index: list[tuple[int, str]] = []
        for i, job in enumerate(jobs):
            for c in job.lines:
                crops.append(c)
                index.append((i, "line"))
            if job.band is not None and job.band.size:
                crops.append(job.band)
                index.append((i, "band"))
        if not crops:
            return []
        ox, oy = offset
        out: list[PlateReading] = []
        if hasattr(self.recognizer, "probs"):
            if hasattr(self.recognizer, "probs_and_signs"):
                mats, signs = self.recognizer.probs_and_signs(crops)
            else:
                mats, signs = self.recognizer.probs(crops), [0.0] * len(crops)
            per: dict[int, dict] = {}
            for (i, what), mat, sign in zip(index, mats, signs):
                d = per.setdefault(i, {"lines": [], "band": None, "sign": 0.0})
                if what == "line":
                    d["lines"].append(mat)
                    d["sign"] = max(d["sign"], sign)
                else:
                    d["band"] = _band_country(mat)
            for i, job in enumerate(jobs):
                d = per.get(i)
                if not d or not d["lines"]:
                    continue
                dec = interpret(
                    d["lines"],
                    PLATE_ALPHABET,
                    region=self.region,
                    band_country=d["band"],
                    aspect=job.aspect,
                    looks=job.looks,
                )
                if self.second is not None and (self.cross_check == "always" or not dec.sure):
                    dec = self._cross_check(job, dec, d)
                if not dec.text:
                    continue
                out.append(self._reading(job, dec, d["band"], ox, oy, sign=d["sign"] >= self.SIGN_PROB))
        else:  # a fixed-slot recogniser: text and per-character confidences only
            results = self.recognizer(crops)
            texts: dict[int, list] = {}
            for (i, what), res in zip(index, results):
                if what == "line":
                    texts.setdefault(i, []).append(res)
            for i, job in enumerate(jobs):
                if i not in texts:
                    continue
                raw = "".join(t for t, _, _ in texts[i])
                confs = [c for _, _, cc in texts[i] for c in cc]
                dec = decision_from_text(raw, confs, region=self.region, lines=len(texts[i]))
                if dec.valid and dec.text:
                    out.append(self._reading(job, dec, None, ox, oy))
        return out

    def _cross_check(self, job: _Job, dec: PlateDecision, d: dict) -> PlateDecision:
        """The second recogniser reads the same line crops; :func:`.fusion.fuse` decides."""
        mats = self.second.probs(job.lines)
        if len(mats) != len(d["lines"]):
            return dec
        other = interpret(
            mats, PLATE_ALPHABET, region=self.region, band_country=d["band"], aspect=job.aspect, looks=job.looks
        )
        return fuse((dec, d["lines"]), (other, mats), PLATE_ALPHABET)

    def _reading(
        self, job: _Job, dec: PlateDecision, band: str | None, ox: int, oy: int, sign: bool = False
    ) -> PlateReading:
        """``sign``: a line of the candidate reads one of :data:`~.ocr.SIGN_SYMBOLS`."""
        quad = job.cand.quad + np.array([ox, oy], np.float32)
        x1, y1, x2, y2 = quad_xyxy(quad)
        fits = dec.format is not None
        home = dec.country is not None and dec.country == self.region
        # plate-likeness: the calibrated confidence, a known format, the camera's own country
        # (a shop sign that happens to fit a permissive foreign format loses to the home plate),
        # the plate's edges found in the image
        # plate text without a digit (a shop's name, "HOTEL") is almost never a plate
        digitless = not any(ch.isdigit() for ch in dec.text)
        score = float(dec.confidence) + 0.5 * fits + 0.25 * home + 0.1 * (job.cand.edges_found / 4.0) - 0.5 * digitless
        # a "%" or "€" beside the letters ("SALDI 50%" fits a German format): the format's fit
        # is chance, and the text is a sign's, never a sure plate
        score -= (0.5 + 0.5 * fits) * sign
        return PlateReading(
            text=dec.text,
            confidence=float(dec.confidence),
            box=(x1, y1, x2, y2),
            kind=dec.kind,
            country=dec.country,
            raw=dec.raw,
            crop=job.plate,
            score=score,
            quad=quad,
            sure=bool(dec.sure) and not sign,
            char_confs=tuple(dec.char_confs),
            lines=len(job.lines),
            band=band,
            format=dec.format,
            quality=read_quality(job.plate, job.cand.quad),
        )


def choose_plates(readings: list[PlateReading], max_plates: int, region: str = "auto") -> list[PlateReading]:
    """The plates of one image from its candidates' readings: best ``score`` first, at most
    ``max_plates``, one per place (a reading whose box overlaps a chosen one at IoU ≥ 0.3 is the
    same plate). Two overlapping readings of one plate are settled by what they read, not by
    score:

    - the same text: the smaller box is the plate (the larger one's extra line or margin, a
      dealer's sticker above the plate grouped with it, read as nothing);
    - a two-line reading that fits a format and contains a one-line reading as its bottom (or
      top) line: the two-line one is the plate, the other one of its lines ("1413XJ" alone
      fits a Dutch format; with the "K" above it is Austrian), unless the line alone is a
      plate of the camera's ``region`` and the two lines together are not.
    """
    kept: list[PlateReading] = []
    for r in sorted(readings, key=lambda r: -r.score):
        if kept:
            ious = box_iou(np.array([r.box]), np.array([k.box for k in kept]))[0]
            j = int(ious.argmax())
            if ious[j] >= 0.3:
                k = kept[j]
                if (r.text == k.text and _box_area(r.box) < _box_area(k.box)) or _completes(r, k, region):
                    kept[j] = r
                continue
        if len(kept) < max_plates:
            kept.append(r)
    return kept


def _completes(whole: PlateReading, part: PlateReading, region: str) -> bool:
    """``whole`` is ``part``'s plate with its other line read (see :func:`choose_plates`)."""
    if whole.lines <= part.lines or whole.format is None or len(whole.text) <= len(part.text):
        return False
    if not (whole.text.endswith(part.text) or whole.text.startswith(part.text)):
        return False
    return not (part.format is not None and part.country == region and whole.country != region)


def plate_crops(
    image: np.ndarray, cand: PlateCandidate, height: int = 64, pad_x: float = 0.12, pad_y: float = 0.0
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray | None]:
    """What the recogniser reads of a candidate: (the rectified plate ``(height, W, 3)``, its text
    lines' crops top first, the EU band's lower part or None), BGR uint8.

    The blue EU band (and the Italian right-hand band) is cut off; the line crops come from a view
    padded ``pad_x`` plate heights beyond the plate's ends (not back into a cut band) and ``pad_y``
    above and below, contrast-stretched. One home for the cut, so that a recogniser trained on
    synthetic plates (:mod:`.line_data`) sees exactly what the reader gives it.
    """
    plate, m = rectify(image, cand.quad, height)
    hgt, wid = plate.shape[:2]
    left = _find_band(plate, "left")
    right = _find_band(plate, "right", max_frac=0.12)
    x0 = left + 1 if left else 0
    x1 = wid - right - 1 if right else wid
    if x1 - x0 < 0.5 * wid:
        x0, x1 = 0, wid
    # the line crops come from a view padded around the plate (a glyph at the plate's end,
    # or beyond a slightly tight quad, keeps its whole shape and some background: the
    # recogniser drops characters that touch a crop's edge)
    px, py = int(round(pad_x * hgt)), int(round(pad_y * hgt))
    pl = 0 if left else px  # cut at a band's inner edge: no padding back into the band
    outer = np.array([[x0 - pl, -py], [x1 + px, -py], [x1 + px, hgt + py], [x0 - pl, hgt + py]], np.float32)
    view, _ = rectify(image, cv2.perspectiveTransform(outer.reshape(1, 4, 2), np.linalg.inv(m))[0], hgt + 2 * py)
    lines = []
    for ln in cand.lines:
        r0, r1 = _line_rows(ln.quad, m, hgt) if len(cand.lines) > 1 else (0, hgt)
        if r1 - r0 < 6:
            r0, r1 = 0, hgt
        # rows in the padded view: the plate's own top and bottom get the whole padding,
        # a split between two lines half of it
        r0 = r0 + py - (py if r0 == 0 else py // 2)
        r1 = r1 + py + (py if r1 == hgt else py // 2)
        lines.append(_stretch(view[max(0, r0) : min(view.shape[0], r1)]))
    band = plate[int(hgt * 0.45) :, :left] if left >= 6 else None
    return plate, lines, band


def _stretch(crop: np.ndarray) -> np.ndarray:
    """Contrast stretch of a line crop: its 2nd and 98th grey percentiles to 0 and 255 (a dark
    or washed-out plate, at night or in IR light, gets the contrast the recogniser was trained
    on; reading is invariant to such a change). Crops with almost no contrast are left alone."""
    if crop.size == 0:
        return crop
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    lo, hi = np.percentile(gray, (2, 98))
    if hi - lo < 8:
        return crop
    scale = 255.0 / (hi - lo)
    return np.clip((crop.astype(np.float32) - lo) * scale, 0, 255).astype(np.uint8)


def _band_country(mat: np.ndarray, min_conf: float = 0.8) -> str | None:
    """The country of an EU band's letters (greedy CTC over the letters only), or None when
    they are not a known code or a letter is doubtful (below ``min_conf``)."""
    best = mat.argmax(1)
    chars, prev = [], 0
    for t, k in enumerate(best):
        if k != prev and k != 0 and PLATE_ALPHABET[k - 1].isalpha():
            if mat[t, k] < min_conf:
                return None
            chars.append(PLATE_ALPHABET[k - 1])
        prev = k
    return EU_BAND_CODES.get("".join(chars))


def _text_height(box: TextBox) -> float:
    q = box.quad
    return float(min(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[0] - q[1])))


def _aspect(q: np.ndarray) -> float:
    w, h = quad_size(q)
    return w / max(h, 1e-6)


def _box_area(box: tuple[float, float, float, float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
