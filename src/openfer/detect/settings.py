"""``DetectorSettings``: how faces are found, declared once and checked before any model is loaded.

The CLI builds one per command from its ``--detector``, ``--threshold``, ``--max-side`` and ``--upscale`` options,
so every command (photos, videos, explanations, features) turns the same options into the same detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from openfer.detect.base import Detector, check_detector_name, load_detector
from openfer.detect.centerface import DEFAULT_MAX_SHRINK
from openfer.errors import UsageError


@dataclass(frozen=True)
class DetectorSettings:
    """The detector and its tunables; ``load()`` makes the detector.

    Only CenterFace takes the tunables: the Haar cascade has no score to cut and searches the full image, so for
    ``name="haar"`` they are checked but not used.

    Attributes:
        name: ``"centerface"`` (accurate, 5 landmarks) or ``"haar"`` (OpenCV's frontal-face cascade).
        threshold: minimum face score, 0-1. Lower finds more small or occluded faces and more false alarms.
        max_side: detect on a copy downscaled to this longer side, pixels (None: full size). Smaller is faster but
            loses faces below about 10 px at that scale.
        upscale: also enlarge images smaller than ``max_side`` to it: finds faces down to about half the size, at
            about 4x the cost for a 2x enlargement.
        max_shrink: images longer than 3.75 x ``max_side`` are also searched at finer scales down to this shrink
            factor, so the small faces of a big group photo are kept (about 4x one pass for a 4000 px photo).
            None: one pass at ``max_side`` whatever the size, as video frames need to keep their frame rate.

    >>> DetectorSettings(max_side=1280, upscale=True).load().max_side
    1280
    """

    name: str = "centerface"
    threshold: float = 0.3
    max_side: int | None = 640
    upscale: bool = False
    max_shrink: float | None = DEFAULT_MAX_SHRINK

    def __post_init__(self) -> None:
        check_detector_name(self.name)
        if not (0.0 <= self.threshold <= 1.0):  # also refuses NaN
            raise UsageError(f"the detection threshold is a score between 0 and 1, got {self.threshold:g}")
        if self.max_side is not None and self.max_side < 1:
            raise UsageError(f"max_side must be at least 1 pixel (None: full size), got {self.max_side}")
        if self.max_shrink is not None and not (self.max_shrink >= 1 and math.isfinite(self.max_shrink)):
            raise UsageError(f"max_shrink must be a finite factor of at least 1 (None: one pass), "
                             f"got {self.max_shrink}")

    def detector_kwargs(self) -> dict:
        """The keyword arguments ``load_detector(self.name, ...)`` takes for these settings."""
        if self.name != "centerface":
            return {}
        return {"threshold": self.threshold, "max_side": self.max_side, "upscale": self.upscale,
                "max_shrink": self.max_shrink}

    def load(self, threads: int = 0) -> Detector:
        """The detector these settings describe (CenterFace starts an ONNX Runtime session: about 0.1 s), with
        ``threads`` ONNX Runtime intra-op threads (0: its default, one per core; the Haar cascade has none)."""
        kwargs = self.detector_kwargs()
        if threads and self.name == "centerface":
            kwargs["threads"] = threads
        return load_detector(self.name, **kwargs)
