"""Static INT8 quantization of a YOLO detection model for CPU nodes (onnxruntime QDQ).

:func:`quantize_detector` writes a copy of an ONNX detector in which every operator up to
and including the head's last convolutions runs in INT8 (activations uint8, weights int8
per output channel, QDQ format: onnxruntime fuses the pairs into integer kernels, VNNI on
CPUs that have it), and the decode after those convolutions stays in float:

- **Why the tail stays float.** A YOLOv8 head concatenates box coordinates in pixels
  (0..896) with class scores (0..1) in one output tensor; one uint8 scale cannot hold both
  (a step of 896 / 255 = 3.5 px swallows every score), so quantizing every operator finds
  nobody. The tail is found from the graph, not from node names: it is every node from
  which no convolution can be reached (:func:`float_tail`): the DFL softmax, the anchor
  arithmetic, the class sigmoid and the concatenations. It is a few percent of the
  operations, so the speed of a fully quantized graph is kept.
- **Calibration.** Activation ranges come from frames letterboxed exactly as the detector
  letterboxes them (:func:`letterboxed`), ideally the node's own cameras (``vigil models
  quantize --video``); the method is MinMax unless told otherwise (``percentile`` clips the
  top 0.001 %, ``entropy`` minimises KL divergence: onnxruntime's calibrators).
- **Shapes.** The input's batch is fixed to 1 and its height and width to the calibration
  size, which lets onnxruntime plan the integer kernels once; a model made for 672 x 896 is
  used only at 672 x 896 (the detector checks it).

Everything is deterministic for the same model, frames, method and onnxruntime version: the
cache key (:func:`int8_cache_key`) is made of them. Nothing here downloads anything.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from vigil.fileio import atomic_write_bytes
from vigil.hashing import sha256_file
from vigil.letterbox import letterbox
from vigil.models.errors import ModelError
from vigil.models.manifest import (
    NAME_RE,
    Manifest,
    default_model_manifest,
    get_manifest,
    load_manifest,
    models_dir,
    write_manifest,
)
from vigil.models.metadata import read_onnx_info

__all__ = [
    "QUANTIZER_VERSION",
    "METHODS",
    "Int8Recipe",
    "float_tail",
    "letterboxed",
    "video_frames",
    "int8_cache_key",
    "quantize_detector",
    "frames_digest",
    "CalibrationReader",
    "int8_name",
    "prepare_int8",
    "image_frames",
    "source_manifest",
    "make_int8",
]

#: bumped when what :func:`quantize_detector` writes changes (part of the cache key)
QUANTIZER_VERSION = 1
#: calibration methods, by their config names
METHODS = ("minmax", "percentile", "entropy")


@dataclass(frozen=True)
class Int8Recipe:
    """How an INT8 model is made: the calibration ``input_size`` (height, width) pixels,
    ``method`` (one of :data:`METHODS`) and a description of the frames (``calibration``,
    e.g. ``"vtest.avi frames 0:200:10"``), recorded in the manifest."""

    input_size: tuple[int, int]
    method: str = "minmax"
    calibration: str = ""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ModelError(f"unknown calibration method {self.method!r}; choose one of {', '.join(METHODS)}")
        h, w = self.input_size
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            raise ModelError(f"INT8 input size {[h, w]} must be positive multiples of 32 (height, width)")


def float_tail(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes of ``model`` from which no ``Conv`` is reachable downstream (and
    which are not convolutions): the decode that stays in float. Sorted by graph order."""
    consumers: dict[str, list[int]] = {}
    nodes = list(model.graph.node)
    for i, n in enumerate(nodes):
        for name in n.input:
            consumers.setdefault(name, []).append(i)
    reaches_conv = [False] * len(nodes)
    # nodes are topologically sorted in a valid ONNX graph: walk them backwards
    for i in range(len(nodes) - 1, -1, -1):
        reaches_conv[i] = any(
            nodes[j].op_type == "Conv" or reaches_conv[j] for o in nodes[i].output for j in consumers.get(o, [])
        )
    return [n.name for i, n in enumerate(nodes) if n.op_type != "Conv" and not reaches_conv[i]]


