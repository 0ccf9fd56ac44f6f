"""The mirror pass in the same batch as the face (``openfer.classify.mirror.batch_mirror``): speed, and what it
changes on validation data.

Usage: python benchmarks/one_pass.py --detections CACHE [--rounds 7] [--models fast fer2013 default-v1 default large]

For each model: batch-1 ms per face of the file as shipped (two passes) and batched, in interleaved rounds (2 threads;
this machine's speed drifts, so only paired rounds compare); whether the outputs are the same on random crops; and,
where they are not (int8 graphs), the labels and metrics of both on the FER+ validation split and muxspace's val
people, for the rule in docs/models.md. Writes ``benchmarks/results/one_pass.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx

from openfer.classify import OnnxClassifier
from openfer.classify.mirror import batch_mirror
from openfer.classify.prior import decision_of
from openfer.crossdomain import detect_photos, load_photo_set, photo_crops, shared_data_path
from openfer.detect import load_detector
from openfer.evaluate import classification_metrics
from openfer.runtime import make_session
from openfer.train.combine import metadata, split_of, validation_faces
from openfer.zoo.registry import get_spec, model_path
from openfer.zoo.speed import ms_per_face

RESULTS = Path(__file__).parent / "results" / "one_pass.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["fast", "fer2013", "default-v1", "default", "large"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--detections", default=None, help="muxspace detection cache (openfer evaluate's)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    pairs = {}
    for name in args.models:
        spec = get_spec(name)
        batched = batch_mirror(onnx.load(str(model_path(spec)))).SerializeToString()
        pairs[name] = (OnnxClassifier(spec, session=make_session(str(model_path(spec)), 2)),
                       OnnxClassifier(spec, session=make_session(batched, 2)))
    runs = {name: {"two_passes": [], "one_pass": []} for name in pairs}
    for r in range(args.rounds):
        for name, (two, one) in pairs.items():
            runs[name]["two_passes"].append(ms_per_face(two, 1, args.seconds))
            runs[name]["one_pass"].append(ms_per_face(one, 1, args.seconds))
        print(f"round {r + 1}: " + ", ".join(f"{n} {v['two_passes'][-1]:.2f} -> {v['one_pass'][-1]:.2f}"
                                             for n, v in runs.items()), flush=True)
    out: dict = {"rounds": args.rounds, "threads": 2, "models": {}}
    noise = np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    detector = load_detector("centerface")
    for name, (two, one) in pairs.items():
        t2, t1 = np.array(runs[name]["two_passes"]), np.array(runs[name]["one_pass"])
        diff = float(np.abs(two.predict_proba(noise) - one.predict_proba(noise)).max())
        row = {"ms_two_passes": float(np.median(t2)), "ms_one_pass": float(np.median(t1)),
               "rounds_faster": int((t1 < t2).sum()), "runs": runs[name], "max_diff_random": diff}
        if diff > 1e-5:  # not the same model: compare on validation data
            row["validation"] = {k: compare(two, one, x, y) for k, (x, y) in
                                 validation_sets(two, detector, args.detections).items()}
        out["models"][name] = row
        print(name, {k: v for k, v in row.items() if k != "runs"}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


def validation_sets(clf: OnnxClassifier, detector, cache) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """FER+ validation faces and muxspace's val people (detected photos of the model's classes), with labels."""
    spec = clf.spec
    val = validation_faces(split_of(metadata(model_path(spec))))
    photos = load_photo_set(shared_data_path("muxspace"), "val")
    found = detect_photos(photos, detector, cache)
    names = np.array(photos.classes)[photos.labels[found.found]]
    keep = np.isin(names, spec.classes)
    crops = photo_crops(photos, found, spec.input_size, spec.channels)[keep]
    return {"fer_val": (val.pixels, val.labels),
            "muxspace_val": (crops, np.array([spec.classes.index(n) for n in names[keep]]))}


def compare(two: OnnxClassifier, one: OnnxClassifier, x: np.ndarray, y: np.ndarray) -> dict:
    """Label agreement and accuracy / UAR of both (each model's decision rule)."""
    labels = [decision_of(c).index(c.predict_proba(x)) for c in (two, one)]
    scored = [classification_metrics(y, lab, two.classes) for lab in labels]
    return {"n": len(y), "agree": float(np.mean(labels[0] == labels[1])),
            "accuracy": [s["accuracy"] for s in scored], "uar": [s["uar"] for s in scored]}


if __name__ == "__main__":
    main()
