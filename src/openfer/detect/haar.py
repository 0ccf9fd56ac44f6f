"""OpenCV Haar cascade fallback: weak (frontal faces only, no landmarks from the model), but has no extra deps."""

from __future__ import annotations

import cv2
import numpy as np

from openfer.detect.base import check_rgb
from openfer.types import Face


class HaarDetector:
    """Frontal-face Haar cascade; landmarks are placed at fixed positions inside the box (rough alignment).

    Args:
        min_face: smallest face side in pixels that the cascade searches for.
        min_neighbors: higher values mean fewer false positives and more misses.
    """

    name = "haar"
    # Mean landmark positions inside a Haar face box, as fractions of its width/height (frontal faces).
    _BOX_LANDMARKS = np.array([[0.32, 0.40], [0.68, 0.40], [0.50, 0.58], [0.36, 0.76], [0.64, 0.76]], np.float32)

    def __init__(self, min_face: int = 24, min_neighbors: int = 5) -> None:
        self.min_face = min_face
        self.min_neighbors = min_neighbors
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        if self.cascade.empty():
            raise FileNotFoundError("OpenCV's haarcascade_frontalface_default.xml could not be loaded")

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 image [H, W, 3], largest first (the cascade gives no real score)."""
        check_rgb(image)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        rects, _, weights = self.cascade.detectMultiScale3(
            grey, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(self.min_face, self.min_face),
            outputRejectLevels=True,
        )
        faces = []
        for (x, y, w, h), wt in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            lm = self._BOX_LANDMARKS * np.array([w, h], np.float32) + np.array([x, y], np.float32)
            score = float(1 / (1 + np.exp(-wt)))
            faces.append(Face(box=(x, y, x + w, y + h), score=score, landmarks=lm))
        return sorted(faces, key=lambda f: -f.width * f.height)
