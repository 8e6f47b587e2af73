"""The Ultralytics-style YOLO output: its two layouts, their decoders, and the detector base
shared by the ``onnx`` and ``ultralytics`` backends.

- ``anchors``: ``(B, 4 + C, N)`` — YOLOv8 / YOLO11 and most Ultralytics detect exports:
  one column per anchor point, ``cx, cy, w, h`` in model-input pixels then ``C`` class
  scores (already sigmoid). Each column takes its best class (as Ultralytics does, so a
  box is never relabelled to a kept class it scored lower on), then per-class thresholds,
  then class-aware NMS.
- ``end2end``: ``(B, N, 6)`` — the NMS-free heads of YOLO26 / YOLOv10 (and exports with
  ``nms=True``): rows ``x1, y1, x2, y2, score, class`` in model-input pixels, no NMS.

Pre-processing is Ultralytics': letterbox (aspect kept, centred, grey 114 padding,
bilinear resize) into a ``(B, H, W, 3)`` BGR ``uint8`` batch; each backend's ``_infer``
turns it into its tensor. Boxes are mapped back to frame pixels exactly through the
:class:`~vigil.detectors.ops.Letterbox` actually applied, and clipped to the frame.
"""

from __future__ import annotations

import time
from typing import Any, Literal, Sequence

import cv2
import numpy as np

from vigil.detectors.base import COCO_ALIASES
from vigil.detectors.detections import Detections
from vigil.detectors.ops import Letterbox, letterbox, nms
from vigil.models.errors import ModelError

__all__ = ["Layout", "YoloDetectorBase", "detect_layout", "decode_anchors", "decode_end2end", "static_dim"]

Layout = Literal["anchors", "end2end"]


def static_dim(d: Any) -> int | None:
    """A model dimension that is a positive int, else ``None`` (symbolic or unknown)."""
    return d if isinstance(d, int) and d > 0 else None


def detect_layout(shape: Sequence[Any], num_classes: int | None) -> Layout:
    """The output layout of a ``(B, a, b)`` output shape (dims may be symbolic: ``None`` or str).

    ``(B, 4 + C, N)`` → ``anchors``; ``(B, N, 6)`` → ``end2end``. A shape that fits both
    (a 2-class model with 6 anchors...) is decided by the class count when known.
    Raises :class:`ModelError` when the shape fits neither or stays ambiguous.
    """
    if len(shape) != 3:
        raise ModelError(
            f"expected a 3-D detection output (batch, 4+classes, anchors) or (batch, N, 6), got shape {list(shape)}"
        )
    a, b = static_dim(shape[1]), static_dim(shape[2])
    anchors_ok = a is not None and a > 4 and (num_classes is None or a == 4 + num_classes)
    end2end_ok = b == 6
    if anchors_ok and end2end_ok and num_classes is None and a == 6:
        raise ModelError(
            f"output shape {list(shape)} fits both layouts; set `layout` (anchors or end2end) in the config"
        )
    if end2end_ok and not (anchors_ok and a == 4 + (num_classes or -99)):
        return "end2end"
    if anchors_ok:
        return "anchors"
    expect = "4+C" if num_classes is None else f"{4 + num_classes} (4 + {num_classes} classes)"
    raise ModelError(
        f"unexpected detection output shape {list(shape)}: expected (batch, {expect}, anchors) or (batch, N, 6); "
        "is this a detection model (not segmentation, pose or classification)?"
    )


