"""Voice reminder: espeak-ng renders a non-silent Italian WAV of plausible length; reminders are
rate-limited per zone and never block."""

from __future__ import annotations

import wave

import numpy as np
import pytest

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
