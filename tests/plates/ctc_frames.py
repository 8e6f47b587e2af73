"""Hand-made CTC probability matrices for the plate decoding and fusion tests.

A matrix is ``(T, K + 1)`` float32: column 0 is the CTC blank, columns 1..K the alphabet's
characters in order; each row (a time frame) sums to 1.
"""

from __future__ import annotations

import numpy as np

from vigil.plates.decode import DEFAULT_ALPHABET


def ctc_frame(dist: dict, alphabet: str = DEFAULT_ALPHABET) -> np.ndarray:
    """One frame, ``(K + 1,)``: the given probabilities (``"_"`` = blank), the rest of the mass
    spread evenly over the other classes."""
    r = np.zeros(len(alphabet) + 1)
    for ch, p in dist.items():
        r[0 if ch == "_" else alphabet.index(ch) + 1] += p
    free = r == 0
    r[free] += (1.0 - r.sum()) / free.sum()
    return r


def ctc_frames(spec, peak=0.98, frames=1, gap=1, margin=2, blank=0.98, alphabet=DEFAULT_ALPHABET) -> np.ndarray:
    """A ``(T, K + 1)`` matrix: ``margin`` blank frames, then per item (a character read at
    ``peak``, or a dict of probabilities) ``frames`` frames, ``gap`` blank frames between items,
    then ``margin`` blank frames."""
    b = ctc_frame({"_": blank}, alphabet)
    rows = [b] * margin
    for i, item in enumerate(spec):
        dist = {item: peak} if isinstance(item, str) else item
        rows += ([b] * gap if i else []) + [ctc_frame(dist, alphabet)] * frames
    return np.array(rows + [b] * margin, np.float32)
