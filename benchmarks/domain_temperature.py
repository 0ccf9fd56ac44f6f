"""Issue 14, calibration across domains: is one temperature right for FER faces and for photos alike?

Usage: python benchmarks/domain_temperature.py [MODEL ...] [--detections CACHE]   # about a minute per model

Each shipped model's temperature was fitted on its FER validation split alone. This scales the model's logits by
one more factor ``1 / s`` (``s`` < 1 sharpens, > 1 softens) and reports ECE, NLL and mean top probability on that
split and on the faces found in muxspace's val people (a missed face is left out; photo classes the model lacks
are dropped), for ``s`` from 0.6 to 1.2. The ``s`` with the lowest mean NLL over both sets is what a temperature
fitted on both would be. Validation data only. Writes ``benchmarks/results/domain_temperature.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from openfer.classify import OnnxClassifier
from openfer.crossdomain import detect_photos, load_photo_set, photo_crops, shared_data_path
from openfer.detect import load_detector
from openfer.evaluate import calibration_metrics, retemper
from openfer.train.combine import metadata, split_of, validation_faces
from openfer.zoo.registry import resolve_model

RESULTS = Path(__file__).parent / "results" / "domain_temperature.json"
SCALES = np.round(np.arange(0.6, 1.201, 0.05), 2)


def sweep(probs: np.ndarray, labels: np.ndarray) -> list[dict]:
    """ECE, NLL and mean top probability at each scale of ``SCALES``."""
    rows = []
    for s in SCALES:
        p = retemper(probs, float(s))
        rows.append({"s": float(s), **calibration_metrics(p, labels), "confidence": float(p.max(1).mean())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=["default", "fer2013"])
    ap.add_argument("--data", default=None, help="FER2013 npz (default: ../shared/data/fer2013_dev.npz)")
    ap.add_argument("--detections", default=None, help="muxspace detection cache (openfer evaluate's)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    photos = load_photo_set(shared_data_path("muxspace"), "val")
    found = detect_photos(photos, load_detector("centerface"), args.detections)
    names = np.array(photos.classes)[photos.labels[found.found]]
    out = {}
    for name in args.models:
        spec, path = resolve_model(name)
        clf = OnnxClassifier(spec, path=path, threads=2)
        val = validation_faces(split_of(metadata(path)), args.data)
        fer = sweep(clf.predict_proba(val.pixels), np.array([clf.classes.index(val.classes[k]) for k in val.labels]))
        keep = np.isin(names, clf.classes)
        crops = photo_crops(photos, found, clf.input_size, spec.channels)[keep]
        mux = sweep(clf.predict_proba(crops), np.array([clf.classes.index(n) for n in names[keep]]))
        best = int(np.argmin([a["nll"] + b["nll"] for a, b in zip(fer, mux)]))
        out[name] = {"fer_val_faces": len(val), "muxspace_val_faces": int(keep.sum()), "joint_best_s": fer[best]["s"],
                     "rows": [{"s": a["s"], "fer_val": a, "muxspace_val": b} for a, b in zip(fer, mux)]}
        print(f"\n{name}: {len(val)} FER val faces, {int(keep.sum())} muxspace val photos; lowest mean NLL at s = "
              f"{fer[best]['s']}")
        print("| s | FER val ECE / NLL / confidence | muxspace val ECE / NLL / confidence |\n|---|---|---|")
        for a, b in zip(fer, mux):
            print(f"| {a['s']:.2f} | {a['ece']:.3f} / {a['nll']:.3f} / {a['confidence']:.2f} | "
                  f"{b['ece']:.3f} / {b['nll']:.3f} / {b['confidence']:.2f} |")
    args.out.write_text(json.dumps({"what": __doc__.splitlines()[0], "when": time.strftime("%Y-%m-%d %H:%M"),
                                    "command": "python benchmarks/domain_temperature.py " + " ".join(sys.argv[1:]),
                                    "models": out}, indent=1) + "\n")


if __name__ == "__main__":
    main()
