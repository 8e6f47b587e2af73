"""Scores of ``vigil eval ground`` from per-frame records, with block-bootstrap intervals.

The evaluation pass (:mod:`vigil.bench.ground_eval`) turns every frame with ground truth into a
:class:`FrameRecord` (our people and the ground-truth people on the ground plane, in metres, and
how they were matched). :func:`frame_table` scores each frame once into per-frame counts and
per-frame value lists (a :class:`FrameTable`); :func:`summarise` adds them up over any subset of
frames (the whole range, each half) and :func:`bootstrap` resamples frames to put 95 % intervals
on the headline figures. Everything is metres unless a name says otherwise.

Figures (for each matching, ``iou`` = box IoU >= 0.5, ``ground`` = one-to-one on the ground
within the gate):

- violating pairs at each threshold: a predicted pair closer than the threshold is a true
  positive when its two people matched a ground-truth pair closer than it (:func:`pair_scores`);
- people: precision / recall of matched people, and the recall of **grouped** ground-truth
  people (another ground-truth person closer than the threshold in that frame) apart from the
  **isolated** ones;
- pair-distance error: for every ground-truth pair whose two members are both matched,
  ``|d - d_gt|`` between our distance of the two and theirs; all pairs and pairs with
  ``d_gt < close_m`` (3 m);
- foot-point error of IoU-matched people (our ground position against the ground truth's);
- by distance from the camera: foot error and recall per bin of the ground-truth person's ground
  distance from a reference point (the camera's ground point, see ``ground_eval``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from vigil.geometry.metrics import pairs_within

__all__ = [
    "FrameRecord",
    "FrameTable",
    "MATCHINGS",
    "pair_scores",
    "match_on_ground",
    "frame_table",
    "summarise",
    "bootstrap",
    "block_resample_counts",
    "weighted_percentile",
    "threshold_key",
    "bin_labels",
]

#: the two ways people are matched to ground truth: box IoU in the image, distance on the ground
MATCHINGS = ("iou", "ground")


def threshold_key(t: float) -> str:
    """JSON key of a threshold in metres: ``1.0 -> "1"``, ``1.5 -> "1.5"``."""
    return f"{float(t):g}"


def bin_labels(edges: tuple[float, ...]) -> list[str]:
    """``(20, 25)`` -> ``["<20", "20-25", ">=25"]`` (metres)."""
    e = [f"{x:g}" for x in edges]
    return [f"<{e[0]}"] + [f"{a}-{b}" for a, b in zip(e, e[1:])] + [f">={e[-1]}"]


def pair_scores(pred_xy: np.ndarray, gt_xy: np.ndarray, det_to_gt: np.ndarray, threshold_m: float) -> dict:
    """One frame's violating-pair counts: ``strict`` and ``matched_only`` ``(tp, fp, fn)``.

    ``pred_xy`` ``(P, 2)`` and ``gt_xy`` ``(G, 2)`` metres; ``det_to_gt`` ``(P,)`` the ground-truth
    index of each prediction or -1; pairs are closer than ``threshold_m`` metres."""

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


@dataclass
class FrameRecord:
    """One evaluated frame: ``pred_xy`` ``(P, 2)`` metres (finite) of our people, ``gt_xy``
    ``(G, 2)`` metres of the ground-truth people, ``gt_range_m`` ``(G,)`` metres of each
    ground-truth person from the reference point, and per matching name (``iou``, ``ground``)
    the ``(P,)`` ground-truth index of each of our people or -1."""

    index: int
    pred_xy: np.ndarray
    gt_xy: np.ndarray
    gt_range_m: np.ndarray
    matches: dict[str, np.ndarray]


@dataclass
class FrameTable:
    """Per-frame scores of F frames: ``counts[name]`` ``(F,) int``; ``values[name]`` a pair
    ``(values, frame_position)`` of 1-D arrays (metres) to take percentiles of."""

    frames: np.ndarray
    thresholds: tuple[float, ...]
    bins: tuple[float, ...]
    close_m: float
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def subset(self, positions: np.ndarray) -> "FrameTable":
        """The table of the frames at ``positions`` (sorted frame positions in this table)."""
        positions = np.asarray(positions, np.int64)
        remap = np.full(len(self.frames), -1, np.int64)
        remap[positions] = np.arange(len(positions))
        values = {}
        for k, (v, f) in self.values.items():
            keep = remap[f] >= 0
            values[k] = (v[keep], remap[f[keep]])
        return FrameTable(
            self.frames[positions],
            self.thresholds,
            self.bins,
            self.close_m,
            {k: c[positions] for k, c in self.counts.items()},
            values,
        )


def _pair_errors(pred_xy: np.ndarray, gt_xy: np.ndarray, d2g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(|d - d_gt|, d_gt)`` metres for every ground-truth pair whose two members are matched."""
    m = np.flatnonzero(d2g >= 0)
    if len(m) < 2:
        return np.zeros(0), np.zeros(0)
    a, b = np.triu_indices(len(m), 1)
    p, g = pred_xy[m], gt_xy[d2g[m]]
    d = np.linalg.norm(p[a] - p[b], axis=1)
    d_gt = np.linalg.norm(g[a] - g[b], axis=1)
    ok = np.isfinite(d) & np.isfinite(d_gt)
    return np.abs(d - d_gt)[ok], d_gt[ok]


