"""Train and evaluate the speech-emotion classifier on EmoDB (leave-one-speaker-out), and export it to ONNX.

    python -m openfer.audio.train_emotion --data ../shared/data/emodb/trimmed_2s \
        --out src/openfer/models/speech_emotion_emodb.onnx --report benchmarks/results/speech_emotion_emodb.json

Each utterance: Silero VAD -> speech frames -> ``utterance_features`` (45 statistics of pitch, loudness, spectral
balance, MFCCs, voicing, rate, pauses). Model: standardisation + a multilayer perceptron (scikit-learn), or a
logistic regression; both are scored with leave-one-speaker-out cross-validation (10 folds: the speaker of a test
fold is never seen in training), as unweighted average recall (UAR, the mean of per-class recalls) for the 7 classes
and for binary arousal (the 7-class probabilities summed into high/low). The shipped model is refitted on all 10
speakers with the recipe that scored best.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from pathlib import Path

import numpy as np

from openfer.audio.emotion import EMOTION_CLASSES, HIGH_AROUSAL, build_onnx, file_sha256
from openfer.audio.features import HOP_S, frame_features, frame_times
from openfer.audio.functionals import FEATURE_NAMES, utterance_features
from openfer.audio.reader import read_audio
from openfer.audio.vad import SileroVad, speech_mask, speech_segments

log = logging.getLogger(__name__)


def clip_features(x: np.ndarray, vad: SileroVad) -> np.ndarray:
    """``utterance_features`` of one clip (16 kHz mono): its speech frames by Silero VAD (all frames when the VAD
    finds none, e.g. a clip cut inside a word)."""
    vad.reset()
    segs = speech_segments(vad.probabilities(x, final=True), min_speech=0.1)
    ff = frame_features(x)
    speech = speech_mask(segs, frame_times(len(ff)))
    if not speech.any():
        speech = ff.column("intensity") > -60
    return utterance_features(ff, speech)


def load_emodb(folder: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Features [N, F], class indices [N], speaker ids [N] and file names of an EmoDB folder with ``labels.csv``
    (``file, emotion, speaker, text``)."""
    folder = Path(folder)
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    vad = SileroVad()
    feats, labels, speakers, files = [], [], [], []
    for r in rows:
        feats.append(clip_features(read_audio(folder / r["file"]), vad))
        labels.append(EMOTION_CLASSES.index(r["emotion"]))
        speakers.append(r["speaker"])
        files.append(r["file"])
    return np.stack(feats), np.asarray(labels), np.asarray(speakers), files


