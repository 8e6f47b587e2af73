"""What happened, in pictures (vigil.edge.media through the edge worker): an alarm's start carries
the id of a privacy-masked snapshot stored as evidence, a plate hit also a short H.264 clip; each
camera's live tile is overwritten, never accumulated; ``record: false`` writes nothing at all and
says so in the events; expired snapshots and clips are purged."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from vigil.alarm import AlarmChange
from vigil.detectors.detections import Detections
from vigil.edge.config import ConfigError, parse_config
from vigil.edge.config_parts import MediaConfig
from vigil.edge.media import MediaRecorder
from vigil.edge.sources import Frame
from vigil.edge.worker import CameraPipeline
from vigil.geometry.camera import HomographyCamera
from vigil.privacy import privacy_mask

REPO = Path(__file__).resolve().parents[2]
CALIB = REPO / "deploy" / "examples" / "pets2009-view001.calib.yaml"
IMG = np.random.default_rng(3).integers(0, 256, (600, 800, 3), dtype=np.uint8)
BOXES = np.array([[100, 100, 300, 500], [150, 100, 350, 500]], np.float32)  # 0.5 m apart (100 px = 1 m)


class TwoPeople:
    class_names = ["person", "car"]

    def detect(self, image):
        return Detections(BOXES, np.full(2, 0.95, np.float32), np.zeros(2, np.int64))


def _pipeline(tmp_path: Path, media: str, frames: int = 20):
    text = f"""
version: 1
node: n
detector: {{type: darknet_onnx}}
tracker: {{ground: {{filter: false, occlusion_feet: false}}}}
output: {{media: {media}}}
cameras:
  - name: cam1
    source: a.mp4
    calibration: {CALIB}
    rules:
      distance: {{threshold_m: 1.0, hysteresis_m: 0.0, min_duration_s: 0, end_after_s: 0, update_interval_s: 0.5}}
