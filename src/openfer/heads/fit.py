"""Heads on frozen face features (``openfer fit``): a user's labels -> a linear or small MLP classifier, scored by
person-aware cross-validation with balanced numbers.

Frame level, every labelled photo (or every analysed frame of a labelled clip) is one example, the largest face in
it; clip level, a clip is one example, described by the mean, standard deviation, minimum and maximum of its
frames' features (the recipe of HSEmotion's ABAW entries).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from openfer.embed import largest_face, path_key
from openfer.errors import UnknownNameError, UsageError
from openfer.evaluate import classification_metrics
from openfer.heads.labels import LabelSet
from openfer.io.features import FeatureTable

#: Head types ``fit_head`` makes.
HEADS = ("linear", "mlp")


@dataclass
class TrainingSet:
    """Examples for a head: X float32 [N, D], y [N] into ``classes``, groups [N] (cross-validation never splits a
    group), and which labelled rows had no face (their CSV paths)."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    classes: tuple[str, ...]
    level: str
    no_face: list[str] = field(default_factory=list)


def _rows_of(labels: LabelSet, table: FeatureTable) -> tuple[list[np.ndarray], FeatureTable]:
    """The largest face of each photo / frame of ``table``, and for each labelled row the indices of those faces
    that belong to it (a photo: its face; a clip: its frames between start and end)."""
    faces = largest_face(table)
    by_path: dict[str, list[int]] = {}
    for i, p in enumerate(faces.path):
        by_path.setdefault(path_key(p), []).append(i)
    out = []
    for path, start, end in zip(labels.path, labels.start, labels.end):
        idx = np.array(by_path.get(path_key(path), []), np.int64)
        if len(idx) and (np.isfinite(start) or np.isfinite(end)):
            t = faces.timestamp[idx]
            keep = (t >= (start if np.isfinite(start) else -np.inf)) & (t <= (end if np.isfinite(end) else np.inf))
            idx = idx[keep]
        out.append(idx)
    return out, faces


def training_set(labels: LabelSet, table: FeatureTable, level: str = "frame") -> TrainingSet:
    """Match the labelled rows to the embedded faces (``openfer embed`` of the same files).

    Args:
        level: ``frame`` (one example per photo / analysed frame) or ``clip`` (one per labelled row, clip
            statistics: mean, std, min, max of its frames' features).

    Groups: the CSV's ``group`` column, else each labelled row is its own group (frames of one clip stay together).
    """
    if level not in ("frame", "clip"):
        raise UsageError(f"level must be 'frame' or 'clip', got {level!r}")
    rows, faces = _rows_of(labels, table)
    groups = labels.group or [f"row{i}" for i in range(len(labels))]
    y_all = labels.y
    X, y, g, no_face = [], [], [], []
    for i, idx in enumerate(rows):
        if not len(idx):
            no_face.append(labels.path[i])
            continue
        if level == "frame":
            X.append(faces.features[idx])
            y.extend([y_all[i]] * len(idx))
            g.extend([groups[i]] * len(idx))
        else:
            X.append(clip_statistics(faces.features[idx])[None])
            y.append(y_all[i])
            g.append(groups[i])
    if not X:
        raise UsageError("no face was found in any labelled file: nothing to fit")
    return TrainingSet(np.concatenate(X).astype(np.float32), np.array(y, np.int64), np.array(g), labels.classes,
                       level, no_face)


def clip_statistics(features: np.ndarray) -> np.ndarray:
    """[T, D] frame features -> [4 D]: mean, standard deviation, minimum, maximum over the frames."""
    f = np.asarray(features, np.float32)
    return np.concatenate([f.mean(0), f.std(0), f.min(0), f.max(0)])


def make_head(head: str = "linear", C: float = 1.0, balanced: bool = True, seed: int = 0):
    """An unfitted scikit-learn pipeline: standardisation, then logistic regression (``linear``; ``C`` is the
    inverse L2 strength: smaller for few examples) or a one-hidden-layer MLP (``mlp``, 256 ReLU units, L2
    ``1 / C``). ``balanced`` weighs every class equally (UAR) instead of by its number of examples."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if head == "linear":
        clf = LogisticRegression(C=C, class_weight="balanced" if balanced else None, max_iter=3000)
    elif head == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(256,), alpha=1.0 / C, max_iter=400, early_stopping=False,
                            random_state=seed)
    else:
        raise UnknownNameError(f"unknown head {head!r}; use one of: {', '.join(HEADS)}")
    return make_pipeline(StandardScaler(), clf)


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Per-example weights [N] that give every class present the same total weight (scikit-learn's
    ``class_weight="balanced"``: N / (classes x count of the example's class))."""
    counts = np.bincount(y)
    return len(y) / (np.count_nonzero(counts) * counts[y])


def _fit(pipe, X: np.ndarray, y: np.ndarray, balanced: bool):
    """Fit, passing balanced sample weights to heads that have no ``class_weight`` (the MLP)."""
    if balanced and not hasattr(pipe.steps[-1][1], "class_weight"):
        return pipe.fit(X, y, **{f"{pipe.steps[-1][0]}__sample_weight": balanced_weights(y)})
    return pipe.fit(X, y)


def cross_validate(data: TrainingSet, head: str = "linear", C: float = 1.0, balanced: bool = True,
                   folds: int = 5, seed: int = 0) -> dict:
    """Out-of-fold predictions of ``make_head`` -> accuracy, macro-F1, UAR, per-class recall, confusion.

    Folds keep each group on one side (``StratifiedGroupKFold``), so a person seen in training is never scored;
    the number of folds is lowered to what the smallest class (in groups) allows, at least 2.

    Raises:
        ValueError: fewer than two groups, or a class found in a single group (it cannot be both trained on and
            scored).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    k = len(data.classes)
    groups_per_class = [len(set(data.groups[data.y == c])) for c in range(k) if (data.y == c).any()]
    n_splits = min(folds, min(groups_per_class))
    if n_splits < 2:
        raise UsageError("cross-validation needs every class in at least two groups (people/clips); "
                         f"groups per class: {dict(zip(data.classes, groups_per_class))}")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    pred = np.full(len(data.y), -1, np.int64)
    proba = np.zeros((len(data.y), k), np.float32)
    for train, test in splitter.split(data.X, data.y, data.groups):
        pipe = _fit(make_head(head, C, balanced, seed), data.X[train], data.y[train], balanced)
        p = pipe.predict_proba(data.X[test])
        proba[np.ix_(test, pipe.classes_)] = p
        pred[test] = proba[test].argmax(1)
    out = classification_metrics(data.y, pred, data.classes)
    out.update(folds=n_splits, groups=int(len(set(data.groups))), level=data.level, head=head, C=C,
               balanced=balanced)
    return out


def fit_head(data: TrainingSet, head: str = "linear", C: float = 1.0, balanced: bool = True, seed: int = 0):
    """``make_head`` fitted on all of ``data`` (after ``cross_validate`` has scored the recipe)."""
    return _fit(make_head(head, C, balanced, seed), data.X, data.y, balanced)
