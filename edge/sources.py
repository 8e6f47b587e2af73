"""Video sources: recorded files replayed exactly, live streams that never queue latency.

A source yields :class:`Frame` objects. A **recorded file** is replayed frame by frame with
nothing dropped; each frame's timestamp comes from its index and the file's frame rate (or
the ``fps`` override, since e.g. PETS2009 was shot at about 7 fps while its header says 10).
Frames that fail to decode are skipped and counted. A file replayed with ``realtime=True`` is
delivered the way a live camera would deliver it: frame ``i`` is due ``i / fps`` seconds after
the start, the consumer waits for a frame that is not due yet, and a frame whose successor is
already due when the consumer asks for it is dropped and counted as stale (the live rule below:
the newest frame, never a queue). A **live source** (RTSP/HTTP URL or a
device) is read by a background thread that keeps only the newest frame: the consumer always
gets the freshest picture and stale frames are dropped and counted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from vigil.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["Frame", "SourceError", "SourceStats", "FileSource", "LiveSource", "open_source"]

# After this many consecutive unreadable frames inside a file, the rest is considered lost.
_MAX_CONSECUTIVE_BAD = 50


class SourceError(UserError, RuntimeError):
    """A source cannot be opened or read; the message names it."""


@dataclass
class Frame:
    """One decoded picture.

    ``index``: 0-based position in the stream (video frame number for files).
    ``timestamp``: seconds since the start of the stream (files: ``index / fps``; live: wall clock since open).
    ``image``: ``(H, W, 3) uint8`` BGR.
    """

    index: int
    timestamp: float
    image: np.ndarray


@dataclass
class SourceStats:
    frames: int = 0
    corrupt_skipped: int = 0
    stale_dropped: int = 0
    reconnects: int = 0
    extra: dict = field(default_factory=dict)


class FileSource:
    """Replays a recorded video file frame by frame (nothing dropped), or in real time.

    ``realtime``: pace the frames at ``fps`` as a live camera would (see the module docstring;
    dropped frames go to ``stats.stale_dropped``). ``start_at``: UNIX time (seconds) at which
    frame 0 is due, so that several replays run in step; a consumer that first asks later
    starts the clock then (its start-up costs no frames). ``max_frames``: offer only the
    first ``max_frames`` frames of the stream (indices ``0 .. max_frames - 1``, dropped and
    corrupt ones included). ``start_at`` and ``max_frames`` apply to real-time replays.
    ``paced_wait_s``: seconds spent waiting for frames to be due (not decoding).
    """

    live = False

    def __init__(
        self,
        path: str | Path,
        fps: float | None = None,
        loop: bool = False,
        *,
        realtime: bool = False,
        start_at: float | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.loop = loop
        self.realtime = bool(realtime)
        self.start_at = start_at
        self.max_frames = max_frames if realtime else None
        self._clock0: float | None = None  # monotonic time at which frame 0 is due (real time)
        self.paced_wait_s = 0.0
        if not self.path.is_file():
            raise SourceError(f"{self.path}: video file not found")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.path}: cannot open as video (unsupported or corrupt container)")
        header_fps = cap.get(cv2.CAP_PROP_FPS)
        self.header_fps = header_fps if np.isfinite(header_fps) and header_fps > 0 else None
        self.fps = float(fps or self.header_fps or 25.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(f"{self.path}: no decodable frame (corrupt or empty video)")
        self._cap = cap
        self._first = first
        self.stats = SourceStats()
        if fps is None and self.header_fps is None:
            log.warning(
                "%s: no frame rate in the header; assuming %.1f fps (set 'fps' in the camera config)",
                self.path,
                self.fps,
            )

    def __iter__(self) -> Iterator[Frame]:
        cap = self._cap
        index = 0  # grows across loops
        pos = 0  # position inside the file
        image: np.ndarray | None = self._first
        self._first = None
        bad_run = 0
        count = self.frame_count
        self._decoded_in_pass = 0
        while True:
            if self.max_frames is not None and index >= self.max_frames:
                return
            if image is None:
                ok, image = cap.read()
                if not ok or image is None:
                    image = None
                    if count is not None and pos < count - 1 and bad_run < _MAX_CONSECUTIVE_BAD:
                        # a frame inside the file failed to decode: skip it and count it
                        bad_run += 1
                        self.stats.corrupt_skipped += 1
                        index += 1
                        pos += 1
                        continue
                    if count is not None and pos < count - 1:
                        # the run of bad frames that ended the file began bad_run frames ago: that is where
                        # the readable part ends (a truncated file), not where we gave up
                        first_bad = pos - bad_run
                        log.warning(
                            "%s: unreadable from frame %d of %d on (%d frames decoded; the file is truncated or "
                            "damaged there)",
                            self.path,
                            first_bad,
                            count,
                            self._decoded_in_pass,
                        )
                        self.stats.corrupt_skipped += count - pos
                        self.stats.extra["unreadable_from_frame"] = first_bad
                    if not self.loop or pos == 0:
                        return
                    # replay from the start; indices and timestamps keep growing
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    self.stats.extra["loops"] = self.stats.extra.get("loops", 0) + 1
                    pos = 0
                    self._decoded_in_pass = 0
                    bad_run = 0
                    continue
            bad_run = 0
            if self.realtime and self._stale(index):
                self.stats.stale_dropped += 1  # a live camera would have replaced it by now
                image = None
                index += 1
                pos += 1
                continue
            self.stats.frames += 1
            self._decoded_in_pass += 1
            yield Frame(index=index, timestamp=index / self.fps, image=image)
            image = None
            index += 1
            pos += 1

    def _stale(self, index: int) -> bool:
        """Real time: ``True`` when frame ``index``'s successor is already due (drop it); else
        wait until frame ``index`` is due and return ``False``."""
        now = time.monotonic()
        if self._clock0 is None:
            wait = 0.0 if self.start_at is None else max(0.0, self.start_at - time.time())
            self._clock0 = now + wait
        due = self._clock0 + index / self.fps
        if now >= self._clock0 + (index + 1) / self.fps:
            return True
        if now < due:
            time.sleep(due - now)
            self.paced_wait_s += time.monotonic() - now
        return False

    def close(self) -> None:
        self._cap.release()


class LiveSource:
    """A live stream or device; a reader thread keeps only the newest frame.

    Reconnects with exponential backoff (``reconnect_backoff_s`` up to ``max_backoff_s``).
    """

    live = True

    def __init__(
        self,
        uri: str,
        reconnect_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        self.uri = uri
        self._target: str | int = int(uri) if uri.isdigit() else uri
        self._backoff = reconnect_backoff_s
        self._max_backoff = max_backoff_s
        self._open_timeout = open_timeout_s
        self._read_timeout = read_timeout_s
        self.stats = SourceStats()
        self._lock = threading.Condition()
        self._latest: tuple[int, float, np.ndarray] | None = None
        self._stop = threading.Event()
        self._connected = False
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._reader, name=f"source:{uri}", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._connected

    def _open(self) -> cv2.VideoCapture | None:
        if isinstance(self._target, str) and "://" in self._target:
            if self._target.startswith("rtsp") and "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ:
                # RTP over the RTSP TCP connection: no lost UDP packets, works through NAT
                os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"
            # bounded waits, so a dead camera is noticed and the reconnect loop runs
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(self._open_timeout * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(self._read_timeout * 1000),
            ]
            cap = cv2.VideoCapture(self._target, cv2.CAP_FFMPEG, params)
        else:
            cap = cv2.VideoCapture(self._target)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _reader(self) -> None:
        delay = self._backoff
        index = 0
        while not self._stop.is_set():
            cap = self._open()
            if cap is None:
                log.warning("%s: cannot connect; retrying in %.1f s", self.uri, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._max_backoff)
                continue
            if index:
                self.stats.reconnects += 1
            self._connected = True
            delay = self._backoff
            while not self._stop.is_set():
                ok, image = cap.read()
                if not ok or image is None:
                    log.warning("%s: stream lost", self.uri)
                    break
                with self._lock:
                    if self._latest is not None:
                        self.stats.stale_dropped += 1
                    self._latest = (index, time.monotonic() - self.t0, image)
                    self._lock.notify_all()
                index += 1
            self._connected = False
            cap.release()

    def __iter__(self) -> Iterator[Frame]:
        while not self._stop.is_set():
            with self._lock:
                while self._latest is None and not self._stop.is_set():
                    self._lock.wait(0.5)
                if self._latest is None:
                    return
                index, ts, image = self._latest
                self._latest = None
            self.stats.frames += 1
            yield Frame(index=index, timestamp=ts, image=image)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._thread.join(timeout=5)


def open_source(source: str, fps: float | None = None, loop: bool = False, **replay) -> FileSource | LiveSource:
    """A file path → :class:`FileSource` (``replay``: its ``realtime``, ``start_at``, ``max_frames``);
    a URL, device index or ``/dev/videoN`` → :class:`LiveSource` (live already: ``replay`` is ignored)."""
    if "://" in source and not source.startswith("file://"):
        return LiveSource(source)
    if source.isdigit() or source.startswith("/dev/video"):
        return LiveSource(source)
    if source.startswith("file://"):
        source = source[len("file://") :]
    return FileSource(source, fps=fps, loop=loop, **replay)
