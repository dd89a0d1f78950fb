"""What a recorded call leg sounds like: a tone's share of the signal (Goertzel), or silence.

Pure Python over a 16-bit mono WAV (a few seconds at 8 or 16 kHz is a few ms of work); numpy is not
needed. ``Audio.tone_share(f)`` is the part of the signal's energy at ``f`` (about 1 for a clean tone,
about 0 when it is absent); a tone is present when that share is high and the signal is not silence.
"""

from __future__ import annotations

import math
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

SILENCE_RMS = 100.0  # of 32767: about -50 dBFS
PRESENT_SHARE = 0.5


@dataclass(frozen=True)
class Audio:
    samples: tuple[int, ...]
    rate: int
    path: Path | None = None

    @classmethod
    def read(cls, path: Path, skip: float = 0.2) -> Audio:
        """A 16-bit mono WAV, without its first ``skip`` seconds (codec and jitter buffer start-up)."""
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise ValueError(f"{path}: not a 16-bit mono WAV")
            rate = wav.getframerate()
            raw = wav.readframes(wav.getnframes())
        samples = struct.unpack(f"<{len(raw) // 2}h", raw)
        return cls(samples[int(skip * rate) :], rate, path)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate

    @property
    def rms(self) -> float:
        if not self.samples:
            return 0.0
        return math.sqrt(sum(s * s for s in self.samples) / len(self.samples))

    def is_silent(self) -> bool:
        return self.rms < SILENCE_RMS

    def tone_share(self, freq: float) -> float:
        """Energy at ``freq`` over the total energy, in blocks of 50 ms, averaged."""
        block = self.rate // 20
        shares = []
        for start in range(0, len(self.samples) - block + 1, block):
            chunk = self.samples[start : start + block]
            total = sum(s * s for s in chunk)
            if total:
                shares.append(min(1.0, 2 * goertzel_power(chunk, freq, self.rate) / (total * len(chunk))))
        return sum(shares) / len(shares) if shares else 0.0

    def has_tone(self, freq: float) -> bool:
        return not self.is_silent() and self.tone_share(freq) >= PRESENT_SHARE

    def describe(self, *freqs: float) -> str:
        shares = ", ".join(f"{f:g} Hz {self.tone_share(f):.2f}" for f in freqs)
        return f"{self.seconds:.1f} s at {self.rate} Hz, rms {self.rms:.0f}, tone shares: {shares or '-'}"


def goertzel_power(samples: tuple[int, ...] | list[int], freq: float, rate: int) -> float:
    """|X(f)|² of ``samples`` at ``freq`` (one DFT bin, computed with the Goertzel recurrence)."""
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for sample in samples:
        s1, s2 = sample + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2
