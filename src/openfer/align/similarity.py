"""Pure geometry: fit a similarity transform (rotation, uniform scale, shift) and warp a face to a template."""

from __future__ import annotations

import cv2
import numpy as np

from openfer.types import Face

#: Where the 5 landmarks sit in a FER2013 crop, as fractions of the crop side (x, y). Measured by
#: ``scripts/fer_template.py``: CenterFace landmarks on 3,000 FER2013 Training crops (2,802 found), median,
#: made left-right symmetric. Aligning to it makes our crops look like the classifier's training data.
FER_TEMPLATE = np.array(
    [[0.3156, 0.3985], [0.6844, 0.3985], [0.5000, 0.5983], [0.3521, 0.7529], [0.6479, 0.7529]], np.float32
)


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform mapping points ``src`` [K, 2] onto ``dst`` [K, 2] (Umeyama 1991).

    Returns:
        float64 [2, 3] affine matrix M with ``dst ≈ M @ [x, y, 1]``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("landmarks are degenerate (all at one point)")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def warp_face(image: np.ndarray, landmarks: np.ndarray, size: int,
              template: np.ndarray = FER_TEMPLATE) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face with ``landmarks`` [5, 2] so they land on ``template`` in a ``size`` x ``size`` crop.

    Large faces are warped at up to 4x the output size and then area-downsampled, which avoids aliasing.

    Returns:
        (crop [size, size(, C)] same dtype as ``image``, inverse matrix [2, 3] mapping crop -> image pixels).
    """
    m = estimate_similarity(landmarks, template * size)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    over = int(np.clip(np.floor(1 / max(scale, 1e-6)), 1, 4))
    m_big = m * np.array([[over], [over]])
    crop = cv2.warpAffine(image, m_big, (size * over, size * over), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    if over > 1:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return crop, cv2.invertAffineTransform(m)


def align_faces(image: np.ndarray, faces: list[Face], size: int, template: np.ndarray = FER_TEMPLATE) -> np.ndarray:
    """Aligned crops of every face: uint8 [N, size, size(, C)]; faces without landmarks are cropped by their box."""
    shape = (size, size) + image.shape[2:]
    out = np.empty((len(faces),) + shape, image.dtype)
    for i, f in enumerate(faces):
        out[i] = crop_face(image, f, size, template)[0]
    return out


def crop_face(image: np.ndarray, face: Face, size: int,
              template: np.ndarray = FER_TEMPLATE) -> tuple[np.ndarray, np.ndarray]:
    """The crop ``align_faces`` makes for one face, and the float64 [2, 3] matrix mapping crop -> image pixels.

    Faces with landmarks are warped to ``template``; faces without are cut by their box and resized.
    """
    if np.isfinite(face.landmarks).all():
        return warp_face(image, face.landmarks, size, template)
    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    x1, y1 = max(x1, 0), max(y1, 0)
    patch = image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
    crop = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    h, w = patch.shape[:2]
    return crop, np.array([[w / size, 0.0, x1], [0.0, h / size, y1]])
