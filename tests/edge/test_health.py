"""Stream health (vigil.edge.health): clean vtest frames are never flagged; blank, frozen, garbled
(real decoder garbage: MJPEG streams damaged byte-wise and decoded by FFmpeg) and detection-less
streams are flagged within their configured time and cleared after; the worker emits them as
``camera_health`` events, the status file and ``vigil status`` say so, the metrics export them."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from vigil.alerts.events import Event
from vigil.alerts.payloads import CameraHealthPayload
from vigil.detectors.detections import Detections
from vigil.edge.config import parse_config
from vigil.edge.health import MAX_BLOCKS, HealthThresholds, StreamHealth, measure_frame
from vigil.edge.sources import Frame
from vigil.edge.status import StatusCollector, describe_state, write_status
from vigil.edge.worker import CameraPipeline, StatusReporter

FPS = 10.0
VTEST = Path(__file__).resolve().parents[2] / "data" / "vtest.avi"
TH = HealthThresholds(no_detections_after_s=None)  # the shipped defaults, detections left out


def _frames(path: Path, n: int | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while n is None or len(out) < n:
        ok, img = cap.read()
        if not ok:
            break
        out.append(img)
    cap.release()
    return out


@pytest.fixture(scope="module")
def clean() -> list[np.ndarray]:
    """All 795 frames of vtest.avi (decoded once for the module)."""
    if not VTEST.is_file():
        pytest.skip(f"{VTEST} missing: run `bash scripts/setup.sh` (extracts it from Debian's opencv-doc)")
    frames = _frames(VTEST)
    assert len(frames) == 795
    return frames


def _run(health: StreamHealth, images, t0: float = 0.0, detections: int = 1):
    """Feed ``images`` at 10 fps from stream time ``t0``; the changes and the stream time after."""
    changes = []
    t = t0
    for i, img in enumerate(images):
        t = t0 + i / FPS
        changes += health.update(t, img, detections, frame=int(round(t * FPS)))
    return changes, t + 1 / FPS


def _avi_chunks(data: bytes) -> list[tuple[int, int]]:
    """(payload offset, size) of every video chunk of an AVI file."""
    out = []
    i = data.find(b"movi") + 4
    while i + 8 <= len(data):
        tag, size = data[i : i + 4], struct.unpack("<I", data[i + 4 : i + 8])[0]
        if tag == b"idx1":
            break
        if tag == b"LIST":
            i += 12
            continue
        if tag[2:] in (b"dc", b"db"):
            out.append((i + 8, size))
        i += 8 + size + (size & 1)
    return out


def _mjpeg(tmp_path: Path, images, name: str) -> Path:
    path = tmp_path / name
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (w, h))
    for img in images:
        writer.write(img)
    writer.release()
    return path


def _damaged(path: Path, how: str, seed: int = 0) -> list[np.ndarray]:
    """The frames of ``path`` after damaging every frame's compressed bytes, decoded by FFmpeg:
    ``loss``: 1400-byte spans (RTP packets) zeroed with p = 0.15; ``halves``: the second half of
    every JPEG lost."""
    rng = np.random.default_rng(seed)
    data = bytearray(path.read_bytes())
    for off, size in _avi_chunks(bytes(data)):
        if how == "loss":
            for s in range(off + 1400, off + size, 1400):
                if rng.random() < 0.15:
                    e = min(s + 1400, off + size)
                    data[s:e] = bytes(e - s)
        else:
            data[off + size // 2 : off + size] = bytes(size - size // 2)
    bad = path.with_name(path.stem + f".{how}.avi")
    bad.write_bytes(bytes(data))
    return _frames(bad)


# ------------------------------------------------------------------------------ clean frames
def test_clean_vtest_frames_are_never_flagged(clean):
    """Every one of the 795 frames measured (a check per frame): no condition holds on any, and
    the measures keep a margin to the thresholds."""
    health = StreamHealth(HealthThresholds(check_interval_s=0.01, no_detections_after_s=None))
    changes, _ = _run(health, clean)
    assert changes == [] and health.state == "ok" and health.checks == 795
    worst = {"uniform": 0.0, "broken": 0.0, "change": np.inf}
    prev = None
    for img in clean[::5]:  # the measures themselves, 0.5 s apart as the default checks are
        m, prev = measure_frame(img, prev)
        worst["uniform"] = max(worst["uniform"], m.uniform)
        worst["broken"] = max(worst["broken"], m.broken)
        if m.change is not None:
            worst["change"] = min(worst["change"], m.change)
        assert m.std > 10 * TH.blank_std
    assert worst["uniform"] < TH.blank_uniform / 5  # measured: 0.075
    assert worst["broken"] < TH.garbled_blocks / 2  # measured: 0.019
    assert worst["change"] > TH.frozen_change  # measured: 0.39 (people walking in a still scene)


def test_clean_reencoded_mjpeg_is_not_flagged(clean, tmp_path):
    frames = _frames(_mjpeg(tmp_path, clean[:150], "clean.avi"))
    health = StreamHealth(TH)
    changes, _ = _run(health, frames)
    assert changes == [] and health.state == "ok"


# ------------------------------------------------------------------------------ bad streams
def _assert_episode(changes, condition: str, start_in: tuple[float, float], end_in: tuple[float, float] | None):
    starts = [c for c in changes if c.state == "start"]
    ends = [c for c in changes if c.state == "end"]
    assert [c.extra["condition"] for c in starts] == [condition], [(c.state, c.extra, c.timestamp_s) for c in changes]
    start = starts[0]
    assert start_in[0] - 1e-6 <= start.timestamp_s <= start_in[1] + 1e-6, start.timestamp_s
    assert start.event_type == "camera_health" and start.severity == "warning" and start.extra["health"] == condition
    if end_in is None:
        assert ends == []
        return start, None
    (end,) = ends
    assert end_in[0] - 1e-6 <= end.timestamp_s <= end_in[1] + 1e-6, end.timestamp_s
    assert end.alarm_id == start.alarm_id and end.severity == "info" and end.reason == "clear"
    assert end.extra == {"condition": condition, "health": "ok"}
    return start, end


def test_blank_picture_is_flagged_after_blank_after_s_and_cleared_after(clean):
    """3 s of scene, 8 s of a lens cap (dark grey with sensor noise and an OSD text), 8 s of scene."""
    rng = np.random.default_rng(1)
    cap = []
    for _ in range(80):
        img = np.clip(20 + rng.normal(0, 1.0, (576, 768, 3)), 0, 255).astype(np.uint8)
        cv2.putText(img, "CAM 1  2026-12-02 10:00:00", (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        cap.append(img)
    health = StreamHealth(TH)
    ch1, t = _run(health, clean[:30])
    ch2, t2 = _run(health, cap, t)
    assert health.state == "blank" and health.status()["health"] == "blank"
    ch3, _ = _run(health, clean[30:110], t2)
    onset, back = 3.0, t2
    start, end = _assert_episode(
        ch1 + ch2 + ch3,
        "blank",
        (onset + TH.blank_after_s, onset + TH.blank_after_s + TH.check_interval_s),
        (back + TH.clear_after_s - TH.check_interval_s, back + TH.clear_after_s + TH.check_interval_s),
    )
    assert start.metric == "uniform_fraction" and start.value >= TH.blank_uniform
    assert start.duration_s == pytest.approx(start.timestamp_s - start.started_at)
    assert start.started_at == pytest.approx(onset, abs=TH.check_interval_s)
    assert health.state == "ok"


def test_frozen_picture_is_flagged_after_frozen_after_s_and_cleared_after(clean, tmp_path):
    """One frame repeated for 25 s, through a real codec (MJPEG: re-encoded, decoded again)."""
    frozen = _frames(_mjpeg(tmp_path, [clean[300]] * 25, "frozen.avi")) * 10  # 250 frames: 25 s
    health = StreamHealth(TH)
    ch1, t = _run(health, clean[200:230])
    ch2, t2 = _run(health, frozen, t)
    st = health.status()
    assert st["health"] == "frozen" and st["health_s"] > TH.frozen_after_s
    ch3, _ = _run(health, clean[300:400], t2)
    onset = t  # the frozen picture is shown from here (the first check that sees no change is 0.5 s later)
    _assert_episode(
        ch1 + ch2 + ch3,
        "frozen",
        (onset + TH.frozen_after_s, onset + TH.frozen_after_s + 2 * TH.check_interval_s),
        (t2 + TH.clear_after_s - TH.check_interval_s, t2 + TH.clear_after_s + 2 * TH.check_interval_s),
    )


@pytest.mark.parametrize("how", ["loss", "halves"])
def test_garbled_stream_is_flagged_within_garbled_after_s_and_cleared_after(clean, tmp_path, how):
    """vtest as MJPEG with its bytes damaged (packets lost, or the second half of every frame),
    decoded by FFmpeg through OpenCV: the frames FFmpeg still returns are garbage."""
    garbage = _damaged(_mjpeg(tmp_path, clean[100:180], "cam.avi"), how)
    assert len(garbage) >= 60
    # the damage is real: far from the clean decode
    assert np.mean(np.abs(garbage[10].astype(np.int16) - clean[110])) > 5
    health = StreamHealth(TH)
    ch1, t = _run(health, clean[:30])
    ch2, t2 = _run(health, garbage, t)
    assert health.state == "garbled"
    ch3, _ = _run(health, clean[200:300], t2)
    start, _ = _assert_episode(
        ch1 + ch2 + ch3,
        "garbled",
        (t, t + TH.garbled_after_s),
        (t2 + TH.clear_after_s - TH.check_interval_s, t2 + TH.clear_after_s + 2 * TH.check_interval_s),
    )
    assert start.metric == "broken_block_fraction" and start.value >= TH.garbled_blocks


def test_no_detections_for_the_configured_time(clean):
    th = HealthThresholds(no_detections_after_s=3.0)
    health = StreamHealth(th)
    ch1, t = _run(health, clean[:20], detections=2)
    ch2, t2 = _run(health, clean[20:80], t, detections=0)
    assert health.state == "no_detections"
    ch3, _ = _run(health, clean[80:90], t2, detections=1)
    start, end = _assert_episode(ch1 + ch2 + ch3, "no_detections", (t + 3.0 - 0.1, t + 3.0 + 0.6), (t2, t2 + 0.6))
    assert start.metric == "seconds_without_detections" and start.value >= 3.0 and start.threshold == 3.0
    # off: never
    off = StreamHealth(HealthThresholds(no_detections_after_s=None))
    assert _run(off, clean[:80], detections=0)[0] == []


def test_a_blank_picture_is_reported_blank_not_frozen_and_the_switch_ends_one_alarm_and_starts_the_other(clean):
    """A grey frame is blank (and unchanging: frozen too); blank wins. When the grey picture turns
    into a frozen real one, the blank alarm ends (health: frozen) and a frozen one starts."""
    th = HealthThresholds(frozen_after_s=3.0, no_detections_after_s=None)
    health = StreamHealth(th)
    grey = [np.full((576, 768, 3), 128, np.uint8)] * 80  # flat concealment grey: blank, not garbled
    ch1, t = _run(health, grey)
    ch2, _ = _run(health, [clean[0]] * 60, t)
    steps = [(c.state, c.extra["condition"], c.extra["health"], c.timestamp_s) for c in ch1 + ch2]
    # the picture froze at 8.0 s, the first unchanged check is at 8.5 s: frozen from 11.5 s,
    # before the blank state's 5 s to clear (from the last blank check at 7.5 s) are over
    assert steps == [
        ("start", "blank", "blank", 5.0),
        ("end", "blank", "frozen", 11.5),
        ("start", "frozen", "frozen", 11.5),
    ]
    assert len({c.alarm_id for c in ch1 + ch2}) == 2 and ch2[0].reason == "clear"


def test_flush_ends_an_open_state_and_large_frames_are_analysed_in_bands():
    health = StreamHealth(TH)
    changes, t = _run(health, [np.zeros((1080, 1920, 3), np.uint8)] * 70)
    assert [c.state for c in changes] == ["start"] and health.state == "blank"
    (end,) = health.flush(t)
    assert end.reason == "flush" and end.extra["health"] == "ok" and health.state == "ok"
    # 1920 x 1080 is 8040 blocks: a band of whole block rows per check, moving down the frame
    img = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    img[540:] = 128  # the bottom half flat grey
    top, _ = measure_frame(img, band=0)
    bottom, _ = measure_frame(img, band=3)  # 67 block rows: 4 bands of 17
    assert top.broken < 0.05 and bottom.broken > 0.9 and (1080 // 16) * (1920 // 16) > MAX_BLOCKS


# ------------------------------------------------------------------------------ the worker
class NoDetector:
    class_names = ["person"]

    def detect(self, image):
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def _pipeline(tmp_path: Path, health: str = "") -> CameraPipeline:
    repo = Path(__file__).resolve().parents[2]
    calib = repo / "deploy" / "examples" / "pets2009-view001.calib.yaml"
    text = f"""
