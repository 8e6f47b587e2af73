"""The Ultralytics ``.pt`` → ONNX converter against an independent numpy forward pass.

The checkpoints are synthetic: a tiny YOLOv8-like network (Conv, C2f with and without
shortcuts, C3, SPPF, Upsample, Concat, a 3-level Detect head with DFL) with random weights,
pickled by hand (protocol 2, the same globals a real checkpoint references) into a torch
zip archive. A real checkpoint is only used when ``VIGIL_TEST_YOLOV8_PT`` points to one.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from vigil.models.pt_gate import read_pt
from vigil.models.pt_pickle import UltralyticsPtError, UnsafeCheckpointError, _rebuild_tensor_v2
from vigil.models.ultralytics_pt import CONVERTER, convert, load_checkpoint

NAMES = {0: "person", 1: "car", 2: "dog"}
REG_MAX = 4
STRIDES = (4, 8, 16)


# ---------------------------------------------------------------------------- a tiny pickle writer
class G:
    """A global reference, written as ``GLOBAL 'module name'``."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class Obj:
    """``cls.__new__(cls)`` then ``BUILD`` with ``state`` (how nn.Module objects are pickled)."""

    def __init__(self, cls: G, state: dict):
        self.cls, self.state = cls, state


class Call:
    """``func(*args)`` (``REDUCE``)."""

    def __init__(self, func: G, args: tuple):
        self.func, self.args = func, args


class Pid:
    """A persistent id (``BINPERSID``), as torch writes for tensor storages."""

    def __init__(self, pid: tuple):
        self.pid = pid


def _emit(obj, out: bytearray) -> None:
    if obj is None:
        out += b"N"
    elif obj is True:
        out += b"\x88"
    elif obj is False:
        out += b"\x89"
    elif isinstance(obj, int):
        out += b"J" + struct.pack("<i", obj)
    elif isinstance(obj, float):
        out += b"G" + struct.pack(">d", obj)
    elif isinstance(obj, str):
        enc = obj.encode()
        out += b"X" + struct.pack("<I", len(enc)) + enc
    elif isinstance(obj, tuple):
        out += b"("
        for v in obj:
            _emit(v, out)
        out += b"t"
    elif isinstance(obj, list):
        out += b"]("
        for v in obj:
            _emit(v, out)
        out += b"e"
    elif isinstance(obj, dict):
        out += b"}("
        for k, v in obj.items():
            _emit(k, out)
            _emit(v, out)
        out += b"u"
    elif isinstance(obj, G):
        out += f"c{obj.module}\n{obj.name}\n".encode()
    elif isinstance(obj, Obj):
        _emit(obj.cls, out)
        out += b")\x81"
        _emit(obj.state, out)
        out += b"b"
    elif isinstance(obj, Call):
        _emit(obj.func, out)
        _emit(obj.args, out)
        out += b"R"
    elif isinstance(obj, Pid):
        _emit(obj.pid, out)
        out += b"Q"
    else:  # pragma: no cover - test helper misuse
        raise TypeError(type(obj))


def dumps(obj) -> bytes:
    out = bytearray(b"\x80\x02")
    _emit(obj, out)
    return bytes(out + b".")


def odict(items: dict) -> Call:
    return Call(G("collections", "OrderedDict"), ([[k, v] for k, v in items.items()],))


