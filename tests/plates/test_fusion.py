"""Two recognisers, one reading (plates/fusion.py): agreement, the weighted product of the two
models' likelihoods on a disagreement (exact on hand-made CTC matrices), the format prior,
two-line splits, invalid sides."""

import math

import numpy as np
import pytest

from vigil.plates.decode import PlateDecision, ctc_log_prob
from vigil.plates.fusion import fuse, text_log_prob
from vigil.plates.ocr import PLATE_ALPHABET

from .ctc_frames import ctc_frames

A = PLATE_ALPHABET


def _mat(items) -> np.ndarray:
    """Blank, then each item (a character at 0.98, or a dict) on one frame with a blank frame between."""
    return ctc_frames(items, margin=1, alphabet=A)


def _dec(text, conf=0.8, sure=False, valid=True, fmt="it_car") -> PlateDecision:
    return PlateDecision(text, "IT", "car", fmt, (), (conf,) * len(text), conf, sure, text, valid=valid)


def test_two_readers_that_agree_give_the_reading_with_the_higher_confidence_and_either_sure():
    m = [_mat("AB123CD")]
    out = fuse((_dec("AB123CD", 0.7, False), m), (_dec("AB123CD", 0.9, True), m), A)
    assert (out.text, out.confidence, out.sure) == ("AB123CD", 0.9, True)


def test_agreeing_readers_keep_the_format_either_found_the_text_fits():
    # the more confident one judged its free reading likelier: the text and confidence are its,
    # the format, country and kind the other's
    m = [_mat("L7DPC")]
    fitted = PlateDecision("L7DPC", "AT", "car", "AT-capital", (), (0.5,) * 5, 0.5, False, "L7DPC")
    free = PlateDecision("L7DPC", None, "free", None, (), (0.92,) * 5, 0.92, False, "L7DPC")
    for first, second in ((fitted, free), (free, fitted)):
        out = fuse((first, m), (second, m), A)
        assert (out.text, out.format, out.country, out.kind) == ("L7DPC", "AT-capital", "AT", "car")
        assert out.confidence == 0.92 and out.sure is False


def test_a_disagreement_goes_to_the_text_both_models_find_likelier_and_is_not_sure():
    # the first model barely prefers 1 over 7 (0.55 / 0.45); the second is clear it is a 7 (0.9 / 0.1)
    ma = [_mat(["A", "B", {"1": 0.55, "7": 0.45}, "2", "3", "C", "D"])]
    mb = [_mat(["A", "B", {"7": 0.9, "1": 0.1}, "2", "3", "C", "D"])]
    out = fuse((_dec("AB123CD", 0.95, True), ma), (_dec("AB723CD", 0.9, True), mb), A, weight=1.0)
    assert out.text == "AB723CD"
    assert out.sure is False
    # the two texts differ in one frame only: the posterior is (0.45 * 0.9) / (0.45 * 0.9 + 0.55 * 0.1)
    assert out.confidence == pytest.approx(0.405 / 0.46, abs=2e-3)
    sa = ctc_log_prob(ma[0], A, "AB123CD") + ctc_log_prob(mb[0], A, "AB123CD")
    sb = ctc_log_prob(ma[0], A, "AB723CD") + ctc_log_prob(mb[0], A, "AB723CD")
    assert out.confidence == pytest.approx(1 / (1 + math.exp(sa - sb)), rel=1e-9)


def test_the_second_model_counts_with_its_weight():
    # first 0.7 / 0.3 for the 1, second 0.1 / 0.9: at weight 1 the 7 wins (0.3 * 0.9 > 0.7 * 0.1);
    # at weight 0.25 the 1 does (log 0.7 + 0.25 log 0.1 = -0.93 > log 0.3 + 0.25 log 0.9 = -1.23)
    ma = [_mat(["A", "B", {"1": 0.7, "7": 0.3}, "2", "3", "C", "D"])]
    mb = [_mat(["A", "B", {"7": 0.9, "1": 0.1}, "2", "3", "C", "D"])]
    a, b = (_dec("AB123CD", 0.7), ma), (_dec("AB723CD", 0.9), mb)
    assert fuse(a, b, A, weight=1.0).text == "AB723CD"
    out = fuse(a, b, A, weight=0.25)
    assert (out.text, out.sure) == ("AB123CD", False)
    assert out.confidence == pytest.approx(1 / (1 + (0.3 * 0.9**0.25) / (0.7 * 0.1**0.25)), abs=3e-3)


def test_a_reading_that_fits_a_plate_format_beats_one_that_fits_none():
    # the second model is sure of a text no format allows: the first's formatted reading stays,
    # not sure, its confidence at most its posterior under the two models
    ma = [_mat(["A", "B", {"1": 0.55, "7": 0.45}, "2", "3", "C", "D"])]
    mb = [_mat(["A", "B", {"7": 0.9, "1": 0.1}, "2", "3", "C", "D"])]
    out = fuse((_dec("AB123CD", 0.95, True), ma), (_dec("AB723CD", 0.9, True, fmt=None), mb), A, weight=1.0)
    assert (out.text, out.sure) == ("AB123CD", False)
    assert out.confidence == pytest.approx(0.055 / 0.46, abs=2e-3)
    # and the other way round: the second's formatted reading beats the first's free text
    out = fuse((_dec("AB723CD", 0.9, fmt=None), mb), (_dec("AB123CD", 0.6), ma), A)
    assert (out.text, out.format) == ("AB123CD", "it_car")


def test_the_winner_keeps_its_own_lower_confidence():
    ma = [_mat(["A", "B", {"1": 0.55, "7": 0.45}, "2", "3", "C", "D"])]
    mb = [_mat(["A", "B", {"7": 0.9, "1": 0.1}, "2", "3", "C", "D"])]
    out = fuse((_dec("AB123CD", 0.95), ma), (_dec("AB723CD", 0.3), mb), A, weight=1.0)
    assert (out.text, out.confidence) == ("AB723CD", 0.3)


def test_a_two_line_text_is_scored_on_its_best_split():
    mats = [_mat("AB"), _mat("12345")]
    want = ctc_log_prob(mats[0], A, "AB") + ctc_log_prob(mats[1], A, "12345")
    assert text_log_prob(mats, A, "AB12345") == pytest.approx(want, rel=1e-12)
    assert text_log_prob(mats, A, "AB12345") > text_log_prob(mats, A, "A1B2345") + 10
    assert text_log_prob(mats, A, "") == -math.inf
    assert text_log_prob(mats, A, "AB-1") == -math.inf


def test_an_invalid_or_empty_side_leaves_the_other():
    m = [_mat("AB123CD")]
    first = _dec("AB123CD", 0.8, True)
    assert fuse((first, m), (_dec("", valid=False), m), A) is first
    out = fuse((_dec("AB1", valid=False), m), (_dec("AB123CD", 0.8, True), m), A)
    assert (out.text, out.sure) == ("AB123CD", False)
