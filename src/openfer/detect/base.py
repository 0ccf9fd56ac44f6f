"""The detector interface and creation by name."""

from __future__ import annotations

from typing import Protocol

import numpy as np

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


def load_detector(name: str = "centerface", **kwargs) -> Detector:
    """Create a detector by name: ``"centerface"`` (default, accurate) or ``"haar"`` (OpenCV cascade fallback)."""
    if name == "centerface":
        from openfer.detect.centerface import CenterFaceDetector

        return CenterFaceDetector(**kwargs)
    if name == "haar":
        from openfer.detect.haar import HaarDetector

        return HaarDetector(**kwargs)
    raise KeyError(f"unknown detector {name!r}; available: centerface, haar")
