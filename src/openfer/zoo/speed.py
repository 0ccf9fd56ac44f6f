"""How long a classifier takes per face on this machine: what `openfer models --speed` and the benchmarks report."""

from __future__ import annotations

import time

import numpy as np


def ms_per_face(clf, batch: int = 1, seconds: float = 1.5, min_runs: int = 5) -> float:
    """Median milliseconds per face of ``clf.predict_proba`` on ``batch`` random 48x48 grey crops (preprocessing
    and the model's own test-time augmentation included), over at least ``min_runs`` calls and ``seconds``.

    One warm-up call is not timed (session start-up, memory allocation).
    """
    x = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
    clf.predict_proba(x)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < min_runs:
        t0 = time.perf_counter()
        clf.predict_proba(x)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times)) / batch
