"""Per-face quality flags, so users can filter rows whose other outputs are unreliable."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Names of the flags in ``Geometry.quality``, in column order.
QUALITY_FLAGS: tuple[str, ...] = ("extreme_pose", "eyes_closed", "too_small", "blurry")


@dataclass(frozen=True)
class QualityThresholds:
    """When a face gets each quality flag.

    Attributes:
        max_yaw: |yaw| above this (degrees) is ``extreme_pose``; MediaPipe's mesh and our classifier (trained on
            mostly frontal faces) both degrade towards profile views.
        max_pitch: |pitch| above this (degrees) is ``extreme_pose``.
        blink: both eyes' blink blendshapes (``eyeBlinkLeft/Right``) at or above this is ``eyes_closed``.
        min_face_px: the detector box's shorter side below this (pixels) is ``too_small``: the mesh is then fit to
            an upscaled blur and the landmarks jitter.
        min_sharpness: ``sharpness`` (variance of the Laplacian of the face resized to 112 px) below this is
            ``blurry``. Lower it for soft webcam footage; raise it to be stricter.
    """

    max_yaw: float = 45.0
    max_pitch: float = 30.0
    blink: float = 0.5
    min_face_px: float = 40.0
    min_sharpness: float = 30.0


def sharpness(rgb: np.ndarray, box: tuple[float, float, float, float], side: int = 112) -> float:
    """Variance of the Laplacian of the face ``box`` of ``rgb``, grey, resized to ``side`` px (0 for an empty box)."""
    h, w = rgb.shape[:2]
    x1, y1 = max(int(box[0]), 0), max(int(box[1]), 0)
    x2, y2 = min(int(round(box[2])), w), min(int(round(box[3])), h)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def quality_flags(pose: tuple[float, float, float], blendshapes: dict[str, float], box_side: float,
                  sharp: float, t: QualityThresholds = QualityThresholds()) -> dict[str, bool]:
    """The flags of one face (True = problem present), in ``QUALITY_FLAGS`` order.

    Args:
        pose: (pitch, yaw, roll) degrees relative to the line of sight to the face (how turned it looks in the
            image; ``GeometryEstimator`` passes these, not the camera-frame ``Geometry.pose``).
        box_side: the shorter side of the detector box, pixels.
        sharp: ``sharpness`` of the face.
    """
    pitch, yaw, _ = pose
    return {
        "extreme_pose": abs(yaw) > t.max_yaw or abs(pitch) > t.max_pitch,
        "eyes_closed": min(blendshapes.get("eyeBlinkLeft", 0.0), blendshapes.get("eyeBlinkRight", 0.0)) >= t.blink,
        "too_small": box_side < t.min_face_px,
        "blurry": sharp < t.min_sharpness,
    }
