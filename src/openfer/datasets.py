"""Dataset readers (NumPy only): FER2013 + FER+ votes from the project's ``fer2013_dev.npz``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openfer.labels import CANONICAL8, FER2013_CLASSES, ferplus_majority, ferplus_soft

#: Where the shared development data lives unless ``OPENFER_DATA`` or an explicit path says otherwise.
DEFAULT_NPZ = Path("../shared/data/fer2013_dev.npz")


def default_npz_path() -> Path:
    """Path of ``fer2013_dev.npz``: ``$OPENFER_DATA`` if set, else ``../shared/data/fer2013_dev.npz``."""
    return Path(os.environ.get("OPENFER_DATA", DEFAULT_NPZ))


@dataclass(frozen=True)
class FaceSet:
    """A labelled set of grey face crops.

    Attributes:
        pixels: uint8 [N, H, W] grey crops.
        labels: int64 [N] hard label (index into ``classes``).
        targets: float32 [N, C] training target distribution (one-hot or FER+ votes), rows sum to 1.
        classes: class names in canonical form.
    """

    pixels: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> "FaceSet":
        """Rows ``idx`` of this set."""
        return FaceSet(self.pixels[idx], self.labels[idx], self.targets[idx], self.classes)


def load_npz(path: str | Path, usage: str, protocol: str = "ferplus") -> FaceSet:
    """Load one split of ``fer2013_dev.npz`` under a label protocol.

    Args:
        path: the npz file.
        usage: ``"Training"`` or ``"PublicTest"``.
        protocol: ``"ferplus"`` (8 classes, majority rule, images without a majority dropped, targets are the
            vote distribution) or ``"fer2013"`` (7 original labels, one-hot targets).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: point OPENFER_DATA (or --data) at fer2013_dev.npz"
        )
    with np.load(path, allow_pickle=False) as d:
        keep = d["usage"] == usage
        if not keep.any():
            raise ValueError(f"no rows with usage {usage!r} in {path}")
        pixels = d["pixels"][keep]
        if protocol == "ferplus":
            votes = d["ferplus_votes"][keep]
            labels = ferplus_majority(votes)
            ok = labels >= 0
            return FaceSet(pixels[ok], labels[ok], ferplus_soft(votes[ok]), CANONICAL8)
        if protocol == "fer2013":
            labels = d["emotion"][keep].astype(np.int64)
            targets = np.eye(len(FER2013_CLASSES), dtype=np.float32)[labels]
            return FaceSet(pixels, labels, targets, FER2013_CLASSES)
    raise ValueError(f"unknown protocol {protocol!r}; use 'ferplus' or 'fer2013'")


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, val), keeping each class's share; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = max(1, int(round(len(idx) * val_fraction)))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
