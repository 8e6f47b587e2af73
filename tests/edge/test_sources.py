"""Video sources: exact replay of files, fps override, clear errors for missing or corrupt files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vigil.edge.sources import FileSource, SourceError, open_source


def _write_video(path: Path, n: int, fps: float = 10.0, size=(64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(n):
        img = np.full((size[1], size[0], 3), (i * 10) % 255, np.uint8)
        writer.write(img)
    writer.release()
    return path


def test_file_is_replayed_frame_by_frame_with_its_own_timestamps(tmp_path: Path):
    src = open_source(str(_write_video(tmp_path / "v.avi", 12, fps=10.0)))
    frames = list(src)
    assert [f.index for f in frames] == list(range(12))
    assert frames[5].timestamp == pytest.approx(0.5)
    assert frames[0].image.shape == (48, 64, 3)
    assert src.stats.frames == 12 and src.stats.corrupt_skipped == 0


def test_fps_override_sets_timestamps(tmp_path: Path):
    src = FileSource(_write_video(tmp_path / "v.avi", 8, fps=10.0), fps=7.0)
    frames = list(src)
    assert src.header_fps == pytest.approx(10.0)
    assert frames[7].timestamp == pytest.approx(1.0)


def test_missing_file_names_the_file(tmp_path: Path):
    with pytest.raises(SourceError, match=r"nope\.avi: video file not found"):
        open_source(str(tmp_path / "nope.avi"))


def test_corrupt_file_names_the_file(tmp_path: Path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage" * 50)
    with pytest.raises(SourceError, match=r"bad\.avi"):
        open_source(str(bad))


def test_vtest_header_says_10_fps_and_has_795_frames(vtest: Path):
    src = FileSource(vtest, fps=7.0)
    assert src.header_fps == pytest.approx(10.0)
    assert src.frame_count == 795
    assert (src.width, src.height) == (768, 576)
    n = sum(1 for _ in src)
    assert n == 795


def test_corrupt_frame_inside_a_file_is_skipped_and_counted(tmp_path: Path):
    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(20):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]  # JPEG SOI markers
    assert len(starts) == 20
    data[starts[10] : starts[10] + 600] = bytes(600)  # wipe frame 10's JPEG header and data
    path.write_bytes(bytes(data))
    src = open_source(str(path))
    indices = [f.index for f in src]
    assert indices == [i for i in range(20) if i != 10]
    assert src.stats.corrupt_skipped == 1 and src.stats.frames == 19


def test_live_source_keeps_only_the_newest_frame_and_counts_the_stale_ones(tmp_path: Path):
    import time

    from vigil.edge.sources import LiveSource

    # a file opened as a live stream is read as fast as it decodes: far faster than this consumer
    path = _write_video(tmp_path / "live.avi", 200, fps=10.0)
    src = LiveSource(str(path), reconnect_backoff_s=0.05)
    got = []
    try:
        for frame in src:
            got.append(frame.index)
            time.sleep(0.05)
            if len(got) == 4:
                break
    finally:
        src.close()
    assert len(got) == 4
    assert got == sorted(got) and got[-1] - got[0] > 3  # frames in between were skipped, not queued
    assert src.stats.stale_dropped > 0


def test_looped_file_replays_from_the_start_with_growing_indices(tmp_path: Path):
    src = FileSource(_write_video(tmp_path / "v.avi", 5, fps=10.0), loop=True)
    frames = []
    for f in src:
        frames.append(f)
        if len(frames) == 12:
            break
    assert [f.index for f in frames] == list(range(12))
    assert frames[11].timestamp == pytest.approx(1.1)
    # frame 5 is the file's first frame again
    assert np.array_equal(frames[5].image, frames[0].image) and np.array_equal(frames[7].image, frames[2].image)
    assert src.stats.extra["loops"] == 2


def test_truncated_file_reports_the_frame_where_it_ends(vtest: Path, tmp_path: Path, caplog):
    """vtest.avi cut to half its bytes: the header still says 795 frames. The message names the
    first frame that could not be read, the one after the last decoded (not where the reader
    gave up after its run of retries), and every frame not delivered is counted."""
    half = tmp_path / "half.avi"
    data = vtest.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    src = FileSource(half)
    assert src.frame_count == 795
    with caplog.at_level("WARNING", logger="vigil.edge.sources"):
        indices = [f.index for f in src]
    decoded = len(indices)
    assert 300 < decoded < 500 and indices == list(range(decoded))  # a prefix, in order
    (msg,) = [r.getMessage() for r in caplog.records if "unreadable from frame" in r.getMessage()]
    assert f"unreadable from frame {decoded} of 795 on ({decoded} frames decoded" in msg
    assert src.stats.extra["unreadable_from_frame"] == decoded
    assert src.stats.frames + src.stats.corrupt_skipped == 795
