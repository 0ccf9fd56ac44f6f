"""Issue 14, "any face": how each model holds up on occluded, blurred, noisy, compressed, tiny and dim faces.

Every model reads the same validation faces clean and under each corruption of ``openfer.corrupt`` (glasses,
sunglasses, a VR headset, a surgical mask, blur, noise, JPEG, low resolution, dim light), applied to the aligned
crop at the model's own input size: the model's own FER validation split (``split_of``: FER+'s 2,506 faces for
the FER+ models, FER2013's 2,872 for ``fer2013``) and the faces found in muxspace's val people (detected faces
only, UAR over the classes with at least 20 photos). Each model labels with its own rule (``decision_tau``;
``FILE.onnx@TAU`` for a file). Beside accuracy and UAR, the calibration of the probabilities themselves: expected
calibration error, NLL and the mean top probability (does a covered face get a less confident answer?).
Validation only: no test set is read.

    python benchmarks/robustness.py default large runs/x/full.onnx@0.25 \
        --detections benchmarks/results/cache/detections-muxspace.npz        # ~3 min per model on 2 threads
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from openfer.classify import OnnxClassifier
from openfer.classify.prior import Decision
from openfer.corrupt import CORRUPTIONS
from openfer.crossdomain import detect_photos, load_photo_set, photo_crops, shared_data_path
from openfer.detect import load_detector
from openfer.evaluate import calibration_metrics, classification_metrics, restrict
from openfer.train.combine import metadata, split_of, validation_faces
from openfer.zoo.registry import resolve_model

RESULTS = Path(__file__).parent / "results" / "robustness.json"
MIN_VAL_PHOTOS = 20


def scores(clf: OnnxClassifier, rule: Decision, crops: np.ndarray, labels: np.ndarray, classes: tuple[str, ...],
           scored: list[str]) -> dict:
    """Accuracy and UAR (over ``scored``) of the rule's labels on ``crops``, and how calibrated the probabilities
    stay: ECE, NLL and mean top probability of the model's own (training-prior) probabilities over all its classes."""
    probs = clf.predict_proba(crops)
    pred = restrict(rule.weigh(probs), clf.classes, classes).argmax(1)
    m = classification_metrics(labels, pred, classes)
    cal = calibration_metrics(probs, np.array([clf.classes.index(classes[k]) for k in labels], np.int64))
    return {"accuracy": m["accuracy"], "uar": float(np.mean([m["per_class_recall"][c] for c in scored])),
            "recall": {c: m["per_class_recall"][c] for c in scored}, **cal,
            "confidence": float(probs.max(1).mean())}


def to_channels(crops: np.ndarray, channels: int) -> np.ndarray:
    """Grey FER crops as the model's input: replicated to RGB for a colour model."""
    return np.repeat(crops[..., None], 3, -1) if channels == 3 and crops.ndim == 3 else crops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="registered names or FILE.onnx[@decision_tau]")
    ap.add_argument("--data", default=None, help="FER2013 npz (default: ../shared/data/fer2013_dev.npz)")
    ap.add_argument("--detections", default=None, help="detection cache for muxspace (openfer evaluate's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    photos = load_photo_set(shared_data_path("muxspace"), "val")
    found = detect_photos(photos, load_detector("centerface"), args.detections)
    mux_labels = photos.labels[found.found]
    support = np.bincount(mux_labels, minlength=len(photos.classes))
    mux_scored = [c for c, n in zip(photos.classes, support) if n >= MIN_VAL_PHOTOS]
    conditions = ["clean", *CORRUPTIONS]
    out: dict[str, dict] = {}
    for name in args.models:
        file, _, tau = name.partition("@")
        spec, path = resolve_model(file)
        rule = Decision(tuple(spec.train_prior), float(tau) if tau else spec.decision_tau)
        clf = OnnxClassifier(spec, path=path, threads=args.threads)
        val = validation_faces(split_of(metadata(path)), args.data)
        fer = to_channels(val.pixels, spec.channels)
        if fer.shape[1] != clf.input_size:
            raise SystemExit(f"{name}: input {clf.input_size} px; FER crops are {fer.shape[1]} px")
        mux = photo_crops(photos, found, clf.input_size, spec.channels)
        rows = {}
        t0 = time.perf_counter()
        for cond in conditions:
            f = CORRUPTIONS.get(cond, lambda x: x)
            rows[cond] = {"fer_val": scores(clf, rule, f(fer), val.labels, val.classes, list(val.classes)),
                          "muxspace_val": scores(clf, rule, f(mux), mux_labels, photos.classes, mux_scored)}
            r = rows[cond]
            print(f"{name:>28} {cond:>10}: FER val {100 * r['fer_val']['accuracy']:.2f} / "
                  f"{100 * r['fer_val']['uar']:.2f}   muxspace val {100 * r['muxspace_val']['accuracy']:.2f} / "
                  f"{100 * r['muxspace_val']['uar']:.2f}   ECE {r['fer_val']['ece']:.3f} / "
                  f"{r['muxspace_val']['ece']:.3f}", flush=True)
        corrupted = [rows[c] for c in CORRUPTIONS]
        mean = {s: {k: float(np.mean([r[s][k] for r in corrupted])) for k in ("accuracy", "uar", "ece", "nll")}
                for s in ("fer_val", "muxspace_val")}
        out[name] = {"decision_tau": rule.tau, "rows": rows, "mean_corrupted": mean,
                     "seconds": round(time.perf_counter() - t0, 1)}
    print("\n| model | set | clean acc / UAR | " + " | ".join(CORRUPTIONS) + " | mean of corrupted |")
    print("|---|---|---|" + "---|" * (len(CORRUPTIONS) + 1))
    for name, o in out.items():
        for s, label in (("fer_val", "FER val"), ("muxspace_val", "muxspace val")):
            clean = o["rows"]["clean"][s]
            cells = [f"{100 * o['rows'][c][s]['accuracy']:.1f} / {100 * o['rows'][c][s]['uar']:.1f}"
                     for c in CORRUPTIONS]
            print(f"| {name} | {label} | {100 * clean['accuracy']:.2f} / {100 * clean['uar']:.2f} | "
                  + " | ".join(cells) + f" | {100 * o['mean_corrupted'][s]['accuracy']:.2f} / "
                  f"{100 * o['mean_corrupted'][s]['uar']:.2f} |")
    print("\nCalibration of the probabilities: ECE (mean top probability)")
    print("| model | set | clean | " + " | ".join(CORRUPTIONS) + " | mean of corrupted |")
    print("|---|---|---|" + "---|" * (len(CORRUPTIONS) + 1))
    for name, o in out.items():
        for s, label in (("fer_val", "FER val"), ("muxspace_val", "muxspace val")):
            cells = [f"{o['rows'][c][s]['ece']:.3f} ({o['rows'][c][s]['confidence']:.2f})" for c in conditions]
            print(f"| {name} | {label} | " + " | ".join(cells) + f" | {o['mean_corrupted'][s]['ece']:.3f} |")
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    models = {**previous.get("models", {}), **out}
    args.out.write_text(json.dumps({"what": __doc__.splitlines()[0], "when": time.strftime("%Y-%m-%d %H:%M"),
                                    "command": "python benchmarks/robustness.py " + " ".join(sys.argv[1:]),
                                    "muxspace_val_classes": mux_scored, "models": models}, indent=1) + "\n")


if __name__ == "__main__":
    main()
