"""Evaluate a ``vigil run --mot-out`` file against CVML ground truth (e.g. PETS2009).

Reports, over the chosen video frames:

- detection precision / recall / F1 at IoU 0.5 (greedy matching by confidence per frame);
- MOTA, IDF1, ID switches (py-motmetrics, IoU 0.5);
- ground-plane error in metres: for every matched pair, the distance between our ``x, y``
  and the ground truth's foot point (box bottom centre) projected through the same
  calibration; median and 90th percentile.

MOT frames count from 1 (MOT frame ``k`` is video frame ``k - 1``); CVML frame ``n`` is
video frame ``n``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from vigil.bench.cvml import read_cvml
from vigil.bench.detection_eval import match_frame, missing_input, parse_frames
from vigil.detectors.ops import box_iou
from vigil.geometry.calibration_io import load_camera

__all__ = ["read_mot", "evaluate_mot", "score_tracks", "add_eval_command"]


def read_mot(path: str | Path) -> dict[int, dict[str, np.ndarray]]:
    """MOT lines → ``{video_frame: {"ids", "xyxy", "conf", "world"}}`` (video frame = MOT frame - 1)."""
    rows: dict[int, list[list[float]]] = defaultdict(list)
    with open(path, encoding="ascii") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(",")
            if len(parts) < 9:
                raise ValueError(f"{path}:{lineno}: expected at least 9 comma-separated fields, got {len(parts)}")
            rows[int(float(parts[0])) - 1].append([float(p) for p in parts[1:9]])
    out = {}
    for frame, vals in rows.items():
        a = np.asarray(vals, np.float64)
        out[frame] = {
            "ids": a[:, 0].astype(np.int64),
            "xyxy": np.stack([a[:, 1], a[:, 2], a[:, 1] + a[:, 3], a[:, 2] + a[:, 4]], axis=1),
            "conf": a[:, 5],
            "world": a[:, 6:8],
        }
    return out


def evaluate_mot(
    mot_path: str | Path, gt_path: str | Path, frames: range, calibration: str | Path | None = None, iou: float = 0.5
) -> dict:
    """Score a MOT file; see the module docstring. Returns a JSON-ready dict."""
    camera = None
    if calibration is not None:
        camera = load_camera(calibration)
    return score_tracks(read_mot(mot_path), read_cvml(gt_path), frames, camera=camera, iou=iou)


def score_tracks(hyp: dict[int, dict[str, np.ndarray]], gt: dict, frames: range, camera=None, iou: float = 0.5) -> dict:
    """Score tracked boxes per video frame (``read_mot``'s layout) against CVML ground truth.

    ``camera``: a :class:`vigil.geometry.camera.CameraModel`; when given, also the ground-plane
    error in metres of matched boxes (``hyp[f]["world"]`` against the ground truth's foot points).
    """
    import motmetrics as mm  # noqa: PLC0415 - optional (the test extra), heavy (~0.8 s)

    acc = mm.MOTAccumulator(auto_id=True)
    tp = fp = fn = 0
    ground_err: list[float] = []
    empty = {"ids": np.zeros(0, np.int64), "xyxy": np.zeros((0, 4)), "conf": np.zeros(0), "world": np.zeros((0, 2))}
    evaluated = 0
    for f in frames:
        if f not in gt:
            continue
        evaluated += 1
        g = gt[f]
        h = hyp.get(f, empty)
        m = match_frame(h["xyxy"], h["conf"], g.xyxy, iou)
        tp += m.tp
        fp += m.fp
        fn += m.fn
        if camera is not None and m.tp:
            det_idx = np.nonzero(m.det_to_gt >= 0)[0]
            gxy = g.xyxy[m.det_to_gt[det_idx]]
            foot = np.stack([(gxy[:, 0] + gxy[:, 2]) / 2, gxy[:, 3]], axis=1)
            truth = camera.image_to_ground(foot)
            ours = h["world"][det_idx]
            ok = np.all(np.isfinite(truth), axis=1) & np.all(np.isfinite(ours), axis=1) & np.all(ours != -1, axis=1)
            ground_err.extend(np.linalg.norm(ours[ok] - truth[ok], axis=1).tolist())
        dist = 1.0 - box_iou(g.xyxy, h["xyxy"]) if len(g) and len(h["ids"]) else np.zeros((len(g), len(h["ids"])))
        dist = np.where(dist > 1.0 - iou, np.nan, dist)
        acc.update(g.ids.tolist(), h["ids"].tolist(), dist)
    summary = mm.metrics.create().compute(
        acc, metrics=["mota", "motp", "idf1", "num_switches", "mostly_tracked", "num_unique_objects"], name="all"
    )
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    res = {
        "frames": evaluated,
        "iou_threshold": iou,
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "mota": round(float(summary["mota"].iloc[0]), 4),
        "idf1": round(float(summary["idf1"].iloc[0]), 4),
        "id_switches": int(summary["num_switches"].iloc[0]),
        "mostly_tracked": int(summary["mostly_tracked"].iloc[0]),
        "gt_objects": int(summary["num_unique_objects"].iloc[0]),
    }
    if camera is not None:
        e = np.asarray(ground_err)
        res["ground_error_m"] = {
            "median": round(float(np.median(e)), 3) if e.size else None,
            "p90": round(float(np.percentile(e, 90)), 3) if e.size else None,
            "pairs": int(e.size),
        }
    return res


def _cmd_eval_mot(args: argparse.Namespace) -> int:
    if missing_input("vigil eval mot", ((args.mot, "--mot"), (args.gt, "--gt"))):
        return 2
    res = evaluate_mot(args.mot, args.gt, parse_frames(args.frames), calibration=args.calibration, iou=args.iou)
    if args.json:
        print(json.dumps(res))
    else:
        print(
            f"frames {res['frames']}: precision {res['precision']:.3f}, recall {res['recall']:.3f} (IoU "
            f"{res['iou_threshold']}), "
            f"MOTA {res['mota']:.3f}, IDF1 {res['idf1']:.3f}, ID switches {res['id_switches']}"
        )
        if "ground_error_m" in res:
            g = res["ground_error_m"]
            print(f"ground-plane error: median {g['median']} m, p90 {g['p90']} m over {g['pairs']} matched boxes")
    return 0


def add_eval_command(eval_sub) -> None:
    p = eval_sub.add_parser(
        "mot", help="score a --mot-out file against CVML ground truth (P/R, MOTA, IDF1, ground error)"
    )
    p.add_argument("--mot", required=True, help="MOTChallenge file written by `vigil run --mot-out`")
    p.add_argument("--gt", required=True, help="CVML ground-truth XML (e.g. PETS2009-S2L1-dev.xml)")
    p.add_argument("--calibration", help="Vigil calibration file: also report the ground-plane error in metres")
    p.add_argument("--frames", default="0:400", help="video frames A:B (B exclusive), default 0:400")
    p.add_argument("--iou", type=float, default=0.5, help="IoU for a match (default 0.5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_eval_mot)