def frame_table(
    records: list[FrameRecord], thresholds: tuple[float, ...], bins: tuple[float, ...], close_m: float = 3.0
) -> FrameTable:
    """Score each record once (see the module docstring); ``thresholds`` and ``bins`` (ascending
    edges of the distance-from-camera bins) in metres."""

    thresholds = tuple(float(t) for t in thresholds)
    counts: dict[str, list[int]] = {}
    values: dict[str, list[tuple[np.ndarray, int]]] = {}

    def add(name: str, n) -> None:
        counts.setdefault(name, []).append(int(n))

    def put(name: str, v: np.ndarray, pos: int) -> None:
        values.setdefault(name, []).append((np.asarray(v, np.float64).reshape(-1), pos))

    for pos, r in enumerate(records):
        n_gt = len(r.gt_xy)
        gt_d = np.linalg.norm(r.gt_xy[:, None, :] - r.gt_xy[None, :, :], axis=2) if n_gt else np.zeros((0, 0))
        np.fill_diagonal(gt_d, np.inf)
        gt_bin = np.searchsorted(np.asarray(bins, np.float64), r.gt_range_m, side="right")
        for name in MATCHINGS:
            d2g = r.matches[name]
            hit = np.zeros(n_gt, bool)
            hit[d2g[d2g >= 0]] = True
            add(f"people/{name}/tp", hit.sum())
            add(f"people/{name}/fp", len(d2g) - hit.sum())
            add(f"people/{name}/fn", n_gt - hit.sum())
            for t in thresholds:
                tk = threshold_key(t)
                s = pair_scores(r.pred_xy, r.gt_xy, d2g, t)
                for k, n in zip(("tp", "fp", "fn"), s["strict"]):
                    add(f"pairs/{name}/{tk}/{k}", n)
                if name == "iou":
                    for k, n in zip(("tp", "fp", "fn"), s["matched_only"]):
                        add(f"pairs/matched_only/{tk}/{k}", n)
                grouped = (gt_d < t).any(axis=1) if n_gt else np.zeros(0, bool)
                add(f"grouped/{name}/{tk}/hit", (hit & grouped).sum())
                add(f"grouped/{name}/{tk}/total", grouped.sum())
                add(f"isolated/{name}/{tk}/hit", (hit & ~grouped).sum())
                add(f"isolated/{name}/{tk}/total", (~grouped).sum())
            err, d_gt = _pair_errors(r.pred_xy, r.gt_xy, d2g)
            put(f"pair_error/{name}/all", err, pos)
            put(f"pair_error/{name}/close", err[d_gt < close_m], pos)
            for k in range(len(bins) + 1):
                add(f"bins/{k}/{name}/hit", (hit & (gt_bin == k)).sum())
        for k in range(len(bins) + 1):
            add(f"bins/{k}/total", (gt_bin == k).sum())
        d2g = r.matches["iou"]
        idx = np.flatnonzero(d2g >= 0)
        e = np.linalg.norm(r.pred_xy[idx] - r.gt_xy[d2g[idx]], axis=1) if len(idx) else np.zeros(0)
        ok = np.isfinite(e)
        put("foot_error", e[ok], pos)
        for k in range(len(bins) + 1):
            put(f"bins/{k}/foot_error", e[ok & (gt_bin[d2g[idx]] == k)] if len(idx) else e, pos)

    n = len(records)
    table = FrameTable(np.array([r.index for r in records], np.int64), thresholds, tuple(bins), close_m)
    table.counts = {k: np.asarray(v, np.int64) for k, v in counts.items()}
    for k, items in values.items():
        v = np.concatenate([a for a, _ in items]) if items else np.zeros(0)
        f = np.concatenate([np.full(len(a), p, np.int64) for a, p in items]) if items else np.zeros(0, np.int64)
        table.values[k] = (v, f)
    assert all(len(c) == n for c in table.counts.values())
    return table


