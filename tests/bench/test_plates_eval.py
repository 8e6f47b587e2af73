"""The plate evaluation's scoring: edit operations, intervals, labels with errata, tallies."""

from types import SimpleNamespace

import pytest

from vigil.bench.plates_eval import Tally, edit_ops, load_labels, wilson


def reading(text, box=(10, 10, 110, 40), country=None, sure=False):
    return SimpleNamespace(text=text, box=box, country=country, sure=sure)


@pytest.mark.parametrize(
    "want,got,dist,ops",
    [
        ("AB123CD", "AB123CD", 0, []),
        ("AB123CD", "AB123", 2, [("C", ""), ("D", "")]),
        ("LY655PB", "655PB", 2, [("L", ""), ("Y", "")]),
        ("RK099AN", "RKO99AN", 1, [("0", "O")]),
        ("2T40211", "2T480211", 1, [("", "8")]),
        ("", "AB", 2, [("", "A"), ("", "B")]),
    ],
)
def test_edit_ops_give_the_distance_and_the_edits(want, got, dist, ops):
    assert edit_ops(want, got) == (dist, ops)


def test_wilson_interval_matches_the_closed_form():
    lo, hi = wilson(96, 108)
    assert (lo, hi) == (0.8158, 0.9353)  # p = 0.889, n = 108: centre 0.8755, half-width 0.0598
    assert wilson(0, 0) == (0.0, 0.0)
    assert wilson(10, 10)[1] == 1.0 and wilson(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)


def test_labels_apply_the_errata_and_keep_the_box(tmp_path):
    (tmp_path / "a.txt").write_text("a.jpg\t10\t20\t100\t30\tRKO99AN\n")
    (tmp_path / "b.txt").write_text("b.jpg\t1\t2\t3\t4\tAB 123 CD\n")
    (tmp_path / "ERRATA.md").write_text("| file | label | plate |\n|---|---|---|\n| a.jpg | RKO99AN | RK099AN |\n")
    items = load_labels(tmp_path)
    assert [(p.name, acc, b) for p, acc, b in items] == [
        ("a.jpg", {"RK099AN"}, (10.0, 20.0, 110.0, 50.0)),
        ("b.jpg", {"AB123CD"}, (1.0, 2.0, 4.0, 6.0)),
    ]
    (tmp_path / "c.txt").write_text("c.jpg\tx\t2\t3\t4\tAB123CD\n")
    with pytest.raises(ValueError, match="c.txt: bad box"):
        load_labels(tmp_path)


def test_tally_scores_exact_match_localisation_cer_groups_and_confusions():
    t = Tally("set")
    label_box = (12, 8, 108, 42)
    t.add({"AB123CD"}, reading("AB123CD", country="IT", sure=True), {"width": "90-130px"}, label_box, True, "1")
    t.add({"RK099AN"}, reading("RKO99AN", box=(200, 200, 260, 220)), {"width": "90-130px"}, label_box, True, "2")
    t.add({"FY655PB"}, None, {"width": "60-90px"}, label_box, False, "3")
    r = t.result()
    assert r["images"] == 3 and r["correct"] == 1 and r["exact_match"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["localisation_recall"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["localisation_recall_any_candidate"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["cer"] == pytest.approx((0 + 1 + 7) / 21, abs=1e-4)
    assert r["by"]["width"] == {"60-90px": {"accuracy": 0.0, "n": 1}, "90-130px": {"accuracy": 0.5, "n": 2}}
    assert r["confusions"]["0→O"] == 1 and r["confusions"]["F→∅"] == 1
    assert r["sure_readings"] == 1 and r["sure_precision"] == 1.0
    assert r["read_as_country"] == {"IT": 1, "unknown": 1} and r["read_as_italian_and_wrong"] == 0
    assert [m["file"] for m in r["misses"]] == ["2", "3"]


def test_the_evaluation_reads_as_a_node_does_unless_told_otherwise():
    """`vigil eval plates` measures PP-OCRv4 cross-checked by Vigil's line recogniser (the node's
    default); --recognizer picks one alone or the other way round."""
    import argparse
    import importlib.util

    if importlib.util.find_spec("rapidocr_onnxruntime") is None:
        pytest.skip("rapidocr-onnxruntime (PP-OCRv4 models) not installed: scripts/setup.sh installs it")
    from vigil.bench.plates_eval import _reader, add_eval_command
    from vigil.plates.ocr import PlateLineRecognizer, TextRecognizer

    parser = argparse.ArgumentParser()
    add_eval_command(parser.add_subparsers())
    args = parser.parse_args(["plates", "--synthetic", "4", "--threads", "1"])
    node = _reader(args, "IT")
    assert isinstance(node.recognizer, TextRecognizer) and isinstance(node.second, PlateLineRecognizer)
    assert node.cross_check == "unsure"
    alone = _reader(parser.parse_args(["plates", "--synthetic", "4", "--threads", "1", "--recognizer", "ppocr"]), "IT")
    assert alone.second is None
    swapped = _reader(
        parser.parse_args(["plates", "--synthetic", "4", "--recognizer", "vigil+ppocr", "--cross-check", "always"]),
        "IT",
    )
    assert isinstance(swapped.recognizer, PlateLineRecognizer) and isinstance(swapped.second, TextRecognizer)
    assert swapped.cross_check == "always"
