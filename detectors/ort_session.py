"""onnxruntime sessions for the YOLO backends: provider options per GPU, INT8 calibration
tables for TensorRT, and the inference path (plain ``session.run`` or IO binding on the device).

- **Provider options** (:func:`provider_options`). TensorRT builds an engine per model, input
  shape, batch profile, precision and GPU model, which takes minutes; the engines live in
  :func:`engine_cache_dir`, ``<tensorrt_cache>/<gpu slug>/<model stem>-<sha>-<H>x<W>-b<min>-<max>-<precision>``
  (the GPU slug is its name and compute capability, e.g. ``nvidia-h200-sm90``), so a cache
  shared by several nodes or moved to another GPU is never fed a wrong engine. FP16 is on
  by default; an INT8 calibration table (:func:`write_trt_calibration_table`) turns INT8 on and
  is copied into the engine folder (the TensorRT EP reads it from there, by name). The timing
  cache is kept per GPU model, beside its engines. A model with a dynamic batch axis gets one
  optimisation profile: min 1, opt = max = ``max_batch``.
- **Calibration** (:func:`calibrate_int8`): onnxruntime.quantization's MinMax (or entropy)
  calibrator runs on the CPU over calibration frames; each tensor's dynamic range
  ``max(|lowest|, |highest|)`` goes into the FlatBuffers ``TrtTable`` that the TensorRT EP
  reads when ``trt_int8_use_native_calibration_table`` is off.
- **Inference** (:class:`OrtRunner`): ``run(batch_hwc)`` takes the ``(B, H, W, 3)`` BGR
  ``uint8`` letterboxed batch. On the CPU provider (or with ``io_binding`` off) it converts the
  batch to the model's ``(B, 3, H, W)`` RGB ``/ 255`` tensor with numpy and calls
  ``session.run``. On CUDA/TensorRT the ``uint8`` batch is copied to the device once (a
  quarter of the float bytes), converted there by a small pre-processing graph, fed to the
  model through IO binding, and for the ``anchors`` layout a small post-processing graph keeps
  the ``topk`` columns with the best class scores (in their original order) before the one
  copy back, so the host decodes ``(4 + C, topk)`` instead of ``(4 + C, N)``. The result
  equals the full decode unless more than ``topk`` columns pass the lowest threshold
  (counted in ``topk_saturated``). CUDA graphs (CUDA EP, ``cuda_graph``) are captured once per
  batch shape (``gpu_graph_id``) on fixed device buffers.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from vigil.hashing import sha256_file

__all__ = [
    "GpuInfo",
    "TrtSettings",
    "probe_gpu",
    "engine_cache_dir",
    "tensorrt_options",
    "cuda_options",
    "provider_options",
    "write_trt_calibration_table",
    "read_trt_calibration_table",
    "calibrate_int8",
    "preprocess_model",
    "topk_model",
    "OrtRunner",
    "TRT_TABLE_NAME",
]

log = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
#: File name of the INT8 calibration table inside an engine folder (the TensorRT EP reads it by name).
TRT_TABLE_NAME = "int8-calibration.flatbuffers"
_GRAPH_OPSET = 17


# ------------------------------------------------------------------------------ the device
@dataclass(frozen=True)
class GpuInfo:
    """One GPU: ``name`` as the driver reports it, ``compute_capability`` ``"9.0"``,
    ``memory_mib`` (MiB) and ``driver`` when known."""

    name: str
    compute_capability: str
    memory_mib: int | None = None
    driver: str | None = None

    @property
    def slug(self) -> str:
        """Folder-safe key of the GPU model, e.g. ``nvidia-h200-sm90`` (engines differ per model and SM)."""
        name = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "gpu"
        return f"{name}-sm{self.compute_capability.replace('.', '')}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "compute_capability": self.compute_capability,
            "memory_mib": self.memory_mib,
            "driver": self.driver,
            "slug": self.slug,
        }


def probe_gpu(device_id: int = 0, nvidia_smi: str = "nvidia-smi") -> GpuInfo | None:
    """The GPU ``device_id`` as ``nvidia-smi`` reports it; ``None`` where there is none (or no driver)."""
    exe = shutil.which(nvidia_smi)
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [
                exe,
                f"--id={device_id}",
                "--query-gpu=name,compute_cap,memory.total,driver_version",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    parts = [p.strip() for p in out.strip().splitlines()[0].split(",")] if out.strip() else []
    if len(parts) < 2 or not parts[0]:
        return None
    mem = int(float(parts[2])) if len(parts) > 2 and re.fullmatch(r"[0-9.]+", parts[2]) else None
    return GpuInfo(parts[0], parts[1], mem, parts[3] if len(parts) > 3 else None)


# ------------------------------------------------------------------------------ provider options
@dataclass(frozen=True)
class TrtSettings:
    """What the TensorRT options depend on. ``cache_root``: the engine cache folder;
    ``input_name`` and ``input_hw`` ``(H, W)`` pixels of the model input; ``dynamic_batch``:
    the model's batch axis is symbolic (then a profile 1..``max_batch`` is built);
    ``int8_table``: a calibration table file (turns INT8 on); ``model_sha``: 16 hex digits."""

    cache_root: Path
    model_path: Path
    model_sha: str
    input_name: str
    input_hw: tuple[int, int]
    max_batch: int = 8
    dynamic_batch: bool = True
    fp16: bool = True
    int8_table: Path | None = None
    timing_cache: bool = True
    device_id: int = 0

    @property
    def precision(self) -> str:
        return "int8" if self.int8_table is not None else ("fp16" if self.fp16 else "fp32")

    @property
    def batch_range(self) -> tuple[int, int]:
        return (1, self.max_batch) if self.dynamic_batch else (self.max_batch, self.max_batch)


def _gpu_slug(gpu: GpuInfo | None) -> str:
    return gpu.slug if gpu is not None else "unknown-gpu"


def engine_cache_dir(settings: TrtSettings, gpu: GpuInfo | None) -> Path:
    """The engine folder of this model, input shape, batch profile and precision on this GPU model
    (an INT8 engine also keys the table's contents)."""
    h, w = settings.input_hw
    lo, hi = settings.batch_range
    name = f"{settings.model_path.stem}-{settings.model_sha}-{h}x{w}-b{lo}-{hi}-{settings.precision}"
    if settings.int8_table is not None:
        name += f"-{sha256_file(settings.int8_table)[:8]}"
    return settings.cache_root / _gpu_slug(gpu) / name


def tensorrt_options(settings: TrtSettings, gpu: GpuInfo | None, cuda_graph: bool = False) -> dict[str, Any]:
    """TensorRT EP options (onnxruntime's names): engine and timing caches keyed by GPU model,
    FP16/INT8, and the batch profile. Creates nothing; :func:`prepare_engine_dir` does."""
    engines = engine_cache_dir(settings, gpu)
    opts: dict[str, Any] = {
        "device_id": settings.device_id,
        "trt_fp16_enable": settings.fp16 or settings.int8_table is not None,
        "trt_int8_enable": settings.int8_table is not None,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engines),
        "trt_timing_cache_enable": settings.timing_cache,
    }
    if settings.timing_cache:
        opts["trt_timing_cache_path"] = str(settings.cache_root / _gpu_slug(gpu))
    if settings.int8_table is not None:
        opts["trt_int8_calibration_table_name"] = TRT_TABLE_NAME
        opts["trt_int8_use_native_calibration_table"] = False
    if settings.dynamic_batch:
        h, w = settings.input_hw
        lo, hi = settings.batch_range

        def shape(b: int) -> str:
            return f"{settings.input_name}:{b}x3x{h}x{w}"

        opts["trt_profile_min_shapes"] = shape(lo)
        opts["trt_profile_opt_shapes"] = shape(hi)
        opts["trt_profile_max_shapes"] = shape(hi)
    if cuda_graph:
        opts["trt_cuda_graph_enable"] = True
    return opts


