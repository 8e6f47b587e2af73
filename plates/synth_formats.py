"""The plates of the synthetic generator (:mod:`.synth`): text formats, looks, flat drawing.

The flat plate is drawn with Pillow TrueType glyphs (:data:`FONT_FILES`, from the Debian
packages in :data:`FONT_PACKAGES`); where a typeface's file is missing it falls back to
OpenCV's Hershey glyphs and :func:`resolve_typeface` names the face actually drawn.

Each country has a text generator that honours its real format and returns the label (clean
``A-Z0-9``, what a reader must output) and the lines as displayed (with the spaces and dashes
printed on the plate). Band letters, the Italian year digits, the French department number and
the Brazilian "BRASIL" are drawn by the renderer and are never part of the label. Every label
is a plate that exists: it matches a (non-fallback) row of :data:`vigil.plates.formats.FORMATS`
of its country (the reader's table; the tests check it), and where the generator is narrower
than the table it follows the real issuing (e.g. only the Italian series issued so far).

=========== ==================== =====================================================
country     displayed            rule
=========== ==================== =====================================================
IT car      ``AB 123 CD``        issued series A-H, no I, O, Q, U; X trailers, Y local police
IT square   ``ZA`` / ``123AB``   Z series, two lines
IT moto     ``AB`` / ``12345``   two lines
IT moped    ``X2B`` / ``3CD``    X + 5 of the moped row's alphabet, two lines
IT police   ``POLIZIA A1234``    POLIZIA in smaller red letters
IT CC       ``CC AB 123``        Carabinieri, CC in red
DE          ``B MW 1234``        district 1-3 letters, 1-2 letters, 1-4 digits, <= 8
FR          ``AB-123-CD``        SIV, issued series A-H, no I, O, U, number 001-999
ES          ``1234 BCD``         consonants only
SK          ``BA 123AB``         district, 3 digits, 2 letters
CZ          ``1A2 3456``         region digit + letter, a digit or letter, 4 digits
PL          ``WA 12345``         district, serial 5 digits or 1-2 letters (no B, D, I, O, Z)
NL          ``12-BDF-3``         sidecodes 6-11, no vowels
BE          ``1-ABC-123``        red characters
AT          ``W 12345 A``        district, digits, letters, at most 6 after the district
CH          ``ZH 123456``        canton + up to 6 digits, no EU band
GB          ``AB12 CDE``         memory tag, age identifier, three letters; no I, Q
BR          ``ABC-1234``         the old grey plate; Mercosul ``ABC1D23`` (white, BRASIL band)
=========== ==================== =====================================================
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .grammar import IT_LETTERS

__all__ = [
    "FONT_FILES",
    "FONT_PACKAGES",
    "FOREIGN_COUNTRIES",
    "FORMAT_PATTERNS",
    "TWO_LINE_KINDS",
    "TYPEFACES",
    "FlatPlate",
    "PlateLook",
    "blend",
    "draw_plate",
    "plate_look",
    "put_text",
    "random_plate",
    "render_plate",
    "resolve_typeface",
]

BGR = tuple[int, int, int]

FOREIGN_COUNTRIES = ("DE", "FR", "ES", "SK", "CZ", "PL", "NL", "BE", "AT", "CH", "GB", "BR")
TWO_LINE_KINDS = {"IT": ("motorcycle", "moped", "square")}  # foreign countries: ("motorcycle",)

_IT = "".join(sorted(IT_LETTERS))
#: first letters of the Italian car series issued so far (A 1994 ... H 2025; J not yet): the
#: issued part of the ``IT-car`` row of :data:`~vigil.plates.formats.FORMATS`; X (trailers),
#: Y (local police) and Z (square plates) are reserved series of their own
_IT_ISSUED = "ABCDEFGH"
#: Italian moped plates: exactly the alphabet of the ``IT-moped`` row (no 0, 1, A, E, I, O, Q, U)
_IT_MOPED = "23456789BCDFGHJKLMNPRSTVWXYZ"
_AZ = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FR = "ABCDEFGHJKLMNPQRSTVWXYZ"
_FR_ISSUED = "ABCDEFGH"  # SIV series issued so far (AA 2009 ... H 2025)
_ES = "BCDFGHJKLMNPRSTVWXYZ"
_NL = "BDFGHJKLNPRSTVXZ"
_GB = "ABCDEFGHJKLMNOPRSTUVWXYZ"
_PL = "ACEFGHJKLMNPRSTUVWXY"  # Polish serial letters: no B, D, I, O, Z
_PL_SERIALS = ("DDDDD", "DDDDL", "DDDLL", "DLDDD", "DLLDD")  # after a two-letter district
_DIG = "0123456789"

_L = f"[{_IT}]"
_CH_CANTONS = "AG AI AR BE BL BS FR GE GL GR JU LU NE NW OW SG SH SO SZ TG TI UR VD VS ZG ZH".split()
_DE_DISTRICTS = "B M HH K F S D DU HB KA MZ WI N H L DO E BN FFB BGL LDS MOL OHZ WAF RO PA".split()
_SK_DISTRICTS = "BA BL BB KE KS NR PO PP TT TN ZA ZV MI LM".split()
_PL_DISTRICTS = "WA WI KR PO GD WR LU SZ BI EL DW CB".split()
_AT_DISTRICTS = "W G L S I K GU LL WU BN MD KB VB SL".split()
_NL_SIDECODES = ("99-XXX-9", "9-XXX-99", "XX-999-X", "X-999-XX", "XXX-99-X", "XX-99-XX")

#: country -> kind -> regex of the label (foreign two-line plates share the car pattern)
FORMAT_PATTERNS: dict[str, dict[str, str]] = {
    "IT": {
        "car": f"^[{_IT_ISSUED}]{_L}[0-9]{{3}}{_L}{{2}}$",
        "trailer": f"^X{_L}[0-9]{{3}}{_L}{{2}}$",
        "local_police": f"^Y{_L}[0-9]{{3}}{_L}{{2}}$",
        "square": f"^Z{_L}[0-9]{{3}}{_L}{{2}}$",
        "motorcycle": f"^{_L}{{2}}[0-9]{{5}}$",
        "moped": f"^X[{_IT_MOPED}]{{5}}$",
        "police": f"^POLIZIA{_L}[0-9]{{4}}$",
        "carabinieri": f"^CC{_L}{{2}}[0-9]{{3}}$",
    },
    "DE": {"car": r"^(?=[A-Z0-9]{3,8}$)[A-Z]{1,3}[A-Z]{1,2}[1-9][0-9]{0,3}$"},
    "FR": {"car": f"^[{_FR_ISSUED}][{_FR}](?!000)[0-9]{{3}}[{_FR}]{{2}}$"},
    "ES": {"car": f"^[0-9]{{4}}[{_ES}]{{3}}$"},
    "SK": {"car": r"^[A-Z]{2}[0-9]{3}[A-Z]{2}$"},
    "CZ": {"car": r"^[1-9][A-Z][0-9A-Z][0-9]{4}$"},
    "PL": {
        "car": "^[A-Z]{2}(" + "|".join(c.replace("D", "[0-9]").replace("L", f"[{_PL}]") for c in _PL_SERIALS) + ")$"
    },
    "NL": {
        "car": "^("
        + "|".join(s.replace("-", "").replace("9", "[0-9]").replace("X", f"[{_NL}]") for s in _NL_SIDECODES)
        + ")$"
    },
    "BE": {"car": r"^[1-2][A-Z]{3}[0-9]{3}$"},
    "AT": {"car": r"^[A-Z]{1,2}(?=[0-9A-Z]{3,6}$)[0-9]{1,5}[A-Z]{1,3}$"},
    "CH": {"car": f"^({'|'.join(_CH_CANTONS)})[1-9][0-9]{{0,5}}$"},
    "GB": {"car": r"^[A-HJ-PR-Y][A-HJ-PR-Y](0[2-9]|1[0-9]|2[0-4]|5[1-9]|6[0-9]|7[0-4])[A-HJ-PR-Z]{3}$"},
    "BR": {"car": r"^[A-Z]{3}[0-9][0-9A-Z][0-9]{2}$"},
}
for _c in FOREIGN_COUNTRIES:
    FORMAT_PATTERNS[_c]["motorcycle"] = FORMAT_PATTERNS[_c]["car"]

# Italian kinds drawn when none is asked for: mostly one-line cars
_IT_MIX = {
    "car": 0.70,
    "trailer": 0.06,
    "local_police": 0.04,
    "square": 0.04,
    "motorcycle": 0.06,
    "moped": 0.03,
    "police": 0.04,
    "carabinieri": 0.03,
}
_FOREIGN_MIX = {"car": 0.92, "motorcycle": 0.08}


def _pick(rng: np.random.Generator, chars: str, n: int = 1) -> str:
    return "".join(chars[int(i)] for i in rng.integers(0, len(chars), n))


def _digits(rng: np.random.Generator, n: int, lead_nonzero: bool = False) -> str:
    s = _pick(rng, _DIG, n)
    if lead_nonzero and s[0] == "0":
        s = _pick(rng, _DIG[1:]) + s[1:]
    return s


def _choice(rng: np.random.Generator, items) -> str:
    return items[int(rng.integers(0, len(items)))]


def _italian(rng: np.random.Generator, kind: str) -> tuple[str, list[str]]:
    def series(first: str | None = None) -> tuple[str, str, str]:
        if first is None:
            first = _pick(rng, _IT_ISSUED)
        return first + _pick(rng, _IT), _digits(rng, 3), _pick(rng, _IT, 2)

    if kind in ("car", "trailer", "local_police"):
        a, d, b = series({"car": None, "trailer": "X", "local_police": "Y"}[kind])
        return a + d + b, [f"{a} {d} {b}"]
    if kind == "square":
        a, d, b = series("Z")
        return a + d + b, [a, d + b]
    if kind == "motorcycle":
        a, d = _pick(rng, _IT, 2), _digits(rng, 5)
        return a + d, [a, d]
    if kind == "moped":
        rest = _pick(rng, _IT_MOPED, 5)
        return "X" + rest, ["X" + rest[:2], rest[2:]]
    if kind == "police":
        a, d = _pick(rng, _IT), _digits(rng, 4)
        return f"POLIZIA{a}{d}", [f"POLIZIA {a}{d}"]
    if kind == "carabinieri":
        a, d = _pick(rng, _IT, 2), _digits(rng, 3)
        return f"CC{a}{d}", [f"CC {a} {d}"]
    raise ValueError(f"unknown Italian plate kind {kind!r}; known: {sorted(FORMAT_PATTERNS['IT'])}")


def _foreign(rng: np.random.Generator, country: str) -> tuple[list[str], int]:
    """(label, groups of the displayed line, index where a two-line plate breaks the groups)."""
    if country == "DE":
        dist = _choice(rng, _DE_DISTRICTS)
        letters = _pick(rng, _AZ, int(rng.integers(1, 3)))
        n = int(rng.integers(1, min(4, 8 - len(dist) - len(letters)) + 1))
        return [dist, letters, _digits(rng, n, True)], 2
    if country == "FR":
        num = f"{int(rng.integers(1, 1000)):03d}"  # 001-999
        return [_pick(rng, _FR_ISSUED) + _pick(rng, _FR) + "-" + num + "-" + _pick(rng, _FR, 2)], 0
    if country == "ES":
        return [_digits(rng, 4), _pick(rng, _ES, 3)], 1
    if country == "SK":
        return [_choice(rng, _SK_DISTRICTS), _digits(rng, 3) + _pick(rng, _AZ.replace("Q", ""), 2)], 1
    if country == "CZ":
        head = _pick(rng, "123456789") + _pick(rng, "ABCEHJKLMPSTUZ") + _pick(rng, _DIG + "ABCEHJKLMPSTUZ")
        return [head, _digits(rng, 4)], 1
    if country == "PL":
        scheme = _PL_SERIALS[0] if rng.random() < 0.5 else _choice(rng, _PL_SERIALS[1:])
        tail = "".join(_pick(rng, _DIG if c == "D" else _PL) for c in scheme)
        return [_choice(rng, _PL_DISTRICTS), tail], 1
    if country == "NL":
        code = _choice(rng, _NL_SIDECODES)
        text = "".join(_pick(rng, _DIG) if c == "9" else _pick(rng, _NL) if c == "X" else c for c in code)
        return [text], 0
    if country == "BE":
        return [_pick(rng, "12") + "-" + _pick(rng, _AZ, 3) + "-" + _digits(rng, 3)], 0
    if country == "AT":
        nd = int(rng.integers(1, 6))
        nl = int(rng.integers(2 if nd == 1 else 1, min(3, 6 - nd) + 1))
        return [_choice(rng, _AT_DISTRICTS), _digits(rng, nd, True), _pick(rng, _AZ, nl)], 1
    if country == "CH":
        n = int(rng.choice([3, 4, 5, 6], p=[0.1, 0.2, 0.35, 0.35]))
        return [_choice(rng, _CH_CANTONS), _digits(rng, n, True)], 1
    if country == "GB":
        year = int(rng.integers(2, 25)) + (50 if rng.random() < 0.5 else 0)
        tag = _pick(rng, "ABCDEFGHJKLMNOPRSTUVWXY", 2) + f"{year:02d}"
        return [tag, _pick(rng, _GB, 3)], 1
    if country == "BR":
        head = _pick(rng, _AZ, 3)
        if rng.random() < 0.5:  # the old grey plate
            return [head + "-" + _digits(rng, 4)], 0
        return [head + _digits(rng, 1) + _pick(rng, _AZ) + _digits(rng, 2)], 0
    raise ValueError(f"unknown country {country!r}; known: IT, {', '.join(FOREIGN_COUNTRIES)}")


def random_plate(rng: np.random.Generator, country: str = "IT", kind: str | None = None) -> tuple[str, str, list[str]]:
    """A random plate of ``country``: ``(label, kind, lines as displayed)``.

    ``kind`` None draws one from the country's mix (mostly one-line cars). Italian kinds:
    car, trailer, local_police, square, motorcycle, moped, police, carabinieri; foreign ones:
    car, motorcycle (the car format on two lines).
    """
    country = country.upper()
    kinds = FORMAT_PATTERNS.get(country)
    if kinds is None:
        raise ValueError(f"unknown country {country!r}; known: IT, {', '.join(FOREIGN_COUNTRIES)}")
    if kind is None:
        mix = _IT_MIX if country == "IT" else _FOREIGN_MIX
        kind = str(rng.choice(list(mix), p=list(mix.values())))
    if kind not in kinds:
        raise ValueError(f"unknown {country} plate kind {kind!r}; known: {sorted(kinds)}")
    if country == "IT":
        label, lines = _italian(rng, kind)
    else:
        if country == "BR" and kind == "motorcycle":
            groups, brk = _foreign(rng, country)
            groups, brk = [groups[0][:3], groups[0][3:].lstrip("-")], 1
        elif country in ("FR", "NL", "BE"):
            groups, brk = _foreign(rng, country)
            parts = groups[0].split("-")
            groups, brk = ["-".join(parts[:2]), parts[2]], 1
            if kind == "car":
                groups, brk = ["-".join(parts)], 0
        else:
            groups, brk = _foreign(rng, country)
        label = re.sub(r"[^A-Z0-9]", "", "".join(groups))
        if kind == "motorcycle" and brk > 0:
            lines = [" ".join(groups[:brk]), " ".join(groups[brk:])]
        else:
            lines = [" ".join(groups)]
    assert re.match(kinds[kind], label), (country, kind, label)
    return label, kind, lines


@dataclass(frozen=True)
class PlateLook:
    """How a plate is drawn (colours BGR; lengths in plate heights unless said otherwise)."""

    aspect: float  #: plate width / height
    bg: BGR  #: plate background
    fg: BGR  #: characters
    band: str | None = None  #: left blue band with this code (EU stars unless ``band_stars`` False)
    band_stars: bool = True
    right_band: str | None = None  #: "it" (year digits) or "fr" (department number)
    top_band: str | None = None  #: Mercosul: "BRASIL" on a blue band
    top_text: str | None = None  #: small city text above the characters (old Brazilian plate)
    stripes: bool = False  #: Austrian red top and bottom stripes
    shields: bool = False  #: Swiss shields left and right
    seal: str | None = None  #: "de" seals, "shield" (SK, AT) in the first gap of the line
    accent: BGR | None = None  #: colour of a red prefix (POLIZIA, CC)
    border: BGR = (30, 30, 30)
    monospace: bool = False  #: fixed pitch (the Italian font)


_BLUE: BGR = (153, 51, 0)
_WHITE: BGR = (242, 242, 240)
_BLACK: BGR = (25, 25, 25)
_RED: BGR = (30, 30, 190)


def plate_look(country: str, kind: str, label: str, rng: np.random.Generator) -> PlateLook:
    """The look of a plate of ``country`` / ``kind`` (``label`` picks the Brazilian generation)."""
    two = kind in ("motorcycle", "moped", "square")
    if country == "IT":
        if kind == "moped":
            return PlateLook(1.05, _WHITE, _BLACK, monospace=True)
        if kind == "motorcycle":
            return PlateLook(1.15, _WHITE, _BLACK, band="I", monospace=True)
        if kind == "square":
            return PlateLook(1.7, _WHITE, _BLACK, band="I", monospace=True)
        accent = _RED if kind in ("police", "carabinieri") else None
        return PlateLook(4.73, _WHITE, _BLACK, band="I", right_band="it", accent=accent, monospace=True)
    aspect = 1.5 if two else 4.73
    if country == "DE":
        return PlateLook(aspect, _WHITE, _BLACK, band="D", seal=None if two else "de")
    if country == "FR":
        return PlateLook(aspect, _WHITE, _BLACK, band="F", right_band=None if two else "fr")
    if country == "NL":
        return PlateLook(aspect, (20, 195, 245), _BLACK, band="NL")
    if country == "BE":
        return PlateLook(aspect, _WHITE, (40, 20, 150), band="B", border=(40, 20, 150))
    if country == "AT":
        return PlateLook(aspect, _WHITE, _BLACK, band="A", stripes=True, seal=None if two else "shield")
    if country == "SK":
        return PlateLook(aspect, _WHITE, _BLACK, band="SK", seal=None if two else "shield")
    if country == "CH":
        return PlateLook(1.3 if two else 4.55, _WHITE, _BLACK, shields=not two)
    if country == "GB":
        rear = rng.random() < 0.6
        return PlateLook(aspect, (20, 200, 250) if rear else _WHITE, _BLACK, band="UK", band_stars=False)
    if country == "BR":
        if label[4].isalpha():  # Mercosul
            return PlateLook(1.3 if two else 3.08, _WHITE, _BLACK, top_band="BRASIL")
        return PlateLook(1.3 if two else 3.08, (185, 185, 180), _BLACK, top_text="SP - SAO PAULO")
    band = {"ES": "E", "CZ": "CZ", "PL": "PL"}.get(country)
    return PlateLook(aspect, _WHITE, _BLACK, band=band)


#: Debian packages holding :data:`FONT_FILES` (missing ones fall back to Hershey glyphs)
FONT_PACKAGES = ("fonts-opendin", "fonts-roboto-unhinted", "fonts-liberation", "fonts-dejavu-core")
#: typeface -> candidate font files, first existing one wins
FONT_FILES: dict[str, tuple[str, ...]] = {
    # OSP-DIN: a DIN 1451 narrow, the closest free relative of the Italian plate font
    "din": ("/usr/share/fonts/truetype/opendin/OSP-DIN.ttf",),
    "roboto_condensed": (
        "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Bold.ttf",
        "/usr/share/fonts/truetype/roboto/hinted/RobotoCondensed-Bold.ttf",
    ),
    "liberation_narrow": ("/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Bold.ttf",),
    "dejavu_condensed": ("/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",),
}
_HERSHEY = {"hershey_duplex": cv2.FONT_HERSHEY_DUPLEX, "hershey_simplex": cv2.FONT_HERSHEY_SIMPLEX}
TYPEFACES: tuple[str, ...] = (*FONT_FILES, *_HERSHEY)
#: Debian packages holding :data:`TRAIN_FONT_FILES`
TRAIN_FONT_PACKAGES = (
    "fonts-freefont-ttf", "fonts-croscore", "fonts-open-sans", "fonts-urw-base35", "fonts-noto-core",
    "fonts-b612", "fonts-league-spartan", "fonts-dejavu-core", "fonts-dosis", "fonts-bebas-neue", "fonts-cabin",
    "fonts-allerta",
)  # fmt: skip
#: typefaces the plate line recogniser is *trained* on (:mod:`.line_data`): none of them is one of
#: :data:`TYPEFACES`, so the synthetic evaluation, drawn in those, judges it on typefaces it never saw
TRAIN_FONT_FILES: dict[str, tuple[str, ...]] = {
    "free_sans": ("/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",),
    "arimo": ("/usr/share/fonts/truetype/croscore/Arimo-Bold.ttf",),
    "cousine": ("/usr/share/fonts/truetype/croscore/Cousine-Bold.ttf",),
    "open_sans_cond": ("/usr/share/fonts/truetype/open-sans/OpenSans-CondBold.ttf",),
    "open_sans": ("/usr/share/fonts/truetype/open-sans/OpenSans-Bold.ttf",),
    "nimbus_narrow": ("/usr/share/fonts/opentype/urw-base35/NimbusSansNarrow-Bold.otf",),
    "noto_sans": ("/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",),
    "b612": ("/usr/share/fonts/opentype/b612/B612-Bold.otf",),
    "league_spartan": ("/usr/share/fonts/opentype/league-spartan/LeagueSpartan-Bold.otf",),
    "dejavu_mono": ("/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",),
    "dosis": ("/usr/share/fonts/opentype/dosis/Dosis-Bold.otf",),
    "bebas_neue": ("/usr/share/fonts/opentype/bebas-neue/BebasNeue-Bold.otf",),
    "cabin": ("/usr/share/fonts/opentype/cabin/Cabin-SemiBold.otf",),
    "allerta": ("/usr/share/fonts/opentype/allerta/allerta_medium.otf",),
}
DEFAULT_TYPEFACE = "din"
_FALLBACK = "hershey_duplex"
#: extra stroke (fraction of the cap height) and horizontal stretch per typeface
_STROKE = {"din": 0.03, "hershey_duplex": 0.12, "hershey_simplex": 0.1}
_STRETCH = {"din": 1.06, "dejavu_condensed": 0.85}
_TEXT_FACE = "dejavu_condensed"  # band letters, stickers and signs


# --- glyphs ------------------------------------------------------------------------------


def _font_path(typeface: str) -> str | None:
    files = FONT_FILES.get(typeface) or TRAIN_FONT_FILES.get(typeface, ())
    return next((p for p in files if os.path.isfile(p)), None)


def resolve_typeface(typeface: str | None) -> str:
    """The typeface that will be drawn for ``typeface`` (Hershey where its file is missing)."""
    typeface = typeface or DEFAULT_TYPEFACE
    if typeface in _HERSHEY:
        return typeface
    if typeface in TRAIN_FONT_FILES:
        if _font_path(typeface) is None:
            packages = " ".join(TRAIN_FONT_PACKAGES)
            raise ValueError(f"training typeface {typeface!r} is not installed (Debian: {packages})")
        return typeface
    if typeface not in FONT_FILES and typeface not in TYPEFACES:
        raise ValueError(f"unknown typeface {typeface!r}; known: {', '.join(TYPEFACES)}")
    return typeface if _font_path(typeface) else _FALLBACK


@lru_cache(maxsize=128)
def _truetype(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@lru_cache(maxsize=16)
def _cap_metrics(path: str) -> tuple[float, float]:
    """(cap height, cap top) per pixel of font size."""
    _, top, _, bottom = _truetype(path, 200).getbbox("H")
    return (bottom - top) / 200, top / 200


@lru_cache(maxsize=4096)
def _text_mask(text: str, cap: int, typeface: str, path: str | None, stroke: int = -1) -> np.ndarray:
    """Ink mask (uint8, 0-255) of ``text`` with capitals ``cap`` px high.

    Rows span the cap height plus a pad of ``cap // 4`` above and ``cap // 2`` below (descenders);
    columns are cropped to the ink. ``stroke`` -1: the typeface's own extra stroke.
    """
    cap = max(4, int(cap))
    pad_top, pad_bot = cap // 4 + 2, cap // 2 + 2
    sw = max(0, round(cap * _STROKE.get(typeface, 0.0))) if stroke < 0 else stroke
    if path is None:
        font = _HERSHEY.get(typeface, _HERSHEY[_FALLBACK])
        thick = max(1, sw)
        scale = (cap - thick) / 21.0
        (tw, _), _ = cv2.getTextSize(text, font, scale, thick)
        canvas = np.zeros((cap + pad_top + pad_bot, tw + 2 * thick + 4), np.uint8)
        cv2.putText(canvas, text, (thick + 2, pad_top + cap - thick // 2), font, scale, 255, thick, cv2.LINE_AA)
    else:
        ratio, _ = _cap_metrics(path)
        size = max(4, round((cap - 2 * sw) / ratio))
        font = _truetype(path, size)
        x0, _, x1, _ = font.getbbox(text, stroke_width=sw)
        img = Image.new("L", (x1 - x0 + 4, cap + pad_top + pad_bot), 0)
        top = font.getbbox("H")[1]
        ImageDraw.Draw(img).text((2 - x0, pad_top + sw - top), text, font=font, fill=255, stroke_width=sw)
        canvas = np.asarray(img)
    cols = np.flatnonzero(canvas.max(0) > 40)
    out = canvas[:, cols[0] : cols[-1] + 1] if cols.size else canvas[:, :1]
    out.setflags(write=False)
    return out


def _mask(text: str, cap: float, typeface: str, stroke: int = -1) -> np.ndarray:
    return _text_mask(text, int(round(cap)), typeface, _font_path(typeface), stroke)


def blend(img: np.ndarray, mask: np.ndarray, x: float, y: float, color, alpha: float = 1.0) -> None:
    """Paint ``color`` through ``mask`` (0-255) with its top-left corner at (x, y), clipped."""
    x, y = int(round(x)), int(round(y))
    h, w = mask.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, img.shape[1]), min(y + h, img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    a = mask[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.float32)[..., None] * (alpha / 255.0)
    roi = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = (roi * (1 - a) + np.asarray(color, np.float32) * a).astype(np.uint8)


def put_text(img, text, x, y, cap, color, typeface=_TEXT_FACE, max_w=None, center=False) -> None:
    """Text with its cap top at (x, y) (centred on x with ``center``), squeezed to ``max_w``."""
    m = _mask(text, cap, resolve_typeface(typeface), stroke=0)
    if max_w is not None and m.shape[1] > max_w:
        m = cv2.resize(m, (max(1, int(max_w)), m.shape[0]), interpolation=cv2.INTER_AREA)
    blend(img, m, x - (m.shape[1] / 2 if center else 0), y - (int(round(cap)) // 4 + 2), color)


# --- the flat plate ----------------------------------------------------------------------


@dataclass
class FlatPlate:
    """A flat, frontal plate as :func:`draw_plate` returns it."""

    image: np.ndarray  #: (H, W, 3) uint8 BGR
    boxes: np.ndarray  #: (N, 4) float32 x0, y0, x1, y1 of each label character (label order), plate pixels
    typeface: str  #: the typeface actually drawn


def _eu_band(img, x0, x1, y0, y1, code: str, stars: bool) -> None:
    bw, bh = x1 - x0, y1 - y0
    img[int(y0) : int(y1), int(x0) : int(x1)] = (153, 51, 0)
    cx, cy = (x0 + x1) / 2, y0 + min(bh * 0.3, bw * 0.62)
    if stars:
        r, sr = bw * 0.3, max(1, round(bw * 0.05))
        for k in range(12):
            a = 2 * math.pi * k / 12
            cv2.circle(img, (round(cx + r * math.cos(a)), round(cy + r * math.sin(a))), sr, (0, 204, 255), -1)
    cap = min(bw * 0.5, bh * 0.3) * (1.0 if len(code) == 1 else 0.8)
    put_text(img, code, cx, y1 - cap - min(bh * 0.12, bw * 0.3), cap, (255, 255, 255), max_w=bw * 0.85, center=True)


def _emblem(img, kind: str, cx: float, cy: float, cap: float, rng) -> None:
    if kind == "de":  # inspection sticker over the state seal
        r = max(2, round(cap * 0.17))
        sticker = [(40, 160, 240), (60, 170, 60), (40, 100, 230), (200, 120, 40)][int(rng.integers(0, 4))]
        cv2.circle(img, (round(cx), round(cy - r * 1.25)), r, sticker, -1, cv2.LINE_AA)
        cv2.circle(img, (round(cx), round(cy + r * 1.25)), r, (120, 110, 100), -1, cv2.LINE_AA)
    else:  # a small coat of arms: a red shield with a white cross or band
        w, h = cap * 0.3, cap * 0.4
        x0, y0 = cx - w / 2, cy - h / 2
        pts = np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h * 0.6], [cx, y0 + h], [x0, y0 + h * 0.6]])
        cv2.fillPoly(img, [np.round(pts).astype(np.int32)], (40, 40, 200), cv2.LINE_AA)
        t = max(1, round(w * 0.18))
        cv2.line(img, (round(cx), round(y0 + h * 0.15)), (round(cx), round(y0 + h * 0.8)), (240, 240, 240), t)
        cv2.line(
            img,
            (round(x0 + w * 0.2), round(y0 + h * 0.4)),
            (round(x0 + w * 0.8), round(y0 + h * 0.4)),
            (240, 240, 240),
            t,
        )


def draw_plate(lines, country: str, kind: str, height: int, rng, typeface: str | None, look: PlateLook) -> FlatPlate:
    """The flat plate and its character boxes (see :func:`render_plate`)."""
    face = resolve_typeface(typeface)
    H = max(16, int(height))
    W = max(H, round(H * look.aspect))
    img = np.empty((H, W, 3), np.uint8)
    img[:] = look.bg
    shade = np.linspace(rng.uniform(0.9, 1.0), rng.uniform(0.95, 1.0), W, dtype=np.float32)[None, :, None]
    img[:] = (img * shade).astype(np.uint8)
    one_line = len(lines) == 1
    x0, x1, y0, y1 = 0.0, float(W), 0.0, float(H)
    if look.stripes:
        s = max(1, round(H * 0.07))
        img[:s] = img[-s:] = (40, 40, 200)
        y0, y1 = y0 + s, y1 - s
    if look.band:
        bw = min(H * 0.41, W * 0.16)
        _eu_band(img, 0, bw, 0, H, look.band, look.band_stars)
        x0 = bw
    if look.right_band:
        bw = H * 0.41
        img[:, int(W - bw) :] = (153, 51, 0)
        if look.right_band == "it" and rng.random() < 0.7:
            put_text(img, f"{int(rng.integers(0, 25)):02d}", W - bw / 2, H * 0.12, H * 0.14, (0, 204, 255), center=True)
        if look.right_band == "fr":
            cv2.rectangle(
                img, (int(W - bw * 0.75), int(H * 0.1)), (int(W - bw * 0.25), int(H * 0.4)), (90, 90, 220), -1
            )
            dept = f"{int(rng.integers(1, 96)):02d}"
            put_text(img, dept, W - bw / 2, H * 0.55, H * 0.26, (255, 255, 255), max_w=bw * 0.8, center=True)
        x1 = W - bw
    if look.top_band:
        tb = H * 0.24
        img[: int(tb)] = (150, 60, 10)
        put_text(img, look.top_band, W / 2, tb * 0.22, tb * 0.5, (255, 255, 255), center=True)
        cv2.rectangle(img, (int(W - tb * 1.6), int(tb * 0.2)), (int(W - tb * 0.3), int(tb * 0.8)), (60, 150, 0), -1)
        y0 = tb
    if look.top_text:
        put_text(img, look.top_text, W / 2, H * 0.05, H * 0.11, (40, 40, 40), max_w=W * 0.8, center=True)
        y0 = H * 0.2
    if look.shields:
        sw = H * 0.3
        cv2.rectangle(img, (round(H * 0.08), round(H * 0.3)), (round(H * 0.08 + sw), round(H * 0.7)), (40, 40, 210), -1)
        cx, cy = H * 0.08 + sw / 2, H * 0.5
        for dx, dy in ((sw * 0.3, sw * 0.09), (sw * 0.09, sw * 0.3)):
            cv2.rectangle(img, (round(cx - dx), round(cy - dy)), (round(cx + dx), round(cy + dy)), (255, 255, 255), -1)
        canton = (round(W - H * 0.08 - sw), round(H * 0.3)), (round(W - H * 0.08), round(H * 0.7))
        cv2.rectangle(img, *canton, (200, 120, 30), -1)
        x0, x1 = H * 0.08 + sw, W - H * 0.08 - sw
    border = max(1, round(H * (0.025 if one_line else 0.018)))
    cv2.rectangle(img, (0, 0), (W - 1, H - 1), look.border, border)
    margin = H * 0.06
    x0, x1 = x0 + margin, x1 - margin
    y0, y1 = y0 + border, y1 - border
    area_h = y1 - y0
    if one_line:
        caps = [area_h * 0.74]
        centers = [(y0 + y1) / 2]
    else:
        caps = [area_h * 0.38] * 2
        centers = [y0 + area_h * 0.27, y0 + area_h * 0.73]
    boxes: list[tuple[float, float, float, float]] = []
    stretch = _STRETCH.get(face, 1.0) * rng.uniform(0.96, 1.04)
    for line, cap, cy in zip(lines, caps, centers):
        boxes += _draw_line(img, line, cap, cy, x0, x1, face, stretch, look, rng)
    return FlatPlate(img, np.asarray(boxes, np.float32).reshape(-1, 4), face)


def _draw_line(img, line: str, cap: float, cy: float, x0: float, x1: float, face, stretch, look, rng) -> list:
    """Draw one line of groups centred in [x0, x1]; returns the boxes of its letters and digits."""
    items = []  # (mask, advance, colour, y offset, is label char) or (None, gap, emblem, ...)
    groups = line.split(" ")
    for gi, group in enumerate(groups):
        small = look.accent is not None and group in ("POLIZIA",)
        gcap = cap * (0.55 if small else 1.0)
        color = look.accent if look.accent is not None and group in ("POLIZIA", "CC") else look.fg
        for ch in group:
            m = _mask(ch, gcap, face)
            w = m.shape[1] * stretch
            adv = max(w, cap * 0.6) if look.monospace and not small else w
            items.append((m, w, adv + cap * (0.05 if small else 0.09), color, (cap - gcap) / 2, ch.isalnum()))
        if gi < len(groups) - 1:
            emblem = look.seal if gi == 0 else None
            items.append((None, 0.0, cap * (0.8 if emblem else 0.4), emblem, 0.0, False))
    total = sum(it[2] for it in items) - (cap * 0.09 if items else 0)
    squeeze = min(1.0, (x1 - x0) / max(total, 1.0))
    x = x0 + ((x1 - x0) - total * squeeze) / 2
    top = cy - cap / 2
    boxes = []
    for m, w, adv, color, dy, is_char in items:
        if m is None:
            if color:
                _emblem(img, color, x + (adv * squeeze - cap * 0.09 * squeeze) / 2, cy, cap, rng)
        else:
            gw = max(1, round(w * squeeze))
            gm = cv2.resize(m, (gw, m.shape[0]), interpolation=cv2.INTER_AREA) if gw != m.shape[1] else m
            gx = x + (adv - cap * 0.09) * squeeze / 2 - gw / 2 if look.monospace else x
            pad = int(round(cap - 2 * dy)) // 4 + 2
            gy = top + dy - pad
            blend(img, gm, gx, gy, color)
            if is_char:
                rows = np.flatnonzero(gm.max(1) > 60)
                r0, r1 = (rows[0], rows[-1] + 1) if rows.size else (pad, pad + cap)
                boxes.append((gx, gy + r0, gx + gw, gy + r1))
        x += adv * squeeze
    return boxes


def render_plate(
    lines, country: str, kind: str, height: int, rng: np.random.Generator, typeface: str | None = None
) -> np.ndarray:
    """The flat, frontal plate (``(height, width, 3)`` uint8 BGR; width from the plate's aspect).

    ``lines``: the displayed lines (``["AB 123 CD"]`` or ``["AB", "12345"]``; a space is a gap);
    ``typeface``: one of :data:`TYPEFACES` (None: the default, the Italian-like ``din``).
    """
    label = "".join(c for c in "".join(lines) if c.isalnum())
    look = plate_look(country.upper(), kind, label.ljust(5, "0"), rng)
    return draw_plate(list(lines), country.upper(), kind, height, rng, typeface, look).image
