"""Ultralytics YOLO ``.pt`` (or ``.yaml``) models through the ``ultralytics`` package (``type: ultralytics``).

An optional extra: ``pip install '.[ultralytics]'`` (torch's CPU build is enough). torch and
ultralytics are imported only when the detector is built (through
:func:`vigil.models.ultralytics_env.import_ultralytics`), so the rest of Vigil runs without them.

Ultralytics is used to *load* the model; pre- and post-processing are Vigil's own (the
ones of the ``onnx`` backend: letterbox to a fixed ``input_size``, best class, per-class
thresholds, class-aware NMS, or nothing for end-to-end heads), so a ``.pt`` model and its
ONNX export give the same boxes. Ultralytics' predictor is not used: it imports
torchvision, which does not load beside the CPU torch wheel used here.

Offline by construction (see :mod:`vigil.models.ultralytics_env`): a ``.pt`` file that is
not on disk is an error, never a download.

Ultralytics loads a ``.pt`` with ``torch.load(weights_only=False)``, which runs whatever the
file's pickle names; so the file first passes :func:`vigil.models.pt_gate.check_pt` (with
``for_torch=True``: allow-listed globals, bounded sizes, module classes checked against the
installed torch and ultralytics), and one that fails is a :class:`ModelError` before Ultralytics
sees it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from vigil.detectors.base import Backend, BackendConfig, ClassThresholds, StrideSize, cpu_count
from vigil.detectors.yolo import YoloDetectorBase
from vigil.models.errors import ModelError
from vigil.models.metadata import read_names_file
from vigil.models.pt_gate import check_pt
from vigil.models.ultralytics_env import import_ultralytics

__all__ = ["UltralyticsConfig", "UltralyticsDetector", "build_ultralytics", "BACKEND"]


class UltralyticsConfig(BackendConfig):
    """An Ultralytics YOLO detection model (``.pt`` weights, or a ``.yaml`` architecture with random
    weights, for tests)."""

    #: ``model`` is a str (it may be a name ultralytics ships, e.g. yolo11n.yaml): resolved only if the file exists
    file_fields: ClassVar[tuple[str, ...]] = ("model", "class_names")

    type: Literal["ultralytics"] = Field(
        "ultralytics", title="Backend", description="Detector backend: Ultralytics YOLO on torch."
    )
    model: str = Field(
        ...,
        title="Model",
        description="A local .pt file (never downloaded), or a .yaml model definition (a file, or a name ultralytics "
        "ships such as yolo11n.yaml: random weights, for tests and benchmarks).",
    )
    class_names: Path | None = Field(
        None,
        title="Class names file",
        description="Overrides the model's own names: one per line, or YAML with `names:`.",
    )
    input_size: StrideSize = Field(
        (640, 640),
        title="Input size",
        json_schema_extra={"unit": "px"},
        description="Model input [height, width], multiples of 32; frames are letterboxed into it.",
    )
    device: str = Field("cpu", title="Device", description="torch device: cpu, cuda, cuda:1...")
    half: bool = Field(False, title="FP16", description="Run in half precision (CUDA only).")
    classes: list[str] | None = Field(
        None, min_length=1, title="Kept classes", description="Class names to report; null reports every class."
    )
    confidence: float = Field(0.25, gt=0, le=1, title="Confidence threshold", description="Minimum class score.")
    class_confidence: ClassThresholds = Field(
        default_factory=dict,
        title="Per-class thresholds",
        description="Thresholds overriding `confidence` for some classes.",
    )
    nms_iou: float = Field(
        0.7, gt=0, le=1, title="NMS IoU", description="Class-aware NMS IoU threshold (not used by end-to-end heads)."
    )
    max_detections: int = Field(
        300, ge=1, title="Max detections", description="At most this many boxes per frame, best first."
    )
    max_batch: int = Field(
        8, ge=1, title="Max batch", description="`detect_batch` runs at most this many frames per forward pass."
    )
    threads: int | None = Field(
        None,
        ge=1,
        title="Threads",
        description="torch intra-op threads; default: the CPU cores available (ultralytics alone would use one fewer).",
    )
    seed: int = Field(
        0, title="Seed", description="torch seed used when building a .yaml model (random weights), so runs repeat."
    )
    warmup: bool = Field(True, title="Warm-up", description="Run one inference at load.")


class UltralyticsDetector(YoloDetectorBase):
    """See :class:`UltralyticsConfig`; same API and attributes as the onnx backend (``providers`` is the
    torch device)."""

    def __init__(self, cfg: UltralyticsConfig):
        torch, YOLO = import_ultralytics()
        self.cfg = cfg
        self._torch = torch
        src = cfg.model
        suffix = Path(src).suffix.lower()
        if suffix == ".pt":
            if not Path(src).is_file():
                raise ModelError(
                    f"Ultralytics model file not found: {src}. Vigil never downloads weights at run time: "
                    "copy the .pt file onto this machine and give its path."
                )
            # the gate: Ultralytics' loader unpickles with weights_only=False; a file that fails runs nothing
            check_pt(src, for_torch=True)
        elif suffix in (".yaml", ".yml"):
            torch.manual_seed(cfg.seed)
        else:
            raise ModelError(
                f"ultralytics backend: model {src!r} must be a .pt file or a .yaml model definition "
                "(for ONNX use `type: onnx`)"
            )
        torch.set_num_threads(cfg.threads or cpu_count())
        try:
            yolo = YOLO(src, task="detect")
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever ultralytics raises, reported as a model error
            raise ModelError(f"ultralytics cannot load model {src}: {type(exc).__name__}: {exc}") from None
        if getattr(yolo, "task", "detect") != "detect":
            raise ModelError(f"model {src} is a {yolo.task!r} model; only detection models are supported")
        self.model_path = src
        try:
            self.device = torch.device(cfg.device)
            net = yolo.model.to(self.device)
        except Exception as exc:  # noqa: BLE001 - whatever torch raises for a bad device
            raise ModelError(f"ultralytics backend: cannot use device {cfg.device!r}: {exc}") from None
        net = net.fuse() if hasattr(net, "fuse") else net
        net.eval()
        self.half = cfg.half and self.device.type == "cuda"
        if self.half:
            net = net.half()
        self.net = net
        self.providers = [str(self.device)]
        if cfg.class_names is not None:
            names = read_names_file(cfg.class_names)
        else:
            raw = getattr(yolo, "names", None) or getattr(net, "names", None)
            names = [str(raw[i]) for i in sorted(raw)] if isinstance(raw, dict) else list(raw or [])
        self._setup_classes(names, f"model {src}")
        self.input_size = tuple(cfg.input_size)
        self.batch_size = None
        self.layout = None
        if cfg.warmup:
            self.detect(np.zeros((*self.input_size, 3), np.uint8))

    def _infer(self, batch_hwc: np.ndarray) -> np.ndarray:
        torch = self._torch
        blob = np.ascontiguousarray(batch_hwc[..., ::-1].transpose(0, 3, 1, 2)).astype(np.float32) * np.float32(1 / 255)
        x = torch.from_numpy(blob).to(self.device)
        if self.half:
            x = x.half()
        with torch.inference_mode():
            y = self.net(x)
        if isinstance(y, (list, tuple)):
            y = y[0]
        return y.float().cpu().numpy()


def build_ultralytics(cfg: UltralyticsConfig) -> UltralyticsDetector:
    """Registry builder for ``type: ultralytics`` (imports torch and ultralytics here, lazily)."""
    return UltralyticsDetector(cfg)


#: ``type: ultralytics`` (torch and ultralytics are imported only when built).
BACKEND = Backend(name="ultralytics", config=UltralyticsConfig, build=build_ultralytics)
