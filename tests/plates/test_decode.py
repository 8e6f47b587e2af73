"""CTC decoding: greedy and constrained (exact, against brute force), and the plate decision."""

import itertools
import json
import math

import numpy as np
import pytest

from vigil.plates import formats
from vigil.plates.decode import (
    DEFAULT_ALPHABET,
    FOREIGN_FACTOR,
    SURE_THRESHOLD,
    constrained,
    ctc_log_prob,
    decision_from_text,
    greedy,
    interpret,
)

from .ctc_frames import ctc_frame, ctc_frames

ALPHA = DEFAULT_ALPHABET


def _collapse(path, alphabet):
    out, prev = [], 0
    for c in path:
        if c and c != prev:
            out.append(alphabet[c - 1])
        prev = c
    return "".join(out)


def _brute(p, alphabet):
    """{string: (best path log-prob, total log-prob)} over every alignment."""
    lp = np.log(np.maximum(p.astype(np.float64), 1e-8))
    out = {}
    for path in itertools.product(range(len(alphabet) + 1), repeat=len(p)):
        s = _collapse(path, alphabet)
        v = lp[np.arange(len(p)), path].sum()
        best, tot = out.get(s, (-np.inf, -np.inf))
        out[s] = (max(best, v), np.logaddexp(tot, v))
    return out


# --- greedy, forward, constrained -------------------------------------------------------


def test_greedy_reading():
    p = ctc_frames(["A", "A", {"1": 0.7, "I": 0.2}], frames=2)
    r = greedy(p)
    assert r.text == "AA1"  # a blank between the two A's keeps both
    assert r.frames == ((2, 4), (5, 7), (8, 10))
    assert r.char_confs == pytest.approx((0.98, 0.98, 0.7), abs=1e-6)
    assert r.min_conf == pytest.approx(0.7, abs=1e-6) and r.mean_conf == pytest.approx((0.98 * 2 + 0.7) / 3, abs=1e-6)
    expected = np.log(p.astype(np.float64).max(1)).sum()
    assert r.log_prob == pytest.approx(expected, abs=1e-9)
    merged = np.array([ctc_frame({"A": 0.9})] * 2, np.float32)  # no blank: one A
    assert greedy(merged).text == "A"


def test_constrained_matches_brute_force():
    rng = np.random.default_rng(0)
    alphabet = "AB1"
    for _ in range(120):
        T = int(rng.integers(2, 7))
        p = rng.dirichlet(np.ones(4) * 0.5, size=T)
        pattern = [str(rng.choice(["AB", "1", "AB1", "A", "B"])) for _ in range(int(rng.integers(1, 4)))]
        table = _brute(p, alphabet)
        fits = {s: v for s, v in table.items() if len(s) == len(pattern) and all(c in a for c, a in zip(s, pattern))}
        text, lp, confs = constrained(p, alphabet, pattern)
        if not fits:
            assert (text, lp, confs) == ("", -np.inf, ())
            continue
        best = max(fits, key=lambda s: fits[s][0])
        assert lp == pytest.approx(fits[best][0], abs=1e-9)
        assert fits[text][0] == pytest.approx(fits[best][0], abs=1e-9)  # ties: any best string
        assert len(confs) == len(text)
        g = greedy(p, alphabet)
        assert ctc_log_prob(p, alphabet, g.text) == pytest.approx(table[g.text][1], abs=1e-9)


def test_constrained_code_list_matches_brute_force(monkeypatch):
    monkeypatch.setitem(formats.CODE_LISTS, "TEST", ("AB", "BA", "AA"))
    rng = np.random.default_rng(1)
    alphabet = "AB1"
    for _ in range(60):
        p = rng.dirichlet(np.ones(4) * 0.5, size=int(rng.integers(3, 7)))
        table = _brute(p, alphabet)
        fits = {s: v[0] for s, v in table.items() if s in ("AB1", "BA1", "AA1")}
        text, lp, _ = constrained(p, alphabet, "{TEST}D")
        if not fits:
            assert lp == -np.inf
            continue
        assert lp == pytest.approx(max(fits.values()), abs=1e-9)
        assert fits[text] == pytest.approx(lp, abs=1e-9)


