"""Small helpers the explanation methods share (what they need from a classifier is
``openfer.classify.Classifier``)."""

from __future__ import annotations

import numpy as np

from openfer.classify.prior import decision_of
from openfer.errors import UnknownNameError, UsageError


def check_crop(crop: np.ndarray) -> np.ndarray:
    """``crop`` as a uint8 [S, S] or [S, S, 3] array, or a clear error."""
    crop = np.asarray(crop)
    if crop.dtype != np.uint8:
        raise TypeError(f"the face crop must be uint8, got {crop.dtype}")
    if crop.ndim not in (2, 3) or crop.shape[0] != crop.shape[1] or (crop.ndim == 3 and crop.shape[2] != 3):
        raise ValueError(f"the face crop must be square [S, S] grey or [S, S, 3] RGB, got shape {crop.shape}")
    return crop


def blend(crop: np.ndarray, keep: np.ndarray, fill: np.ndarray | float) -> np.ndarray:
    """uint8 images [N, S, S(, 3)]: ``crop`` where ``keep`` [N, S, S] is 1, ``fill`` where it is 0, mixed between.

    Args:
        crop: uint8 [S, S] or [S, S, 3].
        keep: float or bool [N, S, S] in [0, 1].
        fill: the value covered pixels take (a scalar, or one per channel).
    """
    x = crop.astype(np.float32)[None]
    k = np.asarray(keep, np.float32)
    if crop.ndim == 3:
        k = k[..., None]
    out = x * k + np.asarray(fill, np.float32) * (1 - k)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def baseline(crop: np.ndarray) -> np.ndarray:
    """The value covered pixels take: the crop's mean (per channel), so covering adds no new brightness or edge
    energy beyond the patch border."""
    return crop.reshape(-1, crop.shape[2]).mean(0) if crop.ndim == 3 else np.float32(crop.mean())


def class_index(classifier, target: str | int | None, probs: np.ndarray) -> int:
    """Column of ``target`` (a class name or index; None = the label of ``probs``: the classifier's decision), or a
    clear error."""
    if target is None:
        return int(decision_of(classifier).index(probs))
    if isinstance(target, (int, np.integer)):
        if not 0 <= int(target) < len(classifier.classes):
            raise UsageError(f"class index {target} out of range for {len(classifier.classes)} classes")
        return int(target)
    if target not in classifier.classes:
        raise UnknownNameError(f"unknown class {target!r}; this model's classes are {', '.join(classifier.classes)}")
    return classifier.classes.index(target)
