"""``vigil bench int8``: the node's detector in FP32 and in INT8, on the same frames, in one run.

Both detectors are built from the config's ``detector`` section (its ``runtime`` too), one
with ``precision: fp32`` and one with ``precision: int8`` (its INT8 copy must have been made: ``vigil models prepare``
or ``vigil models quantize``). The frames are decoded once; each frame is run through the
two detectors back to back, alternating which goes first, so load on a shared machine hits
both alike. Reported: frames/s of each (``detect`` calls: letterbox, inference, decode),
``speedup`` (FP32 time over INT8 time) with a 95 % bootstrap interval over frames, and how
far their detections agree (people matched at IoU >= 0.5, per frame). Accuracy against
ground truth is ``vigil eval detect`` / ``vigil eval ground`` with ``precision`` set.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from vigil.bench.detect_cmd import _load_node, detector_facts, first_frames
from vigil.detectors.ops import box_iou
from vigil.detectors.registry import build_detector

__all__ = ["bench_int8", "add_bench_command"]


def _agreement(a, b) -> tuple[int, int, int]:
    """``(matched, only_a, only_b)`` boxes of two :class:`Detections` at IoU >= 0.5 (greedy)."""
    if len(a) == 0 or len(b) == 0:
        return 0, len(a), len(b)
    iou = box_iou(a.xyxy, b.xyxy)
    matched = 0
    while iou.size and iou.max() >= 0.5:
        i, j = np.unravel_index(int(iou.argmax()), iou.shape)
        matched += 1
        iou[i, :] = -1
        iou[:, j] = -1
    return matched, len(a) - matched, len(b) - matched


def bench_int8(config: str, video: str | None = None, frames: int = 60, seed: int = 0) -> dict:
    """The figures described in the module docstring, for the first ``frames`` frames of
    ``video`` (default: the config's first camera's source)."""
    node = _load_node(config)
    det_cfg = node.detector.model_dump()
    fp32 = build_detector({**det_cfg, "precision": "fp32"})
    int8 = build_detector({**det_cfg, "precision": "int8"})
    images, _ = first_frames(video or node.cameras[0].source, node.cameras[0].fps, frames)
    t = np.zeros((len(images), 2))
    agree = np.zeros(3, int)
    for i, img in enumerate(images):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        out = [None, None]
        for k in order:
            d = (fp32, int8)[k]
            t0 = time.perf_counter()
            out[k] = d.detect(img)
            t[i, k] = time.perf_counter() - t0
        agree += _agreement(out[0], out[1])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(images), (2000, len(images)))
    boot = t[idx, 0].sum(1) / t[idx, 1].sum(1)
    m, a, b = (int(x) for x in agree)
    return {
        "frames": len(images),
        "input_size": list(int8.input_size),
        "fp32_model": str(fp32.model_path),
        "int8_model": str(int8.model_path),
        "fp32_fps": round(len(images) / t[:, 0].sum(), 2),
        "int8_fps": round(len(images) / t[:, 1].sum(), 2),
        "fp32_ms_median": round(float(np.median(t[:, 0])) * 1e3, 1),
        "int8_ms_median": round(float(np.median(t[:, 1])) * 1e3, 1),
        "speedup": round(float(t[:, 0].sum() / t[:, 1].sum()), 3),
        "speedup_ci95": [round(float(x), 3) for x in np.percentile(boot, [2.5, 97.5])],
        "boxes_matched": m,
        "boxes_fp32_only": a,
        "boxes_int8_only": b,
        "runtime": {"fp32": detector_facts(fp32)["runtime"], "int8": detector_facts(int8)["runtime"]},
    }


def _cmd(args: argparse.Namespace) -> int:
    res = bench_int8(args.config, video=args.video, frames=args.frames)
    if args.json:
        print(json.dumps(res))
    else:
        print(
            f"FP32 {res['fp32_fps']} fps, INT8 {res['int8_fps']} fps: {res['speedup']}x "
            f"(95 % {res['speedup_ci95'][0]}-{res['speedup_ci95'][1]}) over {res['frames']} frames at "
            f"{res['input_size'][0]}x{res['input_size'][1]}; boxes matched {res['boxes_matched']}, "
            f"FP32 only {res['boxes_fp32_only']}, INT8 only {res['boxes_int8_only']} "
            f"(runtime {res['runtime']['int8']})"
        )
    return 0


def add_bench_command(sub) -> None:
    p = sub.add_parser("int8", help="the node's detector in FP32 and INT8 on the same frames: frames/s and speedup")
    p.add_argument("--config", required=True, help="node config (its detector section and first camera)")
    p.add_argument("--video", help="default: the first camera's source")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd)
