"""Browser-playable MP4 files: H.264 (``yuv420p``, ``+faststart``) through PyAV, mp4v as a fallback.

Browsers play H.264 in MP4 only with 4:2:0 chroma (``yuv420p``) and start playing before the
whole file arrived only when the index (``moov``) comes first (``movflags=+faststart``); OpenCV's
``VideoWriter`` with ``mp4v`` (MPEG-4 part 2) writes neither, so the annotated replay video and
the plate clips are encoded by PyAV (``av`` on PyPI: its binary wheel bundles FFmpeg built with
libx264, which makes the wheel GPL-covered; see docs/licences.md). Without PyAV (or without
libx264 in it) :class:`VideoFileWriter` falls back to OpenCV's ``mp4v`` with a warning: the file
still plays in VLC and OpenCV, not in browsers.

yuv420p needs an even width and height: an odd-sized frame is padded by one replicated pixel
column or row (``size_px`` gives the encoded size).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

__all__ = ["VideoFileWriter", "h264_available", "write_clip"]

#: libx264 settings: constant quality 23 (x264's default), a fast preset (an edge CPU)
H264_OPTIONS = {"crf": "23", "preset": "veryfast"}


def h264_available() -> bool:
    """Whether PyAV is installed and its FFmpeg has the libx264 encoder."""
    try:
        import av  # noqa: PLC0415 - optional at run time (fallback: mp4v)

        av.codec.Codec("libx264", "w")
    except Exception:  # noqa: BLE001 - missing module, or no encoder: either way no H.264
        return False
    return True


class VideoFileWriter:
    """Frames (``(H, W, 3) uint8`` BGR, all of ``size`` ``(width, height)`` pixels) to an MP4 at
    ``path`` at ``fps`` frames per second. ``codec``: ``"h264"`` (when available, else the mp4v
    fallback) or ``"mp4v"``; :attr:`codec` tells which is used. ``OSError`` when no writer opens."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], codec: str = "h264") -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.size = (int(size[0]), int(size[1]))
        self.frames = 0
        self._container = self._stream = self._cv = None
        if codec == "h264" and h264_available():
            self.codec = "h264"
            self.size_px = (self.size[0] + self.size[0] % 2, self.size[1] + self.size[1] % 2)
            self._open_av()
        else:
            if codec == "h264":
                log.warning("%s: PyAV with libx264 is not installed: writing mp4v (not playable in browsers)", path)
            self.codec = "mp4v"
            self.size_px = self.size
            self._cv = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self._cv.isOpened():
                raise OSError(f"{self.path}: cannot open a video writer (mp4v)")

    def _open_av(self) -> None:
        import av  # noqa: PLC0415 - optional at run time

        try:
            self._container = av.open(str(self.path), "w", format="mp4", options={"movflags": "+faststart"})
            stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            stream.width, stream.height = self.size_px
            stream.pix_fmt = "yuv420p"
            stream.options = dict(H264_OPTIONS)
            self._stream = stream
        except Exception as exc:  # noqa: BLE001 - FFmpeg errors come in several types
            if self._container is not None:
                self._container.close()
            raise OSError(f"{self.path}: cannot open an H.264 writer: {exc}") from exc

    def write(self, image: np.ndarray) -> None:
        """Append one frame (BGR, ``size`` pixels)."""
        if (image.shape[1], image.shape[0]) != self.size:
            raise ValueError(f"{self.path}: frame is {image.shape[1]}x{image.shape[0]}, expected {self.size}")
        self.frames += 1
        if self._cv is not None:
            self._cv.write(image)
            return
        import av  # noqa: PLC0415 - optional at run time

        pad_x, pad_y = self.size_px[0] - self.size[0], self.size_px[1] - self.size[1]
        if pad_x or pad_y:
            image = cv2.copyMakeBorder(image, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file (the index written first: ``+faststart``)."""
        if self._cv is not None:
            self._cv.release()
            self._cv = None
            return
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None


def write_clip(path: str | Path, frames: list[np.ndarray], fps: float) -> str:
    """Write ``frames`` (BGR, one size) as one MP4 at ``path``; the codec used (``h264``/``mp4v``).
    ``ValueError`` when there are no frames."""
    if not frames:
        raise ValueError(f"{path}: no frames for a clip")
    w = VideoFileWriter(path, fps, (frames[0].shape[1], frames[0].shape[0]))
    try:
        for f in frames:
            w.write(f)
    finally:
        w.close()
    return w.codec
