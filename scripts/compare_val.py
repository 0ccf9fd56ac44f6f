"""Compare models on the validation split carved from Training, never on PublicTest.

Usage: python scripts/compare_val.py runs/fast runs/fast_balanced src/openfer/models/fast.onnx [--tta tencrop]
       [--data ../shared/data/fer2013_dev.npz]
Prints accuracy, macro-F1, NLL and per-class recall of each run's best checkpoint (with its own test-time
augmentation, or ``--tta``), an ensemble checkpoint, or an exported .onnx (split seed 0, 10 %, protocol from its
classes or metadata).
"""

import argparse

from openfer.evaluate import classification_metrics
from openfer.train.combine import member_log_probs, metadata, nll, split_of, validation_faces

ap = argparse.ArgumentParser()
ap.add_argument("runs", nargs="+")
ap.add_argument("--data", default=None)
ap.add_argument("--tta", default=None, help="override a checkpoint's test-time augmentation (none, flip, tencrop)")
args = ap.parse_args()
for run in args.runs:
    if run.endswith(".onnx"):
        val = validation_faces(split_of(metadata(run)), args.data)
        logits = member_log_probs(run, val.pixels)
    else:
        from openfer.train.ensemble import member_tta
        from openfer.train.export import load_checkpoint_model
        from openfer.train.loop import TrainConfig, predict_logits, validation_set

        path = run if run.endswith(".pt") else f"{run}/best.pt"
        net, ck = load_checkpoint_model(path)
        cfg = TrainConfig(**ck["config"])
        val = validation_set(cfg, args.data)
        logits = predict_logits(net, val.pixels, cfg.input_size, tta=args.tta or member_tta(ck["config"]))
        logits = logits / ck.get("temperature", 1.0)
    m = classification_metrics(val.labels, logits.argmax(1), val.classes)
    recall = " ".join(f"{c[:4]} {r:.2f}" for c, r in m["per_class_recall"].items())
    print(f"{run}: val acc {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  NLL {nll(logits, val.labels):.3f}  "
          f"n={m['n']}  | {recall}")
