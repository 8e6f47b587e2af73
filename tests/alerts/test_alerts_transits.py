"""Transit recording at the aggregator: a list hit reaching `vigil tail` before its transit
ends, the no-hit transit stored pseudonymised (the store itself: tests/plates/test_transits.py)."""

import io
import json
import time

from vigil.alerts.events import event_from_change, utc_iso
from vigil.plates.transits import TransitStore, pseudonym

KEY = b"k" * 32


def test_aggregator_records_transits_and_hit_reaches_tail_first(tmp_path, monkeypatch, running_aggregator, wait_until):
    """Edge plate pipeline → publisher → aggregator → tail: the hit alarm arrives while the
    vehicle is still in view, before the transit; the no-hit transit is stored pseudonymised."""
    import numpy as np

    from vigil.alerts.publisher import EventPublisher
    from vigil.alerts.store import EventStore
    from vigil.edge.config import PlatesConfig
    from vigil.plates.pipeline import PlatePipeline

    from .test_alerts_pipeline import TailThread

    monkeypatch.setenv("VIGIL_PLATE_KEY", KEY.hex())
    lists = tmp_path / "a1.csv"
    lists.write_text("AB123CD,A1,stolen\n")
    cfg = PlatesConfig(
        enabled=True,
        mode="gate",
        watchlists=[lists],
        min_readings=2,
        close_after_s=0.5,
        evidence_dir=tmp_path / "evidence",
        line=[[0, 100], [400, 100]],
        queue_size=0,
    )
    reader = _ScriptedReader(
        {
            0: [("AB123CD", (100, 150))],
            1: [("A8123CD", (100, 120))],
            2: [("AB123CD", (100, 90))],
            3: [("AB123CD", (100, 60))],
            10: [("EF456GH", (300, 150))],
            11: [("EF456GH", (300, 140))],
        }
    )
    pipe = PlatePipeline(cfg, "gate-nord", reader=reader)
    db = tmp_path / "events.db"
    with running_aggregator(db) as agg:
        t = TailThread(agg.stream_endpoint, as_json=True, max_events=3)
        assert wait_until(lambda: agg.stats()["subscriptions"] >= 1)
        seq = 0
        with EventPublisher(agg.ingest_endpoint, timeout_s=1.0) as pub:
            for frame in range(20):
                for change in pipe.process(np.zeros((200, 400, 3), np.uint8), frame * 0.1):
                    seq += 1
                    pub.publish(
                        event_from_change(change, camera="gate-nord", seq=seq, time=utc_iso(time.time()), frame=frame)
                    )
            for change in pipe.flush():
                seq += 1
                pub.publish(event_from_change(change, camera="gate-nord", seq=seq, time=utc_iso(time.time()), frame=19))
            assert pub.flush(5).complete
        lines = [json.loads(x) for x in t.join()]
    assert [(e["type"], e["severity"]) for e in lines] == [
        ("plate_hit", "critical"),
        ("plate_transit", "critical"),
        ("plate_transit", "info"),
    ]
    hit, transit, other = lines
    assert hit["payload"]["plate"] == "AB123CD" and hit["payload"]["lists"] == ["A1"]
    assert hit["payload"]["evidence_id"] and (tmp_path / "evidence" / f"{hit['payload']['evidence_id']}.jpg").is_file()
    assert transit["payload"]["transit_id"] == hit["payload"]["transit_id"]
    assert transit["payload"]["direction"] == "in" and transit["payload"]["readings"] == 4
    assert "plate" not in other["payload"] and other["payload"]["plate_hash"] == pseudonym("EF456GH", KEY)
    with TransitStore(db, key=KEY) as ts:
        assert [r["hits"][0]["list"] for r in ts.search_plate("AB123CD")] == ["A1"]
        rows = ts.search_plate("EF456GH")
        assert len(rows) == 1 and rows[0]["pseudonymised"]
    with EventStore(db, readonly=True) as es:
        buf = io.StringIO()
        es.export_jsonl(buf)
    assert "EF456GH" not in buf.getvalue()


class _ScriptedReader:
    """Stands in for PlateReader: frame index -> [(text, (cx, cy))]."""

    def __init__(self, script):
        self.script, self.frame = script, -1

    def read(self, image, roi=None):
        import numpy as np

        from vigil.plates.reader import PlateReading

        self.frame += 1
        out = []
        for text, (cx, cy) in self.script.get(self.frame, []):
            out.append(
                PlateReading(
                    text,
                    0.9,
                    (cx - 40, cy - 10, cx + 40, cy + 10),
                    "car",
                    "IT",
                    text,
                    np.full((20, 80, 3), 200, np.uint8),
                )
            )
        return out
