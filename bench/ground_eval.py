"""``vigil eval ground``: ground-plane accuracy of the whole pipeline against CVML ground truth.

Runs detector + tracker + projection (:class:`vigil.edge.worker.CameraPipeline`) over the
video frames ``A:B`` and reports, over the frames that have ground truth:

- **foot-point error** (metres): for each tracked person matched to a ground-truth box
  (IoU >= 0.5, greedy by confidence), the distance between our ground position and the
  ground truth's box bottom centre projected through the same calibration; median, p90, p95;
- **violating pairs** at ``--threshold`` (2 m): per frame, the pairs of tracked people closer
  than the threshold against the ground-truth pairs closer than it. A predicted pair is a true
  positive when both its tracks matched ground-truth people and those two are a violating
  ground-truth pair; any other predicted pair is a false positive. People are matched two ways:

  * ``ground_matched`` (the figure the acceptance uses): on the ground plane, one to one,
    minimising the total distance, at most ``gate_m`` (1 m) apart — the hit threshold of the
    PETS 2009 ground-plane evaluations, and what a violating pair is about (positions);
  * top level (``precision``/``recall``/``f1``, "IoU-matched"): in the image, tracked box to
    ground-truth box at IoU >= 0.5, which also penalises box shape (the ground truth boxes
    are drawn loosely around partly hidden people).

  The ``matched_only`` figures count only pairs whose two members were IoU-matched on both
  sides (they isolate the geometry from the detector's misses).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from vigil.bench.cvml import read_cvml
from vigil.bench.detection_eval import match_frame, missing_input, parse_frames
from vigil.edge.config import CameraConfig, NodeConfig, load_config
from vigil.edge.sources import open_source
from vigil.edge.worker import CameraPipeline
from vigil.geometry.calibration_io import load_camera
from vigil.geometry.metrics import pairs_within

__all__ = ["evaluate_ground", "add_eval_command", "pair_scores"]


def _prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def pair_scores(pred_xy: np.ndarray, gt_xy: np.ndarray, det_to_gt: np.ndarray, threshold_m: float) -> dict:
    """One frame's violating-pair counts: ``strict`` and ``matched_only`` ``(tp, fp, fn)``."""

    pi, pj, _ = pairs_within(pred_xy, threshold_m) if len(pred_xy) > 1 else (np.zeros(0, int),) * 3
    gi, gj, _ = pairs_within(gt_xy, threshold_m) if len(gt_xy) > 1 else (np.zeros(0, int),) * 3
    gt_pairs = {(min(a, b), max(a, b)) for a, b in zip(gi.tolist(), gj.tolist())}
    matched_gt = set(det_to_gt[det_to_gt >= 0].tolist())
    tp = fp = fp_m = 0
    hit = set()
    for a, b in zip(pi.tolist(), pj.tolist()):
        ga, gb = int(det_to_gt[a]), int(det_to_gt[b])
        if ga < 0 or gb < 0:
            fp += 1
            continue
        key = (min(ga, gb), max(ga, gb))
        if key in gt_pairs and key not in hit:
            hit.add(key)
            tp += 1
        else:
            fp += 1
            fp_m += 1
    fn = len(gt_pairs) - len(hit)
    fn_m = sum(1 for k in gt_pairs - hit if k[0] in matched_gt and k[1] in matched_gt)
    return {"strict": (tp, fp, fn), "matched_only": (tp, fp_m, fn_m)}


def match_on_ground(pred_xy: np.ndarray, gt_xy: np.ndarray, gate_m: float) -> np.ndarray:
    """``(P,) int`` index of the ground-truth person each prediction is matched to, or -1:
    one-to-one assignment minimising the total ground distance, pairs farther than
    ``gate_m`` metres apart left unmatched (the PETS ground-plane evaluations use 1 m)."""

    out = np.full(len(pred_xy), -1, np.int64)
    ok_p = np.all(np.isfinite(pred_xy), axis=1)
    ok_g = np.all(np.isfinite(gt_xy), axis=1)
    if not ok_p.any() or not ok_g.any():
        return out
    pi, gi = np.flatnonzero(ok_p), np.flatnonzero(ok_g)
    d = np.linalg.norm(pred_xy[pi][:, None, :] - gt_xy[gi][None, :, :], axis=2)
    rows, cols = linear_sum_assignment(np.where(d <= gate_m, d, 1e6))
    keep = d[rows, cols] <= gate_m
    out[pi[rows[keep]]] = gi[cols[keep]]
    return out


