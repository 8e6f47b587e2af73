"""Spoken reminders at the edge node through espeak-ng (Debian package ``espeak-ng``).

:class:`VoiceReminder` speaks a configured message (Italian by default, ``-v it``) when an
alarm starts, at most once per zone per ``min_interval_s``. It never blocks the video loop:
speech runs in a child process (``subprocess.Popen``); while one reminder is still playing a
new one is skipped, not queued. It never stops the worker.

A reminder that was due but could not be spoken is a **failure**, counted (``failures``, by
cause in ``failure_causes``; the worker's status shows ``voice_failures`` and the metrics
endpoint ``vigil_voice_failures_total``) and logged as a warning the first time each cause
happens (later ones at debug level, so a node without speakers does not fill its log):
``espeak-ng not found`` (checked once at start; every later reminder counts), ``cannot start
espeak-ng: ...`` (the program cannot be run), ``espeak-ng exited with code N: ...`` (e.g. no
sound device: its last stderr line is kept).

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
    replaced in tests; ``exe`` names the program (default: :func:`espeak_path`).
    """

    def __init__(
        self,
        message: str,
        voice: str = "it",
        speed_wpm: int = 150,
        min_interval_s: float = 30.0,
        clock=time.monotonic,
        spawn=None,
        exe: str | None = None,
    ) -> None:
        if not message.strip():
            raise ValueError("voice message is empty")
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s}")
        self.message, self.voice, self.speed_wpm = message, voice, speed_wpm
        self.min_interval_s = float(min_interval_s)
        self.clock = clock
        self._spawn = spawn
        self._exe = exe if exe is not None else (None if spawn is not None else espeak_path())
        #: false when the program is missing: reminders are then not attempted, each one due is a failure
        self.enabled = spawn is not None or self._exe is not None
        self._missing = None if self.enabled else "espeak-ng not found (Debian: apt-get install espeak-ng)"
        self._last: dict[str, float] = {}
        self._proc = None
        self.spoken = 0
        self.skipped = 0
        self.failures = 0
        self.failure_causes: dict[str, int] = {}
        self.last_failure: str | None = None
        if self._missing:
            log.warning("voice reminders cannot be spoken: %s; each one due is counted as a failure", self._missing)
            self.failure_causes[self._missing] = 0
        self._logged: set[str] = set(self.failure_causes)

    def _fail(self, cause: str) -> None:
        """Count a reminder that could not be spoken; log each cause once (then at debug level)."""
        self.failures += 1
        self.failure_causes[cause] = self.failure_causes.get(cause, 0) + 1
        self.last_failure = cause
        if cause in self._logged:
            log.debug("voice reminder failed: %s (%d failures)", cause, self.failures)
            return
        if len(self._logged) < 100:  # causes are few; bound them anyway
            self._logged.add(cause)
        log.warning("voice reminder failed: %s (further failures of this kind are counted, not logged)", cause)

    def _reap(self) -> None:
        """Check the reminder that finished: a non-zero exit is a failure."""
        proc, self._proc = self._proc, None
        code = getattr(proc, "returncode", None)
        if code is None:
            code = proc.poll()
        if code:
            detail = ""
            err = getattr(proc, "stderr", None)
            if err is not None:
                try:
                    text = err.read(4096) or b""
                    lines = (text.decode(errors="replace") if isinstance(text, bytes) else str(text)).strip()
                    detail = lines.splitlines()[-1][:200] if lines else ""
                except (OSError, ValueError):
                    detail = ""
                finally:
                    try:
                        err.close()
                    except (OSError, ValueError):
                        pass
            self._fail(f"espeak-ng exited with code {code}" + (f": {detail}" if detail else ""))

    def busy(self) -> bool:
        if self._proc is None:
            return False
        if self._proc.poll() is None:
            return True
        self._reap()
        return False

    def remind(self, zone: str | None = None) -> bool:
        """Speak the message for ``zone`` unless rate-limited or still speaking; returns
        whether speech was started. Never raises for audio problems: a reminder due that
        cannot be spoken is counted in ``failures``."""
        key = zone or ""
        now = self.clock()
        last = self._last.get(key)
        if (last is not None and now - last < self.min_interval_s) or self.busy():
            self.skipped += 1
            return False
        self._last[key] = now  # due: from here on it is spoken or counted as failed
        if not self.enabled:
            self._fail(self._missing or "voice reminders disabled")
            return False
        cmd = _cmd(self._exe or "espeak-ng", self.message, self.voice, self.speed_wpm)
        try:
            if self._spawn is not None:
                self._proc = self._spawn(cmd)
            else:
                self._proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
        except OSError as exc:
            self._fail(f"cannot start {cmd[0]}: {exc.strerror or exc}")
            return False
        self.spoken += 1
        return True

    def poll(self) -> None:
        """Count the failure of a reminder that has finished (the worker calls this every frame)."""
        if self._proc is not None:
            self.busy()

    def status(self) -> dict:
        """``voice_spoken``, ``voice_skipped``, ``voice_failures`` and ``voice_last_failure`` (or
        null): counters only, safe to read from another thread."""
        return {
            "voice_spoken": self.spoken,
            "voice_skipped": self.skipped,
            "voice_failures": self.failures,
            "voice_last_failure": self.last_failure,
        }

    def close(self, timeout_s: float = 5.0) -> None:
        """Wait briefly for a reminder still playing (then stop it); a failed one is counted."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
                self._proc = None
                return
        if self._proc is not None:
            self._reap()
