"""Browser-playable MP4 (vigil.edge.video): H.264, yuv420p, the index first (+faststart), every
frame there, odd sizes padded; mp4v with a warning when PyAV is missing; the annotated replay
video is H.264 too."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from vigil.detectors.detections import Detections
from vigil.edge import video as video_mod
from vigil.edge.video import VideoFileWriter, write_clip

av = pytest.importorskip("av")


def _probe(path: Path) -> dict:
    """What ffprobe would say: codec, pixel format, size, decoded frame count, box order."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        info = {"codec": s.codec_context.name, "pix_fmt": s.codec_context.pix_fmt, "size": (s.width, s.height)}
        info["frames"] = sum(1 for _ in c.decode(video=0))
    data = path.read_bytes()
    info["moov_first"] = 0 <= data.find(b"moov") < data.find(b"mdat")
    return info


def _frames(n: int, w: int, h: int) -> list[np.ndarray]:
    return [np.full((h, w, 3), (10 * i) % 256, np.uint8) for i in range(n)]


def test_h264_yuv420p_faststart_with_every_frame(tmp_path: Path):
    path = tmp_path / "clip.mp4"
    assert write_clip(path, _frames(12, 320, 240), 7.0) == "h264"
    assert _probe(path) == {"codec": "h264", "pix_fmt": "yuv420p", "size": (320, 240), "frames": 12, "moov_first": True}


def test_an_odd_size_is_padded_to_even(tmp_path: Path):
    w = VideoFileWriter(tmp_path / "odd.mp4", 10.0, (321, 241))
    assert w.size_px == (322, 242)
    for f in _frames(3, 321, 241):
        w.write(f)
    w.close()
    assert _probe(tmp_path / "odd.mp4")["size"] == (322, 242)
    with pytest.raises(ValueError, match="frame is 320x240, expected"):
        VideoFileWriter(tmp_path / "x.mp4", 10.0, (321, 241)).write(_frames(1, 320, 240)[0])


def test_without_pyav_it_falls_back_to_mp4v_with_a_warning(tmp_path: Path, monkeypatch, caplog):
    monkeypatch.setattr(video_mod, "h264_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="vigil.edge.video"):
        codec = write_clip(tmp_path / "old.mp4", _frames(5, 160, 120), 5.0)
    assert codec == "mp4v"
    assert "PyAV with libx264 is not installed: writing mp4v" in caplog.text
    assert _probe(tmp_path / "old.mp4")["codec"] == "mpeg4"


def test_the_annotated_replay_video_is_h264(tmp_path: Path):
    from vigil.edge.outputs import AnnotatedVideo

    v = AnnotatedVideo(tmp_path / "a.mp4", 7.0, (320, 240), ["person"])
    empty = Detections(xyxy=np.zeros((0, 4), np.float32), confidence=[], class_id=[], tracker_id=[])
    for f in _frames(4, 320, 240):
        v.write(f, empty, [])
    v.close()
    assert v.codec == "h264"
    assert _probe(tmp_path / "a.mp4") == {
        "codec": "h264", "pix_fmt": "yuv420p", "size": (320, 240), "frames": 4, "moov_first": True,
    }  # fmt: skip
