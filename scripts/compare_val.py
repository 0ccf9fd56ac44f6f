"""Compare training runs on their own validation split (carved from Training), never on PublicTest.

Usage: python scripts/compare_val.py runs/fast runs/fast_balanced [--data ../shared/data/fer2013_dev.npz]
Prints accuracy, macro-F1 and per-class recall of each run's best checkpoint (with its test-time augmentation);
an ensemble checkpoint (openfer ensemble) works too.
"""

import argparse

from openfer.evaluate import classification_metrics
from openfer.train.ensemble import member_tta
from openfer.train.export import load_checkpoint_model
from openfer.train.loop import TrainConfig, predict_logits, validation_set

ap = argparse.ArgumentParser()
ap.add_argument("runs", nargs="+")
ap.add_argument("--data", default=None)
args = ap.parse_args()
for run in args.runs:
    path = run if run.endswith(".pt") else f"{run}/best.pt"
    net, ck = load_checkpoint_model(path)
    cfg = TrainConfig(**ck["config"])
    val = validation_set(cfg, args.data)
    logits = predict_logits(net, val.pixels, cfg.input_size, tta=member_tta(ck["config"]))
    m = classification_metrics(val.labels, logits.argmax(1), val.classes)
    recall = " ".join(f"{c[:4]} {r:.2f}" for c, r in m["per_class_recall"].items())
    print(f"{run}: val acc {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  n={m['n']}  | {recall}")
