"""Vigil's own plate line recogniser as shipped (plates/plate_lines.onnx), and the reader that
cross-checks PP-OCRv4 with it: plates in typefaces it was never trained on, its matrices, the
configuration that turns it on and off, and a missing model named as such."""

import importlib.util

import numpy as np
import pytest

from vigil.edge.config_parts import PlatesConfig
from vigil.plates.decode import greedy
from vigil.plates.ocr import PLATE_ALPHABET, OcrUnavailable, PlateLineRecognizer, default_line_model

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("rapidocr_onnxruntime") is None,
    reason="rapidocr-onnxruntime (PP-OCRv4 models) not installed: scripts/setup.sh installs it",
)


@pytest.fixture(scope="module")
def lines():
    return PlateLineRecognizer(threads=1)


def test_the_model_ships_in_the_package():
    assert default_line_model().name == "plate_lines.onnx" and default_line_model().is_file()


def test_it_reads_clean_plates_in_the_evaluation_typefaces_it_never_saw(lines):
    from vigil.plates.localise import PlateCandidate, TextLine
    from vigil.plates.reader import plate_crops
    from vigil.plates.synth_formats import render_plate

    rng = np.random.default_rng(21)
    plates = [("AB123CD", ["AB 123 CD"], "IT"), ("EX482KM", ["EX 482 KM"], "IT"), ("RK026AJ", ["RK 026AJ"], "SK")]
    for face in ("din", "roboto_condensed", "liberation_narrow"):
        crops, want = [], []
        for text, shown, country in plates:
            img = render_plate(shown, country, "car", 64, rng, face)
            canvas = np.full((img.shape[0] + 40, img.shape[1] + 40, 3), 90, np.uint8)
            canvas[20:-20, 20:-20] = img
            h, w = img.shape[:2]
            quad = np.float32([[20, 20], [20 + w, 20], [20 + w, 20 + h], [20, 20 + h]])
            line = TextLine((20 + w / 2, 20 + h / 2), w, h, 0.0, 1.0)
            crops += plate_crops(canvas, PlateCandidate(quad, [line], 1.0, 4))[1]
            want.append(text)
        mats = lines.probs(crops)
        assert [greedy(m, PLATE_ALPHABET).text for m in mats] == want, face
        for m, c in zip(mats, crops):
            assert m.shape[1] == len(PLATE_ALPHABET) + 1 and m.dtype == np.float32
            assert np.allclose(m.sum(1), 1.0, atol=1e-4)
            # one frame per 4 input columns of the crop resized to 32 px high, plus one
            assert m.shape[0] == min(48, int(np.ceil(min(192, round(32 * c.shape[1] / c.shape[0])) / 4)) + 1)
    assert lines.probs([]) == []


class _Counting:
    """A second recogniser that is PP-OCRv4 itself (the same alphabet, so it always agrees),
    counting the plates it is asked to read."""

    def __init__(self):
        from vigil.plates.ocr import TextRecognizer

        self.inner, self.calls = TextRecognizer(threads=1), 0

    def probs(self, crops):
        self.calls += 1
        return self.inner.probs(crops)


def test_only_unsure_readings_are_cross_checked_and_agreement_changes_no_text():
    from vigil.plates.reader import PlateReader
    from vigil.plates.synth import synthetic_set

    samples = [s for s in synthetic_set(20, seed=5, family="it", variations=["tight_crop", "lowres"]) if s.lines == 1]
    alone = PlateReader(region="IT", threads=1)
    first = [alone.read_plate(s.image) for s in samples]
    unsure = sum(1 for r in first if r is not None and not r.sure)
    assert 0 < unsure < len(samples)
    # a plate read as nothing is not a sure reading either: it is checked too
    for mode, want_calls in (("unsure", unsure + first.count(None)), ("always", len(samples))):
        echo = _Counting()
        reader = PlateReader(region="IT", threads=1, second_recognizer=echo, cross_check=mode)
        got = [reader.read_plate(s.image) for s in samples]
        assert echo.calls == want_calls, mode
        assert [(g.text, g.sure) if g else None for g in got] == [(r.text, r.sure) if r else None for r in first]
    # "off" reads alone, and refuses a second recogniser it would not use
    assert PlateReader(region="IT", threads=1, cross_check="off").second is None
    with pytest.raises(ValueError, match="only with cross_check 'unsure' or 'always', got 'off'"):
        PlateReader(region="IT", threads=1, second_recognizer=_Counting(), cross_check="off")
    with pytest.raises(ValueError, match="cross_check must be one of off, unsure, always, got 'sometimes'"):
        PlateReader(region="IT", threads=1, cross_check="sometimes")


