"""``vigil eval ground``: ground-plane accuracy of the whole pipeline against CVML ground truth.

Runs detector + tracker + projection (:class:`vigil.edge.worker.CameraPipeline`) over the
video frames ``A:B`` and reports, over the frames that have ground truth (the scoring itself,
pure and tested on hand-made frames, is :mod:`vigil.bench.ground_stats`):

- **foot-point error** (metres): for each tracked person matched to a ground-truth box
  (IoU >= 0.5, greedy by confidence), the distance between our ground position and the
  ground truth's box bottom centre projected through the same calibration; median, p90, p95;
- **violating pairs** at each of ``--thresholds`` (1, 1.5, 2 m; the top-level
  ``violation_pairs`` at ``--threshold``, 2 m): per frame, the pairs of tracked people closer
  than the threshold against the ground-truth pairs closer than it. A predicted pair is a true
  positive when both its tracks matched ground-truth people and those two are a violating
  ground-truth pair; any other predicted pair is a false positive. People are matched two ways:

  * ``ground_matched`` (the figure the acceptance uses): on the ground plane, one to one,
    minimising the total distance, at most ``gate_m`` (1 m) apart — the hit threshold of the
    PETS 2009 ground-plane evaluations, and what a violating pair is about (positions);
  * ``iou_matched`` (the top level ``precision``/``recall``/``f1`` of ``violation_pairs``): in the
    image, tracked box to ground-truth box at IoU >= 0.5, which also penalises box shape (the
    ground truth boxes are drawn loosely around partly hidden people).

  The ``matched_only`` figures count only pairs whose two members were IoU-matched on both
  sides (they isolate the geometry from the detector's misses);
- **people**: person precision / recall for both matchings, and the recall of *grouped* people
  (ground-truth people with another ground-truth person closer than the threshold in that frame)
  apart from the *isolated* ones;
- **pair-distance error** (metres): ``|d - d_gt|`` over the ground-truth pairs whose two members
  are both matched, all pairs and those with ``d_gt < 3 m``; median and p95;
- **by camera distance**: foot error and recall per bin of the ground-truth person's ground
  distance from the camera's ground point (the point under the optical centre: ``centre_m`` of a
  Tsai model, ``centre`` of a pinhole model; a model without a centre, e.g. a homography, uses the
  ground point of the image's bottom centre, and ``reference`` says which). ``--distance-bins``
  are the edges; the default 20, 25, 30, 35 m suits PETS2009 View_001, whose camera stands
  17-38 m from the people it sees;
- **95 % intervals** (``*_ci95``, ``[lo, hi]``) on the headline figures: a moving-block bootstrap
  over the evaluated frames, blocks of 20 consecutive frames (the frames of a video are
  correlated: a resample of single frames would give intervals too narrow), 1000 resamples,
  seed 0, 2.5th-97.5th percentiles;
- ``--halves``: the same figures for the first and second half of the range from the same pass
  (the tracker runs on through the middle, so the second half does not start cold as it would
  with ``--frames 200:400``).

``--detections-cache DIR`` stores the detector's raw output once (:mod:`vigil.bench.detcache`)
and reuses it while the video, the frame range and the detector are the same, so a change to the
tracker, geometry or rules re-evaluates in seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from vigil.bench.cvml import read_cvml
from vigil.bench.detcache import CachingDetector, cache_key, detector_identity
from vigil.bench.detection_eval import match_frame, missing_input, parse_frames
from vigil.bench.ground_stats import (
    FrameRecord,
    FrameTable,
    bootstrap,
    frame_table,
    match_on_ground,
    pair_scores,
    summarise,
    threshold_key,
)
from vigil.detectors.registry import build_detector
from vigil.edge.config import CameraConfig, NodeConfig, load_config
from vigil.edge.sources import open_source
from vigil.edge.worker import CameraPipeline
from vigil.geometry.calibration_io import load_camera

__all__ = ["evaluate_ground", "add_eval_command", "pair_scores", "match_on_ground", "ground_reference", "scope"]

DEFAULT_THRESHOLDS = (1.0, 1.5, 2.0)
DEFAULT_BINS = (20.0, 25.0, 30.0, 35.0)


def ground_reference(model, image_size: tuple[int, int] | None) -> tuple[np.ndarray | None, str]:
    """The ground point (metres) that distances from the camera are measured from, and what it is:
    the point under the optical centre when the model has one (``centre_m``: Tsai, ``centre``:
    pinhole, both metres), else the ground point of the image's bottom centre (``image_size``
    ``(width, height)`` pixels); ``None`` when neither is known."""

    for attr, what in (("centre_m", "camera centre's ground point"), ("centre", "camera centre's ground point")):
        c = getattr(model, attr, None)
        if c is not None and np.size(c) == 3 and np.all(np.isfinite(c)):
            return np.asarray(c, np.float64)[:2], what
    if image_size:
        w, h = image_size
        g = model.image_to_ground(np.array([[w / 2.0, h - 1.0]]))[0]
        if np.all(np.isfinite(g)):
            return g, "ground point of the image bottom centre (the model has no camera centre)"
    return None, "none (no camera centre, no image size)"


def scope(
    table: FrameTable,
    frame_range: list[int],
    default_threshold: float,
    gate_m: float,
    block: int = 20,
    resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """:func:`summarise` of ``table`` with the bootstrap intervals (``*_ci95``) set beside the
    figures they belong to, and the single-threshold ``violation_pairs`` of the old output."""

    s = summarise(table, default_threshold)
    ci = bootstrap(table, default_threshold, block=block, resamples=resamples, seed=seed)
    s["frame_range"] = frame_range
    s["ground_error_m"]["median_ci95"] = ci["foot_error_median_m"]
    for tk, row in s["violation_pairs_by_threshold"].items():
        row["iou_matched"]["f1_ci95"] = ci["pair_f1"]["iou_matched"][tk]
        row["ground_matched"]["f1_ci95"] = ci["pair_f1"]["ground_matched"][tk]
    for key, p in s["people"].items():
        p["recall_ci95"] = ci["people_recall"][key]
        p["grouped"]["recall_ci95"] = ci["grouped_recall"][key]
        for part in ("all", "close"):
            s["pair_distance_error_m"][key][part]["median_ci95"] = ci["pair_distance_error_median_m"][key][part]
    row = s["violation_pairs_by_threshold"][threshold_key(default_threshold)]
    s["violation_pairs"] = {
        "threshold_m": default_threshold,
        **row["iou_matched"],
        "ground_matched": {"gate_m": gate_m, **row["ground_matched"]},
    }
    return s


def _records(pipe, src, frames: range, truth, camera_model, iou: float, gate_m: float, origin, cached, progress):
    """One pass over the video: a :class:`FrameRecord` per frame with ground truth, and the count
    of tracked people without a ground position (left out of every figure)."""

    person = np.array([i for i, n in enumerate(pipe.class_names) if n == "person"], np.int64)
    records: list[FrameRecord] = []
    no_ground = 0
    for frame in src:
        if frame.index >= frames.stop:
            break
        if frame.index < frames.start:
            continue
        if cached is not None:
            cached.frame_index = frame.index
        tracked, _, _ = pipe.process(frame)
        if progress and len(records) and len(records) % 100 == 0:
            print(f"  frame {frame.index}: {pipe.stage_s['detect'] / len(records):.3f} s/frame detect", file=sys.stderr)
        g = truth.get(frame.index)
        if g is None:
            continue
        people = tracked[np.isin(tracked.class_id, person)]
        world = people.data["world_xy"] if len(people) else np.zeros((0, 2))
        finite = np.all(np.isfinite(world), axis=1)
        no_ground += int((~finite).sum())
        people, world = people[finite], world[finite]
        foot = np.stack([(g.xyxy[:, 0] + g.xyxy[:, 2]) / 2, g.xyxy[:, 3]], axis=1) if len(g) else np.zeros((0, 2))
        gt_world = camera_model.image_to_ground(foot) if len(foot) else np.zeros((0, 2))
        rng = np.linalg.norm(gt_world - origin, axis=1) if origin is not None else np.full(len(gt_world), np.nan)
        m = match_frame(people.xyxy, people.confidence, g.xyxy, iou)
        matches = {"iou": m.det_to_gt, "ground": match_on_ground(world, gt_world, gate_m)}
        records.append(FrameRecord(frame.index, world, gt_world, rng, matches))
    return records, no_ground


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
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
    halves: bool = False,
    detections_cache: str | Path | None = None,
    distance_bins: tuple[float, ...] = DEFAULT_BINS,
    close_m: float = 3.0,
    block: int = 20,
    resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """See the module docstring; returns a JSON-ready dict. Distances (thresholds, gate, bins,
    ``close_m``) in metres; ``block`` in frames."""

    t0 = time.perf_counter()
    thresholds = tuple(sorted({float(t) for t in thresholds} | {float(threshold_m)}))
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
    cached = None
    if detections_cache is not None:
        given = detector is not None
        detector = detector if given else build_detector(node.detector)
        ident = detector_identity(detector, None if given else node.detector)
        cached = CachingDetector(detector, detections_cache, cache_key(video, frames, ident))
        detector = cached
    src = open_source(str(video), fps=cam.fps)
    size = (getattr(src, "width", 0), getattr(src, "height", 0))
    origin, reference = ground_reference(camera_model, size if all(size) else None)
    pipe = CameraPipeline(node, cam, fps=getattr(src, "fps", None) or cam.fps or 7.0, detector=detector)
    try:
        records, no_ground = _records(pipe, src, frames, truth, camera_model, iou, gate_m, origin, cached, progress)
    finally:
        src.close()
    cache_info = None
    if cached is not None:
        saved = cached.save()
        cache_info = {"file": str(cached.path), "hit": cached.hit, "saved": saved is not None, "misses": cached.misses}
    table = frame_table(records, thresholds, tuple(distance_bins), close_m)
    kw = {"default_threshold": float(threshold_m), "gate_m": gate_m, "block": block, "resamples": resamples}
    res = scope(table, [frames.start, frames.stop], seed=seed, **kw)
    res["no_ground_position"] = no_ground
    res["thresholds_m"] = list(thresholds)
    res["by_camera_distance"] = {
        "reference": reference,
        "origin_m": None if origin is None else [round(float(x), 3) for x in origin],
        "edges_m": list(distance_bins),
        "rows": res["by_camera_distance"],
    }
    res["bootstrap"] = {
        "method": "moving-block bootstrap over evaluated frames, 2.5-97.5 percentile interval",
        "block_frames": block,
        "resamples": resamples,
        "seed": seed,
    }
    if halves:
        mid = frames.start + (len(frames) // 2) * frames.step
        res["halves"] = []
        for lo, hi in ((frames.start, mid), (mid, frames.stop)):
            pos = np.flatnonzero((table.frames >= lo) & (table.frames < hi))
            h = scope(table.subset(pos), [lo, hi], seed=seed, **kw)
            h["by_camera_distance"] = {"edges_m": list(distance_bins), "rows": h["by_camera_distance"]}
            res["halves"].append(h)
    res["detections_cache"] = cache_info
    res["stage_s"] = {k: round(v, 2) for k, v in pipe.stage_s.items()}
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    return res


# ----------------------------------------------------------------------------------------- output
def _ci(v, ci, fmt: str = "{:.3f}") -> str:
    if v is None:
        return "-"
    s = fmt.format(v)
    return s + (f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else "")


def table_text(res: dict) -> str:
    """The compact human-readable table of :func:`evaluate_ground`'s result: one column per scope
    (the whole range, then each half), value and ``[95 % interval]``."""

    scopes = [res] + res.get("halves", [])
    head = [f"{s['frame_range'][0]}:{s['frame_range'][1]} ({s['frames']} fr)" for s in scopes]
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, cell) -> None:
        rows.append((label, [cell(s) for s in scopes]))

    for tk in res["violation_pairs_by_threshold"]:
        for key, name in (("ground_matched", "ground"), ("iou_matched", "IoU")):
            row(
                f"pair F1 < {tk} m, {name}",
                lambda s, tk=tk, key=key: _ci(
                    s["violation_pairs_by_threshold"][tk][key]["f1"],
                    s["violation_pairs_by_threshold"][tk][key]["f1_ci95"],
                ),
            )
    for key, name in (("ground_matched", "ground"), ("iou_matched", "IoU")):
        row(
            f"people P / R, {name}",
            lambda s, key=key: (
                f"{s['people'][key]['precision']:.3f} / "
                + _ci(s["people"][key]["recall"], s["people"][key]["recall_ci95"])
            ),
        )
        g = res["people"][key]["grouped"]["threshold_m"]
        row(
            f"recall grouped (< {g:g} m), {name}",
            lambda s, key=key: _ci(s["people"][key]["grouped"]["recall"], s["people"][key]["grouped"]["recall_ci95"]),
        )
        row(f"recall isolated, {name}", lambda s, key=key: _ci(s["people"][key]["isolated"]["recall"], None))
    row("foot error median m (IoU)", lambda s: _ci(s["ground_error_m"]["median"], s["ground_error_m"]["median_ci95"]))
    row("foot error p95 m (IoU)", lambda s: _ci(s["ground_error_m"]["p95"], None))
    for key, name in (("iou_matched", "IoU"), ("ground_matched", "ground")):
        for part, what in (("all", "all pairs"), ("close", "d_gt < 3 m")):
            row(
                f"pair dist err median m, {what}, {name}",
                lambda s, key=key, part=part: _ci(
                    s["pair_distance_error_m"][key][part]["median"],
                    s["pair_distance_error_m"][key][part]["median_ci95"],
                ),
            )
            row(
                f"pair dist err p95 m, {what}, {name}",
                lambda s, key=key, part=part: _ci(s["pair_distance_error_m"][key][part]["p95"], None),
            )
    w0 = max(len(r[0]) for r in rows)
    widths = [max(len(h), *(len(r[1][i]) for r in rows)) for i, h in enumerate(head)]
    out = ["  ".join([" " * w0] + [h.ljust(w) for h, w in zip(head, widths)])]
    out += ["  ".join([label.ljust(w0)] + [c.ljust(w) for c, w in zip(cells, widths)]) for label, cells in rows]
    b = res["by_camera_distance"]
    out.append(f"by distance from the {b['reference']} {b['origin_m']} ({head[0]}):")
    out.append("  bin m     people  foot err median / p95 m  recall IoU / ground")
    for r in b["rows"]:
        fe = r["foot_error_m"]
        med = "-" if fe["median"] is None else f"{fe['median']:.3f} / {fe['p95']:.3f}"
        out.append(
            f"  {r['bin_m']:<8}  {r['gt_people']:>6}  {med:<23}  {r['recall_iou']:.3f} / {r['recall_ground']:.3f}"
        )
    return "\n".join(out)


def _floats(spec: str) -> tuple[float, ...]:
    vals = tuple(float(x) for x in spec.split(",") if x.strip())
    if not vals or any(not v > 0 for v in vals):
        raise ValueError(f"expected comma-separated positive metres, got {spec!r}")
    return vals


def _cmd(args: argparse.Namespace) -> int:

    if missing_input(
        "vigil eval ground", ((args.video, "--video"), (args.gt, "--gt"), (args.calibration, "--calibration"))
    ):
        return 2
    if not args.threshold > 0:
        print("vigil eval ground: --threshold must be > 0", file=sys.stderr)
        return 2
    try:
        thresholds = _floats(args.thresholds)
        bins = _floats(args.distance_bins)
        if list(bins) != sorted(set(bins)):
            raise ValueError(f"--distance-bins must be ascending, got {args.distance_bins!r}")
    except ValueError as exc:
        print(f"vigil eval ground: {exc}", file=sys.stderr)
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
            thresholds=thresholds,
            halves=args.halves,
            detections_cache=args.detections_cache,
            distance_bins=bins,
            progress=sys.stderr.isatty(),
        )
    except ValueError as exc:  # config, calibration or model errors name their file
        print(f"vigil eval ground: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(res))
        return 0
    c = res["detections_cache"]
    cache = "" if c is None else f", detections cache {'hit' if c['hit'] else 'written'}: {c['file']}"
    print(f"vigil eval ground: {res['frames']} frames with ground truth, {res['wall_s']} s{cache}")
    print(table_text(res))
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
    p.add_argument(
        "--threshold", type=float, default=2.0, help="violation distance in metres of the single-threshold keys (2)"
    )
    p.add_argument(
        "--thresholds", default="1,1.5,2", help="violation distances in metres to score pairs at (default 1,1.5,2)"
    )
    p.add_argument(
        "--distance-bins",
        default="20,25,30,35",
        help="edges in metres of the distance-from-camera bins (default 20,25,30,35, for PETS2009 View_001)",
    )
    p.add_argument("--halves", action="store_true", help="also report the first and second half of --frames")
    p.add_argument(
        "--detections-cache",
        metavar="DIR",
        help="store the detector's raw output here once and reuse it while video, frames and detector are the same",
    )
    p.add_argument(
        "--iou", type=float, default=0.5, help="IoU for matching a tracked box to ground truth (default 0.5)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd)