version: 1
detector: {{type: darknet_onnx}}
cameras:
  - name: cam1
    source: a.mp4
    calibration: {calib}
    {health}
"""
    cfg = parse_config(text, base_dir=tmp_path)
    return CameraPipeline(cfg, cfg.cameras[0], fps=FPS, detector=NoDetector(), wall_t0=1_800_000_000.0)


def test_worker_emits_camera_health_events_and_reports_health_in_its_status(tmp_path):
    pipe = _pipeline(tmp_path, "health: {blank_after_s: 2.0, no_detections_after_s: null}")
    black = np.zeros((576, 768, 3), np.uint8)
    events: list[Event] = []
    frame = None
    for i in range(40):  # 4 s of a black picture
        frame = Frame(index=i, timestamp=i / FPS, image=black)
        events += pipe.process(frame)[1]

    class Src:
        stats = type("S", (), {"corrupt_skipped": 0, "stale_dropped": 0, "reconnects": 0})()
        connected = True

    from vigil.edge.worker import RunReport

    reporter = StatusReporter("cam1", RunReport("cam1", frames=40), pipe, Src(), [], lambda s: None, 1.0, None)
    snap = reporter.snapshot()
    assert snap["state"] == "running" and snap["health"] == "blank" and snap["health_s"] == pytest.approx(3.9)
    assert snap["health_measures"]["uniform"] == 1.0 and snap["stages_ms"]["health"] >= 0
    events += pipe.finish(frame)[0]

    assert [(e.type, e.state, e.severity) for e in events] == [
        ("camera_health", "start", "warning"),
        ("camera_health", "end", "info"),
    ]
    start, end = events
    assert [e.seq for e in events] == [1, 2]
    for ev in events:
        CameraHealthPayload.model_validate(ev.payload)  # the typed model of the type
        assert Event.from_json(ev.to_bytes()) == ev
    assert start.payload == {
        "alarm_id": start.payload["alarm_id"],
        "rule": "health",
        "condition": "blank",
        "health": "blank",
        "metric": "uniform_fraction",
        "value": 1.0,
        "threshold": 0.95,
        "duration_s": 2.0,
        "frame": 20,
    }
    assert end.payload["alarm_id"] == start.payload["alarm_id"] and end.payload["reason"] == "flush"
    assert end.payload["health"] == "ok" and end.payload["frame"] == 39

    # the status file: `vigil status` says running (blank N s), the metrics carry the health
    status_dir = tmp_path / "status"
    write_status(status_dir, snap)
    assert describe_state(snap, now=snap["updated"] + 1.0) == "running (blank 5 s)"
    assert describe_state({**snap, "health": "ok", "health_s": None}, now=snap["updated"]) == "running"
    refused = {**snap, "health": "ok", "aggregator_link": "refused", "aggregator_refused": "not in its allow-list"}
    assert describe_state(refused, now=snap["updated"]) == "running (aggregator refused the key)"
    assert describe_state({**snap, "state": "connecting"}, now=snap["updated"]) == "connecting"
    metrics = {m.name: m for m in StatusCollector(status_dir).collect()}
    (sample,) = metrics["vigil_camera_health"].samples
    assert sample.labels == {"camera": "cam1", "state": "blank"} and sample.value == 1.0
    assert metrics["vigil_camera_health_seconds"].samples[0].value >= 3.9


def test_health_config_defaults_and_off(tmp_path):
    pipe = _pipeline(tmp_path)
    assert pipe.health is not None and pipe.health.th == HealthThresholds()
    assert pipe.health.th.no_detections_after_s == 600.0
    assert _pipeline(tmp_path, "health: {enabled: false}").health is None
