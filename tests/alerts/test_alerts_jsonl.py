import pytest

from vigil.alerts.events import EventError
from vigil.alerts.jsonl import JsonlEventWriter, iter_jsonl_events


def test_each_line_is_on_disk_when_write_returns(tmp_path, make_event):
    path = tmp_path / "events.jsonl"
    events = [make_event() for _ in range(3)]
    with JsonlEventWriter(path) as writer:
        for i, ev in enumerate(events, 1):
            writer.write(ev)
            lines = path.read_bytes().split(b"\n")
            assert lines[-1] == b"" and len(lines) == i + 1  # whole lines only
    assert list(iter_jsonl_events(path)) == events


def test_appends_and_seals_a_partial_line(tmp_path, make_event, caplog):
    path = tmp_path / "events.jsonl"
    a, b = make_event(), make_event()
    with JsonlEventWriter(path) as writer:
        writer.write(a)
    with open(path, "ab") as fh:  # a crash in the middle of a line
        fh.write(b.to_bytes()[:20])
    c = make_event()
    with JsonlEventWriter(path, fsync=True) as writer:
        writer.write(c)
    assert "partial line" in caplog.text
    assert list(iter_jsonl_events(path)) == [a, c]
    with pytest.raises(EventError, match=r"events.jsonl:2"):
        list(iter_jsonl_events(path, strict=True))


def test_closed_writer_refuses(tmp_path, make_event):
    writer = JsonlEventWriter(tmp_path / "e.jsonl")
    writer.close()
    writer.close()
    with pytest.raises(ValueError):
        writer.write(make_event())


def test_writer_is_an_event_sink(tmp_path, make_event):
    """Same `publish(event)` call as EventPublisher, so the worker treats both as sinks."""
    ev = make_event()
    with JsonlEventWriter(tmp_path / "e.jsonl") as writer:
        writer.publish(ev)
    assert list(iter_jsonl_events(tmp_path / "e.jsonl")) == [ev]
