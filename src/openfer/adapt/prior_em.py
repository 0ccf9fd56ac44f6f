"""Label-prior re-estimation by EM (Saerens, Latinne & Decaestecker 2002): how common each expression is in a
new, unlabelled set of faces, estimated from the model's own calibrated probabilities.

A model trained where 35 % of faces are neutral keeps betting on that share; in a classroom where most faces are
neutral, or a clinic where sad faces are common, the Bayes-optimal decision uses the new shares. EM alternates
between re-weighting every face's probabilities by (new prior / training prior) and setting the new prior to the
mean re-weighted probability. Cheap (no retraining) and safe: only the class shares change, never what the network
sees in a face; it needs probabilities that are calibrated, as openfer's are (temperature-scaled on validation).
"""

from __future__ import annotations

import numpy as np


def reweight(probs: np.ndarray, train_prior: np.ndarray, target_prior: np.ndarray) -> np.ndarray:
    """``probs`` [N, K] (computed under ``train_prior``) as they would be under ``target_prior``: each column
    multiplied by target / train share, rows renormalised."""
    w = np.asarray(target_prior, np.float64) / np.asarray(train_prior, np.float64)
    p = np.asarray(probs, np.float64) * w
    return (p / np.maximum(p.sum(1, keepdims=True), 1e-300)).astype(np.float32)


def em_prior(probs: np.ndarray, train_prior: np.ndarray, max_iter: int = 200, tol: float = 1e-6,
             min_share: float = 1e-4) -> tuple[np.ndarray, int]:
    """The class shares of the faces behind ``probs`` [N, K] that make them most likely (EM), and the iterations
    used.

    Args:
        train_prior: the shares the probabilities are calibrated to (``ModelSpec.train_prior``).
        min_share: floor on each estimated share, so a class absent from a small sample can come back for the
            next faces instead of being ruled out for good.
    """
    pi_s = np.asarray(train_prior, np.float64)
    pi_s = pi_s / pi_s.sum()
    if probs.ndim != 2 or probs.shape[1] != len(pi_s) or not len(probs):
        raise ValueError(f"probs must be [N>0, {len(pi_s)}], got {probs.shape}")
    pi = pi_s.copy()
    for it in range(1, max_iter + 1):
        new = reweight(probs, pi_s, pi).astype(np.float64).mean(0)
        new = np.maximum(new, min_share)
        new /= new.sum()
        done = np.abs(new - pi).max() < tol
        pi = new
        if done:
            return pi, it
    return pi, max_iter
