"""Ultralytics YOLOv8 detection checkpoints (``.pt``) → ONNX, with numpy and onnx only.

No torch, no ultralytics: the checkpoint (a zip holding ``<prefix>/data.pkl`` and the raw
tensor storages ``<prefix>/data/<key>``) is read by :func:`~vigil.models.pt_gate.read_pt`,
which first passes it through the gate :func:`~vigil.models.pt_gate.check_pt` (an allow-list
of globals, bounded sizes before anything is allocated) and then unpickles it with the same
*restricted* unpickler: modules become inert :class:`~vigil.models.pt_pickle.Stub` objects,
tensors numpy arrays; anything else raises :class:`~vigil.models.pt_pickle.UnsafeCheckpointError`
(a :class:`~vigil.models.errors.ModelError`) before anything is called.

Supported layers of ``model.model`` (Ultralytics 8.x module names): ``Conv`` (Conv2d +
BatchNorm2d + SiLU/ReLU/identity; the batch norm is folded into the convolution in
float32), ``C2f``, ``C3``, ``Bottleneck``, ``SPPF``, ``nn.Upsample`` (nearest, integer
scale), ``Concat`` and ``Detect`` (the anchor-free head of YOLOv8 / YOLOv5u, DFL decode).
Anything else raises :class:`UltralyticsPtError` (a ``ValueError``) naming the type and
the layer index.

The graph takes ``images``: ``(B, 3, H, W) float32`` RGB in ``[0, 1]``; ``B``, ``H`` and
``W`` are dynamic (``H`` and ``W`` multiples of the largest stride, usually 32) unless
:func:`convert` is given a fixed ``input_size``. The anchor grid is computed inside the
graph from the runtime feature-map shapes. It returns ``output0``:
``(B, 4 + nc, N) float32`` — rows 0-3 the box ``cx, cy, w, h`` in model-input pixels,
rows ``4..`` the per-class sigmoid scores (no objectness, no NMS), ``N = sum(H/s * W/s)``
over the head's strides — the layout of Ultralytics' own ONNX export, so the result
works with Vigil's ``onnx`` detector backend (layout ``anchors``) unchanged. The metadata
carries ``names`` (a Python dict literal), ``stride``, ``task``, ``imgsz``, ``description``,
``author`` and ``converter`` like an Ultralytics export does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vigil.models.pt_gate import read_pt
from vigil.models.pt_pickle import Stub, UltralyticsPtError

__all__ = [
    "Checkpoint",
    "load_checkpoint",
    "to_onnx",
    "convert",
    "CONVERTER",
    "SUPPORTED_LAYERS",
]

OPSET = 17
CONVERTER = "vigil ultralytics_pt 1"
SUPPORTED_LAYERS = ("Conv", "C2f", "C3", "SPPF", "Upsample", "Concat", "Detect")


# ---------------------------------------------------------------------------- checkpoint
@dataclass
class Layer:
    """One entry of ``model.model``: ``index`` (``.i``), ``type`` (class name), ``f`` (from: -1,
    an absolute index, or a list of them) and the :class:`Stub` module itself."""

    index: int
    type: str
    f: int | list[int]
    module: Stub


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` reads from a ``.pt``.

    ``names``: class names in model order (``nc`` of them); ``strides``: the Detect head's
    strides in input pixels (e.g. ``(8, 16, 32)``), ``stride`` their maximum; ``imgsz``:
    the training size ``(H, W)`` in pixels; ``yaml``: the architecture dict; ``layers``:
    the module list in forward order; ``meta``: the checkpoint's top-level scalars
    (``date``, ``version``, ``license``, ``docs``...) and ``train_args``.
    """

    path: str
    names: list[str]
    nc: int
    strides: tuple[int, ...]
    imgsz: tuple[int, int]
    yaml: dict
    layers: list[Layer]
    meta: dict = field(default_factory=dict)
    train_args: dict = field(default_factory=dict)

    @property
    def stride(self) -> int:
        return max(self.strides)

    @property
    def arch(self) -> str:
        """Model name from the yaml file name, e.g. ``yolov8n``."""
        yf = self.yaml.get("yaml_file") or ""
        return Path(str(yf)).stem or Path(self.path).stem


