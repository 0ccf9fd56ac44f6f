"""Label taxonomies in one place: canonical names and the mappings from each dataset's labels."""

from __future__ import annotations

import numpy as np

from openfer.errors import UnknownNameError

#: Canonical 8-class order of this project (FER+ order without "unknown" and "NF").
CANONICAL8: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
)
#: Canonical names of the 7 original FER2013 classes, in FER2013's label order (0..6).
FER2013_CLASSES: tuple[str, ...] = (
    "anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral",
)
#: Column names of the FER+ vote table (10 annotators' votes per image).
FERPLUS_COLUMNS: tuple[str, ...] = CANONICAL8 + ("unknown", "NF")

#: FER2013's own names (fer2013.csv docs) mapped to the canonical ones.
ALIASES: dict[str, str] = {
    "angry": "anger", "anger": "anger", "disgust": "disgust", "fear": "fear",
    "happy": "happiness", "happiness": "happiness", "sad": "sadness", "sadness": "sadness",
    "surprise": "surprise", "neutral": "neutral", "contempt": "contempt",
}

#: Class-folder names of public datasets -> label names (each dataset's documented numbering).
FOLDER_LAYOUTS: dict[str, dict[str, str]] = {
    # RAF-DB basic emotions: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral.
    "raf-db": {"1": "surprise", "2": "fear", "3": "disgust", "4": "happiness", "5": "sadness", "6": "anger",
               "7": "neutral"},
    # AffectNet expression ids: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt.
    "affectnet": {"0": "neutral", "1": "happiness", "2": "sadness", "3": "surprise", "4": "fear", "5": "disgust",
                  "6": "anger", "7": "contempt"},
}


def canonical(name: str) -> str:
    """Return the canonical class name for a dataset's label name (case-insensitive)."""
    key = name.strip().lower()
    if key not in ALIASES:
        raise UnknownNameError(f"unknown expression label {name!r}; known: {sorted(ALIASES)}")
    return ALIASES[key]


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """FER+ majority labels (Microsoft's FERPlus reference rule).

    Per image, vote counts of 1 are zeroed (outlier removal, over all 10 columns); if the largest remaining
    count is more than half of the remaining total, that column is the label, else the image is unknown.

    Args:
        votes: integer array [N, 10] in ``FERPLUS_COLUMNS`` order.

    Returns:
        int64 array [N]: index into ``CANONICAL8`` (0..7), or -1 where the label is unknown, "unknown" or NF.
    """
    v = votes.astype(np.int64).copy()
    v[v == 1] = 0
    total = v.sum(axis=1)
    top = v.argmax(axis=1)
    top_count = v.max(axis=1)
    ok = (total > 0) & (2 * top_count > total) & (top < len(CANONICAL8))
    return np.where(ok, top, -1)


def ferplus_soft(votes: np.ndarray) -> np.ndarray:
    """FER+ vote distribution over the 8 emotions (float32 [N, 8], rows sum to 1; all-zero rows stay zero)."""
    v = votes[:, : len(CANONICAL8)].astype(np.float32)
    s = v.sum(axis=1, keepdims=True)
    return np.divide(v, s, out=np.zeros_like(v), where=s > 0)
