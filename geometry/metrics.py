"""Ground-plane metrics per frame and over time (all distances in metres, times in seconds).

Per frame:

- :func:`pairs_within`: index pairs closer than a radius, through a grid of cells (never O(N^2));
- :class:`PairThresholds` + :func:`pair_violations`: distance violations per class pair
  (person–person, person–bicycle, ...) with thresholds per class pair and per zone;
- :func:`zone_counts` / :func:`zone_capacity`: people per zone, density (people/m^2) and the
  occupancy limit from the zone's area (m^2 per person);
- :func:`queue_spacing`: people standing along a queue line, ordered, and the gaps between
  neighbours.

Over time:

- :class:`ContactTimer`: seconds each track pair spent under a threshold within a sliding
  time window (OpenAir's "tempo di permanenza a distanze ravvicinate").

The dynamic risk model and the heat map are in :mod:`vigil.geometry.risk`.
Non-finite positions are never used: they are dropped (and the callers count them).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np
from scipy.spatial import cKDTree

from vigil.geometry.zones import Zone

__all__ = [
    "pairs_within",
    "PairThresholds",
    "pair_violations",
    "zone_counts",
    "zone_capacity",
    "queue_spacing",
    "QueueResult",
    "ContactTimer",
]


def _xy(world_xy) -> np.ndarray:
    xy = np.asarray(world_xy, dtype=np.float64)
    if xy.size == 0:
        return np.zeros((0, 2))
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"world_xy: expected shape (N, 2), got {xy.shape}")
    return xy


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not value > 0:
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")
    return float(value)


def pairs_within(
    world_xy: np.ndarray, radius_m: float, *, strict: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)`` with ``i < j`` and distance ``< radius_m`` (``<=`` if not strict).

    Returns ``(i, j, d)`` arrays sorted by ``(i, j)``, ``d = |xy[i] - xy[j]|`` metres. Rows with a
    non-finite position are skipped. Candidates come from a grid of cells about ``radius_m`` wide
    (:func:`_grid_candidates`, vectorised; ``cKDTree.query_pairs`` below 300 points or for a few
    spread far apart): cost grows with N log N plus the number of pairs.
    """
    radius_m = _positive(radius_m, "radius_m")
    xy = _xy(world_xy)
    finite = np.isfinite(xy[:, 0]) & np.isfinite(xy[:, 1])  # (column-wise: reducing (N, 2) rows is slow)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if finite.all():
        idx, pts = None, xy
    else:
        idx = np.flatnonzero(finite)
        pts = xy[idx]
    if len(pts) < 2:
        return empty
    cand = _grid_candidates(pts, radius_m) if len(pts) >= _GRID_MIN_POINTS else None
    if cand is None:  # few points, or a few spread far apart: the k-d tree
        pairs = cKDTree(pts).query_pairs(r=radius_m, output_type="ndarray")
        cand = pairs[:, 0], pairs[:, 1]
    a, b = cand
    if len(a) == 0:
        return empty
    dx, dy = pts[a, 0] - pts[b, 0], pts[a, 1] - pts[b, 1]
    d = np.sqrt(dx * dx + dy * dy)  # what np.linalg.norm(pts[a] - pts[b], axis=1) gives
    keep = d < radius_m if strict else d <= radius_m
    a, b, d = a[keep], b[keep], d[keep]
    if idx is not None:
        a, b = idx[a], idx[b]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    order = np.lexsort((hi, lo))
    return lo[order], hi[order], d[order]


#: the grid's cell is this much wider than the radius, so that rounding never puts two points closer than
#: the radius two cells apart (safe while the positions span less than 2**32 radii)
_GRID_SLACK = 1e-6
#: below this many points the k-d tree is cheaper than the grid
_GRID_MIN_POINTS = 300
#: (dx, dy) of the neighbour cells each cell is paired with: half of the 8, so each pair of cells once
_GRID_NEIGHBOURS = ((0, 1), (1, -1), (1, 0), (1, 1))


def _grid_candidates(pts: np.ndarray, radius_m: float) -> tuple[np.ndarray, np.ndarray] | None:
    """``(a, b)``: index pairs into the finite ``pts (N, 2)`` metres (each unordered pair at most once,
    ``a != b``) that include every pair closer than ``radius_m``: the points of the same cell of a
    square grid of about ``radius_m`` and of neighbouring cells, all in arrays (about three candidates
    per pair within the radius). None when the grid would have more than ``16 N + 4096`` cells (a few
    points spread far apart: the k-d tree is cheaper)."""
    n = len(pts)
    x, y = pts[:, 0], pts[:, 1]
    lo = np.array([x.min(), y.min()])
    cells = (np.array([x.max(), y.max()]) - lo) / (radius_m * (1.0 + _GRID_SLACK))
    nx, w = int(cells[0]) + 2, int(cells[1]) + 3  # columns, and cells a column (room for dy = -1 and +1)
    if not float(nx) * w <= 16 * n + 4096:
        return None
    g = ((pts - lo) / (radius_m * (1.0 + _GRID_SLACK))).astype(np.int64)  # >= 0: truncation is floor
    cell = g[:, 0] * w + g[:, 1] + 1
    count = np.bincount(cell, minlength=nx * w)
    first = np.cumsum(count) - count  # where each cell's points begin in `order`
    order = np.argsort(cell, kind="stable")
    sc = cell[order]
    # from the k-th point in cell order: the later points of its own cell, then each neighbour cell's
    nb = (sc + np.array([dx * w + dy for dx, dy in _GRID_NEIGHBOURS])[:, None]).ravel()
    k = np.arange(1, n + 1)
    starts = np.concatenate([k, first[nb]])
    counts = np.concatenate([first[sc] + count[sc] - k, count[nb]])
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    run = np.cumsum(counts) - counts  # where each point's run of candidates begins
    a = np.repeat(np.tile(np.arange(n), 1 + len(_GRID_NEIGHBOURS)), counts)
    b = np.repeat(starts - run, counts) + np.arange(total)
    return order[a], order[b]


