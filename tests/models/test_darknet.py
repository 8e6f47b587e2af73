"""The Darknet → ONNX converter against an independent numpy forward pass and OpenCV."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from vigil.detectors.backends.onnx_darknet import decode_yolo
from vigil.models.darknet import DarknetError, convert, heads_from_onnx, load_darknet, read_weights_header

TINY_CFG = """\
[net]
width=64
height=64
channels=3

# 0
[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

# 1
[maxpool]
size=2
stride=2

# 2
[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

# 3: the size=2 stride=1 pool of yolov3-tiny (padded at the end only)
[maxpool]
size=2
stride=1

# 4
[convolutional]
batch_normalize=1
filters=16
size=1
stride=1
pad=1
activation=leaky

# 5: head A
[convolutional]
size=1
stride=1
pad=1
filters=20
activation=linear

# 6
[yolo]
mask = 1,2
anchors = 4,6, 10,14, 23,27
classes=5
num=3

# 7
[route]
layers = -3

# 8
[upsample]
stride=2

# 9
[route]
layers = -1, 0

# 10: head B
[convolutional]
size=1
stride=1
pad=1
filters=10
activation=linear

# 11
[yolo]
mask = 0
anchors = 4,6, 10,14, 23,27
classes=5
num=3
"""

# (filters, in_channels, size, batch_normalize) of each conv in TINY_CFG, in order
CONVS = [(8, 3, 3, True), (16, 8, 3, True), (16, 16, 1, True), (20, 16, 1, False), (10, 24, 1, False)]


def _write_model(tmp_path, rng, header=(0, 2, 0), seen_dtype="<i8", truncate=0):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY_CFG)
    params = []
    blobs = [np.array(header, "<i4").tobytes(), np.array([12345], seen_dtype).tobytes()]
    for filters, cin, size, bn in CONVS:
        bias = rng.normal(0, 0.1, filters).astype(np.float32)
        p = {"bias": bias}
        blobs.append(bias.tobytes())
        if bn:
            p["scale"] = rng.uniform(0.5, 1.5, filters).astype(np.float32)
            p["mean"] = rng.normal(0, 0.1, filters).astype(np.float32)
            p["var"] = rng.uniform(0.5, 1.5, filters).astype(np.float32)
            blobs += [p["scale"].tobytes(), p["mean"].tobytes(), p["var"].tobytes()]
        p["w"] = rng.normal(0, 0.3, (filters, cin, size, size)).astype(np.float32)
        blobs.append(p["w"].tobytes())
        params.append(p)
    data = b"".join(blobs)
    if truncate:
        data = data[:-truncate]
    weights = tmp_path / "tiny.weights"
    weights.write_bytes(data)
    return cfg, weights, params


# ------------------------------------------------------------------ independent reference
def _conv(x, p, bn, act):
    w = p["w"]
    f, c, k, _ = w.shape
    pad = k // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    h, wd = x.shape[1:]
    cols = np.stack([xp[:, i : i + h, j : j + wd] for i in range(k) for j in range(k)], 1)  # (c, k*k, h, w)
    y = np.einsum("fcq,cqhw->fhw", w.reshape(f, c, k * k), cols)
    if bn:  # Darknet's order: normalise, scale, then add the bias
        y = (y - p["mean"][:, None, None]) / np.sqrt(p["var"][:, None, None] + 1e-6)
        y = y * p["scale"][:, None, None]
    y = y + p["bias"][:, None, None]
    return np.where(y > 0, y, 0.1 * y) if act == "leaky" else y


def _maxpool(x, size, stride):
    c, h, w = x.shape
    padding = size - 1
    out_h, out_w = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    xp = np.full((c, h + padding, w + padding), -np.inf)
    b = padding // 2
    xp[:, b : b + h, b : b + w] = x
    out = np.full((c, out_h, out_w), -np.inf)
    for i in range(size):
        for j in range(size):
            out = np.maximum(out, xp[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride])
    return out


def _reference(x, params):
    l0 = _conv(x, params[0], True, "leaky")
    l1 = _maxpool(l0, 2, 2)
    l2 = _conv(l1, params[1], True, "leaky")
    l3 = _maxpool(l2, 2, 1)
    l4 = _conv(l3, params[2], True, "leaky")
    head_a = _conv(l4, params[3], False, "linear")
    up = l4.repeat(2, 1).repeat(2, 2)
    l9 = np.concatenate([up, l0[:, : up.shape[1], : up.shape[2]]], 0)
    head_b = _conv(l9, params[4], False, "linear")
    return head_a, head_b


@pytest.mark.parametrize("header, seen", [((0, 2, 0), "<i8"), ((0, 1, 0), "<i4"), ((1, 0, 0), "<i8")])
def test_converter_matches_numpy_reference(tmp_path, header, seen):
    rng = np.random.default_rng(0)
    cfg, weights, params = _write_model(tmp_path, rng, header, seen)
    proto = convert(cfg, weights, tmp_path / "tiny.onnx")
    sess = ort.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    for h, w in [(32, 32), (32, 64)]:  # dynamic input size
        x = rng.uniform(0, 1, (2, 3, h, w)).astype(np.float32)
        outs = sess.run(None, {"images": x})
        assert outs[0].shape == (2, 20, h // 2, w // 2)
        assert outs[1].shape == (2, 10, h, w)
        for b in range(2):
            ref_a, ref_b = _reference(x[b].astype(np.float64), params)
            np.testing.assert_allclose(outs[0][b], ref_a, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(outs[1][b], ref_b, rtol=1e-4, atol=1e-4)
    heads = heads_from_onnx(proto)
    assert [h.anchors for h in heads] == [((10.0, 14.0), (23.0, 27.0)), ((4.0, 6.0),)]
    assert all(h.num_classes == 5 for h in heads)


def test_converter_matches_opencv_darknet_reader(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    cfg, weights, _ = _write_model(tmp_path, rng)
    convert(cfg, weights, tmp_path / "tiny.onnx")
    sess = ort.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    x = rng.uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
    ours = sess.run(None, {"images": x})
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setInput(x)
    # OpenCV's [yolo] layers output decoded rows (cx, cy, w, h, obj, classes) per cell and anchor
    theirs = net.forward(net.getUnconnectedOutLayersNames())
    for out, cv_out, n_anchors in zip(ours, theirs, (2, 1)):
        _, ch, gh, gw = out.shape
        t = out.reshape(n_anchors, ch // n_anchors, gh, gw).transpose(2, 3, 0, 1).reshape(-1, ch // n_anchors)
        sig = 1 / (1 + np.exp(-t))
        np.testing.assert_allclose(cv_out[:, 4], sig[:, 4], atol=1e-4)  # objectness
        gx = np.tile(np.arange(gw), gh).repeat(n_anchors)
        np.testing.assert_allclose(cv_out[:, 0], (gx + sig[:, 0]) / gw, atol=1e-4)  # centre x


def test_decode_yolo_places_a_box():
    from vigil.models.darknet import YoloHead

    head = YoloHead("y", ((20.0, 40.0),), num_classes=2)
    out = np.full((1, 7, 4, 4), -10.0, np.float32)
    out[0, 0:2, 1, 2] = 0.0  # sigmoid 0.5 → centre of cell (2, 1)
    out[0, 2:4, 1, 2] = 0.0  # exp(0) → anchor size
    out[0, 4, 1, 2] = 10.0  # objectness ~1
    out[0, 6, 1, 2] = 10.0  # class 1
    ((xyxy, score, cls),) = decode_yolo([out], [head], (64, 64), 0.5)
    np.testing.assert_allclose(xyxy, [[40 - 10, 24 - 20, 40 + 10, 24 + 20]], atol=1e-3)
    assert cls.tolist() == [1] and score[0] > 0.99


def test_truncated_weights_error_names_file_and_layer(tmp_path):
    cfg, weights, _ = _write_model(tmp_path, np.random.default_rng(2), truncate=40)
    with pytest.raises(DarknetError, match=r"tiny\.weights.*truncated.*layer 10 \[convolutional\]"):
        load_darknet(cfg, weights)


def test_truncated_header(tmp_path):
    with pytest.raises(DarknetError, match="truncated"):
        read_weights_header(b"\x00" * 8, "x.weights")


def test_extra_bytes_mean_mismatch(tmp_path):
    cfg, weights, _ = _write_model(tmp_path, np.random.default_rng(3))
    weights.write_bytes(weights.read_bytes() + b"\x00" * 8)
    with pytest.raises(DarknetError, match="do not match"):
        load_darknet(cfg, weights)


def test_unknown_layer_type(tmp_path):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(
        "[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=4\nsize=1\nactivation=leaky\n[reorg3d]\nstride=2\n"
    )
    with pytest.raises(DarknetError, match=r"bad\.cfg:8: layer 1 has unsupported type \[reorg3d\]"):
        load_darknet(cfg, tmp_path / "none.weights")