def cuda_options(device_id: int = 0, cuda_graph: bool = False) -> dict[str, Any]:
    """CUDA EP options: the device, exhaustive cuDNN search once per shape, CUDA graphs on request."""
    opts: dict[str, Any] = {"device_id": device_id, "cudnn_conv_algo_search": "EXHAUSTIVE"}
    if cuda_graph:
        opts["enable_cuda_graph"] = True
    return opts


def provider_options(
    providers: Sequence[str],
    trt: TrtSettings | None,
    gpu: GpuInfo | None,
    device_id: int = 0,
    cuda_graph: bool = False,
) -> list[tuple[str, dict[str, Any]]]:
    """``(provider, options)`` for each onnxruntime provider name in ``providers`` (already
    filtered to what this build has). CUDA graphs go to the CUDA EP only when it is the first
    provider (TensorRT's own graphs cover a dynamic batch badly)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for p in providers:
        if p == TENSORRT:
            if trt is None:
                raise ValueError("the TensorRT provider needs TrtSettings")
            out.append((p, tensorrt_options(trt, gpu)))
        elif p == CUDA:
            out.append((p, cuda_options(device_id, cuda_graph and providers[0] == CUDA)))
        else:
            out.append((p, {}))
    return out


def prepare_engine_dir(settings: TrtSettings, gpu: GpuInfo | None) -> Path:
    """Create the engine folder (and the timing-cache folder) and put the INT8 table in it."""
    engines = engine_cache_dir(settings, gpu)
    engines.mkdir(parents=True, exist_ok=True)
    if settings.int8_table is not None:
        target = engines / TRT_TABLE_NAME
        if not target.is_file() or sha256_file(target) != sha256_file(settings.int8_table):
            shutil.copyfile(settings.int8_table, target)
    return engines


def model_sha(path: str | os.PathLike) -> str:
    """The first 16 hex digits of the model file's SHA-256 (its engines' key)."""
    return sha256_file(path)[:16]


# ------------------------------------------------------------------------------ INT8 calibration
def write_trt_calibration_table(ranges: dict[str, float], path: str | os.PathLike) -> Path:
    """Write ``{tensor name: dynamic range}`` as the FlatBuffers ``TrtTable`` that onnxruntime's
    TensorRT EP reads (``trt_int8_use_native_calibration_table`` off); keys sorted. Returns the path."""
    import flatbuffers  # noqa: PLC0415 - onnxruntime.quantization's dependency, only needed here
    from onnxruntime.quantization.CalTableFlatBuffers import KeyValue, TrtTable  # noqa: PLC0415

    builder = flatbuffers.Builder(1024)
    entries = []
    for key in sorted(ranges):
        k, v = builder.CreateString(key), builder.CreateString(repr(float(ranges[key])))
        KeyValue.KeyValueStart(builder)
        KeyValue.KeyValueAddKey(builder, k)
        KeyValue.KeyValueAddValue(builder, v)
        entries.append(KeyValue.KeyValueEnd(builder))
    TrtTable.TrtTableStartDictVector(builder, len(entries))
    for e in reversed(entries):  # prepended: reversed keeps the sorted order in the file
        builder.PrependUOffsetTRelative(e)
    vec = builder.EndVector()
    TrtTable.TrtTableStart(builder)
    TrtTable.TrtTableAddDict(builder, vec)
    builder.Finish(TrtTable.TrtTableEnd(builder))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(bytes(builder.Output()))
    os.replace(tmp, path)
    return path


def read_trt_calibration_table(path: str | os.PathLike) -> dict[str, float]:
    """The ``{tensor name: dynamic range}`` of a table written by :func:`write_trt_calibration_table`."""
    from onnxruntime.quantization.CalTableFlatBuffers import TrtTable  # noqa: PLC0415

    buf = Path(path).read_bytes()
    table = TrtTable.TrtTable.GetRootAsTrtTable(buf, 0)
    out = {}
    for i in range(table.DictLength()):
        kv = table.Dict(i)
        out[kv.Key().decode()] = float(kv.Value().decode())
    return out


def calibrate_int8(
    model_path: str | os.PathLike,
    batches: Iterable[np.ndarray],
    table_path: str | os.PathLike,
    method: str = "minmax",
) -> dict[str, float]:
    """Calibrate on the CPU over ``batches`` (model inputs, ``(B, 3, H, W)`` float in [0, 1]) and
    write the TensorRT table to ``table_path``. ``method``: ``minmax`` or ``entropy``. Returns the
    ranges written: per tensor, ``max(|lowest|, |highest|)`` over every batch."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator  # noqa: PLC0415

    from vigil.models.quantize import CalibrationReader  # noqa: PLC0415 - onnxruntime.quantization: calibration only

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise ValueError(f"calibration method must be one of {sorted(methods)}, got {method!r}")
    proto = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in proto.graph.initializer}
    input_name = next(i.name for i in proto.graph.input if i.name not in inits)
    del proto
    with tempfile.TemporaryDirectory(prefix="vigil-calib-") as tmp:
        cal = create_calibrator(
            Path(model_path),
            augmented_model_path=Path(tmp) / "augmented.onnx",
            calibrate_method=methods[method],
            extra_options={"symmetric": True} if method == "minmax" else {},
        )
        cal.execution_providers = [CPU]
        cal.create_inference_session()
        cal.collect_data(CalibrationReader(input_name, batches))
        data = cal.compute_data()
        ranges = {}
        for name, td in data.items():
            lo, hi = (float(np.max(np.abs(np.asarray(v)))) for v in td.range_value)
            ranges[name] = max(lo, hi)
        del cal
    write_trt_calibration_table(ranges, table_path)
    return ranges


