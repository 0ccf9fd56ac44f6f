"""Our frame features against reference implementations on EmoDB clips: Praat's pitch (through parselmouth,
GPL) and openSMILE's eGeMAPS v02 low-level descriptors (non-commercial licence). Neither is an openfer
dependency: the references run in a separate virtual environment that has them and not openfer.

    # 1. in openfer's venv: our features per frame
    python benchmarks/audio_reference.py ours --out /tmp/ours.npz
    # 2. in a venv with praat-parselmouth, opensmile, soundfile, numpy (no openfer)
    python benchmarks/audio_reference.py reference --ours /tmp/ours.npz

Frames are matched by centre time (ours: 40 ms windows every 10 ms; openSMILE's at its own centres); openSMILE's
``_sma3`` descriptors are smoothed over 3 frames, and ours are smoothed the same way before comparing.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb" / "trimmed_2s"
RESULT = Path(__file__).parent / "results" / "audio_reference.json"
NAMES = ("f0", "loudness", "alpha_ratio", "hammarberg", "intensity")


def _files(limit: int) -> list[str]:
    with open(EMODB / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["file"] for r in rows][::max(1, len(rows) // limit)][:limit]


def ours(out: str, limit: int) -> None:
    from openfer.audio.features import frame_features, frame_times
    from openfer.audio.reader import read_audio

    data = {}
    for i, name in enumerate(_files(limit)):
        ff = frame_features(read_audio(EMODB / name))
        data[f"t{i}"] = frame_times(len(ff))
        for n in NAMES:
            data[f"{n}{i}"] = ff.column(n)
    np.savez(out, files=np.array(_files(limit)), **data)


def _sma3(v: np.ndarray) -> np.ndarray:
    return np.convolve(v, np.ones(3) / 3, mode="same")


def _pearson(a, b) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 2 else float("nan")


def reference(ours_path: str) -> None:
    import opensmile
    import parselmouth
    import soundfile

    d = np.load(ours_path)
    files = list(d["files"])
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
    pairs = {k: ([], []) for k in ("f0_praat", "f0_opensmile", "loudness", "alpha_ratio", "hammarberg")}
    means = {k: ([], []) for k in ("f0", "loudness", "alpha_ratio", "hammarberg")}
    voicing = []
    for i, name in enumerate(files):
        x, sr = soundfile.read(EMODB / name, dtype="float64")
        t = d[f"t{i}"]
        f0 = d[f"f0{i}"].astype(np.float64)
        snd = parselmouth.Sound(x, sampling_frequency=sr)
        pitch = snd.to_pitch_ac(time_step=0.01, pitch_floor=60, pitch_ceiling=500)
        pt = pitch.xs()
        pv = pitch.selected_array["frequency"].astype(np.float64)
        pv[pv == 0] = np.nan
        praat = np.interp(t, pt, pv, left=np.nan, right=np.nan)
        praat[np.isnan(np.interp(t, pt, np.where(np.isfinite(pv), 0, np.nan)))] = np.nan  # unvoiced stays unvoiced
        pairs["f0_praat"][0].append(12 * np.log2(f0 / 27.5))
        pairs["f0_praat"][1].append(12 * np.log2(praat / 27.5))
        voicing.append((np.isfinite(f0), np.isfinite(praat)))
        lld = smile.process_signal(x, sr)
        idx = lld.index
        centres = np.array([(s.total_seconds() + e.total_seconds()) / 2 for _, s, e in idx]) \
            if lld.index.nlevels == 3 else np.array([(s.total_seconds() + e.total_seconds()) / 2
                                                     for s, e in idx])
        near = np.clip(np.searchsorted(centres, t), 0, len(centres) - 1)
        ref = {"f0_opensmile": lld["F0semitoneFrom27.5Hz_sma3nz"].to_numpy()[near],
               "loudness": lld["Loudness_sma3"].to_numpy()[near],
               "alpha_ratio": lld["alphaRatio_sma3"].to_numpy()[near],
               "hammarberg": lld["hammarbergIndex_sma3"].to_numpy()[near]}
        ref["f0_opensmile"] = np.where(ref["f0_opensmile"] > 0, ref["f0_opensmile"], np.nan)
        loud = d[f"intensity{i}"] > -50  # frames with sound: the spectral balance of silence is noise
        pairs["f0_opensmile"][0].append(12 * np.log2(f0 / 27.5))
        pairs["f0_opensmile"][1].append(ref["f0_opensmile"])
        for n in ("loudness", "alpha_ratio", "hammarberg"):
            ours_v = _sma3(d[f"{n}{i}"].astype(np.float64))
            pairs[n][0].append(np.where(loud, ours_v, np.nan))
            pairs[n][1].append(np.where(loud, ref[n], np.nan))
            means[n][0].append(np.nanmean(np.where(loud, ours_v, np.nan)))
            means[n][1].append(np.nanmean(np.where(loud, ref[n], np.nan)))
        means["f0"][0].append(np.nanmean(12 * np.log2(f0 / 27.5)))
        means["f0"][1].append(np.nanmean(12 * np.log2(praat / 27.5)))
    out = {"clips": len(files), "data": "EmoDB trimmed_2s, every 5th clip",
           "frame_pearson": {}, "clip_mean_pearson": {}}
    for k, (a, b) in pairs.items():
        a, b = np.concatenate(a), np.concatenate(b)
        out["frame_pearson"][k] = round(_pearson(a, b), 3)
        if k.startswith("f0"):
            ok = np.isfinite(a) & np.isfinite(b)
            err = np.abs(a[ok] - b[ok])
            out[f"{k}_median_abs_error_semitones"] = round(float(np.median(err)), 3)
            out[f"{k}_gross_errors_over_20pct"] = round(float(np.mean(err > 12 * np.log2(1.2))), 4)
            out[f"{k}_frames_both_voiced"] = int(ok.sum())
    for k, (a, b) in means.items():
        out["clip_mean_pearson"][k] = round(_pearson(np.array(a), np.array(b)), 3)
    ours_v = np.concatenate([v[0] for v in voicing])
    praat_v = np.concatenate([v[1] for v in voicing])
    out["voicing_agreement_with_praat"] = round(float(np.mean(ours_v == praat_v)), 3)
    out["voiced_recall_vs_praat"] = round(float((ours_v & praat_v).sum() / praat_v.sum()), 3)
    out["voiced_precision_vs_praat"] = round(float((ours_v & praat_v).sum() / ours_v.sum()), 3)
    out["references"] = {"praat": f"parselmouth {parselmouth.__version__} (Praat, GPL): to_pitch_ac 60-500 Hz",
                         "opensmile": f"opensmile {opensmile.__version__} eGeMAPSv02 LLDs (non-commercial)"}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["ours", "reference"])
    ap.add_argument("--out", default="/tmp/ours.npz")
    ap.add_argument("--ours", default="/tmp/ours.npz")
    ap.add_argument("--limit", type=int, default=107)
    a = ap.parse_args()
    ours(a.out, a.limit) if a.what == "ours" else reference(a.ours)
