"""Issue 14, calibration on covered faces: can the model tell that a face is covered, and soften its answer?

Usage: python benchmarks/occlusion_temperature.py [--model default] [--detections CACHE]   # 4-8 min, 2 threads

``benchmarks/robustness.py`` found every model overconfident on masked faces. This measures a remedy on
validation data only, without new networks:

1. an **occlusion probe**: a logistic layer on the model's pooled features, fitted on 6,000 FER+ Training faces
   clean and covered by the training augmentation's bands (``openfer.train.augment.BANDS``, any grey level: the
   eyes, eyes and brows, or mouth and jaw), not by ``openfer.corrupt``'s drawn occluders;
2. a **per-face temperature** ``1 + (T - 1) * p_occluded``, ``T`` fitted (NLL) on one half of the FER+
   validation split, clean and banded;
3. scored on the other half, clean and under each of ``openfer.corrupt``'s nine corruptions: accuracy (unchanged:
   a temperature keeps the argmax), the share of faces flagged, ECE, NLL and mean top probability, before and
   after; with ``--detections``, also on the faces found in muxspace's val people (a second domain, untouched by
   both fits). Writes ``benchmarks/results/occlusion_temperature.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from openfer.classify import load_classifier
from openfer.classify.damage import bands
from openfer.corrupt import CORRUPTIONS
from openfer.datasets import load_dataset, stratified_split
from openfer.evaluate import calibration_metrics, retemper
from openfer.train.combine import metadata, split_of, validation_faces
from openfer.zoo.registry import resolve_model

RESULTS = Path(__file__).parent / "results" / "occlusion_temperature.json"
GRID = np.round(np.arange(1.0, 3.001, 0.05), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=None, help="FER2013 npz (default: ../shared/data/fer2013_dev.npz)")
    ap.add_argument("--detections", default=None, help="muxspace detection cache: also score its val people")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    clf = load_classifier(args.model, threads=2)
    spec, path = resolve_model(args.model)
    split = split_of(metadata(path))
    full = load_dataset(args.data, "Training", split["protocol"])
    train, _ = stratified_split(full.labels, split["val_fraction"], split["split_seed"])
    faces = full.pixels[np.random.default_rng(1).choice(train, 6000, replace=False)]
    x = np.concatenate([clf.predict_features(faces)[1], clf.predict_features(bands(faces, 2))[1]])
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    probe.fit(x, np.r_[np.zeros(len(faces)), np.ones(len(faces))])

    val = validation_faces(split, args.data)
    fit = np.arange(len(val)) % 2 == 0  # fit T on even rows, score on odd rows
    pix, y = val.pixels[fit], val.labels[fit]
    (p0, f0), (p1, f1) = clf.predict_features(pix), clf.predict_features(bands(pix, 3))
    p, q = np.concatenate([p0, p1]), probe.predict_proba(np.concatenate([f0, f1]))[:, 1]
    nll = [calibration_metrics(retemper(p, 1 + (t - 1) * q), np.r_[y, y])["nll"] for t in GRID]
    t = float(GRID[int(np.argmin(nll))])
    print(f"{args.model}: T = {t} (NLL on half the validation faces, clean and banded)")

    sets = {"fer_val": (val.pixels[~fit], val.labels[~fit])}
    if args.detections:
        from openfer.crossdomain import detect_photos, load_photo_set, photo_crops, shared_data_path
        from openfer.detect import load_detector

        photos = load_photo_set(shared_data_path("muxspace"), "val")
        found = detect_photos(photos, load_detector("centerface"), args.detections)
        names = np.array(photos.classes)[photos.labels[found.found]]
        sets["muxspace_val"] = (photo_crops(photos, found, clf.input_size, spec.channels),
                                np.array([clf.classes.index(n) for n in names]))
    out = {}
    for name, data in sets.items():
        print(f"{name}: {len(data[1])} faces")
        out[name] = score(clf, probe, t, *data)
    args.out.write_text(json.dumps({"model": args.model, "temperature": t, "scored_faces": int((~fit).sum()),
                                    **out}, indent=1) + "\n")


def score(clf, probe, t: float, pix: np.ndarray, y: np.ndarray) -> dict:
    """Before/after figures of module docstring step 3 on one set of crops, clean and under each corruption."""
    rows = {}
    for cond in ["clean", *CORRUPTIONS]:
        probs, feats = clf.predict_features(pix if cond == "clean" else CORRUPTIONS[cond](pix))
        occ = probe.predict_proba(feats)[:, 1]
        soft = retemper(probs, 1 + (t - 1) * occ)  # per-face temperature: 1 on a clear face, t on a covered one
        before, after = calibration_metrics(probs, y), calibration_metrics(soft, y)
        rows[cond] = r = {"accuracy": float((probs.argmax(1) == y).mean()), "flagged": float(occ.mean()),
                          "ece": [before["ece"], after["ece"]], "nll": [before["nll"], after["nll"]],
                          "confidence": [float(probs.max(1).mean()), float(soft.max(1).mean())]}
        print(f"{cond:>10}: accuracy {r['accuracy']:.3f}  flagged {r['flagged']:.2f}  ECE {r['ece'][0]:.3f} -> "
              f"{r['ece'][1]:.3f}  NLL {r['nll'][0]:.3f} -> {r['nll'][1]:.3f}  confidence {r['confidence'][0]:.2f} "
              f"-> {r['confidence'][1]:.2f}", flush=True)
    return {"n": int(len(y)), "rows": rows}


if __name__ == "__main__":
    main()
