"""Cluster-level pseudo-labels (after Conti et al. 2022, source-free cross-domain expression recognition): faces of
a new domain that the network's features put together usually share an expression, even where the network's
per-face answers scatter. Cluster the target features, give each cluster the majority of its faces' answers, keep
the purest clusters, and train a head on them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openfer.errors import UsageError


@dataclass
class PseudoLabels:
    """Per face the pseudo-label (class index, or -1 where its cluster was not kept), and per cluster its size,
    majority class and purity (share of its faces whose own answer is the majority)."""

    labels: np.ndarray
    cluster: np.ndarray
    sizes: np.ndarray
    majority: np.ndarray
    purity: np.ndarray
    kept: np.ndarray

    @property
    def coverage(self) -> float:
        """Share of faces that got a pseudo-label."""
        return float((self.labels >= 0).mean()) if len(self.labels) else 0.0


def cluster_pseudo_labels(features: np.ndarray, probs: np.ndarray, n_clusters: int | None = None,
                          keep: float = 0.5, pca: int = 64, seed: int = 0) -> PseudoLabels:
    """Pseudo-labels for unlabelled faces from clusters of their features.

    Args:
        features: float [N, D] (``openfer embed``), probs: [N, K] the model's probabilities for the same faces
            (after any prior re-estimation).
        n_clusters: k-means clusters (default: one per 30 faces, at least 3 per class, at most 200). Many small
            clusters are purer, and a rare expression more often forms a cluster of its own.
        keep: share of faces to pseudo-label, per class: for each class, the clusters it is the majority of are
            taken purest first until they hold this share of that class's clusters' faces. Per class, so the
            common expressions' very pure clusters do not crowd out the rare ones. Lower is safer (fewer wrong
            labels), higher teaches the head more of the new domain.
        pca: features are standardised and reduced to this many principal components before clustering
            (k-means in 1,280 dimensions mostly measures noise).
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    n, k = probs.shape
    if len(features) != n or n < 2:
        raise UsageError(f"need at least 2 faces with features and probabilities, got {len(features)} and {n}")
    n_clusters = min(n_clusters or min(max(n // 30, 3 * k), 200), n)
    z = StandardScaler().fit_transform(np.asarray(features, np.float64))
    z = PCA(n_components=min(pca, z.shape[1], n), random_state=seed).fit_transform(z)
    cluster = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit_predict(z)
    answer = probs.argmax(1)
    sizes = np.bincount(cluster, minlength=n_clusters)
    votes = np.zeros((n_clusters, k), np.int64)
    np.add.at(votes, (cluster, answer), 1)
    majority = votes.argmax(1)
    purity = votes.max(1) / np.maximum(sizes, 1)
    kept = np.zeros(n_clusters, bool)
    for cls in np.unique(majority[sizes > 0]):
        mine = np.flatnonzero((majority == cls) & (sizes > 0))
        total, covered = sizes[mine].sum(), 0
        for c in mine[np.argsort(-purity[mine], kind="stable")]:
            if covered >= keep * total:
                break
            kept[c] = True
            covered += sizes[c]
    labels = np.where(kept[cluster], majority[cluster], -1)
    return PseudoLabels(labels, cluster, sizes, majority, purity, kept)
