"""Frame-level voice features (eGeMAPS-style low-level descriptors) in numpy, every 10 ms, streamed.

Our own implementation (numpy/scipy), following the definitions of the Geneva Minimalistic Acoustic Parameter Set
(Eyben et al., 2016, IEEE Trans. Affective Computing 7(2)) where they are simple enough to state:

* ``f0``: fundamental frequency, Hz (NaN where unvoiced), by YIN (de Cheveigné & Kawahara, 2002): cumulative mean
  normalised difference over a 40 ms window, first dip under 0.15 between 60 and 500 Hz, parabolic refinement.
* ``loudness``: Stevens' power law over an auditory spectrum, the sum over 26 mel bands (20 Hz-8 kHz) of band power
  to the 0.3 (openSMILE uses a loudness-weighted auditory spectrum; ours is a simpler stand-in on the same scale).
* ``alpha_ratio``: energy 1-5 kHz over energy 50 Hz-1 kHz, dB (rises with vocal effort).
* ``hammarberg``: strongest peak 0-2 kHz over strongest peak 2-5 kHz, dB (falls with vocal effort).
* ``intensity``: frame energy, dB re full scale.
* ``mfcc``: mel cepstral coefficients 1-12 (for the speech-emotion classifier, not the arousal index).

Frames are 40 ms long, every 10 ms; frame ``i`` covers samples ``[160 i, 160 i + 640)`` and is stamped at its
centre, ``0.01 i + 0.02`` s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SR = 16000
HOP = 160
WIN = 640
NFFT = 1024
HOP_S = HOP / SR
F0_MIN, F0_MAX = 60.0, 500.0
_TAU_MIN, _TAU_MAX = int(SR // F0_MAX), int(np.ceil(SR / F0_MIN))
_YIN_W = WIN - _TAU_MAX  # difference window: the lags up to TAU_MAX still fit in the frame
YIN_THRESHOLD = 0.15
N_MELS, N_MFCC = 26, 12
#: Per-frame feature names, in the column order of ``FrameFeatures.table``.
LLD_NAMES = ("f0", "loudness", "alpha_ratio", "hammarberg", "intensity", *(f"mfcc{i}" for i in range(1, N_MFCC + 1)))


def _mel_filters() -> np.ndarray:
    """Triangular mel filters [N_MELS, NFFT // 2 + 1], 20 Hz - 8 kHz."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges_hz = 700 * (10 ** (np.linspace(mel(20.0), mel(SR / 2), N_MELS + 2) / 2595) - 1)
    freqs = np.fft.rfftfreq(NFFT, 1 / SR)
    fb = np.zeros((N_MELS, freqs.size), np.float32)
    for m in range(N_MELS):
        lo, mid, hi = edges_hz[m:m + 3]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        fb[m] = np.clip(np.minimum(up, down), 0, None)
    return fb


_FREQS = np.fft.rfftfreq(NFFT, 1 / SR)
_MEL = _mel_filters()
_WINDOW = np.hanning(WIN).astype(np.float32)
_LOW = (_FREQS >= 50) & (_FREQS < 1000)
_HIGH = (_FREQS >= 1000) & (_FREQS < 5000)
_H_LOW = _FREQS < 2000
_H_HIGH = (_FREQS >= 2000) & (_FREQS < 5000)
_EPS = 1e-10


@dataclass
class FrameFeatures:
    """Low-level descriptors of consecutive 10 ms frames: ``table`` [n, len(LLD_NAMES)] float32, columns as
    ``LLD_NAMES``; ``periodicity`` [n] (1 - YIN's dip, 0..1: how clearly voiced)."""

    table: np.ndarray
    periodicity: np.ndarray

    def __len__(self) -> int:
        return len(self.table)

    def column(self, name: str) -> np.ndarray:
        """One descriptor over all frames."""
        return self.table[:, LLD_NAMES.index(name)]

    @staticmethod
    def concat(parts: list[FrameFeatures]) -> FrameFeatures:
        """Frames of consecutive parts as one."""
        if not parts:
            return FrameFeatures(np.zeros((0, len(LLD_NAMES)), np.float32), np.zeros(0, np.float32))
        return FrameFeatures(np.concatenate([p.table for p in parts]), np.concatenate([p.periodicity for p in parts]))


def _yin(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F0 (Hz, NaN unvoiced) and periodicity of mean-removed frames ``x`` [n, WIN]."""
    n = len(x)
    spec = np.fft.rfft(x, NFFT)
    head = np.fft.rfft(x[:, :_YIN_W], NFFT)
    r = np.fft.irfft(np.conj(head) * spec, NFFT)[:, :_TAU_MAX + 1]
    cs = np.concatenate([np.zeros((n, 1)), np.cumsum(x.astype(np.float64) ** 2, axis=1)], axis=1)
    tau = np.arange(_TAU_MAX + 1)
    d = cs[:, [_YIN_W]] + (cs[:, _YIN_W + tau] - cs[:, tau]) - 2 * r
    d = np.maximum(d[:, 1:], 0)  # lags 1..TAU_MAX
    cmn = d * tau[1:] / np.maximum(np.cumsum(d, axis=1), _EPS)
    lo = _TAU_MIN - 1
    region = cmn[:, lo:]
    below = region < YIN_THRESHOLD
    has = below.any(axis=1)
    k = np.where(has, below.argmax(axis=1), region.argmin(axis=1))
    last = region.shape[1] - 1
    rows = np.arange(n)
    for _ in range(64):  # walk down to the bottom of the dip
        nxt = np.minimum(k + 1, last)
        step = region[rows, nxt] < region[rows, k]
        if not step.any():
            break
        k = np.where(step, nxt, k)
    a = region[rows, np.maximum(k - 1, 0)]
    b = region[rows, k]
    c = region[rows, np.minimum(k + 1, last)]
    denom = a - 2 * b + c
    shift = np.where((k > 0) & (k < last) & (np.abs(denom) > _EPS), 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0)
    period = k + lo + 1 + np.clip(shift, -1, 1)
    f0 = np.where(has, SR / period, np.nan)
    return f0.astype(np.float32), np.clip(1 - b, 0, 1).astype(np.float32)


def frame_features(x: np.ndarray) -> FrameFeatures:
    """Descriptors of every whole 40 ms frame of ``x`` (16 kHz mono float32), one every 10 ms."""
    x = np.asarray(x, np.float32).reshape(-1)
    n = 0 if x.size < WIN else 1 + (x.size - WIN) // HOP
    if n == 0:
        return FrameFeatures.concat([])
    frames = np.lib.stride_tricks.sliding_window_view(x, WIN)[::HOP][:n]
    frames = frames - frames.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(frames * _WINDOW, NFFT)) ** 2
    bands = power @ _MEL.T
    loudness = np.sum(bands ** 0.3, axis=1) / N_MELS
    alpha = 10 * np.log10((power[:, _HIGH].sum(1) + _EPS) / (power[:, _LOW].sum(1) + _EPS))
    hamm = 10 * np.log10((power[:, _H_LOW].max(1) + _EPS) / (power[:, _H_HIGH].max(1) + _EPS))
    intensity = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + _EPS)
    logmel = np.log(bands + _EPS)
    from scipy.fft import dct

    mfcc = dct(logmel, type=2, norm="ortho", axis=1)[:, 1:N_MFCC + 1]
    f0, periodicity = _yin(frames)
    silent = intensity < -60  # digital near-silence: no pitch to find
    f0[silent] = np.nan
    table = np.column_stack([f0, loudness, alpha, hamm, intensity, mfcc]).astype(np.float32)
    return FrameFeatures(table, periodicity)


class FeatureStream:
    """``frame_features`` over a recording fed chunk by chunk: the frames are the same as over the whole array."""

    def __init__(self) -> None:
        self._buf = np.zeros(0, np.float32)

    def feed(self, samples: np.ndarray) -> FrameFeatures:
        """The frames completed by ``samples``."""
        x = np.concatenate([self._buf, np.asarray(samples, np.float32).reshape(-1)])
        feats = frame_features(x)
        self._buf = x[len(feats) * HOP:]
        return feats


def semitones(f0_hz: np.ndarray) -> np.ndarray:
    """F0 in semitones above 27.5 Hz (eGeMAPS' pitch scale; NaN stays NaN)."""
    return 12 * np.log2(np.asarray(f0_hz, np.float64) / 27.5)


def syllable_nuclei(intensity: np.ndarray, voiced: np.ndarray, speech: np.ndarray, min_dip: float = 2.0,
                    min_gap: float = 0.1) -> np.ndarray:
    """Frame indices of syllable nuclei (de Jong & Wempe, 2009, simplified): peaks of the smoothed intensity that
    rise ``min_dip`` dB above the dips around them, at least ``min_gap`` s apart, voiced, inside speech, and no more
    than 25 dB under the loudest speech.

    Args:
        intensity: dB per 10 ms frame. voiced: bool per frame. speech: bool per frame (VAD).
    """
    from scipy.signal import find_peaks

    if intensity.size < 3 or not speech.any():
        return np.zeros(0, int)
    smooth = np.convolve(intensity, np.ones(5) / 5, mode="same")
    floor = np.percentile(smooth[speech], 99) - 25
    peaks, _ = find_peaks(smooth, prominence=min_dip, distance=max(1, int(round(min_gap / HOP_S))))
    near_voiced = np.convolve(voiced.astype(float), np.ones(5), mode="same") > 0
    keep = speech[peaks] & near_voiced[peaks] & (smooth[peaks] > floor)
    return peaks[keep]


def frame_times(n: int, offset: float = 0.0) -> np.ndarray:
    """Centre time, seconds, of each of ``n`` frames (frame 0 starts at ``offset``)."""
    return offset + (np.arange(n) * HOP + WIN / 2) / SR
