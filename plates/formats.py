"""The table of plate formats: data only, one place.

Every format the plate reader knows is one :class:`PlateFormat` row of :data:`FORMATS`. Both
the text grammar (:mod:`vigil.plates.grammar`) and the CTC decoder (:mod:`vigil.plates.decode`)
read this table; nothing else defines a plate format.

Pattern syntax (one string per row; no spaces):

=================== ==========================================================================
``L``               a letter of the row's ``letters`` (e.g. Italian series: no I, O, Q, U)
``D``               a digit
``A``               a letter of ``letters`` or a digit
``[...]``           one character of an explicit set; ranges allowed (``[A-HJ]``, ``[2-9]``)
``'POLIZIA'``       literal characters
``{NAME}``          one code of :data:`CODE_LISTS` (all codes of a list have the same length)
``{m,n}`` ``{m}``   repeat the previous item m..n (or m) times; ``?`` is ``{0,1}``
``(X|Y|...)``       alternatives (``|`` inside parentheses)
``|``               at top level: the line break of a two-line plate (``LL|DDDDD``: top ``LL``)
=================== ==========================================================================

A variable-length pattern expands into fixed-length :class:`Variant` s (the decoder runs one
constrained decoding per variant; ``min_len``/``max_len`` bound the expansion).

``lines``: ``1`` one-line plates only, ``2`` two-line plates only (the pattern's ``|`` is the
split), ``None`` either (as two lines the split is free: the decoder reads the lines one after
the other). ``prior``: the row's share of its country's plates (rough, see below).

``junk``: positions where the country's plates carry a sticker or an emblem between two groups
(Czech inspection and emission stickers after the first group of three, the Slovak coat of arms
between the district and the digits, ...), which the recogniser may read as one extra
character: ``((k, prior), ...)``, ``k`` the characters before it (a group boundary of every
variant), ``prior`` the share of readings that carry the glyph. The decoder then also tries the
row with one character of any class there, dropped from the text. Only where a country's
plates carry something there: there is no generic junk position.

How sure the rows are (say so in ``note`` when unsure): the Italian civil formats (car, trailer,
local police, motorcycle) and the Italian issued-series limit come from press and ministry-derived
sources; the Italian special formats (police ... diplomatic) are carried over from the previous
grammar and not checked against the regulations; foreign rows are the common current formats
from public descriptions, simplified (no vanity plates, no old systems unless noted). Priors
and traffic weights are guesses to be replaced by counts from real cameras.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property

__all__ = [
    "LETTERS",
    "DIGITS",
    "IT_LETTERS",
    "CODE_LISTS",
    "PlateFormat",
    "Variant",
    "FORMATS",
    "EU_BAND_CODES",
    "AUTO_WEIGHTS",
    "HOME_SHARE",
    "BAND_SHARE",
    "SAME_O0_FONT",
    "FREE_PRIOR",
    "country_priors",
    "formats_for",
    "resolve_country",
    "parse_pattern",
    "region_code",
]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
#: Italian series letters: no I, O, Q, U
IT_LETTERS = "ABCDEFGHJKLMNPRSTVWXYZ"
#: Italian moped plates: 0, 1, A, E, I, O, Q, U are said not to be used (low-confidence source)
_IT_MOPED = "23456789BCDFGHJKLMNPRSTVWXYZ"
#: French SIV series: no I, O, U
_FR_LETTERS = "ABCDEFGHJKLMNPQRSTVWXYZ"
#: Spanish series since 2000: consonants, no Ñ, Q
_ES_LETTERS = "BCDFGHJKLMNPRSTVWXYZ"
#: Dutch sidecodes 4-14: consonants without C, M, Q, W, Y (also applied to sidecodes 1-3: simplification)
_NL_LETTERS = "BDFGHJKLNPRSTVXZ"
#: Polish serial part: no B, D, I, O, Z
_PL_SERIAL = "ACEFGHJKLMNPRSTUVWXY"
#: Polish voivodeship letters
_PL_VOIV = "BCDEFGKLNOPRSTWZ"
#: British current series: no I, Q
_GB_LETTERS = "ABCDEFGHJKLMNOPRSTUVWXYZ"
#: Norway: I, O, Q not used (unverified)
_NO_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
#: Czech region letters (second character since 2001)
_CZ_REGIONS = "ABCEHJKLMPSTUZ"
#: Bulgarian plates use the Latin letters that look like Cyrillic ones
_BG_LETTERS = "ABCEHKMOPTXY"

CODE_LISTS: dict[str, tuple[str, ...]] = {
    # Slovak district codes (1997-2022 system), from public lists; the extra codes of the big
    # cities are partial (BL, BT for Bratislava are sure; others may be missing)
    "SK_DISTRICTS": tuple(
        "BA BL BT BB BJ BN BR BS BY CA DK DS DT GA GL HC HE IL KA KE KK KM KN KS LC LE LM LV "
        "MA MI ML MT MY NM NO NR NZ PB PD PE PK PN PO PP PT PU RA RK RS RV SA SB SC SE SI SK "
        "SL SN SO SP SV TN TO TR TS TT TV VK VT ZA ZC ZH ZM ZV".split()
    ),
    # Swiss cantons (26)
    "CH_CANTONS": tuple("AG AI AR BE BL BS FR GE GL GR JU LU NE NW OW SG SH SO SZ TG TI UR VD VS ZG ZH".split()),
    # Romanian counties with two-letter codes (Bucharest, "B", has its own rows)
    "RO_COUNTIES": tuple(
        "AB AG AR BC BH BN BR BT BV BZ CJ CL CS CT CV DB DJ GJ GL GR HD HR IF IL IS MH MM MS "
        "NT OT PH SB SJ SM SV TL TM TR VL VN VS".split()
    ),
}

#: EU band (and oval) country letters → ISO 3166 country code
EU_BAND_CODES: dict[str, str] = {
    "I": "IT",
    "D": "DE",
    "F": "FR",
    "E": "ES",
    "P": "PT",
    "B": "BE",
    "NL": "NL",
    "L": "LU",
    "A": "AT",
    "CH": "CH",
    "FL": "LI",
    "SK": "SK",
    "CZ": "CZ",
    "PL": "PL",
    "H": "HU",
    "RO": "RO",
    "BG": "BG",
    "HR": "HR",
    "SLO": "SI",
    "GR": "GR",
    "CY": "CY",
    "M": "MT",
    "UK": "GB",
    "GB": "GB",
    "IRL": "IE",
    "DK": "DK",
    "S": "SE",
    "N": "NO",
    "FIN": "FI",
    "IS": "IS",
    "EST": "EE",
    "LV": "LV",
    "LT": "LT",
    "MC": "MC",
    "RSM": "SM",
    "V": "VA",
    "SRB": "RS",
    "MNE": "ME",
    "BIH": "BA",
    "NMK": "MK",
    "AL": "AL",
    "UA": "UA",
    "MD": "MD",
    "TR": "TR",
}

#: relative weight of each country's plates when no region is set ("auto") and, without the
#: home country, the split of the foreign share when one is; guesses for Italian roads
AUTO_WEIGHTS: dict[str, float] = {
    "IT": 10.0,
    "DE": 2.0,
    "FR": 2.0,
    "CH": 2.0,
    "AT": 1.5,
    "RO": 1.0,
    "PL": 1.0,
    "ES": 1.0,
    "NL": 1.0,
    "BE": 0.7,
    "CZ": 0.7,
    "SK": 0.5,
    "HU": 0.5,
    "BG": 0.5,
    "GB": 0.5,
    "PT": 0.3,
    "NO": 0.2,
    "BR": 0.1,
}
#: share of the home country's plates when a region (a country) is set
HOME_SHARE = 0.9
#: countries whose plate font draws the letter O like the digit 0 and I like 1 (the old
#: Czechoslovak font; the British Charles Wright font, where only the position tells them
#: apart): their formats are decoded with the stronger 0/O, 1/I channel of
#: :data:`vigil.plates.decode.CONFUSION`
SAME_O0_FONT = frozenset({"SK", "CZ", "GB"})
#: width / height of the one-line plates of most countries in the table (EU 520 x 110 mm; GB,
#: NO and CH front plates are within 4 % of it)
PLATE_ASPECT_EU = 520 / 110
#: the same for the countries whose one-line plates are shaped otherwise (Brazil: 400 x 130 mm,
#: old grey and Mercosul alike)
PLATE_ASPECT = {"BR": 400 / 130}
#: what a plate's look can tell the reader (each found by :mod:`vigil.plates.localise`):
#: ``top_band``, a blue band across the plate's top (Mercosul; ``find_top_band``)
LOOKS = ("top_band",)
#: share of the band's country when the EU band's letters were read
BAND_SHARE = 0.9
#: prior of a plate that fits no row of the table (vanity plates, old systems, other countries)
FREE_PRIOR = 0.02


@dataclass(frozen=True)
class Variant:
    """One fixed-length expansion of a format: ``slots[i]`` holds the codes allowed there
    (single characters, or the equal-length codes of a code list)."""

    fmt: PlateFormat
    slots: tuple[tuple[str, ...], ...]
    split: int | None  #: characters on the top line (two-line formats), else None

    @cached_property
    def length(self) -> int:
        return sum(len(s[0]) for s in self.slots)

    @property
    def size(self) -> int:
        """How many strings the variant allows."""
        return math.prod(len(s) for s in self.slots)

    @cached_property
    def positions(self) -> tuple[frozenset[str], ...]:
        """Per character position, the characters allowed there (code lists: any code's)."""
        out = []
        for slot in self.slots:
            for j in range(len(slot[0])):
                out.append(frozenset(c[j] for c in slot))
        return tuple(out)

    def match(self, text: str) -> bool:
        if len(text) != self.length:
            return False
        i = 0
        for slot in self.slots:
            n = len(slot[0])
            if text[i : i + n] not in slot:
                return False
            i += n
        return True


@dataclass(frozen=True)
class PlateFormat:
    """One row of the format table (see the module docstring for the pattern syntax)."""

    country: str  #: ISO 3166 alpha-2
    kind: str  #: car, trailer, motorcycle, moped, police, ...
    pattern: str
    lines: int | None = 1
    prior: float = 1.0  #: share of the country's plates
    letters: str = LETTERS  #: what ``L`` and ``A`` mean in this row
    name: str = ""  #: unique; default ``country-kind``
    example: str = ""  #: a plate the pattern must match (checked by the tests)
    min_len: int = 1
    max_len: int = 16
    note: str = ""
    #: a row tried only when no other row fits (text path); the decoder just uses its low prior
    fallback: bool = False
    #: ``((characters before, prior), ...)``: a sticker or emblem read as one junk character
    junk: tuple[tuple[int, float], ...] = ()
    #: what the row's plates carry that the reader can see (:data:`LOOKS`): a look seen on a
    #: plate is evidence for the rows that carry it (:data:`vigil.plates.decode.LOOK_EVIDENCE`)
    looks: frozenset[str] = frozenset()

    def __post_init__(self):
        if not self.name:
            object.__setattr__(self, "name", f"{self.country}-{self.kind}")
        if not set(self.looks) <= set(LOOKS):
            unknown = sorted(set(self.looks) - set(LOOKS))
            raise ValueError(f"format {self.name}: unknown looks {unknown}")

    @cached_property
    def variants(self) -> tuple[Variant, ...]:
        out, seen = [], set()
        for slots in parse_pattern(self.pattern, self.letters):
            split = None
            if "|" in slots:
                k = slots.index("|")
                split = sum(len(s[0]) for s in slots[:k])
                slots = slots[:k] + slots[k + 1 :]
            slots = tuple(slots)
            v = Variant(self, slots, split)
            if not self.min_len <= v.length <= self.max_len or (slots, split) in seen:
                continue
            seen.add((slots, split))
            out.append(v)
        return tuple(out)

    @cached_property
    def size(self) -> int:
        """How many strings the format allows (all variants)."""
        return sum(v.size for v in self.variants)

    def match(self, text: str) -> Variant | None:
        for v in self.variants:
            if v.match(text):
                return v
        return None


# --- pattern parser ---------------------------------------------------------------------


def _char_set(body: str) -> tuple[str, ...]:
    chars, i = set(), 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            chars.update(chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return tuple(sorted(chars))


def parse_pattern(pattern: str, letters: str = LETTERS) -> list[list]:
    """All fixed-length expansions of ``pattern``: lists of slots (tuples of codes) and ``"|"``."""
    pos = 0

    def seq(top: bool) -> list[list]:
        nonlocal pos
        alts: list[list] = [[]]
        while pos < len(pattern):
            ch = pattern[pos]
            if ch == ")" or (ch == "|" and not top):
                break
            if ch == "|":
                pos += 1
                alts = [a + ["|"] for a in alts]
                continue
            item = atom()
            lo, hi = quant()
            reps = []
            for n in range(lo, hi + 1):
                reps.extend([sum(p, []) for p in itertools.product(item, repeat=n)] if n else [[]])
            alts = [a + r for a in alts for r in reps]
        return alts

    def atom() -> list[list]:
        nonlocal pos
        ch = pattern[pos]
        if ch == "L":
            pos += 1
            return [[tuple(sorted(set(letters)))]]
        if ch == "D":
            pos += 1
            return [[tuple(DIGITS)]]
        if ch == "A":
            pos += 1
            return [[tuple(sorted(set(letters) | set(DIGITS)))]]
        if ch == "[":
            end = pattern.index("]", pos)
            body, pos = pattern[pos + 1 : end], end + 1
            return [[_char_set(body)]]
        if ch == "'":
            end = pattern.index("'", pos + 1)
            lit, pos = pattern[pos + 1 : end], end + 1
            return [[(c,) for c in lit]]
        if ch == "{":
            end = pattern.index("}", pos)
            name, pos = pattern[pos + 1 : end], end + 1
            codes = CODE_LISTS[name]
            if len({len(c) for c in codes}) != 1:
                raise ValueError(f"code list {name} mixes lengths")
            return [[tuple(codes)]]
        if ch == "(":
            pos += 1
            alts = seq(False)
            while pos < len(pattern) and pattern[pos] == "|":
                pos += 1
                alts += seq(False)
            if pos >= len(pattern) or pattern[pos] != ")":
                raise ValueError(f"unclosed group in {pattern!r}")
            pos += 1
            return alts
        raise ValueError(f"bad pattern {pattern!r} at {pos}: {ch!r}")

    def quant() -> tuple[int, int]:
        nonlocal pos
        if pos < len(pattern) and pattern[pos] == "?":
            pos += 1
            return 0, 1
        if pos < len(pattern) and pattern[pos] == "{" and pattern[pos + 1].isdigit():
            end = pattern.index("}", pos)
            parts = pattern[pos + 1 : end].split(",")
            pos = end + 1
            return int(parts[0]), int(parts[-1])
        return 1, 1

    out = seq(True)
    if pos != len(pattern):
        raise ValueError(f"bad pattern {pattern!r} at {pos}")
    return out


# --- the table --------------------------------------------------------------------------

_F = PlateFormat
FORMATS: tuple[PlateFormat, ...] = (
    # Italy. Car series advance by the first letter (A 1994 ... G 2019/20, H spring 2025); the
    # first letter is limited to the series issued so far plus the next one (J: I is skipped).
    # Widen it when Italy reaches K. X = trailers (2013), Y = local police, Z = square plates.
    _F("IT", "car", "[A-HJ]LDDDLL", 1, 0.82, IT_LETTERS, "IT-car", "GH123AB", note="issued series A-H (2025) + J"),
    _F(
        "IT",
        "car",
        "[K-NP-TVW]LDDDLL",
        1,
        0.002,
        IT_LETTERS,
        "IT-car-unissued",
        "LY655PB",
        note="series not issued yet (2025): a low prior, so a stale table degrades instead of failing",
        fallback=True,
    ),
    _F("IT", "trailer", "'X'LDDDLL", 1, 0.04, IT_LETTERS, "IT-trailer", "XA123BC"),
    _F("IT", "car", "'Y'LDDDLL", 1, 0.005, IT_LETTERS, "IT-local-police", "YA123BC"),
    _F(
        "IT",
        "car",
        "'Z'LDDDLL",
        None,
        0.02,
        IT_LETTERS,
        "IT-square",
        "ZA123BC",
        note="two-line square plate, letters on top and digits below; the exact split is unverified",
    ),
    _F("IT", "motorcycle", "LL|DDDDD", 2, 0.09, IT_LETTERS, "IT-motorcycle", "AB12345"),
    _F(
        "IT",
        "moped",
        f"'X'[{_IT_MOPED}]{{2}}|[{_IT_MOPED}]{{3}}",
        2,
        0.01,
        IT_LETTERS,
        "IT-moped",
        "X2B4CD",
        note="low-confidence source: 6 characters on two lines of three, starting with X",
    ),
    _F("IT", "police", "'POLIZIA'LDDDD", None, 0.001, IT_LETTERS, "IT-police", "POLIZIAF1234"),
    _F("IT", "carabinieri", "'CC'LLDDD", None, 0.001, IT_LETTERS, "IT-carabinieri", "CCAB123"),
    _F("IT", "finanza", "'GDIF'DDDLL", None, 0.0005, IT_LETTERS, "IT-finanza", "GDIF123AB"),
    _F("IT", "army", "'EI'LLDDD", None, 0.0005, IT_LETTERS, "IT-army", "EIAB123"),
    _F("IT", "fire", "'VF'DDDDD", None, 0.0005, IT_LETTERS, "IT-fire", "VF12345"),
    _F("IT", "red_cross", "'CRI'DDDLL", None, 0.0003, IT_LETTERS, "IT-red-cross", "CRI123AB"),
    _F("IT", "diplomatic", "'CD'DDDDD", None, 0.0005, IT_LETTERS, "IT-diplomatic", "CD12345", note="unverified"),
    # Slovakia: district code + 3 digits + 2 letters (1997-2022); state-wide series since 2023
    # started again at AA (first letter A, B allowed for progress)
    # The coat of arms stands between the two letters and the digits (junk: read as a glyph in
    # maybe a tenth of the crops; a guess)
    _F("SK", "car", "{SK_DISTRICTS}DDDLL", None, 0.8, LETTERS, "SK-district", "RK099AN", junk=((2, 0.1),)),
    _F("SK", "car", "[AB]LDDDLL", None, 0.2, LETTERS, "SK-national", "AA123BC", note="since 2023", junk=((2, 0.1),)),
    # Czech Republic since 2001: digit, region letter, digit or letter, 4 digits; rear plates
    # carry the inspection and emission stickers between the groups (junk: common, a guess)
    _F(
        "CZ",
        "car",
        f"D[{_CZ_REGIONS}]ADDDD",
        None,
        1.0,
        LETTERS,
        "CZ-car",
        "4B04979",
        note="3rd position: unverified",
        junk=((3, 0.3),),
    ),
    # Germany: district (1-3 letters) + 1-2 letters + 1-4 digits (+E electric, H historic), at
    # most 8 characters; the district list is not checked, so any 2-5 letters pass
    _F("DE", "car", "L{2,5}D{1,4}[EH]?", None, 1.0, LETTERS, "DE-car", "MAB1234", max_len=8),
    # Austria: district (capitals 1 letter, others 2) + serial of 1-5 digits and 1-3 letters
    # (3-6 characters); vanity plates (letters first) are not covered
    _F("AT", "car", "[BEGIKLPSW]D{1,5}L{1,3}", None, 0.4, LETTERS, "AT-capital", "W12345A", min_len=4, max_len=7),
    _F("AT", "car", "LLD{1,5}L{1,3}", None, 0.6, LETTERS, "AT-district", "FK1ABC", min_len=5, max_len=8),
    # Poland: voivodeship + 1-2 letters (county), then a serial with at most two letters; the
    # serial schemes of three-letter codes are approximate
    _F(
        "PL",
        "car",
        f"[{_PL_VOIV}][A-Z](DDDDD|DDDDL|DDDLL|DLDDD|DLLDD)",
        None,
        0.6,
        _PL_SERIAL,
        "PL-2",
        "WA12345",
    ),
    _F("PL", "car", f"[{_PL_VOIV}][A-Z]{{2}}(DDDDD|DDDDL|DDDLL|LDDD|DDLL)", None, 0.4, _PL_SERIAL, "PL-3", "KRA12345"),
    # France SIV (2009): issued series A-H (H in 2025) + J
    _F("FR", "car", "[A-HJ]LDDDLL", None, 1.0, _FR_LETTERS, "FR-car", "GH123AB", note="issued series A-H + J"),
    # Spain since 2000: 4 digits + 3 consonants
    _F("ES", "car", "DDDDLLL", None, 1.0, _ES_LETTERS, "ES-car", "1234BCD"),
    # Netherlands: sidecodes 1-14 (6 characters)
    _F(
        "NL",
        "car",
        "(LLDDDD|DDDDLL|DDLLDD|LLDDLL|LLLLDD|DDLLLL|DDLLLD|DLLLDD|LLDDDL|LDDDLL|LLLDDL|LDDLLL|DLLDDD|DDDLLD)",
        None,
        1.0,
        _NL_LETTERS,
        "NL-car",
        "12XBL3",
    ),
    # Belgium since 2010: 1-ABC-123 (first digit 1 or 2); 1973-2008: ABC-123
    _F("BE", "car", "[12]LLLDDD", None, 0.8, LETTERS, "BE-car", "1ABC123"),
    _F("BE", "car", "LLLDDD", None, 0.2, LETTERS, "BE-old", "ABC123"),
    # Switzerland: canton + 1-6 digits
    _F("CH", "car", "{CH_CANTONS}D{1,6}", None, 1.0, LETTERS, "CH-car", "ZH123456"),
    # United Kingdom since 2001: memory tag, age identifier, 3 letters
    _F("GB", "car", "LLDDLLL", None, 1.0, _GB_LETTERS, "GB-car", "AB12CDE"),
    # Norway: 2 letters + 5 digits
    _F("NO", "car", "LLDDDDD", None, 1.0, _NO_LETTERS, "NO-car", "EL12345"),
    # Portugal: since 2020 AA-00-AA; 1992-2005 00-00-AA; 2005-2020 00-AA-00
    _F("PT", "car", "(LLDDLL|DDDDLL|DDLLDD|LLDDDD)", None, 1.0, LETTERS, "PT-car", "AB12CD"),
    # Hungary: ABC-123 (1990-2022), AA AA-123 (2022-)
    _F("HU", "car", "LLL(L)?DDD", None, 1.0, LETTERS, "HU-car", "ABC123"),
    # Romania: county + 2 digits + 3 letters; Bucharest B + 2-3 digits + 3 letters
    _F("RO", "car", "{RO_COUNTIES}DDLLL", None, 0.8, LETTERS, "RO-county", "CJ12ABC"),
    _F("RO", "car", "'B'D{2,3}LLL", None, 0.2, LETTERS, "RO-bucharest", "B123ABC"),
    # Bulgaria: province (1-2 letters) + 4 digits + 2 letters, Cyrillic-like Latin letters
    _F("BG", "car", "L{1,2}DDDDLL", None, 1.0, _BG_LETTERS, "BG-car", "CA1234AB"),
    # Brazil: old (1990-2018) ABC1234; Mercosul (2018-) ABC1D23
    _F("BR", "car", "LLLDDDD", None, 0.6, LETTERS, "BR-old", "ABC1234"),
    _F("BR", "car", "LLLDLDD", None, 0.4, LETTERS, "BR-mercosul", "ABC1D23", looks=frozenset({"top_band"})),
)
del _F


def formats_for(countries=None, formats: tuple[PlateFormat, ...] = FORMATS) -> tuple[PlateFormat, ...]:
    """The rows of the given countries (all rows when ``countries`` is None)."""
    if countries is None:
        return tuple(formats)
    wanted = set(countries)
    return tuple(f for f in formats if f.country in wanted)


def resolve_country(code: str | None) -> str | None:
    """An ISO country code from an ISO code or an EU band code (``"I"`` → ``"IT"``)."""
    if not code:
        return None
    code = str(code).strip().upper()
    if code in {f.country for f in FORMATS}:
        return code
    return EU_BAND_CODES.get(code, code)


def country_priors(region: str = "auto", band_country: str | None = None) -> dict[str, float]:
    """Prior share of each country's plates.

    ``region`` a country code: :data:`HOME_SHARE` for it, the rest split by :data:`AUTO_WEIGHTS`
    (foreign traffic at an Italian gate). ``"auto"``: :data:`AUTO_WEIGHTS` normalised (European
    traffic with no home country). ``band_country`` set (the EU band's letters were read): that
    country gets :data:`BAND_SHARE`, the others share the rest as above (a misread band letter,
    "I" read as "D", must not shut out the plate's own formats).
    """
    band_country = resolve_country(band_country)
    if band_country:
        rest = country_priors(region, None)
        out = {c: (1 - BAND_SHARE) * p for c, p in rest.items()}
        out[band_country] = out.get(band_country, 0.0) + BAND_SHARE
        return out
    weights = dict(AUTO_WEIGHTS)
    for f in FORMATS:
        weights.setdefault(f.country, 0.1)
    home = None if region is None or str(region).lower() == "auto" else resolve_country(region)
    if home is None:
        total = sum(weights.values())
        return {c: w / total for c, w in weights.items()}
    rest = sum(w for c, w in weights.items() if c != home)
    out = {c: (1 - HOME_SHARE) * w / rest for c, w in weights.items() if c != home}
    out[home] = HOME_SHARE
    return out


def region_code(region: str) -> str:
    """A camera region as the decoder takes it: ``"auto"``, or a country code of the table
    (band codes such as ``I`` or ``D`` accepted); ValueError naming the known ones otherwise."""
    if str(region).lower() == "auto":
        return "auto"
    code = resolve_country(str(region).upper())
    known = sorted({f.country for f in FORMATS})
    if code not in known:
        raise ValueError(f"unknown plate region {region!r}: auto or one of {', '.join(known)}")
    return code
