"""Spoken reminders at the edge node through espeak-ng (Debian package ``espeak-ng``).

:class:`VoiceReminder` speaks a configured message (Italian by default, ``-v it``) when an
alarm starts, at most once per zone per ``min_interval_s``. It never blocks the video loop:
speech runs in a child process (``subprocess.Popen``); while one reminder is still playing a
new one is skipped, not queued. A missing espeak-ng is logged once and the reminder turns
itself off; it never stops the worker.

:func:`render_wav` writes the same speech to a WAV file (used by the tests and to check a
node's voice set-up without speakers).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["VoiceReminder", "VoiceError", "render_wav", "espeak_path"]


class VoiceError(RuntimeError):
    """espeak-ng is missing or failed."""


def espeak_path() -> str | None:
    """Path of ``espeak-ng`` (or ``espeak``) on this machine, or None."""
    return shutil.which("espeak-ng") or shutil.which("espeak")


def _cmd(exe: str, text: str, voice: str, speed_wpm: int) -> list[str]:
    # "--" ends options, so a message starting with "-" is spoken, not parsed
    return [exe, "-v", voice, "-s", str(int(speed_wpm)), "--", text]


def render_wav(text: str, path: str | Path, voice: str = "it", speed_wpm: int = 150, timeout_s: float = 30.0) -> Path:
    """Synthesize ``text`` into the WAV file ``path`` (blocking); raises :class:`VoiceError`."""
    exe = espeak_path()
    if exe is None:
        raise VoiceError("espeak-ng not found (Debian: apt-get install espeak-ng)")
    path = Path(path)
    cmd = _cmd(exe, text, voice, speed_wpm)
    cmd[1:1] = ["-w", str(path)]
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise VoiceError(f"espeak-ng did not finish within {timeout_s} s") from None
    if res.returncode != 0 or not path.is_file():
        raise VoiceError(f"espeak-ng failed (exit {res.returncode}): {res.stderr.decode(errors='replace').strip()}")
    return path


class VoiceReminder:
    """Rate-limited, non-blocking spoken reminder (see module docstring).

    ``clock`` (seconds, monotonic) and ``spawn`` (``list[str] -> Popen-like``) can be
    replaced in tests.
    """

    def __init__(
        self,
        message: str,
        voice: str = "it",
        speed_wpm: int = 150,
        min_interval_s: float = 30.0,
        clock=time.monotonic,
        spawn=None,
    ) -> None:
        if not message.strip():
            raise ValueError("voice message is empty")
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s}")
        self.message, self.voice, self.speed_wpm = message, voice, speed_wpm
        self.min_interval_s = float(min_interval_s)
        self.clock = clock
        self._spawn = spawn
        self._exe = None if spawn is not None else espeak_path()
        self.enabled = spawn is not None or self._exe is not None
        if not self.enabled:
            log.warning("voice reminders disabled: espeak-ng not found (Debian: apt-get install espeak-ng)")
        self._last: dict[str, float] = {}
        self._proc = None
        self.spoken = 0
        self.skipped = 0

    def busy(self) -> bool:
        if self._proc is None:
            return False
        if self._proc.poll() is None:
            return True
        self._proc = None
        return False

    def remind(self, zone: str | None = None) -> bool:
        """Speak the message for ``zone`` unless rate-limited or still speaking; returns
        whether speech was started. Never raises for audio problems."""
        if not self.enabled:
            return False
        key = zone or ""
        now = self.clock()
        last = self._last.get(key)
        if (last is not None and now - last < self.min_interval_s) or self.busy():
            self.skipped += 1
            return False
        cmd = _cmd(self._exe or "espeak-ng", self.message, self.voice, self.speed_wpm)
        try:
            if self._spawn is not None:
                self._proc = self._spawn(cmd)
            else:
                self._proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
        except OSError as exc:
            log.warning("voice reminder failed, disabling it: %s", exc)
            self.enabled = False
            return False
        self._last[key] = now
        self.spoken += 1
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Wait briefly for a reminder still playing (then stop it)."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
