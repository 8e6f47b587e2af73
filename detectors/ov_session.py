"""OpenVINO as the runtime of an ONNX detection model (``detector.runtime: openvino``).

OpenVINO reads the same ``.onnx`` file that onnxruntime runs (the FP32 model or its static
INT8 QDQ copy from :mod:`vigil.models.quantize`: OpenVINO turns the QuantizeLinear /
DequantizeLinear pairs into its own INT8 kernels) and compiles it for the CPU it finds. On
CPUs with AMX or AVX-512 BF16 its default inference precision for the float parts is bf16;
``precision="f32"`` keeps them in float32.

:class:`OvSession` exposes the little of ``onnxruntime.InferenceSession`` that the detector
uses (``get_inputs``, ``get_outputs``, ``get_providers``) plus ``run_blob``, which runs one
``(B, 3, H, W)`` float32 blob. OpenVINO compiles for a static shape per batch size, on
first use of that size (about a second), and keeps the compiled models.

Every session of a process shares one ``openvino.Core`` (:func:`shared_core`). Two Cores in
one process caused a segmentation fault here: with a Go runtime loaded beside them (a test
dependency), a write to a closed socket killed the process (bench/README.md, "One Core per
process"). A second Core is also a known cause of crashes elsewhere (openvinotoolkit/openvino
issue 35338; Ultralytics reuses one Core). Each thread runs its own
inference request, and inputs are copied into it, so no OpenVINO object refers to a Python
array after a call returns.

The ``openvino`` package is imported only here, and only when a session is opened, with
Intel's usage telemetry kept out (see :func:`shared_core`).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["OvSession", "OvTensorInfo", "cpu_has_amx", "openvino_available", "shared_core", "OPENVINO"]

log = logging.getLogger(__name__)

#: What :meth:`OvSession.get_providers` reports (onnxruntime's sessions report provider names).
OPENVINO = "OpenVINO"

Precision = Literal["auto", "f32", "bf16"]

_TYPES = {"f32": "tensor(float)", "f16": "tensor(float16)", "u8": "tensor(uint8)", "i64": "tensor(int64)"}


_CORE: Any = None
_CORE_LOCK = threading.Lock()


def shared_core() -> Any:
    """The process's one ``openvino.Core``, created on first use (thread-safe), with Intel's
    usage telemetry kept out: ``import openvino`` imports its model conversion tool, which starts
    that telemetry (a client id and usage counts written under ~/intel, events sent by
    conversions) unless the ``openvino_telemetry`` package cannot be imported, in which case it
    uses its own stub. Vigil converts nothing with OpenVINO, so the package is blocked before the
    first import."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
            import openvino as ov  # noqa: PLC0415 - loaded only where a session is opened

            _CORE = ov.Core()
        return _CORE


def openvino_available() -> bool:
    """Whether the ``openvino`` package is installed (nothing is imported)."""
    return importlib.util.find_spec("openvino") is not None


