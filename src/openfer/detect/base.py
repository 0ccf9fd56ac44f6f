"""The detector interface and creation by name."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from openfer.errors import UnknownNameError, did_you_mean
from openfer.types import Face

#: The detectors ``load_detector`` creates by name.
DETECTORS: tuple[str, ...] = ("centerface", "haar")


class Detector(Protocol):
    """Anything that finds faces in an RGB uint8 image [H, W, 3]."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in ``image``, highest score first."""
        ...


def check_rgb(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is an RGB uint8 array [H, W, 3] (what every detector takes)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {desc}")


def check_detector_name(name: str) -> None:
    """Raise ``openfer.UnknownNameError`` (also a ``KeyError``) unless ``name`` is one of ``DETECTORS``."""
    if name not in DETECTORS:
        raise UnknownNameError(f"unknown detector {name!r}; available: {', '.join(DETECTORS)}"
                               f"{did_you_mean(name, DETECTORS)}", name=name, known=DETECTORS)


def load_detector(name: str = "centerface", **kwargs) -> Detector:
    """Create a detector by name: ``"centerface"`` (default, accurate) or ``"haar"`` (OpenCV cascade fallback).

    Raises:
        openfer.UnknownNameError: another name (also a ``KeyError``).
    """
    check_detector_name(name)
    if name == "haar":
        from openfer.detect.haar import HaarDetector

        return HaarDetector(**kwargs)
    from openfer.detect.centerface import CenterFaceDetector

    return CenterFaceDetector(**kwargs)