@dataclass(frozen=True)
class PairThresholds:
    """Distance thresholds (metres) per unordered class pair, with per-zone overrides.

    ``by_pair`` maps ``(class_a, class_b)`` (either order) to a threshold; class pairs not
    listed are not checked. ``zones`` lists ``(zone, threshold_m)``: a pair whose midpoint
    lies in the zone uses that threshold instead (the largest one if several zones apply).
    """

    by_pair: Mapping[tuple[str, str], float]
    zones: Sequence[tuple[Zone, float]] = ()

    def __post_init__(self) -> None:
        norm = {}
        for (a, b), t in dict(self.by_pair).items():
            norm[tuple(sorted((a, b)))] = _positive(t, f"threshold for class pair {a}-{b}")
        if not norm:
            raise ValueError("PairThresholds: at least one class pair is needed")
        object.__setattr__(self, "by_pair", norm)
        for zone, t in self.zones:
            _positive(t, f"zone {zone.name!r} distance threshold")
        names = sorted({c for pair in norm for c in pair})
        table = np.full((len(names) + 1, len(names) + 1), np.nan)  # the last row and column: code -1
        for (a, b), t in norm.items():
            ka, kb = names.index(a), names.index(b)
            table[ka, kb] = table[kb, ka] = t
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_table", table)

    @property
    def classes(self) -> list[str]:
        """The class names some pair is checked for, sorted (their indices are the class codes)."""
        return list(self._names)

    @property
    def max_threshold_m(self) -> float:
        return max(list(self.by_pair.values()) + [t for _, t in self.zones])

    def codes(self, classes: np.ndarray) -> np.ndarray:
        """``(N,)`` int64: the index in :attr:`classes` of each of the class names ``classes``, -1 for a
        class no pair is checked for."""
        classes = np.asarray(classes, dtype=object).reshape(-1)
        out = np.full(len(classes), -1, np.int64)
        for k, name in enumerate(self._names):
            out[classes == name] = k
        return out

    def resolve(self, class_a: np.ndarray, class_b: np.ndarray, midpoints: np.ndarray) -> np.ndarray:
        """Threshold per pair (NaN where the class pair is not checked)."""
        return self.resolve_codes(self.codes(class_a), self.codes(class_b), midpoints)

    def resolve_codes(self, code_a: np.ndarray, code_b: np.ndarray, midpoints: np.ndarray) -> np.ndarray:
        """:meth:`resolve` for class codes (:meth:`codes`) ``(M,)``, midpoints ``(M, 2)`` metres."""
        out = self._table[code_a, code_b]  # (K + 1, K + 1) metres by class code, NaN where not checked
        if not self.zones:
            return out
        checked = np.isfinite(out)
        override = np.full(len(out), np.nan)
        for zone, t in self.zones:
            inside = zone.contains(midpoints)
            override[inside] = np.fmax(override[inside], t)
        use = checked & np.isfinite(override)
        out[use] = override[use]
        return out


