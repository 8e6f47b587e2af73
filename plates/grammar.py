"""Plate grammar on text: normalisation and positional correction of confusable characters.

The formats are the rows of :mod:`vigil.plates.formats` (one table for the text grammar and the
CTC decoder). This module is the *text-only* path: for recognisers that give a string (and maybe
per-character confidences) rather than CTC probabilities; :func:`vigil.plates.decode.interpret`
is the path for probability matrices.

Where a format fixes a letter or a digit, a confusable reading is corrected in that position
(0/O, 1/I, 8/B, 2/Z, 5/S, 6/G, 4/A, 7/T, ...); Italian letter positions never hold I, O, Q, U, so
with an Italian home region a round glyph there reads as D (and U as V). Literal parts
(``POLIZIA``, ``CC``) and code lists (Slovak districts, Swiss cantons) accept a confusable
character too.

How a reading is placed (``region``: ``"IT"`` or another country code for a camera in that
country, ``"auto"`` when unknown; ``band_country``: the country of the plate's EU band when known,
which then is the home country and holds :data:`~vigil.plates.formats.BAND_SHARE` of the prior):

- every row of the table whose country is possible is fitted to the reading, and, when the
  reading starts with EU band letters (``I``, ``D``, ``SK``, ...), that country's rows to the rest;
- with a home country the first non-empty rung wins: home formats as read; home formats with 1 or
  2 corrections; foreign formats as read; home formats with more corrections
  (:data:`HOME_YIELDS_AT`); foreign formats with one correction (:data:`MAX_FOREIGN_CORRECTIONS`);
- with ``region="auto"``: any format as read; a non-Italian format with one correction (a
  foreign plate is never bent into the Italian grammar, and Italian formats are not corrected);
- rows marked ``fallback`` (series not issued yet) come after all of these;
- after band letters, only exact fits count unless the band's country is the home one; a
  reading as a whole wins over the same rung after band letters;
- within a rung: fewest corrections, then the highest ``log P(country | region) + log share(row)
  - log |row|`` (``|row|``: how many strings the row allows: a specific format beats a loose one);
  ``lines`` (1 or 2, when known) drops rows of the other kind;
- nothing fits: the reading is kept as free text (upper case, letters and digits only).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from .formats import EU_BAND_CODES, FORMATS, Variant, country_priors, resolve_country
from .formats import IT_LETTERS as _IT_LETTERS

__all__ = ["PlateParse", "clean", "parse", "normalize", "confusable_key", "is_italian", "free_plausible", "IT_LETTERS"]

IT_LETTERS = frozenset(_IT_LETTERS)
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

MIN_CHARS = 4
MAX_CHARS = 12
#: the most digits a reading that fits no format may hold: no plate system numbers its vehicles
#: with more than 8 digits only (Israel's 123-45-678 is the longest), while a phone number on a
#: van or a shop sign has 9 to 11
MAX_FREE_DIGITS_ONLY = 8
#: corrections allowed in the formats of a country other than the home one
MAX_FOREIGN_CORRECTIONS = 1
#: corrections from which a home-country fit yields to an exact foreign fit
HOME_YIELDS_AT = 3


def _rung(k: int, at_home: bool, has_home: bool, italian: bool, after_band: bool) -> int | None:
    """Rank of a fit with ``k`` corrections (lower wins; None: not allowed); see the module docstring."""
    if not has_home:
        if k == 0:
            return 0
        return 1 if k <= MAX_FOREIGN_CORRECTIONS and not italian and not after_band else None
    if at_home:
        return 0 if k == 0 else (1 if k < HOME_YIELDS_AT else 3)
    if k == 0:
        return 2
    return 4 if k <= MAX_FOREIGN_CORRECTIONS and not after_band else None


@dataclass(frozen=True)
class PlateParse:
    """A normalised plate reading."""

    text: str  #: upper case, letters and digits only
    kind: str  #: car, trailer, motorcycle, moped, police, ..., free
    country: str | None  #: ISO code of the matched format's country; None for free text
    corrections: int = 0  #: characters changed by positional correction
    valid: bool = True  #: False: too few (or too many) characters to be a plate
    format: str | None = None  #: the matched row's name (formats.FORMATS)

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "kind": self.kind,
            "country": self.country,
            "corrections": self.corrections,
            "format": self.format,
        }


def clean(text: str) -> str:
    """Upper case, accents stripped, only A-Z and 0-9 kept."""
    text = unicodedata.normalize("NFKD", str(text or "")).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def _substitute(ch: str, allowed, it_fix: bool, literal: bool) -> str | None:
    """``ch`` itself, or the confusable character that stands in ``allowed``; None if none does."""
    if ch in allowed:
        return ch
    mapped = TO_LETTER.get(ch) if ch in DIGITS else TO_DIGIT.get(ch)
    cands = [mapped]
    if it_fix:
        cands += [IT_LETTER_FIX.get(mapped or ""), IT_LETTER_FIX.get(ch)]
    if literal:
        cands += [c for c in allowed if _KEY.get(c, c) == _KEY.get(ch, ch)]
    for c in cands:
        if c and c in allowed:
            return c
    return None


def _fit(text: str, variant: Variant, it_fix: bool) -> tuple[str, int] | None:
    """``text`` mapped onto a fixed-length variant; None if some position cannot fit."""
    if len(text) != variant.length:
        return None
    out, changes, i = [], 0, 0
    for slot in variant.slots:
        n = len(slot[0])
        part = text[i : i + n]
        i += n
        if n == 1:
            new = _substitute(part, slot, it_fix, literal=len(slot) == 1)
            if new is None:
                return None
            out.append(new)
            changes += new != part
            continue
        if part in slot:  # a code list
            out.append(part)
            continue
        best = None
        for code in slot:
            if all(_substitute(a, (b,), False, True) for a, b in zip(part, code)):
                d = sum(a != b for a, b in zip(part, code))
                if best is None or d < best[1]:
                    best = (code, d)
        if best is None:
            return None
        out.append(best[0])
        changes += best[1]
    return "".join(out), changes


def parse(text: str, region: str = "auto", lines: int | None = None, band_country: str | None = None) -> PlateParse:
    """Normalise one reading (see the module docstring for the rule).

    ``region``: ``"IT"`` (an Italian camera: Italian formats win, letter-position O/Q/U read as
    D/D/V), another country code, or ``"auto"``. ``lines``: 1 or 2 when the reading is known to
    come from a one- or two-line plate. ``band_country``: the EU band's country (or band code).
    """
    raw = clean(text)
    if len(raw) < MIN_CHARS:
        return PlateParse(raw, "none", None, 0, valid=False)
    band = resolve_country(band_country)
    priors = country_priors(region, band)
    home = band or (None if str(region).lower() == "auto" else resolve_country(region))
    fits = []  # (rung, after a band, corrections, -score, parse)

    def collect(cand: str, band_of: str | None) -> None:
        for f in FORMATS:
            if f.country not in priors or (band_of and f.country != band_of):
                continue
            if (lines == 1 and f.lines == 2) or (lines == 2 and f.lines == 1):
                continue
            at_home = f.country == home
            for v in f.variants:
                fit = _fit(cand, v, it_fix=f.country == "IT" and at_home)
                if fit is None:
                    continue
                fitted, k = fit
                rung = _rung(k, at_home, home is not None, f.country == "IT", after_band=band_of is not None)
                if rung is not None and f.fallback:
                    rung = 5
                if rung is not None:
                    score = math.log(priors[f.country]) + math.log(f.prior) - math.log(f.size)
                    p = PlateParse(fitted, f.kind, f.country, k, True, f.name)
                    fits.append((rung, band_of is not None, k, -score, p.text, p))

    collect(raw, None)
    # the blue EU band's letters read in front of the plate ("I", "D", "SK", ...)
    for code, country in EU_BAND_CODES.items():
        if raw[: len(code)].replace("1", "I") == code and len(raw) - len(code) >= MIN_CHARS and country in priors:
            collect(raw[len(code) :], country)
    if fits:
        return min(fits)[-1]
    return PlateParse(raw, "free", None, 0, valid=free_plausible(raw))


def free_plausible(text: str) -> bool:
    """Whether ``text`` (clean), fitting no format, can still be a plate: between
    :data:`MIN_CHARS` and :data:`MAX_CHARS` characters, and not a run of more than
    :data:`MAX_FREE_DIGITS_ONLY` digits (a phone number)."""
    if not MIN_CHARS <= len(text) <= MAX_CHARS:
        return False
    return not (text.isdigit() and len(text) > MAX_FREE_DIGITS_ONLY)


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
