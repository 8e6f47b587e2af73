"""Italian plate grammar: formats, positional correction, foreign plates, bad input."""

import pytest

from vigil.plates.grammar import clean, confusable_key, is_italian, normalize, parse


@pytest.mark.parametrize(
    "raw, region, text, kind",
    [
        ("AB 123 CD", "IT", "AB123CD", "car"),
        ("ab-123-cd", "auto", "AB123CD", "car"),
        ("A8 I23 C0", "IT", "AB123CD", "car"),  # 8->B, I->1, 0->D (no O in Italian series)
        ("AB 1Z3 CD", "IT", "AB123CD", "car"),  # Z->2 in a digit position
        ("5B 123 CD", "IT", "SB123CD", "car"),  # 5->S in a letter position
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
    assert parse("WOB-VWMK4").text == "WOBVWMK4"


def test_auto_shared_shape_corrects_one_confusable():
    p = parse("RK896A0")  # Slovak AA 000 AA: letter O in the last slot
    assert (p.text, p.kind, p.country) == ("RK896AO", "generic", None)
    assert parse("RK896A0", "IT").text == "RK896AD"  # an Italian camera: O does not exist


def test_letters_forbidden_in_italy_are_not_italian():
    assert not is_italian("AO123CD")
    assert is_italian("AB123CD")


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