def _recalls(y: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    return np.asarray([np.mean(pred[y == c] == c) if np.any(y == c) else np.nan for c in range(n)])


def _arousal(labels: np.ndarray) -> np.ndarray:
    high = [EMOTION_CLASSES.index(c) for c in HIGH_AROUSAL]
    return np.isin(labels, high).astype(int)


def make_model(kind: str, seed: int = 0):
    """An unfitted scikit-learn pipeline: ``mlp`` (one hidden layer of 64, L2 1.0) or ``logreg``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(64,), alpha=1.0, max_iter=2000, random_state=seed)
    elif kind == "logreg":
        clf = LogisticRegression(C=0.1, max_iter=5000)
    else:
        raise ValueError(kind)
    return make_pipeline(StandardScaler(), clf)


def loso(x: np.ndarray, y: np.ndarray, speakers: np.ndarray, kind: str) -> dict:
    """Leave-one-speaker-out predictions and their UAR, per-class recall, binary-arousal UAR."""
    proba = np.zeros((len(y), len(EMOTION_CLASSES)))
    for s in np.unique(speakers):
        test = speakers == s
        model = make_model(kind).fit(x[~test], y[~test])
        proba[test] = model.predict_proba(x[test])
    pred = proba.argmax(1)
    rec = _recalls(y, pred, len(EMOTION_CLASSES))
    high = [EMOTION_CLASSES.index(c) for c in HIGH_AROUSAL]
    a_true, a_pred = _arousal(y), (proba[:, high].sum(1) >= 0.5).astype(int)
    a_rec = _recalls(a_true, a_pred, 2)
    per_speaker = {str(s): float(np.nanmean(_recalls(y[speakers == s], pred[speakers == s], len(EMOTION_CLASSES))))
                   for s in np.unique(speakers)}
    return {"model": kind, "uar": float(np.nanmean(rec)), "accuracy": float(np.mean(pred == y)),
            "recall": dict(zip(EMOTION_CLASSES, map(float, rec))), "arousal_uar": float(a_rec.mean()),
            "arousal_recall": {"low": float(a_rec[0]), "high": float(a_rec[1])}, "uar_per_speaker": per_speaker,
            "confusion": [[int(np.sum((y == i) & (pred == j))) for j in range(len(EMOTION_CLASSES))]
                          for i in range(len(EMOTION_CLASSES))]}


def speaker_normalised(x: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Features z-scored within each speaker (uses the test speaker's unlabelled clips: a per-session
    normalisation, reported for comparison; the shipped model takes raw features so one clip is enough)."""
    out = np.empty_like(x)
    for s in np.unique(speakers):
        m = speakers == s
        out[m] = (x[m] - x[m].mean(0)) / (x[m].std(0) + 1e-6)
    return out


def export(model, path: str | Path, metadata: dict[str, str]) -> None:
    """Write a fitted ``make_model`` pipeline as ONNX (``build_onnx``)."""
    import onnx

    scaler, clf = model.steps[0][1], model.steps[-1][1]
    if hasattr(clf, "coefs_"):
        layers = list(zip(clf.coefs_, clf.intercepts_))
    else:
        layers = [(clf.coef_.T, clf.intercept_)]
    onnx_model = build_onnx(scaler.mean_, scaler.scale_, layers, EMOTION_CLASSES, metadata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx_model, str(path))


def main(argv: list[str] | None = None) -> None:
    """Command line: features, LOSO scores of each model kind, the best one refitted and exported."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="EmoDB folder with labels.csv and audio/")
    ap.add_argument("--out", help="ONNX file for the model refitted on all speakers")
    ap.add_argument("--report", help="JSON file for the LOSO figures")
    ap.add_argument("--models", default="mlp,logreg")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    x, y, speakers, _ = load_emodb(args.data)
    t_feat = time.perf_counter() - t0
    print(f"{len(y)} clips, {len(np.unique(speakers))} speakers, features in {t_feat:.1f} s")
    results = [loso(x, y, speakers, k) for k in args.models.split(",")]
    for r in results:
        print(f"{r['model']}: LOSO UAR {r['uar']:.3f} (7 classes), arousal UAR {r['arousal_uar']:.3f}, "
              f"recall {json.dumps({k: round(v, 2) for k, v in r['recall'].items()})}")
    best = max(results, key=lambda r: r["uar"])
    norm = loso(speaker_normalised(x, speakers), y, speakers, best["model"])
    print(f"{best['model']} on per-speaker z-scored features (not shipped): LOSO UAR {norm['uar']:.3f}, "
          f"arousal UAR {norm['arousal_uar']:.3f}")
    report = {"data": str(args.data), "clips": int(len(y)), "speakers": sorted(map(str, np.unique(speakers))),
              "feature_seconds": round(t_feat, 1), "features": list(FEATURE_NAMES), "loso": results,
              "speaker_normalised": norm,
              "chosen": best["model"]}
    if args.out:
        model = make_model(best["model"]).fit(x, y)
        export(model, args.out, {"recipe": f"openfer.audio.train_emotion, {best['model']}, refitted on all "
                                           f"{len(y)} EmoDB clips", "loso_uar": f"{best['uar']:.4f}",
                                 "loso_arousal_uar": f"{best['arousal_uar']:.4f}", "data": "EmoDB (CC0), German, acted",
                                 "licence": "MIT (weights); data CC0"})
        report["model_file"] = str(args.out)
        report["model_sha256"] = file_sha256(args.out)
        print(f"model: {args.out}")
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
