"""Watch lists: CSV parsing with line-numbered errors, reload on change, tolerant matching."""

import os
from datetime import datetime, timezone

from vigil.plates.watchlists import WatchLists, parse_list


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    # make sure the change is visible even on coarse-mtime filesystems
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_malformed_rows_reported_with_line_numbers_rest_loaded(tmp_path):
    f = tmp_path / "a1.csv"
    _write(
        f,
        "plate,list,note,valid_until\n"
        "AB123CD,A1,stolen,2099-01-01\n"
        "only-one-column\n"
        "AB,C\n"
        "EF456GH,ZZ\n"
        "EF456GH,C,,31/12/2030\n"
        "\n"
        "# a comment\n"
        "GH 789 JK,uninsured\n"
        "JK012LM,A2,not inspected,,extra\n",
    )
    wl = WatchLists([f])
    assert sorted(e.plate for e in wl.entries()) == ["AB123CD", "GH789JK"]
    lines = sorted(int(e.split(":")[1]) for e in wl.errors)
    assert lines == [3, 4, 5, 6, 10]
    assert any("unknown list 'ZZ'" in e for e in wl.errors)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    wl = WatchLists([empty, tmp_path / "missing.csv"])
    assert len(wl) == 0
    assert wl.match("AB123CD") == []
    assert any("no such file" in e for e in wl.errors)
    assert parse_list("", "x") == ([], [])


def test_confusable_tolerant_match_and_expiry(tmp_path):
    f = tmp_path / "l.csv"
    _write(f, "AB123CD,A1,stolen\nEF456GH,C,flagged,2020-01-01\nEF456GH,A2,,2099-12-31\n")
    wl = WatchLists([f])
    hits = wl.match("A8I23C0")
    assert [(h.list, h.exact, h.plate) for h in hits] == [("A1", False, "AB123CD")]
    assert wl.match("ab 123 cd")[0].exact
    assert [h.list for h in wl.match("EF456GH")] == ["A2"]  # the C entry expired
    old = datetime(2019, 6, 1, tzinfo=timezone.utc)
    assert sorted(h.list for h in wl.match("EF456GH", when=old)) == ["A2", "C"]
    assert wl.match("ZZ999ZZ") == [] and wl.match("AB") == []


def test_list_edited_while_running_takes_effect_without_restart(tmp_path):
    f = tmp_path / "l.csv"
    _write(f, "AB123CD,A1\n")
    wl = WatchLists([f], check_interval_s=0)
    assert wl.match("AB123CD") and not wl.match("EF456GH")
    _write(f, "EF456GH,C,new entry\n")
    assert not wl.match("AB123CD")
    assert wl.match("EF456GH")[0].note == "new entry"
    # atomic replace (editors, config management) is seen too
    tmp = tmp_path / "l.csv.tmp"
    tmp.write_text("GH789JK,UNINSURED\n")
    os.replace(tmp, f)
    assert wl.match("GH789JK") and not wl.match("EF456GH")
    # a broken edit reports its lines and keeps loading the good rows
    _write(f, "GH789JK,UNINSURED\nbad row\n")
    assert wl.match("GH789JK") and any(":2:" in e for e in wl.errors)


def test_reload_is_rate_limited(tmp_path):
    f = tmp_path / "l.csv"
    _write(f, "AB123CD,A1\n")
    wl = WatchLists([f], check_interval_s=3600)
    _write(f, "EF456GH,A1\n")
    assert wl.match("AB123CD")  # not re-checked yet
    assert wl.reload() and wl.match("EF456GH")
