"""Checks that a saliency map says something about the model (Adebayo et al. 2018), used by tests and benchmarks."""

from __future__ import annotations

import numpy as np

from openfer.explain.base import baseline, blend, check_crop


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of ``values`` (flattened), tied values sharing their mean rank."""
    _, inverse, counts = np.unique(np.ravel(values), return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    return (starts + (counts - 1) / 2)[inverse]


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps' absolute values (tied values share their mean rank, so the zeros of
    clipped maps do not count as agreement); 0 when either map is constant."""
    a, b = np.abs(np.ravel(a)), np.abs(np.ravel(b))
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(np.corrcoef(average_ranks(a), average_ranks(b))[0, 1])


def top_window(heatmap: np.ndarray, side: int) -> tuple[int, int]:
    """(y, x) of the ``side`` x ``side`` window with the largest heatmap sum."""
    c = np.pad(np.cumsum(np.cumsum(np.asarray(heatmap, np.float64), 0), 1), ((1, 0), (1, 0)))
    sums = c[side:, side:] - c[:-side, side:] - c[side:, :-side] + c[:-side, :-side]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y), int(x)


def deletion_test(classifier, crop: np.ndarray, heatmap: np.ndarray, target: int, side: int = 12,
                  n_random: int = 16, seed: int = 0) -> tuple[float, float]:
    """Probability drop when covering the most-attributed square vs. a random square of the same size.

    Covers (with the crop's mean) the ``side`` x ``side`` window with the largest heatmap sum, and ``n_random``
    windows at uniformly random places, in one ``predict_proba`` call.

    Returns:
        (drop at the top window, mean drop at the random windows), each ``p(crop) - p(covered crop)``.
    """
    crop = check_crop(crop)
    size = crop.shape[0]
    rng = np.random.default_rng(seed)
    places = [top_window(heatmap, side)] + [tuple(rng.integers(0, size - side + 1, 2)) for _ in range(n_random)]
    keep = np.ones((len(places), size, size), np.float32)
    for i, (y, x) in enumerate(places):
        keep[i, y : y + side, x : x + side] = 0
    p = classifier.predict_proba(np.concatenate([crop[None], blend(crop, keep, baseline(crop))]))[:, target]
    drops = p[0] - p[1:]
    return float(drops[0]), float(drops[1:].mean())
