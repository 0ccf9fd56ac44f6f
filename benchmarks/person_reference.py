"""Issue 14, London's faint smiles: does a person's own neutral photo, used as a reference, help on other photos?

Usage: python benchmarks/person_reference.py [--model default] [--alphas 0.25 0.5 1]
       [--detections benchmarks/results/cache/detections-muxspace.npz]

For each of muxspace's val people with a detected neutral photo and at least one other detected photo, up to three
neutral photos (seeded draw, never all of a person's photos) are the reference; the person's other photos are
scored. The reference shift is the mean log-probability of the reference photos minus the model's mean
log-probability on the neutral faces of its FER validation split (what a typical neutral face gives); a scored
photo's log-probabilities minus ``alpha`` times the shift, renormalised, are labelled by the model's rule. So at
``alpha`` 1 the person's reference reads like a typical neutral face, and everything else of theirs moves with it.
Validation people only; prints accuracy, UAR (classes with at least 5 scored photos) and per-class recall, and
writes ``benchmarks/results/person_reference.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from openfer.classify import OnnxClassifier
from openfer.classify.prior import Decision
from openfer.crossdomain import detect_photos, load_photo_set, photo_crops, shared_data_path
from openfer.detect import load_detector
from openfer.evaluate import classification_metrics, restrict
from openfer.train.combine import metadata, split_of, validation_faces
from openfer.zoo.registry import resolve_model

RESULTS = Path(__file__).parent / "results" / "person_reference.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--alphas", nargs="+", type=float, default=[0.25, 0.5, 1.0])
    ap.add_argument("--references", type=int, default=3, help="neutral photos per person used as the reference")
    ap.add_argument("--detections", default=None, help="detection cache for muxspace (openfer evaluate's)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    photos = load_photo_set(shared_data_path("muxspace"), "val")
    detections = detect_photos(photos, load_detector("centerface"), args.detections)
    found = detections.found
    spec, path = resolve_model(args.model)
    clf = OnnxClassifier(spec, path=path, threads=2)
    rule = Decision(tuple(spec.train_prior), spec.decision_tau)
    logp = np.full((len(photos), len(clf.classes)), np.nan)
    logp[found] = np.log(clf.predict_proba(photo_crops(photos, detections, clf.input_size, spec.channels)) + 1e-9)
    val = validation_faces(split_of(metadata(path)))
    neutral_val = np.log(clf.predict_proba(val.pixels[val.labels == val.classes.index("neutral")]) + 1e-9).mean(0)

    persons, labels, neutral = np.array(photos.persons), photos.labels, photos.classes.index("neutral")
    rng = np.random.default_rng(0)
    scored, shifts = [], []
    for person in np.unique(persons):
        rows = np.flatnonzero((persons == person) & found)
        refs = rows[labels[rows] == neutral]
        k = min(args.references, len(refs) - (len(refs) == len(rows)))  # keep one photo to score
        if k < 1:
            continue
        ref = rng.choice(refs, size=k, replace=False)
        rest = np.setdiff1d(rows, ref)
        scored.append(rest)
        shifts.append(np.repeat(logp[ref].mean(0, keepdims=True) - neutral_val, len(rest), 0))
    rows, shift = np.concatenate(scored), np.concatenate(shifts)
    truth = labels[rows]
    support = np.bincount(truth, minlength=len(photos.classes))
    classes = [c for c, n in zip(photos.classes, support) if n >= 5]
    out = {"model": args.model, "people": len(scored), "photos": int(len(rows)),
           "support": {c: int(n) for c, n in zip(photos.classes, support)}, "alphas": {}}
    for alpha in [0.0, *args.alphas]:
        z = logp[rows] - alpha * shift
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        pred = restrict(rule.weigh(p), clf.classes, photos.classes).argmax(1)
        m = classification_metrics(truth, pred, photos.classes)
        out["alphas"][str(alpha)] = r = {"accuracy": m["accuracy"],
                                         "uar": float(np.mean([m["per_class_recall"][c] for c in classes])),
                                         "recall": {c: m["per_class_recall"][c] for c in classes}}
        print(f"alpha {alpha:4.2f}: accuracy {100 * r['accuracy']:.2f} %  UAR({len(classes)}) {100 * r['uar']:.2f} %  "
              + "  ".join(f"{c} {v:.2f}" for c, v in r["recall"].items()))
    print(f"{out['people']} people, {out['photos']} photos scored")
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
