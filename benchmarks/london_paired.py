"""How far each model is from the London target: is a smile seen at all, or only not enough to beat neutral?

Usage: python benchmarks/london_paired.py [--models default large fast fer2013] [--out benchmarks/results/london_paired.json]

The London set has one neutral and one smiling portrait of each of 102 people. For each model the score of a
photo is log p(happiness) - log p(neutral) (the two-class decision of ``openfer.crossdomain``). Reported:
``accuracy`` (score > 0, what the cross-domain table shows), ``auc`` (ranking all 204 photos), ``paired`` (share of
people whose smiling photo scores higher than their neutral one: a forced choice between the two, as a person's own
neutral baseline would allow), ``threshold_lopo`` (the threshold that maximises accuracy on the other 101 people,
applied to each held-out person: a threshold fitted to this domain without touching the scored person) and
``threshold_oracle`` (the best single threshold on all 204: an upper bound for any per-photo threshold, not a
usable number). Detections are cached like benchmarks/crossdomain.py's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from openfer.classify import load_classifier
from openfer.crossdomain import detect_photos, load_photo_set, photo_crops, shared_data_path
from openfer.detect import load_detector

CACHE = Path("benchmarks/results/cache")


def best_threshold(score: np.ndarray, smile: np.ndarray) -> float:
    """The threshold (midpoint between sorted scores) with the highest accuracy of ``score > t``."""
    s = np.sort(score)
    cuts = np.concatenate([[s[0] - 1], (s[1:] + s[:-1]) / 2, [s[-1] + 1]])
    acc = [((score > t) == smile).mean() for t in cuts]
    return float(cuts[int(np.argmax(acc))])


def london_scores(score: np.ndarray, smile: np.ndarray, person: np.ndarray) -> dict:
    """The five figures of the module docstring for one model's scores."""
    people = np.unique(person)
    paired = [score[(person == q) & smile].mean() > score[(person == q) & ~smile].mean()
              for q in people if smile[person == q].any() and (~smile[person == q]).any()]
    lopo = np.empty(len(score), bool)
    for q in people:
        held = person == q
        lopo[held] = score[held] > best_threshold(score[~held], smile[~held])
    return {"n": int(len(score)), "accuracy": float(((score > 0) == smile).mean()),
            "auc": float(roc_auc_score(smile, score)), "paired": float(np.mean(paired)), "pairs": len(paired),
            "threshold_lopo": float((lopo == smile).mean()),
            "threshold_oracle": float(((score > best_threshold(score, smile)) == smile).mean()),
            "smiles_below_zero": int((smile & (score <= 0)).sum()),
            "neutral_above_zero": int((~smile & (score > 0)).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["default", "large", "fast", "fer2013"])
    ap.add_argument("--out", default="benchmarks/results/london_paired.json")
    args = ap.parse_args()
    photos = load_photo_set(shared_data_path("london"))
    detections = detect_photos(photos, load_detector("centerface"), CACHE / "detections-london.npz")
    found = detections.found
    smile = np.array([photos.classes[k] == "happiness" for k in photos.labels])[found]
    person = np.array(photos.persons)[found]
    results = {}
    for name in args.models:
        clf = load_classifier(name, threads=1)
        p = clf.predict_proba(photo_crops(photos, detections, clf.input_size, clf.spec.channels))
        score = np.log(p[:, clf.classes.index("happiness")] + 1e-12) - np.log(p[:, clf.classes.index("neutral")] + 1e-12)
        results[name] = london_scores(score, smile, person)
        r = results[name]
        print(f"{name:10s} accuracy {r['accuracy']:.3f}  AUC {r['auc']:.3f}  paired {r['paired']:.3f} "
              f"({r['pairs']} people)  threshold LOPO {r['threshold_lopo']:.3f}  oracle {r['threshold_oracle']:.3f}")
    Path(args.out).write_text(json.dumps({"missed": int((~found).sum()), "models": results}, indent=2))


if __name__ == "__main__":
    main()