# ------------------------------------------------------------------------------------------ summary
def _ratio(a, b):
    """``a / b`` elementwise, 0 where ``b == 0`` (numpy arrays or scalars)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)


def _f1(tp, fp, fn):
    p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return _ratio(2 * p * r, p + r)


def _prf(tp: int, fp: int, fn: int) -> dict:
    return {
        "precision": round(float(_ratio(tp, tp + fp)), 4),
        "recall": round(float(_ratio(tp, tp + fn)), 4),
        "f1": round(float(_f1(tp, fp, fn)), 4),
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
    }


def _pct(v: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(v, q)), 3) if v.size else None


def _spread(v: np.ndarray, qs=(50, 95), names=("median", "p95"), count: str = "n") -> dict:
    return {**{n: _pct(v, q) for n, q in zip(names, qs)}, count: int(v.size)}


def summarise(table: FrameTable, default_threshold: float) -> dict:
    """The figures over all frames of ``table`` as a JSON-ready dict (see the module docstring);
    ``default_threshold`` (metres, one of the table's thresholds) is the one of the
    single-threshold keys (``violation_pairs``, people's ``grouped``)."""

    c = {k: int(v.sum()) for k, v in table.counts.items()}
    dk = threshold_key(default_threshold)
    by_t = {}
    for t in table.thresholds:
        tk = threshold_key(t)
        by_t[tk] = {
            "iou_matched": {
                **_prf(*(c[f"pairs/iou/{tk}/{k}"] for k in ("tp", "fp", "fn"))),
                "matched_only": _prf(*(c[f"pairs/matched_only/{tk}/{k}"] for k in ("tp", "fp", "fn"))),
            },
            "ground_matched": _prf(*(c[f"pairs/ground/{tk}/{k}"] for k in ("tp", "fp", "fn"))),
        }
    people, pair_error = {}, {}
    for name in MATCHINGS:
        key = f"{name}_matched"
        grouped = {}
        for t in table.thresholds:
            tk = threshold_key(t)
            grouped[tk] = {
                part: {
                    "recall": round(float(_ratio(c[f"{part}/{name}/{tk}/hit"], c[f"{part}/{name}/{tk}/total"])), 4),
                    "hit": c[f"{part}/{name}/{tk}/hit"],
                    "total": c[f"{part}/{name}/{tk}/total"],
                }
                for part in ("grouped", "isolated")
            }
        people[key] = {
            **_prf(*(c[f"people/{name}/{k}"] for k in ("tp", "fp", "fn"))),
            "grouped": {"threshold_m": float(default_threshold), **grouped[dk]["grouped"]},
            "isolated": {"threshold_m": float(default_threshold), **grouped[dk]["isolated"]},
            "by_threshold": grouped,
        }
        pair_error[key] = {
            "all": _spread(table.values[f"pair_error/{name}/all"][0], count="pairs"),
            "close": {
                "gt_below_m": table.close_m,
                **_spread(table.values[f"pair_error/{name}/close"][0], count="pairs"),
            },
        }
    rows = []
    for k, label in enumerate(bin_labels(table.bins)):
        total = c[f"bins/{k}/total"]
        rows.append(
            {
                "bin_m": label,
                "gt_people": total,
                "foot_error_m": _spread(table.values[f"bins/{k}/foot_error"][0], count="matched"),
                "recall_iou": round(float(_ratio(c[f"bins/{k}/iou/hit"], total)), 4),
                "recall_ground": round(float(_ratio(c[f"bins/{k}/ground/hit"], total)), 4),
            }
        )
    e = table.values["foot_error"][0]
    return {
        "frames": len(table.frames),
        "ground_error_m": {
            "median": _pct(e, 50),
            "p90": _pct(e, 90),
            "p95": _pct(e, 95),
            "mean": round(float(e.mean()), 3) if e.size else None,
            "matched": int(e.size),
        },
        "violation_pairs_by_threshold": by_t,
        "people": people,
        "pair_distance_error_m": pair_error,
        "by_camera_distance": rows,
    }


# ---------------------------------------------------------------------------------------- bootstrap
def block_resample_counts(n: int, block: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n) int``: how often each of ``n`` consecutive frames is drawn in each
    moving-block bootstrap resample: ``ceil(n / block)`` blocks of ``block`` consecutive frames
    starting anywhere in ``0 .. n - block``, cut to ``n`` frames (Kuensch 1989)."""

    if n == 0:
        return np.zeros((resamples, 0), np.int64)
    b = max(1, min(block, n))
    k = -(-n // b)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - b + 1, size=(resamples, k))
    idx = (starts[:, :, None] + np.arange(b)[None, None, :]).reshape(resamples, -1)[:, :n]
    out = np.zeros((resamples, n), np.int64)
    np.add.at(out, (np.repeat(np.arange(resamples), n), idx.reshape(-1)), 1)
    return out


def weighted_percentile(sorted_values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """``np.percentile(np.repeat(sorted_values, weights), q)`` without building the repeat
    (``sorted_values`` ascending, ``weights`` non-negative integers); NaN when all weights are 0."""

    cw = np.cumsum(weights)
    n = int(cw[-1]) if len(cw) else 0
    if n == 0:
        return float("nan")
    p = q / 100.0 * (n - 1)
    k0 = int(np.floor(p))
    k1 = min(k0 + 1, n - 1)
    i0, i1 = np.searchsorted(cw, [k0, k1], side="right")
    v0, v1 = sorted_values[i0], sorted_values[i1]
    return float(v0 + (p - k0) * (v1 - v0))


def _interval(samples: np.ndarray, digits: int) -> list[float] | None:
    s = samples[np.isfinite(samples)]
    if not s.size:
        return None
    lo, hi = np.percentile(s, [2.5, 97.5])
    return [round(float(lo), digits), round(float(hi), digits)]


def bootstrap(
    table: FrameTable, default_threshold: float, block: int = 20, resamples: int = 1000, seed: int = 0
) -> dict:
    """95 % percentile intervals ``[lo, hi]`` of the headline figures of :func:`summarise` over
    moving-block bootstrap resamples of the table's frames (blocks of ``block`` consecutive
    frames: the frames of a video are correlated). Deterministic for a given ``seed``.

    Keys: ``pair_f1[matching][threshold]``, ``people_recall[matching]``,
    ``grouped_recall[matching]`` (at ``default_threshold``), ``foot_error_median_m``,
    ``pair_distance_error_median_m[matching][all|close]`` (metres)."""

    w = block_resample_counts(len(table.frames), block, resamples, seed)
    tot = {k: w @ v for k, v in table.counts.items()}
    dk = threshold_key(default_threshold)

    def median_ci(name: str) -> list[float] | None:
        v, f = table.values[name]
        if not v.size:
            return None
        order = np.argsort(v, kind="stable")
        vs, fs = v[order], f[order]
        return _interval(np.array([weighted_percentile(vs, w[r, fs], 50) for r in range(resamples)]), 3)

    out: dict = {"pair_f1": {}, "people_recall": {}, "grouped_recall": {}, "pair_distance_error_median_m": {}}
    for name in MATCHINGS:
        key = f"{name}_matched"
        out["pair_f1"][key] = {
            threshold_key(t): _interval(
                _f1(*(tot[f"pairs/{name}/{threshold_key(t)}/{k}"] for k in ("tp", "fp", "fn"))), 4
            )
            for t in table.thresholds
        }
        tp, fn = tot[f"people/{name}/tp"], tot[f"people/{name}/fn"]
        out["people_recall"][key] = _interval(_ratio(tp, tp + fn), 4)
        out["grouped_recall"][key] = _interval(
            _ratio(tot[f"grouped/{name}/{dk}/hit"], tot[f"grouped/{name}/{dk}/total"]), 4
        )
        out["pair_distance_error_median_m"][key] = {
            part: median_ci(f"pair_error/{name}/{part}") for part in ("all", "close")
        }
    out["foot_error_median_m"] = median_ci("foot_error")
    return out