def decode_anchors(
    out: np.ndarray, thresholds: np.ndarray, keep_class: np.ndarray, iou: float, max_det: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode one image's ``(4 + C, N)`` output into ``(xyxy, score, class_id)`` in model-input pixels.

    ``thresholds``: ``(C,)`` per-class minimum scores; ``keep_class``: ``(C,) bool``.
    Best class per column, thresholds, kept classes, class-aware NMS, at most ``max_det``.
    """
    c = out.shape[0] - 4
    if c != len(thresholds):
        raise ModelError(f"output has {c} class rows but the model has {len(thresholds)} class names")
    scores = out[4:]
    cid = scores.argmax(0)
    score = scores[cid, np.arange(scores.shape[1])]
    ok = (score >= thresholds[cid]) & keep_class[cid]
    if not ok.any():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    cx, cy, w, h = (out[i, ok].astype(np.float32) for i in range(4))
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    score, cid = score[ok].astype(np.float32), cid[ok].astype(np.int64)
    keep = nms(xyxy, score, cid, iou)[:max_det]
    return xyxy[keep], score[keep], cid[keep]


def decode_end2end(
    out: np.ndarray, thresholds: np.ndarray, keep_class: np.ndarray, max_det: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode one image's ``(N, 6)`` rows ``x1, y1, x2, y2, score, class`` (no NMS needed)."""
    score = out[:, 4].astype(np.float32)
    cls_f = out[:, 5]
    cid = np.rint(cls_f).astype(np.int64)
    valid = (cid >= 0) & (cid < len(thresholds)) & np.isfinite(score)
    ok = np.zeros(len(out), bool)
    ok[valid] = (score[valid] >= thresholds[cid[valid]]) & keep_class[cid[valid]]
    xyxy, score, cid = out[ok, :4].astype(np.float32), score[ok], cid[ok]
    order = np.argsort(-score, kind="stable")[:max_det]
    return xyxy[order], score[order], cid[order]


class YoloDetectorBase:
    """Letterbox, batching, decoding and box mapping shared by the YOLO backends; a subclass
    sets ``input_size``, ``batch_size`` (``None``: any), ``layout`` (``None``: from the first
    output) and ``model_path``, calls :meth:`_setup_classes` and implements :meth:`_infer`
    (``(B, H, W, 3)`` BGR ``uint8`` → raw output ``(B, ...)``)."""

    cfg: Any
    model_path: Any
    input_size: tuple[int, int]
    batch_size: int | None = None
    layout: Layout | None = None
    class_names: list[str]

    def _setup_classes(self, names: list[str] | None, where: str) -> None:
        cfg = self.cfg
        if not names:
            raise ModelError(f"{where} has no class names in its metadata; give `class_names` (a names file)")
        self.class_names = [COCO_ALIASES.get(n, n) for n in names]
        names = self.class_names
        unknown = [c for c in list(cfg.classes or []) + list(cfg.class_confidence) if c not in names]
        if unknown:
            raise ModelError(
                f"detector classes {unknown} are not in the class names of {where} "
                f"({len(names)} classes: {names[:8]}...)"
            )
        self.keep_class = np.ones(len(names), bool)
        if cfg.classes is not None:
            self.keep_class[:] = False
            self.keep_class[[names.index(c) for c in cfg.classes]] = True
        thr = np.full(len(names), cfg.confidence, np.float32)
        for c, t in cfg.class_confidence.items():
            thr[names.index(c)] = t
        self.thresholds = thr
        self.last_timing: dict[str, float] = {}

    def _infer(self, batch_hwc: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _preprocess(self, frame: np.ndarray, out: np.ndarray) -> Letterbox:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"detect: expected a BGR uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
        _, lb = letterbox(frame, self.input_size, fill=114, out=out, interpolation=cv2.INTER_LINEAR)
        return lb

    def _check_output(self, shape: Sequence[Any], batch: int | None = None) -> None:
        shape = list(shape)
        if len(shape) != 3:
            raise ModelError(
                f"model {self.model_path}: unexpected output shape {shape}: "
                "expected (batch, 4+classes, anchors) or (batch, N, 6)"
            )
        if batch is not None and shape[0] != batch:
            raise ModelError(f"model {self.model_path}: output shape {shape} for a batch of {batch}")
        if self.layout == "anchors" and static_dim(shape[1]) is not None and shape[1] != 4 + len(self.class_names):
            raise ModelError(
                f"model {self.model_path}: output shape {shape} has {shape[1] - 4} class rows "
                f"but {len(self.class_names)} class names are known"
            )
        if self.layout == "end2end" and static_dim(shape[2]) is not None and shape[2] != 6:
            raise ModelError(
                f"model {self.model_path}: output shape {shape} is not (batch, N, 6) as layout end2end needs"
            )

    def _decode(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.layout == "anchors":
            return decode_anchors(out, self.thresholds, self.keep_class, self.cfg.nms_iou, self.cfg.max_detections)
        return decode_end2end(out, self.thresholds, self.keep_class, self.cfg.max_detections)

    def detect(self, frame: np.ndarray) -> Detections:
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        """Detections for each frame (any sizes), run ``max_batch`` (or the model's fixed batch) at a time."""
        if not frames:
            return []
        t_pre = t_inf = t_post = 0.0
        chunk = self.batch_size or self.cfg.max_batch
        h, w = self.input_size
        results: list[Detections] = []
        for start in range(0, len(frames), chunk):
            part = frames[start : start + chunk]
            t0 = time.perf_counter()
            n = self.batch_size or len(part)  # a static batch is padded with blank images
            batch = np.full((n, h, w, 3), 114, np.uint8)
            maps = [self._preprocess(f, batch[i]) for i, f in enumerate(part)]
            t1 = time.perf_counter()
            out = self._infer(batch)
            if self.layout is None:  # dynamic output dims: decide on the first real output
                try:
                    self.layout = detect_layout(out.shape, len(self.class_names))
                except ModelError as exc:
                    raise ModelError(f"model {self.model_path}: {exc}") from None
            self._check_output(out.shape, n)
            t2 = time.perf_counter()
            for i, (f, lb) in enumerate(zip(part, maps)):
                xyxy, score, cid = self._decode(out[i])
                xyxy = lb.to_image(xyxy)
                fh, fw = f.shape[:2]
                xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, fw)
                xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, fh)
                results.append(Detections(xyxy=xyxy, confidence=score, class_id=cid))
            t3 = time.perf_counter()
            t_pre += t1 - t0
            t_inf += t2 - t1
            t_post += t3 - t2
        self.last_timing = {"pre_ms": t_pre * 1e3, "infer_ms": t_inf * 1e3, "post_ms": t_post * 1e3}
        return results
