"""CTC decoding of plate readings: the free reading, format-constrained readings, and the choice.

Input: per plate line, the recogniser's probability matrix ``probs`` of shape (T, K+1): row t a
time step, column 0 the CTC blank, columns 1..K the characters of ``alphabet``; rows sum to 1.
A two-line plate gives two matrices (top, bottom), read as one plate, top then bottom.

- :func:`greedy`: the best path collapsed (the usual CTC reading) with per-character confidences.
- :func:`constrained`: the exact best CTC path among those that emit a string of a fixed pattern
  (each position from its allowed set): dynamic programming over pattern positions, vectorised
  over time, on a trie of pattern prefixes per matrix (:mod:`vigil.plates.ctc`); a prefix that
  cannot come within the margin of the free reading is dropped (exact: an upper bound is compared).
- :func:`interpret`: the decision among the free reading and every format's constrained reading.
  Before decoding it mixes confusable pairs (0/O, 1/I, ...: a channel model, the recogniser's
  ratio for them is not fully trusted): :data:`CONFUSION` for the formats of countries whose
  plate font draws O like 0 (:data:`vigil.plates.formats.SAME_O0_FONT`), the milder
  :data:`CONFUSION_DISTINCT` for the others and for the free reading; each format is also tried behind the band letters
  of its country (prior ``BAND_READ``) and behind one character of any class (a misread band
  letter, prior ``BAND_MISREAD / K``); band letters are not part of the text. A row with
  ``junk`` positions (:mod:`vigil.plates.formats`: Czech stickers, the Slovak coat of arms) is
  also tried with one character of any class there (prior ``q / K``), left out of the text, the
  character confidences and their product (``PlateDecision.skipped``). The tries are listed once
  per table and free-reading length (variants more than ``MAX_LENGTH_GAP`` characters off are
  never tried), and each depth of the tries is decoded in one batch (:meth:`ctc.Lattice.score_many`).

Decision rule (:func:`interpret`). ``l_h`` is the log-probability of hypothesis h's best path,
``l_free`` that of the free reading (the unconstrained best path, so ``l_free >= l_h``).

1. *Admissible* formats: ``l_free - l_h <= margin``, with ``MARGIN_HOME`` (4 nats: the format's
   reading may be up to ~55 times less likely than the free one, e.g. one character the model
   reads 0.98 vs 0.02, or two at 0.88 vs 0.12) for the home country (``region``, or the band
   country), and ``MARGIN_OTHER`` (1 nat, ~2.7 times: only near-ties) for every other country and
   for all countries when ``region="auto"``. A positional correction is thus made only where the
   recogniser itself finds the corrected string nearly as likely; a glyph it is sure of is never
   overwritten, so a foreign plate is not forced into the Italian grammar.
2. Among the admissible formats and the free reading, the maximum a-posteriori hypothesis wins:
   ``score = l_h + log P(country | region, band) + log share(row) - log |row| + shape`` (``|row|``:
   how many strings the row allows, i.e. a uniform prior over its strings; see
   :func:`vigil.plates.formats.country_priors`; ``shape``: for a one-line plate of known aspect,
   :func:`shape_evidence`, non-zero only for countries whose plates are not EU-shaped), and for
   the free reading
   ``log FREE_PRIOR - log MAX_LEN_FREE - n log K``. The free reading wins only when no format is
   admissible or only very loose ones are (a 5-character German-shaped string is weak evidence).
3. ``text_posterior``: the share of the softmax of the scores held by the chosen string; the
   country is reported when it holds at least ``COUNTRY_MIN`` of that string's mass.

Confidence (0..1, a product of probabilities and penalties):
``text_posterior * prod(q_i) * (1 - hidden) * edge * fit * foreign`` where ``q_i`` is character
i's probability at its best frame among the blank and the characters allowed at its position (so
a correction the format resolves is not penalised, a faint character is), ``hidden`` the largest
probability of an unread character at a frame the path leaves blank (a dropped character; for
a reading that fits a whole format only between its characters: outside lie the band, the frame,
screws), ``edge`` = ``EDGE_FACTOR`` when the text touches the first or last frame of a line (the
crop may cut the plate; the reader should pass only the frames of the crop itself), ``fit`` =
``FIT_FREE`` when no format fits (0 when the text is too short or long to be a plate, or is only
digits, more than a plate ever has: :func:`vigil.plates.grammar.free_plausible`), and
``foreign`` = ``FOREIGN_FACTOR`` for a format of a country other than the home one (Italy with
region "auto"). ``sure``: confidence >= ``SURE_THRESHOLD``.

Calibration of ``sure`` (synthetic plates only, never the OpenALPR photos):
``PlateReader(region="IT")`` read ``synthetic_set(400, seed, family)`` for families "it" and
"foreign" (tight crops with ``read_plate``, the rest with ``read``); ``SURE_THRESHOLD`` and
``FOREIGN_FACTOR`` were chosen on seed 100 (the reader's choice among candidates replayed for
each setting) for >= 99 % exact sure readings, then measured once on seed 200: precision 99.5 %
(394 of 396), recall 58.5 % of the exact readings (Italian 76 %, foreign 39 %); region "auto"
99.5 %, 58.1 %. Before (0.8, no foreign factor): 95.9 %, 83.7 %. Foreign misses at high
confidence are mostly 6/G and 0/O read firmly wrong where the format allows both, and synthetic
formats the table lacks; an Italian reading is sure from 0.9, a foreign one from 0.98.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

import numpy as np

from . import formats as table
from . import grammar
from .ctc import PROB_FLOOR, Lattice, specs
from .formats import PlateFormat

__all__ = ["DEFAULT_ALPHABET", "SURE_THRESHOLD", "FOREIGN_FACTOR", "Reading", "PlateDecision", "greedy", "constrained"]
__all__ += ["ctc_log_prob", "interpret", "decision_from_text"]

DEFAULT_ALPHABET = table.DIGITS + table.LETTERS
MARGIN_HOME = 4.0  #: nats a home-country format's path may lose against the free reading
MARGIN_OTHER = 1.0  #: the same for other countries and for region "auto"
FIT_FREE = 0.5  #: confidence factor of a reading that fits no format
EDGE_FACTOR = 0.5  #: confidence factor when the text touches a line's first or last frame
#: confidence factor of a reading in a format of a country other than the home one (with region
#: "auto": other than the most common country of AUTO_WEIGHTS, Italy): looser grammars, fewer
#: confusions resolved (calibrated, see the module docstring)
FOREIGN_FACTOR = 0.92
_MAIN = max(table.AUTO_WEIGHTS, key=table.AUTO_WEIGHTS.get)
SURE_THRESHOLD = 0.9
COUNTRY_MIN = 0.5  #: share of the chosen string's posterior its country needs to be reported
BAND_READ = 0.05  #: prior that the band letters are read along with the plate (the reader cuts a band it finds)
#: prior that one misread character stands in front of the plate (an emblem or band glyph the
#: reader did not cut off: rare, since the band is located by colour and cut)
BAND_MISREAD = 0.02
#: log-sd of a located one-line plate's quad aspect (width / height) about its physical aspect
#: (the quads of synthetic seed 100's one-line plates: inter-quartile range 0.1 in log, wider tails)
ASPECT_SIGMA = 0.15
ASPECT_CAP = 3.0  #: nats the plate's shape may add to or take from a format of another shape
#: log-likelihood ratio of each look (:data:`~vigil.plates.formats.LOOKS`) seen on a plate, for a
#: format whose plates carry it against any other; a look not seen is no evidence either way
#: (infrared light, dirt, a small plate hide it). Rates on synthetic seed 100 (dev):
#: ``top_band`` was found on 7 of the 12 Mercosul plates and on none of the 720 other plates'
#: candidates (rule of three: under 0.4 %): 0.5 / 0.005
LOOK_EVIDENCE = {"top_band": math.log(0.5 / 0.005)}
MAX_LENGTH_GAP = 3  #: variants whose length differs more from the free reading's are not tried
MAX_LEN_FREE = 12  #: free-text lengths (uniform prior over 1..12)
#: confusable pairs whose probability ratio the recogniser gets wrong on plate fonts: this share
#: of each one's mass goes to the other before :func:`interpret` decodes (a channel model; on
#: OpenALPR-EU PP-OCRv4 reads the Slovak letter O as 0 at 0.98-0.998 and I as 1 at 0.85-0.97)
CONFUSION = {("0", "O"): 0.3, ("1", "I"): 0.3, ("8", "B"): 0.1, ("5", "S"): 0.1, ("2", "Z"): 0.1}
#: the channel for the formats of countries whose plate font tells O from 0 and I from 1
#: (:data:`vigil.plates.formats.SAME_O0_FONT` lists those whose font does not): the recogniser's
#: ratio is trusted more there (on OpenALPR-BR, with one channel for all, a Brazilian "OKM2371"
#: read at an Italian camera became the Czech "0KM2371")
CONFUSION_DISTINCT = {("0", "O"): 0.05, ("1", "I"): 0.05, ("8", "B"): 0.1, ("5", "S"): 0.1, ("2", "Z"): 0.1}
_NEG = -np.inf


# --- readings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """A decoded string with, per character, its confidence and frames ``[start, end)``."""

    text: str
    char_confs: tuple[float, ...]
    frames: tuple[tuple[int, int], ...]
    log_prob: float  #: log-probability of the path

    @property
    def mean_conf(self) -> float:
        return float(np.mean(self.char_confs)) if self.char_confs else 0.0

    @property
    def min_conf(self) -> float:
        return float(min(self.char_confs)) if self.char_confs else 0.0


def _check(probs, alphabet: str) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(alphabet) + 1 or p.shape[0] < 1:
        raise ValueError(f"probs must be (T, {len(alphabet) + 1}) for alphabet {alphabet!r}, got {p.shape}")
    return p


def _confuse(p: np.ndarray, alphabet: str, pairs: dict) -> np.ndarray:
    q = p.copy()
    for (a, b), eps in (pairs or {}).items():
        if a in alphabet and b in alphabet:
            i, j = alphabet.index(a) + 1, alphabet.index(b) + 1
            q[:, i] = (1 - eps) * p[:, i] + eps * p[:, j]
            q[:, j] = (1 - eps) * p[:, j] + eps * p[:, i]
    return q


def _greedy(p: np.ndarray, alphabet: str, offset: int = 0) -> tuple[list, float]:
    idx = p.argmax(1)
    lp = float(np.log(np.maximum(p[np.arange(len(p)), idx], PROB_FLOOR)).sum())
    runs, t = [], 0
    while t < len(idx):
        c, s = int(idx[t]), t
        while t < len(idx) and idx[t] == c:
            t += 1
        if c:
            runs.append((c, s + offset, t + offset))
    return runs, lp


def greedy(probs, alphabet: str = DEFAULT_ALPHABET) -> Reading:
    """Best-path decoding: the arg-max class per frame, repeats merged, blanks dropped.
    A character's confidence is its class's largest probability over its frames."""
    p = _check(probs, alphabet)
    runs, lp = _greedy(p, alphabet)
    return Reading(
        "".join(alphabet[c - 1] for c, _, _ in runs),
        tuple(float(p[s:e, c].max()) for c, s, e in runs),
        tuple((s, e) for _, s, e in runs),
        lp,
    )


def ctc_log_prob(probs, alphabet: str, text: str) -> float:
    """Total (forward algorithm) log-probability of ``text`` over all its CTC alignments."""
    p = _check(probs, alphabet)
    lab = [alphabet.index(c) + 1 for c in text]
    ext = np.zeros(2 * len(lab) + 1, dtype=int)
    ext[1::2] = lab
    lp = np.log(np.maximum(p, PROB_FLOOR))[:, ext]
    skip = np.zeros(len(ext), bool)
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    alpha = np.full(len(ext), _NEG)
    alpha[0] = lp[0, 0]
    if len(ext) > 1:
        alpha[1] = lp[0, 1]
    for t in range(1, len(p)):
        a1 = np.concatenate([[_NEG], alpha])[: len(ext)]
        a2 = np.where(skip, np.concatenate([[_NEG, _NEG], alpha])[: len(ext)], _NEG)
        alpha = np.logaddexp(np.logaddexp(alpha, a1), a2) + lp[t]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if len(ext) > 1 else alpha[-1])


# --- constrained Viterbi (the lattice: :mod:`vigil.plates.ctc`) ------------------------


def constrained(probs, alphabet: str, pattern) -> tuple[str, float, tuple[float, ...]]:
    """The best CTC path emitting a string of ``pattern``: (text, log-prob, per-char confidences).

    ``pattern``: the compact syntax of :mod:`vigil.plates.formats` (``"LLDDDLL"``; ``L`` = any
    letter here; a variable pattern takes the best of its expansions; ``|`` is ignored) or a
    sequence of allowed-character sets. ``("", -inf, ())`` when no path can emit it.
    """
    p = _check(probs, alphabet)
    index = {ch: i + 1 for i, ch in enumerate(alphabet)}
    if isinstance(pattern, str):
        expansions = [tuple(s for s in slots if s != "|") for slots in table.parse_pattern(pattern)]
    else:
        expansions = [tuple(tuple(sorted(set(s))) for s in pattern)]
    lat = Lattice(p)
    best = ("", _NEG, ())
    for slots in expansions:
        spec = specs(slots, index)
        hit = lat.score(spec) if spec else None
        if hit and hit[0] > best[1]:
            path = lat.path(hit[1])
            confs = tuple(float(p[s:e, c].max()) for c, s, e in path)
            best = ("".join(alphabet[c - 1] for c, _, _ in path), hit[0], confs)
    return best


# --- the decision -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlateDecision:
    """The chosen reading of one plate (see the module docstring for the rule)."""

    text: str
    country: str | None  #: ISO code; None when it cannot be told
    kind: str  #: the format's kind (car, motorcycle, ...), "free" when no format fits
    format: str | None  #: the format row's name (formats.FORMATS), None for free text
    corrections: tuple[int, ...]  #: positions in ``text`` that differ from the free reading
    char_confs: tuple[float, ...]
    confidence: float
    sure: bool
    raw: str  #: the free (greedy) reading, band letters included
    log_prob: float = math.nan  #: log-probability of the chosen path (nan: text-only path)
    free_log_prob: float = math.nan
    #: log prior of the chosen string under its format (its country's share, the row's, the
    #: plate's shape and look; nan: text-only path)
    log_prior: float = math.nan
    text_posterior: float = math.nan
    country_posterior: float = math.nan
    band: str | None = None  #: EU band letters read in front of the plate
    #: positions in ``text`` before which a junk glyph (a sticker, an emblem) was read and dropped
    skipped: tuple[int, ...] = ()
    lines: int = 1
    valid: bool = True  #: False: too few or too many characters to be a plate
    alternatives: tuple[tuple[str, str | None, float], ...] = field(default=())  #: (text, format, posterior)

    def to_dict(self) -> dict:
        def num(x):
            return None if x is None or math.isnan(x) else round(float(x), 4)

        out = {k: num(v) if isinstance(v, float) else v for k, v in vars(self).items()}
        out["corrections"] = list(self.corrections) if isinstance(self.corrections, tuple) else self.corrections
        out["char_confs"] = [num(c) for c in self.char_confs]
        out["alternatives"] = [[t, f, num(w)] for t, f, w in self.alternatives]
        return out


@dataclass
class _Hyp:
    fmt: PlateFormat | None
    band: str | None
    log_prob: float
    prior: float  #: log prior of (format, string)
    allowed: list  #: per character, the class array allowed there
    handles: list  #: [(lattice, handle, frame offset)]
    junk: int | None = None  #: index in ``path`` of a junk glyph (sticker, emblem) left out of the text
    path: list | None = None  #: [(class, start, end)] in view frames
    text: str = ""  #: without the band letters and the junk glyph
    full: str = ""  #: every character of the path
    profile: str = "distinct"  #: the channel its likelihood is under (see :data:`CONFUSION_DISTINCT`)

    @property
    def score(self) -> float:
        return self.log_prob + self.prior


def _edits(a: str, b: str) -> tuple[int, ...]:
    """Positions of ``b`` replaced or inserted when aligning ``a`` to ``b``."""
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return tuple(j for tag, _, _, j1, j2 in ops if tag in ("replace", "insert") for j in range(j1, j2))


def _split_slots(slots, split: int):
    cum = 0
    for i, slot in enumerate(slots):
        if cum == split:
            return slots[:i], slots[i:]
        cum += len(slot[0])
    return (slots, ()) if cum == split else None


@dataclass(frozen=True)
class _Try:
    """One constrained decoding :func:`interpret` may run: a variant behind a head (none, ``*``
    or band letters), maybe with a junk glyph; ``parts``: ``((matrix, specs), ...)``, matrix 0
    or 1 a line, 2 the two lines one after the other."""

    fmt: PlateFormat
    code: str | None
    parts: tuple
    allowed: tuple
    junk: int | None
    prior: float  #: log prior less the country's


_PLANS: dict = {}
_PRIORS: dict = {}  #: (region, band) -> country priors, and (…, "log") -> their logs


def _plan(formats, alphabet: str, n: int, n_free: int) -> list[_Try]:
    """The tries for ``n`` lines and a free reading of ``n_free`` characters, in table order
    (cached per table, alphabet and lengths: the length filter runs once)."""
    key = (id(formats), alphabet, n, n_free)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is formats:
        return hit[1]
    K, index, out = len(alphabet), {ch: i + 1 for i, ch in enumerate(alphabet)}, []
    every = tuple(alphabet)  # a slot: one character of any class
    for f in formats:
        if (n == 1 and f.lines == 2) or (n == 2 and f.lines == 1):
            continue
        codes = [None, "*"] + [b for b, c in table.EU_BAND_CODES.items() if c == f.country]
        # P(string | row): every string the row allows alike (a per-variant model, each length
        # alike, was measured: it lets permissive rows (German: 32 variants) take truncated
        # readings such as "AB123"); as with the band heads, no (1 - q) for the row read plain
        base = math.log(f.prior) - math.log(f.size)
        for v in f.variants:
            for junk in ((None, 0.0),) + f.junk:
                j, q = junk
                body = v.slots
                if j is not None:
                    cut = _split_slots(v.slots, j)
                    if cut is None or not 0 < j < v.length or (n == 2 and f.lines == 2 and j == v.split):
                        continue
                    body = cut[0] + (every,) + cut[1]
                for code in codes:
                    head = ((every,) if code == "*" else tuple((ch,) for ch in code)) if code else ()
                    length = len(head) + v.length + (j is not None)
                    if abs(length - n_free) > MAX_LENGTH_GAP or (code == "*" and length != n_free):
                        continue
                    slots = head + body
                    if n == 2 and f.lines == 2:
                        split = v.split + len(head) + (j is not None and j < v.split)
                        cut = _split_slots(slots, split)
                        if cut is None:
                            continue
                        jobs = [(0, cut[0]), (1, cut[1])]
                    else:  # one line, or two read one after the other (the split is free)
                        jobs = [(2 if n == 2 else 0, slots)]
                    parts = tuple((m, specs(part, index)) for m, part in jobs)
                    if any(s is None for _, s in parts):
                        continue
                    allowed = tuple(cls if dup is None else dup[0] for _, s in parts for cls, _, dup, _ in s)
                    prior = base
                    if code:
                        prior += math.log(BAND_MISREAD) - math.log(K) if code == "*" else math.log(BAND_READ)
                    if j is not None:
                        prior += math.log(q) - math.log(K)
                    out.append(_Try(f, code, parts, allowed, None if j is None else len(head) + j, prior))
    if len(_PLANS) > 256:
        _PLANS.clear()
    _PLANS[key] = (formats, out)
    return out


def interpret(
    probs_lines,
    alphabet: str = DEFAULT_ALPHABET,
    region: str = "auto",
    band_country: str | None = None,
    formats: tuple[PlateFormat, ...] | None = None,
    confusion: dict | None = CONFUSION,
    aspect: float | None = None,
    looks: frozenset[str] = frozenset(),
) -> PlateDecision:
    """Choose the reading of one plate from its line matrices (one, or two: top and bottom).

    ``region``: ``"auto"``, or the camera's country (``"IT"``, any code of the table or an EU
    band code); ``band_country``: the plate's band country when known (the home country, with
    :data:`~vigil.plates.formats.BAND_SHARE` of the prior: a misread band does not shut out the
    others); ``formats``: the rows to try (default: the whole table); ``confusion``: the pairs
    mixed before decoding for the fonts that draw O like 0 (:data:`CONFUSION`; the others get
    :data:`CONFUSION_DISTINCT`; None: the probabilities as given); ``aspect``: the one-line
    plate's quad width / height (:func:`shape_evidence`); ``looks``: what was seen on the plate
    (:data:`~vigil.plates.formats.LOOKS`; :data:`LOOK_EVIDENCE` for the formats that carry it).
    """
    if isinstance(probs_lines, np.ndarray) and probs_lines.ndim == 2:
        probs_lines = [probs_lines]
    raw_mats = [_check(m, alphabet) for m in probs_lines]
    if len(raw_mats) not in (1, 2):
        raise ValueError(f"a plate has one or two lines, got {len(raw_mats)}")
    n, K = len(raw_mats), len(alphabet)
    T0 = len(raw_mats[0])
    # one channel per kind of plate font: "same" (O drawn as 0: the given ``confusion``) and
    # "distinct" (a font that tells them apart; the free reading is judged under this one)
    channels = {"same": confusion, "distinct": CONFUSION_DISTINCT if confusion is not None else None}
    views: dict = {}
    for name, pairs in channels.items():
        mats = [_confuse(m, alphabet, pairs) for m in raw_mats]
        if n == 2:
            sep = np.zeros((1, K + 1))
            sep[0, 0] = 1.0
            view = np.vstack([mats[0], sep, mats[1]])
            ranges = [(0, T0), (T0 + 1, len(view))]
        else:
            view, ranges = mats[0], [(0, T0)]
        runs, free_lp = [], 0.0
        for m, (a, _) in zip(mats, ranges):
            r, lp = _greedy(m, alphabet, a)
            runs, free_lp = runs + r, free_lp + lp
        views[name] = (mats, view, ranges, runs, free_lp)
    mats, view, ranges, runs, free_lp = views["distinct"]
    free_text = "".join(alphabet[c - 1] for c, _, _ in runs)
    top_text = "".join(alphabet[c - 1] for c, s, _ in runs if s < T0).replace("1", "I")

    lattices: dict = {}  # one trie per channel and matrix; each try prunes at its own floor

    def lattice(channel: str, i: int) -> Lattice:
        if (channel, i) not in lattices:
            m, v = views[channel][0], views[channel][1]
            lattices[channel, i] = Lattice(v if i == 2 else m[i])
        return lattices[channel, i]

    band = table.resolve_country(band_country)
    key = (region, band)
    if key not in _PRIORS:
        _PRIORS[key] = table.country_priors(region, band)
        _PRIORS[key, "log"] = {c: math.log(w) for c, w in _PRIORS[key].items()}
    priors, log_prior = _PRIORS[key], _PRIORS[key, "log"]
    home = band or (None if region is None or str(region).lower() == "auto" else table.resolve_country(region))
    every = np.arange(1, K + 1)
    free_prior = math.log(table.FREE_PRIOR) - math.log(MAX_LEN_FREE) - len(free_text) * math.log(K)
    free = _Hyp(None, None, free_lp, free_prior, [], [])
    free.path, free.text, free.full, free.allowed = runs, free_text, free_text, [every] * len(runs)
    hyps = [free]
    tries = [
        t
        for t in _plan(table.FORMATS if formats is None else formats, alphabet, n, len(free_text))
        if t.fmt.country in priors and not (t.code and t.code != "*" and not top_text.startswith(t.code))
    ]
    chan = ["same" if t.fmt.country in table.SAME_O0_FONT else "distinct" for t in tries]
    look = [sum(LOOK_EVIDENCE[x] for x in looks & t.fmt.looks) for t in tries]
    margins = [(MARGIN_HOME if t.fmt.country == home else MARGIN_OTHER) + e for t, e in zip(tries, look)]
    totals, handles = [0.0] * len(tries), [[] for _ in tries]
    alive = list(range(len(tries)))
    for part in range(2):  # the first part of every try, then the second of those that are left
        by_lat: dict = {}
        for i in alive:
            if part < len(tries[i].parts):
                by_lat.setdefault((chan[i], tries[i].parts[part][0]), []).append(i)
        for (c, m), idx in by_lat.items():
            lat = lattice(c, m)
            hits = lat.score_many([(tries[i].parts[part][1], lat.free - margins[i] - 1e-9) for i in idx])
            for i, hit in zip(idx, hits):
                if hit is None:
                    totals[i] = None
                else:
                    totals[i] += hit[0]
                    handles[i].append((lat, hit[1], T0 + 1 if m == 1 else 0))
        alive = [i for i in alive if totals[i] is not None]
    # the plate's shape, once per country of another shape than the EU's (one-line plates only)
    shape = {c: shape_evidence(c, aspect) for c in table.PLATE_ASPECT} if n == 1 else {}
    for i in alive:
        t = tries[i]
        if views[chan[i]][4] - totals[i] > margins[i] + 1e-9:
            continue
        prior = log_prior[t.fmt.country] + t.prior + shape.get(t.fmt.country, 0.0) + look[i]
        h = _Hyp(t.fmt, t.code, totals[i], prior, list(t.allowed), handles[i], t.junk)
        h.profile = chan[i]
        hyps.append(h)
    for h in hyps[1:]:
        h.path = [(c, s + off, e + off) for lat, hd, off in h.handles for c, s, e in lat.path(hd)]
        h.full = "".join(alphabet[c - 1] for c, _, _ in h.path)
        nb = len(h.band or "")
        h.text = "".join(ch for i, ch in enumerate(h.full) if i >= nb and i != h.junk)
        h.band = h.full[:nb] or None
    view = views[max(hyps, key=lambda h: h.score).profile][1]
    return _decide(hyps, view, ranges, free_text, free_lp, band, n, home)


def shape_evidence(country: str, aspect: float | None) -> float:
    """log p(aspect | the country's one-line plate) - log p(aspect | an EU-shaped one), capped at
    ±``ASPECT_CAP`` nats: 0 for EU-shaped countries or an unknown aspect. Each is a log-normal
    density about the physical aspect (:data:`~vigil.plates.formats.PLATE_ASPECT`) with sd
    ``ASPECT_SIGMA``; they cross at the geometric mean of the two shapes (3.82 for Brazil)."""
    shape = table.PLATE_ASPECT.get(country)
    if shape is None or aspect is None or not aspect > 0:
        return 0.0
    z_own = (math.log(aspect) - math.log(shape)) / ASPECT_SIGMA
    z_eu = (math.log(aspect) - math.log(table.PLATE_ASPECT_EU)) / ASPECT_SIGMA
    return float(np.clip(0.5 * (z_eu * z_eu - z_own * z_own), -ASPECT_CAP, ASPECT_CAP))


def _decide(hyps: list[_Hyp], view, ranges, free_text: str, free_lp: float, band, n: int, home) -> PlateDecision:
    best = max(hyps, key=lambda h: h.score)
    scores = np.array([h.score for h in hyps])
    w = np.exp(scores - scores.max())
    w /= w.sum()
    by_text: dict[str, float] = {}
    for h, x in zip(hyps, w):
        by_text[h.text] = by_text.get(h.text, 0.0) + x
    text_post = by_text[best.text]
    country = best.fmt.country if best.fmt else band
    same = [(h, x) for h, x in zip(hyps, w) if h.text == best.text]
    c_post = sum(x for h, x in same if (h.fmt.country if h.fmt else band) == country) / max(text_post, 1e-300)
    if country is not None and c_post < COUNTRY_MIN:
        country = None
    # per-character posteriors among the blank and the characters allowed at the position
    nb = len(best.band or "")
    q = []
    for (c, s, e), allowed in zip(best.path, best.allowed):
        seg = view[s:e]
        q.append(float((seg[:, c] / (seg[:, 0] + seg[:, allowed].sum(1))).max()))
    keep = [i for i in range(len(q)) if i >= nb and i != best.junk]  # not the band, not the junk
    q = [q[i] for i in keep]
    # dropped characters: unread character mass at frames the path leaves blank; a reading that
    # fits a whole format counts only the gaps between its characters (outside them lie the
    # band, screws, the frame), a free reading every gap
    hidden, edge = 0.0, False
    for a, b in ranges:
        line = [r for r in best.path[nb:] if a <= r[1] < b]
        edge = edge or any(s == a or e == b for _, s, e in line)
        bounds = [(a, None)] + [(e, c) for c, _, e in line]
        starts = [(s, c) for c, s, _ in line] + [(b, None)]
        for (g0, prev), (g1, nxt) in zip(bounds, starts):
            if g1 <= g0 or (best.fmt and not (prev and nxt)):
                continue
            seg = view[g0:g1]
            mass = 1.0 - seg[:, 0]
            if prev:
                mass = mass - seg[:, prev]
            if nxt and nxt != prev:
                mass = mass - seg[:, nxt]
            hidden = max(hidden, float(mass.max()))
    hidden = min(max(hidden, 0.0), 1.0)
    conf = text_post * float(np.prod(q)) * (1.0 - hidden) * (EDGE_FACTOR if edge else 1.0)
    if best.fmt is None:
        valid = grammar.free_plausible(best.text)
    else:
        valid = grammar.MIN_CHARS <= len(best.text) <= grammar.MAX_CHARS
    conf *= (1.0 if best.fmt else FIT_FREE) if valid else 0.0
    if best.fmt is not None and best.fmt.country != (home or _MAIN):
        conf *= FOREIGN_FACTOR
    alts = sorted(by_text.items(), key=lambda kv: -kv[1])[:3]
    fmt_of = {}
    for h in sorted(hyps, key=lambda h: -h.score):
        fmt_of.setdefault(h.text, h.fmt.name if h.fmt else None)
    pos = {i: k for k, i in enumerate(keep)}
    corr = tuple(pos[i] for i in _edits(free_text, best.full) if i in pos)
    return PlateDecision(
        text=best.text,
        country=country,
        kind=best.fmt.kind if best.fmt else "free",
        format=best.fmt.name if best.fmt else None,
        corrections=corr,
        char_confs=tuple(q),
        confidence=float(conf),
        sure=bool(conf >= SURE_THRESHOLD),
        raw=free_text,
        log_prob=float(best.log_prob),
        free_log_prob=float(free_lp),
        log_prior=float(best.prior),
        text_posterior=float(text_post),
        country_posterior=float(c_post),
        band=best.band,
        skipped=() if best.junk is None else (best.junk - nb,),
        lines=n,
        valid=valid,
        alternatives=tuple((t, fmt_of[t], float(x)) for t, x in alts),
    )


def decision_from_text(
    text: str,
    confs=None,
    region: str = "auto",
    band_country: str | None = None,
    lines: int | None = None,
) -> PlateDecision:
    """The text-only path (recognisers giving a string and maybe per-character confidences):
    :func:`vigil.plates.grammar.parse` places the reading; a corrected character's confidence is
    ``1 - conf`` of what was read there (the most the correction can be right), a character
    without a confidence counts 1; ``fit`` and ``sure`` as in :func:`interpret`."""
    raw = grammar.clean(text)
    p = grammar.parse(text, region, lines, band_country)
    if confs is None or len(confs) != len(raw):
        confs = [1.0] * len(raw)
    off = len(raw) - len(p.text) if p.valid and len(p.text) <= len(raw) else 0
    cc, corr = [], []
    for i, ch in enumerate(p.text):
        src = raw[i + off] if i + off < len(raw) else ""
        c = float(confs[i + off]) if i + off < len(confs) else 1.0
        if ch != src:
            corr.append(i)
            c = 1.0 - c
        cc.append(min(max(c, 0.0), 1.0))
    conf = float(np.prod(cc)) * (1.0 if p.country else FIT_FREE) if p.valid else 0.0
    home = table.resolve_country(band_country) or (
        None if str(region).lower() == "auto" else table.resolve_country(region)
    )
    if p.country and p.country != (home or _MAIN):
        conf *= FOREIGN_FACTOR
    return PlateDecision(
        text=p.text,
        country=p.country or table.resolve_country(band_country),
        kind=p.kind,
        format=p.format,
        corrections=tuple(corr),
        char_confs=tuple(cc),
        confidence=float(conf),
        sure=bool(conf >= SURE_THRESHOLD),
        raw=raw,
        band=raw[:off] or None,
        lines=lines or 1,
        valid=p.valid,
    )
