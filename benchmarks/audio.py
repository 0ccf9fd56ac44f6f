"""Measure the voice branch (docs/audio.md): VAD precision/recall on generated speech + silence + noise, F0 error
on generated voices, the arousal index on EmoDB, speed (seconds of sound per second) and memory on long tracks.

    python benchmarks/audio.py vad       # VAD on generated speech, silence and noise
    python benchmarks/audio.py arousal   # arousal index and its parts on EmoDB (high vs low arousal, AUC)
    python benchmarks/audio.py speed     # seconds of sound analysed per second (median of 3, alternating)
    python benchmarks/audio.py memory --minutes 60   # peak memory of analyze_sound on a long generated track
    python benchmarks/audio.py all

Results: benchmarks/results/audio_<what>.json. Timings on a shared 2-core machine are noisy: medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from openfer.audio import synth
from openfer.audio.vad import Segment, SileroVad, speech_mask, speech_segments

RESULTS = Path(__file__).parent / "results"
EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb" / "trimmed_2s"


def _save(name: str, data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)", **data}
    (RESULTS / f"audio_{name}.json").write_text(json.dumps(data, indent=2))
    print(json.dumps(data, indent=2))


def vad_bench() -> dict:
    """Frame-level precision/recall (10 ms frames) of Silero's probability >= 0.5 and of the speech segments,
    against the generated phrases; false alarms on noise alone."""
    vad = SileroVad()
    conditions = [("calm, clean", synth.CALM, None, -90), ("aroused, clean", synth.AROUSED, None, -90),
                  ("calm, white noise -40 dBFS", synth.CALM, "white", -40),
                  ("calm, white noise -30 dBFS", synth.CALM, "white", -30),
                  ("calm, mains hum -35 dBFS", synth.CALM, "hum", -35),
                  ("quiet voice -35 dBFS, white noise -45 dBFS", synth.Voice(level=-35.0), "white", -45)]
    out = []
    for name, voice, kind, level in conditions:
        tp = fp = fn = stp = sfp = sfn = 0
        for seed in range(5):
            x, spans = synth.speech(voice, 60, pause=(0.5, 2.0), seed=seed)
            if kind:
                x = x + synth.noise(60, level, seed=seed + 100, kind=kind)
            vad.reset()
            p = vad.probabilities(x, final=True)
            t = np.arange(0, 60, 0.01)
            truth = speech_mask([Segment(a, b) for a, b in spans], t)
            raw = p[np.minimum((t / 0.032).astype(int), len(p) - 1)] >= 0.5
            seg = speech_mask(speech_segments(p), t)
            tp += (raw & truth).sum(); fp += (raw & ~truth).sum(); fn += (~raw & truth).sum()
            stp += (seg & truth).sum(); sfp += (seg & ~truth).sum(); sfn += (~seg & truth).sum()
        out.append({"condition": name, "frames_precision": round(tp / (tp + fp), 3),
                    "frames_recall": round(tp / (tp + fn), 3), "segments_precision": round(stp / (stp + sfp), 3),
                    "segments_recall": round(stp / (stp + sfn), 3), "seconds": 300})
    false_alarms = []
    for kind, level in (("white", -30), ("white", -20), ("hum", -25)):
        vad.reset()
        segs = speech_segments(vad.probabilities(synth.noise(120, level, kind=kind), final=True))
        false_alarms.append({"noise": f"{kind} {level} dBFS, 120 s", "segments": len(segs),
                             "seconds_called_speech": round(sum(s.duration for s in segs), 2)})
    f0 = []
    from openfer.audio.features import frame_features

    for name, voice in (("calm 120 Hz", synth.CALM), ("aroused 190 Hz", synth.AROUSED),
                        ("low 85 Hz", synth.Voice(f0=85.0)), ("high 260 Hz", synth.Voice(f0=260.0))):
        x, _ = synth.speech(voice, 30, seed=1)
        ff = frame_features(x)
        v = ff.column("f0")
        on = ff.column("intensity") > -45
        f0.append({"voice": name, "median_f0": round(float(np.nanmedian(v[on])), 1),
                   "voiced_share_of_loud_frames": round(float(np.isfinite(v[on]).mean()), 3),
                   "octave_errors": round(float(np.mean(np.abs(np.log2(v[on & np.isfinite(v)] / voice.f0)) > 0.5)), 4)})
    return {"vad": out, "noise_only": false_alarms, "f0_generated": f0,
            "note": "generated speech (openfer.audio.synth), 5 x 60 s per condition, phrases 1-2.5 s, pauses 0.5-2 s"}


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(label, score))


def arousal_bench() -> dict:
    """The arousal index per EmoDB clip (parts z-scored within each speaker) against the binary arousal labels."""
    from openfer.audio.emotion import EMOTION_CLASSES, HIGH_AROUSAL
    from openfer.audio.functionals import FEATURE_NAMES
    from openfer.audio.train_emotion import load_emodb

    t0 = time.perf_counter()
    x, y, speakers, _ = load_emodb(EMODB)
    high = np.isin(y, [EMOTION_CLASSES.index(c) for c in HIGH_AROUSAL]).astype(int)
    parts = {"f0": ("f0_mean", 1), "loudness": ("loudness_mean", 1), "alpha_ratio": ("alpha_ratio_mean", 1),
             "hammarberg": ("hammarberg_mean", -1), "speaking_rate": ("speaking_rate", 1)}
    z = {}
    for name, (feat, sign) in parts.items():
        v = x[:, FEATURE_NAMES.index(feat)].astype(np.float64)
        zz = np.empty_like(v)
        for s in np.unique(speakers):
            m = speakers == s
            zz[m] = (v[m] - v[m].mean()) / (v[m].std() + 1e-9)
        z[name] = sign * zz
    index = np.mean(np.stack(list(z.values())), axis=0)
    def without(*names):
        return np.mean(np.stack([z[k] for k in z if k not in names]), axis=0)

    return {"clips": int(len(y)), "speakers": int(len(np.unique(speakers))), "high_arousal": list(HIGH_AROUSAL),
            "auc_index": round(_auc(index, high), 3), "auc_index_without": {
                "speaking_rate": round(_auc(without("speaking_rate"), high), 3),
                "loudness": round(_auc(without("loudness"), high), 3),
                "loudness_and_rate": round(_auc(without("loudness", "speaking_rate"), high), 3)},
            "auc_parts": {k: round(_auc(v, high), 3) for k, v in z.items()},
            "mean_index_per_class": {c: round(float(index[y == i].mean()), 3) for i, c in enumerate(EMOTION_CLASSES)},
            "seconds": round(time.perf_counter() - t0, 1),
            "note": "EmoDB trimmed_2s (cut or padded to 2 s; every clip peak-normalised to ~1.0, so absolute loudness "
                    "is not comparable between clips); each part z-scored within the speaker's clips, as "
                    "the index is z-scored within a session; AUC: probability a high-arousal clip scores above a "
                    "low-arousal one"}


def _write_long_wav(path: Path, minutes: float) -> None:
    """A long 16 kHz track: 60 s of generated speech (calm and aroused halves) repeated with fresh noise."""
    calm, _ = synth.speech(synth.CALM, 30, seed=1)
    aroused, _ = synth.speech(synth.AROUSED, 30, seed=2)
    minute = np.concatenate([calm, aroused])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        for i in range(int(np.ceil(minutes))):
            x = minute + synth.noise(60, -50, seed=i)
            w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def _encode_mp4(wav: Path, mp4: Path) -> None:
    """The WAV's sound as AAC in an MP4 (what a video's track is), through PyAV."""
    import av

    with av.open(str(wav)) as src, av.open(str(mp4), "w") as dst:
        out = dst.add_stream("aac", rate=16000)
        out.layout = "mono"
        for frame in src.decode(audio=0):
            frame.pts = None
            for p in out.encode(frame):
                dst.mux(p)
        for p in out.encode():
            dst.mux(p)


def _child(path: str) -> None:
    """Run in a fresh process: analyse one file, print seconds, peak RSS and the track's size."""
    from openfer.audio.voice import analyze_sound

    t0 = time.perf_counter()
    track = analyze_sound(path)
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "audio_seconds": track.duration,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "segments": len(track.segments)}))


