"""Score the speech-emotion model (and the arousal it implies) on a labelled corpus it was not trained on.

    python -m openfer.audio.evaluate --data path/to/corpus [--json scores.json]

The folder holds ``labels.csv`` with columns ``file`` (relative path of an audio file) and ``emotion``. Common label
spellings are mapped to the model's classes (``angry`` -> anger, ``happy``/``joy`` -> happiness, ``sad`` -> sadness,
``fearful`` -> fear, ``disgusted`` -> disgust, ``bored`` -> boredom, ``calm`` counts for arousal only (low),
``surprise(d)`` for arousal only (high)). Reported: UAR over the model's classes present in the data (a clip of
another class cannot be right, so those clips are left out of it), per-class recall, and binary arousal UAR.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from openfer.audio.emotion import EMOTION_CLASSES, HIGH_AROUSAL, SpeechEmotionModel

SYNONYMS = {"angry": "anger", "ang": "anger", "happy": "happiness", "joy": "happiness", "hap": "happiness",
            "sad": "sadness", "fearful": "fear", "afraid": "fear", "disgusted": "disgust", "bored": "boredom",
            "neu": "neutral"}
AROUSAL_ONLY = {"calm": 0, "surprise": 1, "surprised": 1}


def evaluate(folder: str | Path, model: SpeechEmotionModel | None = None) -> dict:
    """Scores of ``model`` (default: the shipped one) on ``folder`` (see the module's docstring)."""
    from openfer.audio.reader import read_audio
    from openfer.audio.train_emotion import clip_features
    from openfer.audio.vad import SileroVad

    folder = Path(folder)
    model = model or SpeechEmotionModel()
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    vad = SileroVad()
    labels, feats, skipped = [], [], set()
    for r in rows:
        label = r["emotion"].strip().lower()
        label = SYNONYMS.get(label, label)
        if label not in EMOTION_CLASSES and label not in AROUSAL_ONLY:
            skipped.add(r["emotion"])
            continue
        labels.append(label)
        feats.append(clip_features(read_audio(folder / r["file"]), vad))
    probs = model.predict_proba(np.stack(feats)) if feats else np.zeros((0, len(model.classes)))
    pred = [model.classes[i] for i in probs.argmax(1)]
    recall = {c: float(np.mean([p == c for p, t in zip(pred, labels) if t == c]))
              for c in model.classes if c in labels}
    high = [model.classes.index(c) for c in HIGH_AROUSAL]
    a_true = np.array([AROUSAL_ONLY.get(t, int(t in HIGH_AROUSAL)) for t in labels])
    a_pred = (probs[:, high].sum(1) >= 0.5).astype(int)
    a_rec = [float(np.mean(a_pred[a_true == k] == k)) for k in (0, 1) if np.any(a_true == k)]
    return {"data": str(folder), "clips": len(labels), "classes_scored": list(recall),
            "uar": float(np.mean(list(recall.values()))) if recall else None, "recall": recall,
            "arousal_uar": float(np.mean(a_rec)) if len(a_rec) == 2 else None,
            "skipped_labels": sorted(skipped)}


def main(argv: list[str] | None = None) -> None:
    """Command line: print the scores (and write them as JSON with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    scores = evaluate(a.data)
    print(json.dumps(scores, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(scores, indent=2))


if __name__ == "__main__":
    main()
