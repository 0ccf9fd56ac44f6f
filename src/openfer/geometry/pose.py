"""Head pose from MediaPipe's facial transformation matrix, in OpenFace 2.x's conventions.

MediaPipe gives a 4x4 rigid transform from its canonical face model (centimetres; x right, y up, z towards the
viewer) into a virtual camera with a 63° vertical field of view over the analysed image (OpenGL-style: y up,
z towards the viewer, the face at negative z). OpenFace's camera frame has y down and z away from the camera,
so both frames are flipped about x (``FLIP``) before reading Euler angles with OpenFace's R = Rx Ry Rz.
"""

from __future__ import annotations

import math

import numpy as np

#: Vertical field of view of the virtual camera MediaPipe's face geometry assumes, degrees.
MEDIAPIPE_VFOV_DEG = 63.0
#: Flips y and z: MediaPipe's (OpenGL) frame <-> OpenFace's (OpenCV) camera frame.
FLIP = np.diag([1.0, -1.0, -1.0])


def rotation_to_openface(matrix: np.ndarray) -> np.ndarray:
    """The 3x3 head rotation in OpenFace's camera frame, from MediaPipe's 4x4 transform (made orthonormal)."""
    r = np.asarray(matrix, np.float64)[:3, :3]
    u, _, vt = np.linalg.svd(r)  # drop any scale / shear left by the fit
    r = u @ vt
    return FLIP @ r @ FLIP


def euler_xyz(rot: np.ndarray) -> tuple[float, float, float]:
    """(Rx, Ry, Rz) radians with ``rot = Rx @ Ry @ Rz`` (OpenFace's convention: pitch, yaw, roll)."""
    ry = math.asin(max(-1.0, min(1.0, rot[0, 2])))
    rx = math.atan2(-rot[1, 2], rot[2, 2])
    rz = math.atan2(-rot[0, 1], rot[0, 0])
    return rx, ry, rz


def rotation_xyz(rx: float, ry: float, rz: float) -> np.ndarray:
    """The rotation matrix ``Rx @ Ry @ Rz`` of Euler angles in radians (inverse of ``euler_xyz``)."""
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mx @ my @ mz


def openface_focal(width: int, height: int) -> float:
    """OpenFace's default focal length in pixels when no calibration is given: the mean of 500 px per 640 px of
    width and 500 px per 480 px of height, used for both axes."""
    return (500.0 * width / 640.0 + 500.0 * height / 480.0) / 2.0


def head_translation(matrix: np.ndarray, crop_size: int, crop_to_frame: np.ndarray,
                     frame_size: tuple[int, int]) -> tuple[float, float, float]:
    """Head centre (x, y, z) in millimetres in OpenFace's camera frame of the whole image.

    MediaPipe measured the head in a square crop of ``crop_size`` px seen by its 63° virtual camera. The head's
    apparent size fixes its depth in that camera; re-expressed for a camera with OpenFace's default focal length
    over the full frame (``frame_size`` = width, height), the depth scales by ``f_frame * s / f_crop`` where ``s``
    is the crop's pixels per frame pixel. x and y back-project the head centre's image position at that depth.

    Args:
        matrix: MediaPipe's 4x4 transform (translation in cm).
        crop_to_frame: float [2, 3] affine mapping crop pixels to frame pixels (a scale and shift).
    """
    t = np.asarray(matrix, np.float64)[:3, 3]  # cm, OpenGL camera: the face is at z < 0
    f_crop = (crop_size / 2.0) / math.tan(math.radians(MEDIAPIPE_VFOV_DEG) / 2.0)
    depth = max(-t[2], 1e-6)
    u_c = crop_size / 2.0 + f_crop * t[0] / depth  # head centre in crop pixels (y down)
    v_c = crop_size / 2.0 - f_crop * t[1] / depth
    a = np.asarray(crop_to_frame, np.float64)
    u, v = a @ np.array([u_c, v_c, 1.0])
    scale = 1.0 / math.hypot(a[0, 0], a[1, 0])  # crop px per frame px
    f = openface_focal(*frame_size)
    z = 10.0 * depth * f * scale / f_crop  # mm
    w, h = frame_size
    return float((u - w / 2.0) * z / f), float((v - h / 2.0) * z / f), float(z)


def line_of_sight_rotation(position: tuple[float, float, float]) -> np.ndarray:
    """The rotation that turns the camera's optical axis (+z) onto the ray to ``position`` (camera frame).

    MediaPipe sees each face in a crop centred on it, as if the camera looked straight at the face, so its head
    rotation is relative to that line of sight. A camera-frame rotation, OpenFace's convention, is this rotation
    times that one: a face in the image corner that looks into the lens is, in camera terms, turned towards the
    image centre.
    """
    d = np.asarray(position, np.float64)
    d = d / max(np.linalg.norm(d), 1e-12)
    axis = np.cross([0.0, 0.0, 1.0], d)
    s, c = float(np.linalg.norm(axis)), float(d[2])
    if s < 1e-12:
        return np.eye(3)
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx  # Rodrigues
