"""The voice track of a recording: speech segments, prosody per second and per segment, the vocal arousal index
and speech-emotion probabilities, on the recording's clock so it lines up with the video frames.

One pass over the sound in chunks (``AudioReader``): Silero VAD and the frame features stream; what is kept is
small per-frame tables (18 float32 values per 10 ms: about 1.1 MB per minute of sound at peak, measured), never
the samples. At the end the
per-second statistics are z-scored over the session's speech seconds and combined into the arousal index:

    arousal = mean of the available z-scores of  F0 (semitones), loudness, alpha ratio, -Hammarberg index,
              speaking rate

(each is known to rise with vocal arousal, Hammarberg's index falls, so it enters negated; Banse & Scherer 1996,
Eyben et al. 2016). It is label-free and relative: 0 is the speaker's average in this session, +1 one standard
deviation above it; it says "more agitated than usual here", not an absolute level. docs/audio.md measures it on
EmoDB (high vs low arousal, speakers z-scored separately).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from openfer.audio.features import HOP_S, FeatureStream, FrameFeatures, frame_times, semitones, syllable_nuclei
from openfer.audio.functionals import utterance_features
from openfer.audio.vad import Segment, SileroVad, speech_mask, speech_segments

log = logging.getLogger(__name__)

#: Per-second table columns (``VoiceTrack.seconds``): start time (s), share of the second with speech, mean F0 (Hz,
#: voiced speech frames), mean loudness, alpha ratio (dB), Hammarberg index (dB), speaking rate (syllables per
#: second of speech, over a 3 s window centred on the second), the arousal index (z units; NaN without speech).
SECOND_COLUMNS = ("time", "speech", "f0", "loudness", "alpha_ratio", "hammarberg", "speaking_rate", "arousal")
#: The components of the arousal index and their signs.
AROUSAL_PARTS = (("f0", 1.0), ("loudness", 1.0), ("alpha_ratio", 1.0), ("hammarberg", -1.0), ("speaking_rate", 1.0))
#: A second counts as speech for the z-scores and the index when at least this share of it is speech.
MIN_SPEECH_SHARE = 0.25
#: Longest stretch of speech the emotion classifier sees at once (segments are split evenly), seconds.
EMOTION_WINDOW_S = 3.0


def voice_columns(classes: tuple[str, ...]) -> list[str]:
    """Columns the voice adds to video rows: ``voice_speech`` (1 while someone speaks, 0 otherwise, empty without
    sound), ``voice_f0`` (Hz), ``voice_loudness``, ``voice_arousal`` (this second's index), ``voice_expression``
    and ``voice_p_<class>`` (speech-emotion probabilities of the speech window at that time)."""
    return ["voice_speech", "voice_f0", "voice_loudness", "voice_arousal", "voice_expression",
            *(f"voice_p_{c}" for c in classes)]


@dataclass
class EmotionWindow:
    """Speech-emotion probabilities of one stretch of speech (seconds on the recording's clock)."""

    start: float
    end: float
    probabilities: np.ndarray


@dataclass
class VoiceTrack:
    """What the voice branch found in one recording.

    Attributes:
        source: the file's name.
        sound: whether the recording has an audio track (False: every value is empty).
        start: time of the first analysed sample on the recording's clock, seconds.
        duration: seconds of sound analysed.
        segments: speech segments.
        seconds: per-second table [n, len(SECOND_COLUMNS)] float64.
        windows: speech-emotion windows (empty without a model or without speech).
        classes: the speech-emotion classes (empty without a model).
        problems: what could not be read.
        compute_seconds: wall-clock time of the analysis.
    """

    source: str
    sound: bool = False
    start: float = 0.0
    duration: float = 0.0
    segments: list[Segment] = field(default_factory=list)
    seconds: np.ndarray = field(default_factory=lambda: np.zeros((0, len(SECOND_COLUMNS))))
    windows: list[EmotionWindow] = field(default_factory=list)
    classes: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)
    compute_seconds: float = 0.0

    def column(self, name: str) -> np.ndarray:
        """One per-second column."""
        return self.seconds[:, SECOND_COLUMNS.index(name)]

    def at(self, t: float, classes: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The ``voice_columns`` values at time ``t`` (seconds on the recording's clock; empty without sound or
        outside the analysed sound)."""
        classes = self.classes if classes is None else classes
        row: dict[str, Any] = dict.fromkeys(voice_columns(classes))
        k = int(math.floor(t - self.start))
        if not self.sound or k < 0 or k >= len(self.seconds) or t >= self.start + self.duration + 1e-6:
            return row
        speaking = any(s.start <= t < s.end for s in self._segments_near(t))
        row["voice_speech"] = int(speaking)
        sec = dict(zip(SECOND_COLUMNS, self.seconds[k]))
        for col, key, nd in (("voice_f0", "f0", 1), ("voice_loudness", "loudness", 4), ("voice_arousal", "arousal", 3)):
            row[col] = None if not math.isfinite(sec[key]) else round(float(sec[key]), nd)
        if speaking:
            for w in self._windows_near(t):
                if w.start <= t < w.end:
                    row["voice_expression"] = self.classes[int(np.argmax(w.probabilities))]
                    row.update((f"voice_p_{c}", round(float(p), 5)) for c, p in zip(self.classes, w.probabilities))
                    break
        return row

    def _segments_near(self, t: float) -> list[Segment]:
        starts = self.__dict__.setdefault("_seg_starts", np.array([s.start for s in self.segments]))
        i = int(np.searchsorted(starts, t, side="right")) - 1
        return self.segments[max(i, 0):i + 1] if i >= 0 else []

    def _windows_near(self, t: float) -> list[EmotionWindow]:
        starts = self.__dict__.setdefault("_win_starts", np.array([w.start for w in self.windows]))
        i = int(np.searchsorted(starts, t, side="right")) - 1
        return self.windows[i:i + 1] if i >= 0 else []

    def second_rows(self) -> list[dict[str, Any]]:
        """The per-second table as rows (for a plain audio file's output), with the emotion of the speech window
        covering most of each second."""
        rows = []
        for k, values in enumerate(self.seconds):
            row = {c: (None if not math.isfinite(v) else round(float(v), 4)) for c, v in zip(SECOND_COLUMNS, values)}
            row["time"] = round(float(values[0]), 3)
            probs = self._second_emotion(float(values[0]))
            row["expression"] = self.classes[int(np.argmax(probs))] if probs is not None else None
            row.update((f"p_{c}", None if probs is None else round(float(p), 5))
                       for c, p in zip(self.classes, probs if probs is not None else [None] * len(self.classes)))
            rows.append(row)
        return rows

    def row_columns(self) -> list[str]:
        """Columns of ``second_rows``."""
        return [*SECOND_COLUMNS, "expression", *(f"p_{c}" for c in self.classes)]

    def _second_emotion(self, t0: float) -> np.ndarray | None:
        best, share = None, 0.0
        for w in self.windows:
            overlap = min(w.end, t0 + 1) - max(w.start, t0)
            if overlap > share:
                best, share = w.probabilities, overlap
        return best

    def summary(self) -> dict[str, Any]:
        """Figures for the session summary (``summary.json``'s ``voice``) and the report's voice track."""
        if not self.sound:
            return {"sound": False, "source": self.source, "problems": self.problems}
        speech = sum(s.duration for s in self.segments)
        pauses = [b.start - a.end for a, b in zip(self.segments, self.segments[1:])]
        f0 = self.column("f0")
        voiced = f0[np.isfinite(f0)]
        out: dict[str, Any] = {
            "sound": True, "source": self.source, "start": round(self.start, 3), "seconds": round(self.duration, 3),
            "speech_seconds": round(speech, 3),
            "speech_share": round(speech / self.duration, 4) if self.duration else 0.0,
            "segments": len(self.segments),
            "mean_segment_seconds": round(speech / len(self.segments), 3) if self.segments else None,
            "pauses": len(pauses), "mean_pause_seconds": round(float(np.mean(pauses)), 3) if pauses else None,
            "f0_median_hz": round(float(np.median(voiced)), 1) if voiced.size else None,
            "speaking_rate": _round(np.nanmedian(self.column("speaking_rate")) if self.segments else math.nan, 2),
            "arousal_formula": "mean z-score over the session's speech seconds of F0, loudness, alpha ratio, "
                               "-Hammarberg index, speaking rate",
            "compute_seconds": round(self.compute_seconds, 3), "problems": self.problems,
        }
        if self.classes:
            total = np.zeros(len(self.classes))
            for w in self.windows:
                total += w.probabilities * (w.end - w.start)
            share = total / total.sum() if total.sum() > 0 else total
            out["emotion_classes"] = list(self.classes)
            out["emotion_share"] = {c: round(float(v), 4) for c, v in zip(self.classes, share)}
            out["emotion_dominant"] = self.classes[int(np.argmax(share))] if total.sum() > 0 else None
            out["emotion_model"] = "speech_emotion_emodb (German acted speech; see its model card)"
        out["per_second"] = {"time": [round(float(v), 3) for v in self.column("time")],
                             "speech": [round(float(v), 3) for v in self.column("speech")],
                             "arousal": [_round(v, 3) for v in self.column("arousal")]}
        return out


def _round(v: float, nd: int) -> float | None:
    return None if not math.isfinite(float(v)) else round(float(v), nd)


def _zscore(v: np.ndarray, use: np.ndarray) -> np.ndarray:
    ok = use & np.isfinite(v)
    if ok.sum() < 2:
        return np.full(v.shape, np.nan)
    sd = v[ok].std()
    return (v - v[ok].mean()) / sd if sd > 1e-9 else np.zeros(v.shape)


def per_second(ff: FrameFeatures, speech: np.ndarray, seconds: int, start: float = 0.0) -> np.ndarray:
    """The ``SECOND_COLUMNS`` table of frame features ``ff`` (with ``speech`` per frame) over ``seconds`` seconds
    starting at ``start``; the arousal index is computed here, over these seconds."""
    n = len(ff)
    times = frame_times(n)
    sec = np.minimum((times // 1).astype(int), max(seconds - 1, 0))
    f0 = ff.column("f0")
    voiced = np.isfinite(f0)
    nuclei = np.zeros(n, bool)
    nuclei[syllable_nuclei(ff.column("intensity"), voiced, speech)] = True
    table = np.full((seconds, len(SECOND_COLUMNS)), np.nan)
    table[:, 0] = start + np.arange(seconds)
    counts = np.bincount(sec, minlength=seconds).astype(float)
    sp = np.bincount(sec, weights=speech.astype(float), minlength=seconds)
    table[:, 1] = np.divide(sp, counts, out=np.zeros(seconds), where=counts > 0)
    st = semitones(np.where(voiced, f0, np.nan))
    for j, (name, values, mask) in enumerate((("f0", st, speech & voiced),
                                              ("loudness", ff.column("loudness"), speech),
                                              ("alpha_ratio", ff.column("alpha_ratio"), speech),
                                              ("hammarberg", ff.column("hammarberg"), speech)), start=2):
        w = np.bincount(sec, weights=np.where(mask, values, 0.0), minlength=seconds)
        c = np.bincount(sec, weights=mask.astype(float), minlength=seconds)
        table[:, j] = np.where(c > 0, w / np.maximum(c, 1), np.nan)
    nuc = np.bincount(sec, weights=nuclei.astype(float), minlength=seconds)
    def window3(v: np.ndarray) -> np.ndarray:  # sum over the second before, this one and the one after
        return np.convolve(v, np.ones(3), mode="full")[1:seconds + 1]

    speech_s = window3(sp) * HOP_S
    table[:, 6] = np.where(speech_s > 0.2, window3(nuc) / np.maximum(speech_s, 1e-9), np.nan)
    use = table[:, 1] >= MIN_SPEECH_SHARE
    z = [sign * _zscore(table[:, SECOND_COLUMNS.index(name)], use) for name, sign in AROUSAL_PARTS]
    stacked = np.vstack(z)
    known = np.isfinite(stacked)
    counts = known.sum(axis=0)
    arousal = np.where(counts > 0, np.where(known, stacked, 0).sum(axis=0) / np.maximum(counts, 1), np.nan)
    table[:, 7] = np.where(use, arousal, np.nan)
    table[:, 2] = np.where(np.isfinite(table[:, 2]), 27.5 * 2 ** (table[:, 2] / 12), np.nan)  # back to Hz
    return table


def analyze_sound(path: str | Path, start: float = 0.0, end: float | None = None, vad: SileroVad | None = None,
                  emotion=True, chunk_seconds: float = 10.0,
                  on_progress: Callable[[float], None] | None = None) -> VoiceTrack:
    """The ``VoiceTrack`` of a video's audio track or an audio file, from ``start`` to ``end`` seconds.

    Args:
        path: a video or audio file.
        start, end: the analysed time window, seconds (as the frames' ``--start``/``--end``).
        vad: the voice activity model (default: Silero VAD from the installed silero-vad).
        emotion: True for the shipped speech-emotion model, a ``SpeechEmotionModel``, or False/None for none.
        chunk_seconds: seconds of sound decoded and analysed at a time.
        on_progress: called with the seconds analysed so far.

    A file without an audio track gives a track with ``sound=False`` (every value empty); nothing raises for that.

    Raises:
        UnreadableInputError: the file cannot be opened at all.
    """
    from openfer.audio.reader import SAMPLE_RATE, AudioReader, NoAudioError

    t0 = time.perf_counter()
    try:
        reader = AudioReader(path, chunk_seconds=chunk_seconds, start=start, end=end)
    except NoAudioError as e:
        model = _emotion_model(emotion)
        return VoiceTrack(source=str(path), sound=False, start=start, problems=[str(e)],
                          classes=tuple(model.classes) if model is not None else ())
    vad = vad or SileroVad()
    vad.reset()
    stream = FeatureStream()
    probs, parts, samples = [], [], 0
    with reader:
        for chunk in reader:
            probs.append(vad.probabilities(chunk))
            parts.append(stream.feed(chunk))
            samples += chunk.size
            if on_progress:
                on_progress(samples / SAMPLE_RATE)
        problems = list(reader.problems)
    probs.append(vad.probabilities(np.zeros(0, np.float32), final=True))
    track = voice_track(FrameFeatures.concat(parts), np.concatenate(probs), samples / SAMPLE_RATE, start,
                        emotion, source=str(path))
    track.problems = problems
    if samples == 0:
        track.sound = False
        track.problems.append(f"{path}: the audio track holds no sound in the analysed time")
    track.compute_seconds = time.perf_counter() - t0
    return track


def voice_track(ff: FrameFeatures, vad_probs: np.ndarray, duration: float, start: float = 0.0, emotion=True,
                source: str = "samples") -> VoiceTrack:
    """The ``VoiceTrack`` of frame features and VAD probabilities (times relative to ``start``)."""
    segments = speech_segments(vad_probs)
    speech = speech_mask(segments, frame_times(len(ff)))
    n_sec = max(1, int(math.ceil(duration - 1e-9))) if duration > 0 else 0
    table = per_second(ff, speech, n_sec, start)
    track = VoiceTrack(source=source, sound=duration > 0, start=start, duration=duration,
                       segments=[Segment(round(s.start + start, 3), round(s.end + start, 3)) for s in segments],
                       seconds=table)
    model = _emotion_model(emotion)
    if model is not None and segments:
        spans, feats = [], []
        times = frame_times(len(ff))
        for s in segments:
            k = max(1, int(math.ceil(s.duration / EMOTION_WINDOW_S - 1e-9)))
            edges = np.linspace(s.start, s.end, k + 1)
            for a, b in zip(edges, edges[1:]):
                inside = (times >= a) & (times < b)
                spans.append((a, b))
                feats.append(utterance_features(FrameFeatures(ff.table[inside], ff.periodicity[inside]),
                                                speech[inside]))
        probs = model.predict_proba(np.stack(feats))
        track.windows = [EmotionWindow(round(a + start, 3), round(b + start, 3), p) for (a, b), p in zip(spans, probs)]
        track.classes = tuple(model.classes)
    elif model is not None:
        track.classes = tuple(model.classes)
    return track


def _emotion_model(emotion):
    if emotion is True:
        from openfer.audio.emotion import SpeechEmotionModel

        return SpeechEmotionModel()
    return emotion or None


def analyze_samples(samples: np.ndarray, emotion=True, vad: SileroVad | None = None) -> VoiceTrack:
    """The ``VoiceTrack`` of 16 kHz mono float32 samples in memory (tests, sound your own code decodes)."""
    from openfer.audio.features import frame_features

    t0 = time.perf_counter()
    vad = vad or SileroVad()
    vad.reset()
    x = np.asarray(samples, np.float32).reshape(-1)
    track = voice_track(frame_features(x), vad.probabilities(x, final=True), x.size / 16000, 0.0, emotion)
    track.compute_seconds = time.perf_counter() - t0
    return track

