"""Compare models on the validation split carved from Training, never on PublicTest.

Usage: python scripts/compare_val.py runs/fast runs/fast_balanced src/openfer/models/fast.onnx [--tta tencrop]
       [--data ../shared/data/fer2013_dev.npz]
Prints accuracy, UAR, macro-F1, NLL and per-class recall, also under the balanced decision prior (tau 1), of
each run's best checkpoint (with its own test-time augmentation, or ``--tta``), an ensemble checkpoint, or an
exported .onnx (split seed 0, 10 %, protocol from its classes or metadata).
"""

import argparse
import json

import numpy as np

from openfer.datasets import label_shares
from openfer.evaluate import classification_metrics
from openfer.train.combine import member_log_probs, metadata, nll, split_of, validation_faces

ap = argparse.ArgumentParser()
ap.add_argument("runs", nargs="+")
ap.add_argument("--data", default=None)
ap.add_argument("--tta", default=None, help="override a checkpoint's test-time augmentation (none, flip, tencrop)")
args = ap.parse_args()
for run in args.runs:
    if run.endswith(".onnx"):
        meta = metadata(run)
        declared = json.loads(meta["class_prior"]) if "class_prior" in meta else None
        val = validation_faces(split_of(meta), args.data)
        logits = member_log_probs(run, val.pixels)
    else:
        from openfer.nn import load_checkpoint
        from openfer.train.loop import TrainConfig, predict_logits, validation_set

        path = run if run.endswith(".pt") else f"{run}/best.pt"
        ck = load_checkpoint(path)
        cfg = TrainConfig(**ck.config)
        val = validation_set(cfg, args.data)
        logits = predict_logits(ck.build_model(), val.pixels, cfg.input_size, tta=args.tta or ck.tta)
        logits = logits / ck.calibrated_temperature
        declared = ck.class_prior
    m = classification_metrics(val.labels, logits.argmax(1), val.classes)
    recall = " ".join(f"{c[:4]} {r:.2f}" for c, r in m["per_class_recall"].items())
    print(f"{run}: val acc {m['accuracy']:.4f}  UAR {m['uar']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
          f"NLL {nll(logits, val.labels):.3f}  n={m['n']}  | {recall}")
    # the balanced decision (prior="balanced", tau 1): divide by the training prior the model declares, else the
    # label shares of the training part of this split
    protocol = "ferplus" if len(val.classes) == 8 else "fer2013"
    prior = np.array(declared) if declared is not None else label_shares(args.data, protocol)
    b = classification_metrics(val.labels, (logits - np.log(prior)).argmax(1), val.classes)
    recall = " ".join(f"{c[:4]} {r:.2f}" for c, r in b["per_class_recall"].items())
    print(f"{' ' * len(run)}  balanced: acc {b['accuracy']:.4f}  UAR {b['uar']:.4f}  macro-F1 {b['macro_f1']:.4f}  "
          f"| {recall}")
