"""Carrying faces from one frame to the next with sparse optical flow, so the detector can skip frames.

A detected face is followed by a few dozen points: its five landmarks and the corners OpenCV finds inside its box.
Pyramidal Lucas-Kanade flow moves them to the next frame; points whose backward flow does not come home are
dropped; a similarity transform (shift, rotation, uniform scale) fitted with RANSAC to the rest moves the box and
the landmarks. A face whose points are mostly lost (turned away, occluded, blurred, left the frame) is reported
uncertain, and the caller runs the detector again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from openfer.errors import UsageError
from openfer.types import Face

_LK = {"winSize": (15, 15), "maxLevel": 3,
       "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}
#: The flow's grey copy is not shrunk below the size that keeps the smallest followed face this tall (pixels).
_MIN_FACE_PX = 64.0


@dataclass
class _Followed:
    face: Face
    points: np.ndarray  # float32 [P, 2], pixels of the flow's grey copy: landmarks and corners still held
    start: int  # points at the last detection: the share kept since then measures how well the face is held


class FlowCarrier:
    """Moves each face of the last frame to the current one; knows when it has lost one.

    Args:
        corners: corners sought inside each face box besides its landmarks (more: steadier, slower; about 0.05 ms
            per face for 30 at 640x480).
        max_fb_error: a point whose forward-then-backward flow lands further than this from where it started
            (pixels, scaled by the face's size over 100 px) is dropped as unreliable.
        min_kept: a face keeping fewer than this share of the points it had at its last detection, or fewer
            than 6, is uncertain: the caller should detect again. Higher re-detects sooner after pose changes
            and occlusions; lower detects less.
        max_side: flow runs on a grey copy downscaled to at most this longer side (pixels): faster, and big faces
            still hold enough points; it is shrunk less where that would make the smallest face under 64 px.

    Example:
        >>> import numpy as np
        >>> from openfer.types import Face
        >>> rng = np.random.default_rng(0)
        >>> frame = (rng.random((240, 320)) * 255).astype(np.uint8)
        >>> carrier = FlowCarrier()
        >>> carrier.start(frame, [Face(box=(100.0, 80.0, 160.0, 150.0), score=0.9)])
        >>> moved, uncertain = carrier.carry(np.roll(frame, 3, axis=1))   # everything moves 3 px right
        >>> [round(v) for v in moved[0].box], uncertain
        ([103, 80, 163, 150], False)
    """

    def __init__(self, corners: int = 30, max_fb_error: float = 1.0, min_kept: float = 0.5,
                 max_side: int = 320) -> None:
        if corners < 0 or max_fb_error <= 0 or not (0.0 <= min_kept <= 1.0) or max_side < 64:
            raise UsageError(f"FlowCarrier: corners >= 0, max_fb_error > 0, 0 <= min_kept <= 1 and max_side >= 64 "
                             f"are needed, got {corners}, {max_fb_error}, {min_kept}, {max_side}")
        self.corners = corners
        self.max_fb_error = max_fb_error
        self.min_kept = min_kept
        self.max_side = max_side
        self._prev: np.ndarray | None = None
        self._scale = 1.0
        self._followed: list[_Followed] = []

    @property
    def faces(self) -> list[Face]:
        """The faces as last placed (by ``start`` or ``carry``)."""
        return [f.face for f in self._followed]

    def _grey(self, grey: np.ndarray) -> np.ndarray:
        if grey.ndim == 3:
            grey = cv2.cvtColor(grey, cv2.COLOR_RGB2GRAY)
        return grey if self._scale == 1.0 else cv2.resize(grey, None, fx=self._scale, fy=self._scale,
                                                          interpolation=cv2.INTER_AREA)

    def start(self, image: np.ndarray, faces: list[Face]) -> None:
        """Follow ``faces`` (just detected in ``image``, grey uint8 [H, W] or RGB [H, W, 3]) from this frame on."""
        h, w = image.shape[:2]
        smallest = min((min(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in faces), default=1e9)
        scale = min(1.0, max(self.max_side / max(h, w), _MIN_FACE_PX / max(smallest, 1.0)))
        self._scale = 1.0 if scale > 0.9 else scale
        grey = self._grey(image)
        self._prev = grey
        self._followed = [self._points(grey, f) for f in faces]

    def _points(self, grey: np.ndarray, face: Face) -> _Followed:
        s = self._scale
        x1, y1, x2, y2 = (np.asarray(face.box, np.float64) * s).tolist()
        gh, gw = grey.shape[:2]
        pts = [] if face.landmarks is None else [np.asarray(face.landmarks, np.float32).reshape(-1, 2) * s]
        ix1, iy1 = max(0, int(x1)), max(0, int(y1))
        ix2, iy2 = min(gw, int(np.ceil(x2))), min(gh, int(np.ceil(y2)))
        if self.corners and ix2 - ix1 >= 8 and iy2 - iy1 >= 8:
            found = cv2.goodFeaturesToTrack(grey[iy1:iy2, ix1:ix2], self.corners, 0.01,
                                            max(2.0, min(ix2 - ix1, iy2 - iy1) / 10))
            if found is not None:
                pts.append(found.reshape(-1, 2) + np.array([ix1, iy1], np.float32))
        points = np.concatenate(pts).astype(np.float32) if pts else np.zeros((0, 2), np.float32)
        return _Followed(face, points, len(points))

    def carry(self, image: np.ndarray) -> tuple[list[Face], bool]:
        """The followed faces moved to ``image`` (the next frame), and whether any of them is uncertain.

        Faces keep their score, ``track_id`` and other fields; box and landmarks move. An uncertain face is left
        where it was last seen (and stops being followed), so a caller that cannot detect now still has it.
        """
        if self._prev is None:
            raise UsageError("FlowCarrier.carry before start: detect faces in a first frame and call start()")
        grey = self._grey(image)
        uncertain = False
        if self._followed:
            counts = [len(f.points) for f in self._followed]
            p0 = np.concatenate([f.points for f in self._followed]).reshape(-1, 1, 2)
            if len(p0):
                p1, st, _ = cv2.calcOpticalFlowPyrLK(self._prev, grey, p0, None, **_LK)
                back, st2, _ = cv2.calcOpticalFlowPyrLK(grey, self._prev, p1, None, **_LK)
                fb = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
                ok = (st.reshape(-1) == 1) & (st2.reshape(-1) == 1)
                p0, p1 = p0.reshape(-1, 2), p1.reshape(-1, 2)
            kept: list[_Followed] = []
            at = 0
            for f, n in zip(self._followed, counts):
                sl = slice(at, at + n)
                at += n
                moved = self._move(f, p0[sl], p1[sl], ok[sl], fb[sl], grey.shape) if n else None
                if moved is None:
                    uncertain = True
                    continue
                kept.append(moved)
            self._followed = kept
        self._prev = grey
        return self.faces, uncertain

    def _move(self, f: _Followed, p0, p1, ok, fb, shape) -> _Followed | None:
        """``f`` moved by the similarity transform its good points agree on; None when too few agree."""
        s = self._scale
        size = min(f.face.box[2] - f.face.box[0], f.face.box[3] - f.face.box[1]) * s
        good = ok & (fb <= self.max_fb_error * max(1.0, size / 100.0))
        need = max(6, int(np.ceil(self.min_kept * f.start)))
        if good.sum() < need:
            return None
        m, inliers = cv2.estimateAffinePartial2D(p0[good], p1[good], method=cv2.RANSAC,
                                                 ransacReprojThreshold=max(1.0, size / 50.0))
        if m is None or inliers is None or int(inliers.sum()) < need:
            return None
        lin = m[:, :2]
        shift = m[:, 2] / s
        box = np.asarray(f.face.box, np.float64)
        centre = (box[:2] + box[2:]) / 2
        zoom = float(np.sqrt(abs(np.linalg.det(lin))))
        new_centre = lin @ centre + shift
        half = (box[2:] - box[:2]) / 2 * zoom
        new_box = np.concatenate([new_centre - half, new_centre + half])
        gh, gw = shape[:2]
        w, h = gw / s, gh / s
        if new_box[0] < 0 or new_box[1] < 0 or new_box[2] > w or new_box[3] > h:
            return None  # leaving the frame: the detector clips boxes there, the flow cannot see half a face
        landmarks = f.face.landmarks
        if landmarks is not None:
            landmarks = (np.asarray(landmarks, np.float64).reshape(-1, 2) @ lin.T + shift).astype(np.float32)
        face = dataclasses.replace(f.face, box=tuple(float(v) for v in new_box), landmarks=landmarks)
        keep = good.copy()
        keep[good] = inliers.reshape(-1).astype(bool)
        return _Followed(face, p1[keep].astype(np.float32), f.start)

    def reset(self) -> None:
        """Forget every face and the last frame."""
        self._prev = None
        self._followed = []
