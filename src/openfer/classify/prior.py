"""Decision prior: read probabilities as the model learnt them, or re-weighted as if every class were equally common.

A classifier trained on FER+ sees 10 neutral faces for every disgusted one, and its calibrated probabilities say so:
a disgusted-looking face is still more likely neutral under that prior. ``balanced`` divides each probability by
the model's training class prior raised to a per-model exponent, ``p_c / pi_c ** tau``, and renormalises: with
``tau = 1`` this is the Bayes rule for a uniform class prior (logit adjustment, Menon et al. 2021). Rare classes
are then found more often (higher recall, UAR) at some cost in accuracy on sets as unbalanced as the training set.

Under the ``training`` prior the probabilities stay as calibrated, but the *label* (``Face.expression``) is the
model's ``Decision``: the argmax after a milder adjustment (``ModelSpec.decision_tau``, chosen on validation data),
so a close call between a common and a rare class no longer always goes to the common one.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Decision:
    """How a face's label is chosen from its probabilities: the argmax of ``p_c / train_prior_c ** tau``.

    ``tau = 0`` (or no prior) is the plain argmax. The probabilities themselves are not changed: only which class
    wins a close call.
    """

    train_prior: tuple[float, ...] = ()
    tau: float = 0.0

    def weigh(self, probs: np.ndarray) -> np.ndarray:
        """``probs`` [..., K] re-weighted for the decision (unchanged for the plain argmax); their argmax is the
        label, also after dropping columns (``openfer.evaluate.restrict``)."""
        if not self.tau or not self.train_prior:
            return np.asarray(probs)
        return rebalance(np.asarray(probs), self.train_prior, self.tau)

    def index(self, probs: np.ndarray) -> np.ndarray:
        """Index of the label of each row of ``probs`` [..., K] (a scalar array for one face)."""
        return self.weigh(probs).argmax(-1)


#: The plain argmax: classifiers that declare no decision rule, and the ``balanced`` prior (already re-weighted).
ARGMAX = Decision()


def model_decision(spec) -> Decision:
    """A model's label rule under its training prior (a ``ModelSpec``): its fitted ``decision_tau`` when it declares
    a training prior, else the plain argmax."""
    if spec.decision_tau and len(spec.train_prior) == len(spec.classes):
        return Decision(tuple(spec.train_prior), float(spec.decision_tau))
    return ARGMAX


def decision_of(classifier) -> Decision:
    """The decision rule of ``classifier`` (``OnnxClassifier.decision``), or the plain argmax for classifiers that
    declare none."""
    return getattr(classifier, "decision", ARGMAX)
