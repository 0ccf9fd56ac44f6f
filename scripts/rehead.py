"""Refit the last layer of an ensemble on FER+ majority (or FER2013's original) labels (issue 14): its networks
stay frozen.

The shipped `default` networks were trained on FER+ vote distributions and are combined by averaging their log
probabilities; this fits one logistic-regression layer on their concatenated pooled features (1,280 numbers per
face; `openfer.classify.features`) against the majority labels of FER+ Training minus the validation split (seed 0,
10 %), folds a temperature fitted on that validation split into it, and writes the layer as a head-only ONNX file
(input ``features``), which the registry composes with the base model's networks.

    python scripts/rehead.py --base default-v1 --out src/openfer/models/default_head.onnx [--C 0.1]
    python scripts/rehead.py ... --full /tmp/default_rehead.onnx     # also a self-contained classifier to evaluate
    python scripts/rehead.py ... --photos ../shared/data/muxspace --photo-weight 0.25   # a second domain too

``--photos`` adds the person-disjoint train people of a labelled photo folder (CenterFace's best face per photo,
aligned as the ``Analyzer`` aligns it; ``--photo-exclude`` classes left out), weighted so that the photo classes
have FER+'s class shares (``openfer.datasets.photo_draws``, what ``extra_sampling = "match_prior"`` draws),
times ``--photo-weight`` (1: as many photos' worth of weight as there are photos).

A 7-class base (``fer2013``) is refitted on FER2013's original labels of the same Training rows minus its own
validation split (the stratified 10 %, seed 0, that its networks held out), the photos drawn to FER2013's shares.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx

from openfer.classify import load_classifier
from openfer.datasets import load_dataset, photo_draws, stratified_split
from openfer.evaluate import calibration_metrics, classification_metrics


def photo_features(clf, folder: Path, exclude: list[str], detections: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Features and label indices of the detected faces of ``folder``'s train people (classes in ``exclude`` or
    unknown to ``clf`` left out)."""
    from openfer.crossdomain import detect_photos, load_photo_set, photo_crops
    from openfer.detect import load_detector

    photos = load_photo_set(folder, "train", min_images=1)
    found = detect_photos(photos, load_detector("centerface"), detections)
    names = np.array(photos.classes)[photos.labels[found.found]]
    keep = np.isin(names, clf.classes) & ~np.isin(names, exclude)
    _, feats = clf.predict_features(photo_crops(photos, found, clf.input_size, clf.spec.channels)[keep])
    return feats, np.array([clf.classes.index(n) for n in names[keep]])


def soft_rows(x: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One weighted row per (face, class with a share of its votes): a weighted logistic regression on these rows
    minimises the cross-entropy to the vote distributions, so faces split between classes teach both."""
    face, cls = np.nonzero(targets > 0)
    return x[face], cls, targets[face, cls].astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="default-v1", help="registered model or .onnx whose networks give the features")
    ap.add_argument("--out", type=Path, required=True, help="head-only ONNX to write")
    ap.add_argument("--full", type=Path, help="also write base + head as one classifier file")
    ap.add_argument("--data", default=None, help="fer2013_dev.npz (default: ../shared/data or $OPENFER_DATA)")
    ap.add_argument("--C", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--photos", type=Path, help="photo folder (muxspace layout) whose train people join the data")
    ap.add_argument("--photo-weight", type=float, default=1.0)
    ap.add_argument("--photo-exclude", nargs="*", default=["disgust"])
    ap.add_argument("--detections", default=None, help="CenterFace cache for --photos (crossdomain's)")
    ap.add_argument("--targets", choices=("majority", "votes"), default="majority",
                    help="FER faces' targets: majority labels, or (ferplus) the vote distributions as soft targets")
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from openfer.heads.export import compose, head_only, save_model
    from openfer.train.combine import fit_temperature, metadata, split_of
    from openfer.zoo.registry import resolve_model

    clf = load_classifier(args.base, threads=args.threads)
    base_path = resolve_model(args.base)[1]
    protocol = split_of(metadata(base_path))["protocol"]  # the labels the base was trained and chosen on
    full = load_dataset(args.data, "Training", protocol)
    if tuple(full.classes) != tuple(clf.classes):
        raise SystemExit(f"{args.base} predicts {clf.classes}; {protocol} labels are {full.classes}")
    train, val = stratified_split(full.labels, 0.1, 0)
    print(f"features of {len(full)} {protocol} Training faces from {args.base} ...", flush=True)
    _, feats = clf.predict_features(full.pixels)
    x, y, w = feats[train], full.labels[train], np.ones(len(train))
    if args.targets == "votes":
        x, y, w = soft_rows(x, full.targets[train])
    if args.photos:
        px, py = photo_features(clf, args.photos, args.photo_exclude, args.detections)
        pw = photo_draws(py, np.bincount(y, w, len(clf.classes)) / w.sum(), "match_prior") * len(py)
        x, y, w = np.concatenate([x, px]), np.concatenate([y, py]), np.concatenate([w, pw * args.photo_weight])
        print(f"+ {len(py)} photos of {args.photos}'s train people, weight {pw.sum() * args.photo_weight:.0f}")
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=2000))
    pipe.fit(x, y, logisticregression__sample_weight=w)
    lr = pipe.steps[-1][1]
    # grid 0.3-3.0 in steps of 0.01: the temperatures of the shipped heads (1.34, 1.27, 1.11) came from it
    t = fit_temperature(pipe.decision_function(feats[val]), full.labels[val], np.arange(0.3, 3.0, 0.01))
    lr.coef_, lr.intercept_ = lr.coef_ / t, lr.intercept_ / t
    p = pipe.predict_proba(feats[val])
    m = classification_metrics(full.labels[val], p.argmax(1), clf.classes)
    m.update(calibration_metrics(p, full.labels[val]))
    shares = np.bincount(y, weights=w, minlength=len(clf.classes)) / w.sum()
    meta = {"arch": f"{clf.spec.arch}+head", "head": "linear", "base_model": args.base,
            "base_sha256": clf.spec.sha256, "protocol": protocol, "split_seed": "0", "val_fraction": "0.1",
            "temperature": f"{t:.2f}", "C": str(args.C), "targets": args.targets,
            "train_prior": json.dumps([round(float(v), 6) for v in shares]),
            "val": json.dumps({k: round(m[k], 4) for k in ("accuracy", "uar", "macro_f1", "nll", "ece")})}
    if args.photos:  # what joined the data, so the file says how it was made
        meta["photos"] = json.dumps({"folder": args.photos.name, "people": "train", "n": int(len(y) - len(train)),
                                     "weight": args.photo_weight, "exclude": args.photo_exclude})
    head = head_only(pipe, clf.classes, meta, input_name="features")
    save_model(head, args.out)
    if args.full:
        save_model(compose(onnx.load(str(base_path)), len(clf.classes), pipe, clf.classes, meta), args.full)
    print(json.dumps({"temperature": t, **{k: m[k] for k in ("accuracy", "uar", "macro_f1", "nll", "ece")},
                      "recall": m["per_class_recall"]}, indent=1))


if __name__ == "__main__":
    main()
