"""Interpersonal distance: which tracked people stand closer than a threshold, and for how long.

- :func:`close_pairs` answers one frame: the pairs closer than ``threshold_m``, found with a
  k-d tree (``scipy.spatial.cKDTree.query_pairs``), so crowded frames stay cheap.
- :class:`ViolationMonitor` follows pairs across frames and reports each violation once as a
  lifecycle: ``start`` ... (optional rate-limited ``update``) ... ``end``. It never repeats a
  start per frame, and uses hysteresis so that a pair hovering at the threshold does not flap.

The default threshold is 1.0 m, the Italian interpersonal-distance rule ("distanza
interpersonale di almeno un metro"): a pair is in violation while strictly closer than 1 m.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["close_pairs", "ViolationChange", "ViolationMonitor", "DEFAULT_THRESHOLD_M"]

DEFAULT_THRESHOLD_M = 1.0


def _check_inputs(world_xy, ids) -> tuple[np.ndarray, np.ndarray]:
    xy = np.asarray(world_xy, dtype=np.float64)
    if xy.size == 0:
        xy = xy.reshape(0, 2)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"world_xy: expected shape (N, 2), got {xy.shape}")
    ids_a = np.asarray(ids).reshape(-1)
    if ids_a.shape[0] != xy.shape[0]:
        raise ValueError(f"ids: expected shape ({xy.shape[0]},), got {ids_a.shape}")
    if len(np.unique(ids_a)) != len(ids_a):
        uniq, counts = np.unique(ids_a, return_counts=True)
        raise ValueError(f"ids: duplicate ids {uniq[counts > 1].tolist()}")
    return xy, ids_a


def _pairs_within(xy: np.ndarray, ids: np.ndarray, radius: float, strict: bool) -> list[tuple[object, object, float]]:
    finite = np.all(np.isfinite(xy), axis=1)
    idx = np.flatnonzero(finite)
    if len(idx) < 2:
        return []
    pts = xy[idx]
    pairs = cKDTree(pts).query_pairs(r=radius, output_type="ndarray")
    if len(pairs) == 0:
        return []
    d = np.linalg.norm(pts[pairs[:, 0]] - pts[pairs[:, 1]], axis=1)
    keep = d < radius if strict else d <= radius
    out = []
    for (i, j), dist in zip(pairs[keep], d[keep]):
        a, b = ids[idx[i]], ids[idx[j]]
        a, b = (a, b) if a < b else (b, a)
        a = a.item() if hasattr(a, "item") else a
        b = b.item() if hasattr(b, "item") else b
        out.append((a, b, float(dist)))
    out.sort(key=lambda t: (t[0], t[1]))
    return out


def close_pairs(
    world_xy: np.ndarray, ids: np.ndarray | Sequence, threshold_m: float = DEFAULT_THRESHOLD_M
) -> list[tuple]:
    """Pairs ``(id_a, id_b, distance_m)`` with ``id_a < id_b`` strictly closer than ``threshold_m``.

    Rows with a NaN (or infinite) position are ignored. The result is sorted by ``(id_a, id_b)``.
    ``ids`` must be unique within the frame.
    """
    if not (isinstance(threshold_m, (int, float)) and math.isfinite(threshold_m) and threshold_m > 0):
        raise ValueError(f"threshold_m: must be a finite number > 0, got {threshold_m!r}")
    xy, ids_a = _check_inputs(world_xy, ids)
    return _pairs_within(xy, ids_a, float(threshold_m), strict=True)


@dataclass(frozen=True)
class ViolationChange:
    """One step of a violation's lifecycle, for one pair of tracks.

    ``distance_m`` is the latest observed distance; ``min_distance_m`` the smallest since the
    start; ``started_at`` the time the pair was first seen closer than the threshold;
    ``duration_s`` runs from ``started_at`` to the last time the pair was observed in
    violation (so an ``end`` does not count the time the tracks were lost or apart).
    ``positions`` are the latest ground positions (metres) of both tracks.
    """

    state: Literal["start", "update", "end"]
    pair: tuple
    distance_m: float
    min_distance_m: float
    started_at: float
    duration_s: float
    positions: dict
    timestamp_s: float = 0.0  #: when the change was reported (the ``update``/``flush`` time)
    reason: str | None = None  #: for ``end``: ``"apart"``, ``"lost"`` or ``"flush"``


@dataclass
class _Open:
    started_at: float
    distance_m: float
    min_distance_m: float
    last_in_violation: float
    last_reported: float
    positions: dict = field(default_factory=dict)


class ViolationMonitor:
    """Tracks interpersonal-distance violations across frames.

    Parameters
    ----------
    threshold_m:
        A pair is *close* while strictly nearer than this (default 1.0 m).
    min_duration_s:
        A pair must stay close (without being seen at ``>= threshold_m``) this long before its
        violation starts; ``started_at`` is when it first became close.
    end_after_s:
        An open violation ends ("lost") when either track has not been seen with a finite
        position for longer than this; brief occlusions (frequent exactly when people are
        close) do not split a violation.
    hysteresis_m:
        An open violation ends ("apart") only once the pair is seen farther than
        ``threshold_m + hysteresis_m``; a pair hovering at the threshold does not flap.
    update_interval_s:
        If set, an open violation reports an ``update`` at most once per this interval;
        ``None`` (default) reports only ``start`` and ``end``.
    """

    def __init__(
        self,
        threshold_m: float = DEFAULT_THRESHOLD_M,
        min_duration_s: float = 0.0,
        end_after_s: float = 2.0,
        hysteresis_m: float = 0.25,
        update_interval_s: float | None = None,
    ) -> None:
        def check(name: str, value, *, positive: bool) -> float:
            if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: must be a finite number, got {value!r}")
            if positive and not value > 0:
                raise ValueError(f"{name}: must be > 0, got {value}")
            if not positive and value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}")
            return float(value)

        self.threshold_m = check("threshold_m", threshold_m, positive=True)
        self.min_duration_s = check("min_duration_s", min_duration_s, positive=False)
        self.end_after_s = check("end_after_s", end_after_s, positive=False)
        self.hysteresis_m = check("hysteresis_m", hysteresis_m, positive=False)
        self.update_interval_s = (
            None if update_interval_s is None else check("update_interval_s", update_interval_s, positive=True)
        )
        self._last_seen: dict = {}  # track id -> last timestamp with a finite position
        self._last_pos: dict = {}  # track id -> (x, y)
        self._pending: dict = {}  # pair -> first time seen close (waiting for min_duration)
        self._open: dict[tuple, _Open] = {}
        self._now: float | None = None

    @property
    def open_pairs(self) -> list[tuple]:
        """Pairs currently in an open violation, sorted."""
        return sorted(self._open)

    def _gone(self, track, now: float) -> bool:
        seen = self._last_seen.get(track)
        return seen is None or now - seen > self.end_after_s

    def _change(self, state, pair, rec: _Open, now: float, reason: str | None = None) -> ViolationChange:
        return ViolationChange(
            state=state,
            pair=pair,
            distance_m=rec.distance_m,
            min_distance_m=rec.min_distance_m,
            started_at=rec.started_at,
            duration_s=max(0.0, rec.last_in_violation - rec.started_at),
            positions={k: tuple(v) for k, v in rec.positions.items()},
            timestamp_s=now,
            reason=reason,
        )

    def update(self, timestamp_s: float, ids: np.ndarray | Sequence, world_xy: np.ndarray) -> list[ViolationChange]:
        """Feed one frame: track ``ids`` (unique) at ``world_xy`` metres (NaN rows = position unknown).

        Returns the changes caused by this frame: ``end`` changes first, then ``start``,
        then ``update``, each sorted by pair. Timestamps must not go backwards.
        """
        now = float(timestamp_s)
        if not math.isfinite(now):
            raise ValueError(f"timestamp_s: must be finite, got {timestamp_s!r}")
        if self._now is not None and now < self._now:
            raise ValueError(f"timestamp_s: went backwards ({now} < {self._now})")
        self._now = now
        xy, ids_a = _check_inputs(world_xy, ids)
        ids_list = [i.item() if hasattr(i, "item") else i for i in ids_a]
        finite = np.all(np.isfinite(xy), axis=1)
        present = set()
        for track, pos, ok in zip(ids_list, xy, finite):
            if ok:
                self._last_seen[track] = now
                self._last_pos[track] = (float(pos[0]), float(pos[1]))
                present.add(track)

        stay_r = self.threshold_m + self.hysteresis_m
        near = {(a, b): d for a, b, d in _pairs_within(xy, ids_a, stay_r, strict=False)}

        ends: list[ViolationChange] = []
        starts: list[ViolationChange] = []
        updates: list[ViolationChange] = []

        # Open violations: stay, end apart, or end lost.
        for pair in sorted(self._open):
            rec = self._open[pair]
            a, b = pair
            if a in present and b in present:
                d = near.get(pair)
                rec.positions = {a: self._last_pos[a], b: self._last_pos[b]}
                if d is None:  # farther than threshold + hysteresis
                    rec.distance_m = float(math.dist(self._last_pos[a], self._last_pos[b]))
                    ends.append(self._change("end", pair, rec, now, "apart"))
                    del self._open[pair]
                    continue
                rec.distance_m = d
                rec.min_distance_m = min(rec.min_distance_m, d)
                rec.last_in_violation = now
                if self.update_interval_s is not None and now - rec.last_reported >= self.update_interval_s:
                    rec.last_reported = now
                    updates.append(self._change("update", pair, rec, now))
            elif self._gone(a, now) or self._gone(b, now):
                ends.append(self._change("end", pair, rec, now, "lost"))
                del self._open[pair]

        # Candidates: pairs strictly under the threshold that are not open yet.
        for pair in sorted(self._pending):
            a, b = pair
            if a in present and b in present:
                d = near.get(pair)
                if d is None or d >= self.threshold_m:
                    del self._pending[pair]
            elif self._gone(a, now) or self._gone(b, now):
                del self._pending[pair]
        for pair, d in sorted(near.items()):
            if d >= self.threshold_m or pair in self._open:
                continue
            since = self._pending.setdefault(pair, now)
            if now - since >= self.min_duration_s:
                del self._pending[pair]
                a, b = pair
                rec = _Open(
                    started_at=since,
                    distance_m=d,
                    min_distance_m=d,
                    last_in_violation=now,
                    last_reported=now,
                    positions={a: self._last_pos[a], b: self._last_pos[b]},
                )
                self._open[pair] = rec
                starts.append(self._change("start", pair, rec, now))

        self._forget(now)
        return ends + starts + updates

    def flush(self, timestamp_s: float | None = None) -> list[ViolationChange]:
        """End every open violation (end of stream); forget all state. Returns the ``end`` changes."""
        now = self._now if timestamp_s is None else float(timestamp_s)
        if now is None:
            now = 0.0
        out = [self._change("end", pair, self._open[pair], now, "flush") for pair in sorted(self._open)]
        self._open.clear()
        self._pending.clear()
        self._last_seen.clear()
        self._last_pos.clear()
        self._now = None
        return out

    def _forget(self, now: float) -> None:
        """Drop tracks unseen for longer than ``end_after_s`` that no pair refers to (bounded memory)."""
        in_use = {t for pair in self._open for t in pair} | {t for pair in self._pending for t in pair}
        stale = [t for t, seen in self._last_seen.items() if now - seen > self.end_after_s and t not in in_use]
        for t in stale:
            del self._last_seen[t]
            self._last_pos.pop(t, None)
