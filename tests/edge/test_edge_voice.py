"""Voice reminder: espeak-ng renders a non-silent Italian WAV of plausible length; reminders are
rate-limited per zone and never block; a reminder that cannot be spoken (no program, a failing
program, no sound device) is counted and its cause logged once, never dropped silently."""

from __future__ import annotations

import io
import logging
import time
import wave

import numpy as np
import pytest

from vigil.edge.status import StatusCollector, write_status
from vigil.edge.voice import VoiceReminder, espeak_path, render_wav

MESSAGE = "Attenzione: mantenete la distanza di almeno un metro."


@pytest.mark.skipif(espeak_path() is None, reason="espeak-ng is not installed (Debian package espeak-ng)")
def test_render_wav_is_non_silent_and_plausible(tmp_path):
    path = render_wav(MESSAGE, tmp_path / "msg.wav", voice="it")
    with wave.open(str(path)) as w:
        rate, n, width = w.getframerate(), w.getnframes(), w.getsampwidth()
        samples = np.frombuffer(w.readframes(n), dtype=np.int16 if width == 2 else np.uint8)
    seconds = n / rate
    # 9 words at 150 words per minute: about 3.5 s of speech
    assert 1.5 < seconds < 10.0
    x = samples.astype(np.float64)
    rms = np.sqrt(np.mean((x - x.mean()) ** 2))
    assert rms > 300  # int16 full scale is 32767; silence is 0
    assert np.mean(np.abs(x) > 1000) > 0.05  # a real share of the samples carry sound


class _FakeProc:
    def __init__(self):
        self.done = False

    def poll(self):
        return 0 if self.done else None

    def wait(self, timeout=None):
        self.done = True
        return 0


def test_reminders_rate_limited_per_zone_and_skip_while_busy():
    now = [0.0]
    spawned = []

    def spawn(cmd):
        spawned.append(cmd)
        return _FakeProc()

    v = VoiceReminder(MESSAGE, min_interval_s=30.0, clock=lambda: now[0], spawn=spawn)
    assert v.remind("a") is True
    assert spawned[0][1:3] == ["-v", "it"] and spawned[0][-1] == MESSAGE
    assert v.remind("b") is False  # still speaking: skipped, not queued
    spawned_proc_done = v._proc
    spawned_proc_done.done = True
    assert v.remind("b") is True  # another zone
    v._proc.done = True
    now[0] = 10.0
    assert v.remind("a") is False  # within 30 s for zone a
    now[0] = 31.0
    assert v.remind("a") is True
    assert (v.spoken, v.skipped) == (3, 2)
    v.close()


def test_missing_espeak_disables_quietly(monkeypatch):
    monkeypatch.setattr("vigil.edge.voice.espeak_path", lambda: None)
    v = VoiceReminder(MESSAGE)
    assert v.enabled is False and v.remind("a") is False


def test_a_reminder_that_cannot_start_is_counted_and_logged_once(caplog):
    """A voice program that does not exist: every reminder due is a failure, counted; the cause
    is logged once, not once per alarm."""
    now = [0.0]
    v = VoiceReminder(MESSAGE, min_interval_s=10.0, clock=lambda: now[0], exe="/nonexistent/espeak-ng")
    with caplog.at_level(logging.DEBUG, logger="vigil.edge.voice"):
        assert v.remind("a") is False
        assert v.remind("a") is False  # rate-limited: not due, not a failure
        now[0] = 11.0
        assert v.remind("a") is False
        assert v.remind("b") is False
    assert (v.spoken, v.skipped, v.failures) == (0, 1, 3)
    (cause,) = v.failure_causes
    assert cause.startswith("cannot start /nonexistent/espeak-ng") and v.failure_causes[cause] == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot start /nonexistent/espeak-ng" in warnings[0].getMessage()
    assert v.status() == {"voice_spoken": 0, "voice_skipped": 1, "voice_failures": 3, "voice_last_failure": cause}


def test_a_player_exiting_non_zero_is_a_failure_with_its_message():
    """A real child process that fails (``false``: exit 1), and a fake one that prints why (no sound
    device), are counted once they have finished."""
    v = VoiceReminder(MESSAGE, min_interval_s=0.0, exe="/bin/false")
    assert v.remind("a") is True  # started ...
    v.close()  # ... and finished with exit 1
    assert v.failures == 1 and v.last_failure == "espeak-ng exited with code 1"

    class FailingProc:
        returncode = 1

        def __init__(self):
            self.stderr = io.BytesIO(
                b"ALSA lib pcm.c:2664: Unknown PCM default\ncannot open audio device: No such device\n"
            )

        def poll(self):
            return 1

    w = VoiceReminder(MESSAGE, min_interval_s=0.0, spawn=lambda cmd: FailingProc())
    assert w.remind("a") is True
    w.poll()  # the worker polls every frame
    assert w.failures == 1
    assert w.last_failure == "espeak-ng exited with code 1: cannot open audio device: No such device"
    assert w.remind("a") is True  # the next one is tried again (the device may come back) ...
    w.close()
    assert w.failures == 2 and w.failure_causes == {w.last_failure: 2}  # ... and counted, the cause logged once


def test_missing_espeak_counts_every_reminder_due(monkeypatch, tmp_path):
    monkeypatch.setattr("vigil.edge.voice.espeak_path", lambda: None)
    now = [0.0]
    v = VoiceReminder(MESSAGE, min_interval_s=30.0, clock=lambda: now[0])
    assert v.remind("a") is False and v.remind("b") is False and v.remind("a") is False
    assert v.failures == 2 and v.skipped == 1 and v.last_failure.startswith("espeak-ng not found")
    # the status file carries the count, the metrics endpoint exports it
    write_status(tmp_path, {"camera": "cam1", "state": "running", "updated": time.time(), **v.status()})
    metrics = {m.name: m for m in StatusCollector(tmp_path).collect()}
    (sample,) = metrics["vigil_voice_failures"].samples
    assert sample.name == "vigil_voice_failures_total" and sample.labels == {"camera": "cam1"} and sample.value == 2.0
