"""Statistics of frame features over a stretch of speech (an utterance, a second, a window): the inputs of the
speech-emotion classifier and of the per-second prosody table."""

from __future__ import annotations

import numpy as np

from openfer.audio.features import HOP_S, LLD_NAMES, N_MFCC, FrameFeatures, semitones, syllable_nuclei

_PCT = (20, 50, 80)
#: Names of ``utterance_features``' values, in order.
FEATURE_NAMES: tuple[str, ...] = (
    *(f"f0_{s}" for s in ("mean", "std", "p20", "p50", "p80", "range")),
    *(f"loudness_{s}" for s in ("mean", "std", "p20", "p50", "p80", "range")),
    "intensity_mean", "intensity_std", "alpha_ratio_mean", "alpha_ratio_std", "hammarberg_mean", "hammarberg_std",
    *(f"mfcc{i}_{s}" for i in range(1, N_MFCC + 1) for s in ("mean", "std")),
    "voiced_ratio", "speaking_rate", "pause_ratio",
)


def _stats(v: np.ndarray) -> list[float]:
    """mean, std, p20, p50, p80, p80 - p20 of the finite values (zeros when there are none)."""
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [0.0] * 6
    p = np.percentile(v, _PCT)
    return [float(v.mean()), float(v.std()), *map(float, p), float(p[2] - p[0])]


def _ms(v: np.ndarray) -> list[float]:
    v = v[np.isfinite(v)]
    return [float(v.mean()), float(v.std())] if v.size else [0.0, 0.0]


def utterance_features(ff: FrameFeatures, speech: np.ndarray) -> np.ndarray:
    """``FEATURE_NAMES`` values (float32) of the frames of ``ff`` where ``speech`` is True.

    F0 statistics are over voiced speech frames, in semitones above 27.5 Hz; loudness, spectral and cepstral ones
    over all speech frames; ``voiced_ratio`` is voiced over speech frames, ``speaking_rate`` syllable nuclei per
    second of speech, ``pause_ratio`` the share of non-speech frames between the first and last speech frame.
    Without speech every value is 0.
    """
    speech = np.asarray(speech, bool)
    if not speech.any():
        return np.zeros(len(FEATURE_NAMES), np.float32)
    t = ff.table
    f0 = ff.column("f0")
    voiced = np.isfinite(f0)
    vals = _stats(semitones(f0[speech & voiced]))
    vals += _stats(ff.column("loudness")[speech])
    for name in ("intensity", "alpha_ratio", "hammarberg"):
        vals += _ms(ff.column(name)[speech])
    first = LLD_NAMES.index("mfcc1")
    for i in range(N_MFCC):
        vals += _ms(t[speech, first + i])
    idx = np.flatnonzero(speech)
    span = idx[-1] - idx[0] + 1
    nuclei = syllable_nuclei(ff.column("intensity"), voiced, speech)
    vals += [float((speech & voiced).sum() / speech.sum()), float(nuclei.size / (speech.sum() * HOP_S)),
             float(1 - speech.sum() / span)]
    return np.asarray(vals, np.float32)
