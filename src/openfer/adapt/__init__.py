"""Source-free adaptation of an expression model to a new domain's unlabelled faces (``openfer adapt``).

Two steps, each optional: (a) re-estimate how common each expression is there (``em_prior``), (b) pseudo-label the
purest clusters of the target faces' features and blend a head trained on them into the model
(``cluster_pseudo_labels``), at the largest blend weight that keeps the model's accuracy on its own source
validation faces within a stated margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from openfer.adapt.clusters import PseudoLabels, cluster_pseudo_labels
from openfer.adapt.model import adapted_model, head_probabilities
from openfer.adapt.prior_em import em_prior, reweight
from openfer.errors import UnknownNameError, UsageError

#: What ``adapt`` can do: the prior only, the cluster head only, or both.
METHODS = ("em", "clusters", "both")
#: Blend weights of the cluster head tried by the stop rule, largest first.
ALPHAS = (1.0, 0.75, 0.5, 0.25, 0.1)

__all__ = ["ALPHAS", "AdaptResult", "METHODS", "PseudoLabels", "adapt", "adapted_model", "blend",
           "cluster_pseudo_labels", "em_prior", "reweight"]


@dataclass
class AdaptResult:
    """What ``adapt`` found: the target class shares (training shares where the prior step did not run), the
    pseudo-labels and head (cluster step), the blend weight chosen and the source-validation check per weight
    tried (accuracy, UAR), and the adapted probabilities of the target faces."""

    method: str
    train_prior: np.ndarray
    target_prior: np.ndarray
    em_iterations: int = 0
    pseudo: PseudoLabels | None = None
    head: object = None
    alpha: float = 0.0
    source_checks: list[dict] = field(default_factory=list)
    probabilities: np.ndarray | None = None


def blend(prior_probs: np.ndarray, head_probs: np.ndarray, alpha: float) -> np.ndarray:
    """``softmax((1 - alpha) log prior_probs + alpha log head_probs)`` row-wise, as the adapted ONNX graph does."""
    z = (1 - alpha) * np.log(np.maximum(prior_probs, 1e-12)) + alpha * np.log(np.maximum(head_probs, 1e-12))
    z = np.exp(z - z.max(1, keepdims=True))
    return (z / z.sum(1, keepdims=True)).astype(np.float32)


def fit_pseudo_head(features: np.ndarray, labels: np.ndarray, mixup: float = 0.0, seed: int = 0):
    """A balanced logistic-regression head (``openfer.heads.make_head``, C 0.1) on pseudo-labelled faces.

    ``mixup`` > 0 adds as many mixed faces (Zhang et al. 2018): x = l x_i + (1 - l) x_j with l ~ Beta(mixup,
    mixup), entered as two rows (label of i with weight l, label of j with weight 1 - l), which is the
    cross-entropy of the mixed target; it smooths the head between clusters, where wrong pseudo-labels sit.
    """
    from openfer.heads.fit import balanced_weights, make_head

    y = np.asarray(labels, np.int64)
    X, Y, W = features, y, balanced_weights(y)
    if mixup > 0:
        rng = np.random.default_rng(seed)
        i, j = rng.integers(0, len(y), len(y)), rng.integers(0, len(y), len(y))
        lam = rng.beta(mixup, mixup, len(y)).astype(np.float32)
        mixed = lam[:, None] * features[i] + (1 - lam[:, None]) * features[j]
        X = np.concatenate([features, mixed, mixed])
        Y = np.concatenate([y, y[i], y[j]])
        W = np.concatenate([W, lam * W[i], (1 - lam) * W[j]])  # W[i] is the class weight of y[i]
    pipe = make_head("linear", C=0.1, balanced=False, seed=seed)
    return pipe.fit(X, Y, logisticregression__sample_weight=W)


def adapt(probs: np.ndarray, features: np.ndarray, train_prior, method: str = "both", keep: float = 0.8,
          source: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, margin: float = 0.02,
          mixup: float = 0.0, seed: int = 0) -> AdaptResult:
    """Adapt to target faces given the model's ``probs`` [N, K] and ``features`` [N, D] for them.

    Args:
        train_prior: the class shares the model's probabilities are calibrated to.
        method: ``em``, ``clusters`` or ``both``. The clusters are labelled with the source model's own answers
            (the EM shares would tilt them further towards the common expressions); the EM shares then set the
            prior of the blended model.
        keep: share of each class's target faces pseudo-labelled (purest clusters first).
        mixup: Beta parameter of mixup for the head (0: off; ``fit_pseudo_head``).
        source: (probabilities, features, labels) of source validation faces: the stop rule keeps the largest
            blend weight whose source accuracy is at most ``margin`` below the unadapted model's (and 0, the
            prior step alone, if none is). Without it the weight is 0.5 and the card says it was not checked.
    """
    if method not in METHODS:
        raise UnknownNameError(f"unknown method {method!r}; use one of: {', '.join(METHODS)}")
    pi_s = np.asarray(train_prior, np.float64)
    pi_s = pi_s / pi_s.sum()
    result = AdaptResult(method, pi_s, pi_s.copy())
    p = np.asarray(probs, np.float32)
    if method in ("em", "both"):
        result.target_prior, result.em_iterations = em_prior(p, pi_s)
        p = reweight(p, pi_s, result.target_prior)
    if method in ("clusters", "both"):
        pseudo = cluster_pseudo_labels(features, probs, keep=keep, seed=seed)
        chosen = pseudo.labels >= 0
        if len(set(pseudo.labels[chosen].tolist())) < 2:
            raise UsageError("the kept clusters hold a single expression: too few or too alike target faces to "
                             "train a head; use method='em' or give more faces")
        head = fit_pseudo_head(features[chosen], pseudo.labels[chosen], mixup, seed)
        result.pseudo, result.head = pseudo, head
        result.alpha = 0.5
        if source is not None:
            sp, sf, sy = source
            base_acc = float((sp.argmax(1) == sy).mean())
            sh = head_probabilities(head, sf, p.shape[1])
            result.alpha = 0.0
            for a in ALPHAS:
                pred = blend(sp, sh, a).argmax(1)
                acc = float((pred == sy).mean())
                recall = [float((pred[sy == c] == c).mean()) for c in np.unique(sy)]
                result.source_checks.append({"alpha": a, "accuracy": acc, "uar": float(np.mean(recall)),
                                             "source_accuracy": base_acc})
                if acc >= base_acc - margin - 1e-9:
                    result.alpha = a
                    break
        if result.alpha > 0:
            p = blend(p, head_probabilities(head, features, p.shape[1]), result.alpha)
    result.probabilities = p
    return result