def test_constrained_positional_correction_exact_log_prob():
    amb = {"5": 0.55, "S": 0.45}
    p = ctc_frames(list("YS589") + [amb, amb])
    assert greedy(p).text == "YS58955"
    text, lp, confs = constrained(p, ALPHA, "LLDDDLL")
    assert text == "YS589SS"
    path = p.argmax(1)
    path[path == ALPHA.index("5") + 1] = ALPHA.index("S") + 1
    path[6] = ALPHA.index("5") + 1  # the true 5 of 589 stays
    expected = np.log(p.astype(np.float64)[np.arange(len(p)), path]).sum()
    assert lp == pytest.approx(expected, abs=1e-9)
    assert confs == pytest.approx((0.98,) * 5 + (0.45, 0.45), abs=1e-6)
    assert constrained(p, ALPHA, "LLDDDDD")[0] == "YS58955"
    assert constrained(p, ALPHA, "{CH_CANTONS}D{1,6}")[1] < lp  # the best of a variable pattern


# --- the decision ----------------------------------------------------------------------


def test_clean_italian_reading_is_sure():
    for region in ("IT", "auto"):
        d = interpret([ctc_frames("AB123CD")], region=region)
        assert (d.text, d.country, d.kind, d.format, d.corrections) == ("AB123CD", "IT", "car", "IT-car", ())
        assert d.sure and d.confidence >= SURE_THRESHOLD
        assert min(d.char_confs) > 0.97
    # each character against the blank and the others allowed in its position (0.02 / 36 each)
    d = interpret([ctc_frames("AB123CD")], region="IT", confusion=None)
    q = [0.98 / (0.98 + n * 0.02 / 36) for n in (9, 22, 10, 10, 10, 22, 22)]  # [A-HJ], L, D, ...
    assert d.char_confs == pytest.approx(q, abs=1e-6)


def test_italian_positional_correction_with_region_it():
    amb = {"5": 0.55, "S": 0.45}
    p = ctc_frames(list("YS589") + [amb, amb])
    d = interpret([p], region="IT")
    assert (d.text, d.country, d.kind) == ("YS589SS", "IT", "car")
    assert d.corrections == (5, 6) and d.raw == "YS58955"
    assert d.log_prob < d.free_log_prob
    assert not interpret([p], region="auto").sure  # ambiguous without a home country


def test_foreign_plates_keep_their_reading_and_country():
    d = interpret([ctc_frames("RK099AN")])  # Slovak district RK: no Italian R series
    assert (d.text, d.country, d.format, d.corrections) == ("RK099AN", "SK", "SK-district", ())
    d = interpret([ctc_frames("4B04979")], region="IT")  # Czech: 4 is not bent into A
    assert (d.text, d.country) == ("4B04979", "CZ")
    # a foreign format's reading counts FOREIGN_FACTOR; at home it does not
    rest = [
        (d.confidence / d.text_posterior / math.prod(d.char_confs))
        for d in (interpret([ctc_frames("4B04979")], region=r) for r in ("IT", "CZ"))
    ]
    assert rest[0] == pytest.approx(rest[1] * FOREIGN_FACTOR)


def test_band_country_prevents_italian():
    p = ctc_frames("BA123CD")  # fits the Italian car format and the Slovak district BA
    assert interpret([p], region="IT").country == "IT"
    d = interpret([p], region="IT", band_country="SK")
    assert (d.text, d.country, d.format) == ("BA123CD", "SK", "SK-district")


def test_band_letters_read_before_the_plate():
    d = interpret([ctc_frames("IAB123CD")], region="IT")
    assert (d.text, d.country, d.band, d.corrections) == ("AB123CD", "IT", "I", ())