def cpu_has_amx(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether the CPU has AMX with bfloat16 tiles (``amx_bf16`` in the Linux CPU flags; False
    where the file is missing or unreadable)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return "amx_bf16" in line.split(":", 1)[-1].split()
    return False


@dataclass(frozen=True)
class OvTensorInfo:
    """An input or output as onnxruntime describes it: ``name``, ``shape`` (ints, or strings for
    dynamic axes), ``type`` (``"tensor(float)"``, ...)."""

    name: str
    shape: list[Any]
    type: str


def _info(port: Any) -> OvTensorInfo:
    pshape = port.get_partial_shape()
    shape: list[Any] = [d.get_length() if d.is_static else f"d{i}" for i, d in enumerate(pshape)]
    et = port.get_element_type().get_type_name()
    return OvTensorInfo(port.get_any_name(), shape, _TYPES.get(et, f"tensor({et})"))


class OvSession:
    """An ONNX model compiled by OpenVINO for the CPU.

    ``path``: the ``.onnx`` file; ``input_hw``: (height, width) in pixels for models whose
    input size is dynamic; ``threads``: the inference threads; ``precision``: ``auto`` (the
    CPU's default: bf16 where the CPU has it), ``f32`` or ``bf16``. Raises whatever OpenVINO
    raises for a model it cannot read (the caller names the file)."""

    def __init__(
        self, path: Path, *, input_hw: tuple[int, int] | None, threads: int, precision: Precision = "auto"
    ) -> None:
        self.core = shared_core()
        import openvino as ov  # noqa: PLC0415 - imported by shared_core, telemetry blocked

        self._ov = ov
        self.path = Path(path)
        self.model = self.core.read_model(str(self.path))
        if len(self.model.inputs) != 1:
            raise ValueError(f"expected one input, got {len(self.model.inputs)}")
        self.input_hw = input_hw
        self.config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": int(threads),
            "PERFORMANCE_HINT": "LATENCY",
        }
        if precision != "auto":
            self.config["INFERENCE_PRECISION_HINT"] = precision
        self._compiled: dict[int, Any] = {}
        self._compile_lock = threading.Lock()
        self._local = threading.local()  # .requests: {batch: this thread's InferRequest}
        self.version = ov.__version__.split("-")[0]

    # -------------------------------------------------------------- onnxruntime's questions
    def get_inputs(self) -> list[OvTensorInfo]:
        return [_info(p) for p in self.model.inputs]

    def get_outputs(self) -> list[OvTensorInfo]:
        return [_info(p) for p in self.model.outputs]

    def get_providers(self) -> list[str]:
        return [OPENVINO]

    @property
    def inference_precision(self) -> str:
        """The precision the CPU plugin runs the float parts in (``bf16``, ``f32``), after the
        first compile; ``auto`` before."""
        if not self._compiled:
            return self.config.get("INFERENCE_PRECISION_HINT", "auto")
        compiled = next(iter(self._compiled.values()))
        return compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    # ------------------------------------------------------------------------------ running
    def compiled(self, batch: int) -> Any:
        """The model compiled for ``batch`` images (cached per batch size; thread-safe)."""
        got = self._compiled.get(batch)
        if got is not None:
            return got
        with self._compile_lock:
            got = self._compiled.get(batch)
            return got if got is not None else self._compile(batch)

    def _compile(self, batch: int) -> Any:
        pshape = self.model.inputs[0].get_partial_shape()
        dims = [d.get_length() if d.is_static else None for d in pshape]
        if len(dims) != 4:
            raise ValueError(f"expected a (batch, 3, height, width) input, got {pshape}")
        if dims[0] is not None and dims[0] != batch:
            raise ValueError(f"the model's batch size is fixed at {dims[0]}, got a batch of {batch}")
        h, w = dims[2], dims[3]
        if h is None or w is None:
            if self.input_hw is None:
                raise ValueError("the model's input size is dynamic: set input_size")
            h, w = self.input_hw
        model = self.model
        if dims != [batch, dims[1] or 3, h, w]:
            model = self.model.clone()
            model.reshape({model.inputs[0]: self._ov.PartialShape([batch, dims[1] or 3, h, w])})
        compiled = self.core.compile_model(model, "CPU", self.config)
        if not self._compiled and self.config.get("INFERENCE_PRECISION_HINT") == "bf16":
            got = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
            if got != "bf16":
                log.warning("OpenVINO runs %s in %s: this CPU has no bfloat16 arithmetic", self.path.name, got)
        self._compiled[batch] = compiled
        log.debug("OpenVINO compiled %s for batch %d at %dx%d", self.path.name, batch, h, w)
        return compiled

    def run_blob(self, blob: np.ndarray) -> np.ndarray:
        """The first output for ``blob``: ``(B, 3, H, W)`` float32 -> ``(B, ...)`` float32, an
        array of its own (thread-safe: each thread infers on its own request)."""
        batch = int(blob.shape[0])
        requests = self._local.__dict__.setdefault("requests", {})
        request = requests.get(batch)
        if request is None:
            request = requests[batch] = self.compiled(batch).create_infer_request()
        # copied in and out: the request keeps no reference to `blob`, the result none to the request
        result = request.infer({0: np.ascontiguousarray(blob, np.float32)}, share_inputs=False, share_outputs=False)
        return np.asarray(result[request.model_outputs[0]])
