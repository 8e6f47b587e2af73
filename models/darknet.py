"""Darknet (``.cfg`` + ``.weights``) → ONNX, with numpy and onnx only.

Supported sections: ``[net]``, ``[convolutional]`` (batch norm folded into the conv, any
of the activations in :data:`ACTIVATIONS`, groups), ``[maxpool]`` (Darknet's padding,
including the ``size=2 stride=1`` layer of YOLOv3-tiny, padded at the end only),
``[route]`` (one or more layers, concatenated on channels; ``groups``/``group_id``),
``[upsample]`` (nearest), ``[shortcut]`` (linear activation) and ``[yolo]``.

The graph takes ``images``: ``(N, 3, H, W) float32`` RGB in ``[0, 1]`` (H and W dynamic,
multiples of the network stride, usually 32) and returns one raw output per ``[yolo]``
layer, ``(N, A*(5+C), H/s, W/s)`` exactly as Darknet's last convolution computes it.
The ``darknet_onnx`` detector backend (``decode_yolo`` there) turns those into boxes in
model-input pixels. The heads' anchors,
masks and class counts travel in :class:`YoloHead` objects, and are also written into
the ONNX ``metadata_props`` (key ``vigil.yolo_heads``, JSON) so a converted file is
self-describing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vigil.errors import UserError

__all__ = [
    "DarknetError",
    "Section",
    "YoloHead",
    "DarknetModel",
    "parse_cfg",
    "read_weights_header",
    "load_darknet",
    "to_onnx",
    "convert",
    "heads_from_onnx",
    "ACTIVATIONS",
]

OPSET = 17
BN_EPS = 1e-6  # Darknet's normalize: (x - mean) / sqrt(var + .000001)
ACTIVATIONS = ("linear", "leaky", "relu", "logistic", "mish", "swish")
SUPPORTED = ("net", "network", "convolutional", "maxpool", "route", "upsample", "shortcut", "yolo")


class DarknetError(UserError, ValueError):
    """A Darknet cfg or weights file we cannot read; the message names the file and layer."""


@dataclass
class Section:
    """One ``[type]`` block of a cfg file: ``index`` counts layers (``[net]`` is -1)."""

    type: str
    options: dict[str, str]
    line: int
    index: int = -1

    def get_int(self, key: str, default: int | None = None) -> int:
        return int(self._get(key, default))

    def get_float(self, key: str, default: float | None = None) -> float:
        return float(self._get(key, default))

    def get_ints(self, key: str, default: Sequence[int] | None = None) -> list[int]:
        raw = self.options.get(key)
        if raw is None:
            if default is None:
                raise KeyError(key)
            return list(default)
        return [int(v) for v in raw.replace(" ", "").split(",") if v != ""]

    def get_floats(self, key: str) -> list[float]:
        return [float(v) for v in self.options[key].replace(" ", "").split(",") if v != ""]

    def _get(self, key, default):
        if key in self.options:
            return self.options[key]
        if default is None:
            raise KeyError(key)
        return default


@dataclass(frozen=True)
class YoloHead:
    """What a decoder of the raw outputs needs about one ``[yolo]`` layer."""

    output: str
    anchors: tuple[tuple[float, float], ...]  # in network-input pixels, the masked ones only
    num_classes: int
    scale_x_y: float = 1.0


@dataclass
class DarknetModel:
    """A parsed cfg plus the weights of each convolutional layer (BN already folded)."""

    sections: list[Section]  # layers only (no [net])
    net: Section
    conv: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # index -> (W, b)
    version: tuple[int, int, int] = (0, 0, 0)
    seen: int = 0
    source: str = ""


# ---------------------------------------------------------------------------- parsing
def parse_cfg(path: str | os.PathLike) -> tuple[Section, list[Section]]:
    """Read a Darknet cfg: the ``[net]`` section and the list of layer sections."""
    path = Path(path)
    sections: list[Section] = []
    current: Section | None = None
    for lineno, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise DarknetError(f"{path}:{lineno}: malformed section header {raw.strip()!r}")
            current = Section(line[1:-1].strip().lower(), {}, lineno)
            sections.append(current)
            continue
        if current is None or "=" not in line:
            raise DarknetError(f"{path}:{lineno}: expected 'key=value' inside a section, got {raw.strip()!r}")
        key, value = line.split("=", 1)
        current.options[key.strip()] = value.strip()
    if not sections or sections[0].type not in ("net", "network"):
        raise DarknetError(f"{path}: the first section must be [net]")
    net, layers = sections[0], sections[1:]
    for i, s in enumerate(layers):
        s.index = i
        if s.type not in SUPPORTED or s.type in ("net", "network"):
            raise DarknetError(
                f"{path}:{s.line}: layer {i} has unsupported type [{s.type}] (supported: "
                + ", ".join(t for t in SUPPORTED if t not in ("net", "network"))
                + ")"
            )
    return net, layers


def read_weights_header(buf: bytes, path: str = "<weights>") -> tuple[tuple[int, int, int], int, int]:
    """Return ``((major, minor, revision), seen, header_bytes)`` of a Darknet weights file.

    ``seen`` is an int64 when ``major*10 + minor >= 2`` (and the version is sane, < 1000),
    an int32 otherwise.
    """
    if len(buf) < 12:
        raise DarknetError(f"{path}: truncated weights file: {len(buf)} bytes, the header alone needs 12")
    major, minor, revision = (int(v) for v in np.frombuffer(buf, "<i4", 3))
    code = major * 10 + minor
    if 2 <= code < 1000:
        if len(buf) < 20:
            raise DarknetError(f"{path}: truncated weights file: header needs 20 bytes, got {len(buf)}")
        return (major, minor, revision), int(np.frombuffer(buf, "<i8", 1, 12)[0]), 20
    if len(buf) < 16:
        raise DarknetError(f"{path}: truncated weights file: header needs 16 bytes, got {len(buf)}")
    return (major, minor, revision), int(np.frombuffer(buf, "<i4", 1, 12)[0]), 16


def _shapes(net: Section, layers: list[Section], cfg_path: str) -> list[tuple[int, int, int]]:
    """(C, H, W) after each layer for the cfg's nominal input size (used for channel counts)."""
    c, h, w = net.get_int("channels", 3), net.get_int("height", 416), net.get_int("width", 416)
    out: list[tuple[int, int, int]] = []

    def ref(s: Section, r: int) -> int:
        j = r + s.index if r < 0 else r
        if not 0 <= j < s.index:
            raise DarknetError(
                f"{cfg_path}:{s.line}: layer {s.index} [{s.type}] refers to layer {r} (resolved {j}), out of range"
            )
        return j

    for s in layers:
        if s.type == "convolutional":
            size, stride = s.get_int("size", 1), s.get_int("stride", 1)
            pad = size // 2 if s.get_int("pad", 0) else s.get_int("padding", 0)
            filters = s.get_int("filters", 1)
            groups = s.get_int("groups", 1)
            if c % groups or filters % groups:
                raise DarknetError(
                    f"{cfg_path}:{s.line}: layer {s.index}: groups={groups} does not divide "
                    f"channels {c} / filters {filters}"
                )
            act = s.options.get("activation", "logistic")
            if act not in ACTIVATIONS:
                raise DarknetError(
                    f"{cfg_path}:{s.line}: layer {s.index}: unsupported activation {act!r} "
                    f"(supported: {', '.join(ACTIVATIONS)})"
                )
            h, w = (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1
            c = filters
        elif s.type == "maxpool":
            size = s.get_int("size", 1)
            stride = s.get_int("stride", 1)
            padding = s.get_int("padding", size - 1)
            h, w = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
        elif s.type == "route":
            idx = [ref(s, r) for r in s.get_ints("layers")]
            shapes = [out[j] for j in idx]
            if len({(hh, ww) for _, hh, ww in shapes}) != 1:
                raise DarknetError(
                    f"{cfg_path}:{s.line}: layer {s.index} [route]: inputs have different sizes {shapes}"
                )
            groups = s.get_int("groups", 1)
            c = sum(cc for cc, _, _ in shapes) // groups
            h, w = shapes[0][1], shapes[0][2]
        elif s.type == "upsample":
            stride = s.get_int("stride", 2)
            h, w = h * stride, w * stride
        elif s.type == "shortcut":
            j = ref(s, s.get_ints("from")[0])
            if out[j] != (c, h, w):
                raise DarknetError(
                    f"{cfg_path}:{s.line}: layer {s.index} [shortcut]: shape {out[j]} does not match {(c, h, w)}"
                )
            act = s.options.get("activation", "linear")
            if act != "linear":
                raise DarknetError(
                    f"{cfg_path}:{s.line}: layer {s.index} [shortcut]: only activation=linear is supported, got {act!r}"
                )
        elif s.type == "yolo":
            pass
        out.append((c, h, w))
    return out


def load_darknet(cfg_path: str | os.PathLike, weights_path: str | os.PathLike) -> DarknetModel:
    """Parse ``cfg_path`` and read ``weights_path``; batch norm is folded into each conv."""
    cfg_path, weights_path = str(cfg_path), str(weights_path)
    net, layers = parse_cfg(cfg_path)
    shapes = _shapes(net, layers, cfg_path)
    buf = Path(weights_path).read_bytes()
    version, seen, pos = read_weights_header(buf, weights_path)
    model = DarknetModel(layers, net, version=version, seen=seen, source=f"{cfg_path} + {weights_path}")
    in_c = net.get_int("channels", 3)
    for s, shape in zip(layers, shapes):
        if s.type == "convolutional":
            filters, size = s.get_int("filters", 1), s.get_int("size", 1)
            groups = s.get_int("groups", 1)
            bn = s.get_int("batch_normalize", 0)
            n_w = filters * (in_c // groups) * size * size
            need = filters * (4 if bn else 1) + n_w
            have = (len(buf) - pos) // 4
            if have < need:
                raise DarknetError(
                    f"{weights_path}: truncated weights file at layer {s.index} [convolutional] "
                    f"(cfg {cfg_path}:{s.line}): needs {need} floats, {have} left"
                )
            vals = np.frombuffer(buf, "<f4", need, pos).astype(np.float32)
            pos += 4 * need
            bias = vals[:filters]
            k = filters
            if bn:
                scale = vals[k : k + filters]
                mean = vals[k + filters : k + 2 * filters]
                var = vals[k + 2 * filters : k + 3 * filters]
                k += 3 * filters
            weight = vals[k:].reshape(filters, in_c // groups, size, size)
            if bn:
                factor = scale / np.sqrt(var + BN_EPS)
                weight = weight * factor[:, None, None, None]
                bias = bias - mean * factor
            model.conv[s.index] = (np.ascontiguousarray(weight, np.float32), np.ascontiguousarray(bias, np.float32))
        in_c = shape[0]
    rest = len(buf) - pos
    if rest != 0:
        raise DarknetError(
            f"{weights_path}: {rest} bytes left after the last layer of {cfg_path}: cfg and weights do not match"
        )
    return model


# ---------------------------------------------------------------------------- ONNX
def _activation(nodes: list, inits: list, act: str, x: str, name: str) -> str:
    if act == "linear":
        return x
    y = f"{name}_act"
    if act == "leaky":
        nodes.append(helper.make_node("LeakyRelu", [x], [y], alpha=0.1, name=y))
    elif act == "relu":
        nodes.append(helper.make_node("Relu", [x], [y], name=y))
    elif act == "logistic":
        nodes.append(helper.make_node("Sigmoid", [x], [y], name=y))
    elif act == "mish":
        nodes.append(helper.make_node("Mish", [x], [y], name=y))
    elif act == "swish":
        s = f"{name}_sig"
        nodes.append(helper.make_node("Sigmoid", [x], [s], name=s))
        nodes.append(helper.make_node("Mul", [x, s], [y], name=y))
    else:  # pragma: no cover - rejected while parsing
        raise DarknetError(f"unsupported activation {act!r}")
    return y


def to_onnx(model: DarknetModel, name: str = "darknet") -> tuple[onnx.ModelProto, list[YoloHead]]:
    """Build the ONNX graph of a loaded Darknet model; returns ``(model_proto, heads)``."""
    nodes: list = []
    inits: list = []
    outputs: list[str] = []
    heads: list[YoloHead] = []
    net = model.net
    net_w, net_h = net.get_int("width", 416), net.get_int("height", 416)
    x = "images"
    names: list[str] = []
    for s in model.sections:
        n = f"l{s.index:03d}_{s.type}"
        if s.type == "convolutional":
            w, b = model.conv[s.index]
            size, stride = s.get_int("size", 1), s.get_int("stride", 1)
            pad = size // 2 if s.get_int("pad", 0) else s.get_int("padding", 0)
            inits += [numpy_helper.from_array(w, f"{n}.W"), numpy_helper.from_array(b, f"{n}.b")]
            y = f"{n}_out"
            nodes.append(
                helper.make_node(
                    "Conv",
                    [x, f"{n}.W", f"{n}.b"],
                    [y],
                    name=n,
                    kernel_shape=[size, size],
                    strides=[stride, stride],
                    pads=[pad] * 4,
                    group=s.get_int("groups", 1),
                )
            )
            x = _activation(nodes, inits, s.options.get("activation", "logistic"), y, n)
        elif s.type == "maxpool":
            size, stride = s.get_int("size", 1), s.get_int("stride", 1)
            padding = s.get_int("padding", size - 1)
            begin = padding // 2
            y = f"{n}_out"
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [x],
                    [y],
                    name=n,
                    kernel_shape=[size, size],
                    strides=[stride, stride],
                    pads=[begin, begin, padding - begin, padding - begin],
                )
            )
            x = y
        elif s.type == "route":
            idx = [r + s.index if r < 0 else r for r in s.get_ints("layers")]
            ins = [names[j] for j in idx]
            y = f"{n}_out"
            if len(ins) == 1:
                y = ins[0]
            else:
                nodes.append(helper.make_node("Concat", ins, [y], name=n, axis=1))
            groups = s.get_int("groups", 1)
            if groups > 1:
                parts = [f"{n}_g{g}" for g in range(groups)]
                nodes.append(helper.make_node("Split", [y], parts, name=f"{n}_split", axis=1, num_outputs=groups))
                y = parts[s.get_int("group_id", 0)]
            x = y
        elif s.type == "upsample":
            stride = float(s.get_int("stride", 2))
            sc = f"{n}.scales"
            inits.append(numpy_helper.from_array(np.array([1, 1, stride, stride], np.float32), sc))
            y = f"{n}_out"
            nodes.append(
                helper.make_node(
                    "Resize",
                    [x, "", sc],
                    [y],
                    name=n,
                    mode="nearest",
                    coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor",
                )
            )
            x = y
        elif s.type == "shortcut":
            j = s.get_ints("from")[0]
            j = j + s.index if j < 0 else j
            y = f"{n}_out"
            nodes.append(helper.make_node("Add", [x, names[j]], [y], name=n))
            x = y
        elif s.type == "yolo":
            anchors = s.get_floats("anchors")
            pairs = [(anchors[2 * i], anchors[2 * i + 1]) for i in range(len(anchors) // 2)]
            mask = s.get_ints("mask", list(range(len(pairs))))
            classes = s.get_int("classes", 80)
            out = f"yolo{len(heads)}"
            nodes.append(helper.make_node("Identity", [x], [out], name=n))
            outputs.append(out)
            heads.append(YoloHead(out, tuple(pairs[m] for m in mask), classes, s.get_float("scale_x_y", 1.0)))
            # [yolo] anchors are in pixels of the network input whatever its size
            # (Darknet divides by the runtime width/height), so they are kept as they are.
        names.append(x)
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", net.get_int("channels", 3), "H", "W"])],
        [
            helper.make_tensor_value_info(
                o, TensorProto.FLOAT, ["N", len(h.anchors) * (5 + h.num_classes), f"{o}_h", f"{o}_w"]
            )
            for o, h in zip(outputs, heads)
        ],
        initializer=inits,
    )
    proto = helper.make_model(
        graph, producer_name="vigil.models.darknet", opset_imports=[helper.make_opsetid("", OPSET)]
    )
    proto.ir_version = 8
    meta = {
        "vigil.yolo_heads": json.dumps([asdict(h) for h in heads]),
        "vigil.net_size": json.dumps([net_h, net_w]),
        "vigil.darknet_version": json.dumps(list(model.version)),
    }
    for k, v in meta.items():
        p = proto.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(proto)
    return proto, heads


def convert(
    cfg_path: str | os.PathLike, weights_path: str | os.PathLike, onnx_path: str | os.PathLike | None = None
) -> onnx.ModelProto:
    """Convert a Darknet model; write it to ``onnx_path`` when given. Returns the proto."""
    proto, _ = to_onnx(load_darknet(cfg_path, weights_path), name=Path(str(cfg_path)).stem)
    if onnx_path is not None:
        onnx.save(proto, str(onnx_path))
    return proto


def heads_from_onnx(proto_or_meta) -> list[YoloHead]:
    """Read the :class:`YoloHead` list back from a converted model (proto or metadata dict,
    e.g. ``onnxruntime.InferenceSession.get_modelmeta().custom_metadata_map``)."""
    if isinstance(proto_or_meta, onnx.ModelProto):
        meta = {p.key: p.value for p in proto_or_meta.metadata_props}
    else:
        meta = dict(proto_or_meta)
    if "vigil.yolo_heads" not in meta:
        raise DarknetError("model has no 'vigil.yolo_heads' metadata: not converted by vigil.models.darknet")
    return [
        YoloHead(
            h["output"], tuple(tuple(a) for a in h["anchors"]), int(h["num_classes"]), float(h.get("scale_x_y", 1.0))
        )
        for h in json.loads(meta["vigil.yolo_heads"])
    ]
