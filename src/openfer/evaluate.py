"""Evaluate a classifier on FER2013 / FER+ with ONNX Runtime: accuracy, macro-F1, UAR, per-class recall, confusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from openfer.classify.prior import decision_of
from openfer.datasets import FaceSet, default_npz_path, load_dataset
from openfer.errors import UsageError


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Accuracy, macro-F1 and UAR over classes present in ``y_true``, per-class recall and support, confusion.

    UAR (unweighted average recall) is the mean of the per-class recalls: a model that ignores rare classes scores
    high accuracy on an unbalanced set but not high UAR.
    """
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
        "uar": float(recall[present].mean()) if present.any() else float("nan"),
        "per_class_recall": {c: float(r) for c, r, p in zip(classes, recall, present) if p},
        "support": {c: int(n) for c, n in zip(classes, support)},
        "confusion": {"classes": list(classes), "matrix": cm.tolist()},
    }


def check_outputs(model_classes: tuple[str, ...], classes: tuple[str, ...]) -> None:
    """ValueError unless the model has an output for every class a dataset scores (checked before any work)."""
    missing = [c for c in classes if c not in model_classes]
    if missing:
        raise UsageError(f"model has no output for {missing}; it cannot be evaluated on this label set")


def restrict(probs: np.ndarray, model_classes: tuple[str, ...], classes: tuple[str, ...]) -> np.ndarray:
    """Probabilities [N, len(classes)] of the dataset's ``classes`` only, renormalised to sum to 1 (the model's other
    outputs are dropped, so its argmax is taken among the classes the dataset scores)."""
    check_outputs(model_classes, classes)
    p = probs[:, [model_classes.index(c) for c in classes]]
    return p / np.maximum(p.sum(1, keepdims=True), 1e-12)


def restricted_labels(classifier, probs: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Label index (into ``classes``) of each row of the classifier's full probabilities ``probs``: its decision
    rule (``openfer.classify.prior``), the argmax taken among the dataset's ``classes`` only."""
    return restrict(decision_of(classifier).weigh(probs), classifier.classes, classes).argmax(1)


def evaluate_set(classifier, data: FaceSet) -> dict:
    """Metrics of ``classifier`` on a labelled set; its label (``decision``) is restricted to the set's classes, so
    an 8-class model is scored fairly on a 7-class dataset (cross-dataset protocol). NLL and ECE score the
    probabilities themselves."""
    check_outputs(classifier.classes, data.classes)
    full = classifier.predict_proba(data.pixels)
    p = restrict(full, classifier.classes, data.classes)
    result = classification_metrics(data.labels, restricted_labels(classifier, full, data.classes), data.classes)
    result.update(calibration_metrics(p, data.labels))
    return result


def calibration_metrics(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict:
    """Negative log-likelihood and expected calibration error (equal-width confidence bins) of probabilities."""
    if len(labels) == 0:
        return {"nll": float("nan"), "ece": float("nan")}
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs((pred[m] == labels[m]).mean() - conf[m].mean())
    nll = float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())
    return {"nll": nll, "ece": float(ece)}


def vote_recall(targets: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> dict[str, float | None]:
    """Per-class recall weighted by the annotators' votes: class c's share of the votes the model's answer c
    received. With FER+ votes a rare class is scored on every face some annotator saw it in, not only on the few
    it won (12 contempt faces of FER+ validation), so it varies far less; but minority votes count too, so it runs
    lower than recall and is a second view, not a replacement. One-hot targets give plain recall."""
    won = np.bincount(y_pred, weights=targets[np.arange(len(y_pred)), y_pred], minlength=targets.shape[1])
    mass = targets.sum(0)
    return {c: float(won[i] / mass[i]) if mass[i] > 0 else None for i, c in enumerate(classes)}


def retemper(probs: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    """``probs`` with the logits divided by ``scale`` (one number, or one per row): what a model would say at
    ``scale`` times its temperature. The argmax is unchanged; used to ask which temperature a domain wants."""
    from openfer.train.combine import log_softmax

    s = np.broadcast_to(np.asarray(scale, np.float64), (len(probs),))[:, None]
    return np.exp(log_softmax(np.log(np.maximum(probs, 1e-12)) / s))


def paired_bootstrap_uar(labels: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, groups, scored: list[int],
                         rounds: int = 2000, seed: int = 0) -> dict:
    """How sure a UAR difference is: ``pred_b``'s UAR minus ``pred_a``'s over the ``scored`` class indices, on
    resamples of whole groups (people: their photos are not independent) drawn with replacement.

    Returns ``diff`` (on the data as it is), the 2.5 / 97.5 % percentiles of the resampled differences
    (``low``, ``high``) and ``p_ge``, the share of resamples where ``b`` wins by at least one point. A resample
    that happens to hold no photo of a scored class leaves that class out of both UARs.
    """
    def uar(pred: np.ndarray, rows: np.ndarray) -> float:
        y, p = labels[rows], pred[rows]
        return float(np.mean([(p[y == c] == c).mean() for c in scored if (y == c).any()]))

    _, group = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(group == g) for g in range(group.max() + 1)]
    rng = np.random.default_rng(seed)
    everything = np.arange(len(labels))
    diffs = []
    for _ in range(rounds):
        rows = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        diffs.append(uar(pred_b, rows) - uar(pred_a, rows))
    diffs = np.array(diffs)
    return {"diff": uar(pred_b, everything) - uar(pred_a, everything), "low": float(np.percentile(diffs, 2.5)),
            "high": float(np.percentile(diffs, 97.5)), "p_ge": float((diffs >= 0.01).mean()), "rounds": rounds}


def evaluate_dataset(classifier, path: str | Path | None = None, protocol: str = "ferplus",
                     split: str | None = None, **load_kwargs) -> dict:
    """Evaluate on a dataset file or folder (see ``datasets.load_dataset``); ``protocol`` applies to FER2013.

    ``ferplus``: 8 classes, FER+ majority labels, unknown/NF dropped. ``fer2013``: the 7 original labels.
    A photo folder with a ``labels.csv`` (muxspace, london) is scored through face detection and alignment
    (``openfer.crossdomain``; ``split`` all, train, val or test). ``split`` defaults to ``PublicTest`` for FER2013 files
    and ``all`` for photo folders.
    """
    from openfer.crossdomain import evaluate_photo_folder, is_photo_folder

    path = Path(path) if path else default_npz_path()
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: pass --data or set OPENFER_DATA to fer2013_dev.npz")
    if is_photo_folder(path):
        return evaluate_photo_folder(classifier, path, split or "all", **load_kwargs)
    split = split or "PublicTest"
    result = evaluate_set(classifier, load_dataset(path, split, protocol, **load_kwargs))
    result.update({"protocol": protocol if not path.is_dir() else "folder", "split": split, "data": str(path)})
    return result


def evaluate_npz(classifier, path: str | Path | None = None, protocol: str = "ferplus",
                 split: str = "PublicTest") -> dict:
    """``evaluate_dataset`` on ``fer2013_dev.npz`` (kept for scripts written against it)."""
    return evaluate_dataset(classifier, path, protocol, split)