class Archive:
    """Collects tensor storages; ``tensor(arr)`` returns the pickle tree of a torch tensor."""

    def __init__(self):
        self.storages: dict[str, bytes] = {}

    def tensor(self, arr: np.ndarray, param: bool = True):
        arr = np.ascontiguousarray(arr)
        stype = {
            np.dtype(np.float16): "HalfStorage",
            np.dtype(np.float32): "FloatStorage",
            np.dtype(np.int64): "LongStorage",
        }[arr.dtype]
        key = str(len(self.storages))
        self.storages[key] = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        strides = tuple(s // arr.itemsize for s in arr.strides)
        t = Call(
            G("torch._utils", "_rebuild_tensor_v2"),
            (Pid(("storage", G("torch", stype), key, "cpu", arr.size)), 0, tuple(arr.shape), strides, False, odict({})),
        )
        return Call(G("torch._utils", "_rebuild_parameter"), (t, True, odict({}))) if param else t

    def write(self, path: Path, root) -> Path:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", dumps(root))
            z.writestr("archive/byteorder", "little")
            for k, v in self.storages.items():
                z.writestr(f"archive/data/{k}", v)
            z.writestr("archive/version", "3\n")
        return path


# ---------------------------------------------------------------------------- the tiny network
# specs: plain dicts shared by the pickler and the numpy reference
def conv_spec(rng, c1, c2, k=1, s=1, bn=True):
    w = (rng.normal(0, 1.0 / np.sqrt(c1 * k * k), (c2, c1, k, k))).astype(np.float16)
    sp = {"t": "Conv" if bn else "Conv2d", "w": w, "k": k, "s": s, "p": k // 2}
    if bn:
        sp.update(
            gamma=rng.uniform(0.5, 1.5, c2).astype(np.float16),
            beta=rng.normal(0, 0.2, c2).astype(np.float16),
            mean=rng.normal(0, 0.2, c2).astype(np.float16),
            var=rng.uniform(0.5, 1.5, c2).astype(np.float16),
            eps=1e-3,
        )
    else:
        sp["bias"] = rng.normal(0, 0.5, c2).astype(np.float16)
    return sp


def bottleneck_spec(rng, c, shortcut, k=(3, 3)):
    return {"t": "Bottleneck", "cv1": conv_spec(rng, c, c, k[0]), "cv2": conv_spec(rng, c, c, k[1]), "add": shortcut}


def c2f_spec(rng, c1, c2, n, shortcut):
    c = c2 // 2
    return {
        "t": "C2f",
        "c": c,
        "cv1": conv_spec(rng, c1, 2 * c),
        "cv2": conv_spec(rng, (2 + n) * c, c2),
        "m": [bottleneck_spec(rng, c, shortcut) for _ in range(n)],
    }


def c3_spec(rng, c1, c2, n):
    c = c2 // 2
    return {
        "t": "C3",
        "cv1": conv_spec(rng, c1, c),
        "cv2": conv_spec(rng, c1, c),
        "cv3": conv_spec(rng, 2 * c, c2),
        "m": [bottleneck_spec(rng, c, True, (1, 3)) for _ in range(n)],
    }


def tiny_layers(rng):
    """(type, from, spec) of a tiny YOLOv8-like model: strides 4, 8, 16; 3 classes; reg_max 4."""
    L = [
        ("Conv", -1, conv_spec(rng, 3, 4, 3, 2)),  # 0 /2
        ("Conv", -1, conv_spec(rng, 4, 8, 3, 2)),  # 1 /4
        ("C2f", -1, c2f_spec(rng, 8, 8, 2, True)),  # 2
        ("Conv", -1, conv_spec(rng, 8, 16, 3, 2)),  # 3 /8
        ("C3", -1, c3_spec(rng, 16, 16, 1)),  # 4
        ("Conv", -1, conv_spec(rng, 16, 16, 3, 2)),  # 5 /16
        ("SPPF", -1, {"t": "SPPF", "cv1": conv_spec(rng, 16, 8), "cv2": conv_spec(rng, 32, 16)}),  # 6
        ("Upsample", -1, {"t": "Upsample"}),  # 7 /8
        ("Concat", [-1, 4], {"t": "Concat"}),  # 8: 32
        ("C2f", -1, c2f_spec(rng, 32, 16, 1, False)),  # 9
        ("Upsample", -1, {"t": "Upsample"}),  # 10 /4
        ("Concat", [-1, 2], {"t": "Concat"}),  # 11: 24
        ("C2f", -1, c2f_spec(rng, 24, 8, 1, False)),  # 12  P/4
        ("Conv", -1, conv_spec(rng, 8, 8, 3, 2)),  # 13 /8
        ("Concat", [-1, 9], {"t": "Concat"}),  # 14: 24
        ("C2f", -1, c2f_spec(rng, 24, 16, 1, False)),  # 15  P/8
        ("Conv", -1, conv_spec(rng, 16, 16, 3, 2)),  # 16 /16
        ("Concat", [-1, 6], {"t": "Concat"}),  # 17: 32
        ("C2f", -1, c2f_spec(rng, 32, 16, 1, False)),  # 18  P/16
    ]
    nc, c2, c3 = len(NAMES), 8, 8
    head = {
        "t": "Detect",
        "nc": nc,
        "reg_max": REG_MAX,
        "cv2": [
            [conv_spec(rng, ch, c2, 3), conv_spec(rng, c2, c2, 3), conv_spec(rng, c2, 4 * REG_MAX, bn=False)]
            for ch in (8, 16, 16)
        ],
        "cv3": [
            [conv_spec(rng, ch, c3, 3), conv_spec(rng, c3, c3, 3), conv_spec(rng, c3, nc, bn=False)]
            for ch in (8, 16, 16)
        ],
    }
    L.append(("Detect", [12, 15, 18], head))
    return L


# -- pickling the specs as Ultralytics / torch objects
def module(ar: Archive, cls: tuple[str, str], params=None, buffers=None, modules=None, **attrs) -> Obj:
    state = {
        "training": False,
        "_parameters": odict(params or {}),
        "_buffers": odict(buffers or {}),
        "_non_persistent_buffers_set": Call(G("__builtin__", "set"), ([],)),
        "_backward_hooks": odict({}),
        "_forward_hooks": odict({}),
        "_forward_pre_hooks": odict({}),
        "_modules": odict(modules or {}),
    }
    state.update(attrs)
    return Obj(G(*cls), state)


def seq(ar, items, cls=("torch.nn.modules.container", "Sequential")):
    return module(ar, cls, modules={str(i): m for i, m in enumerate(items)})


def pk(ar: Archive, sp: dict, **extra) -> Obj:
    t = sp["t"]
    if t in ("Conv", "Conv2d"):
        c2, c1, k, _ = sp["w"].shape
        conv = module(
            ar,
            ("torch.nn.modules.conv", "Conv2d"),
            params={"weight": ar.tensor(sp["w"]), "bias": ar.tensor(sp["bias"]) if "bias" in sp else None},
            in_channels=c1,
            out_channels=c2,
            kernel_size=(k, k),
            stride=(sp["s"], sp["s"]),
            padding=(sp["p"], sp["p"]),
            dilation=(1, 1),
            transposed=False,
            output_padding=(0, 0),
            groups=1,
            padding_mode="zeros",
        )
        if t == "Conv2d":
            return conv
        bn = module(
            ar,
            ("torch.nn.modules.batchnorm", "BatchNorm2d"),
            params={"weight": ar.tensor(sp["gamma"]), "bias": ar.tensor(sp["beta"])},
            buffers={
                "running_mean": ar.tensor(sp["mean"], False),
                "running_var": ar.tensor(sp["var"], False),
                "num_batches_tracked": ar.tensor(np.array(0, np.int64), False),
            },
            num_features=c2,
            eps=sp["eps"],
            momentum=0.03,
            affine=True,
            track_running_stats=True,
        )
        act = module(ar, ("torch.nn.modules.activation", "SiLU"), inplace=True)
        return module(
            ar, ("ultralytics.nn.modules.conv", "Conv"), modules={"conv": conv, "bn": bn, "act": act}, **extra
        )
    if t == "Bottleneck":
        return module(
            ar,
            ("ultralytics.nn.modules.block", "Bottleneck"),
            modules={"cv1": pk(ar, sp["cv1"]), "cv2": pk(ar, sp["cv2"])},
            add=sp["add"],
        )
    if t == "C2f":
        m = seq(ar, [pk(ar, b) for b in sp["m"]], ("torch.nn.modules.container", "ModuleList"))
        return module(
            ar,
            ("ultralytics.nn.modules.block", "C2f"),
            modules={"cv1": pk(ar, sp["cv1"]), "cv2": pk(ar, sp["cv2"]), "m": m},
            c=sp["c"],
            **extra,
        )
    if t == "C3":
        m = seq(ar, [pk(ar, b) for b in sp["m"]])
        return module(
            ar,
            ("ultralytics.nn.modules.block", "C3"),
            modules={"cv1": pk(ar, sp["cv1"]), "cv2": pk(ar, sp["cv2"]), "cv3": pk(ar, sp["cv3"]), "m": m},
            **extra,
        )
    if t == "SPPF":
        mp = module(
            ar,
            ("torch.nn.modules.pooling", "MaxPool2d"),
            kernel_size=5,
            stride=1,
            padding=2,
            dilation=1,
            return_indices=False,
            ceil_mode=False,
        )
        return module(
            ar,
            ("ultralytics.nn.modules.block", "SPPF"),
            modules={"cv1": pk(ar, sp["cv1"]), "cv2": pk(ar, sp["cv2"]), "m": mp},
            **extra,
        )
    if t == "Upsample":
        return module(
            ar,
            ("torch.nn.modules.upsampling", "Upsample"),
            name="Upsample",
            size=None,
            scale_factor=2.0,
            mode="nearest",
            align_corners=None,
            recompute_scale_factor=None,
            **extra,
        )
    if t == "Concat":
        return module(ar, ("ultralytics.nn.modules.conv", "Concat"), d=1, **extra)
    if t == "Detect":
        ml = ("torch.nn.modules.container", "ModuleList")
        dfl_conv = module(
            ar,
            ("torch.nn.modules.conv", "Conv2d"),
            params={"weight": ar.tensor(np.arange(REG_MAX, dtype=np.float32).reshape(1, REG_MAX, 1, 1)), "bias": None},
            in_channels=REG_MAX,
            out_channels=1,
            kernel_size=(1, 1),
            stride=(1, 1),
            padding=(0, 0),
            dilation=(1, 1),
            transposed=False,
            output_padding=(0, 0),
            groups=1,
            padding_mode="zeros",
        )
        return module(
            ar,
            ("ultralytics.nn.modules.head", "Detect"),
            modules={
                "cv2": seq(ar, [seq(ar, [pk(ar, c) for c in br]) for br in sp["cv2"]], ml),
                "cv3": seq(ar, [seq(ar, [pk(ar, c) for c in br]) for br in sp["cv3"]], ml),
                "dfl": module(ar, ("ultralytics.nn.modules.block", "DFL"), modules={"conv": dfl_conv}, c1=REG_MAX),
            },
            nc=sp["nc"],
            nl=3,
            reg_max=REG_MAX,
            no=sp["nc"] + 4 * REG_MAX,
            stride=ar.tensor(np.array(STRIDES, np.float16), False),
            shape=None,
            inplace=True,
            **extra,
        )
    raise AssertionError(t)


def checkpoint_tree(ar: Archive, layers, replace: dict | None = None, extra: dict | None = None) -> dict:
    mods = []
    for i, (t, f, sp) in enumerate(layers):
        m = pk(ar, sp, i=i, f=f, type=f"ultralytics.nn.modules.{t}")
        if replace and i in replace:
            m.cls = G(*replace[i])
        mods.append(m)
    model = module(
        ar,
        ("ultralytics.nn.tasks", "DetectionModel"),
        modules={"model": seq(ar, mods)},
        yaml={"nc": len(NAMES), "yaml_file": "yolov8tiny.yaml"},
        yaml_file="yolov8tiny.yaml",
        save=[2, 4, 6, 9, 12, 15, 18],
        names=dict(NAMES),
        inplace=True,
        stride=ar.tensor(np.array(STRIDES, np.float32), False),
        nc=len(NAMES),
    )
    root = {
        "date": "2024-01-01T00:00:00",
        "version": "8.0.0",
        "epoch": -1,
        "best_fitness": None,
        "model": model,
        "ema": None,
        "updates": None,
        "optimizer": None,
        "train_args": {"task": "detect", "data": "tiny.yaml", "imgsz": 64},
        # newer checkpoints keep numpy scalars in their metrics (pickled as below by protocol 2)
        "train_metrics": {
            "fitness": Call(
                G("numpy.core.multiarray", "scalar"),
                (
                    Call(G("numpy", "dtype"), ("f8", False, True)),
                    Call(G("_codecs", "encode"), (np.float64(0.25).tobytes().decode("latin1"), "latin1")),
                ),
            )
        },
    }
    root.update(extra or {})
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(pt_path, layers)`` of the synthetic checkpoint."""
    layers = tiny_layers(np.random.default_rng(7))
    ar = Archive()
    path = ar.write(tmp_path_factory.mktemp("pt") / "tiny.pt", checkpoint_tree(ar, layers))
    return path, layers


# ---------------------------------------------------------------------------- numpy reference
def _conv(x, sp):
    w = sp["w"].astype(np.float64)
    k, s, p = sp["k"], sp["s"], sp["p"]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    y = np.einsum("bchwij,ocij->bohw", win, w, optimize=True)
    if sp["t"] == "Conv2d":
        return y + sp["bias"].astype(np.float64)[None, :, None, None]
    c = lambda a: a.astype(np.float64)[None, :, None, None]  # noqa: E731
    y = (y - c(sp["mean"])) / np.sqrt(c(sp["var"]) + sp["eps"]) * c(sp["gamma"]) + c(sp["beta"])
    return y / (1 + np.exp(-y))  # SiLU


def _maxpool5(x):
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(xp, (5, 5), axis=(2, 3)).max(axis=(4, 5))


def _run(x, sp):
    t = sp["t"]
    if t in ("Conv", "Conv2d"):
        return _conv(x, sp)
    if t == "Bottleneck":
        y = _conv(_conv(x, sp["cv1"]), sp["cv2"])
        return x + y if sp["add"] else y
    if t == "C2f":
        y = _conv(x, sp["cv1"])
        ys = [y[:, : sp["c"]], y[:, sp["c"] :]]
        for b in sp["m"]:
            ys.append(_run(ys[-1], b))
        return _conv(np.concatenate(ys, 1), sp["cv2"])
    if t == "C3":
        a = _conv(x, sp["cv1"])
        for b in sp["m"]:
            a = _run(a, b)
        return _conv(np.concatenate([a, _conv(x, sp["cv2"])], 1), sp["cv3"])
    if t == "SPPF":
        ys = [_conv(x, sp["cv1"])]
        for _ in range(3):
            ys.append(_maxpool5(ys[-1]))
        return _conv(np.concatenate(ys, 1), sp["cv2"])
    if t == "Upsample":
        return x.repeat(2, axis=2).repeat(2, axis=3)
    raise AssertionError(t)


def reference_forward(layers, images: np.ndarray) -> np.ndarray:
    """``images`` (B, 3, H, W) → (B, 4 + nc, N) in float64, the way Ultralytics computes it."""
    outs, x = [], images.astype(np.float64)
    for t, f, sp in layers:
        srcs = [x if j == -1 else outs[j] for j in (f if isinstance(f, list) else [f])]
        if t == "Concat":
            x = np.concatenate(srcs, 1)
        elif t == "Detect":
            b = srcs[0].shape[0]
            boxes, clss, anchors, strides = [], [], [], []
            for i, (feat, s) in enumerate(zip(srcs, STRIDES)):
                bx, cl = feat, feat
                for c in sp["cv2"][i]:
                    bx = _conv(bx, c)
                for c in sp["cv3"][i]:
                    cl = _conv(cl, c)
                boxes.append(bx.reshape(b, 4 * REG_MAX, -1))
                clss.append(cl.reshape(b, sp["nc"], -1))
                h, w = feat.shape[2:]
                gy, gx = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
                anchors.append(np.stack([gx.ravel(), gy.ravel()]))
                strides.append(np.full(h * w, float(s)))
            box, cls = np.concatenate(boxes, 2), np.concatenate(clss, 2)
            anc, st = np.concatenate(anchors, 1), np.concatenate(strides)
            logits = box.reshape(b, 4, REG_MAX, -1)
            p = np.exp(logits - logits.max(2, keepdims=True))
            p /= p.sum(2, keepdims=True)
            dist = (p * np.arange(REG_MAX)[None, None, :, None]).sum(2)  # (B, 4, N) ltrb in cells
            x1y1, x2y2 = anc - dist[:, :2], anc + dist[:, 2:]
            dbox = np.concatenate([(x1y1 + x2y2) / 2, x2y2 - x1y1], 1) * st
            x = np.concatenate([dbox, 1 / (1 + np.exp(-cls))], 1)
        else:
            x = _run(srcs[0], sp)
        outs.append(x)
    return x


def _session(proto: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------------------- tests
def test_load_checkpoint_reads_the_tiny_model(tiny):
    path, layers = tiny
    ck = load_checkpoint(path)
    assert ck.names == list(NAMES.values()) and ck.nc == 3
    assert ck.strides == STRIDES and ck.stride == 16 and ck.imgsz == (64, 64)
    assert [layer.type for layer in ck.layers] == [t for t, _, _ in layers]
    assert ck.layers[8].f == [-1, 4] and ck.layers[-1].f == [12, 15, 18]
    assert ck.arch == "yolov8tiny" and ck.meta["version"] == "8.0.0"
    assert read_pt(path)["train_metrics"]["fitness"] == np.float64(0.25)
    conv_w = ck.layers[0].module.conv.weight
    assert conv_w.dtype == np.float16 and np.array_equal(conv_w, layers[0][2]["w"])


@pytest.mark.parametrize("shape", [(1, 3, 64, 96), (2, 3, 32, 48)])
def test_onnx_matches_numpy_reference(tiny, shape):
    path, layers = tiny
    proto = convert(path)
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    got = _session(proto).run(None, {"images": x})[0]
    want = reference_forward(layers, x)
    n = sum((shape[2] // s) * (shape[3] // s) for s in STRIDES)
    assert got.shape == want.shape == (shape[0], 4 + len(NAMES), n)
    np.testing.assert_allclose(got[:, 4:], want[:, 4:], rtol=0, atol=1e-4)  # scores
    np.testing.assert_allclose(got[:, :4], want[:, :4], rtol=1e-4, atol=1e-4)  # boxes, input pixels
    assert 0 < want[:, 2:4].min() and want[:, 4:].std() > 0.01  # a non-degenerate network


def test_fixed_input_size_and_metadata(tiny, tmp_path):
    path, layers = tiny
    out = tmp_path / "tiny.onnx"
    proto = convert(path, out, input_size=(64, 96))
    assert out.is_file()
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 96]
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == [1, 7, 16 * 24 + 8 * 12 + 4 * 6]
    x = np.random.default_rng(2).random((1, 3, 64, 96), dtype=np.float32)
    np.testing.assert_allclose(
        _session(onnx.load(str(out))).run(None, {"images": x})[0], reference_forward(layers, x), atol=2e-4, rtol=1e-4
    )
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["names"] == "{0: 'person', 1: 'car', 2: 'dog'}"
    assert meta["stride"] == "16" and meta["task"] == "detect" and meta["imgsz"] == "[64, 96]"
    assert meta["converter"] == CONVERTER and meta["author"] == "Ultralytics"
    assert "tiny.yaml" in meta["description"]
    from vigil.detectors.yolo import detect_layout
    from vigil.models.metadata import names_from_metadata

    assert names_from_metadata(meta) == ["person", "car", "dog"]
    assert detect_layout([1, 7, 504], 3) == "anchors"
    # the dynamic model says its training size
    dyn = {p.key: p.value for p in convert(path).metadata_props}
    assert dyn["imgsz"] == "[64, 64]"
    with pytest.raises(UltralyticsPtError, match="multiples of the stride 16"):
        convert(path, input_size=(64, 100))


@pytest.mark.parametrize(
    "module,name",
    [
        ("os", "system"),
        ("builtins", "eval"),
        ("subprocess", "Popen"),
        ("torch", "load"),
        ("ultralytics.nn", "_private"),
    ],
)
def test_forbidden_global_is_refused_before_running(tmp_path, module, name):
    marker = tmp_path / "pwned"
    ar = Archive()
    root = {"model": Call(G(module, name), (f"touch {marker}",))}
    path = ar.write(tmp_path / "evil.pt", root)
    with pytest.raises(UnsafeCheckpointError, match=f"{module}.{name}.*not on the allow-list"):
        read_pt(path)
    with pytest.raises(UltralyticsPtError):
        convert(path)
    assert not marker.exists()


def test_getattr_only_on_stub_classes(tmp_path):
    ar = Archive()
    ok = {"fwd": Call(G("builtins", "getattr"), (G("ultralytics.nn.modules.head", "Detect"), "forward"))}
    assert "Detect.forward" in repr(read_pt(ar.write(tmp_path / "ok.pt", ok))["fwd"])
    bad = {"x": Call(G("builtins", "getattr"), ("abc", "upper"))}
    with pytest.raises(UnsafeCheckpointError, match="getattr"):
        read_pt(ar.write(tmp_path / "bad.pt", bad))


def test_unsupported_layer_type_names_it(tmp_path):
    layers = tiny_layers(np.random.default_rng(3))
    ar = Archive()
    path = ar.write(
        tmp_path / "c3k2.pt", checkpoint_tree(ar, layers, replace={9: ("ultralytics.nn.modules.block", "C3k2")})
    )
    with pytest.raises(ValueError, match=r"layer 9: unsupported layer type C3k2"):
        convert(path)


def test_not_a_detection_model_or_not_a_checkpoint(tmp_path):
    layers = tiny_layers(np.random.default_rng(4))
    ar = Archive()
    path = ar.write(
        tmp_path / "pose.pt", checkpoint_tree(ar, layers, replace={19: ("ultralytics.nn.modules.head", "Pose")})
    )
    with pytest.raises(UltralyticsPtError, match="last layer is Pose"):
        convert(path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x02N.")
    with pytest.raises(UltralyticsPtError, match="not a torch zip checkpoint"):
        load_checkpoint(junk)


def test_rebuild_tensor_honours_offset_and_strides():
    storage = np.arange(20, dtype=np.float32)
    t = _rebuild_tensor_v2(storage, 2, (3, 4), (1, 3))  # a transposed view starting at element 2
    np.testing.assert_array_equal(t, np.arange(2, 14, dtype=np.float32).reshape(4, 3).T)
    assert t.flags.c_contiguous and t.flags.writeable
    with pytest.raises(UltralyticsPtError, match="runs past"):
        _rebuild_tensor_v2(storage, 10, (3, 4), (4, 1))


def _real_checkpoint() -> str | None:
    """``$VIGIL_TEST_YOLOV8_PT``, else the embedded default's checkpoint once `vigil models prepare` fetched it."""
    from vigil.models.cache import default_weights_path

    env = os.environ.get("VIGIL_TEST_YOLOV8_PT")
    if env:
        return env
    path = default_weights_path()
    return str(path) if path.is_file() else None


REAL_PT = _real_checkpoint()


@pytest.mark.skipif(
    not REAL_PT or not Path(REAL_PT).is_file(),
    reason="no yolov8*.pt: run `vigil models prepare` or set VIGIL_TEST_YOLOV8_PT",
)
def test_real_checkpoint_finds_the_people_in_vtest(vtest):
    import cv2

    proto = convert(REAL_PT)
    cap = cv2.VideoCapture(str(vtest))
    ok, frame = cap.read()
    assert ok
    h, w = 576, 768
    r = min(h / frame.shape[0], w / frame.shape[1])
    nh, nw = round(frame.shape[0] * r), round(frame.shape[1] * r)
    top, left = (h - nh) // 2, (w - nw) // 2
    lb = np.full((h, w, 3), 114, np.uint8)
    lb[top : top + nh, left : left + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    x = np.ascontiguousarray(lb[:, :, ::-1].transpose(2, 0, 1)[None], np.float32) / 255.0
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    out = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(
        None, {"images": x}
    )[0][0]
    assert out.shape == (84, 9072)
    score = out[4]
    keep = score > 0.3
    cx, cy, bw, bh = out[:4, keep]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], 1)
    idx = np.array(cv2.dnn.NMSBoxes(boxes.tolist(), score[keep].tolist(), 0.3, 0.45), np.int64).reshape(-1)
    assert len(idx) == 3, score[keep][idx]