def test_dropped_characters_are_not_sure():
    cut = ctc_frames("AB123", margin=0)  # a crop of AB123CD cut after the 3
    for region in ("IT", "auto"):
        d = interpret([cut], region=region)
        assert d.text == "AB123" and not d.sure and d.confidence < 0.5
    d = interpret([ctc_frames("AB123")], region="IT")  # blank margins, still fits no plate
    assert d.kind == "free" and not d.sure


def test_faint_letters_are_recovered_at_home_but_not_sure():
    faint = [{"F": 0.3, "_": 0.7}, {"Y": 0.3, "_": 0.7}]
    p = ctc_frames(faint + list("655PB"))
    assert greedy(p).text == "655PB"
    d = interpret([p], region="IT")
    assert (d.text, d.country, d.corrections) == ("FY655PB", "IT", (0, 1))
    assert not d.sure and d.char_confs[0] == pytest.approx(0.3, abs=1e-3)
    assert interpret([p]).text != "FY655PB"  # auto: a 1.7-nat correction is beyond the margin


def test_brazilian_plates():
    o0 = {"O": 0.6, "0": 0.4}
    d = interpret([ctc_frames(list("ABC12") + [o0, "4"])])
    assert (d.text, d.country, d.format, d.corrections) == ("ABC1204", "BR", "BR-old", (5,))
    d = interpret([ctc_frames(list("ABC1D") + [o0, "3"])])
    assert (d.text, d.country, d.format, d.corrections) == ("ABC1D03", "BR", "BR-mercosul", (5,))


def test_a_band_across_the_top_is_evidence_for_the_mercosul_format():
    from vigil.plates.decode import LOOK_EVIDENCE

    # "ENV3697" with the fifth glyph 6 at 0.9, G at 0.1: the old format's digit wins on its own;
    # a band seen across the plate's top (Mercosul) makes it the letter of ABC1D23
    p = ctc_frames(list("ENV3") + [{"6": 0.9, "G": 0.1}] + list("97"))
    old = interpret(p, region="BR")
    assert (old.text, old.format) == ("ENV3697", "BR-old")
    new = interpret(p, region="BR", looks=frozenset({"top_band"}))
    assert (new.text, new.format, new.corrections) == ("ENV3G97", "BR-mercosul", (4,))
    # the prior of the chosen string moved by exactly the evidence, and only Mercosul rows get it
    assert [f.name for f in formats.FORMATS if "top_band" in f.looks] == ["BR-mercosul"]
    band = frozenset({"top_band"})
    ref = interpret(ctc_frames(list("ENV3G97")), region="BR")
    seen = interpret(ctc_frames(list("ENV3G97")), region="BR", looks=band)
    assert seen.log_prior - ref.log_prior == pytest.approx(LOOK_EVIDENCE["top_band"]) == pytest.approx(math.log(100))
    it = ctc_frames(list("AB123CD"))
    assert interpret(it, region="IT", looks=band).log_prior == interpret(it, region="IT").log_prior


def test_a_format_names_only_looks_the_reader_knows():
    assert formats.LOOKS == ("top_band",)
    with pytest.raises(ValueError, match="XX-car: unknown looks"):
        formats.PlateFormat("XX", "car", "LLDDD", looks=frozenset({"emblem"}))


def test_two_line_plates():
    d = interpret([ctc_frames("AB"), ctc_frames("12345")], region="IT")
    assert (d.text, d.country, d.kind, d.lines) == ("AB12345", "IT", "motorcycle", 2)
    assert d.sure
    d = interpret([ctc_frames("AB"), ctc_frames("12345")])
    assert (d.text, d.kind) == ("AB12345", "motorcycle")
    d = interpret([ctc_frames("ZA"), ctc_frames("123BC")], region="IT")  # split found by the decoder
    assert (d.text, d.format) == ("ZA123BC", "IT-square")
    assert interpret([ctc_frames("AB12345")], region="IT").kind != "motorcycle"  # one line: no moto


