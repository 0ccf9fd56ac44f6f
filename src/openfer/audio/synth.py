"""Generated speech-like sound for tests, examples and benchmarks (no text-to-speech engine needed).

A source-filter voice: a harmonic series on an F0 contour (phrase declination plus a pitch accent per syllable),
spectral tilt set by vocal effort, three formant resonators per vowel, a raised-cosine envelope per syllable at a
syllable rate, short noise bursts for consonants, and pauses between phrases. It is not intelligible speech, but
it has the properties the voice branch measures (pitch, loudness, tilt, syllable rate, pauses), each set exactly,
and Silero VAD hears it as speech.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SR = 16000
#: (F1, F2, F3) Hz of a few vowels (adult averages).
VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410))


@dataclass(frozen=True)
class Voice:
    """How a generated speaker talks.

    Attributes:
        f0: mean pitch, Hz.
        f0_range: pitch movement of accents, semitones.
        level: level, dB re full scale, of the vowels' peaks.
        tilt: source slope, dB per octave (about -12 relaxed, -6 with effort: more high-frequency energy).
        rate: syllables per second.
    """

    f0: float = 120.0
    f0_range: float = 3.0
    level: float = -20.0
    tilt: float = -12.0
    rate: float = 4.0


CALM = Voice()
AROUSED = Voice(f0=190.0, f0_range=7.0, level=-10.0, tilt=-6.0, rate=6.0)


def _resonate(x: np.ndarray, freq: float, bw: float) -> np.ndarray:
    from scipy.signal import lfilter

    r = np.exp(-np.pi * bw / SR)
    a = [1, -2 * r * np.cos(2 * np.pi * freq / SR), r * r]
    return lfilter([1 - r], a, x)


def phrase(voice: Voice, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One phrase of ``seconds`` of syllables."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    syl = max(1, int(round(seconds * voice.rate)))
    bounds = np.linspace(0, n, syl + 1).astype(int)
    st = np.zeros(n)
    for i in range(syl):  # an accent per syllable: up or down by up to f0_range
        a, b = bounds[i], bounds[i + 1]
        st[a:b] = rng.uniform(-0.5, 0.5) * voice.f0_range * np.sin(np.linspace(0, np.pi, b - a))
    f0 = voice.f0 * 2 ** ((st - 1.5 * t / max(seconds, 1e-3)) / 12)  # declination: 1.5 semitones per phrase
    phase = 2 * np.pi * np.cumsum(f0) / SR
    src = np.zeros(n)
    for k in range(1, 60):
        amp = 10 ** (voice.tilt * np.log2(k) / 20)
        src += np.where(k * f0 < 7000, amp, 0.0) * np.sin(k * phase)
    out = np.zeros(n)
    for i in range(syl):
        a, b = bounds[i], bounds[i + 1]
        length = b - a
        voiced = int(length * 0.7)
        f1, f2, f3 = VOWELS[rng.integers(len(VOWELS))]
        seg = src[a:a + voiced]
        seg = _resonate(seg, f1, 80) + 0.6 * _resonate(seg, f2, 100) + 0.3 * _resonate(seg, f3, 150)
        env = np.sin(np.linspace(0, np.pi, voiced)) ** 0.7
        out[a:a + voiced] = seg * env
        burst = rng.standard_normal(length - voiced) * np.hanning(length - voiced)  # a consonant
        out[a + voiced:b] = 0.05 * np.diff(burst, prepend=0)
    peak = np.percentile(np.abs(out), 99) or 1.0
    return (out / peak * 10 ** (voice.level / 20)).astype(np.float32)


def speech(voice: Voice = CALM, seconds: float = 10.0, pause: tuple[float, float] = (0.3, 0.8),
           phrase_s: tuple[float, float] = (1.0, 2.5), seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """``seconds`` of phrases and pauses; returns the samples and the (start, end) seconds of each phrase."""
    rng = np.random.default_rng(seed)
    parts, spans, t = [], [], 0.0
    while t < seconds:
        gap = rng.uniform(*pause)
        parts.append(np.zeros(int(gap * SR), np.float32))
        t += gap
        dur = min(rng.uniform(*phrase_s), seconds - t)
        if dur < 0.3:
            break
        parts.append(phrase(voice, dur, rng))
        spans.append((round(t, 3), round(t + dur, 3)))
        t += dur
    x = np.concatenate(parts)[: int(seconds * SR)]
    return np.pad(x, (0, int(seconds * SR) - x.size)), spans


def noise(seconds: float, level: float = -35.0, seed: int = 0, kind: str = "white") -> np.ndarray:
    """Background noise: ``white``, or ``hum`` (50 Hz mains and harmonics plus a little white noise)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    if kind == "hum":
        t = np.arange(n) / SR
        x = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3)) + 0.1 * rng.standard_normal(n)
    else:
        x = rng.standard_normal(n)
    return (x / (np.sqrt(np.mean(x ** 2)) or 1) * 10 ** (level / 20)).astype(np.float32)


def write_wav(path, samples: np.ndarray, rate: int = SR) -> None:
    """16-bit PCM WAV of float samples in -1..1 (standard library only)."""
    import wave

    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