def letterboxed(frame_bgr: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """``(1, 3, H, W) float32`` RGB in 0..1 of a ``(h, w, 3) uint8`` BGR frame, letterboxed to
    ``input_size`` (H, W) pixels with grey 114 and scaled by ``float32(1 / 255)``, exactly as the
    detector does (``vigil.detectors.yolo`` letterbox, ``ort_session.numpy_blob``)."""
    h, w = input_size
    out = np.full((h, w, 3), 114, np.uint8)
    letterbox(frame_bgr, (h, w), fill=114, out=out, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(out[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) * np.float32(1 / 255)


def video_frames(path: str | os.PathLike, frames: range) -> list[np.ndarray]:
    """The ``(h, w, 3) uint8`` BGR frames of the video at ``path`` whose indices are in
    ``frames``. Raises :class:`ModelError` naming the file when it cannot be read or holds
    fewer frames."""
    p = Path(path)
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        raise ModelError(f"calibration video {p}: cannot be opened")
    wanted = set(frames)
    out: list[np.ndarray] = []
    last = max(wanted) if wanted else -1
    try:
        for i in range(last + 1):
            ok, f = cap.read()
            if not ok:
                raise ModelError(f"calibration video {p}: frame {i} cannot be read (need frames up to {last})")
            if i in wanted:
                out.append(f)
    finally:
        cap.release()
    return out


def int8_cache_key(source_sha256: str, recipe: Int8Recipe, frames_digest: str) -> str:
    """A hex key of everything the INT8 model depends on."""
    h, w = recipe.input_size
    text = f"{source_sha256}|{h}x{w}|{recipe.method}|{frames_digest}|ort{ort.__version__}|q{QUANTIZER_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()


def frames_digest(frames: Sequence[np.ndarray]) -> str:
    """SHA-256 of the calibration frames' bytes and shapes."""
    d = hashlib.sha256()
    for f in frames:
        d.update(str(f.shape).encode())
        d.update(np.ascontiguousarray(f).tobytes())
    return d.hexdigest()


class CalibrationReader:
    """onnxruntime.quantization's calibration data reader over model inputs (``(B, 3, H, W)``
    arrays), each given once under ``input_name``."""

    def __init__(self, input_name: str, blobs: Iterable[np.ndarray]) -> None:
        self._name = input_name
        self._it = iter(blobs)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self._name: x}

    def rewind(self) -> None:  # pragma: no cover - not used by the calibrators here
        raise NotImplementedError


def quantize_detector(
    source: str | os.PathLike,
    target: str | os.PathLike,
    frames_bgr: Sequence[np.ndarray],
    recipe: Int8Recipe,
) -> dict:
    """Write the INT8 copy of the ONNX detector ``source`` to ``target`` (atomically).

    ``frames_bgr``: the calibration frames, ``(h, w, 3) uint8`` BGR of any size (at least
    one). Returns what was done: ``source_sha256``, ``input_size``, ``method``,
    ``calibration``, ``frames``, ``float_nodes`` (the tail kept in float), ``quantized_ops``
    (QDQ pairs written), ``seconds``. Raises :class:`ModelError` naming the file.
    """
    src = Path(source)
    if not frames_bgr:
        raise ModelError(f"INT8 quantization of {src}: no calibration frames")
    t0 = time.perf_counter()
    try:
        proto = onnx.load(str(src))
    except Exception as exc:  # noqa: BLE001 - DecodeError, OSError: not a model
        raise ModelError(f"INT8 quantization: cannot read ONNX model {src}: {exc}") from None
    if len(proto.graph.input) != 1 or len(proto.graph.input[0].type.tensor_type.shape.dim) != 4:
        raise ModelError(f"INT8 quantization of {src}: expected one image input (batch, 3, height, width)")
    inp = proto.graph.input[0]
    h, w = recipe.input_size
    for dim, value in zip(inp.type.tensor_type.shape.dim, (1, 3, h, w)):
        if dim.HasField("dim_value") and dim.dim_value != value:
            raise ModelError(
                f"INT8 quantization of {src}: its input is fixed at "
                f"{[d.dim_value for d in inp.type.tensor_type.shape.dim]}, not (1, 3, {h}, {w})"
            )
        dim.ClearField("dim_param")
        dim.dim_value = value
    tail = float_tail(proto)
    method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[recipe.method]
    dst = Path(target)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vigil-int8-", dir=dst.parent) as tmp:
        fixed, pre, out = Path(tmp) / "fixed.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, str(fixed))
        del proto
        try:
            quant_pre_process(str(fixed), str(pre), skip_symbolic_shape=True)
            quantize_static(
                str(pre),
                str(out),
                CalibrationReader(inp.name, (letterboxed(f, (h, w)) for f in frames_bgr)),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=method,
                nodes_to_exclude=tail,
            )
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the quantizer raises, reported with the file
            raise ModelError(f"INT8 quantization of {src} failed: {type(exc).__name__}: {exc}") from None
        q = onnx.load(str(out))
        n_qdq = sum(1 for n in q.graph.node if n.op_type == "QuantizeLinear")
        q.metadata_props.add(key="vigil_precision", value="int8")
        atomic_write_bytes(dst, q.SerializeToString(), durable=True)
    return {
        "source_sha256": sha256_file(src),
        "input_size": [h, w],
        "method": recipe.method,
        "calibration": recipe.calibration,
        "frames": len(frames_bgr),
        "float_nodes": len(tail),
        "quantized_ops": n_qdq,
        "seconds": round(time.perf_counter() - t0, 2),
    }


# ---------------------------------------------------------------------------- cache and manifests
def int8_name(source_name: str, input_size: tuple[int, int]) -> str:
    """Manifest name of the INT8 copy of model ``source_name`` at ``input_size`` (H, W)."""
    return f"{source_name}-int8-{input_size[0]}x{input_size[1]}"


def prepare_int8(
    source: Manifest,
    frames_bgr: Sequence[np.ndarray],
    recipe: Int8Recipe,
    root: str | os.PathLike | None = None,
) -> tuple[Manifest, bool]:
    """The INT8 copy of the registered model ``source`` (a :class:`Manifest`) for ``recipe``,
    quantized into the model cache unless an identical one is already there. Returns
    ``(manifest, made)``; the manifest records the recipe under ``derived``."""
    key = int8_cache_key(source.sha256, recipe, frames_digest(frames_bgr))
    name = int8_name(source.name, recipe.input_size)
    folder = models_dir(root)
    existing = folder / f"{name}.manifest.json"
    if existing.is_file():
        old = load_manifest(existing)
        if (
            (old.derived or {}).get("key") == key
            and old.path(folder).is_file()
            and sha256_file(old.path(folder)) == old.sha256
        ):
            return old, False
    src_path = source.path(folder)
    target = folder / f"{name}-{key[:12]}.onnx"
    info = quantize_detector(src_path, target, frames_bgr, recipe)
    if info["source_sha256"] != source.sha256:
        target.unlink(missing_ok=True)
        raise ModelError(f"model {source.name}: {src_path} does not match its manifest's sha256 (changed on disk?)")
    m = Manifest(
        name=name,
        file=target.name,
        sha256=sha256_file(target),
        format="onnx",
        task=source.task,
        input_size=list(recipe.input_size),
        class_names=list(source.class_names),
        licence=f"derived from {source.name}: {source.licence}",
        origin=f"static INT8 (onnxruntime {ort.__version__} QDQ, per-channel, {recipe.method}) of {source.name}, "
        f"calibrated on {recipe.calibration or f'{len(frames_bgr)} frames'}; head decode in float",
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        precision="int8",
        derived={"source": source.name, "key": key, "onnxruntime": ort.__version__, **info},
    )
    for old_file in folder.glob(f"{name}-*.onnx"):  # an older recipe's copy of the same name
        if old_file != target:
            old_file.unlink(missing_ok=True)
    write_manifest(m, root)
    get_manifest(name, root)  # read back: what was written is what the registry lists
    return m, True


def image_frames(folder: str | os.PathLike, limit: int = 64) -> list[np.ndarray]:
    """Up to ``limit`` ``(h, w, 3) uint8`` BGR images (``*.jpg``, ``*.jpeg``, ``*.png``, sorted by
    name) of ``folder``. Raises :class:`ModelError` naming the folder or file."""
    d = Path(folder)
    if not d.is_dir():
        raise ModelError(f"calibration images: {d} is not a folder")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    if not files:
        raise ModelError(f"calibration images: no .jpg or .png in {d}")
    out = []
    for p in files:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise ModelError(f"calibration image {p}: cannot be decoded")
        out.append(img)
    return out


def source_manifest(model: str | None, root: str | os.PathLike | None = None) -> Manifest:
    """The model to quantize: a registered name, an ``.onnx`` file (described on the fly:
    name from its stem, class names from its metadata), or ``None`` for the embedded default."""
    if model is None:
        return default_model_manifest(root)
    p = Path(model)
    if p.suffix.lower() == ".onnx" or p.is_file():
        if not p.is_file():
            raise ModelError(f"model file not found: {p}")
        info = read_onnx_info(p)
        return Manifest(
            name=p.stem if NAME_RE.match(p.stem) else "model",
            file=str(p.resolve()),
            sha256=sha256_file(p),
            class_names=list(info.get("class_names") or []),
            licence="as the source model",
            origin=str(p.resolve()),
        )
    return get_manifest(model, root)


def make_int8(
    model: str | None,
    input_size: tuple[int, int],
    *,
    video: str | os.PathLike | None = None,
    frames: range = range(0, 200, 10),
    images: str | os.PathLike | None = None,
    method: str = "minmax",
    root: str | os.PathLike | None = None,
) -> tuple[Manifest, bool]:
    """``vigil models quantize`` / ``prepare``: the INT8 copy of ``model`` (see
    :func:`source_manifest`) at ``input_size`` (H, W) pixels, calibrated on the frames
    ``frames`` of ``video`` or on the images of the folder ``images``. ``(manifest, made)``."""
    if (video is None) == (images is None):
        raise ModelError("INT8 calibration needs exactly one of a video (--video) or an image folder (--images)")
    source = source_manifest(model, root)
    if video is not None:
        data = video_frames(video, frames)
        where = f"{Path(video).name} frames {frames.start}:{frames.stop}:{frames.step}"
    else:
        data = image_frames(images)  # type: ignore[arg-type]
        where = f"{len(data)} images of {Path(images).name}/"  # type: ignore[arg-type]
    recipe = Int8Recipe(input_size=(int(input_size[0]), int(input_size[1])), method=method, calibration=where)
    return prepare_int8(source, data, recipe, root)
