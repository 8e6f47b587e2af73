"""The line recogniser's training samples (plates/line_data.py) and its input (ocr.line_input):
labels that are real plates, two-line plates split in reading order, typefaces the evaluation
never draws, reproducibility, and an input that does not depend on gain or offset."""

import numpy as np
import pytest

from vigil.plates import synth_formats
from vigil.plates.formats import FORMATS
from vigil.plates.line_data import line_samples, render_lines
from vigil.plates.ocr import LINE_HEIGHT, LINE_WIDTH, line_input
from vigil.plates.synth_formats import FONT_FILES, TRAIN_FONT_FILES, TYPEFACES

pytestmark = pytest.mark.skipif(
    not all(synth_formats._font_path(f) for f in TRAIN_FONT_FILES),
    reason="training typefaces not installed (Debian: " + " ".join(synth_formats.TRAIN_FONT_PACKAGES) + ")",
)


def test_training_typefaces_are_none_of_the_evaluation_typefaces():
    assert not set(TRAIN_FONT_FILES) & set(TYPEFACES)
    eval_files = {p for files in FONT_FILES.values() for p in files}
    assert not {p for files in TRAIN_FONT_FILES.values() for p in files} & eval_files


def test_samples_are_reproducible_and_labelled_with_plate_characters():
    a = list(line_samples(40, seed=3))
    b = list(line_samples(40, seed=3))
    assert len(a) == 40
    assert [s.label for s in a] == [s.label for s in b]
    assert all(np.array_equal(x.crop, y.crop) for x, y in zip(a, b))
    assert all(s.label.isalnum() and s.label == s.label.upper() for s in a)
    assert all(s.crop.ndim == 3 and s.crop.shape[2] == 3 and min(s.crop.shape[:2]) >= 4 for s in a)
    assert [s.label for s in line_samples(40, seed=4)] != [s.label for s in a]


def test_a_two_line_plate_gives_its_lines_top_first_and_together_a_plate_of_its_country():
    seen = 0
    for i in range(30):
        rng = np.random.default_rng([11, i])
        lines = render_lines(rng, country="IT", two_line=True)
        if len(lines) != 2:
            continue
        seen += 1
        text = lines[0].label + lines[1].label
        assert any(f.country == "IT" and not f.fallback and f.match(text) for f in FORMATS), text
        # the crops are cut at the line rows: each is lower than it is wide enough for its text
        assert all(s.crop.shape[0] < s.crop.shape[1] for s in lines)
    assert seen >= 25


def test_line_input_keeps_the_aspect_to_its_width_and_ignores_gain_and_offset():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 255, (20, 100, 3)).astype(np.uint8)
    x, nw = line_input(crop)
    assert x.shape == (LINE_HEIGHT, LINE_WIDTH) and x.dtype == np.float32
    assert nw == 160  # 32 / 20 * 100
    assert abs(float(x[:, :nw].mean())) < 1e-4
    assert np.allclose(x[:, nw:], x[:, nw - 1 : nw])  # the right edge replicated
    dim = (crop.astype(np.float32) * 0.5 + 40).astype(np.uint8)
    assert np.abs(line_input(dim)[0] - x).max() < 0.1  # uint8 rounding of the halved image
    wide, nw_wide = line_input(np.zeros((10, 400, 3), np.uint8))
    assert nw_wide == LINE_WIDTH and np.all(wide == 0)  # a flat crop: no division by zero
