"""A recorded file replayed in real time (FileSource realtime=True): paced like a live camera.

A fake clock stands in for the source's ``time`` module, so the frames a busy consumer loses
are exact: the consumer's work advances the clock, the source's waits advance it too.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vigil.edge import sources
from vigil.edge.sources import FileSource, open_source


class FakeClock:
    """``monotonic``/``time``/``sleep`` of a clock that only moves when told (or slept on)."""

    def __init__(self, unix0: float = 1000.0) -> None:
        self.t = 0.0
        self.unix0 = unix0

    def monotonic(self) -> float:
        return self.t

    def time(self) -> float:
        return self.unix0 + self.t

    def sleep(self, s: float) -> None:
        self.t += max(0.0, s)


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(sources, "time", fake)
    return fake


def _video(path: Path, n: int = 12) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    return path


def test_a_fast_consumer_gets_every_frame_when_it_is_due(tmp_path: Path, clock: FakeClock):
    src = FileSource(_video(tmp_path / "v.avi"), fps=10.0, realtime=True)
    seen = []
    for f in src:
        seen.append((f.index, round(clock.t, 6)))
    assert seen == [(i, pytest.approx(i / 10.0)) for i in range(12)]
    assert src.stats.stale_dropped == 0 and src.stats.frames == 12
    assert src.paced_wait_s == pytest.approx(1.1)


def test_a_busy_consumer_gets_the_newest_frame_and_the_others_are_counted_stale(tmp_path: Path, clock: FakeClock):
    src = FileSource(_video(tmp_path / "v.avi"), fps=10.0, realtime=True)
    seen = []
    for f in src:
        seen.append(f.index)
        clock.t += 0.25  # 2.5 frame intervals of work per frame
    # asked at 0.25: frame 2 (due 0.2) is the newest; at 0.5: frame 5 (due 0.5); at 0.75: 7; at 1.0: 10
    assert seen == [0, 2, 5, 7, 10]
    assert src.stats.stale_dropped == 7 and src.stats.frames == 5
    assert src.paced_wait_s == 0.0


def test_start_at_makes_frame_0_due_at_that_unix_time(tmp_path: Path, clock: FakeClock):
    src = FileSource(_video(tmp_path / "v.avi", 3), fps=10.0, realtime=True, start_at=1002.0)
    times = [round(clock.t, 6) for _ in src]
    assert times == [2.0, 2.1, 2.2]
    assert src.paced_wait_s == pytest.approx(2.2)


def test_a_consumer_ready_after_start_at_starts_the_clock_then_and_loses_nothing(tmp_path: Path, clock: FakeClock):
    clock.t = 5.0  # start_at (UNIX 1002) passed 3 s ago
    src = FileSource(_video(tmp_path / "v.avi", 4), fps=10.0, realtime=True, start_at=1002.0)
    assert [f.index for f in src] == [0, 1, 2, 3]
    assert src.stats.stale_dropped == 0 and clock.t == pytest.approx(5.3)


def test_max_frames_limits_the_frames_offered(tmp_path: Path, clock: FakeClock):
    src = open_source(str(_video(tmp_path / "v.avi")), fps=10.0, realtime=True, max_frames=5)
    seen = []
    for f in src:
        seen.append(f.index)
        clock.t += 0.25
    assert seen == [0, 2]  # frames 0..4 offered: 1, 3, 4 lost to the busy consumer
    assert src.stats.stale_dropped == 3


def test_without_realtime_nothing_waits_and_max_frames_is_ignored(tmp_path: Path, clock: FakeClock):
    src = FileSource(_video(tmp_path / "v.avi"), fps=10.0, max_frames=5)
    assert [f.index for f in src] == list(range(12))
    assert clock.t == 0.0 and src.paced_wait_s == 0.0
