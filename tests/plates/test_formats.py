"""The plate format table: pattern syntax, expansion, the rows' own examples, priors, band codes."""

import math

import pytest

from vigil.plates import formats as F
from vigil.plates.formats import (
    CODE_LISTS,
    EU_BAND_CODES,
    FORMATS,
    IT_LETTERS,
    PlateFormat,
    country_priors,
    parse_pattern,
    resolve_country,
)


def _by_name(name: str) -> PlateFormat:
    return next(f for f in FORMATS if f.name == name)


def test_names_are_unique_and_every_row_matches_its_example():
    names = [f.name for f in FORMATS]
    assert len(names) == len(set(names))
    for f in FORMATS:
        assert f.variants, f.name
        assert f.example and f.match(f.example) is not None, f.name
        assert f.lines in (1, 2, None)
        assert 0 < f.prior <= 1


def test_two_line_rows_have_their_split_inside_the_plate():
    for f in FORMATS:
        for v in f.variants:
            if f.lines == 2:
                assert v.split is not None and 0 < v.split < v.length, f.name
    moto = _by_name("IT-motorcycle").variants
    assert [(v.split, v.length) for v in moto] == [(2, 7)]
    assert [(v.split, v.length) for v in _by_name("IT-moped").variants] == [(3, 6)]


def test_pattern_syntax():
    letters = "AB"
    assert parse_pattern("LD", letters) == [[("A", "B"), tuple("0123456789")]]
    assert parse_pattern("[A-C2]", letters) == [[("2", "A", "B", "C")]]
    assert parse_pattern("'CC'L", letters) == [[("C",), ("C",), ("A", "B")]]
    assert parse_pattern("L{1,2}", letters) == [[("A", "B")], [("A", "B"), ("A", "B")]]
    assert parse_pattern("L?D", letters) == [[tuple("0123456789")], [("A", "B"), tuple("0123456789")]]
    assert parse_pattern("(LD|DL)", letters) == [
        [("A", "B"), tuple("0123456789")],
        [tuple("0123456789"), ("A", "B")],
    ]
    assert parse_pattern("L|D", letters) == [[("A", "B"), "|", tuple("0123456789")]]
    assert parse_pattern("{CH_CANTONS}", letters) == [[CODE_LISTS["CH_CANTONS"]]]
    for bad in ("X", "(LD", "[AB"):
        with pytest.raises(ValueError):
            parse_pattern(bad)


def test_variable_patterns_expand_to_fixed_lengths():
    de = _by_name("DE-car")
    assert all(2 <= v.length <= 8 for v in de.variants)
    assert len(de.variants) == 28  # 2-5 letters, 1-4 digits, optional E/H, at most 8
    assert de.match("MAB1234") and de.match("MAB123E") and not de.match("MABCDE1234")
    ch = _by_name("CH-car")
    assert sorted(v.length for v in ch.variants) == [3, 4, 5, 6, 7, 8]
    assert ch.match("ZH123456") and not ch.match("ZX123")  # ZX is no canton
    at = _by_name("AT-capital")
    assert at.match("W12345A") and not at.match("M5XSX")  # M is no one-letter district


def test_sizes_count_the_strings_a_row_allows():
    it = _by_name("IT-car")
    assert it.size == 9 * 22**3 * 1000
    assert _by_name("IT-motorcycle").size == 22**2 * 10**5
    assert _by_name("SK-district").size == len(CODE_LISTS["SK_DISTRICTS"]) * 1000 * 26**2


def test_italian_rows():
    car = _by_name("IT-car")
    assert car.match("GH123AB") and not car.match("AO123CD")  # no O in Italian series
    assert not car.match("RK099AN")  # R series not issued yet
    assert _by_name("IT-car-unissued").match("RK099AN") and _by_name("IT-car-unissued").fallback
    assert _by_name("IT-trailer").match("XA123BC")
    assert _by_name("IT-police").match("POLIZIAF1234")
    assert set(IT_LETTERS) == set("ABCDEFGHIJKLMNOPQRSTUVWXYZ") - set("IOQU")


def test_foreign_rows():
    assert _by_name("SK-district").match("RK099AN")
    assert _by_name("CZ-car").match("4B04979") and _by_name("CZ-car").match("1T43213")
    assert _by_name("FR-car").match("GH123AB") and not _by_name("FR-car").match("GH123AO")
    assert _by_name("ES-car").match("1234BCD") and not _by_name("ES-car").match("1234ABC")
    assert _by_name("NL-car").match("12XBL3")
    assert _by_name("BE-car").match("1ABC123")
    assert _by_name("GB-car").match("AB12CDE")
    assert _by_name("NO-car").match("EL12345")
    assert _by_name("BR-old").match("ABC1234") and _by_name("BR-mercosul").match("ABC1D23")


def test_band_codes_and_country_resolution():
    assert EU_BAND_CODES["I"] == "IT" and EU_BAND_CODES["D"] == "DE" and EU_BAND_CODES["SK"] == "SK"
    assert EU_BAND_CODES["UK"] == EU_BAND_CODES["GB"] == "GB"
    assert EU_BAND_CODES["SLO"] == "SI" and EU_BAND_CODES["B"] == "BE" and EU_BAND_CODES["A"] == "AT"
    european = {f.country for f in FORMATS} - {"BR"}
    assert european <= set(EU_BAND_CODES.values())
    assert resolve_country("I") == "IT" and resolve_country("it") == "IT" and resolve_country("SK") == "SK"
    assert resolve_country(None) is None


def test_country_priors():
    auto = country_priors("auto")
    assert math.isclose(sum(auto.values()), 1.0)
    assert max(auto, key=auto.get) == "IT"
    it = country_priors("IT")
    assert math.isclose(sum(it.values()), 1.0) and it["IT"] == F.HOME_SHARE
    assert country_priors("I") == it
    band = country_priors("IT", band_country="SK")
    assert math.isclose(sum(band.values()), 1.0)
    assert math.isclose(band["SK"], F.BAND_SHARE + (1 - F.BAND_SHARE) * it["SK"])
    assert math.isclose(band["IT"], (1 - F.BAND_SHARE) * F.HOME_SHARE)  # a misread band keeps the home formats
    assert set(auto) >= {f.country for f in FORMATS}


def test_junk_positions_lie_between_groups():
    for f in FORMATS:
        for k, prior in f.junk:
            assert 0 < prior < 1, f.name
            for v in f.variants:
                assert 0 < k < v.length, f.name
                bounds = [sum(len(s[0]) for s in v.slots[:i]) for i in range(len(v.slots) + 1)]
                assert k in bounds, f.name  # not inside a code
    with_junk = {f.country for f in FORMATS if f.junk}
    assert with_junk == {"CZ", "SK"}
    assert _by_name("CZ-car").junk == ((3, 0.3),)