def _tname(obj: Any) -> str:
    return type(obj).__qualname__ if isinstance(obj, Stub) else type(obj).__name__


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read an Ultralytics detection checkpoint (the EMA model when the file has one)."""
    path = str(path)
    ck = read_pt(path)
    if isinstance(ck, Stub):  # a bare pickled model
        ck = {"model": ck}
    if not isinstance(ck, dict):
        raise UltralyticsPtError(f"{path}: expected a checkpoint dict with 'model', got {type(ck).__name__}")
    model = ck.get("ema") or ck.get("model")
    if not isinstance(model, Stub):
        raise UltralyticsPtError(f"{path}: checkpoint has no 'model' (keys: {sorted(map(str, ck))})")
    mname = _tname(model)
    seq = model.__dict__.get("_modules", {}).get("model")
    if not isinstance(seq, Stub) or not isinstance(seq.__dict__.get("_modules"), dict):
        raise UltralyticsPtError(f"{path}: {mname} has no module list 'model': not an Ultralytics model")
    layers: list[Layer] = []
    for k, m in enumerate(seq.__dict__["_modules"].values()):
        d = m.__dict__
        f = d.get("f", -1)
        i = int(d.get("i", k))
        if i != k:
            raise UltralyticsPtError(f"{path}: layer {k} ({_tname(m)}) says it is layer {i}")
        layers.append(Layer(k, _tname(m), list(f) if isinstance(f, (list, tuple)) else int(f), m))
    if not layers or layers[-1].type != "Detect":
        what = layers[-1].type if layers else "nothing"
        raise UltralyticsPtError(
            f"{path}: the last layer is {what} (layer {len(layers) - 1}), not Detect: "
            "only detection models are supported "
            f"(this is a {mname})"
        )
    head = layers[-1].module
    nc = int(head.__dict__.get("nc", 0))
    st = head.__dict__.get("stride")
    if st is None:
        st = model.__dict__.get("stride")
    strides = tuple(int(round(float(s))) for s in np.asarray(st, np.float32).reshape(-1)) if st is not None else ()
    if not strides or any(s <= 0 for s in strides):
        raise UltralyticsPtError(f"{path}: the Detect head has no valid strides ({st!r})")
    raw_names = model.__dict__.get("names")
    if isinstance(raw_names, dict):
        names = [str(raw_names[k]) for k in sorted(raw_names, key=int)]
    elif isinstance(raw_names, (list, tuple)):
        names = [str(n) for n in raw_names]
    else:
        names = [f"class{i}" for i in range(nc)]
    if len(names) != nc:
        raise UltralyticsPtError(f"{path}: {len(names)} class names for a head with nc={nc}")
    targs = ck.get("train_args") or model.__dict__.get("args") or {}
    if not isinstance(targs, dict):
        targs = dict(getattr(targs, "__dict__", {}))
    imgsz = targs.get("imgsz", 640)
    imgsz = (int(imgsz), int(imgsz)) if isinstance(imgsz, (int, float)) else (int(imgsz[0]), int(imgsz[-1]))
    yaml = dict(model.__dict__.get("yaml") or {})
    if "yaml_file" not in yaml and model.__dict__.get("yaml_file"):
        yaml["yaml_file"] = model.__dict__["yaml_file"]
    meta = {k: v for k, v in ck.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)}
    return Checkpoint(path, names, nc, strides, imgsz, yaml, layers, meta, dict(targs))


# ---------------------------------------------------------------------------- ONNX
def _arr(module: Stub, name: str, where: str, required: bool = True) -> np.ndarray | None:
    d = module.__dict__
    for bucket in ("_parameters", "_buffers"):
        b = d.get(bucket) or {}
        if b.get(name) is not None:
            return np.asarray(b[name], np.float32)
    if required:
        raise UltralyticsPtError(f"{where}: {_tname(module)} has no {name!r} tensor")
    return None


def _pair(v: Any, what: str, where: str) -> tuple[int, int]:
    if isinstance(v, str):
        raise UltralyticsPtError(f"{where}: {what}={v!r} is not supported (give explicit integers)")
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            return int(v[0]), int(v[0])
        return int(v[0]), int(v[1])
    return int(v), int(v)


class _Graph:
    """Collects nodes and initializers; every emitted tensor gets a unique name."""

    def __init__(self):
        self.nodes: list = []
        self.inits: list = []
        self._n = 0
        self._consts: dict[tuple, str] = {}

    def uid(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, value: np.ndarray, prefix: str = "c") -> str:
        value = np.asarray(value)
        key = (value.dtype.str, value.shape, value.tobytes())
        if key in self._consts:
            return self._consts[key]
        name = self.uid(prefix)
        self.inits.append(numpy_helper.from_array(value, name))
        self._consts[key] = name
        return name

    def weight(self, value: np.ndarray, name: str) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, n_out: int = 1, **attrs) -> Any:
        name = name or self.uid(op_type.lower())
        outs = [name] if n_out == 1 else [f"{name}_{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs


class _Builder:
    def __init__(self, ck: Checkpoint):
        self.ck = ck
        self.g = _Graph()

    # --- modules
    def conv2d(self, x: str, conv: Stub, where: str, bn: Stub | None = None) -> str:
        """A Conv2d (optionally followed by a BatchNorm2d, folded in float32)."""
        d = conv.__dict__
        if d.get("padding_mode", "zeros") != "zeros":
            raise UltralyticsPtError(f"{where}: Conv2d padding_mode={d.get('padding_mode')!r} is not supported")
        if d.get("transposed"):
            raise UltralyticsPtError(f"{where}: transposed convolutions are not supported")
        w = _arr(conv, "weight", where)
        b = _arr(conv, "bias", where, required=False)
        out_c = w.shape[0]
        if b is None:
            b = np.zeros(out_c, np.float32)
        if bn is not None:
            if _tname(bn) != "BatchNorm2d":
                raise UltralyticsPtError(f"{where}: unsupported normalisation {_tname(bn)} (only BatchNorm2d)")
            eps = float(bn.__dict__.get("eps", 1e-5))
            gamma = _arr(bn, "weight", where, required=False)
            beta = _arr(bn, "bias", where, required=False)
            mean, var = _arr(bn, "running_mean", where), _arr(bn, "running_var", where)
            gamma = np.ones(out_c, np.float32) if gamma is None else gamma
            beta = np.zeros(out_c, np.float32) if beta is None else beta
            factor = (gamma / np.sqrt(var + np.float32(eps))).astype(np.float32)
            w = w * factor[:, None, None, None]
            b = (b - mean) * factor + beta
        kh, kw = w.shape[2], w.shape[3]
        sh, sw = _pair(d.get("stride", 1), "stride", where)
        ph, pw = _pair(d.get("padding", 0), "padding", where)
        dh, dw = _pair(d.get("dilation", 1), "dilation", where)
        groups = int(d.get("groups", 1))
        name = self.g.uid(re.sub(r"[^A-Za-z0-9]+", "_", where).strip("_"))
        wn, bn_ = self.g.weight(w, f"{name}.weight"), self.g.weight(b, f"{name}.bias")
        return self.g.op(
            "Conv",
            [x, wn, bn_],
            name,
            kernel_shape=[kh, kw],
            strides=[sh, sw],
            pads=[ph, pw, ph, pw],
            dilations=[dh, dw],
            group=groups,
        )

    def act(self, x: str, act: Any, where: str) -> str:
        t = _tname(act)
        if act is None or t == "Identity" or act is False:
            return x
        if t == "SiLU":
            return self.g.op("Mul", [x, self.g.op("Sigmoid", [x])])
        if t == "ReLU":
            return self.g.op("Relu", [x])
        if t == "LeakyReLU":
            return self.g.op("LeakyRelu", [x], alpha=float(act.__dict__.get("negative_slope", 0.01)))
        if t == "Sigmoid":
            return self.g.op("Sigmoid", [x])
        if t == "Hardswish":
            return self.g.op("HardSwish", [x])
        raise UltralyticsPtError(f"{where}: unsupported activation {t}")

    def conv_block(self, x: str, m: Stub, where: str) -> str:
        """Ultralytics ``Conv``/``DWConv``: conv → bn → act (a fused one has no bn)."""
        mods = m.__dict__.get("_modules") or {}
        if "conv" not in mods:
            raise UltralyticsPtError(f"{where}: {_tname(m)} has no 'conv'")
        y = self.conv2d(x, mods["conv"], where, mods.get("bn"))
        return self.act(y, mods.get("act"), where)

    def module(self, x: str, m: Stub, where: str) -> str:
        """Apply one sub-module (inside a layer) to tensor ``x``."""
        t = _tname(m)
        mods = m.__dict__.get("_modules") or {}
        if t in ("Conv", "DWConv"):
            return self.conv_block(x, m, where)
        if t == "Conv2d":
            return self.conv2d(x, m, where)
        if t in ("Sequential", "ModuleList"):
            for k, c in mods.items():
                x = self.module(x, c, f"{where}.{k}")
            return x
        if t == "Bottleneck":
            y = self.conv_block(self.conv_block(x, mods["cv1"], f"{where}.cv1"), mods["cv2"], f"{where}.cv2")
            return self.g.op("Add", [x, y]) if m.__dict__.get("add") else y
        if t == "C2f":
            y = self.conv_block(x, mods["cv1"], f"{where}.cv1")
            c = int(m.__dict__.get("c") or 0) or None
            parts = (
                self.g.op("Split", [y], n_out=2, axis=1, num_outputs=2)
                if c is None
                else self.g.op("Split", [y, self.g.const(np.array([c, c], np.int64))], n_out=2, axis=1)
            )
            ys = list(parts)
            for k, b in (mods["m"].__dict__.get("_modules") or {}).items():
                ys.append(self.module(ys[-1], b, f"{where}.m.{k}"))
            return self.conv_block(self.g.op("Concat", ys, axis=1), mods["cv2"], f"{where}.cv2")
        if t == "C3":
            a = self.module(self.conv_block(x, mods["cv1"], f"{where}.cv1"), mods["m"], f"{where}.m")
            b = self.conv_block(x, mods["cv2"], f"{where}.cv2")
            return self.conv_block(self.g.op("Concat", [a, b], axis=1), mods["cv3"], f"{where}.cv3")
        if t == "SPPF":
            ys = [self.conv_block(x, mods["cv1"], f"{where}.cv1")]
            for _ in range(3):
                ys.append(self.maxpool(ys[-1], mods["m"], f"{where}.m"))
            return self.conv_block(self.g.op("Concat", ys, axis=1), mods["cv2"], f"{where}.cv2")
        if t == "MaxPool2d":
            return self.maxpool(x, m, where)
        if t == "Upsample":
            d = m.__dict__
            if d.get("mode", "nearest") != "nearest" or d.get("size") is not None:
                raise UltralyticsPtError(
                    f"{where}: Upsample mode={d.get('mode')!r} size={d.get('size')!r}: "
                    "only nearest with a scale_factor is supported"
                )
            sf = d.get("scale_factor")
            sh, sw = (float(sf[0]), float(sf[-1])) if isinstance(sf, (list, tuple)) else (float(sf), float(sf))
            scales = self.g.const(np.array([1, 1, sh, sw], np.float32))
            return self.g.op(
                "Resize",
                [x, "", scales],
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        raise UltralyticsPtError(
            f"{where}: unsupported module type {t} (supported layers: {', '.join(SUPPORTED_LAYERS)})"
        )

    def maxpool(self, x: str, m: Stub, where: str) -> str:
        d = m.__dict__
        if d.get("ceil_mode") or d.get("return_indices"):
            raise UltralyticsPtError(f"{where}: MaxPool2d ceil_mode/return_indices are not supported")
        k, s, p = (_pair(d.get(a, dv), a, where) for a, dv in (("kernel_size", 1), ("stride", None), ("padding", 0)))
        dl = _pair(d.get("dilation", 1), "dilation", where)
        if s == (None, None):
            s = k
        return self.g.op(
            "MaxPool", [x], kernel_shape=list(k), strides=list(s), pads=[p[0], p[1], p[0], p[1]], dilations=list(dl)
        )

    # --- the head
    def detect(self, feats: list[str], m: Stub, where: str) -> str:
        """Ultralytics ``Detect``: per level box (4*reg_max) and class (nc) branches, DFL,
        anchor points at cell centres, ``(B, 4 + nc, N)`` with cx, cy, w, h in pixels."""
        d = m.__dict__
        mods = d.get("_modules") or {}
        nc, reg_max = int(d["nc"]), int(d.get("reg_max", 16))
        strides = self.ck.strides
        if len(feats) != len(strides) or int(d.get("nl", len(feats))) != len(feats):
            raise UltralyticsPtError(f"{where}: {len(feats)} inputs for {len(strides)} strides")
        if d.get("end2end"):
            raise UltralyticsPtError(f"{where}: end-to-end (NMS-free) Detect heads are not supported")
        cv2 = list((mods["cv2"].__dict__.get("_modules") or {}).values())
        cv3 = list((mods["cv3"].__dict__.get("_modules") or {}).values())
        g = self.g
        boxes, clss, anchors, stride_rows = [], [], [], []
        for i, (x, s) in enumerate(zip(feats, strides)):
            box = self.module(x, cv2[i], f"{where}.cv2.{i}")
            cls = self.module(x, cv3[i], f"{where}.cv3.{i}")
            boxes.append(g.op("Reshape", [box, g.const(np.array([0, 4 * reg_max, -1], np.int64))]))
            clss.append(g.op("Reshape", [cls, g.const(np.array([0, nc, -1], np.int64))]))
            # anchor points of this level from the runtime feature-map size
            shp = g.op("Shape", [x])
            h = g.op("Gather", [shp, g.const(np.array(2, np.int64))], axis=0)
            w = g.op("Gather", [shp, g.const(np.array(3, np.int64))], axis=0)
            zero, one = g.const(np.array(0, np.int64)), g.const(np.array(1, np.int64))
            half = g.const(np.array(0.5, np.float32))
            xs = g.op("Add", [g.op("Cast", [g.op("Range", [zero, w, one])], to=TensorProto.FLOAT), half])  # (w,)
            ys = g.op("Add", [g.op("Cast", [g.op("Range", [zero, h, one])], to=TensorProto.FLOAT), half])  # (h,)
            ax0 = g.const(np.array([0], np.int64))
            hw = g.op("Concat", [g.op("Unsqueeze", [h, ax0]), g.op("Unsqueeze", [w, ax0])], axis=0)
            gx = g.op("Expand", [g.op("Unsqueeze", [xs, ax0]), hw])  # (h, w): x varies along w
            gy = g.op("Expand", [g.op("Unsqueeze", [ys, g.const(np.array([1], np.int64))]), hw])
            row = g.const(np.array([1, -1], np.int64))
            anchors.append(g.op("Concat", [g.op("Reshape", [gx, row]), g.op("Reshape", [gy, row])], axis=0))  # (2, h*w)
            stride_rows.append(g.op("Mul", [g.op("Reshape", [gx, row]), g.const(np.array(0, np.float32))]))
            stride_rows[-1] = g.op("Add", [stride_rows[-1], g.const(np.array(float(s), np.float32))])  # (1, h*w)
        box = g.op("Concat", boxes, axis=2)  # (B, 4*reg_max, N)
        cls = g.op("Concat", clss, axis=2)  # (B, nc, N)
        anc = g.op("Concat", anchors, axis=1)  # (2, N)
        strd = g.op("Concat", stride_rows, axis=1)  # (1, N)
        if reg_max > 1:
            dfl = mods.get("dfl")
            proj = None
            if isinstance(dfl, Stub) and "conv" in (dfl.__dict__.get("_modules") or {}):
                proj = _arr(dfl.__dict__["_modules"]["conv"], "weight", f"{where}.dfl", required=False)
            proj = np.arange(reg_max, dtype=np.float32) if proj is None else proj.reshape(-1)
            if proj.size != reg_max:
                raise UltralyticsPtError(f"{where}: DFL weight has {proj.size} values, reg_max is {reg_max}")
            p = g.op("Softmax", [g.op("Reshape", [box, g.const(np.array([0, 4, reg_max, -1], np.int64))])], axis=2)
            dist = g.op(
                "ReduceSum",
                [
                    g.op("Mul", [p, g.const(proj.reshape(1, 1, reg_max, 1).astype(np.float32))]),
                    g.const(np.array([2], np.int64)),
                ],
                keepdims=0,
            )  # (B, 4, N)
        else:
            dist = box
        lt, rb = g.op("Split", [dist, g.const(np.array([2, 2], np.int64))], n_out=2, axis=1)
        x1y1 = g.op("Sub", [anc, lt])
        x2y2 = g.op("Add", [anc, rb])
        cxy = g.op("Div", [g.op("Add", [x1y1, x2y2]), g.const(np.array(2, np.float32))])
        wh = g.op("Sub", [x2y2, x1y1])
        dbox = g.op("Mul", [g.op("Concat", [cxy, wh], axis=1), strd])
        return g.op("Concat", [dbox, g.op("Sigmoid", [cls])], "output0", axis=1)

    def build(self, input_size: tuple[int, int] | None) -> onnx.ModelProto:
        ck = self.ck
        outs: list[str] = []
        x = "images"
        for layer in ck.layers:
            where = f"layer {layer.index} ({layer.type})"
            f = layer.f
            if isinstance(f, list):
                srcs = [x if j == -1 else outs[j] for j in f]
            else:
                srcs = [x if f == -1 else outs[f]]
            if layer.type == "Concat":
                y = self.g.op("Concat", srcs, axis=int(layer.module.__dict__.get("d", 1)))
            elif layer.type == "Detect":
                y = self.detect(srcs, layer.module, where)
            elif layer.type in ("Conv", "C2f", "C3", "SPPF", "Upsample"):
                if len(srcs) != 1:
                    raise UltralyticsPtError(f"{where}: takes one input, got from={f}")
                y = self.module(srcs[0], layer.module, where)
            else:
                raise UltralyticsPtError(
                    f"layer {layer.index}: unsupported layer type {layer.type} "
                    f"(supported: {', '.join(SUPPORTED_LAYERS)})"
                )
            outs.append(y)
            x = y
        if x != "output0":
            raise UltralyticsPtError(f"{ck.path}: the model does not end with a Detect head")
        h, w = input_size if input_size is not None else ("height", "width")
        batch = 1 if input_size is not None else "batch"
        n_anchors = sum((h // s) * (w // s) for s in ck.strides) if input_size is not None else "anchors"
        graph = helper.make_graph(
            self.g.nodes,
            ck.arch,
            [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, h, w])],
            [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 4 + ck.nc, n_anchors])],
            initializer=self.g.inits,
        )
        proto = helper.make_model(
            graph, producer_name="vigil.models.ultralytics_pt", opset_imports=[helper.make_opsetid("", OPSET)]
        )
        proto.ir_version = 8
        return proto


def _metadata(ck: Checkpoint, input_size: tuple[int, int] | None) -> dict[str, str]:
    arch = ck.arch
    pretty = arch.replace("yolo", "YOLO") if arch.startswith("yolo") else arch
    data = ck.train_args.get("data")
    imgsz = list(input_size) if input_size is not None else list(ck.imgsz)
    meta = {
        "description": f"Ultralytics {pretty} model" + (f" trained on {data}" if data else ""),
        "author": "Ultralytics",
        "date": str(ck.meta.get("date", "")),
        "version": str(ck.meta.get("version", "")),
        "license": str(ck.meta.get("license", "AGPL-3.0 License (https://ultralytics.com/license)")),
        "docs": str(ck.meta.get("docs", "https://docs.ultralytics.com")),
        "stride": str(ck.stride),
        "task": "detect",
        "head": "Detect",
        "batch": "1",
        "imgsz": str(imgsz),
        "names": str({i: n for i, n in enumerate(ck.names)}),
        "channels": "3",
        "end2end": "False",
        "converter": CONVERTER,
        "source": Path(ck.path).name,
    }
    return {k: v for k, v in meta.items() if v != ""}


def to_onnx(ck: Checkpoint, input_size: tuple[int, int] | None = None) -> onnx.ModelProto:
    """The ONNX model of a loaded checkpoint; ``input_size`` ``(H, W)`` fixes the input
    (batch 1) instead of the dynamic ``(batch, 3, height, width)``."""
    if input_size is not None:
        input_size = (int(input_size[0]), int(input_size[1]))
        if any(v <= 0 or v % ck.stride for v in input_size):
            raise UltralyticsPtError(
                f"input_size {list(input_size)} must be positive multiples of the stride {ck.stride}"
            )
    proto = _Builder(ck).build(input_size)
    for k, v in _metadata(ck, input_size).items():
        p = proto.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(proto)
    return proto


def convert(
    pt_path: str | os.PathLike, onnx_path: str | os.PathLike | None = None, input_size: tuple[int, int] | None = None
) -> onnx.ModelProto:
    """Convert an Ultralytics detection ``.pt`` to ONNX; write it to ``onnx_path`` when given.

    The model takes ``images`` ``(B, 3, H, W) float32`` RGB in ``[0, 1]`` (dynamic ``B``,
    ``H``, ``W``, multiples of the stride; or ``(1, 3, *input_size)`` when ``input_size``
    ``(H, W)`` is given) and returns ``output0`` ``(B, 4 + nc, N)``: ``cx, cy, w, h`` in
    input pixels, then per-class sigmoid scores. Returns the proto.
    """
    proto = to_onnx(load_checkpoint(pt_path), input_size)
    if onnx_path is not None:
        onnx.save(proto, str(onnx_path))
    return proto
