"""Evaluate a classifier on FER2013 / FER+ with ONNX Runtime: accuracy, macro-F1, per-class recall, confusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from openfer.labels import CANONICAL8, FER2013_CLASSES, ferplus_majority


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Accuracy, macro-F1 over classes present in ``y_true``, per-class recall and the confusion matrix."""
    k = len(classes)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    support = cm.sum(1)
    tp = np.diag(cm)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    pred_n = cm.sum(0)
    precision = np.divide(tp, pred_n, out=np.zeros(k), where=pred_n > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    present = support > 0
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "per_class_recall": {c: float(r) for c, r, p in zip(classes, recall, present) if p},
        "confusion": {"classes": list(classes), "matrix": cm.tolist()},
    }


def evaluate_npz(classifier, path: str | Path | None = None, protocol: str = "ferplus",
                 split: str = "PublicTest") -> dict:
    """Evaluate ``classifier`` on one split of ``fer2013_dev.npz`` under a protocol of DATA.md.

    ``ferplus``: 8 classes, FER+ majority labels, unknown/NF dropped. ``fer2013``: the 7 original labels; an
    8-class model's argmax is restricted to those 7 classes (contempt is not a FER2013 label).
    """
    from openfer.datasets import default_npz_path

    path = Path(path) if path else default_npz_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass --data or set OPENFER_DATA to fer2013_dev.npz")
    with np.load(path, allow_pickle=False) as d:
        keep = d["usage"] == split
        if not keep.any():
            raise ValueError(f"no rows with usage {split!r} in {path}")
        pixels = d["pixels"][keep]
        if protocol == "ferplus":
            labels = ferplus_majority(d["ferplus_votes"][keep])
            ok = labels >= 0
            pixels, labels, classes = pixels[ok], labels[ok], CANONICAL8
        elif protocol == "fer2013":
            labels, classes = d["emotion"][keep].astype(np.int64), FER2013_CLASSES
        else:
            raise ValueError(f"unknown protocol {protocol!r}; use ferplus or fer2013")
    missing = [c for c in classes if c not in classifier.classes]
    if missing:
        raise ValueError(f"model has no output for {missing}; it cannot be evaluated under {protocol}")
    probs = classifier.predict_proba(pixels)
    cols = [classifier.classes.index(c) for c in classes]
    pred = probs[:, cols].argmax(1)
    result = classification_metrics(labels, pred, classes)
    result.update({"protocol": protocol, "split": split, "data": str(path)})
    return result
