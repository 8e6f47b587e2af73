"""The edge worker's events of a hand-made trajectory: every step of one alarm carries the same
``alarm_id`` (schema 2), a new alarm gets a new one, and each payload fits its typed model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vigil.alerts.events import Event
from vigil.alerts.payloads import DistanceViolationPayload
from vigil.detectors.detections import Detections
from vigil.edge.config import parse_config
from vigil.edge.sources import Frame
from vigil.edge.worker import CameraPipeline
from vigil.geometry.camera import HomographyCamera

IMG = np.zeros((600, 800, 3), np.uint8)


def _boxes(gap_px: float) -> np.ndarray:
    """Two people standing on y = 500 px, ``gap_px`` apart (100 px = 1 m on the ground)."""
    return np.array([[100, 100, 300, 500], [100 + gap_px, 100, 300 + gap_px, 500]], np.float32)


class ScriptedDetector:
    class_names = ["person"]

    def __init__(self, gaps_px):
        self.gaps = list(gaps_px)
        self.k = 0

    def detect(self, image):
        boxes = _boxes(self.gaps[min(self.k, len(self.gaps) - 1)])
        self.k += 1
        return Detections(boxes, np.full(2, 0.95, np.float32), np.zeros(2, np.int64))


def test_alarm_id_continuity_through_the_worker_events(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    calib = repo / "deploy" / "examples" / "pets2009-view001.calib.yaml"
    text = f"""
version: 1
node: n
detector: {{type: darknet_onnx}}
tracker: {{ground: {{filter: false, occlusion_feet: false}}}}  # the homography below replaces the model
cameras:
  - name: cam1
    source: a.mp4
    calibration: {calib}
    rules:
      distance: {{threshold_m: 1.0, hysteresis_m: 0.0, min_duration_s: 0, end_after_s: 0, update_interval_s: 0.3}}
"""
    cfg = parse_config(text, base_dir=tmp_path)
    # close (0.5 m) for 1 s, apart (1.2 m) for 0.5 s, close again for 0.5 s; 10 frames per second
    gaps = [50] * 10 + [120] * 5 + [50] * 5
    pipe = CameraPipeline(cfg, cfg.cameras[0], fps=10, detector=ScriptedDetector(gaps), wall_t0=1_800_000_000.0)
    pipe.model = HomographyCamera(np.diag([0.01, 0.01, 1.0]))  # pixels / 100 = metres
    events: list[Event] = []
    frame = None
    for i in range(len(gaps)):
        frame = Frame(index=i, timestamp=i * 0.1, image=IMG)
        events += pipe.process(frame)[1]
    events += pipe.finish(frame)[0]

    steps = [(e.payload["frame"], e.state) for e in events]
    # the tracker confirms the tracks on the second frame; updates every 0.3 s; apart at frame 10
    assert steps == [
        (1, "start"),
        (4, "update"),
        (7, "update"),
        (10, "end"),
        (15, "start"),
        (18, "update"),
        (19, "end"),
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    first, second = events[:4], events[4:]
    assert len({e.payload["alarm_id"] for e in first}) == 1 and len({e.payload["alarm_id"] for e in second}) == 1
    assert first[0].payload["alarm_id"] != second[0].payload["alarm_id"]
    assert [e.payload.get("reason") for e in events if e.state == "end"] == ["clear", "flush"]
    for e in events:
        assert e.schema_ == 2 and e.type == "distance_violation" and e.camera == "cam1"
        p = DistanceViolationPayload.model_validate(e.payload)
        assert p.rule == "distance" and p.metric == "distance_m" and p.threshold_m == 1.0
        assert Event.from_json(e.to_bytes()) == e
    end = first[-1].payload  # apart at frame 10: the end carries that distance, and the smallest one
    assert (end["distance_m"], end["min_distance_m"], end["decision"]) == (1.2, 0.5, "point")
    start = first[0].payload
    assert start["distance_m"] == 0.5 and start["classes"] == ["person", "person"] and start["zone"] is None
    assert start["positions_m"] == {"1": [2.0, 5.0], "2": [2.5, 5.0]} and start["tracks"] == [1, 2]
