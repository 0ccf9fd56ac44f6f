"""Gaze direction per eye from MediaPipe's iris landmarks, on a simple spherical eyeball model.

For each eye, the eyeball centre sits behind the midpoint of the two eye corners, along the head's backward
axis (from the head pose), by ``CENTRE_DEPTH`` eye widths; the iris centre lies on a sphere of ``IRIS_RADIUS``
eye widths around it. The iris centre's image position is lifted onto the front of that sphere, and the gaze is
the unit vector from the eyeball centre through it. The constants are anatomical averages for an eye opening of
about 29 mm: an eyeball of 12 mm radius whose iris plane lies about 3.5 mm behind the corneal apex puts the iris
centre 8.5 mm from the eyeball centre (0.29 widths); MediaPipe's mesh puts the iris centre about 0.08 widths in
front of the corners' midpoint, so the eyeball centre is about 0.2 widths behind it. This is the model-based idea
OpenFace also uses, with MediaPipe's iris landmarks in place of OpenFace's eye-region landmarks; the constants are
not fitted to gaze data (we have none).
"""

from __future__ import annotations

import math

import numpy as np

#: Mesh indices (corner, corner, iris centre) of eye 0 (leftmost in the image: the subject's right eye) and eye 1.
EYE_INDICES: tuple[tuple[int, int, int], tuple[int, int, int]] = ((33, 133, 468), (362, 263, 473))
#: Upper and lower eyelid mid-points of eye 0 and eye 1 (for eye openness).
LID_INDICES: tuple[tuple[int, int], tuple[int, int]] = ((159, 145), (386, 374))
#: Distance from the eyeball centre to the iris centre, as a fraction of the eye width (corner to corner).
IRIS_RADIUS = 0.29
#: Depth of the eyeball centre behind the eye corners' midpoint, as a fraction of the eye width.
CENTRE_DEPTH = 0.2


def eye_gaze(landmarks: np.ndarray, rotation: np.ndarray, eye: int) -> np.ndarray:
    """Unit gaze vector of ``eye`` (0 or 1) in OpenFace's camera frame (z < 0: towards the camera).

    Args:
        landmarks: [478, 3] mesh in pixels (x right, y down, z away from the camera, same scale).
        rotation: 3x3 head rotation in OpenFace's camera frame (``pose.rotation_to_openface``).
    """
    c1, c2, iris_i = EYE_INDICES[eye]
    a, b = landmarks[c1].astype(np.float64), landmarks[c2].astype(np.float64)
    width = float(np.linalg.norm(a - b))
    if width < 1e-6:
        return np.array([0.0, 0.0, -1.0])
    backward = rotation @ np.array([0.0, 0.0, 1.0])
    centre = (a + b) / 2.0 + CENTRE_DEPTH * width * backward
    radius = IRIS_RADIUS * width
    d = landmarks[iris_i, :2].astype(np.float64) - centre[:2]
    norm = float(np.hypot(*d))
    if norm > radius:  # the iris cannot be outside the eyeball's outline: clamp to its rim
        d *= radius / norm
        norm = radius
    dz = -math.sqrt(max(radius**2 - norm**2, 0.0))
    g = np.array([d[0], d[1], dz])
    return g / np.linalg.norm(g)


def gaze_angles(g0: np.ndarray, g1: np.ndarray) -> tuple[float, float]:
    """OpenFace's ``gaze_angle_x, gaze_angle_y`` (radians) of the mean of two gaze vectors."""
    g = (np.asarray(g0) + np.asarray(g1)) / 2.0
    return float(math.atan2(g[0], -g[2])), float(math.atan2(g[1], -g[2]))
