"""Confusion-matrix image: rows = true class, columns = predicted, cells = row share, with counts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def confusion_image(matrix: np.ndarray, classes: list[str] | tuple[str, ...], title: str = "") -> np.ndarray:
    """RGB uint8 image of a confusion matrix (row-normalised shading, count and percent in each cell)."""
    m = np.asarray(matrix, np.int64)
    k = len(classes)
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    cell, left, top = 78, 110, 70
    img = np.full((top + k * cell + 40, left + k * cell + 20, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (10, 24), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "predicted ->", (left, 50), font, 0.45, (80, 80, 80), 1, cv2.LINE_AA)
    for i in range(k):
        y = top + i * cell
        cv2.putText(img, classes[i][:10], (5, y + cell // 2 + 5), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, classes[i][:8], (left + i * cell + 4, top + k * cell + 20), font, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
        for j in range(k):
            x = left + j * cell
            shade = int(255 - 200 * share[i, j])
            colour = (shade, shade, 255) if i != j else (shade, 255, shade)
            cv2.rectangle(img, (x, y), (x + cell - 2, y + cell - 2), colour, -1)
            ink = (255, 255, 255) if share[i, j] > 0.6 else (0, 0, 0)
            cv2.putText(img, f"{100 * share[i, j]:.0f}%", (x + 8, y + 32), font, 0.55, ink, 1, cv2.LINE_AA)
            cv2.putText(img, str(m[i, j]), (x + 8, y + 56), font, 0.4, ink, 1, cv2.LINE_AA)
    return img


def save_confusion(matrix, classes, path: str | Path, title: str = "") -> Path:
    """Write ``confusion_image`` as PNG to ``path``."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(confusion_image(matrix, classes, title)).save(path)
    return path
