"""Temporal smoothing of each tracked face's expression probabilities."""

from __future__ import annotations

import dataclasses

import numpy as np

from openfer.classify.prior import ARGMAX, Decision
from openfer.errors import UsageError
from openfer.types import Face


class EmaSmoother:
    """Exponential moving average of each track's probabilities: ``p_t = alpha * raw_t + (1 - alpha) * p_{t-1}``.

    Args:
        alpha: weight of the newest frame in (0, 1]. 1 turns smoothing off; 0.3 at 30 fps averages over about
            the last 6 frames (0.2 s), steadying labels that flicker between similar classes at the price of
            reacting that much later to a real change.
        forget_after: a track unseen for this many ``smooth`` calls starts afresh (bounds memory on long runs).
        decision: how the label is chosen from the smoothed probabilities (the classifier's ``decision``, so smoothed
            and unsmoothed labels follow one rule).

    Faces without a ``track_id`` or without probabilities pass through unchanged.
    """

    def __init__(self, alpha: float = 0.3, forget_after: int = 300, decision: Decision = ARGMAX) -> None:
        if not 0 < alpha <= 1:
            raise UsageError(f"alpha must be in (0, 1] (1 = no smoothing), got {alpha}")
        self.alpha = alpha
        self.forget_after = forget_after
        self.decision = decision
        self._state: dict[int, tuple[np.ndarray, int]] = {}
        self._calls = 0

    def smooth(self, faces: list[Face]) -> list[Face]:
        """New ``Face`` objects for one frame with smoothed ``probabilities`` and the matching ``expression``."""
        self._calls += 1
        out = []
        for f in faces:
            if f.track_id is None or not f.probabilities or self.alpha == 1:
                out.append(f)
                continue
            names = list(f.probabilities)
            raw = np.array([f.probabilities[c] for c in names], np.float64)
            prev = self._state.get(f.track_id)
            p = raw if prev is None or prev[0].shape != raw.shape else self.alpha * raw + (1 - self.alpha) * prev[0]
            self._state[f.track_id] = (p, self._calls)
            out.append(dataclasses.replace(f, expression=names[int(self.decision.index(p))],
                                           probabilities={c: float(v) for c, v in zip(names, p)}))
        if self._calls % 64 == 0:
            self._state = {k: v for k, v in self._state.items() if self._calls - v[1] <= self.forget_after}
        return out