"""
    cfg = parse_config(text, base_dir=tmp_path)
    pipe = CameraPipeline(cfg, cfg.cameras[0], fps=10, detector=TwoPeople(), wall_t0=1_800_000_000.0)
    pipe.model = HomographyCamera(np.diag([0.01, 0.01, 1.0]))
    events, frame = [], None
    for i in range(frames):
        frame = Frame(index=i, timestamp=i * 0.1, image=IMG)
        events += pipe.process(frame)[1]
    events += pipe.finish(frame)[0]
    return pipe, [e for e in events if e.type == "distance_violation"]


def test_an_alarm_start_carries_a_masked_snapshot_and_the_tile_is_overwritten(tmp_path: Path):
    ev_dir, tiles = tmp_path / "evidence", tmp_path / "tiles"
    pipe, events = _pipeline(tmp_path, f"{{evidence_dir: {ev_dir}, tiles_dir: {tiles}}}")
    assert [e.state for e in events] == ["start", "update", "update", "update", "end"]
    start = events[0].payload
    assert start["recording"] == "on" and len(start["snapshot_id"]) == 32
    assert all("snapshot_id" not in e.payload and "recording" not in e.payload for e in events[1:])
    sid = start["snapshot_id"]
    assert sorted(p.name for p in ev_dir.iterdir()) == [f"{sid}.jpg", f"{sid}.json"]
    assert stat.S_IMODE(ev_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((ev_dir / f"{sid}.jpg").stat().st_mode) == 0o600
    meta = json.loads((ev_dir / f"{sid}.json").read_text())
    assert (meta["kind"], meta["camera"], meta["alarm_id"], meta["frame"]) == ("snapshot", "cam1", start["alarm_id"], 1)
    snap = cv2.imread(str(ev_dir / f"{sid}.jpg")).astype(int)
    inner = (slice(140, 460), slice(160, 290))  # inside both boxes, away from the drawn lines
    masked = privacy_mask(IMG, BOXES).astype(int)
    assert np.abs(snap[inner] - masked[inner]).mean() < 6  # the pixelated picture (JPEG noise only)
    assert np.abs(snap[inner] - IMG[inner].astype(int)).mean() > 40  # not the people as filmed
    # 20 frames of 0.1 s, one tile a second: two written, one file, at most 640 px wide
    assert pipe.media.counts["tiles"] == 2
    assert [p.name for p in tiles.iterdir()] == ["cam1.jpg"]
    assert cv2.imread(str(tiles / "cam1.jpg")).shape == (480, 640, 3)


def test_nothing_is_recorded_mode_writes_no_picture_and_the_events_say_so(tmp_path: Path):
    ev_dir, tiles = tmp_path / "evidence", tmp_path / "tiles"
    _, events = _pipeline(tmp_path, f"{{record: false, evidence_dir: {ev_dir}, tiles_dir: {tiles}}}", frames=5)
    assert events[0].state == "start" and events[0].payload["recording"] == "off"
    assert "snapshot_id" not in events[0].payload
    assert not ev_dir.exists() and not tiles.exists()


def test_without_an_evidence_folder_the_start_says_nothing(tmp_path: Path):
    _, events = _pipeline(tmp_path, "{}", frames=3)
    assert "recording" not in events[0].payload and "snapshot_id" not in events[0].payload


def test_mask_classes_must_be_detector_classes(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"output.media.mask_classes: \['bicycle'\] are not detector classes"):
        _pipeline(tmp_path, "{mask_classes: [person, bicycle]}", frames=1)


def _hit(alarm_id: str = "5f0c2d4e-7a8b-4c1d-9e2f-3a4b5c6d7e11") -> AlarmChange:
    """A ``plate_hit`` start as vigil.plates.pipeline makes it (its payload fields in ``extra``)."""
    extra = {
        "transit_id": alarm_id,
        "plate": "AB123CD",
        "confidence": 0.97,
        "hits": [],
        "lists": ["A1"],
        "vehicle_class": "car",
        "evidence_id": None,
    }
    return AlarmChange(
        event_type="plate_hit", rule="plate", state="start", alarm_id=alarm_id, severity="critical",
        timestamp_s=1.9, extra=extra,
    )  # fmt: skip


def test_a_plate_hit_gets_a_clip_of_the_seconds_before_it(tmp_path: Path):
    cfg = MediaConfig(evidence_dir=tmp_path / "ev", clip_s=1.0, clip_fps=5.0)
    rec = MediaRecorder(cfg, "gate", ["person", "car"], fps=10.0, clips=True)
    tracked = Detections(BOXES[:1], np.ones(1, np.float32), np.zeros(1, np.int64), tracker_id=np.array([4]))
    for i in range(20):  # 2 s at 10 fps; the buffer keeps 5 frames, one per 0.2 s
        rec.observe(IMG, i * 0.1, tracked)
    (ch,) = rec.annotate([_hit()], IMG, 19, tracked)
    rec.close()
    cid, sid = ch.extra["clip_id"], ch.extra["snapshot_id"]
    assert ch.extra["recording"] == "on" and ch.extra["plate"] == "AB123CD" and cid != sid
    av = pytest.importorskip("av")
    with av.open(str(tmp_path / "ev" / f"{cid}.mp4")) as c:
        s = c.streams.video[0]
        got = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
        assert (s.codec_context.name, s.codec_context.pix_fmt) == ("h264", "yuv420p")
    assert len(got) == 5 and got[0].shape == (480, 640, 3)
    person = (slice(100, 380), slice(100, 220))  # the person box scaled by 0.8, inside its margin
    small = cv2.resize(IMG, (640, 480), interpolation=cv2.INTER_AREA)
    masked = privacy_mask(small, BOXES[:1] * 0.8).astype(int)
    assert np.abs(got[-1][person].astype(int) - masked[person]).mean() < 8  # masked in the clip
    assert np.abs(got[-1][person].astype(int) - small[person].astype(int)).mean() > 25
    assert json.loads((tmp_path / "ev" / f"{cid}.json").read_text())["kind"] == "clip"
    assert rec.counts == {"snapshots": 1, "clips": 1, "tiles": 0, "failures": 0}


def test_expired_snapshots_and_clips_are_purged_hourly(tmp_path: Path):
    cfg = MediaConfig(evidence_dir=tmp_path / "ev", evidence_retention_days=1.0, clip_s=0.4)
    rec = MediaRecorder(cfg, "gate", ["person"], fps=5.0, clips=True)
    for i in range(3):
        rec.observe(IMG, i * 0.2, Detections.empty())
    (ch,) = rec.annotate([_hit()], IMG, 2, Detections.empty())
    rec.close()
    now = time.time()
    assert rec.purge_if_due(now) is None  # the first frame already purged (nothing was due then)
    old = now - 2 * 86400
    for p in (tmp_path / "ev").iterdir():
        os.utime(p, (old, old))
    assert rec.purge_if_due(now + 3599) is None  # within the hour
    assert rec.purge_if_due(now + 3601) == 2  # the snapshot and the clip
    assert sorted(p.suffix for p in (tmp_path / "ev").iterdir()) == []
    assert ch.extra["clip_id"] and ch.extra["snapshot_id"]


class FakePlates:
    """The plate pipeline's interface to the worker: a hit on the 15th frame, nothing else."""

    def __init__(self):
        self.n = 0

    def process(self, image, timestamp, tracked, class_names):
        self.n += 1
        return [_hit()] if self.n == 15 else []

    def overlay(self, now):
        return [((600, 300, 700, 330), "AB123CD [A1]", True)]

    def flush(self):
        return []


def test_the_worker_gives_a_plate_hit_its_snapshot_and_clip(tmp_path: Path):
    text = f"""
version: 1
detector: {{type: darknet_onnx}}
tracker: {{ground: {{filter: false, occlusion_feet: false}}}}
output: {{media: {{evidence_dir: {tmp_path / "ev"}, clip_s: 1.0, clip_fps: 5}}}}
cameras: [{{name: gate, source: a.mp4, calibration: {CALIB}, rules: {{distance: {{enabled: false}}}}}}]
"""
    cfg = parse_config(text, base_dir=tmp_path)
    pipe = CameraPipeline(cfg, cfg.cameras[0], fps=10, detector=TwoPeople(), wall_t0=1_800_000_000.0)
    pipe.plates = FakePlates()
    pipe.media = MediaRecorder(cfg.output.media, "gate", pipe.class_names, pipe.scene, fps=10, clips=True)
    events = []
    for i in range(20):
        frame = Frame(index=i, timestamp=i * 0.1, image=IMG)
        events += pipe.process(frame)[1]
    events += pipe.finish(frame)[0]
    (hit,) = [e for e in events if e.type == "plate_hit"]
    p = hit.payload
    assert (p["frame"], p["recording"]) == (14, "on")
    assert (tmp_path / "ev" / f"{p['snapshot_id']}.jpg").is_file() and (
        tmp_path / "ev" / f"{p['clip_id']}.mp4"
    ).is_file()
    assert pipe.media.counts == {"snapshots": 1, "clips": 1, "tiles": 0, "failures": 0}