def test_a_cross_checking_reader_without_a_second_recogniser_loads_vigils_line_model():
    from vigil.plates.reader import PlateReader

    for mode in ("unsure", "always"):
        reader = PlateReader(region="IT", threads=1, cross_check=mode)
        assert isinstance(reader.second, PlateLineRecognizer) and reader.cross_check == mode


def test_the_cross_checked_reader_reports_no_disagreement_as_sure(lines, monkeypatch):
    import vigil.plates.reader as reader_mod
    from vigil.plates.fusion import fuse
    from vigil.plates.reader import PlateReader
    from vigil.plates.synth import synthetic_set

    seen = []

    def spy(first, second, alphabet):
        out = fuse(first, second, alphabet)
        seen.append((first[0], second[0], out))
        return out

    monkeypatch.setattr(reader_mod, "fuse", spy)
    alone = PlateReader(region="IT", threads=1)
    checked = PlateReader(region="IT", threads=1, second_recognizer=lines, cross_check="always")
    samples = list(synthetic_set(24, seed=7, family="foreign", variations=["tight_crop"]))
    for s in samples:
        before, after = alone.read_plate(s.image, lines=s.lines), checked.read_plate(s.image, lines=s.lines)
        if after is not None and (before is None or after.text != before.text):
            assert not after.sure, s.text
    assert len(seen) >= len(samples) - 1
    disagreed = [(a, b, out) for a, b, out in seen if a.valid and b.valid and a.text and b.text and a.text != b.text]
    agreed = [(a, b, out) for a, b, out in seen if a.valid and b.valid and a.text == b.text]
    assert disagreed and agreed
    assert all(not out.sure and out.text in (a.text, b.text) for a, b, out in disagreed)
    assert all(out.text == a.text and out.sure == (a.sure or b.sure) for a, b, out in agreed)


def test_the_configuration_turns_the_cross_check_on_and_off(tmp_path, monkeypatch):
    from vigil.plates.pipeline import build_reader

    on = build_reader(PlatesConfig(threads=1))
    assert isinstance(on.second, PlateLineRecognizer) and on.cross_check == "unsure"
    assert build_reader(PlatesConfig(threads=1, cross_check="always")).cross_check == "always"
    assert build_reader(PlatesConfig(threads=1, cross_check="off")).second is None
    with pytest.raises(ValueError, match="cross_check"):
        PlatesConfig(cross_check="sometimes")
    monkeypatch.setenv("VIGIL_PLATE_LINE_MODEL", str(tmp_path / "gone.onnx"))
    with pytest.raises(OcrUnavailable, match="gone.onnx"):
        build_reader(PlatesConfig(threads=1))


def test_train_lines_names_what_it_needs(tmp_path, capsys, monkeypatch):
    import importlib.util as iu

    from vigil.plates.cli import main

    real = iu.find_spec
    monkeypatch.setattr(iu, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert main(["plates", "train-lines", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "needs torch (pip install torch==2.13.0" in capsys.readouterr().err
    monkeypatch.setattr(iu, "find_spec", lambda name, *a: object() if name == "torch" else real(name, *a))
    assert main(["plates", "train-lines", "--out", str(tmp_path / "no" / "m.onnx")]) == 2
    assert capsys.readouterr().err == f"vigil plates train-lines: {tmp_path / 'no'}: no such folder\n"
    assert main(["plates", "train-lines", "--out", str(tmp_path / "m.onnx"), "--steps", "0"]) == 2
    assert capsys.readouterr().err == "vigil plates train-lines: --steps must be at least 1, got 0\n"


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed (training only)")
def test_a_briefly_trained_network_exports_and_runs_as_the_recogniser(tmp_path):
    from vigil.plates.line_model import build_network, export_onnx, make_dataset, train

    assert sum(p.numel() for p in build_network().parameters()) == 431_813
    data = make_dataset(128, seed=3, processes=1, chunk=128)
    net, history = train(data, batch=16, threads=1, steps=40)  # a step count, not a time budget
    assert [h[0] for h in history] == [40]
    path = export_onnx(net, tmp_path / "m.onnx")
    crops = [np.full((20, 100, 3), 200, np.uint8), np.full((30, 60, 3), 50, np.uint8)]
    mats = PlateLineRecognizer(path, threads=1).probs(crops)
    assert [m.shape for m in mats] == [(41, 37), (17, 37)]
    assert all(np.allclose(m.sum(1), 1.0, atol=1e-4) for m in mats)
