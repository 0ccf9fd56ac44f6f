"""RISE-style randomized masking (Petsiuk et al. 2018) for any classifier: show the model many copies of the face
with random smooth parts covered, then regress the class probability on each pixel's visibility."""

from __future__ import annotations

import cv2
import numpy as np

from openfer.errors import UsageError
from openfer.explain.base import baseline, blend, check_crop


def random_masks(n: int, size: int, grid: int = 6, keep: float = 0.5, seed: int = 0) -> np.ndarray:
    """float32 [n, size, size] smooth masks in [0, 1]: a random ``grid`` x ``grid`` on/off pattern (each cell on
    with probability ``keep``), upsampled bilinearly and shifted by a random fraction of a cell."""
    rng = np.random.default_rng(seed)
    cell = int(np.ceil(size / grid))
    up = (grid + 1) * cell
    cells = (rng.random((n, grid + 1, grid + 1)) < keep).astype(np.float32)
    shifts = rng.integers(0, cell, (n, 2))
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        big = cv2.resize(cells[i], (up, up), interpolation=cv2.INTER_LINEAR)
        dy, dx = shifts[i]
        out[i] = big[dy : dy + size, dx : dx + size]
    return out


def rise_map(classifier, crop: np.ndarray, target: int, n_masks: int = 400, grid: int = 6, keep: float = 0.5,
             seed: int = 0) -> np.ndarray:
    """RISE heatmap float32 [S, S] of ``crop`` for class column ``target``.

    The original RISE weights each mask by the class probability; here each pixel gets the least-squares slope of
    the probability on that pixel's visibility over all masks, i.e. the expected change in probability when the
    pixel is shown rather than covered (covered pixels take the crop's mean). Same ranking idea, but in
    probability units and without RISE's constant offset, so negative values mean "hiding this helped".

    Args:
        classifier: anything with ``predict_proba`` on uint8 crops.
        crop: uint8 [S, S] or [S, S, 3] at the classifier's input size.
        target: class column to explain.
        n_masks: masked copies run through the model (one ``predict_proba`` call). The map's noise falls with
            ``1 / sqrt(n_masks)``: 400 is steady enough for region shares on 48 px faces; 100 is 4x faster but
            visibly noisier; 1000+ for figures.
        grid: cells per side of the random pattern; the size of the covered blobs is about ``S / grid``. 6 on a
            48 px face hides eye- or mouth-sized blobs.
        keep: probability that a cell stays visible.
        seed: random seed; the same seed gives the same map.
    """
    crop = check_crop(crop)
    if n_masks < 2 or not 0 < keep < 1 or grid < 1:
        raise UsageError(f"need n_masks >= 2, 0 < keep < 1 and grid >= 1, got {n_masks}, {keep}, {grid}")
    size = crop.shape[0]
    masks = random_masks(n_masks, size, grid, keep, seed)
    p = classifier.predict_proba(blend(crop, masks, baseline(crop)))[:, target].astype(np.float64)
    m = masks.astype(np.float64)
    mc = m - m.mean(0)
    cov = np.tensordot(p - p.mean(), mc, axes=1) / n_masks
    var = (mc**2).mean(0)
    return (cov / np.maximum(var, 1e-6)).astype(np.float32)