def _run_child(path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "_child", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_bench(minutes: float) -> dict:
    with tempfile.TemporaryDirectory() as d:
        rows = []
        for m in (minutes / 6, minutes):
            wav = Path(d) / f"{m:g}min.wav"
            _write_long_wav(wav, m)
            mp4 = Path(d) / f"{m:g}min.m4a"
            _encode_mp4(wav, mp4)
            for path in (wav, mp4):
                r = _run_child(path)
                rows.append({"file": f"{m:g} min {path.suffix[1:]}", "size_mb": round(path.stat().st_size / 2**20, 1),
                             "peak_rss_mb": round(r["peak_rss_mb"], 1), "seconds": round(r["seconds"], 1),
                             "audio_seconds_per_second": round(r["audio_seconds"] / r["seconds"], 1),
                             "segments": r["segments"]})
    baseline = subprocess.run([sys.executable, "-c", "import resource, numpy, onnxruntime, av, openfer.audio.voice; "
                               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
                              capture_output=True, text=True, check=True)
    return {"runs": rows, "imports_only_rss_mb": round(float(baseline.stdout.strip()), 1),
            "note": "analyze_sound (VAD, features, per-second table, speech emotion) in a fresh process each; "
                    "peak RSS from getrusage"}


def speed_bench() -> dict:
    """Seconds of sound per second for each stage on 5 minutes of generated speech (median of 3, interleaved)."""
    from openfer.audio.features import FeatureStream
    from openfer.audio.voice import analyze_samples

    x = np.concatenate([synth.speech(synth.CALM, 150, seed=1)[0], synth.speech(synth.AROUSED, 150, seed=2)[0]])
    secs = x.size / 16000
    vad = SileroVad()
    times: dict[str, list[float]] = {"vad": [], "features": [], "whole_track": []}
    for _ in range(3):
        t0 = time.perf_counter()
        vad.reset()
        for i in range(0, x.size, 160000):
            vad.probabilities(x[i:i + 160000])
        times["vad"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fs = FeatureStream()
        for i in range(0, x.size, 160000):
            fs.feed(x[i:i + 160000])
        times["features"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        analyze_samples(x, vad=vad)
        times["whole_track"].append(time.perf_counter() - t0)
    return {"audio_seconds": secs, "audio_seconds_per_second": {k: round(secs / float(np.median(v)), 1)
                                                               for k, v in times.items()},
            "runs_seconds": {k: [round(t, 2) for t in v] for k, v in times.items()},
            "note": "one ONNX Runtime thread; 2-core machine shared with other jobs: median of 3"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["vad", "arousal", "speed", "memory", "all", "_child"])
    ap.add_argument("path", nargs="?")
    ap.add_argument("--minutes", type=float, default=60)
    a = ap.parse_args()
    if a.what == "_child":
        _child(a.path)
        return
    if a.what in ("vad", "all"):
        _save("vad", vad_bench())
    if a.what in ("arousal", "all"):
        _save("arousal", arousal_bench())
    if a.what in ("speed", "all"):
        _save("speed", speed_bench())
    if a.what in ("memory", "all"):
        _save("memory", memory_bench(a.minutes))


if __name__ == "__main__":
    main()