PERSON = Detections(BOXES[:1], np.full(1, 0.3, np.float32), np.zeros(1, np.int64))  # raw, not tracked


def test_raw_detections_not_in_a_track_are_masked_too_but_not_drawn(tmp_path: Path):
    rec = MediaRecorder(MediaConfig(), "cam", ["person", "car"])
    inner = (slice(140, 460), slice(140, 260))
    assert np.array_equal(rec.mask(IMG, Detections.empty()), IMG)  # nothing detected: nothing masked
    got = rec.mask(IMG, Detections.empty(), raw=PERSON)
    assert np.array_equal(got, privacy_mask(IMG, BOXES[:1]))
    car = Detections(BOXES[1:], np.ones(1, np.float32), np.ones(1, np.int64))  # not a mask class
    assert np.array_equal(rec.mask(IMG, Detections.empty(), raw=car), IMG)
    half = rec.mask(IMG, Detections.empty(), 0.5, PERSON)
    assert np.array_equal(half, privacy_mask(IMG, BOXES[:1] * 0.5))
    pic = rec.picture(IMG, Detections.empty(), raw=PERSON)  # no overlay for an untracked person
    assert np.array_equal(pic[inner], privacy_mask(IMG, BOXES[:1])[inner])


def test_the_worker_hands_the_raw_detections_to_the_media_recorder(tmp_path: Path):
    pipe, _ = _pipeline(tmp_path, f"{{tiles_dir: {tmp_path / 'tiles'}}}", frames=1)
    seen = []
    pipe.media.observe = lambda *a, raw=None, **k: seen.append(raw)
    pipe.process(Frame(index=1, timestamp=0.1, image=IMG))
    assert len(seen) == 1 and np.array_equal(seen[0].xyxy, BOXES)
    # the first frame's tile (t = 0) masks both people although no track was confirmed yet
    tile = cv2.imread(str(tmp_path / "tiles" / "cam1.jpg")).astype(int)
    small = cv2.resize(privacy_mask(IMG, BOXES), (640, 480), interpolation=cv2.INTER_AREA).astype(int)
    inner = (slice(120, 370), slice(130, 230))
    assert np.abs(tile[inner] - small[inner]).mean() < 6


def test_only_watch_list_hits_are_drawn_with_their_plate_text():
    rec = MediaRecorder(MediaConfig(), "gate", ["person", "car"])
    plain = rec.picture(IMG, Detections.empty())
    box = (600.0, 300.0, 700.0, 330.0)
    assert np.array_equal(rec.picture(IMG, Detections.empty(), plates=[(box, "AB123CD", False)]), plain)
    hit = rec.picture(IMG, Detections.empty(), plates=[(box, "AB123CD [A1]", True)])
    assert not np.array_equal(hit, plain)


def test_a_failing_tile_or_clip_frame_never_stops_the_camera(tmp_path: Path, caplog):
    cfg = MediaConfig(evidence_dir=tmp_path / "ev", tiles_dir=tmp_path / "tiles", clip_s=1.0, clip_fps=5.0)
    rec = MediaRecorder(cfg, "gate", ["person"], fps=10.0, clips=True)

    def boom(*a, **k):
        raise cv2.error("bad frame")

    rec.mask = boom
    with caplog.at_level("WARNING", logger="vigil.edge.media"):
        for i in range(20):  # 2 s: 2 tiles and 10 clip frames due, all failing
            rec.observe(IMG, i * 0.1, Detections.empty())
    assert rec.counts == {"snapshots": 0, "clips": 0, "tiles": 0, "failures": 12}
    assert len(rec._ring) == 0
    assert sorted(r.getMessage().split(" of ")[0] for r in caplog.records) == ["clip frame", "tile"]


def test_media_folders_are_private_and_the_store_does_not_blur_again(tmp_path: Path):
    cfg = MediaConfig(evidence_dir=tmp_path / "ev", tiles_dir=tmp_path / "tiles")
    rec = MediaRecorder(cfg, "gate", ["person"])
    assert rec.evidence.blur_faces is False  # the pictures are masked already
    assert stat.S_IMODE((tmp_path / "tiles").stat().st_mode) == 0o700
    rec.observe(IMG, 0.0, Detections.empty())
    assert rec.counts["tiles"] == 1
    assert stat.S_IMODE((tmp_path / "tiles" / "gate.jpg").stat().st_mode) == 0o600
