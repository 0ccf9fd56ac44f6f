"""Face regions in the aligned crop, from the 5 landmarks, and the share of a heatmap's evidence in each.

Regions are laid out in the face's own frame: the unit is the distance ``d`` between the eye centres, ``u`` points
from the left eye to the right eye and ``v`` down the face, so the regions follow a tilted head. Bands along ``v``
(0 = the eye line, the nose tip at about 0.55 d and the mouth at about 1 d in a frontal face):

- ``brows_eyes``: from 0.75 d above the eye line (eyebrows) down to 40 % of the way to the nose tip, 0.95 d either
  side of the eye midpoint.
- ``nose``: from there down to halfway between the nose tip and the mouth, 0.35 d either side of the nose tip.
- ``mouth_jaw``: from there down to 0.8 d below the mouth (lips and chin), 0.35 d beyond each mouth corner.
- ``other``: every other pixel (forehead, cheeks, hair, background).

The bands do not overlap, so the shares of a heatmap sum to 1. These are coarse boxes: with 5 landmarks the brows
are placed by proportion, not detected. When the geometry stage has measured MediaPipe's 478-point mesh
(``Face.geometry``), ``mesh_region_masks`` uses the outlines of the brows, eyes, nose, lips and chin instead.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Region names in display order; ``other`` is everything outside the three face regions.
REGION_NAMES: tuple[str, ...] = ("brows_eyes", "nose", "mouth_jaw", "other")


def region_masks(landmarks: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Boolean [size, size] masks of every region in ``REGION_NAMES``, from ``landmarks`` [5, 2] in crop pixels.

    Raises:
        ValueError: the landmarks are not finite or the eyes coincide.
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (5, 2) or not np.isfinite(lm).all():
        raise ValueError(f"need 5 finite (x, y) landmarks, got {lm.tolist()}")
    eye_l, eye_r, nose, mouth_l, mouth_r = lm
    d = float(np.linalg.norm(eye_r - eye_l))
    if d < 1e-6:
        raise ValueError("the two eye landmarks coincide; cannot place face regions")
    u = (eye_r - eye_l) / d
    v = np.array([-u[1], u[0]])  # u turned 90 degrees: down the face in image coordinates (y down)
    origin = (eye_l + eye_r) / 2

    def coords(p: np.ndarray) -> tuple[float, float]:
        q = (p - origin) / d
        return float(q @ u), float(q @ v)

    a_nose, b_nose = coords(nose)
    a_ml, b_ml = coords(mouth_l)
    a_mr, b_mr = coords(mouth_r)
    b_mouth = (b_ml + b_mr) / 2
    eye_bottom = 0.4 * b_nose
    nose_bottom = (b_nose + b_mouth) / 2
    boxes = {  # (a_min, a_max, b_min, b_max) in units of d
        "brows_eyes": (-0.95, 0.95, -0.75, eye_bottom),
        "nose": (a_nose - 0.35, a_nose + 0.35, eye_bottom, nose_bottom),
        "mouth_jaw": (min(a_ml, a_mr) - 0.35, max(a_ml, a_mr) + 0.35, nose_bottom, b_mouth + 0.8),
    }
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # pixel centres
    qa = ((xs - origin[0]) * u[0] + (ys - origin[1]) * u[1]) / d
    qb = ((xs - origin[0]) * v[0] + (ys - origin[1]) * v[1]) / d
    masks = {name: (qa >= a0) & (qa < a1) & (qb >= b0) & (qb < b1) for name, (a0, a1, b0, b1) in boxes.items()}
    masks["other"] = ~(masks["brows_eyes"] | masks["nose"] | masks["mouth_jaw"])
    return masks


#: MediaPipe face-mesh indices of the points whose convex hulls form the regions (checked by drawing them on the
#: astronaut's mesh): each side's eyebrow and eye contour; the nose bridge, tip and wings; outer lips and chin.
MESH_GROUPS: dict[str, tuple[tuple[int, ...], ...]] = {
    "brows_eyes": (
        (70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160,
         161, 246),
        (300, 293, 334, 296, 336, 285, 295, 282, 283, 276, 263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385,
         386, 387, 388, 466),
    ),
    "nose": ((168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 327, 64, 294, 48, 278, 129, 358),),
    "mouth_jaw": ((61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185, 152, 148,
                   176, 149, 150, 377, 400, 378, 379),),
}


def mesh_region_masks(mesh: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Boolean [size, size] masks of ``REGION_NAMES`` from a 478-point face mesh ([478, 2+] crop pixels, x, y).

    Each region is the union of the convex hulls of its ``MESH_GROUPS`` (so the skin between a brow and its eye
    belongs to brows/eyes, and the lips down to the chin to mouth/jaw); where hulls meet, brows/eyes wins over
    nose and nose over mouth/jaw, so the regions do not overlap.
    """
    pts = np.asarray(mesh, np.float64)
    if pts.ndim != 2 or pts.shape[0] != 478 or not np.isfinite(pts[:, :2]).all():
        raise ValueError(f"need a finite 478-point mesh, got shape {pts.shape}")
    taken = np.zeros((size, size), bool)
    masks: dict[str, np.ndarray] = {}
    for name, groups in MESH_GROUPS.items():
        canvas = np.zeros((size, size), np.uint8)
        for idx in groups:
            hull = cv2.convexHull(np.round(pts[list(idx), :2] * 16).astype(np.int32))
            cv2.fillConvexPoly(canvas, hull, 1, cv2.LINE_8, shift=4)  # 1/16 px precision
        masks[name] = canvas.astype(bool) & ~taken
        taken |= masks[name]
    masks["other"] = ~taken
    return masks


def region_shares(heatmap: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Share of the positive evidence (sum of ``max(heatmap, 0)``) in each mask; all 0 when there is none."""
    pos = np.clip(np.asarray(heatmap, np.float64), 0, None)
    total = float(pos.sum())
    if total <= 0:
        return {name: 0.0 for name in masks}
    return {name: float(pos[m].sum() / total) for name, m in masks.items()}


def region_areas(masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Share of the crop's pixels in each mask."""
    return {name: float(m.mean()) for name, m in masks.items()}


def draw_region_outlines(image: np.ndarray, masks: dict[str, np.ndarray], colour=(255, 255, 255),
                         thickness: int = 1) -> np.ndarray:
    """A copy of ``image`` (same size as the masks) with the outline of every face region drawn on it."""
    out = image.copy()
    for name, m in masks.items():
        if name == "other":
            continue
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, thickness, cv2.LINE_AA)
    return out