# ------------------------------------------------------------------------------ device graphs
def preprocess_model(batch_hw: tuple[int, int] | None = None, out_dtype: type = np.float32) -> onnx.ModelProto:
    """A graph ``images_u8 (B, H, W, 3) uint8 BGR -> images (B, 3, H, W) RGB / 255`` (float32 or
    float16): the conversion ``run`` does with numpy on the CPU, run on the device instead."""
    h, w = batch_hw or ("H", "W")
    out_type = TensorProto.FLOAT16 if np.dtype(out_dtype) == np.float16 else TensorProto.FLOAT
    nodes = [
        helper.make_node("Gather", ["images_u8", "bgr_to_rgb"], ["rgb"], axis=3),
        helper.make_node("Cast", ["rgb"], ["rgb_f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["rgb_f"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["nchw", "inv255"], ["scaled"]),
        helper.make_node("Cast", ["scaled"], ["images"], to=out_type),
    ]
    inits = [
        helper.make_tensor("bgr_to_rgb", TensorProto.INT64, [3], [2, 1, 0]),
        helper.make_tensor("inv255", TensorProto.FLOAT, [], [float(np.float32(1 / 255))]),
    ]
    graph = helper.make_graph(
        nodes,
        "vigil_preprocess",
        [helper.make_tensor_value_info("images_u8", TensorProto.UINT8, ["B", h, w, 3])],
        [helper.make_tensor_value_info("images", out_type, ["B", 3, h, w])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", _GRAPH_OPSET)])


def topk_model(num_rows: int, k: int, in_dtype: type = np.float32) -> onnx.ModelProto:
    """A graph ``raw (B, 4 + C, N) -> kept (B, 4 + C, k)``: the ``k`` columns with the highest
    best-class score, in their original column order (so decoding them gives what decoding all
    would, as long as every column that passes a threshold is among them); ``num_rows = 4 + C``."""
    dtype = TensorProto.FLOAT16 if np.dtype(in_dtype) == np.float16 else TensorProto.FLOAT
    nodes = [
        helper.make_node("Slice", ["raw", "s_start", "s_end", "s_axis"], ["scores"]),
        helper.make_node("ReduceMax", ["scores"], ["best"], axes=[1], keepdims=0),
        helper.make_node("Cast", ["best"], ["best_f"], to=TensorProto.FLOAT),
        helper.make_node("TopK", ["best_f", "k"], ["top_v", "top_i"], axis=1, largest=1, sorted=1),
        # restore the original column order: sort the kept indices ascending
        helper.make_node("Cast", ["top_i"], ["top_if"], to=TensorProto.FLOAT),
        helper.make_node("Neg", ["top_if"], ["neg_i"]),
        helper.make_node("TopK", ["neg_i", "k"], ["asc_neg", "_"], axis=1, largest=1, sorted=1),
        helper.make_node("Neg", ["asc_neg"], ["asc_f"]),
        helper.make_node("Cast", ["asc_f"], ["asc"], to=TensorProto.INT64),
        helper.make_node("Unsqueeze", ["asc", "one"], ["asc_1"]),
        helper.make_node("Shape", ["raw"], ["raw_shape"]),
        helper.make_node("Slice", ["raw_shape", "zero", "two", "zero"], ["bc"]),
        helper.make_node("Concat", ["bc", "k"], ["gshape"], axis=0),
        helper.make_node("Expand", ["asc_1", "gshape"], ["idx"]),
        helper.make_node("GatherElements", ["raw", "idx"], ["kept"], axis=2),
    ]
    inits = [
        helper.make_tensor("s_start", TensorProto.INT64, [1], [4]),
        helper.make_tensor("s_end", TensorProto.INT64, [1], [num_rows]),
        helper.make_tensor("s_axis", TensorProto.INT64, [1], [1]),
        helper.make_tensor("k", TensorProto.INT64, [1], [k]),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
        helper.make_tensor("two", TensorProto.INT64, [1], [2]),
    ]
    graph = helper.make_graph(
        nodes,
        "vigil_topk",
        [helper.make_tensor_value_info("raw", dtype, ["B", num_rows, "N"])],
        [helper.make_tensor_value_info("kept", dtype, ["B", num_rows, k])],
        inits,
    )
    # opset 17: ReduceMax still takes `axes` as an attribute
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", _GRAPH_OPSET)])


def numpy_blob(batch_hwc: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """``(B, H, W, 3)`` BGR uint8 -> ``(B, 3, H, W)`` RGB in [0, 1] (``dtype``) on the CPU."""
    blob = np.ascontiguousarray(batch_hwc[..., ::-1].transpose(0, 3, 1, 2)).astype(dtype)
    return blob * dtype(1 / 255)


# ------------------------------------------------------------------------------ sessions
def _model_input(path: Path) -> tuple[str, list[Any]]:
    proto = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in proto.graph.initializer}
    inp = next(i for i in proto.graph.input if i.name not in inits)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    return inp.name, dims


def trt_settings(path: Path, cfg: Any, input_hw: tuple[int, int] | None, cache_root: Path) -> TrtSettings:
    """:class:`TrtSettings` of a model file and an ``onnx`` backend config (``max_batch``,
    ``device_id``, ``tensorrt_fp16``, ``tensorrt_int8_table``, ``tensorrt_timing_cache``);
    ``input_hw`` is used where the model's height/width are dynamic."""
    name, dims = _model_input(path)
    if len(dims) != 4:
        raise ValueError(f"ONNX model {path}: expected a (batch, 3, height, width) input, got {dims}")
    hw = (dims[2], dims[3]) if dims[2] and dims[3] else input_hw
    if hw is None:
        raise ValueError(f"ONNX model {path}: TensorRT needs the input size (set input_size)")
    table = getattr(cfg, "tensorrt_int8_table", None)
    return TrtSettings(
        cache_root=Path(cache_root),
        model_path=path,
        model_sha=model_sha(path),
        input_name=name,
        input_hw=(int(hw[0]), int(hw[1])),
        max_batch=int(dims[0]) if dims[0] else int(cfg.max_batch),
        dynamic_batch=not dims[0],
        fp16=bool(getattr(cfg, "tensorrt_fp16", True)),
        int8_table=Path(table) if table is not None else None,
        timing_cache=bool(getattr(cfg, "tensorrt_timing_cache", True)),
        device_id=int(getattr(cfg, "device_id", 0)),
    )


def open_session(
    path: Path,
    providers: Sequence[str],
    cfg: Any,
    input_hw: tuple[int, int] | None,
    cache_root: Path,
    threads: int,
    gpu: GpuInfo | None = None,
) -> ort.InferenceSession:
    """The session of ``path`` on ``providers`` (onnxruntime names, available ones) with the
    options above; the engine folder is prepared (and the INT8 table copied) first. ``gpu``:
    the device's description, probed with ``nvidia-smi`` when TensorRT is asked for."""
    trt = None
    device_id = int(getattr(cfg, "device_id", 0))
    if TENSORRT in providers:
        trt = trt_settings(path, cfg, input_hw, cache_root)
        gpu = gpu or probe_gpu(device_id)
        prepare_engine_dir(trt, gpu)
        if trt.timing_cache:
            (trt.cache_root / _gpu_slug(gpu)).mkdir(parents=True, exist_ok=True)
    cuda_graph = bool(getattr(cfg, "cuda_graph", False))
    opts = provider_options(providers, trt, gpu, device_id=device_id, cuda_graph=cuda_graph)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=[p for p, _ in opts], provider_options=[o for _, o in opts])


# ------------------------------------------------------------------------------ inference
@dataclass
class _Buffers:
    """Device buffers and bindings of one batch size (fixed addresses: what CUDA graphs need)."""

    u8: Any
    pre: Any
    main: Any
    raw: Any
    post: Any = None
    kept: Any = None
    run_options: Any = None


class OrtRunner:
    """``run(batch_hwc)``: a ``(B, H, W, 3)`` BGR ``uint8`` batch -> the model's raw output
    ``(B, ...)`` as numpy (see the module docstring for the two paths).

    ``io_binding``: use IO binding with device pre-processing (always on CUDA/TensorRT
    sessions unless turned off; on a CPU session only when asked, which the tests do).
    ``num_classes`` and ``min_threshold`` enable the device top-``topk`` reduction of the
    ``anchors`` layout (``topk=0`` turns it off). Counters: ``runs``, ``topk_saturated``."""

    def __init__(
        self,
        session: ort.InferenceSession,
        input_dtype: type = np.float32,
        *,
        io_binding: bool | None = None,
        cuda_graph: bool = False,
        num_classes: int | None = None,
        min_threshold: float = 0.0,
        topk: int = 1024,
        device_id: int = 0,
    ) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name
        self.input_dtype = np.dtype(input_dtype).type
        out_type = session.get_outputs()[0].type
        self.output_dtype = np.float16 if out_type == "tensor(float16)" else np.float32
        first = session.get_providers()[0]
        self.device = "cuda" if first in (TENSORRT, CUDA) else "cpu"
        self.device_id = device_id
        self.io_binding = (self.device == "cuda") if io_binding is None else bool(io_binding)
        self.cuda_graph = bool(cuda_graph) and first == CUDA and self.io_binding
        self.num_classes = num_classes
        self.min_threshold = float(min_threshold)
        self.topk = int(topk)
        self._buffers: dict[tuple[int, ...], _Buffers] = {}
        self._aux: dict[str, ort.InferenceSession] = {}
        self.runs = 0
        self.topk_saturated = 0

    @property
    def path(self) -> str:
        """``session.run`` or ``io_binding`` (plus ``+cuda_graph``, ``+topk``) for the reports."""
        if not self.io_binding:
            return "session.run"
        parts = ["io_binding"]
        if self.cuda_graph:
            parts.append("cuda_graph")
        if any(b.post is not None for b in self._buffers.values()):
            parts.append(f"topk{self.topk}")
        return "+".join(parts)

    def run(self, batch_hwc: np.ndarray) -> np.ndarray:
        self.runs += 1
        if not self.io_binding:
            blob = numpy_blob(batch_hwc, self.input_dtype)
            return self.session.run([self.output_name], {self.input_name: blob})[0]
        key = tuple(batch_hwc.shape)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = self._new_buffers(batch_hwc)
        else:
            buf.u8.update_inplace(np.ascontiguousarray(batch_hwc))  # the one host -> device copy
        self._aux["pre"].run_with_iobinding(buf.pre)
        self.session.run_with_iobinding(buf.main, buf.run_options)
        if buf.post is None:
            return buf.raw.numpy()
        self._aux["post"].run_with_iobinding(buf.post)
        kept = buf.kept.numpy()
        best = kept[:, 4:, :].max(axis=1)
        if np.any(best.min(axis=1) >= self.min_threshold):  # candidates may lie beyond the kept ones
            self.topk_saturated += 1
            return buf.raw.numpy()
        return kept

    # -------------------------------------------------------------------------- buffers
    def _aux_session(self, name: str, model: onnx.ModelProto) -> ort.InferenceSession:
        if name not in self._aux:
            providers: list[Any] = [CPU]
            if self.device == "cuda":
                providers = [(CUDA, {"device_id": self.device_id}), CPU]
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            self._aux[name] = ort.InferenceSession(model.SerializeToString(), so, providers=providers)
        return self._aux[name]

    def _ortvalue(self, shape: Sequence[int], dtype: type) -> Any:
        return ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, self.device, self.device_id)

    def _new_buffers(self, batch_hwc: np.ndarray) -> _Buffers:
        b, h, w, _ = batch_hwc.shape
        pre_sess = self._aux_session("pre", preprocess_model(out_dtype=self.input_dtype))
        u8 = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(batch_hwc), self.device, self.device_id)
        blob = self._ortvalue((b, 3, h, w), self.input_dtype)
        pre = pre_sess.io_binding()
        pre.bind_ortvalue_input("images_u8", u8)
        pre.bind_ortvalue_output("images", blob)
        pre_sess.run_with_iobinding(pre)
        # learn the output shape with one run outside any CUDA graph, then bind a fixed buffer
        probe = self.session.io_binding()
        probe.bind_ortvalue_input(self.input_name, blob)
        probe.bind_output(self.output_name, self.device, self.device_id)
        skip = None
        if self.cuda_graph:
            skip = ort.RunOptions()
            skip.add_run_config_entry("gpu_graph_id", "-1")
        self.session.run_with_iobinding(probe, skip)
        shape = probe.get_outputs()[0].shape()
        raw = self._ortvalue(shape, self.output_dtype)
        main = self.session.io_binding()
        main.bind_ortvalue_input(self.input_name, blob)
        main.bind_ortvalue_output(self.output_name, raw)
        buf = _Buffers(u8=u8, pre=pre, main=main, raw=raw)
        if self.cuda_graph:
            buf.run_options = ort.RunOptions()
            buf.run_options.add_run_config_entry("gpu_graph_id", str(len(self._buffers)))
        rows = 4 + self.num_classes if self.num_classes else None
        if self.topk > 0 and rows is not None and len(shape) == 3 and shape[1] == rows and shape[2] > self.topk:
            post_sess = self._aux_session("post", topk_model(rows, self.topk, self.output_dtype))
            buf.kept = self._ortvalue((shape[0], rows, self.topk), self.output_dtype)
            buf.post = post_sess.io_binding()
            buf.post.bind_ortvalue_input("raw", raw)
            buf.post.bind_ortvalue_output("kept", buf.kept)
        return buf
