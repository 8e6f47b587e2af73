"""Stream health: is the camera delivering real pictures?

A worker whose source delivers frames says ``running``; this module says whether the frames
are pictures. :func:`measure_frame` makes a few cheap measurements of one decoded frame
(``(H, W, 3) uint8`` BGR), and :class:`StreamHealth` turns them, checked every
``check_interval_s`` of stream time, into one health state per camera:

``ok``
    nothing below holds.
``blank``
    the picture is (almost) one value: a lens cap, a dead sensor, a decoder's grey or green
    fill. Measured: ``uniform``, the fraction of the pixels of a grey thumbnail (1/8 of the
    frame's size, area-averaged) within +-4 grey levels of its median, at least
    ``blank_uniform`` (0.95: an on-screen clock may cover a few per cent); or the thumbnail's
    standard deviation below ``blank_std`` (2.0).
``frozen``
    the picture does not change: ``change``, the mean absolute difference (grey levels) between
    the thumbnails of two checks, below ``frozen_change`` (0.25).
``garbled``
    decoder garbage: ``broken``, the fraction of the frame's 16 x 16 blocks (the macroblocks of
    MPEG-4 / H.264, the MCUs of 4:2:0 JPEG) that look like it, at least ``garbled_blocks`` (0.15).
    A block is broken when it is *flat* (standard deviation below 1 grey level and a mean
    between 40 and 215: concealment grey, the green of zeroed YUV; dark night scenes and
    blown-out highlights, which codecs also smooth flat, are left out), a *streak* (at least
    60 % of its vertical neighbour pairs exactly equal while its mean horizontal gradient is over
    3 times the vertical one plus 1.5, or the same turned: a column or row smeared by
    concealment), or beside a *step* (the mean jump across its edge over 5 times the mean
    gradient inside the blocks on either side, plus 5: a block decoded from the wrong data).
``no_detections``
    the detector found nothing for ``no_detections_after_s`` (600 s; null: off).

A state starts when its condition has held for ``<state>_after_s`` seconds, at every check for
``blank`` (5 s) and ``no_detections``, at 80 % of the checks of that window for ``frozen``
(20 s, longer than a codec's key-frame interval; a key frame re-encodes a frozen picture
slightly) and at 25 % for ``garbled`` (5 s: a broken stream has frames that pass). It ends when
its condition has held at no check for ``clear_after_s`` (5 s). When several hold, the first of
``blank``, ``garbled``, ``frozen``, ``no_detections`` is the state (a blank picture is frozen
too). Every change is an :class:`~vigil.alarm.AlarmChange` of event type ``camera_health``: a
bad state's start (severity warning) and its end (severity info; reason ``clear``, or
``flush`` at the end of the stream), sharing an ``alarm_id``; a switch from one bad state to
another ends the first (its ``health`` the new state) and starts the second.

Measured, one frame per check (``tests/edge/test_health.py`` repeats the MJPEG cases with its
``_damaged``; the XVID ones were damaged the same way):

- clean: all 795 frames of vtest.avi; its first 400 frames re-encoded by OpenCV as MPEG-4
  part 2 (XVID) and as MJPEG; 222 still photos of cars (the OpenALPR EU and BR benchmark
  sets). ``uniform`` at most 0.254 (vtest 0.075); thumbnail std at least 33 (vtest 47.8);
  ``broken`` at most 0.023 on vtest, 0.067 on the XVID copy, 0.198 on one photo (a finger
  blurred over the lens of a phone, smooth car paint) and under 0.13 on the other 221;
  ``change`` between checks 0.5 s apart at least 0.387 (vtest: people walking in a still
  scene; the re-encoded copies 1.77). :class:`StreamHealth` flags none of the video frames.
- corrupted, the XVID and MJPEG copies with their compressed bytes damaged and decoded by
  FFmpeg (through OpenCV): frames whose ``broken`` is at least 0.15 -- MJPEG with 1400-byte
  spans zeroed at p = 0.15 (RTP packet loss): 98 %; MJPEG with the second half of every frame
  zeroed: 100 %; XVID with 0.2 % of its bytes overwritten (grey with blots): 100 % (the first
  seconds are ``blank``); XVID with the second half of every frame zeroed (smears): 53 %,
  flagged for 21 s of its 40; XVID with packet loss (FFmpeg conceals with motion-compensated
  smears): 26 %, flagged for 7 s of its 40; XVID with its key frames wiped (ghosts of moving
  people on a right background): 0 %, not detected.
- frozen: one vtest frame repeated, through XVID and MJPEG: ``change`` 0 between most checks,
  at most 0.54 where a key frame re-encodes it; flagged 20.5 s after the picture froze.
- cost: 2.5-4 ms per check of a 768 x 576 frame (this 2-core machine, shared): under 1 % of a
  core at one check per 0.5 s. Frames of more than ``MAX_BLOCKS`` blocks are analysed in
  bands of whole block rows, one band per check, moving down the frame.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from vigil.alarm import AlarmChange, new_alarm_id
from vigil.edge.config_parts import StreamHealthConfig

__all__ = [
    "HEALTH_STATES",
    "BAD_STATES",
    "FrameMeasures",
    "HealthThresholds",
    "StreamHealth",
    "measure_frame",
    "broken_blocks",
    "EVENT_TYPE",
]

#: the event type of health changes (payload model: ``vigil.alerts.payloads.CameraHealthPayload``)
EVENT_TYPE = "camera_health"
#: bad states, most telling first (the order a tie is broken in)
BAD_STATES = ("blank", "garbled", "frozen", "no_detections")
HEALTH_STATES = ("ok", *BAD_STATES)

#: block size (pixels): MPEG-4 / H.264 macroblocks, the MCUs of 4:2:0 JPEG
BLOCK = 16
#: most 16 x 16 blocks analysed per check (a 768 x 576 frame has 1728); a larger frame is analysed in
#: bands of whole block rows that move down the frame from one check to the next
MAX_BLOCKS = 2048
#: a flat block counts as broken only with a mean grey level in this range: concealment grey (128) and the
#: green of zeroed YUV (79) are inside; dark night scenes and blown-out highlights, which a codec also
#: smooths flat, are not
FLAT_MIN, FLAT_MAX = 40, 215
#: thumbnail: the grey frame shrunk by this factor (area average)
THUMB_FACTOR = 8


#: the shipped thresholds: one home, the config model (with each one's bounds and meaning)
_SHIPPED = StreamHealthConfig()


@dataclass(frozen=True)
class HealthThresholds:
    """The thresholds of :class:`StreamHealth` (see the module docstring for how they were
    chosen); the defaults are :class:`~vigil.edge.config_parts.StreamHealthConfig`'s, and
    :meth:`from_config` reads them from a camera's ``health`` config."""

    check_interval_s: float = _SHIPPED.check_interval_s
    blank_after_s: float = _SHIPPED.blank_after_s
    blank_uniform: float = _SHIPPED.blank_uniform
    blank_std: float = _SHIPPED.blank_std
    frozen_after_s: float = _SHIPPED.frozen_after_s
    frozen_change: float = _SHIPPED.frozen_change
    frozen_fraction: float = _SHIPPED.frozen_fraction
    garbled_after_s: float = _SHIPPED.garbled_after_s
    garbled_blocks: float = _SHIPPED.garbled_blocks
    garbled_fraction: float = _SHIPPED.garbled_fraction
    no_detections_after_s: float | None = _SHIPPED.no_detections_after_s
    clear_after_s: float = _SHIPPED.clear_after_s

    @classmethod
    def from_config(cls, cfg: StreamHealthConfig) -> "HealthThresholds":
        return cls(**{k: getattr(cfg, k) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class FrameMeasures:
    """What :func:`measure_frame` measured on one frame (see the module docstring).

    ``uniform``: fraction of thumbnail pixels within +-4 grey levels of its median (0..1);
    ``std``: standard deviation of the thumbnail (grey levels); ``change``: mean absolute
    difference to the previous thumbnail (grey levels; ``None`` for the first or a resized
    frame); ``broken``: fraction of the analysed 16 x 16 blocks that look like decoder garbage.
    """

    uniform: float
    std: float
    change: float | None
    broken: float


def _thumb(grey: np.ndarray) -> np.ndarray:
    h, w = grey.shape
    size = (max(1, w // THUMB_FACTOR), max(1, h // THUMB_FACTOR))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def _block_mean(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Mean of each of the ``rows x cols`` equal cells of ``a`` (float32; an exact area average)."""
    return cv2.resize(a, (cols, rows), interpolation=cv2.INTER_AREA)


def broken_blocks(grey: np.ndarray) -> float:
    """Fraction of the 16 x 16 blocks of ``grey`` (``(H, W) uint8``; the right and bottom
    remainders are left out) that are flat, streaks or beside a step (see the module
    docstring); 0.0 for a frame smaller than two blocks each way."""
    h, w = grey.shape
    b = BLOCK
    rows, cols = h // b, w // b
    if rows < 2 or cols < 2:
        return 0.0
    g = np.ascontiguousarray(grey[: rows * b, : cols * b])
    dx = np.zeros(g.shape, np.float32)  # column j: the step from pixel j to j + 1 (last column 0)
    dy = np.zeros(g.shape, np.float32)
    dx[:, :-1] = cv2.absdiff(g[:, 1:], g[:, :-1])
    dy[:-1, :] = cv2.absdiff(g[1:, :], g[:-1, :])
    zx = (dx == 0).astype(np.float32)
    zy = (dy == 0).astype(np.float32)
    right = _block_mean(dx[:, b - 1 :: b], rows, cols)  # the mean jump into the block on the right
    below = _block_mean(dy[b - 1 :: b, :], rows, cols)  # ... into the block below
    ex = (_block_mean(dx, rows, cols) * b - right) / (b - 1)  # mean gradient inside each block
    ey = (_block_mean(dy, rows, cols) * b - below) / (b - 1)
    eqx = (_block_mean(zx, rows, cols) * b - _block_mean(zx[:, b - 1 :: b], rows, cols)) / (b - 1)
    eqy = (_block_mean(zy, rows, cols) * b - _block_mean(zy[b - 1 :: b, :], rows, cols)) / (b - 1)
    gf = g.astype(np.float32)
    mean = _block_mean(gf, rows, cols)
    var = _block_mean(gf * gf, rows, cols) - mean * mean
    flat = (var < 1.0) & (mean >= FLAT_MIN) & (mean <= FLAT_MAX)
    streak = ((eqy >= 0.6) & (ex >= 3.0 * ey + 1.5)) | ((eqx >= 0.6) & (ey >= 3.0 * ex + 1.5))
    rx = right[:, :-1] > 5.0 * np.maximum(ex[:, :-1], ex[:, 1:]) + 5.0
    ry = below[:-1, :] > 5.0 * np.maximum(ey[:-1, :], ey[1:, :]) + 5.0
    step = np.zeros_like(flat)
    step[:, :-1] |= rx
    step[:, 1:] |= rx
    step[:-1, :] |= ry
    step[1:, :] |= ry
    return float((flat | streak | step).mean())


def measure_frame(
    image: np.ndarray, previous_thumb: np.ndarray | None = None, band: int = 0
) -> tuple[FrameMeasures, np.ndarray]:
    """The :class:`FrameMeasures` of ``image`` (``(H, W, 3)`` BGR or ``(H, W)`` grey, uint8) and
    its thumbnail (pass it back as ``previous_thumb`` for the next frame's ``change``).

    ``band``: for a frame of more than :data:`MAX_BLOCKS` blocks, which band of block rows
    to analyse (taken modulo the number of bands)."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    thumb = _thumb(grey)
    median = float(np.median(thumb))
    uniform = float(np.mean(np.abs(thumb - median) <= 4.0))
    std = float(thumb.std())
    change = None
    if previous_thumb is not None and previous_thumb.shape == thumb.shape:
        change = float(np.mean(np.abs(thumb - previous_thumb)))
    rows, cols = grey.shape[0] // BLOCK, grey.shape[1] // BLOCK
    if rows * cols > MAX_BLOCKS and cols:
        per_band = max(2, MAX_BLOCKS // cols)
        bands = math.ceil(rows / per_band)
        r0 = (band % bands) * per_band
        r0 = min(r0, max(0, rows - per_band))
        grey = grey[r0 * BLOCK : (r0 + per_band) * BLOCK]
    return FrameMeasures(uniform, std, change, broken_blocks(grey)), thumb


@dataclass
class _Vote:
    """One condition over time: the checks of the last ``after_s`` seconds (and one before, to
    know the window is covered), when it last held and when its current episode began (the
    first check it held at after a quiet spell of ``clear_s``)."""

    after_s: float
    fraction: float
    clear_s: float
    checks: deque = field(default_factory=deque)  # (t, held)
    last_held: float | None = None
    held_since: float | None = None

    def add(self, t: float, held: bool) -> None:
        self.checks.append((t, held))
        while len(self.checks) > 1 and self.checks[1][0] <= t - self.after_s:
            self.checks.popleft()
        if held:
            if self.held_since is None or self.quiet_for(t) >= self.clear_s:
                self.held_since = t
            self.last_held = t

    def holds(self, t: float) -> bool:
        """The current episode began at least ``after_s`` ago and the condition held at
        ``fraction`` of the checks of the last ``after_s`` seconds."""
        if self.held_since is None or t - self.held_since < self.after_s - 1e-9 or self.quiet_for(t) >= self.clear_s:
            return False
        inside = [h for (ct, h) in self.checks if ct > t - self.after_s]
        return bool(inside) and sum(inside) >= self.fraction * len(inside) - 1e-9

    def quiet_for(self, t: float) -> float:
        """Seconds since the condition last held (inf if never)."""
        return math.inf if self.last_held is None else t - self.last_held


class StreamHealth:
    """One camera's health state from its frames (see the module docstring).

    ``update(timestamp_s, image, detections, frame)`` for every frame (``detections``: how many
    the detector found in it); it measures the frame when ``check_interval_s`` has passed since
    the last check and returns the :class:`~vigil.alarm.AlarmChange` steps of that check (an
    empty list mostly). :meth:`flush` ends an open bad state at the end of the stream;
    :meth:`status` is what the status file shows.
    """

    def __init__(self, thresholds: HealthThresholds | None = None) -> None:
        self.th = th = thresholds or HealthThresholds()
        self.state = "ok"
        self.since: float | None = None  # stream time the current state began
        self.alarm_id: str | None = None
        self.checks = 0
        self.episodes: dict[str, int] = {}
        self.last: FrameMeasures | None = None
        self._thumb: np.ndarray | None = None
        self._next_check: float | None = None
        self._t0: float | None = None
        self._last_detection: float | None = None
        self._t = 0.0
        self._votes = {
            "blank": _Vote(th.blank_after_s, 1.0, th.clear_after_s),
            "garbled": _Vote(th.garbled_after_s, th.garbled_fraction, th.clear_after_s),
            "frozen": _Vote(th.frozen_after_s, th.frozen_fraction, th.clear_after_s),
        }

    # ------------------------------------------------------------------ measuring
    def seconds_without_detections(self, t: float | None = None) -> float:
        t = self._t if t is None else t
        ref = self._last_detection if self._last_detection is not None else self._t0
        return 0.0 if ref is None else max(0.0, t - ref)

    def _conditions(self, m: FrameMeasures) -> dict[str, bool]:
        """Which condition one check shows: at most one, the first of blank, garbled, frozen that
        holds (a blank picture is also flat and unchanging; counting it as garbled or frozen too
        would leave those votes behind when the blank state clears)."""
        th = self.th
        held = {
            "blank": m.uniform >= th.blank_uniform or m.std < th.blank_std,
            "garbled": m.broken >= th.garbled_blocks,
            "frozen": m.change is not None and m.change < th.frozen_change,
        }
        first = next((k for k in ("blank", "garbled", "frozen") if held[k]), None)
        return {k: k == first for k in held}

    def _measure(self, state: str, t: float) -> tuple[str, float | None, float | None]:
        """(metric, value, threshold) that tells ``state``."""
        m, th = self.last, self.th
        if state == "no_detections":
            return "seconds_without_detections", round(self.seconds_without_detections(t), 3), th.no_detections_after_s
        if m is None:
            return "none", None, None
        if state == "blank":
            return "uniform_fraction", round(m.uniform, 4), th.blank_uniform
        if state == "garbled":
            return "broken_block_fraction", round(m.broken, 4), th.garbled_blocks
        if state == "frozen":
            return "frame_change", None if m.change is None else round(m.change, 4), th.frozen_change
        return "none", None, None

    def update(self, t: float, image: np.ndarray, detections: int = 0, frame: int = 0) -> list[AlarmChange]:
        t = float(t)
        self._t = t
        if self._t0 is None:
            self._t0 = t
        if detections > 0:
            self._last_detection = t
        if self._next_check is not None and t < self._next_check:
            return []
        self._next_check = t + self.th.check_interval_s
        m, self._thumb = measure_frame(image, self._thumb, band=self.checks)
        self.checks += 1
        self.last = m
        for name, held in self._conditions(m).items():
            self._votes[name].add(t, held)
        return self._step(t, frame)

    def _wanted(self, t: float) -> str:
        """The state the conditions ask for at ``t``, with the current one kept until it clears."""
        after = self.th.no_detections_after_s
        no_dets = after is not None and after > 0 and self.seconds_without_detections(t) >= after
        for name in BAD_STATES:
            if name == "no_detections":
                if no_dets:
                    return name
            elif self._votes[name].holds(t):
                return name
        if self.state in self._votes and self._votes[self.state].quiet_for(t) < self.th.clear_after_s:
            return self.state  # not clear for long enough yet
        return "ok"

    def _step(self, t: float, frame: int) -> list[AlarmChange]:
        wanted = self._wanted(t)
        if wanted == self.state:
            return []
        changes = []
        if self.state != "ok":
            changes.append(self._end(t, "clear", wanted))
        if wanted != "ok":
            changes.append(self._start(wanted, t))
        else:
            self.state, self.since, self.alarm_id = "ok", t, None
        return changes

    def _started_at(self, state: str, t: float) -> float:
        if state == "no_detections":
            return t - self.seconds_without_detections(t)
        since = self._votes[state].held_since
        return t if since is None else since

    def _change(self, phase: str, state: str, t: float, severity: str, now: str, reason: str | None) -> AlarmChange:
        metric, value, threshold = self._measure(state, t)
        started = self.since if phase == "end" and self.since is not None else self._started_at(state, t)
        return AlarmChange(
            event_type=EVENT_TYPE,
            rule="health",
            state=phase,
            alarm_id=self.alarm_id or new_alarm_id(),
            severity=severity,
            timestamp_s=t,
            started_at=started,
            duration_s=max(0.0, t - started),
            key=(state,),
            metric=metric,
            value=value,
            threshold=threshold,
            reason=reason,
            extra={"condition": state, "health": now},
        )

    def _start(self, state: str, t: float) -> AlarmChange:
        self.alarm_id = new_alarm_id()
        change = self._change("start", state, t, "warning", state, None)
        self.state, self.since = state, change.started_at
        self.episodes[state] = self.episodes.get(state, 0) + 1
        return change

    def _end(self, t: float, reason: str, now: str) -> AlarmChange:
        change = self._change("end", self.state, t, "info", now, reason)
        self.alarm_id = None
        return change

    def flush(self, t: float | None = None) -> list[AlarmChange]:
        """End an open bad state (reason ``flush``: the stream ended)."""
        if self.state == "ok":
            return []
        t = self._t if t is None else float(t)
        change = self._end(t, "flush", "ok")
        self.state, self.since = "ok", t
        return [change]

    # ------------------------------------------------------------------ reporting
    def status(self) -> dict:
        """``health`` (the state), ``health_s`` (stream seconds in it; null while ok),
        ``health_checks`` and the last measures (``health_measures``)."""
        m = self.last
        measures = {
            "uniform": None if m is None else round(m.uniform, 4),
            "std": None if m is None else round(m.std, 3),
            "change": None if m is None or m.change is None else round(m.change, 4),
            "broken_blocks": None if m is None else round(m.broken, 4),
            "seconds_without_detections": round(self.seconds_without_detections(), 3),
        }
        bad = self.state != "ok" and self.since is not None
        return {
            "health": self.state,
            "health_s": round(max(0.0, self._t - self.since), 1) if bad else None,
            "health_checks": self.checks,
            "health_measures": measures,
        }
