"""PP-OCRv4 text detection and recognition run directly with onnxruntime.

The model files come from the ``rapidocr-onnxruntime`` wheel (they ship inside it; nothing
is downloaded). Only the ``.onnx`` files are used: pre- and post-processing live here so
that detection can run at a small input size (plates are large, short text lines), and
recognition can batch plate crops.

- :class:`TextDetector`: differentiable-binarisation map → rotated text boxes.
- :class:`TextRecognizer`: CTC recognition of a crop, returning text and a confidence.

Other ONNX recognisers (fast-alpr / open-image-models style: fixed input, fixed alphabet)
are supported through :class:`OnnxPlateRecognizer`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

#: the characters a plate is read in (CTC columns 1..36 of :meth:`TextRecognizer.probs`)
PLATE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: characters of shop signs, prices and addresses that no plate carries ("SALDI 50%",
#: "9,90 €", "info@bar.it"); an emblem at a plate's end (a police crest, a canton's cross) reads
#: as "#", "*" or "+", which are therefore not among them
SIGN_SYMBOLS = "%€$£@"

__all__ = [
    "PLATE_ALPHABET",
    "SIGN_SYMBOLS",
    "OcrUnavailable",
    "TextBox",
    "TextDetector",
    "TextRecognizer",
    "OnnxPlateRecognizer",
    "PlateLineRecognizer",
    "default_model_dir",
    "line_input",
]


class OcrUnavailable(RuntimeError):
    """The OCR models are not installed (rapidocr-onnxruntime missing, or a model file not found)."""


def default_model_dir() -> Path:
    """Folder holding the PP-OCRv4 models shipped by ``rapidocr-onnxruntime``."""
    env = os.environ.get("VIGIL_PLATE_MODEL_DIR")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise OcrUnavailable(
            "plate OCR needs the PP-OCRv4 models of rapidocr-onnxruntime: "
            "pip install --no-deps rapidocr-onnxruntime==1.4.4 (see scripts/setup.sh)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _session(path: Path, threads: int) -> ort.InferenceSession:
    if not Path(path).is_file():
        raise OcrUnavailable(f"OCR model not found: {path}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class TextBox:
    """A detected text line: four corners (clockwise from top-left) in image pixels."""

    quad: np.ndarray  # (4, 2) float32
    score: float

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        q = self.quad
        return float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())


def _bgr(crop: np.ndarray) -> np.ndarray:
    return crop if crop.ndim == 3 else cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)


def _scaled_width(crop: np.ndarray) -> int:
    """A crop's width, pixels, once scaled to the recogniser's height of 48 (at least 8)."""
    return max(8, int(np.ceil(48 * crop.shape[1] / max(crop.shape[0], 1))))


def _order_quad(pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float32).reshape(4, 2)
    s = pts.sum(1)
    d = np.diff(pts, axis=1).reshape(-1)
    return np.array([pts[np.argmin(s)], pts[np.argmin(d)], pts[np.argmax(s)], pts[np.argmax(d)]], np.float32)


class TextDetector:
    """PP-OCR DB text detector at a bounded input size (``max_side`` pixels, multiple of 32)."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        max_side: int = 480,
        threads: int = 2,
        thresh: float = 0.3,
        box_thresh: float = 0.5,
        unclip_ratio: float = 1.6,
        min_size: int = 3,
    ):
        self.session = _session(
            Path(model_path) if model_path else default_model_dir() / "ch_PP-OCRv4_det_infer.onnx", threads
        )
        self.input_name = self.session.get_inputs()[0].name
        self.max_side = int(max_side)
        self.thresh, self.box_thresh, self.unclip_ratio, self.min_size = thresh, box_thresh, unclip_ratio, min_size

    def _resize(self, image: np.ndarray) -> tuple[np.ndarray, float, float]:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w)) if self.max_side > 0 else 1.0
        nh = max(32, int(round(h * scale / 32)) * 32)
        nw = max(32, int(round(w * scale / 32)) * 32)
        return cv2.resize(image, (nw, nh)), w / nw, h / nh

    def __call__(self, image: np.ndarray) -> list[TextBox]:
        if image is None or image.ndim != 3 or min(image.shape[:2]) < 8:
            return []
        resized, sx, sy = self._resize(image)
        x = (resized.astype(np.float32) / 255.0 - 0.5) / 0.5
        x = x.transpose(2, 0, 1)[None]
        prob = self.session.run(None, {self.input_name: x})[0][0, 0]
        mask = (prob > self.thresh).astype(np.uint8)
        mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        boxes: list[TextBox] = []
        for c in contours[:1000]:
            rect = cv2.minAreaRect(c)
            if min(rect[1]) < self.min_size:
                continue
            # mean probability inside the contour's bounding box (the "fast" score)
            x0, y0, bw, bh = cv2.boundingRect(c)
            sub = np.zeros((bh, bw), np.uint8)
            cv2.fillPoly(sub, [c.reshape(-1, 2) - [x0, y0]], 1)
            score = float(cv2.mean(prob[y0 : y0 + bh, x0 : x0 + bw], sub)[0])
            if score < self.box_thresh:
                continue
            # unclip: grow the rectangle by area * ratio / perimeter on every side
            (cx, cy), (rw, rh), ang = rect
            dist = rw * rh * self.unclip_ratio / max(1e-6, 2 * (rw + rh))
            grown = ((cx, cy), (rw + 2 * dist, rh + 2 * dist), ang)
            if min(grown[1]) < self.min_size + 2:
                continue
            quad = cv2.boxPoints(grown)
            quad[:, 0] = np.clip(quad[:, 0] * sx, 0, image.shape[1] - 1)
            quad[:, 1] = np.clip(quad[:, 1] * sy, 0, image.shape[0] - 1)
            boxes.append(TextBox(_order_quad(quad), score))
        boxes.sort(key=lambda b: (b.quad[:, 1].mean(), b.quad[:, 0].mean()))
        return boxes


