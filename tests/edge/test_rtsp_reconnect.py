"""A live RTSP camera that goes away and comes back: the source reports the loss, reconnects,
and keeps latency bounded by dropping stale frames (counted). The camera is GStreamer's real
RTSP server on loopback (Debian packages, run by the system Python: tests/edge/rtsp_server.py).

The frames are checked for what they show, not only their shape: before the loss and after the
reconnect each one matches a frame of the clip the server streams (mean absolute difference to
it within ``MATCH_MAD`` grey levels; the JPEG data travels unchanged, so it is the same decode)
and passes the stream-health measures (vigil.edge.health)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from vigil.edge.health import HealthThresholds, measure_frame
from vigil.edge.sources import Frame, LiveSource

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")
#: a received frame matches a clip frame when its mean absolute difference (grey levels, full size) is below this
MATCH_MAD = 3.0


def _gst_available() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return "no system Python at /usr/bin/python3"
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    if subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode != 0:
        return "GStreamer RTSP server bindings missing (Debian: gir1.2-gst-rtsp-server-1.0 python3-gst-1.0 python3-gi)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(video: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(SERVER), str(video), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise RuntimeError(f"RTSP server did not start: {line!r}")
    return proc


def _wait(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


@pytest.fixture
def mjpeg_clip(vtest: Path, tmp_path: Path) -> Path:
    reason = _gst_available()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "clip.avi"
    cap = cv2.VideoCapture(str(vtest))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 576))
    for _ in range(300):  # 30 s at 10 fps: longer than the test
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(frame)
    writer.release()
    cap.release()
    return out


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.int16)


@pytest.fixture
def clip_frames(mjpeg_clip: Path) -> list[np.ndarray]:
    """The clip's frames as this machine decodes them (grey, int16): what the camera sends."""
    cap = cv2.VideoCapture(str(mjpeg_clip))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        out.append(_grey(img))
    cap.release()
    assert len(out) == 300
    return out


def _assert_shows_the_clip(frame: Frame, clip: list[np.ndarray]) -> int:
    """``frame`` is one of the clip's frames (returns its position), and a healthy picture."""
    assert frame.image.shape == (576, 768, 3) and frame.image.dtype == np.uint8
    g = _grey(frame.image)
    small = g[::8, ::8]
    nearest = int(np.argmin([np.mean(np.abs(small - c[::8, ::8])) for c in clip]))
    mad = float(np.mean(np.abs(g - clip[nearest])))
    assert mad < MATCH_MAD, f"frame {frame.index} matches no clip frame (nearest {nearest}, MAD {mad:.1f})"
    m, _ = measure_frame(frame.image)
    th = HealthThresholds()
    assert m.uniform < th.blank_uniform and m.broken < th.garbled_blocks, m
    return nearest


def test_rtsp_camera_lost_and_back_is_reported_and_reconnected(mjpeg_clip: Path, clip_frames: list[np.ndarray]):
    port = _free_port()
    url = f"rtsp://127.0.0.1:{port}/cam"
    server = _start(mjpeg_clip, port)
    src = LiveSource(url, reconnect_backoff_s=0.2, max_backoff_s=0.5, open_timeout_s=3.0, read_timeout_s=2.0)
    frames = iter(src)
    try:
        first = [next(frames) for _ in range(5)]
        assert src.connected
        shown = [_assert_shows_the_clip(f, clip_frames) for f in first]
        assert shown == sorted(shown) and len(set(shown)) >= 2  # the clip, playing forward
        # the camera goes away
        server.terminate()
        server.wait(10)
        assert _wait(lambda: not src.connected, 10.0), "the loss of the stream was not noticed"
        lost_at = time.monotonic() - src.t0
        # ... and comes back on the same address
        server = _start(mjpeg_clip, port)
        assert _wait(lambda: src.connected, 15.0), "did not reconnect"
        again = next(frames)
        assert again.index > first[-1].index
        assert src.stats.reconnects >= 1
        # after the reconnect: real pictures of the clip again (the restarted server plays it from
        # the start). The first frame handed out may still be the last one read before the loss
        # (its timestamp says so): every frame is a clip frame, and those read after the loss play forward.
        after = [again] + [next(frames) for _ in range(4)]
        shown = [_assert_shows_the_clip(f, clip_frames) for f in after]
        fresh = [k for f, k in zip(after, shown) if f.timestamp > lost_at]
        assert len(fresh) >= 4 and fresh == sorted(fresh) and len(set(fresh)) >= 2
        # a slow consumer gets fresh frames, not a backlog: frames in between are dropped and counted
        t_before = src.stats.stale_dropped
        time.sleep(1.0)
        newest = next(frames)
        assert src.stats.stale_dropped > t_before
        assert time.monotonic() - src.t0 - newest.timestamp < 0.5  # the frame handed out is recent
        assert _assert_shows_the_clip(newest, clip_frames) > shown[-1]  # ... and later in the clip
    finally:
        src.close()
        server.terminate()
        server.wait(10)
