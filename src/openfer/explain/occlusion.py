"""Occlusion saliency (Zeiler & Fergus 2014) for any classifier: cover one square patch at a time and measure how
much the class probability falls. Model-agnostic, so it works on the shipped ONNX models."""

from __future__ import annotations

import numpy as np

from openfer.errors import UsageError
from openfer.explain.base import baseline, blend, check_crop


def patch_positions(size: int, patch: int, stride: int) -> list[int]:
    """Top-left offsets of patches along one side, always including one flush with the far edge."""
    last = max(size - patch, 0)
    pos = list(range(0, last + 1, stride))
    if pos[-1] != last:
        pos.append(last)
    return pos


def occlusion_map(classifier, crop: np.ndarray, target: int, patch: int = 8, stride: int = 4) -> np.ndarray:
    """Occlusion heatmap float32 [S, S] of ``crop`` for class column ``target``.

    Each pixel gets the mean drop in the class probability over the patches that cover it
    (``p(crop) - p(crop with the patch set to the crop's mean)``): positive where hiding the pixel lowers the
    probability, i.e. where the evidence is.

    Args:
        classifier: anything with ``predict_proba`` on uint8 crops (``openfer.classify.Classifier``).
        crop: uint8 [S, S] grey or [S, S, 3] RGB, already at the classifier's input size.
        target: class column to explain.
        patch: side of the covered square, pixels. Smaller patches give sharper maps but each hides too little of
            a 48 px face to change the output much (noisy); much larger patches blur the map. 8 of 48 (a sixth of
            the face, about an eye) is the default.
        stride: step between patches, pixels. The model runs on ``(ceil((S - patch) / stride) + 1) ** 2`` covered
            copies plus the original: 122 at the defaults for 48 px, all in one ``predict_proba`` call.
    """
    crop = check_crop(crop)
    size = crop.shape[0]
    if not 1 <= patch <= size or stride < 1:
        raise UsageError(f"need 1 <= patch <= {size} and stride >= 1, got patch={patch}, stride={stride}")
    pos = patch_positions(size, patch, stride)
    keep = np.ones((len(pos) ** 2, size, size), np.float32)
    for i, (y, x) in enumerate((y, x) for y in pos for x in pos):
        keep[i, y : y + patch, x : x + patch] = 0
    batch = np.concatenate([crop[None], blend(crop, keep, baseline(crop))])
    p = classifier.predict_proba(batch)[:, target].astype(np.float64)
    drops = p[0] - p[1:]
    covered = 1 - keep
    total = np.tensordot(drops, covered, axes=1)
    count = covered.sum(0)
    return (total / np.maximum(count, 1)).astype(np.float32)
