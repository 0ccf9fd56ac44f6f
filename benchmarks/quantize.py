"""int8 post-training quantization of a shipped classifier: validation metrics per calibration method, and speed.

Validation only (the split every shipped model was chosen on: 10 % of Training, stratified, seed 0); PublicTest is
left to `openfer evaluate`, once, for the model that is kept. Speed: float32 and int8 sessions timed in alternating
rounds (median), so both see the same machine load.

Usage: python benchmarks/quantize.py [--model default] [--methods minmax percentile entropy] [--samples 256]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from openfer.classify import OnnxClassifier
from openfer.datasets import load_dataset, stratified_split
from openfer.evaluate import evaluate_set
from openfer.train.quantize import METHODS, calibration_images, quantize_classifier
from openfer.zoo.registry import get_spec, model_path


def alternating_ms_per_face(classifiers: dict[str, OnnxClassifier], batch: int, rounds: int) -> dict[str, float]:
    """Median ms per face of ``predict_proba`` for each classifier, timed in alternating rounds."""
    x = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
    times: dict[str, list[float]] = {k: [] for k in classifiers}
    for c in classifiers.values():
        c.predict_proba(x)
    for _ in range(rounds):
        for k, c in classifiers.items():
            t0 = time.perf_counter()
            c.predict_proba(x)
            times[k].append(time.perf_counter() - t0)
    return {k: 1000 * float(np.median(v)) / batch for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default=None)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--keep", default=None, help="write the int8 model of the first method here")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    spec = get_spec(args.model)
    protocol = "ferplus" if len(spec.classes) == 8 else "fer2013"
    full = load_dataset(args.data, "Training", protocol)
    val = full.subset(stratified_split(full.labels, 0.1, 0)[1])  # the split every shipped model validated on
    calibration = calibration_images(full, args.samples)

    classifiers = {"float32": OnnxClassifier(spec)}
    res = {"model": args.model, "protocol": protocol, "validation_images": len(val), "methods": {}}
    keys = ("accuracy", "macro_f1", "nll", "ece")
    res["methods"]["float32"] = {k: evaluate_set(classifiers["float32"], val)[k] for k in keys}
    print("float32", res["methods"]["float32"], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, method in enumerate(args.methods):
            dst = Path(args.keep) if (args.keep and i == 0) else Path(tmp) / f"{method}.onnx"
            report = quantize_classifier(model_path(spec), dst, calibration, method=method)
            classifiers[method] = OnnxClassifier(spec, path=dst)
            metrics = evaluate_set(classifiers[method], val)
            res["methods"][method] = {**{k: metrics[k] for k in keys}, **report}
            print(method, res["methods"][method], flush=True)
        speed = {f"batch{b}": alternating_ms_per_face(classifiers, b, rounds) for b, rounds in ((1, 300), (24, 40))}
    res["ms_per_face_2threads"] = speed
    print("ms per face:", json.dumps(speed))
    out = Path(args.out or f"benchmarks/results/quantize-{args.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