class TextRecognizer:
    """PP-OCRv4 CTC recogniser (input height 48, width up to ``max_width``)."""

    def __init__(
        self, model_path: str | Path | None = None, threads: int = 2, max_width: int = 320, alphabet: str | None = None
    ):
        """``alphabet``: the characters of the CTC classes after the blank, in order (default:
        the ``character`` list in the model's metadata, as PP-OCR exports carry)."""
        self.session = _session(
            Path(model_path) if model_path else default_model_dir() / "ch_PP-OCRv4_rec_infer.onnx", threads
        )
        self.input_name = self.session.get_inputs()[0].name
        if alphabet:
            chars = list(alphabet)
        else:
            chars = self.session.get_modelmeta().custom_metadata_map.get("character", "").splitlines()
        if not chars:
            raise OcrUnavailable("the recognition model carries no character list (set an alphabet)")
        self.alphabet = ["<blank>"] + chars + [" "]
        self.max_width = int(max_width)
        self._fold: np.ndarray | None = None
        self._signs: tuple[int, np.ndarray] | None = None

    def _prep(self, crop: np.ndarray, width: int) -> np.ndarray:
        nw = min(width, _scaled_width(crop))
        img = cv2.resize(crop, (nw, 48)).astype(np.float32)
        img = (img / 255.0 - 0.5) / 0.5
        out = np.zeros((3, 48, width), np.float32)
        out[:, :, :nw] = img.transpose(2, 0, 1)
        return out

    def _width(self, crop: np.ndarray) -> int:
        """The input width a crop is read at: its own aspect at height 48, rounded up to 8 px
        (one output frame each), at least 48 and at most ``max_width``."""
        return int(min(self.max_width, max(48, int(np.ceil(_scaled_width(crop) / 8)) * 8)))

    def _run(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Per crop, its ``(T, classes)`` softmax output, ``T`` = its input width / 8.

        Each crop is read at its own width: crops of one width share a batch, and none is padded
        to another's. The model's attention spans its whole input, so padding a plate to the
        width of a longer sign in the same image changed the plate's reading (OpenALPR-BR's
        "OKM2371": "O" alone, "D" in a batch with a wider crop)."""
        by_width: dict[int, list[int]] = {}
        for i, c in enumerate(crops):
            by_width.setdefault(self._width(c), []).append(i)
        out: list = [None] * len(crops)
        for width, idx in by_width.items():
            batch = np.stack([self._prep(_bgr(crops[i]), width) for i in idx])
            for i, m in zip(idx, self.session.run(None, {self.input_name: batch})[0]):
                out[i] = m
        return out

    def _plate_fold(self, n_classes: int) -> np.ndarray:
        """``(n_classes, 37)`` 0/1 matrix taking the model's classes to the plate matrix's columns
        (0 = blank, 1..36 = ``PLATE_ALPHABET``): lower case folds onto upper case, everything
        else onto the blank. Built once per model."""
        if self._fold is None or self._fold.shape[0] != n_classes:
            fold = np.zeros((n_classes, len(PLATE_ALPHABET) + 1), np.float32)
            for i, ch in enumerate(self.alphabet[:n_classes]):
                k = PLATE_ALPHABET.find(ch.upper()) if len(ch) == 1 else -1
                fold[i, k + 1 if k >= 0 else 0] = 1.0
            self._fold = fold
        return self._fold

    def probs(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Per crop, a ``(T, 37)`` float32 matrix of CTC probabilities over the blank (column 0)
        and ``PLATE_ALPHABET`` (columns 1..36), rows summing to 1: the model's other classes
        (punctuation, other scripts) count as blank, lower case as upper case. Trailing padding
        frames (beyond the crop's own width) are cut off."""
        return self.probs_and_signs(crops)[0]

    def probs_and_signs(self, crops: list[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
        """:meth:`probs`, and per crop the highest probability any of its frames gives one of
        :data:`SIGN_SYMBOLS` (0-1): a line that reads "50%" is a shop sign, whatever format
        its letters and digits happen to fit."""
        if not crops:
            return [], []
        res, signs = [], []
        for crop, out in zip(crops, self._run(crops)):
            out = out.astype(np.float32)
            m = out @ self._plate_fold(out.shape[-1])
            m /= np.maximum(m.sum(-1, keepdims=True), 1e-9)
            t_all = len(m)
            nw = min(t_all * 8, _scaled_width(crop))
            t = max(1, min(t_all, int(np.ceil(nw / 8)) + 1))
            res.append(np.ascontiguousarray(m[:t]))
            cols = self._sign_columns(out.shape[-1])
            signs.append(float(out[:t, cols].max()) if len(cols) else 0.0)
        return res, signs

    def _sign_columns(self, n_classes: int) -> np.ndarray:
        """The model's classes that are :data:`SIGN_SYMBOLS` (built once per model)."""
        if self._signs is None or self._signs[0] != n_classes:
            cols = [i for i, ch in enumerate(self.alphabet[:n_classes]) if ch in SIGN_SYMBOLS]
            self._signs = (n_classes, np.array(cols, np.int64))
        return self._signs[1]

    def __call__(self, crops: list[np.ndarray]) -> list[tuple[str, float, list[float]]]:
        """Text, mean character confidence, and per-character confidences for each crop."""
        if not crops:
            return []
        results = []
        for logits in self._run(crops):
            row, p = logits.argmax(-1), logits.max(-1)
            text, confs, prev = [], [], 0
            for i, c in enumerate(row):
                if c != 0 and c != prev:
                    text.append(self.alphabet[c] if c < len(self.alphabet) else "")
                    confs.append(float(p[i]))
                prev = c
            results.append(("".join(text), float(np.mean(confs)) if confs else 0.0, confs))
        return results


class OnnxPlateRecognizer:
    """A fixed-size plate recogniser (fast-plate-ocr / fast-alpr / open-image-models "cct" style).

    Input: one plate crop resized to ``height`` × ``width`` (default: the model's input shape,
    else 64 × 128), grayscale (``grayscale=True``, 1 channel) or RGB (3 channels), laid out
    ``(N, H, W, C)`` (or ``(N, C, H, W)`` when the model's input shape says so), as uint8 pixel
    values 0-255 (float32 with the same values when the model's input is float).
    Output: ``(N, slots, len(alphabet))`` (or flattened ``(N, slots * len(alphabet))``) class
    probabilities per character slot; the arg-max of each slot is its character and slots whose
    character is the pad character ``pad`` are dropped. Confidence: mean probability of the kept slots.
    """

    def __init__(
        self,
        model_path: str | Path,
        alphabet: str,
        height: int | None = None,
        width: int | None = None,
        grayscale: bool = True,
        pad: str = "_",
        threads: int = 2,
    ):
        if not alphabet:
            raise ValueError("a fixed-slot plate recogniser needs its alphabet")
        self.session = _session(Path(model_path), threads)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape) if inp.shape is not None else []
        channels = 1 if grayscale else 3
        self.nchw = len(shape) == 4 and shape[1] == channels and shape[3] != channels
        hw = (shape[2], shape[3]) if self.nchw else (shape[1], shape[2]) if len(shape) == 4 else (None, None)
        self.height = int(height or (hw[0] if isinstance(hw[0], int) else 64))
        self.width = int(width or (hw[1] if isinstance(hw[1], int) else 128))
        self.dtype = np.float32 if "float" in str(inp.type) else np.uint8
        self.alphabet, self.grayscale, self.pad = alphabet, grayscale, pad

    def _prep(self, c: np.ndarray) -> np.ndarray:
        img = cv2.resize(c, (self.width, self.height))
        if self.grayscale:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
            img = img[..., None]
        else:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        return img.transpose(2, 0, 1) if self.nchw else img

    def __call__(self, crops: list[np.ndarray]) -> list[tuple[str, float, list[float]]]:
        if not crops:
            return []
        batch = np.stack([self._prep(c) for c in crops]).astype(self.dtype)
        out = np.asarray(self.session.run(None, {self.input_name: batch})[0])
        if out.size % (len(crops) * len(self.alphabet)):
            raise ValueError(
                f"recogniser output shape {out.shape} is not (N, slots, {len(self.alphabet)}): "
                f"the alphabet has {len(self.alphabet)} characters"
            )
        out = out.reshape(len(crops), -1, len(self.alphabet))
        results = []
        for row in out:
            idx, p = row.argmax(-1), row.max(-1)
            chars = [(self.alphabet[i], float(q)) for i, q in zip(idx, p) if self.alphabet[i] != self.pad]
            results.append(
                (
                    "".join(c for c, _ in chars),
                    float(np.mean([q for _, q in chars])) if chars else 0.0,
                    [q for _, q in chars],
                )
            )
        return results


#: input of Vigil's own plate line recogniser (:class:`PlateLineRecognizer`): grey, pixels
LINE_HEIGHT, LINE_WIDTH = 32, 192
#: input columns per CTC frame of that model
LINE_STRIDE = 4


def line_input(crop: np.ndarray) -> tuple[np.ndarray, int]:
    """One line crop (BGR or grey uint8, any size) as the line recogniser's input: a
    ``(LINE_HEIGHT, LINE_WIDTH)`` float32 image, grey, resized to the height keeping its aspect
    (squeezed where wider), the right edge replicated beyond it, standardised (zero mean, unit
    spread over the crop, so gain and offset do not matter); and its width in input columns."""
    g = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    h, w = g.shape[:2]
    nw = int(min(LINE_WIDTH, max(LINE_STRIDE, round(LINE_HEIGHT * w / max(h, 1)))))
    img = cv2.resize(g, (nw, LINE_HEIGHT), interpolation=cv2.INTER_AREA if h > LINE_HEIGHT else cv2.INTER_LINEAR)
    img = img.astype(np.float32)
    mean, std = float(img.mean()), float(img.std())
    out = np.empty((LINE_HEIGHT, LINE_WIDTH), np.float32)
    out[:, :nw] = img
    out[:, nw:] = img[:, -1:]
    return (out - mean) / max(std, 8.0), nw


class PlateLineRecognizer:
    """Vigil's own plate line recogniser (a small CNN + BiLSTM with CTC, trained on synthetic
    plates only: :mod:`vigil.plates.line_model`), run with onnxruntime. Its classes are already
    the plate matrix's: 0 = blank, 1..36 = ``PLATE_ALPHABET``."""

    def __init__(self, model_path: str | Path | None = None, threads: int = 2):
        self.path = Path(model_path) if model_path else default_line_model()
        self.session = _session(self.path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def probs(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Per crop, a ``(T, 37)`` float32 matrix of CTC probabilities (rows sum to 1), the frames
        beyond the crop's own width cut off (one frame per ``LINE_STRIDE`` input columns)."""
        if not crops:
            return []
        prepped = [line_input(c) for c in crops]
        batch = np.stack([p for p, _ in prepped])[:, None]
        out = self.session.run(None, {self.input_name: batch})[0].astype(np.float32)
        res = []
        for (_, nw), m in zip(prepped, out):
            t = max(1, min(m.shape[0], int(np.ceil(nw / LINE_STRIDE)) + 1))
            m = m[:t]
            res.append(np.ascontiguousarray(m / np.maximum(m.sum(-1, keepdims=True), 1e-9)))
        return res


def default_line_model() -> Path:
    """The line recogniser's ONNX file shipped in this package (``VIGIL_PLATE_LINE_MODEL`` overrides)."""
    env = os.environ.get("VIGIL_PLATE_LINE_MODEL")
    return Path(env) if env else Path(__file__).with_name("plate_lines.onnx")
