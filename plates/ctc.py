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
    __slots__ = ("parent", "cls", "diag", "dup", "E", "P", "children", "ub", "_red", "_stats", "_fin")

    def __init__(self, parent, cls, diag, dup, E, P, ub):
        self.parent, self.cls, self.diag, self.dup, self.E, self.P, self.ub = parent, cls, diag, dup, E, P, ub
        self.children: dict = {}
        self._red = None
        self._stats = None
        self._fin = None

    def final(self, tail: np.ndarray) -> tuple:
        """(best log-prob of a path ending with this node's character, class row, end)."""
        if self._fin is None:
            fin = self.E + tail
            s, k = np.unravel_index(int(np.argmax(fin)), fin.shape)
            self._fin = (float(fin[s, k]), int(s), int(k))
        return self._fin

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
        self.classes = np.arange(p.shape[1])
        self.root = _Node(None, None, False, None, None, None, np.inf)

    def _expand(self, node: _Node):
        """A full (non-diagonal) transition out of ``node`` for every class at once: P and E of
        each class do not depend on the set the class stands in, so the children of a node
        gather their rows (computed once per node)."""
        if node._stats is None:
            LB, LC = self.LB, self.LC
            if node is self.root:
                P = np.broadcast_to(LB, LC.shape)
            else:
                pcls, Ep = node.reduced()
                blank = LB + _cummax_excl(Ep.max(0) - LB)
                if len(pcls) == 1:  # a repeat of the one parent class needs the blank
                    c1, top1, top2 = pcls[0], np.maximum(Ep[0], blank), blank
                else:
                    a1 = Ep.argmax(0)
                    cols = np.arange(Ep.shape[1])
                    masked = Ep.copy()
                    masked[a1, cols] = _NEG
                    c1, top1, top2 = pcls[a1], np.maximum(Ep[a1, cols], blank), np.maximum(masked.max(0), blank)
                P = np.where(self.classes[:, None] == c1, top2, top1)
            E = LC + _cummax_excl(P - LC)
            node._stats = (P, E, (E + self.rest).max(1))
        return node._stats

    def _child(self, node: _Node, cls: np.ndarray, diag: bool, dup) -> _Node:
        key = (id(cls), diag)
        hit = node.children.get(key)
        if hit is not None:
            return hit
        if diag:
            LB, Ep = self.LB, node.E
            P = np.maximum(np.where((node.cls != cls)[:, None], Ep, _NEG), LB + _cummax_excl(Ep - LB))
            LCc = self.LC[cls]
            E = LCc + _cummax_excl(P - LCc)
            ub = float((E + self.rest).max())
        else:
            P_all, E_all, ub_all = self._expand(node)
            P, E, ub = P_all[cls], E_all[cls], float(ub_all[cls].max())
        child = _Node(node, cls, diag, dup, E, P, ub)
        node.children[key] = child
        return child

    def score(self, specs, floor: float = _NEG) -> tuple[float, tuple] | None:
        """Best path log-prob for position specs ``[(classes, diag, dup, key), ...]`` and a handle
        for :meth:`path`; None when no path can emit them or none comes up to ``floor``."""
        node = self.root
        for cls, diag, dup, _ in specs:
            node = self._child(node, cls, diag, dup)
            if node.ub < floor or node.ub == _NEG:
                return None
        best, s, k = node.final(self.tail)
        if not np.isfinite(best) or best < floor:
            return None
        return best, (node, s, k)

    def score_many(self, jobs) -> list:
        """:meth:`score` for many ``(specs, floor)`` at once, the same results: the trie grows
        one depth at a time and each depth's new nodes of full transitions are computed in
        one batch (a node's rows stacked with the others'; per element the same arithmetic)."""
        out: list = [None] * len(jobs)
        live = [(i, self.root) for i, (spec, _) in enumerate(jobs) if spec]
        depth = 0
        while live:
            new: dict = {}  # (id(parent), key) -> (parent, cls, diag, dup)
            for i, node in live:
                step = jobs[i][0][depth]
                if step[3] not in node.children:
                    new.setdefault((id(node), step[3]), (node, step))
            if new:
                self._grow(list(new.values()))
            nxt = []
            for i, node in live:
                spec, floor = jobs[i]
                child = node.children[spec[depth][3]]
                if child.ub < floor or child.ub == _NEG:
                    continue
                if depth + 1 < len(spec):
                    nxt.append((i, child))
                    continue
                best, s, k = child.final(self.tail)
                if np.isfinite(best) and best >= floor:
                    out[i] = (best, (child, s, k))
            live, depth = nxt, depth + 1
        return out

    def _grow(self, items) -> None:
        """Create the children ``[(parent, cls, diag, dup), ...]`` (full transitions batched)."""
        full = []
        for node, (cls, diag, dup, _) in items:
            if diag or node._stats is not None:
                self._child(node, cls, diag, dup)
            else:
                full.append((node, cls, dup))
        if not full:
            return
        LB, LC, W = self.LB, self.LC, len(self.LB)
        parents: dict = {}
        for node, _, _ in full:
            if node is not self.root:
                parents.setdefault(id(node), node)
        plist = list(parents.values())
        pidx = {id(nd): j + 1 for j, nd in enumerate(plist)}  # row 0: the root
        C1 = np.zeros((len(plist) + 1, W), int)
        TOP1 = np.empty((len(plist) + 1, W))
        TOP2 = np.empty((len(plist) + 1, W))
        TOP1[0] = TOP2[0] = LB  # the root: no character before, only blanks
        C1[0] = -1
        if plist:
            reds = [nd.reduced() for nd in plist]
            stack = np.concatenate([r[1] for r in reds])
            scls = np.concatenate([r[0] for r in reds])
            sizes = np.array([len(r[0]) for r in reds])
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            emax = np.maximum.reduceat(stack, starts, axis=0)
            seg = np.repeat(np.arange(len(plist)), sizes)
            rows = np.where(stack == emax[seg], np.arange(len(stack))[:, None], len(stack))
            a1 = np.minimum.reduceat(rows, starts, axis=0)  # the first row holding the maximum
            masked = stack.copy()
            masked[a1, np.arange(W)[None, :]] = _NEG
            top2 = np.maximum.reduceat(masked, starts, axis=0)
            blank = LB + _cummax_excl(emax - LB)
            C1[1:] = scls[a1]
            TOP1[1:] = np.maximum(emax, blank)
            TOP2[1:] = np.maximum(top2, blank)
        crow = np.concatenate([cls for _, cls, _ in full])
        prow = np.repeat([pidx.get(id(nd), 0) for nd, _, _ in full], [len(cls) for _, cls, _ in full])
        P = np.where(crow[:, None] == C1[prow], TOP2[prow], TOP1[prow])
        LCc = LC[crow]
        E = LCc + _cummax_excl(P - LCc)
        sizes = [len(cls) for _, cls, _ in full]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        ubs = np.maximum.reduceat((E + self.rest).max(1), starts).tolist()
        for (node, cls, dup), k, n, ub in zip(full, starts.tolist(), sizes, ubs):
            node.children[id(cls), False] = _Node(node, cls, False, dup, E[k : k + n], P[k : k + n], ub)

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
    """Position specs ``(classes, diag, dup, key)`` of a variant's slots (cached); None if a slot
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
            out.append((cls, j > 0, None if len(uniq) == len(cls) else (uniq, inv), (id(cls), j > 0)))
    if len(_SPECS) > 4096:
        _SPECS.clear()
        _INTERN.clear()
    _SPECS[key] = out
    return out
