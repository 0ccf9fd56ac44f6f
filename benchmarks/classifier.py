"""Classifier accuracy on FER2013 PublicTest (both protocols of DATA.md) and speed per face.

Usage: python benchmarks/classifier.py [--model default] [--out benchmarks/results/classifier-default.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from openfer.classify import load_classifier
from openfer.evaluate import evaluate_npz
from openfer.zoo.speed import ms_per_face


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    clf = load_classifier(args.model)
    res = {"model": args.model}
    for protocol in ("ferplus", "fer2013"):
        try:
            r = evaluate_npz(clf, args.data, protocol=protocol)
        except ValueError as e:  # e.g. a 7-class model has no contempt output for FER+
            print(f"PublicTest {protocol:8s}: not applicable ({e})")
            continue
        res[protocol] = {k: r[k] for k in ("n", "accuracy", "macro_f1", "per_class_recall", "confusion")}
        print(f"PublicTest {protocol:8s}: accuracy {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}  (n={r['n']})")
    clf1 = load_classifier(args.model, threads=1)
    res["ms_per_face"] = {
        "batch1_2threads": ms_per_face(clf, 1, 5.0), "batch64_2threads": ms_per_face(clf, 64, 5.0),
        "batch1_1thread": ms_per_face(clf1, 1, 5.0), "batch64_1thread": ms_per_face(clf1, 64, 5.0),
    }
    for k, v in res["ms_per_face"].items():
        print(f"ms per face, {k}: {v:.3f}")
    out = Path(args.out or f"benchmarks/results/classifier-{args.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
