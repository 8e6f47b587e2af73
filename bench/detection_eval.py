"""Detection precision / recall against CVML ground truth, and detector timing.

Matching is greedy by descending score at IoU >= 0.5 (the PASCAL VOC rule), per frame:
each ground-truth box takes at most one detection. Greedy-by-score matching makes the
result for a higher score threshold a prefix of the one for a lower threshold, so one
run gives the whole precision/recall curve (:attr:`EvalResult.curve`).

Command line::

    python -m vigil.bench.detection_eval --video vtest.avi --gt PETS2009-S2L1-dev.xml --frames 0:400
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import cv2
import numpy as np
import yaml

from vigil.bench.cvml import GroundTruthFrame, read_cvml
from vigil.detectors.ops import box_iou
from vigil.detectors.registry import build_detector

__all__ = ["match_frame", "FrameMatch", "EvalResult", "evaluate_detections", "evaluate_video", "parse_frames", "main"]


@dataclass(frozen=True)
class FrameMatch:
    """Result of matching one frame: per detection, the ground-truth index it matched or -1."""

    det_to_gt: np.ndarray  # (D,) int64
    iou: np.ndarray  # (D,) float64, IoU with the matched GT (0 when unmatched)
    num_gt: int

    @property
    def tp(self) -> int:
        return int((self.det_to_gt >= 0).sum())

    @property
    def fp(self) -> int:
        return int((self.det_to_gt < 0).sum())

    @property
    def fn(self) -> int:
        return self.num_gt - self.tp


def match_frame(
    det_xyxy: np.ndarray, det_score: np.ndarray, gt_xyxy: np.ndarray, iou_threshold: float = 0.5
) -> FrameMatch:
    """Greedy matching by descending score: each detection takes the unmatched ground
    truth it overlaps most, if that IoU reaches ``iou_threshold``."""
    det_xyxy = np.asarray(det_xyxy, np.float64).reshape(-1, 4)
    gt_xyxy = np.asarray(gt_xyxy, np.float64).reshape(-1, 4)
    d2g = np.full(len(det_xyxy), -1, np.int64)
    ious = np.zeros(len(det_xyxy))
    if len(det_xyxy) and len(gt_xyxy):
        m = box_iou(det_xyxy, gt_xyxy)
        taken = np.zeros(len(gt_xyxy), bool)
        for i in np.argsort(-np.asarray(det_score), kind="stable"):
            row = np.where(taken, -1.0, m[i])
            j = int(np.argmax(row))
            if row[j] >= iou_threshold:
                d2g[i], ious[i], taken[j] = j, row[j], True
    return FrameMatch(d2g, ious, len(gt_xyxy))


@dataclass
class EvalResult:
    """Totals over the evaluated frames."""

    frames: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    mean_iou: float
    ms_per_frame: float = float("nan")  # detector only
    ms_per_frame_total: float = float("nan")  # decode + detector
    curve: list[dict[str, float]] = field(default_factory=list)  # P/R at other score thresholds
    box_stats: dict[str, float] = field(default_factory=dict)  # matched boxes vs ground truth

    def row(self) -> str:
        return (
            f"P={self.precision:.3f} R={self.recall:.3f} F1={self.f1:.3f} (tp={self.tp} fp={self.fp} fn={self.fn}) "
            f"IoU={self.mean_iou:.3f} det={self.ms_per_frame:.1f} ms/frame total={self.ms_per_frame_total:.1f} ms/frame"
        )


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def evaluate_detections(
    predictions: Mapping[int, tuple[np.ndarray, np.ndarray]],
    ground_truth: Mapping[int, GroundTruthFrame],
    iou_threshold: float = 0.5,
    thresholds: Iterable[float] = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5),
) -> EvalResult:
    """``predictions[frame] = (xyxy, score)`` (one class) against ``ground_truth[frame]``.

    Frames in ``predictions`` missing from the ground truth are skipped (not annotated).
    """
    scores, hits, ious = [], [], []
    n_gt = 0
    frames = 0
    rel = []  # matched: (pred w / gt w, pred h / gt h, dx / gt w, dy top / gt h, dy bottom / gt h)
    for n, (xyxy, score) in predictions.items():
        if n not in ground_truth:
            continue
        gt = ground_truth[n]
        frames += 1
        m = match_frame(xyxy, score, gt.xyxy, iou_threshold)
        n_gt += m.num_gt
        scores.append(np.asarray(score, np.float64).reshape(-1))
        hits.append(m.det_to_gt >= 0)
        ious.append(m.iou)
        for i in np.nonzero(m.det_to_gt >= 0)[0]:
            p, g = np.asarray(xyxy[i], float), gt.xyxy[m.det_to_gt[i]].astype(float)
            gw, gh = g[2] - g[0], g[3] - g[1]
            rel.append(
                (
                    (p[2] - p[0]) / gw,
                    (p[3] - p[1]) / gh,
                    ((p[0] + p[2]) - (g[0] + g[2])) / 2 / gw,
                    (p[1] - g[1]) / gh,
                    (p[3] - g[3]) / gh,
                )
            )
    s = np.concatenate(scores) if scores else np.zeros(0)
    h = np.concatenate(hits) if hits else np.zeros(0, bool)
    iou = np.concatenate(ious) if ious else np.zeros(0)
    tp = int(h.sum())
    fp = int(len(h) - tp)
    p, r, f1 = _prf(tp, fp, n_gt - tp)
    curve = []
    for t in thresholds:
        sel = s >= t
        ttp = int(h[sel].sum())
        cp, cr, cf = _prf(ttp, int(sel.sum()) - ttp, n_gt - ttp)
        curve.append({"threshold": float(t), "precision": cp, "recall": cr, "f1": cf})
    stats = {}
    if rel:
        a = np.asarray(rel)
        stats = {
            "width_ratio": float(np.median(a[:, 0])),
            "height_ratio": float(np.median(a[:, 1])),
            "centre_dx": float(np.median(a[:, 2])),
            "top_dy": float(np.median(a[:, 3])),
            "bottom_dy": float(np.median(a[:, 4])),
        }
    return EvalResult(
        frames, tp, fp, n_gt - tp, p, r, f1, float(iou[h].mean()) if tp else 0.0, curve=curve, box_stats=stats
    )


def missing_input(prog: str, files: Iterable[tuple[str | Path, str]]) -> bool:
    """For the eval/bench commands: print ``PROG: OPTION PATH: file not found`` for the first
    ``(path, option)`` that is not a file and return True (the command exits 2)."""
    for path, what in files:
        if not Path(path).is_file():
            print(f"{prog}: {what} {path}: file not found", file=sys.stderr)
            return True
    return False


def parse_frames(spec: str) -> range:
    """``"0:400"`` or ``"0:400:4"`` (start:stop[:step]) → a range."""
    parts = [int(p) for p in spec.split(":")]
    if len(parts) not in (2, 3):
        raise ValueError(f"frames must be start:stop[:step], got {spec!r}")
    return range(*parts)


def evaluate_video(
    detect: Callable[[np.ndarray], Any],
    video: str,
    ground_truth: Mapping[int, GroundTruthFrame] | str,
    frames: range | None = None,
    class_ids: Iterable[int] | None = (0,),
    iou_threshold: float = 0.5,
    progress: bool = False,
) -> EvalResult:
    """Run ``detect(frame_bgr) -> Detections`` on the video's frames in ``frames`` and score
    the rows of ``class_ids`` (default 0: COCO person) against the ground truth (a mapping
    or a CVML path). Timing: detector ms per evaluated frame, and decode + detector."""

    gt = read_cvml(ground_truth) if isinstance(ground_truth, str) else ground_truth
    if frames is None:
        frames = range(min(gt), max(gt) + 1)
    wanted = set(frames)
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open video {video}")
    preds: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    det_time = 0.0
    dec_time = 0.0
    n = 0
    keep = None if class_ids is None else np.asarray(list(class_ids))
    try:
        t = time.perf_counter()
        while n < frames.stop:
            ok = cap.grab()
            if not ok:
                break
            if n in wanted:
                ok, frame = cap.retrieve()
                t1 = time.perf_counter()
                dec_time += t1 - t
                d = detect(frame)
                t = time.perf_counter()
                det_time += t - t1
                m = np.ones(len(d), bool) if keep is None else np.isin(d.class_id, keep)
                preds[n] = (d.xyxy[m], d.confidence[m])
                if progress and len(preds) % 50 == 0:
                    print(f"  frame {n}: {det_time / len(preds) * 1e3:.1f} ms/frame", file=sys.stderr)
            else:
                dec_time += time.perf_counter() - t
                t = time.perf_counter()
            n += 1
    finally:
        cap.release()
    res = evaluate_detections(preds, gt, iou_threshold)
    k = max(1, len(preds))
    res.ms_per_frame = det_time / k * 1e3
    # decode time of the skipped frames is not charged: count only evaluated frames' share
    res.ms_per_frame_total = (det_time + dec_time * len(preds) / max(1, n)) / k * 1e3
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vigil.bench.detection_eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", required=True)
    ap.add_argument("--gt", required=True, help="CVML ground-truth XML")
    ap.add_argument("--frames", default=None, help="start:stop[:step] (default: every annotated frame)")
    ap.add_argument(
        "--config",
        default=None,
        help="detector config as JSON or a path to a JSON/YAML file (default: the default detector)",
    )
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)

    cfg = None
    if args.config:
        if args.config.lstrip().startswith("{"):
            cfg = json.loads(args.config)
        else:
            with open(args.config, encoding="utf-8") as f:
                cfg = yaml.safe_load(f)
    t = time.perf_counter()
    det = build_detector(cfg)
    load_s = time.perf_counter() - t
    person = [det.class_names.index("person")] if "person" in det.class_names else None
    res = evaluate_video(
        det.detect,
        args.video,
        args.gt,
        parse_frames(args.frames) if args.frames else None,
        class_ids=person,
        iou_threshold=args.iou,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps({**asdict(res), "load_s": load_s}, indent=1))
    else:
        print(f"frames={res.frames} {res.row()} (load {load_s:.1f} s)")
        print("box vs ground truth (medians):", {k: round(v, 3) for k, v in res.box_stats.items()})
        for c in res.curve:
            print(f"  score>={c['threshold']:.2f}: P={c['precision']:.3f} R={c['recall']:.3f} F1={c['f1']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
