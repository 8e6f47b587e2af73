"""Plate grammar on text: Italian formats, positional correction, foreign plates, bad input."""

import pytest

from vigil.plates.grammar import clean, confusable_key, free_plausible, is_italian, normalize, parse


@pytest.mark.parametrize(
    "raw, region, text, kind",
    [
        ("AB 123 CD", "IT", "AB123CD", "car"),
        ("ab-123-cd", "auto", "AB123CD", "car"),
        ("A8 I23 C0", "IT", "AB123CD", "car"),  # 8->B, I->1, 0->D (no O in Italian series)
        ("AB 1Z3 CD", "IT", "AB123CD", "car"),  # Z->2 in a digit position
        ("8B 123 CD", "IT", "BB123CD", "car"),  # 8->B in a letter position
        ("XA 123 BC", "IT", "XA123BC", "trailer"),
        ("YA 123 BC", "IT", "YA123BC", "car"),  # local police series: car format
        ("AB 12345", "IT", "AB12345", "motorcycle"),
        ("AB 12B45", "IT", "AB12845", "motorcycle"),
        ("IAB123CD", "IT", "AB123CD", "car"),  # the blue band's I
        ("POLIZIA F1234", "IT", "POLIZIAF1234", "police"),
        ("P0LIZIA F1234", "IT", "POLIZIAF1234", "police"),
        ("CC AB123", "IT", "CCAB123", "carabinieri"),
        ("VF 12345", "IT", "VF12345", "fire"),
        ("X2B4CD", "IT", "X2B4CD", "moped"),
    ],
)
def test_italian_formats(raw, region, text, kind):
    p = parse(raw, region)
    assert (p.text, p.kind, p.country) == (text, kind, "IT")


def test_auto_keeps_foreign_plates_as_free_text():
    assert parse("4B0 4979").text == "4B04979"  # Czech: no Italian correction in auto mode
    assert parse("1T4 3213").text == "1T43213"
    assert parse("M5XSX").kind == "free"
    assert parse("M5XSX").to_dict() == {
        "text": "M5XSX",
        "kind": "free",
        "country": None,
        "corrections": 0,
        "format": None,
    }
    assert parse("WOB-VWMK4").text == "WOBVWMK4"


def test_foreign_formats_get_their_country():
    p = parse("RK896A0")  # Slovak district RK: letter O in the last slot
    assert (p.text, p.kind, p.country, p.format) == ("RK896AO", "car", "SK", "SK-district")
    assert parse("RK099AN").country == "SK" and parse("RK099AN", "IT").text == "RK099AN"  # no R series in Italy
    assert parse("RK896A0", "IT", lines=1).text == "RK896AO"
    assert parse("DK896A0", "IT").text == "DK896AD"  # an Italian camera: O does not exist
    assert (parse("4B04979").country, parse("4B04979", "IT", lines=1).country) == ("CZ", "CZ")
    assert parse("BA123CD", "IT").country == "IT"
    assert parse("BA123CD", "IT", band_country="SK").country == "SK"
    assert (parse("SKRK099AN").text, parse("SKRK099AN").country) == ("RK099AN", "SK")  # the band's SK
    assert (parse("ABC1234").country, parse("ABC1D23").country) == ("BR", "BR")
    assert parse("ABC12O4").text == "ABC1204"  # O in a digit position of both Brazilian formats


def test_italian_correction_only_where_the_format_fits():
    assert parse("YS58955", "IT", lines=1).text == "YS589SS"  # one line: the car format
    assert parse("YS58955", "IT").kind == "motorcycle"  # lines unknown: a valid motorcycle plate
    p = parse("YS58955", "auto", lines=1)
    assert p.text == "YS58955" and p.country != "IT"  # auto: Italian formats are never corrected
    assert parse("A8I23C0").country != "IT"


def test_letters_forbidden_in_italy_are_not_italian():
    assert not is_italian("AO123CD")
    assert is_italian("AB123CD")


@pytest.mark.parametrize(
    "text, plausible",
    [
        ("02977888", True),  # 8 digits: Israel numbers plates so
        ("029778884", False),  # 9 digits: a phone number on a van, not a plate
        ("3391234567", False),
        ("A123BC177", True),  # 9 characters with letters (Russia, not in the table)
        ("ABCDEFGHIJKL", True),
        ("ABCDEFGHIJKLM", False),
    ],
)
def test_free_text_that_no_plate_can_be(text, plausible):
    assert free_plausible(text) is plausible and not free_plausible("AB1")
    p = parse(text, "IT")
    assert p.kind == "free" and p.valid is plausible


@pytest.mark.parametrize("raw", ["", "AB", "A-1", "  ", "@@@", None])
def test_too_few_characters_is_no_plate(raw):
    p = parse(raw)
    assert not p.valid
    assert normalize(raw) == ""


def test_clean_and_confusable_key():
    assert clean("ab·12 3-cd") == "AB123CD"
    assert clean("ÀB123CD") == "AB123CD"
    assert confusable_key("AB123CD") == confusable_key("A8I23C0")
    assert confusable_key("AB123CD") != confusable_key("AB123CE")