def pair_violations(
    world_xy: np.ndarray,
    classes: Sequence[str] | np.ndarray,
    thresholds: PairThresholds,
    *,
    margin_m: float = 0.0,
    codes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(i, j, d, threshold)`` closer than their class-pair/zone threshold (+ ``margin_m``).

    ``classes`` holds each row's class name; ``codes`` (optional) is ``thresholds.codes(classes)``
    when the caller has it. With ``margin_m > 0`` the pairs inside the hysteresis band are returned
    too (``d < threshold + margin``); compare ``d`` with ``threshold`` to tell them apart. Sorted by
    ``(i, j)``; distances and thresholds in metres.
    """
    xy = _xy(world_xy)
    cls = np.asarray(classes, dtype=object).reshape(-1)
    if len(cls) != len(xy):
        raise ValueError(f"classes: expected {len(xy)} entries, got {len(cls)}")
    code = thresholds.codes(cls) if codes is None else codes
    checked = code >= 0
    radius = thresholds.max_threshold_m + margin_m
    if checked.all():
        i, j, d = pairs_within(xy, radius)
    else:  # rows of classes no pair is checked for play no part
        rows = np.flatnonzero(checked)
        i, j, d = pairs_within(xy[rows], radius)
        i, j = rows[i], rows[j]
    if len(i) == 0:
        return i, j, d, np.zeros(0)
    t = thresholds.resolve_codes(code[i], code[j], (xy[i] + xy[j]) / 2.0 if thresholds.zones else None)
    keep = d < t + margin_m  # False where t is NaN (not checked)
    return i[keep], j[keep], d[keep], t[keep]


def zone_counts(world_xy: np.ndarray, zones: Sequence[Zone]) -> dict[str, tuple[int, float]]:
    """``{zone: (people, density_per_m2)}`` for the finite ``(N, 2)`` positions."""
    xy = _xy(world_xy)
    out = {}
    for z in zones:
        n = int(z.contains(xy).sum())
        out[z.name] = (n, n / z.area_m2)
    return out


def zone_capacity(area_m2: float, m2_per_person: float) -> int:
    """Occupancy limit of a zone: ``floor(area / m2_per_person)`` people (entry regulation)."""
    return int(math.floor(_positive(area_m2, "area_m2") / _positive(m2_per_person, "m2_per_person") + 1e-9))


@dataclass(frozen=True)
class QueueResult:
    """People along a queue line: row indices ordered from the line's start, their offset
    along the line (metres), and the distance between consecutive people."""

    order: np.ndarray  # (K,) row indices into the input
    along_m: np.ndarray  # (K,)
    gaps_m: np.ndarray  # (K-1,) Euclidean distance between neighbours in the queue

    @property
    def min_gap_m(self) -> float:
        return float(self.gaps_m.min()) if len(self.gaps_m) else math.inf


def queue_spacing(world_xy: np.ndarray, start: Sequence[float], end: Sequence[float], corridor_m: float) -> QueueResult:
    """People within ``corridor_m`` of the segment ``start``-``end`` (the queue's axis, from the
    counter outwards), ordered along it, and the gaps between neighbours (metres)."""
    corridor_m = _positive(corridor_m, "corridor_m")
    p0, p1 = np.asarray(start, np.float64), np.asarray(end, np.float64)
    axis = p1 - p0
    length = float(np.linalg.norm(axis))
    if not (np.all(np.isfinite(axis)) and length > 0):
        raise ValueError("queue line: start and end must be distinct finite points")
    u = axis / length
    xy = _xy(world_xy)
    ok = np.all(np.isfinite(xy), axis=1)
    rel = xy - p0
    along = rel @ u
    lateral = np.abs(rel[:, 0] * u[1] - rel[:, 1] * u[0])
    with np.errstate(invalid="ignore"):
        inside = ok & (along >= 0) & (along <= length) & (lateral <= corridor_m)
    idx = np.flatnonzero(inside)
    idx = idx[np.argsort(along[idx], kind="stable")]
    gaps = np.linalg.norm(np.diff(xy[idx], axis=0), axis=1) if len(idx) > 1 else np.zeros(0)
    return QueueResult(idx, along[idx], gaps)


class ContactTimer:
    """Seconds each pair of tracks spent closer than the threshold, within a sliding window.

    Call :meth:`update` once per frame with the pairs that are close in that frame. Contact
    time accrues between two consecutive updates at which a pair is close (sample-and-hold),
    unless the updates are more than ``max_gap_s`` apart (a lost stretch is not counted).
    :meth:`update` returns, for every pair with contact inside ``[now - window_s, now]``,
    the seconds of contact within that window.
    """

    def __init__(self, window_s: float, max_gap_s: float = 2.0) -> None:
        self.window_s = _positive(window_s, "window_s")
        self.max_gap_s = _positive(max_gap_s, "max_gap_s")
        self._last_close: dict[Hashable, float] = {}
        self._intervals: dict[Hashable, deque] = {}
        self._now: float | None = None

    def update(self, now: float, close: Iterable[Hashable]) -> dict[Hashable, float]:
        now = float(now)
        if not math.isfinite(now):
            raise ValueError(f"timestamp: must be finite, got {now!r}")
        if self._now is not None and now < self._now:
            raise ValueError(f"timestamp went backwards ({now} < {self._now})")
        self._now = now
        close = set(close)
        for key in close:
            prev = self._last_close.get(key)
            if prev is not None and 0 < now - prev <= self.max_gap_s:
                self._intervals.setdefault(key, deque()).append((prev, now))
            self._last_close[key] = now
        lo = now - self.window_s
        out = {}
        for key in list(self._intervals):
            dq = self._intervals[key]
            while dq and dq[0][1] <= lo:
                dq.popleft()
            if not dq:
                del self._intervals[key]
                continue
            out[key] = sum(b - max(a, lo) for a, b in dq)
        for key in [k for k, t in self._last_close.items() if now - t > self.max_gap_s]:
            del self._last_close[key]
        return out

    def total(self, key: Hashable) -> float:
        """Contact seconds of ``key`` within the window ending at the last update."""
        if self._now is None or key not in self._intervals:
            return 0.0
        lo = self._now - self.window_s
        return sum(b - max(a, lo) for a, b in self._intervals[key] if b > lo)
