"""Fit each shipped model's balanced-prior exponent tau on its own validation split (never on PublicTest).

Usage: python scripts/fit_prior.py [default fast ...] [--data ../shared/data/fer2013_dev.npz]

For every model: the training class prior pi (the registry's ``train_prior`` when set, e.g. the mean FER+ vote
distribution a logit-adjusted model was trained with; else the class shares of the hard labels of all FER2013
Training rows under the model's protocol: FER+ majority for the 8-class models, the original labels for fer2013; the validation rows are
included, their shares equal the training part's to within rounding since the split is stratified), then
accuracy, UAR, macro-F1 and the rare classes' recall on the validation split (rebuilt from the ONNX metadata as
``openfer ensemble`` rebuilds it: split_seed 0, val_fraction 0.1) for each tau of the grid. The tau with the best
validation UAR (the smaller on ties) is what the registry's ``balance_tau`` records.
"""

from __future__ import annotations

import argparse

import numpy as np

from openfer.classify import OnnxClassifier
from openfer.classify.prior import rebalance
from openfer.datasets import label_shares
from openfer.evaluate import classification_metrics
from openfer.train.combine import metadata, split_of, validation_faces
from openfer.zoo.registry import MODELS, model_path

GRID = tuple(np.round(np.arange(0, 2.01, 0.25), 2))  # 0-1.5 when the first four models were fitted
RARE = ("disgust", "fear", "contempt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=list(MODELS))
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    priors: dict[str, np.ndarray] = {}
    for name in args.models:
        spec = MODELS[name]
        split = split_of(metadata(model_path(spec)))
        if split["protocol"] not in priors:
            priors[split["protocol"]] = label_shares(args.data, split["protocol"])
        # a model that declares the prior it was trained with (class_prior: a balanced objective's prior, the
        # mean FER+ vote distribution) is re-weighted by that one
        pi = np.asarray(spec.train_prior) if spec.train_prior else priors[split["protocol"]]
        val = validation_faces(split, args.data)
        probs = OnnxClassifier(spec, threads=1).predict_proba(val.pixels)
        print(f"\n{name}: {split}, {len(val)} validation images")
        print("train_prior = (" + ", ".join(f"{v:.4f}" for v in pi) + ")  # " + " ".join(spec.classes))
        print("| tau | accuracy | UAR | macro-F1 | " + " | ".join(f"{c} recall" for c in RARE) + " |")
        print("|---|---|---|---|" + "---|" * len(RARE))
        best = (-1.0, 0.0)
        for tau in GRID:
            m = classification_metrics(val.labels, rebalance(probs, pi, tau).argmax(1), val.classes)
            rare = " | ".join(f"{m['per_class_recall'][c]:.3f}" if c in m["per_class_recall"] else "-" for c in RARE)
            print(f"| {tau:.2f} | {m['accuracy']:.4f} | {m['uar']:.4f} | {m['macro_f1']:.4f} | {rare} |")
            if m["uar"] > best[0] + 1e-12:
                best = (m["uar"], float(tau))
        print(f"balance_tau = {best[1]} (validation UAR {best[0]:.4f})")


if __name__ == "__main__":
    main()
