"""``vigil eval detect`` and ``vigil bench detect``.

``eval detect`` runs a node's detector and tracker over video frames and scores them against
CVML ground truth: detection precision / recall / AP at IoU 0.5 (raw detector output, the
scored class only), the same for the tracked output the product reports, MOTA, IDF1 and ID
switches (py-motmetrics), and the end-to-end frame rate.

``bench detect`` measures, in one run and on the same frames, the detector alone
(``detector_fps``) and the whole pipeline from decode to events (``pipeline_fps``), with the
mean latency of each stage. The detector-only pass runs before and after the pipeline pass
and its two timings are averaged, so drift on a noisy machine affects both rates alike.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from vigil.bench.cvml import read_cvml
from vigil.bench.detection_eval import match_frame, missing_input, parse_frames
from vigil.bench.mot_eval import score_tracks
from vigil.detectors.registry import build_detector
from vigil.edge.config import NodeConfig, load_config
from vigil.edge.sources import FileSource
from vigil.edge.tracking import Tracker
from vigil.edge.worker import CameraPipeline

__all__ = ["average_precision", "eval_detect", "bench_detect", "first_frames", "add_eval_command", "add_bench_command"]


def average_precision(scores: np.ndarray, is_tp: np.ndarray, num_gt: int) -> float:
    """All-point interpolated AP (VOC 2010+) from per-detection scores and TP flags."""
    if num_gt == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.asarray(is_tp, bool)[order]
    ctp, cfp = np.cumsum(tp), np.cumsum(~tp)
    recall = ctp / num_gt
    precision = ctp / np.maximum(ctp + cfp, 1)
    r = np.concatenate([[0.0], recall, [recall[-1] if recall.size else 0.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    return float(np.sum((r[1:] - r[:-1]) * p[1:]))


def _load_node(config: str | None):

    if config:
        return load_config(config)
    # the embedded defaults; the camera entry is a placeholder that is never opened
    return NodeConfig.model_validate({"cameras": [{"name": "eval", "source": "unused", "calibration": "unused"}]})


def eval_detect(
    video: str,
    gt_path: str,
    frames: range,
    config: str | None = None,
    fps: float | None = None,
    class_name: str = "person",
    iou: float = 0.5,
) -> dict:
    """See the module docstring; returns a JSON-ready dict."""

    node = _load_node(config)
    gt = read_cvml(gt_path)
    src = FileSource(video, fps=fps or (node.cameras[0].fps if config else None) or 7.0)
    detector = build_detector(node.detector)
    if class_name not in detector.class_names:
        raise ValueError(f"class {class_name!r} is not a detector class")
    cid = detector.class_names.index(class_name)
    tracker = Tracker.from_config(node.tracker, fps=src.fps)
    scores, flags, num_gt = [], [], 0
    hyp: dict[int, dict[str, np.ndarray]] = {}
    n = 0
    t_start = None
    for frame in src:
        if frame.index >= frames.stop:
            break
        if frame.index < frames.start:
            continue
        if t_start is None:
            t_start = time.perf_counter()
        dets = detector.detect(frame.image)
        tracked = tracker.update(dets)
        n += 1
        if (frame.index - frames.start) % (frames.step or 1) or frame.index not in gt:
            continue
        g = gt[frame.index]
        d = dets[dets.class_id == cid]
        m = match_frame(d.xyxy, d.confidence, g.xyxy, iou)
        scores.append(d.confidence)
        flags.append(m.det_to_gt >= 0)
        num_gt += len(g)
        t = tracked[tracked.class_id == cid]
        hyp[frame.index] = {"ids": t.tracker_id, "xyxy": t.xyxy, "conf": t.confidence, "world": np.zeros((len(t), 2))}
    wall = time.perf_counter() - t_start if t_start else 0.0
    src.close()
    s = np.concatenate(scores) if scores else np.zeros(0)
    f = np.concatenate(flags) if flags else np.zeros(0, bool)
    tp = int(f.sum())
    det = {
        "precision": round(tp / len(f), 4) if len(f) else 0.0,
        "recall": round(tp / num_gt, 4) if num_gt else 0.0,
        "ap50": round(average_precision(s, f, num_gt), 4),
        "tp": tp,
        "fp": int(len(f) - tp),
        "fn": int(num_gt - tp),
    }
    trk = score_tracks(hyp, gt, frames, iou=iou)
    return {
        "video": str(video),
        "frames": trk["frames"],
        "class": class_name,
        "iou_threshold": iou,
        "detector": det,
        "tracked": {k: trk[k] for k in ("precision", "recall", "f1", "tp", "fp", "fn")},
        "mota": trk["mota"],
        "idf1": trk["idf1"],
        "id_switches": trk["id_switches"],
        "fps": round(n / wall, 2) if wall else 0.0,
    }


def first_frames(path: str, fps: float | None, count: int) -> tuple[list[np.ndarray], float]:
    """The first ``count`` decoded ``(H, W, 3) uint8`` BGR frames of the video ``path`` (fewer
    if it is shorter) and its frame rate (``fps`` if given, else the file's); ``ValueError``
    naming the file when it has none."""
    src = FileSource(path, fps=fps)
    images = []
    for fr in src:
        images.append(fr.image)
        if len(images) >= count:
            break
    src.close()
    if not images:
        raise ValueError(f"{path}: no frames")
    return images, src.fps


def bench_detect(config: str, source: str | None = None, frames: int = 150, camera: str | None = None) -> dict:
    """See the module docstring; returns ``{"stages_ms": {...}, "detector_fps", "pipeline_fps", ...}``."""

    node = _load_node(config)
    cam = node.camera(camera)
    path = source or cam.source
    images, fps = first_frames(path, cam.fps, frames)
    pipeline = CameraPipeline(node, cam, fps=fps)
    detector = pipeline.detector

    def detector_pass() -> float:
        t0 = time.perf_counter()
        for img in images:
            detector.detect(img)
        return time.perf_counter() - t0

    det_a = detector_pass()
    # pipeline pass: decode from the file again, then everything up to the events
    src = FileSource(path, fps=cam.fps)
    sub = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
    decode_s = 0.0
    n = 0
    t0 = time.perf_counter()
    it = iter(src)
    while n < len(images):
        td = time.perf_counter()
        frame = next(it, None)
        decode_s += time.perf_counter() - td
        if frame is None:
            break
        pipeline.process(frame)
        timing = getattr(detector, "last_timing", None) or {}
        sub["preprocess"] += timing.get("pre_ms", 0.0) / 1e3
        sub["inference"] += timing.get("infer_ms", 0.0) / 1e3
        sub["postprocess"] += timing.get("post_ms", 0.0) / 1e3
        n += 1
    pipe_s = time.perf_counter() - t0
    src.close()
    det_b = detector_pass()
    det_s = (det_a + det_b) / 2
    st = pipeline.stage_s
    stages = {"decode": decode_s}
    if any(sub.values()):
        stages.update(sub)
    else:
        stages["detect"] = st["detect"]
    stages.update({"tracking": st["track"], "geometry": st["geometry"], "rules": st["rules"], "events": st["events"]})
    detector_fps = len(images) / det_s
    pipeline_fps = n / pipe_s
    return {
        "frames": n,
        "stages_ms": {k: round(1e3 * v / max(n, 1), 2) for k, v in stages.items()},
        "detector_fps": round(detector_fps, 2),
        "pipeline_fps": round(pipeline_fps, 2),
        "pipeline_over_detector": round(pipeline_fps / detector_fps, 3),
        "detector_passes_s": [round(det_a, 2), round(det_b, 2)],
        "detector": detector_facts(detector),
    }


def detector_facts(detector) -> dict:
    """What a benchmark's detector ran: ``model`` (file name), ``runtime`` (``onnxruntime`` or
    ``openvino``) and ``precision`` (``fp32``, ``bf16``, ``int8``), null where a backend has none."""
    path = getattr(detector, "model_path", None)
    return {
        "model": getattr(path, "name", None),
        "runtime": getattr(detector, "runtime", None),
        "precision": getattr(detector, "precision", None),
    }


# ------------------------------------------------------------------------------------ CLI
def _cmd_eval(args: argparse.Namespace) -> int:

    if missing_input("vigil eval detect", ((args.video, "--video"), (args.gt, "--gt"))):
        return 2
    res = eval_detect(args.video, args.gt, parse_frames(args.frames), config=args.config, fps=args.fps)
    if args.json:
        print(json.dumps(res))
    else:
        d, t = res["detector"], res["tracked"]
        print(f"{res['frames']} frames, class {res['class']}, IoU {res['iou_threshold']}")
        print(f"  detector: precision {d['precision']:.3f}, recall {d['recall']:.3f}, AP50 {d['ap50']:.3f}")
        print(
            f"  tracked:  precision {t['precision']:.3f}, recall {t['recall']:.3f}; MOTA {res['mota']:.3f}, IDF1 "
            f"{res['idf1']:.3f}, ID switches {res['id_switches']}"
        )
        print(f"  {res['fps']:.1f} frames/s (decode + detect + track)")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    res = bench_detect(args.config, source=args.source, frames=args.frames, camera=args.camera)
    if args.json:
        print(json.dumps(res))
    else:
        print(
            f"{res['frames']} frames: detector {res['detector_fps']:.1f} fps, pipeline {res['pipeline_fps']:.1f} fps "
            f"(ratio {res['pipeline_over_detector']:.2f})"
        )
        print("  ms per frame: " + ", ".join(f"{k} {v:.1f}" for k, v in res["stages_ms"].items()))
    return 0


def add_eval_command(eval_sub) -> None:
    p = eval_sub.add_parser(
        "detect", help="detector and tracker against CVML ground truth: P/R/AP50, MOTA, IDF1, ID switches"
    )
    p.add_argument("--video", required=True)
    p.add_argument("--gt", required=True, help="CVML ground truth XML")
    p.add_argument("--frames", default="0:400", help="video frames A:B[:step] (B exclusive), default 0:400")
    p.add_argument("--config", help="node config whose detector and tracker to use (default: the embedded defaults)")
    p.add_argument("--fps", type=float, help="frame rate of the video (default: the config's camera fps, else 7)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_eval)


def add_bench_command(bench_sub) -> None:
    p = bench_sub.add_parser("detect", help="stage latencies, detector_fps and pipeline_fps measured in one run")
    p.add_argument("--config", required=True, help="node config")
    p.add_argument("--camera", help="camera name (default: the first enabled)")
    p.add_argument("--source", help="video file (default: the camera's source)")
    p.add_argument("--frames", type=int, default=150, help="frames to use (default 150)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_bench)
