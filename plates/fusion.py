"""Two recognisers, one reading: a plate read by PP-OCRv4 and by Vigil's own line recogniser.

Each recogniser's line matrices give its own decision (:func:`.decode.interpret`). When the two
texts agree, that is the reading, with the higher of the two confidences and the format either
decoder found it fits, and it is ``sure`` if either model is sure. When they differ:

1. a text that fits a known plate format beats one that fits none (the prior the decoder
   already applies to one model's readings);
2. otherwise each text is scored under both models (the CTC forward log-probability, over every
   alignment, of the text on each model's line matrices; a two-line plate takes its best split)
   and ``log P_first + weight * log P_second`` decides: at ``weight`` 1 (the default, chosen on
   synthetic dev plates against 0.25 and 0.5, see docs/plates.md "Cross-check") the product of
   the two likelihoods.

A reading the two models disagree on is never ``sure``, and its confidence is at most the
two-text posterior of the winner under the weighted score, so a doubtful plate is not reported
as certain.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .decode import PlateDecision, ctc_log_prob

__all__ = ["CROSS_CHECK_DEFAULT", "CROSS_CHECK_MODES", "SECOND_WEIGHT", "text_log_prob", "fuse"]

#: when the second recogniser reads a plate by default (the camera config's plates.cross_check,
#: ``vigil plates read --cross-check``): "off", "unsure" (readings the first is not sure of) or
#: "always"; chosen by measurement (docs/plates.md, "Cross-check")
CROSS_CHECK_DEFAULT = "unsure"
#: every mode; ``PlateReader(cross_check=...)`` takes them all ("off": no second recogniser)
CROSS_CHECK_MODES = ("off", "unsure", "always")

#: the weight of the second model's log-likelihood on a disagreement (1: the product of the two)
SECOND_WEIGHT = 1.0


def text_log_prob(mats: list[np.ndarray], alphabet: str, text: str) -> float:
    """log P(``text`` | one model's line matrices): one line, or the best split over two."""
    if not text or any(c not in alphabet for c in text):
        return -math.inf
    if len(mats) == 1:
        return ctc_log_prob(mats[0], alphabet, text)
    best = -math.inf
    for k in range(1, len(text)):
        lp = ctc_log_prob(mats[0], alphabet, text[:k])
        if lp > best:
            best = max(best, lp + ctc_log_prob(mats[1], alphabet, text[k:]))
    return best


def fuse(
    first: tuple[PlateDecision, list[np.ndarray]],
    second: tuple[PlateDecision, list[np.ndarray]],
    alphabet: str,
    weight: float = SECOND_WEIGHT,
) -> PlateDecision:
    """The reading of one plate from two recognisers' (decision, line matrices); ``first`` wins ties."""
    (da, ma), (db, mb) = first, second
    if not (db.valid and db.text):
        return da
    if not (da.valid and da.text):
        return replace(db, sure=False)
    if da.text == db.text:
        # one text: the higher confidence, and the format (country, kind) if either decoder
        # found the text fits one (the other may have judged its free reading likelier)
        best = da if da.confidence >= db.confidence else db
        if best.format is None and (other := db if best is da else da).format is not None:
            best = replace(other, confidence=best.confidence)
        return replace(best, sure=da.sure or db.sure)
    sa = text_log_prob(ma, alphabet, da.text) + weight * text_log_prob(mb, alphabet, da.text)
    sb = text_log_prob(ma, alphabet, db.text) + weight * text_log_prob(mb, alphabet, db.text)
    if (da.format is None) != (db.format is None):  # the one that fits a plate format
        a_wins = da.format is not None
    else:
        a_wins = sa >= sb or not math.isfinite(sb)
    win, s_win, s_lose = (da, sa, sb) if a_wins else (db, sb, sa)
    if not math.isfinite(s_win):
        return replace(win, sure=False)
    posterior = 1.0 / (1.0 + math.exp(min(50.0, s_lose - s_win))) if math.isfinite(s_lose) else 1.0
    return replace(win, sure=False, confidence=float(min(win.confidence, posterior)))
