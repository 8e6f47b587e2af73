"""The alarm lifecycle of pair rules in arrays: :class:`PairLifecycle`, for thousands of pairs a frame.

A pair rule (the distance rule) observes every pair of tracks inside its band each frame, several
hundred at 1,000 people. :class:`~.lifecycle.Lifecycle` keeps one Python record per key and visits
each in a loop; :class:`PairLifecycle` has exactly its semantics (see :mod:`.lifecycle`: the
``min_duration_s`` candidates, the hold band, ``end_after_s`` for clear and for lost pairs,
``cooldown_s``, ``update_interval_s`` and severity changes, the clearing observation an end with
``reason="clear"`` reports, ``worst`` over the held observations, the measured pairs, ``flush``) but
keeps its alarms in numpy arrays sorted by key and decides each frame's starts, updates and ends with
array operations; only the changes it reports become Python objects (:class:`~vigil.alarm.AlarmChange`,
with the positions, zone and payload fields the rule's ``report_pairs`` builds).

A frame's observations are a :class:`PairBatch`: for ``M`` pairs, the frame rows of the two tracks
(lower track id first), ``bad`` and ``hold`` as in :class:`~.lifecycle.Observation`, a severity code
and a ``(M, C)`` float matrix (column 0 the value, 1 the threshold, the others the rule's own,
e.g. positions and classes), which the lifecycle stores as the latest (and the clearing) observation
of each alarm and hands back to the rule when a change is reported.

Keys. A pair is the int64 ``code(lower id) << 32 | code(higher id)``; a track's code is its id while
every id seen is an integer in ``[0, 2**31)`` (tracker ids); the first frame with another id switches
the lifecycle to a table of codes (any hashable ids; rebuilt from the live ids when it grows).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from vigil.alarm import AlarmChange

from .base import FrameView
from .lifecycle import LifecycleConfig, LifecycleSettings

__all__ = ["SEVERITIES", "SEVERITY_CODE", "PairBatch", "PairLifecycle", "new_alarm_ids"]

#: severity names by code (the ``sev`` of a :class:`PairBatch`)
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
SEVERITY_CODE = {s: k for k, s in enumerate(SEVERITIES)}
_SEVERITY_NAMES = np.array(SEVERITIES, object)

_CODE_LIMIT = 1 << 31  # a code must fit in the upper half of an int64 key (sign bit clear)
_LOW = (1 << 32) - 1
# columns of an open alarm's float record
_STARTED, _LAST_BAD, _LAST_SEEN, _LAST_REPORTED, _WORST, _CLEAR_SINCE, _SEV = range(7)
_NF = 7
# columns of a candidate's record
_SINCE, _SEEN = 0, 1

#: ``report(data (k, C), lower ids, higher ids)`` -> ``(positions, zones, extras)``, lists of k reported pairs'
#: ``{track id: (x, y)}`` metres, zone names and payload fields (see ``Rule.report_pairs``)
Report = Callable[[np.ndarray, list, list], tuple[list, list, list]]


class PairBatch:
    """One frame's observations of ``M`` pairs (see module docstring).

    - ``lo``, ``hi`` ``(M,)`` int64: frame rows of the pair's lower and higher track id;
    - ``bad``, ``hold`` ``(M,)`` bool: beyond the threshold; not beyond it but inside the hysteresis
      band (as :class:`~.lifecycle.Observation`);
    - ``sev`` ``(M,)`` int8: severity codes (indices into :data:`SEVERITIES`);
    - ``data`` ``(M, C)`` float64: column 0 the value (the metric's unit), 1 the threshold, the
      others the rule's own;
    - ``key`` ``(M,)`` int64 pair keys, set (and the rows sorted by it) by :meth:`PairLifecycle.keyed`.
    """

    __slots__ = ("lo", "hi", "bad", "hold", "sev", "data", "key")

    def __init__(self, lo, hi, bad, hold, sev, data, key=None) -> None:
        self.lo, self.hi, self.bad, self.hold, self.sev, self.data = lo, hi, bad, hold, sev, data
        self.key = key

    def __len__(self) -> int:
        return len(self.lo)

    def take(self, idx) -> "PairBatch":
        """The rows ``idx`` (indices or a mask)."""
        key = None if self.key is None else self.key[idx]
        return PairBatch(self.lo[idx], self.hi[idx], self.bad[idx], self.hold[idx], self.sev[idx], self.data[idx], key)


class _Table:
    """Rows sorted by ``key`` (``(n,)`` int64) with aligned columns (arrays of ``n`` rows)."""

    __slots__ = ("key", "cols")

    def __init__(self, key: np.ndarray, **cols: np.ndarray) -> None:
        self.key, self.cols = key, cols

    def __len__(self) -> int:
        return len(self.key)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    def take(self, idx) -> "_Table":
        return _Table(self.key[idx], **{n: c[idx] for n, c in self.cols.items()})

    def merge(self, other: "_Table") -> "_Table":
        """Both tables' rows (distinct keys), sorted by key."""
        if not len(other):
            return self
        if not len(self):
            return other
        key = np.concatenate([self.key, other.key])
        order = np.argsort(key, kind="stable")
        return _Table(key[order], **{n: np.concatenate([c, other.cols[n]])[order] for n, c in self.cols.items()})

    def without(self, rows: np.ndarray) -> "_Table":
        """This table less the rows ``rows`` (indices)."""
        if not len(rows):
            return self
        keep = np.ones(len(self), bool)
        keep[rows] = False
        return self.take(keep)


def _find(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(idx, found)`` ``(len(keys),)``: where each of ``keys`` is in ``sorted_keys`` (idx is only
    meaningful where found)."""
    if not len(sorted_keys) or not len(keys):
        return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
    idx = np.searchsorted(sorted_keys, keys)
    np.minimum(idx, len(sorted_keys) - 1, out=idx)
    return idx, sorted_keys[idx] == keys


class PairLifecycle(LifecycleSettings):
    """The alarm lifecycle of one pair rule, in arrays (see module docstring); the same settings as
    :class:`~.lifecycle.Lifecycle`. ``report(data (k, C), lower ids, higher ids)`` gives the
    ``(positions, zones, extras)`` of k reported pairs from their stored observation rows."""

    def __init__(self, rule: str, metric: str, report: Report, columns: int, **settings) -> None:
        super().__init__(rule, metric, **settings)
        self.report, self.columns = report, int(columns)
        empty = np.zeros(0, np.int64)
        #: open alarms: ``rec`` holds each one's record (_NF columns), its latest and its clearing observation
        #: (C columns each: the slices _latest and _clearing), ``ids`` its alarm id
        self._latest = slice(_NF, _NF + self.columns)
        self._clearing = slice(_NF + self.columns, _NF + 2 * self.columns)
        self._open = _Table(empty, rec=np.zeros((0, _NF + 2 * self.columns)), ids=np.zeros(0, object))
        self._pending = _Table(empty, t=np.zeros((0, 2)))  # candidates: (since, last seen bad)
        self._ended = _Table(empty, t=np.zeros(0))  # cooldowns: the time the alarm ended
        self._table: dict | None = None  # track id -> code, once an id is not a small integer
        self._ids: list = []  # code -> track id (with the table)
        self._frame: FrameView | None = None
        self._codes = empty  # (N,) the codes of the rows of self._frame
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # (order, sorted codes) of self._frame
        self._found: tuple | None = None  # (batch, open table, _find of one in the other)

    @classmethod
    def from_config(
        cls, cfg: LifecycleConfig, rule: str, metric: str, report: Report, columns: int, **kw
    ) -> "PairLifecycle":
        """The lifecycle of a pair rule configured by ``cfg`` (``kw``: ``event_type``, ``higher_is_worse``)."""
        return cls(rule, metric, report, columns, **cls.settings_of(cfg), **kw)

    # ----------------------------------------------------------------------------- keys
    @property
    def open_keys(self) -> list[tuple]:
        """``(lower id, higher id)`` of every open alarm, sorted."""
        lo, hi = self._decode(self._open.key)
        return sorted(zip(lo, hi))

    def alarm_id(self, key) -> str | None:
        """The id of the open alarm of ``key`` ``(lower id, higher id)``, or None."""
        code = self._key_of(key)
        if code is None:
            return None
        idx, found = _find(self._open.key, np.array([code], np.int64))
        return self._open["ids"][idx[0]] if found[0] else None

    def _key_of(self, key) -> int | None:
        a, b = key
        if self._table is None:
            ok = all(isinstance(t, (int, np.integer)) and 0 <= t < _CODE_LIMIT for t in (a, b))
            return (int(a) << 32) | int(b) if ok else None
        ca, cb = self._table.get(a), self._table.get(b)
        return None if ca is None or cb is None else (ca << 32) | cb

    def _decode(self, keys: np.ndarray) -> tuple[list, list]:
        """The ``(lower ids, higher ids)`` of ``keys``."""
        lo, hi = (keys >> 32).tolist(), (keys & _LOW).tolist()
        if self._table is None:
            return lo, hi
        ids = self._ids
        return [ids[c] for c in lo], [ids[c] for c in hi]

    def frame_codes(self, frame: FrameView) -> np.ndarray:
        """``(N,)`` int64 the code of each row's track id (cached for the frame)."""
        if frame is self._frame:
            return self._codes
        codes = None
        if self._table is None:
            tid = frame.tid_array()
            if tid.dtype.kind in "iu" and (not len(tid) or (tid.min() >= 0 and tid.max() < _CODE_LIMIT)):
                codes = tid.astype(np.int64, copy=False)
            else:
                self._rebuild(frame.tids)
        if codes is None:
            live = len(frame.tids) + 2 * (len(self._open) + len(self._pending) + len(self._ended))
            if len(self._ids) > 2 * live + 4096:  # forget the ids of tracks long gone
                self._rebuild(frame.tids)
            table, ids = self._table, self._ids
            out = []
            for t in frame.tids:
                c = table.get(t)
                if c is None:
                    c = table[t] = len(ids)
                    ids.append(t)
                out.append(c)
            codes = np.array(out, np.int64)
        self._frame, self._codes, self._sorted = frame, codes, None
        return codes

    def _rebuild(self, frame_ids: Sequence) -> None:
        """Switch to (or renew) the code table: codes for ``frame_ids`` and the ids in the state only."""
        names = ("_open", "_pending", "_ended")
        decoded = {n: self._decode(getattr(self, n).key) for n in names}
        live = dict.fromkeys(frame_ids)
        for lo, hi in decoded.values():
            live.update(dict.fromkeys(lo))
            live.update(dict.fromkeys(hi))
        self._ids = list(live)
        self._table = {t: k for k, t in enumerate(self._ids)}
        for n in names:
            lo, hi = decoded[n]
            t = getattr(self, n)
            key = (np.array([self._table[a] for a in lo], np.int64) << 32) | np.array(
                [self._table[b] for b in hi], np.int64
            )
            setattr(self, n, _Table(key, **t.cols).take(np.argsort(key, kind="stable")))
        self._frame = None

    def _rows(self, frame: FrameView, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, found)``: the frame row of each track code in ``codes`` (rows only where found)."""
        fc = self.frame_codes(frame)
        if self._sorted is None:
            order = np.argsort(fc, kind="stable")
            self._sorted = (order, fc[order])
        order, sfc = self._sorted
        idx, found = _find(sfc, codes)
        return (order[idx] if len(order) else idx), found

    def _pair_rows(self, frame: FrameView, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(lo, hi, found)`` ``(len(keys),)``: the frame rows of each pair's tracks, and whether both
        are in the frame (the rows only where found)."""
        n = len(keys)
        rows, found = self._rows(frame, np.concatenate([keys >> 32, keys & _LOW]))
        return rows[:n], rows[n:], found[:n] & found[n:]

    def _present(self, frame: FrameView, keys: np.ndarray) -> np.ndarray:
        """``(len(keys),)`` bool: both tracks of the pair are in the frame."""
        return self._pair_rows(frame, keys)[2]

    def keyed(self, frame: FrameView, batch: PairBatch) -> PairBatch:
        """``batch`` with its pair keys, sorted by them."""
        codes = self.frame_codes(frame)
        key = (codes[batch.lo] << 32) | codes[batch.hi]
        batch.key = key
        if len(key) > 1 and np.any(key[1:] < key[:-1]):
            batch = batch.take(np.argsort(key, kind="stable"))
        return batch

    # ----------------------------------------------------------------------------- frames
    def unobserved(self, batch: PairBatch, frame: FrameView) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)`` frame rows of the open alarms' pairs missing from ``batch`` (keyed) whose tracks
        are both in the frame and that are not yet in a clear stretch: the ones the rule measures, once
        (see :meth:`.lifecycle.Lifecycle.unobserved`)."""
        o = self._open
        empty = np.zeros(0, np.int64)
        if not len(o):
            return empty, empty
        ask = ~self._observed(batch, o)[1] & np.isnan(o["rec"][:, _CLEAR_SINCE])
        if not ask.any():
            return empty, empty
        lo, hi, ok = self._pair_rows(frame, o.key[ask])
        return lo[ok], hi[ok]

    def _observed(self, batch: PairBatch, o: _Table) -> tuple[np.ndarray, np.ndarray]:
        """:func:`_find` of the open alarms ``o`` in ``batch`` (kept for the step after :meth:`unobserved`)."""
        hit = self._found
        if hit is not None and hit[0] is batch and hit[1] is o:
            return hit[2]
        found = _find(batch.key, o.key)
        self._found = (batch, o, found)
        return found

    def step(
        self, now: float, batch: PairBatch, frame: FrameView, measured: PairBatch | None = None
    ) -> list[AlarmChange]:
        """Feed one frame's observations (``batch``, keyed) and the rule's measurements of open alarms
        missing from it (``measured``, keyed, neither bad nor hold, see :meth:`unobserved`); open alarms
        and candidates missing from both are clear if both their tracks are in ``frame``, lost otherwise.
        Returns ends, starts, updates, each sorted by key (as :meth:`.lifecycle.Lifecycle.step`)."""
        out = _Reports()
        self._step_open(now, batch, measured, frame, out)
        self._found = None
        self._step_pending(now, batch, frame)
        self._start(now, batch, out)
        e = self._ended
        if len(e):
            cooling = now - e["t"] < self.cooldown_s
            if not cooling.all():
                self._ended = e.take(cooling)
        return self._changes(now, out)

    def _step_open(
        self, now: float, b: PairBatch, measured: PairBatch | None, frame: FrameView, out: "_Reports"
    ) -> None:
        o = self._open
        if not len(o):
            return
        rec = o["rec"]
        f, latest, clearing = rec[:, :_NF], rec[:, self._latest], rec[:, self._clearing]
        oi, seen = self._observed(b, o)
        obs = np.flatnonzero(seen)  # open alarms observed in this frame (so present)
        bi = oi[obs]
        latest[obs] = b.data[bi]
        f[obs, _LAST_SEEN] = now
        held_b = b.bad[bi] | b.hold[bi]
        held = obs[held_b]  # observed bad or in the hold band
        bh = bi[held_b]
        fh = f[held]
        fh[:, _CLEAR_SINCE] = np.nan
        worse = np.maximum if self.higher_is_worse else np.minimum
        fh[:, _WORST] = worse(fh[:, _WORST], b.data[bh, 0])
        bad_h = b.bad[bh]
        fh[bad_h, _LAST_BAD] = now
        sev = b.sev[bh]
        report = sev != fh[:, _SEV]
        if self.update_interval_s is not None:
            report |= now - fh[:, _LAST_REPORTED] >= self.update_interval_s
        fh[report, _LAST_REPORTED] = now
        fh[report, _SEV] = sev[report]
        f[held] = fh
        # the rest: observed clear (measured, or not surely inside the band), or missing (clear if present)
        rest = np.ones(len(o), bool)
        rest[held] = False
        rest = np.flatnonzero(rest)
        lost_rows = clear_rows = rest[:0]
        if len(rest):
            if measured is not None and len(measured):  # observed clear: the latest observation, and present
                mi, found = _find(o.key, measured.key)
                mi = mi[found]
                latest[mi] = measured.data[found]
                seen = seen.copy()
                seen[mi] = True
            present = seen[rest]
            unseen = ~present
            if unseen.any():
                present[unseen] = self._present(frame, o.key[rest[unseen]])
            lost = rest[~present]
            lost_rows = lost[now - f[lost, _LAST_SEEN] >= self.end_after_s]
            clear = rest[present]
            f[clear, _LAST_SEEN] = now
            first = clear[np.isnan(f[clear, _CLEAR_SINCE])]
            f[first, _CLEAR_SINCE] = now
            clearing[first] = latest[first]
            clear_rows = clear[now - f[clear, _CLEAR_SINCE] >= self.end_after_s]
        out.add("end", "lost", o, lost_rows, self._latest)
        out.add("end", "clear", o, clear_rows, self._clearing)
        out.add("update", None, o, held[report], self._latest)
        if len(lost_rows) or len(clear_rows):
            gone = np.concatenate([lost_rows, clear_rows])
            self._ended = self._ended.merge(_Table(np.sort(o.key[gone]), t=np.full(len(gone), now)))
            self._open = o.without(gone)

    def _step_pending(self, now: float, b: PairBatch, frame: FrameView) -> None:
        p = self._pending
        if not len(p):
            return
        pi, seen = _find(b.key, p.key)
        keep = np.empty(len(p), bool)
        keep[seen] = b.bad[pi[seen]]  # observed: kept while bad
        if not seen.all():  # unobserved: dropped when seen clear, or lost for longer than end_after_s
            keep[~seen] = ~self._present(frame, p.key[~seen]) & ~(now - p["t"][~seen, _SEEN] > self.end_after_s)
        if not keep.all():
            self._pending = p.take(keep)

    def _start(self, now: float, b: PairBatch, out: "_Reports") -> None:
        cand = np.flatnonzero(b.bad)
        if len(cand) and len(self._open):
            cand = cand[~_find(self._open.key, b.key[cand])[1]]
        if not len(cand):
            return
        key = b.key[cand]
        p, e = self._pending, self._ended
        since = np.full(len(key), now)  # a new candidate's
        pi, pending = _find(p.key, key)
        if len(p):
            since[pending] = p["t"][pi[pending], _SINCE]
        start = now - since >= self.min_duration_s
        if len(e):  # cooling down after an end
            ei, ended = _find(e.key, key)
            start[ended] &= now - e["t"][ei[ended]] >= self.cooldown_s
            self._ended = e.without(ei[ended & start])
        wait = ~start
        if len(p):
            p["t"][pi[pending & wait], _SEEN] = now
            p = p.without(pi[pending & start])
        new = wait & ~pending
        if new.any():
            p = p.merge(_Table(key[new], t=np.column_stack([since[new], np.full(int(new.sum()), now)])))
        self._pending = p
        rows = cand[start]
        k = len(rows)
        if not k:
            return
        rec = np.full((k, _NF + 2 * self.columns), np.nan)  # the clearing observation: none yet
        rec[:, _STARTED] = since[start]
        rec[:, _LAST_BAD] = rec[:, _LAST_SEEN] = rec[:, _LAST_REPORTED] = now
        rec[:, _WORST] = b.data[rows, 0]
        rec[:, _SEV] = b.sev[rows]
        rec[:, self._latest] = b.data[rows]
        ids = np.empty(k, object)
        ids[:] = new_alarm_ids(k)
        opened = _Table(key[start], rec=rec, ids=ids)
        self._open = self._open.merge(opened)
        out.add("start", None, opened, np.arange(k), self._latest)

    def _changes(self, now: float, reports: "_Reports") -> list[AlarmChange]:
        """The :class:`~vigil.alarm.AlarmChange` of every reported alarm: ends, starts, updates, each
        sorted by key; the rule's ``report`` is called once for all of them."""
        parts = reports.parts
        if not parts:
            return []
        one = len(parts) == 1
        key, f, data, ids = (parts[0][k] if one else np.concatenate([p[k] for p in parts]) for k in range(2, 6))
        f = f[:, :_NF]
        lo, hi = self._decode(key)
        keys = list(zip(lo, hi))
        positions, zones, extras = self.report(data, lo, hi)
        states = [state for state, _, k, *_ in parts for _ in range(len(k))]
        reasons = [reason for _, reason, k, *_ in parts for _ in range(len(k))]
        severity = _SEVERITY_NAMES[f[:, _SEV].astype(np.int64)].tolist()
        duration = np.maximum(f[:, _LAST_BAD] - f[:, _STARTED], 0.0).tolist()
        event_type, rule, metric = self.event_type, self.rule, self.metric
        changes = [
            AlarmChange(
                event_type=event_type,
                rule=rule,
                state=state,
                alarm_id=alarm_id,
                severity=sev,
                timestamp_s=now,
                started_at=started,
                duration_s=dur,
                key=k,
                metric=metric,
                value=value,
                threshold=threshold,
                worst=worst,
                tracks=k,
                positions=pos,
                zone=zone,
                reason=reason,
                extra=extra,
            )
            for state, reason, alarm_id, sev, started, dur, k, (value, threshold), worst, pos, zone, extra in zip(
                states,
                reasons,
                ids.tolist(),
                severity,
                f[:, _STARTED].tolist(),
                duration,
                keys,
                data[:, :2].tolist(),
                f[:, _WORST].tolist(),
                positions,
                zones,
                extras,
            )
        ]
        by_state: dict[str, list] = {"end": [], "start": [], "update": []}
        if len(parts) == 1:
            by_state[parts[0][0]] = changes
        else:
            for c in changes:
                by_state[c.state].append(c)
        return _sorted(by_state["end"]) + _sorted(by_state["start"]) + _sorted(by_state["update"])

    def flush(self, now: float) -> list[AlarmChange]:
        """End every open alarm (``reason="flush"``) and forget candidates and cooldowns."""
        o = self._open
        out = _Reports()
        out.add("end", "flush", o, np.arange(len(o)), self._latest)
        none = slice(0, 0)
        self._open, self._pending, self._ended = o.take(none), self._pending.take(none), self._ended.take(none)
        return self._changes(now, out)


class _Reports:
    """The alarms a frame reports, gathered so that their changes are built at once: parts of
    ``(state, reason, keys (k,), records (k, _NF + 2C), observations (k, C), alarm ids (k,))``."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[tuple] = []

    def add(self, state: str, reason: str | None, t: _Table, rows: np.ndarray, observation: slice) -> None:
        """The alarms ``rows`` of the open table ``t`` as they are now, reporting the observation in the
        columns ``observation`` of their records."""
        if len(rows):
            rec = t["rec"][rows]
            self.parts.append((state, reason, t.key[rows], rec, rec[:, observation], t["ids"][rows]))


def new_alarm_ids(k: int) -> list[str]:
    """``k`` new alarm ids: what :func:`vigil.alarm.new_alarm_id` makes (a random UUID, version 4, as its
    canonical string) from one ``os.urandom`` call, a few times cheaper per id for the dozens a crowd
    starts in one frame."""
    h = os.urandom(16 * k).hex()
    out = []
    for m in range(0, 32 * k, 32):
        s = h[m : m + 32]
        out.append(f"{s[:8]}-{s[8:12]}-4{s[13:16]}-{_VARIANT[int(s[16], 16) & 3]}{s[17:20]}-{s[20:]}")
    return out


_VARIANT = "89ab"  # the RFC 4122 variant: the top two bits of the clock_seq_hi byte are 10


def _by_key(change: AlarmChange):
    return change.key


def _sorted(changes: list) -> list:
    return sorted(changes, key=_by_key) if len(changes) > 1 else changes
