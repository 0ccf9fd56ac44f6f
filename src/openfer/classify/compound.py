"""Compound expressions: name the top-2 mixture of a face whose two strongest classes are both strong.

A face can show two expressions at once: FER+ annotators split 5 / 4 between happiness and surprise on a wide-eyed
smile. This module reads that from a classifier's probabilities: when the second class is strong enough, absolutely
(``p2 >= min_second``) and relative to the first (``p2 >= min_ratio * p1``), the face gets the ordered pair
(first, second) and a readable name for it, e.g. ``("happiness", "surprise")`` -> "happily surprised".

The thresholds were fitted on the FER+ validation split (10 % of Training, stratified, seed 0) with the shipped
``default`` model, maximising the F1 of "is compound", where a face is compound when its second-strongest class has
at least 3 of its 10 FER+ votes; ``benchmarks/compound.py`` refits and measures them and ``docs/compound.md`` has the
numbers. They are low (a second class at 8 %) because the shipped models' probabilities are calibrated to predict
the single majority label, not the share of annotators who saw each class: the median second probability on
validation is 3 %. With another model, refit them.

These are apparent expressions, the way annotators label a face in a photo, not felt emotions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from openfer.labels import CANONICAL8

#: Smallest second-class probability of a compound (fitted on FER+ validation with ``default``). Lower finds more
#: compound faces (recall) and flags more single-expression ones by mistake (precision).
MIN_SECOND = 0.08
#: Smallest ratio p2 / p1 of a compound (fitted with ``MIN_SECOND``): a second class at 8 % next to a first at 90 %
#: (ratio 0.089) is still a single expression. Higher asks the two classes to be closer to a tie.
MIN_RATIO = 0.10

#: Adverb and adjective of each emotion, to build names such as "happily surprised".
_ADVERB = {"happiness": "happily", "surprise": "surprisedly", "sadness": "sadly", "anger": "angrily",
           "disgust": "disgustedly", "fear": "fearfully", "contempt": "contemptuously"}
_ADJECTIVE = {"happiness": "happy", "surprise": "surprised", "sadness": "sad", "anger": "angry",
              "disgust": "disgusted", "fear": "fearful", "contempt": "contemptuous"}


def _pair_name(first: str, second: str) -> str:
    """The name of an ordered pair of distinct canonical classes (the rules of ``COMPOUND_NAMES``)."""
    if first == "neutral":
        return f"slightly {_ADJECTIVE[second]}"
    if second == "neutral":
        return f"mildly {_ADJECTIVE[first]}"
    return f"{_ADVERB[first]} {_ADJECTIVE[second]}"


#: Name of every ordered pair (first, second) of distinct ``CANONICAL8`` classes, first being the stronger: the
#: first class's adverb and the second's adjective ("happily surprised", "sadly angry", "surprisedly happy");
#: a neutral first class gives "slightly <second>" (mostly neutral, a trace of the second), a neutral second class
#: "mildly <first>" (the first, toned down). 56 entries.
COMPOUND_NAMES: dict[tuple[str, str], str] = {
    (a, b): _pair_name(a, b) for a in CANONICAL8 for b in CANONICAL8 if a != b
}


def _check_thresholds(min_second: float, min_ratio: float) -> None:
    for name, value in (("min_second", min_second), ("min_ratio", min_ratio)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1] (it compares probabilities), got {value}")


def compound_indices(probabilities: np.ndarray, *, min_second: float = MIN_SECOND,
                     min_ratio: float = MIN_RATIO) -> tuple[np.ndarray, np.ndarray]:
    """The top-2 classes of every row and whether they form a compound (the vectorised rule).

    Args:
        probabilities: [N, K] class probabilities (K >= 2), e.g. ``predict_proba``'s output.
        min_second: smallest second-class probability of a compound.
        min_ratio: smallest ratio of the second probability to the first.

    Returns:
        ``(pairs, is_compound)``: int64 [N, 2], the indices of the first and second class of every row (equal
        probabilities keep class order, the earlier class first), and bool [N], True where
        ``p2 >= min_second`` and ``p2 >= min_ratio * p1``.
    """
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must be [N, K] with K >= 2 classes, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probabilities must be finite and non-negative")
    _check_thresholds(min_second, min_ratio)
    pairs = np.argsort(-p, axis=1, kind="stable")[:, :2]
    rows = np.arange(len(p))
    p1, p2 = p[rows, pairs[:, 0]], p[rows, pairs[:, 1]]
    return pairs.astype(np.int64), (p2 >= min_second) & (p2 >= min_ratio * p1)


def compound_batch(probabilities: np.ndarray, classes: Sequence[str], *, min_second: float = MIN_SECOND,
                   min_ratio: float = MIN_RATIO) -> list[tuple[str, str] | None]:
    """``compound`` for every row of a [N, K] array: the (first, second) class pair, or None where not compound."""
    p = np.asarray(probabilities)
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise ValueError(f"probabilities must be [N, {len(classes)}] for {len(classes)} classes, got {p.shape}")
    pairs, ok = compound_indices(p, min_second=min_second, min_ratio=min_ratio)
    return [(classes[a], classes[b]) if flag else None for (a, b), flag in zip(pairs.tolist(), ok.tolist())]


def compound(probabilities: Mapping[str, float] | np.ndarray, classes: Sequence[str] | None = None, *,
             min_second: float = MIN_SECOND, min_ratio: float = MIN_RATIO) -> tuple[str, str] | None:
    """The (first, second) class pair of one face if its two strongest classes are both strong, else None.

    Args:
        probabilities: class -> probability (``Face.probabilities``), or a [K] array in ``classes`` order.
        classes: class names; needed with an array, optional with a mapping (its key order is the class order
            then, which decides ties: the earlier class comes first).
        min_second: smallest second-class probability of a compound. Lower finds more compound faces and flags
            more single-expression ones by mistake.
        min_ratio: smallest ratio p2 / p1; keeps a second class that is small next to a very confident first
            one from making a compound.

    Returns:
        the classes with the highest and second-highest probability, or None.

    Example:
        >>> pair = compound({"neutral": 0.04, "happiness": 0.55, "surprise": 0.38, "sadness": 0.03})
        >>> pair, compound_name(pair)
        (('happiness', 'surprise'), 'happily surprised')
        >>> compound({"neutral": 0.02, "happiness": 0.97, "surprise": 0.01}) is None
        True
    """
    if isinstance(probabilities, Mapping):
        names = tuple(probabilities) if classes is None else tuple(classes)
        missing = [c for c in names if c not in probabilities]
        if missing:
            raise ValueError(f"probabilities has no value for {missing}; it has {sorted(probabilities)}")
        values = np.array([probabilities[c] for c in names], np.float64)
    else:
        if classes is None:
            raise ValueError("an array of probabilities needs its class names: pass classes=")
        names, values = tuple(classes), np.asarray(probabilities, np.float64)
        if values.shape != (len(names),):
            raise ValueError(f"probabilities must be [{len(names)}] for {len(names)} classes, got {values.shape}")
    return compound_batch(values[None], names, min_second=min_second, min_ratio=min_ratio)[0]


def compound_name(pair: tuple[str, str]) -> str:
    """A readable name for an ordered (first, second) pair of ``CANONICAL8`` classes, e.g. "happily surprised"
    (see ``COMPOUND_NAMES`` for the rules)."""
    try:
        return COMPOUND_NAMES[tuple(pair)]
    except KeyError:
        raise KeyError(f"no name for {tuple(pair)!r}: names cover ordered pairs of two different classes of "
                       f"{', '.join(CANONICAL8)}") from None
