"""openfer: facial expression analysis — every face, its expression and probabilities, offline.

The public API is flat and imported lazily, so ``import openfer`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Analyzer", "DetectorSettings", "Explanation", "Face", "GeometryEstimator", "ImageReadError", "ImageResult",
           "ImageTooLargeError", "MissingExtraError", "OpenferError", "UnknownNameError", "UnreadableInputError",
           "UsageError", "analyze_video", "load_classifier", "load_detector", "__version__"]

if TYPE_CHECKING:
    from openfer.analyzer import Analyzer
    from openfer.classify import load_classifier
    from openfer.detect import DetectorSettings, load_detector
    from openfer.errors import (ImageReadError, ImageTooLargeError, MissingExtraError, OpenferError, UnknownNameError,
                                UnreadableInputError, UsageError)
    from openfer.geometry import GeometryEstimator
    from openfer.types import Explanation, Face, ImageResult
    from openfer.video import analyze_video

_LAZY = {
    "Analyzer": "openfer.analyzer",
    "DetectorSettings": "openfer.detect",
    "Explanation": "openfer.types",
    "Face": "openfer.types",
    "ImageResult": "openfer.types",
    "GeometryEstimator": "openfer.geometry",
    **{name: "openfer.errors" for name in ("ImageReadError", "ImageTooLargeError", "MissingExtraError", "OpenferError",
                                          "UnknownNameError", "UnreadableInputError", "UsageError")},
    "load_classifier": "openfer.classify",
    "load_detector": "openfer.detect",
    "analyze_video": "openfer.video",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'openfer' has no attribute {name!r}")
