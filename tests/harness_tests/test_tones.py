"""The tone detector on WAV files we synthesise: a tone is found, another is not, silence is silence."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import pytest

from harness.tones import Audio


def write_wav(path: Path, rate: int, seconds: float, *freqs: float, amplitude: float = 8000.0) -> Path:
    count = int(rate * seconds)
    samples = [
        int(sum(amplitude * math.sin(2 * math.pi * f * n / rate) for f in freqs) / max(1, len(freqs)))
        for n in range(count)
    ]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(struct.pack(f"<{count}h", *samples))
    return path


@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_tone_is_found_and_another_is_not(tmp_path: Path, rate: int) -> None:
    audio = Audio.read(write_wav(tmp_path / "t.wav", rate, 1.0, 1000))
    assert audio.has_tone(1000), audio.describe(1000)
    assert not audio.has_tone(600), audio.describe(600)
    assert not audio.is_silent()


def test_two_tones_share_the_signal(tmp_path: Path) -> None:
    audio = Audio.read(write_wav(tmp_path / "t.wav", 8000, 1.0, 600, 1400))
    assert 0.4 < audio.tone_share(600) < 0.6 and 0.4 < audio.tone_share(1400) < 0.6, audio.describe(600, 1400)


def test_silence(tmp_path: Path) -> None:
    audio = Audio.read(write_wav(tmp_path / "t.wav", 8000, 1.0))
    assert audio.is_silent() and not audio.has_tone(1000)
    quiet = Audio.read(write_wav(tmp_path / "q.wav", 8000, 1.0, 1000, amplitude=20))
    assert quiet.is_silent(), quiet.describe(1000)
