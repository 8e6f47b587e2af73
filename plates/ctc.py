"""Constrained CTC Viterbi machinery for :mod:`vigil.plates.decode` (the lattice of one matrix).

:class:`Lattice`: one probability matrix with its prefix sums and a trie of decoded pattern
prefixes. E_i[c, k] = best log-probability of the first i characters with the i-th (class c)
ending after k frames; a step to the next position is a running maximum over where the next
character's run starts (blank runs between, a blank required between two equal characters).
Patterns sharing a prefix share its work. Each node keeps an upper bound of any completion
(``ub``: E plus the best per-frame log-probabilities of the frames left), and
:meth:`Lattice.score` drops a prefix whose bound is below the caller's floor (exact: a pattern
whose best path cannot reach the floor is reported as None, any other exactly).

:func:`specs`: a variant's slots as position specs ``(classes, diag, dup)``, cached.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PROB_FLOOR", "Lattice", "specs"]

PROB_FLOOR = 1e-8  #: probabilities below are treated as this (keeps logs finite)
_NEG = -np.inf


def _cummax_excl(x: np.ndarray) -> np.ndarray:
    """out[..., k] = max(x[..., :k]) (-inf at k = 0)."""
    out = np.empty_like(x)
    out[..., 0] = _NEG
    np.maximum.accumulate(x[..., :-1], axis=-1, out=out[..., 1:])
    return out


class _Node:
    __slots__ = ("parent", "cls", "diag", "dup", "E", "P", "children", "ub", "_red", "_stats")

    def __init__(self, parent, cls, diag, dup, E, P, ub):
        self.parent, self.cls, self.diag, self.dup, self.E, self.P, self.ub = parent, cls, diag, dup, E, P, ub
        self.children: dict = {}
        self._red = None
        self._stats = None

    def reduced(self):
        """E maximised per distinct class (for a full transition out of duplicate classes)."""
        if self._red is None:
            if self.dup is None:
                self._red = (self.cls, self.E)
            else:
                uniq, inv = self.dup
                red = np.full((len(uniq), self.E.shape[1]), _NEG)
                np.maximum.at(red, inv, self.E)
                self._red = (uniq, red)
        return self._red


class Lattice:
    """One probability matrix with its prefix sums and a trie of decoded pattern prefixes."""

    def __init__(self, p: np.ndarray):
        self.p = p
        self.T = len(p)
        lp = np.log(np.maximum(p, PROB_FLOOR))
        self.LB = np.concatenate([[0.0], np.cumsum(lp[:, 0])])
        self.LC = np.vstack([np.zeros(p.shape[1]), np.cumsum(lp, axis=0)]).T.copy()
        best = lp.max(1)
        self.free = float(best.sum())
        self.rest = np.concatenate([np.cumsum(best[::-1])[::-1], [0.0]])
        self.tail = self.LB[-1] - self.LB
        self.root = _Node(None, None, False, None, None, None, np.inf)

    def _full_stats(self, node: _Node):
        """What a full (non-diagonal) transition out of ``node`` needs, computed once."""
        if node._stats is None:
            LB = self.LB
            pcls, Ep = node.reduced()
            blank = LB + _cummax_excl(Ep.max(0) - LB)
            if len(pcls) == 1:  # a repeat of the one parent class needs the blank
                node._stats = (blank, np.full(len(LB), pcls[0]), np.maximum(Ep[0], blank), blank)
            else:
                a1 = Ep.argmax(0)
                cols = np.arange(Ep.shape[1])
                top1 = Ep[a1, cols]
                masked = Ep.copy()
                masked[a1, cols] = _NEG
                node._stats = (blank, pcls[a1], np.maximum(top1, blank), np.maximum(masked.max(0), blank))
        return node._stats

    def _child(self, node: _Node, cls: np.ndarray, diag: bool, dup) -> _Node:
        key = (id(cls), diag)
        hit = node.children.get(key)
        if hit is not None:
            return hit
        LB = self.LB
        if node is self.root:
            P = np.broadcast_to(LB, (len(cls), len(LB)))
        elif diag:
            Ep = node.E
            P = np.maximum(np.where((node.cls != cls)[:, None], Ep, _NEG), LB + _cummax_excl(Ep - LB))
        else:
            _, c1, top1, top2 = self._full_stats(node)
            P = np.where(cls[:, None] == c1[None, :], top2[None, :], top1[None, :])
        LCc = self.LC[cls]
        E = LCc + _cummax_excl(P - LCc)
        child = _Node(node, cls, diag, dup, E, P, float((E + self.rest).max()))
        node.children[key] = child
        return child

    def score(self, specs, floor: float = _NEG) -> tuple[float, tuple] | None:
        """Best path log-prob for position specs ``[(classes, diag, dup), ...]`` and a handle
        for :meth:`path`; None when no path can emit them or none comes up to ``floor``."""
        node = self.root
        for cls, diag, dup in specs:
            node = self._child(node, cls, diag, dup)
            if node.ub < floor or node.ub == _NEG:
                return None
        fin = node.E + self.tail
        s, k = np.unravel_index(int(np.argmax(fin)), fin.shape)
        best = float(fin[s, k])
        if not np.isfinite(best) or best < floor:
            return None
        return best, (node, int(s), int(k))

    def path(self, handle) -> list:
        """The best path of :meth:`score`'s handle: ``[(class, start, end), ...]``."""
        node, s, k_end = handle
        LB, path = self.LB, []
        while node is not self.root:
            c = int(node.cls[s])
            k = int(np.argmax(node.P[s, :k_end] - self.LC[c, :k_end]))
            path.append((c, k, k_end))
            parent = node.parent
            if parent is self.root:
                break
            if node.diag:
                Ep = parent.E[s]
                z = Ep[k] if parent.cls[s] != c else _NEG
                j = int(np.argmax(Ep[:k] - LB[:k])) if k else 0
                bl = Ep[j] - LB[j] + LB[k] if k else _NEG
                k_end = k if z >= bl else j
            else:
                Ep = parent.E
                mask = parent.cls != c
                col = np.where(mask, Ep[:, k], _NEG)
                z = col.max()
                emax = Ep.max(0)
                j = int(np.argmax(emax[:k] - LB[:k])) if k else 0
                bl = emax[j] - LB[j] + LB[k] if k else _NEG
                if z >= bl:
                    s, k_end = int(col.argmax()), k
                else:
                    s, k_end = int(Ep[:, j].argmax()), j
            node = parent
        return path[::-1]


_SPECS: dict = {}
_INTERN: dict = {}


def specs(slots, index: dict) -> list | None:
    """Position specs ``(classes, diag, dup)`` of a variant's slots (cached); None if a slot
    cannot be read with the alphabet. A code list's positions hold one state per code
    (duplicate classes), linked position to position (``diag``)."""
    key = (slots, tuple(index))
    if key in _SPECS:
        return _SPECS[key]
    out = []
    for slot in slots:
        codes = [c for c in slot if all(ch in index for ch in c)]
        if not codes:
            out = None
            break
        for j in range(len(codes[0])):
            cls = np.array(sorted({index[c[j]] for c in codes}) if len(codes[0]) == 1 else [index[c[j]] for c in codes])
            cls = _INTERN.setdefault(cls.tobytes(), cls)  # equal sets share trie nodes
            uniq, inv = np.unique(cls, return_inverse=True)
            out.append((cls, j > 0, None if len(uniq) == len(cls) else (uniq, inv)))
    if len(_SPECS) > 4096:
        _SPECS.clear()
        _INTERN.clear()
    _SPECS[key] = out
    return out
