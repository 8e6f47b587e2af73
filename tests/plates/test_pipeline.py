"""Edge plate pipeline: gate and traffic modes, per-pass voting, direction, watch-list reload,
config, and the CameraPipeline wiring. Tests that script the reader frame by frame read inline
(``queue_size=0``): with the OCR thread a full queue drops frames, which would shift the script;
the threaded path is tested in test_pipeline_queue.py."""

import os
from pathlib import Path

import numpy as np
import pytest

from vigil.detectors.detections import Detections
from vigil.edge.config import ConfigError, parse_config
from vigil.edge.config_parts import PlatesConfig
from vigil.plates.pipeline import PlatePipeline, side_of_line
from vigil.plates.reader import PlateReading

IMG = np.zeros((480, 640, 3), np.uint8)


class ScriptedReader:
    """frame -> [(text, conf, (cx, cy))]; records the ROIs it was asked to search."""

    def __init__(self, script):
        self.script, self.frame, self.rois = script, -1, []

    def read(self, image, roi=None):
        self.frame += 1
        self.rois.append(roi)
        return [
            PlateReading(t, c, (x - 40, y - 10, x + 40, y + 10), "car", "IT", t, np.full((20, 80, 3), 200, np.uint8))
            for t, c, (x, y) in self.script.get(self.frame, [])
        ]


def run(pipe, frames, dt=0.1, tracked=None, names=()):
    specs = []
    for i in range(frames):
        specs += pipe.process(IMG, i * dt, tracked(i) if tracked else None, names)
    return specs + pipe.flush()


def test_gate_one_transit_per_pass_with_voting_and_direction():
    cfg = PlatesConfig(
        enabled=True, mode="gate", min_readings=2, close_after_s=0.5, line=[[0, 200], [640, 200]], queue_size=0
    )
    # a car driving up the frame (crosses y=200 upwards: from the right of A->B to its left -> "in")
    script = {
        i: [(t, 0.9, (300, 300 - 30 * i))]
        for i, t in enumerate(["AB123CD", "A8123CD", "AB123CD", "AB123CO", "AB123CD", "AB123CD"])
    }
    # a second car later, driving down, read once only at low confidence: too few readings -> no transit
    script[20] = [("EF456GH", 0.8, (100, 100))]
    # a third, driving down across the line
    script.update({30 + i: [("GH789JK", 0.95, (500, 150 + 40 * i))] for i in range(3)})
    pipe = PlatePipeline(cfg, "gate", reader=ScriptedReader(script))
    specs = run(pipe, 40)
    transits = [s for s in specs if s.event_type == "plate_transit"]
    assert [(s.extra["plate"], s.extra["direction"]) for s in transits] == [
        ("AB123CD", "in"),
        ("GH789JK", "out"),
    ]
    first = transits[0].extra
    assert first["readings"] == 6 and first["votes"]["AB123CD"] > first["votes"]["A8123CD"]
    assert 0 < first["confidence"] <= 0.9 and first["hits"] == [] and transits[0].severity == "info"
    assert all(s.event_type != "plate_hit" for s in specs)


def test_side_of_line_convention():
    line = [[0, 100], [100, 100]]
    assert side_of_line(line, (50, 50)) > 0 > side_of_line(line, (50, 150))


def test_gate_roi_is_passed_to_the_reader():
    reader = ScriptedReader({})
    pipe = PlatePipeline(PlatesConfig(enabled=True, roi=[10, 20, 300, 400], queue_size=0), "gate", reader=reader)
    pipe.process(IMG, 0.0)
    assert reader.rois == [(10, 20, 300, 400)]


