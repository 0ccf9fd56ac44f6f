"""Cache face features of muxspace and the London set (shared data) for the issue-15 benchmarks.

Detections come from the cross-domain evaluation's cache (benchmarks/results/cache/detections-*.npz, written by
benchmarks/crossdomain.py); each detected face is aligned as the Analyzer does and embedded by the model. Writes
benchmarks/results/cache/features-<set>-<model>.npz: features, probabilities, labels, persons, split, found.

    python benchmarks/own_data_features.py --models default-v1 fast
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from openfer.classify import load_classifier
from openfer.crossdomain import detect_photos, load_photo_set, person_split, photo_crops, shared_data_path
from openfer.detect import load_detector

CACHE = Path(__file__).parent / "results" / "cache"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["default-v1", "fast"])
    ap.add_argument("--sets", nargs="+", default=["muxspace", "london"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    for name in args.sets:
        photos = load_photo_set(shared_data_path(name), "all")
        det = detect_photos(photos, load_detector("centerface"), CACHE / f"detections-{name}.npz")
        for model in args.models:
            clf = load_classifier(model, threads=args.threads)
            crops = photo_crops(photos, det, clf.input_size, clf.spec.channels)
            probs, feats = clf.predict_features(crops)
            out = CACHE / f"features-{name}-{model}.npz"
            np.savez_compressed(out, features=feats.astype(np.float16), probabilities=probs,
                                labels=photos.labels[det.found], persons=np.array(photos.persons)[det.found],
                                classes=np.array(photos.classes), model_classes=np.array(clf.classes),
                                files=np.array(photos.files)[det.found], n_photos=len(photos),
                                split=np.array([person_split(p) for p in photos.persons])[det.found],
                                found=det.found)
            print(f"{out}: {feats.shape}")


if __name__ == "__main__":
    main()
