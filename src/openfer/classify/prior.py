"""Decision prior: read probabilities as the model learnt them, or re-weighted as if every class were equally common.

A classifier trained on FER+ sees 10 neutral faces for every disgusted one, and its calibrated probabilities say so:
a disgusted-looking face is still more likely neutral under that prior. ``balanced`` divides each probability by
the model's training class prior raised to a per-model exponent, ``p_c / pi_c ** tau``, and renormalises: with
``tau = 1`` this is the Bayes rule for a uniform class prior (logit adjustment, Menon et al. 2021). Rare classes
are then found more often (higher recall, UAR) at some cost in accuracy on sets as unbalanced as the training set.
"""

from __future__ import annotations

import numpy as np

from openfer.errors import UnknownNameError

#: The decision priors a classifier can use: ``training`` (the probabilities as calibrated) or ``balanced``.
PRIORS = ("training", "balanced")


def check_prior(prior: str) -> str:
    """``prior`` if it is one of ``PRIORS``, else a ValueError that lists them."""
    if prior not in PRIORS:
        raise UnknownNameError(f"unknown prior {prior!r}; use one of: {', '.join(PRIORS)}")
    return prior


def rebalance(probs: np.ndarray, train_prior: np.ndarray | tuple[float, ...], tau: float) -> np.ndarray:
    """``probs`` [N, K] re-weighted by ``train_prior ** -tau`` [K] and renormalised so rows sum to 1.

    ``tau = 0`` changes nothing; ``tau = 1`` removes the training prior entirely; values in between (or above)
    trade accuracy on common classes for recall on rare ones.
    """
    pi = np.asarray(train_prior, np.float64)
    if pi.shape != (probs.shape[-1],) or (pi <= 0).any():
        raise ValueError(f"train_prior must hold {probs.shape[-1]} positive shares, got {pi.tolist()}")
    w = (pi / pi.sum()) ** -float(tau)
    p = np.asarray(probs, np.float64) * w
    return (p / np.maximum(p.sum(-1, keepdims=True), 1e-300)).astype(np.float32)