def test_traffic_mode_reads_inside_vehicles_and_votes_per_track():
    names = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck"]
    reader = ScriptedReader(
        {i: [("AB123CD", 0.9, (200, 300))] for i in range(0, 8, 2)}
        | {i: [("XA456BC", 0.9, (500, 300))] for i in range(1, 8, 2)}
    )

    def tracked(i):
        if i >= 4:
            return Detections.empty()
        return Detections(
            xyxy=np.array([[100, 200, 300, 400], [400, 200, 600, 400], [0, 0, 50, 150]], np.float32),
            confidence=np.ones(3),
            class_id=np.array([2, 7, 0]),
            tracker_id=np.array([5, 6, 9]),
        )

    cfg = PlatesConfig(enabled=True, mode="traffic", min_readings=2, close_after_s=0.3, queue_size=0)
    pipe = PlatePipeline(cfg, "traffic", reader=reader)
    specs = run(pipe, 12, tracked=tracked, names=names)
    got = sorted((s.extra["plate"], s.extra["vehicle_class"]) for s in specs if s.event_type == "plate_transit")
    assert got == [("AB123CD", "car"), ("XA456BC", "truck")]
    # vehicles searched, the person never: ROIs are vehicle boxes
    assert all(r in [(100.0, 200.0, 300.0, 400.0), (400.0, 200.0, 600.0, 400.0)] for r in reader.rois)


