"""The result type that crosses every stage: one ``Face`` per detected face."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Names of the five landmarks, in the order of ``Face.landmarks`` rows.
LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Face:
    """One face in one image, filled in stage by stage (stages return new ``Face`` objects, never mutate).

    Attributes:
        box: (x1, y1, x2, y2) in pixels of the analysed image (float, x2/y2 exclusive edges).
        score: detector confidence in [0, 1].
        landmarks: float32 [5, 2] (x, y) pixels, rows in ``LANDMARK_NAMES`` order (image left/right as seen,
            i.e. "left_eye" is the eye with the smaller x in an upright frontal face).
        expression: top class name, or None before classification.
        probabilities: class name -> probability (sums to 1), empty before classification.
        track_id: identity of this face across the frames of a video (``openfer.track``), an int >= 0 that stays
            the same for one person through motion and short gaps; None for still images and for faces the
            tracker has not (yet) confirmed.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray = field(default_factory=lambda: np.full((5, 2), np.nan, np.float32))
    expression: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    track_id: int | None = None

    def __post_init__(self) -> None:
        if len(self.box) != 4:
            raise ValueError(f"box must have 4 numbers (x1, y1, x2, y2), got {self.box!r}")
        lm = np.asarray(self.landmarks, dtype=np.float32)
        if lm.shape != (5, 2):
            raise ValueError(f"landmarks must have shape (5, 2), got {lm.shape}")
        object.__setattr__(self, "landmarks", lm)
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]

    def to_dict(self, decimals: int = 4) -> dict[str, Any]:
        """JSON-ready dict: box, score, landmarks ([[x, y] x5]), expression, probabilities (and ``track_id`` when set,
        so image results keep their schema)."""
        r = lambda v: round(float(v), decimals)  # noqa: E731 - local shorthand
        out = {
            "box": [r(v) for v in self.box],
            "score": r(self.score),
            "landmarks": [[r(x), r(y)] for x, y in self.landmarks] if np.isfinite(self.landmarks).all() else None,
            "expression": self.expression,
            "probabilities": {k: r(v) for k, v in self.probabilities.items()},
        }
        if self.track_id is not None:
            out["track_id"] = int(self.track_id)
        return out