def test_decision_to_dict_and_input_checks():
    d = interpret(ctc_frames("AB123CD"), region="IT")  # a single matrix is one line
    out = json.loads(json.dumps(d.to_dict()))
    assert out["text"] == "AB123CD" and out["sure"] is True and out["alternatives"][0][0] == "AB123CD"
    with pytest.raises(ValueError):
        interpret([np.ones((10, 5))])
    with pytest.raises(ValueError):
        interpret([ctc_frames("AB")] * 3)


def test_restricting_the_table():
    p = ctc_frames("RK099AN")
    it_only = formats.formats_for(["IT"])
    d = interpret([p], formats=it_only)
    assert d.country != "SK" and d.format in (None, "IT-car-unissued")


def test_text_only_path():
    d = decision_from_text("YS58955", [0.99] * 5 + [0.55, 0.55], region="IT", lines=1)
    assert (d.text, d.country, d.corrections) == ("YS589SS", "IT", (5, 6))
    assert d.char_confs[5:] == pytest.approx((0.45, 0.45)) and not d.sure
    d = decision_from_text("AB 123 CD", [0.99] * 7, region="IT")
    assert d.sure and d.confidence == pytest.approx(0.99**7)
    d = decision_from_text("M5XSX", [0.99] * 5)
    assert d.kind == "free" and d.confidence == pytest.approx(0.99**5 * 0.5) and not d.sure
    d = decision_from_text("IAB123CD", None, region="IT")
    assert (d.text, d.band) == ("AB123CD", "I")
    assert not decision_from_text("AB").valid
    assert math.isnan(d.log_prob)
    # a phone number, read whole: no plate, whatever the recogniser's confidence
    d = decision_from_text("029 778 884", [0.99] * 9, region="IT")
    assert (d.text, d.kind, d.valid, d.confidence) == ("029778884", "free", False, 0.0)


def test_a_run_of_nine_digits_is_read_but_is_no_plate():
    d = interpret(ctc_frames("029778884"), region="IT")
    assert (d.text, d.format, d.valid, d.confidence, d.sure) == ("029778884", None, False, 0.0, False)
    d = interpret(ctc_frames("02977888"), region="IT")  # eight digits may be a plate
    assert (d.text, d.format, d.valid) == ("02977888", None, True) and d.confidence > 0.2


def test_confusable_pairs_are_not_trusted():
    p = ctc_frames(list("RK896A") + [{"0": 0.98, "O": 0.01}])  # a Slovak O read as 0, as PP-OCRv4 does
    d = interpret([p])
    assert (d.text, d.country, d.corrections) == ("RK896AO", "SK", (6,))
    assert interpret([p], confusion=None).text == "RK896A0"  # the model alone is sure of its 0


def test_a_misread_band_letter_is_not_part_of_the_plate():
    d = interpret([ctc_frames("HRK605AB")])  # the band's I read as H
    assert (d.text, d.country, d.band) == ("RK605AB", "SK", "H")
    near = ctc_frames([{"H": 0.4, "_": 0.6}] + list("AB123CD"))  # junk left of a whole plate
    d = interpret([near], region="IT")
    assert d.text == "AB123CD" and d.sure
    d = interpret([ctc_frames([{"H": 0.4, "_": 0.6}] + list("AB12"))], region="IT")
    assert d.kind == "free" and d.confidence < 0.5 * 0.65  # a free reading: the near-character counts