def test_hit_alarm_before_transit_and_list_edit_takes_effect(tmp_path):
    lst = tmp_path / "lists.csv"
    lst.write_text("ZZ000ZZ,A1\n")
    cfg = PlatesConfig(
        enabled=True,
        watchlists=[lst],
        watchlist_check_s=0,
        min_readings=2,
        close_after_s=0.3,
        evidence_dir=tmp_path / "ev",
        queue_size=0,
    )
    script = {i: [("AB123CD", 0.9, (300, 300))] for i in range(3)}
    script.update({20 + i: [("AB123CD", 0.9, (300, 300))] for i in range(3)})
    pipe = PlatePipeline(cfg, "gate", reader=ScriptedReader(script))
    specs = []
    for i in range(10):
        specs += pipe.process(IMG, i * 0.1)
    assert [s.event_type for s in specs] == ["plate_transit"] and specs[0].extra["hits"] == []
    lst.write_text("ZZ000ZZ,A1\nAB 123 CD,C,flagged by police\n")
    st = lst.stat()
    os.utime(lst, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    specs = []
    for i in range(10, 30):
        specs += pipe.process(IMG, i * 0.1)
    assert [(s.event_type, s.severity) for s in specs] == [("plate_hit", "critical"), ("plate_transit", "critical")]
    hit = specs[0].extra
    assert hit["lists"] == ["C"] and hit["evidence_id"]
    # one alarm per pass: the hit starts it, the transit ends it, both with the pass's id
    assert [s.state for s in specs] == ["start", "end"] and specs[0].alarm_id == specs[1].alarm_id == hit["transit_id"]
    assert (tmp_path / "ev" / f"{hit['evidence_id']}.jpg").is_file()
    assert (os.stat(tmp_path / "ev").st_mode & 0o777) == 0o700


def test_config_plates_section(tmp_path):
    base = """
version: 1
node: n
detector: {type: darknet_onnx}
cameras:
  - name: gate-nord
    source: a.mp4
    calibration: a.calib.yaml
"""
    cfg = parse_config(base, base_dir=tmp_path)
    assert cfg.cameras[0].plates.enabled is False
    text = (
        base
        + """    plates:
      enabled: true
      mode: gate
      roi: [0, 100, 1280, 720]
      line: [[0, 400], [1280, 400]]
      watchlists: [lists/a1.csv]
"""
    )
    cam = parse_config(text, base_dir=tmp_path).cameras[0]
    assert cam.plates.mode == "gate" and cam.plates.watchlists == [tmp_path / "lists" / "a1.csv"]
    with pytest.raises(ConfigError):
        parse_config(base + "    plates: {enabled: true, mode: tolls}\n", base_dir=tmp_path)
    with pytest.raises(ConfigError):
        parse_config(base + "    plates: {enabled: true, roi: [100, 100, 50, 50]}\n", base_dir=tmp_path)
    with pytest.raises(ConfigError):
        parse_config(base + "    plates: {enabled: true, colour: red}\n", base_dir=tmp_path)
    # the region: a country of the format table (band codes too), or auto
    assert cam.plates.region == "IT"
    for given, want in (("SK", "SK"), ("br", "BR"), ("D", "DE"), ("auto", "auto")):
        text = base + f"    plates: {{enabled: true, region: {given}}}\n"
        assert parse_config(text, base_dir=tmp_path).cameras[0].plates.region == want
    with pytest.raises(ConfigError, match="unknown plate region 'XX'"):
        parse_config(base + "    plates: {enabled: true, region: XX}\n", base_dir=tmp_path)


def test_camera_pipeline_emits_plate_events(tmp_path, monkeypatch):
    """CameraPipeline wiring: plate specs become numbered events; the stream end flushes passes."""
    from vigil.edge.sources import Frame
    from vigil.edge.worker import CameraPipeline
    from vigil.plates import pipeline as plates_mod

    repo = Path(__file__).resolve().parents[2]
    calib = repo / "deploy" / "examples" / "pets2009-view001.calib.yaml"
    text = f"""
version: 1
node: n
detector: {{type: darknet_onnx}}
cameras:
  - name: gate-nord
    source: a.mp4
    calibration: {calib}
    plates: {{enabled: true, min_readings: 2, queue_size: 0}}
"""
    cfg = parse_config(text, base_dir=tmp_path)

    class NoDetector:
        class_names = ["person", "car"]

        def detect(self, image):
            return Detections.empty()

    script = {i: [("AB123CD", 0.9, (300, 300))] for i in range(3)}
    real_init = plates_mod.PlatePipeline.__init__
    monkeypatch.setattr(
        plates_mod.PlatePipeline,
        "__init__",
        lambda self, c, cam, **kw: real_init(self, c, cam, reader=ScriptedReader(script)),
    )
    pipe = CameraPipeline(cfg, cfg.cameras[0], fps=10, detector=NoDetector())
    events = []
    frame = None
    for i in range(4):
        frame = Frame(index=i, timestamp=i * 0.1, image=IMG)
        events += pipe.process(frame)[1]
    events += pipe.finish(frame)[0]
    assert [e.type for e in events] == ["plate_transit"]
    assert events[0].payload["plate"] == "AB123CD" and events[0].camera == "gate-nord" and events[0].seq >= 1


class QualityReader:
    """frame -> [PlateReading] as given (quality and sure set by the test)."""

    def __init__(self, script):
        self.script, self.frame = script, -1

    def read(self, image, roi=None):
        self.frame += 1
        return list(self.script.get(self.frame, []))


def _reading(text, conf, quality, sure=False, x=300, y=300):
    r = PlateReading(
        text, conf, (x - 40, y - 10, x + 40, y + 10), "car", "IT", text, np.full((20, 80, 3), 200, np.uint8)
    )
    r.quality, r.sure = quality, sure
    return r


def test_votes_weigh_each_reading_by_its_quality_and_sureness():
    # three blurred, distant reads of a wrong text against two sharp, sure reads of the right one
    script = {i: [_reading("AB128CD", 0.8, 0.2)] for i in range(3)}
    script.update({3 + i: [_reading("AB123CD", 0.7, 0.9, sure=True)] for i in range(2)})
    cfg = PlatesConfig(enabled=True, mode="gate", min_readings=2, close_after_s=0.5, queue_size=0)
    pipe = PlatePipeline(cfg, "gate", reader=QualityReader(script))
    specs = run(pipe, 12)
    (transit,) = [s for s in specs if s.event_type == "plate_transit"]
    votes = transit.extra["votes"]
    assert transit.extra["plate"] == "AB123CD"
    assert votes == {
        "AB123CD": pytest.approx(2 * 0.7 * 0.9 * 2, abs=1e-3),
        "AB128CD": pytest.approx(3 * 0.8 * 0.2, abs=1e-3),
    }


def test_overlay_lists_the_recent_passes_with_their_leading_text():
    script = {0: [_reading("AB123CD", 0.9, 1.0, x=200, y=150)], 1: [_reading("AB123CD", 0.9, 1.0, x=210, y=150)]}
    cfg = PlatesConfig(enabled=True, mode="gate", min_readings=1, close_after_s=5.0, queue_size=0)
    pipe = PlatePipeline(cfg, "gate", reader=QualityReader(script))
    pipe.process(IMG, 0.0)
    pipe.process(IMG, 0.1)
    assert pipe.overlay(0.2) == [((170.0, 140.0, 250.0, 160.0), "AB123CD", False)]
    assert pipe.overlay(3.0) == []  # not read for more than a second: not drawn
    pipe.flush()
