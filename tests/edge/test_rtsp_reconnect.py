"""A live RTSP camera that goes away and comes back: the source reports the loss, reconnects,
and keeps latency bounded by dropping stale frames (counted). The camera is GStreamer's real
RTSP server on loopback (Debian packages, run by the system Python: tests/edge/rtsp_server.py)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import cv2
import pytest

from vigil.edge.sources import LiveSource

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")


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


def test_rtsp_camera_lost_and_back_is_reported_and_reconnected(mjpeg_clip: Path):
    port = _free_port()
    url = f"rtsp://127.0.0.1:{port}/cam"
    server = _start(mjpeg_clip, port)
    src = LiveSource(url, reconnect_backoff_s=0.2, max_backoff_s=0.5, open_timeout_s=3.0, read_timeout_s=2.0)
    frames = iter(src)
    try:
        first = [next(frames) for _ in range(5)]
        assert src.connected
        assert first[0].image.shape == (576, 768, 3)
        # the camera goes away
        server.terminate()
        server.wait(10)
        assert _wait(lambda: not src.connected, 10.0), "the loss of the stream was not noticed"
        # ... and comes back on the same address
        server = _start(mjpeg_clip, port)
        assert _wait(lambda: src.connected, 15.0), "did not reconnect"
        again = next(frames)
        assert again.index > first[-1].index
        assert src.stats.reconnects >= 1
        # a slow consumer gets fresh frames, not a backlog: frames in between are dropped and counted
        t_before = src.stats.stale_dropped
        time.sleep(1.0)
        newest = next(frames)
        assert src.stats.stale_dropped > t_before
        assert time.monotonic() - src.t0 - newest.timestamp < 0.5  # the frame handed out is recent
    finally:
        src.close()
        server.terminate()
        server.wait(10)
