"""Italian plate grammar and positional correction of confusable characters.

Formats (``L`` a letter, ``D`` a digit; Italian series use letters without I, O, Q, U):

=============== ===================== ==========================================================
kind            shape                 notes
=============== ===================== ==========================================================
``car``         ``AA 000 AA``         since 1994; ``Z*`` two-line square plates, ``Y*`` local police
``trailer``     ``XA 000 AA``         since 2013 (``X`` series of the car format)
``motorcycle``  ``AA 00000``          since 1999
``moped``       ``X`` + 5 characters  two lines, starts with X (low-confidence source: no positional
                                      correction beyond the leading X)
``police``      ``POLIZIA`` + ``L0000`` Polizia di Stato
``carabinieri`` ``CC`` + ``AA000``
``finanza``     ``GDIF`` + ``000AA``
``army``        ``EI`` + ``AA000``
``fire``        ``VF`` + ``00000``
``red_cross``   ``CRI`` + ``000AA``
``diplomatic``  ``CD`` + ``00000``
=============== ===================== ==========================================================

Where the format fixes a letter or a digit, confusable readings are corrected in that position
(0/O, 1/I, 8/B, 2/Z, 5/S, 6/G, 4/A, 7/T). Italian letter positions never hold O or Q, so with
``region="IT"`` a round glyph there reads as D (and U as V).

Foreign plates are kept as free text (upper case, letters and digits only), except for the
shape ``AA 000 AA`` that Italy shares with France and Slovakia: there positional correction
applies too, but the letter set is not restricted and the plate is reported as ``generic``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["PlateParse", "clean", "parse", "normalize", "confusable_key", "is_italian", "IT_LETTERS"]

IT_LETTERS = frozenset("ABCDEFGHJKLMNPRSTVWXYZ")
ALL_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
DIGITS = frozenset("0123456789")

#: reading → letter, where a letter must stand
TO_LETTER = {"0": "O", "1": "I", "8": "B", "2": "Z", "5": "S", "6": "G", "4": "A", "7": "T", "3": "B"}
#: reading → digit, where a digit must stand
TO_DIGIT = {
    "O": "0",
    "D": "0",
    "Q": "0",
    "U": "0",
    "I": "1",
    "L": "1",
    "J": "1",
    "T": "7",
    "B": "8",
    "Z": "2",
    "S": "5",
    "G": "6",
    "A": "4",
    "E": "8",
}
#: Italian letter positions: letters that do not exist there, mapped to the one they are mistaken for
IT_LETTER_FIX = {"O": "D", "Q": "D", "U": "V", "I": "T"}

#: groups of mutually confusable characters (for tolerant matching)
_CONFUSABLE_GROUPS = ["0ODQU", "1IJLT7", "8B3", "2Z", "5S", "6G", "4A", "MN", "VY", "KX", "CG"]
_KEY = {}
for _g in _CONFUSABLE_GROUPS:
    for _c in _g:
        _KEY.setdefault(_c, _g[0])


@dataclass(frozen=True)
class PlateParse:
    """A normalised plate reading."""

    text: str  #: upper case, letters and digits only
    kind: str  #: car, trailer, motorcycle, moped, police, ..., generic, free
    country: str | None  #: "IT" when an Italian format matched; None otherwise
    corrections: int = 0  #: characters changed by positional correction
    valid: bool = True  #: False: too few characters to be a plate

    def to_dict(self) -> dict:
        return {"text": self.text, "kind": self.kind, "country": self.country, "corrections": self.corrections}


# (kind, fixed prefix, pattern after the prefix, letters allowed)
_IT_FORMATS: list[tuple[str, str, str]] = [
    ("police", "POLIZIA", "LDDDD"),
    ("finanza", "GDIF", "DDDLL"),
    ("red_cross", "CRI", "DDDLL"),
    ("carabinieri", "CC", "LLDDD"),
    ("army", "EI", "LLDDD"),
    ("fire", "VF", "DDDDD"),
    ("diplomatic", "CD", "DDDDD"),
    ("car", "", "LLDDDLL"),
    ("motorcycle", "", "LLDDDDD"),
]

MIN_CHARS = 4
MAX_CHARS = 12


def clean(text: str) -> str:
    """Upper case, accents stripped, only A-Z and 0-9 kept."""
    text = unicodedata.normalize("NFKD", str(text or "")).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def _fit(text: str, pattern: str, letters: frozenset, region_it: bool) -> tuple[str, int] | None:
    """Map ``text`` onto ``pattern`` (L/D/* per position); None if some position cannot fit."""
    if len(text) != len(pattern):
        return None
    out, changes = [], 0
    for ch, want in zip(text, pattern):
        new = ch
        if want == "L":
            if ch in DIGITS:
                new = TO_LETTER.get(ch)
                if new is None:
                    return None
            if region_it and new not in letters:
                new = IT_LETTER_FIX.get(new, new)
            if new not in letters:
                return None
        elif want == "D":
            if ch not in DIGITS:
                new = TO_DIGIT.get(ch)
                if new is None:
                    return None
        out.append(new)
        changes += new != ch
    return "".join(out), changes


def parse(text: str, region: str = "auto") -> PlateParse:
    """Normalise one reading.

    ``region``: ``"IT"`` (an Italian camera: Italian formats win, letter-position O/Q/U read
    as D/D/V), or ``"auto"`` (Italian formats only where they fit without such letter fixes;
    otherwise the shared ``AA 000 AA`` shape with any letter; otherwise free text).
    """
    raw = clean(text)
    region_it = str(region).upper() == "IT"
    if len(raw) < MIN_CHARS:
        return PlateParse(raw, "none", None, 0, valid=False)
    candidates = [raw]
    # the blue EU band of an Italian plate carries an "I" before the series
    if len(raw) in (8, 9) and raw[0] in "I1":
        candidates.append(raw[1:])
    best: PlateParse | None = None
    for cand in candidates:
        for kind, prefix, pattern in _IT_FORMATS:
            if prefix:
                if len(cand) != len(prefix) + len(pattern):
                    continue
                head = cand[: len(prefix)]
                fitted_head = prefix
                head_changes = sum(a != b for a, b in zip(head, prefix))
                if head_changes > 1 or any(_KEY.get(a, a) != _KEY.get(b, b) for a, b in zip(head, prefix)):
                    continue
                fit = _fit(cand[len(prefix) :], pattern, IT_LETTERS, region_it)
                if fit is None:
                    continue
                res = PlateParse(fitted_head + fit[0], kind, "IT", fit[1] + head_changes)
            else:
                fit = _fit(cand, pattern, IT_LETTERS, region_it)
                if fit is None:
                    continue
                k = kind
                if kind == "car" and fit[0][0] == "X":
                    k = "trailer"
                res = PlateParse(fit[0], k, "IT", fit[1])
            if not region_it and res.corrections > 0:
                continue  # auto: Italian formats only where they fit as read
            if best is None or res.corrections < best.corrections:
                best = res
        if best is not None and cand is raw:
            break
    if best is not None:
        return best
    if region_it and len(raw) == 6 and raw[0] in "X":
        return PlateParse(raw, "moped", "IT", 0)
    generic = _fit(raw, "LLDDDLL", ALL_LETTERS, False)
    if generic is not None and generic[1] <= (2 if region_it else 1):
        return PlateParse(generic[0], "generic", None, generic[1])
    if len(raw) > MAX_CHARS:
        return PlateParse(raw, "free", None, 0, valid=False)
    return PlateParse(raw, "free", None, 0)


def normalize(text: str, region: str = "auto") -> str:
    """The normalised text of :func:`parse` ('' when too short to be a plate)."""
    p = parse(text, region)
    return p.text if p.valid else ""


def is_italian(text: str) -> bool:
    """True when ``text`` (already clean) is exactly an Italian format, no correction needed."""
    p = parse(text, "auto")
    return p.country == "IT" and p.corrections == 0 and p.text == clean(text)


def confusable_key(text: str) -> str:
    """A key equal for plates differing only by confusable characters (0/O/D/Q, 1/I/L, 8/B, ...)."""
    return "".join(_KEY.get(c, c) for c in clean(text))