def test_a_sticker_between_the_groups_is_dropped():
    for region in ("IT", "auto"):
        d = interpret([ctc_frames("2T480211")], region=region)  # a Czech sticker read as 8
        assert (d.text, d.country, d.format, d.skipped, d.corrections) == ("2T40211", "CZ", "CZ-car", (3,), ())
        clean = interpret([ctc_frames("2T40211")], region=region)
        assert d.char_confs == pytest.approx(clean.char_confs) and len(d.char_confs) == 7
        assert clean.skipped == ()
    # the Slovak coat of arms read as a letter (alone the string is also Polish: the band decides)
    d = interpret([ctc_frames("RKB708AT")], region="IT", band_country="SK")
    assert (d.text, d.country, d.skipped) == ("RK708AT", "SK", (2,))
    d = interpret([ctc_frames("AB8123CD")], region="IT")  # Italian plates carry nothing there
    assert d.text != "AB123CD" and d.country != "IT" and d.skipped == () and not d.sure


def test_the_zero_letter_o_channel_follows_the_plate_font():
    # "OKM2371" with the recogniser sure of the round O (0.97 O, 0.02 0): under a font that tells
    # O from 0 (Brazil) it stays O; under the Czechoslovak font, where O is drawn as 0, the Czech
    # format (digit first) may correct it at a Czech camera
    spec = [{"O": 0.97, "0": 0.02}, "K", "M", "2", "3", "7", "1"]
    p = ctc_frames(spec)
    br = interpret(p, region="BR")
    assert (br.text, br.country) == ("OKM2371", "BR")
    cz = interpret(p, region="CZ")
    assert (cz.text, cz.country) == ("0KM2371", "CZ") and cz.corrections == (0,)
    assert "SK" in formats.SAME_O0_FONT and "BR" not in formats.SAME_O0_FONT


def test_the_plate_shape_weighs_brazil_against_europe():
    from vigil.plates.decode import ASPECT_CAP, ASPECT_SIGMA, shape_evidence

    br, eu = 400 / 130, 520 / 110
    assert (formats.PLATE_ASPECT["BR"], formats.PLATE_ASPECT_EU) == (br, eu)

    def expected(a):
        return 0.5 * ((math.log(a / eu) / ASPECT_SIGMA) ** 2 - (math.log(a / br) / ASPECT_SIGMA) ** 2)

    assert shape_evidence("BR", 3.5) == pytest.approx(expected(3.5)) == pytest.approx(1.639, abs=1e-3)
    assert shape_evidence("BR", 4.2) == pytest.approx(expected(4.2)) and shape_evidence("BR", 4.2) < 0
    assert shape_evidence("BR", math.sqrt(br * eu)) == pytest.approx(0.0, abs=1e-12)  # the two shapes cross
    assert shape_evidence("BR", br) == ASPECT_CAP and shape_evidence("BR", eu) == -ASPECT_CAP
    # EU-shaped countries and an unknown shape: no evidence
    assert shape_evidence("CZ", 3.1) == shape_evidence("IT", 4.7) == shape_evidence("BR", None) == 0.0
    assert shape_evidence("BR", 0.0) == shape_evidence("BR", float("nan")) == 0.0


def test_a_brazilian_shaped_plate_is_read_as_brazilian_at_an_italian_camera():
    # "OKM2371" read O 0.9 / 0 0.1: at an Italian camera the Czech format (digit first, O drawn as
    # 0) wins on priors; a plate 3.1 times as wide as tall (Brazil's 400 x 130 mm, not the EU's
    # 520 x 110) tells them apart
    p = ctc_frames([{"O": 0.9, "0": 0.1}, "K", "M", "2", "3", "7", "1"])
    assert (interpret(p, region="IT").text, interpret(p, region="IT").country) == ("0KM2371", "CZ")
    d = interpret(p, region="IT", aspect=3.1)
    assert (d.text, d.country, d.format) == ("OKM2371", "BR", "BR-old")
    assert interpret(p, region="IT", aspect=4.7).country == "CZ"  # an EU-shaped plate stays Czech
    # two lines: the quad is not a one-line plate's, its shape is not used
    q = ctc_frames(["A", "B", "C"])
    two = interpret([q, ctc_frames(list("1234"))], region="IT", aspect=3.1)
    assert two.text == interpret([q, ctc_frames(list("1234"))], region="IT").text
