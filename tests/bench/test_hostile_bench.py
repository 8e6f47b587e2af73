"""``vigil bench hostile`` runs end to end (a short run: the figures are in bench/README.md)."""

from __future__ import annotations

import pytest

from vigil.bench.hostile import CLASSES, run_hostile


def test_a_short_hostile_run_reports_each_phase(tmp_path):
    report = run_hostile(["out_of_range", "unknown_key"], seconds=1.0, rate=200.0, preload=0, workdir=tmp_path)
    assert report["aggregator_alive"]
    assert list(report["phases"]) == [
        "clean_before_out_of_range",
        "out_of_range",
        "clean_before_unknown_key",
        "unknown_key",
    ]
    for name, row in report["phases"].items():
        assert row["stored_per_s"] > 100, (name, row)  # the honest publisher kept going
        assert row["peak_rss_mb"] > 10
    assert report["phases"]["out_of_range"]["hostile_sent"] > 100
    assert report["phases"]["out_of_range"]["log_lines"] <= 15  # rate-limited


def test_unknown_classes_are_refused():
    with pytest.raises(ValueError, match="unknown hostile class"):
        run_hostile(["nope"])
    assert "big_messages" in CLASSES