def evaluate_ground(
    video: str | Path,
    gt: str | Path,
    calibration: str | Path,
    frames: range,
    config: str | Path | None = None,
    threshold_m: float = 2.0,
    iou: float = 0.5,
    fps: float | None = None,
    detector=None,
    progress: bool = False,
    gate_m: float = 1.0,
) -> dict:
    """See the module docstring; returns a JSON-ready dict."""

    truth = read_cvml(gt)
    camera_model = load_camera(calibration)
    if config is not None:
        node = load_config(config)
        cam = node.camera().model_copy(update={"source": str(video), "calibration": Path(calibration)})
        if fps is not None:
            cam = cam.model_copy(update={"fps": fps})
    else:
        cam = CameraConfig(name="eval", source=str(video), calibration=Path(calibration), fps=fps or 7.0)
        node = NodeConfig(cameras=[cam])
    src = open_source(str(video), fps=cam.fps)
    pipe = CameraPipeline(node, cam, fps=getattr(src, "fps", None) or cam.fps or 7.0, detector=detector)
    person = np.array([i for i, n in enumerate(pipe.class_names) if n == "person"], np.int64)
    errors: list[float] = []
    strict = np.zeros(3, np.int64)
    matched = np.zeros(3, np.int64)
    on_ground = np.zeros(3, np.int64)
    evaluated = 0
    no_ground = 0
    t0 = time.perf_counter()
    try:
        for frame in src:
            if frame.index >= frames.stop:
                break
            if frame.index < frames.start:
                continue
            tracked, _, _ = pipe.process(frame)
            g = truth.get(frame.index)
            if g is None:
                continue
            evaluated += 1
            people = tracked[np.isin(tracked.class_id, person)]
            world = people.data["world_xy"] if len(people) else np.zeros((0, 2))
            finite = np.all(np.isfinite(world), axis=1)
            no_ground += int((~finite).sum())
            people, world = people[finite], world[finite]
            foot = np.stack([(g.xyxy[:, 0] + g.xyxy[:, 2]) / 2, g.xyxy[:, 3]], axis=1) if len(g) else np.zeros((0, 2))
            gt_world = camera_model.image_to_ground(foot)
            m = match_frame(people.xyxy, people.confidence, g.xyxy, iou)
            idx = np.flatnonzero(m.det_to_gt >= 0)
            if len(idx):
                e = np.linalg.norm(world[idx] - gt_world[m.det_to_gt[idx]], axis=1)
                errors.extend(e[np.isfinite(e)].tolist())
            s = pair_scores(world, gt_world, m.det_to_gt, threshold_m)
            strict += s["strict"]
            matched += s["matched_only"]
            on_ground += pair_scores(world, gt_world, match_on_ground(world, gt_world, gate_m), threshold_m)["strict"]
    finally:
        src.close()
    e = np.asarray(errors)
    pct = lambda q: round(float(np.percentile(e, q)), 3) if e.size else None  # noqa: E731
    return {
        "frames": evaluated,
        "frame_range": [frames.start, frames.stop],
        "ground_error_m": {
            "median": pct(50),
            "p90": pct(90),
            "p95": pct(95),
            "mean": round(float(e.mean()), 3) if e.size else None,
            "matched": int(e.size),
        },
        "no_ground_position": no_ground,
        "violation_pairs": {
            "threshold_m": threshold_m,
            **_prf(*strict.tolist()),
            "matched_only": _prf(*matched.tolist()),
            "ground_matched": {"gate_m": gate_m, **_prf(*on_ground.tolist())},
        },
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def _cmd(args: argparse.Namespace) -> int:

    if missing_input(
        "vigil eval ground", ((args.video, "--video"), (args.gt, "--gt"), (args.calibration, "--calibration"))
    ):
        return 2
    if not args.threshold > 0:
        print("vigil eval ground: --threshold must be > 0", file=sys.stderr)
        return 2
    try:
        res = evaluate_ground(
            args.video,
            args.gt,
            args.calibration,
            parse_frames(args.frames),
            config=args.config,
            threshold_m=args.threshold,
            iou=args.iou,
            fps=args.fps,
        )
    except ValueError as exc:  # config, calibration or model errors name their file
        print(f"vigil eval ground: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(res))
    else:
        g, v = res["ground_error_m"], res["violation_pairs"]
        print(
            f"frames {res['frames']}: ground error median {g['median']} m, p95 {g['p95']} m over {g['matched']} "
            "matched people"
        )
        gm = v["ground_matched"]
        print(
            f"violating pairs at {v['threshold_m']} m, people matched on the ground within {gm['gate_m']} m: "
            f"precision {gm['precision']:.3f}, recall {gm['recall']:.3f}, F1 {gm['f1']:.3f}"
        )
        print(
            f"violating pairs at {v['threshold_m']} m, people matched by box IoU: precision {v['precision']:.3f}, "
            f"recall {v['recall']:.3f}, F1 {v['f1']:.3f} (matched-only F1 {v['matched_only']['f1']:.3f})"
        )
    return 0


def add_eval_command(eval_sub) -> None:
    p = eval_sub.add_parser(
        "ground", help="foot-point error (m) and violating-pair P/R/F1 of the pipeline against CVML ground truth"
    )
    p.add_argument("--video", required=True, help="video file (e.g. data/vtest.avi)")
    p.add_argument("--gt", required=True, help="CVML ground-truth XML (e.g. PETS2009-S2L1-dev.xml)")
    p.add_argument(
        "--calibration", required=True, help="Vigil calibration file used for both our positions and the ground truth's"
    )
    p.add_argument("--frames", default="0:400", help="video frames A:B (B exclusive), default 0:400")
    p.add_argument(
        "--config", help="node config: detector, tracker and rules of its first camera (default: built-in defaults)"
    )
    p.add_argument(
        "--fps", type=float, default=None, help="frame rate of the recording (default: the config's, else 7)"
    )
    p.add_argument("--threshold", type=float, default=2.0, help="violation distance in metres (default 2)")
    p.add_argument(
        "--iou", type=float, default=0.5, help="IoU for matching a tracked box to ground truth (default 0.5)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd)
