"""The geometry stage: per detected face, a crop around its box through the face mesh, mapped back to the frame."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np

from openfer.geometry.au import au_proxies
from openfer.geometry.gaze import eye_gaze, gaze_angles
from openfer.geometry.mesh import MediaPipeMesh, MeshModel, MeshResult
from openfer.geometry.pose import euler_xyz, head_translation, line_of_sight_rotation, rotation_to_openface
from openfer.geometry.quality import QualityThresholds, quality_flags, sharpness
from openfer.types import Face, Geometry


def face_crop(rgb: np.ndarray, box: tuple[float, float, float, float], size: int,
              context: float) -> tuple[np.ndarray, np.ndarray]:
    """A square ``size`` px crop centred on ``box``, ``context`` times its longer side (black outside the image).

    Returns:
        (crop RGB uint8 [size, size, 3], float64 [2, 3] affine mapping crop pixels back to image pixels).
    """
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    side = max(box[2] - box[0], box[3] - box[1], 1.0) * context
    s = size / side
    to_crop = np.array([[s, 0.0, size / 2.0 - s * cx], [0.0, s, size / 2.0 - s * cy]])
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(rgb, to_crop, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT)
    to_frame = np.array([[1 / s, 0.0, cx - size / 2.0 / s], [0.0, 1 / s, cy - size / 2.0 / s]])
    return crop, to_frame


class GeometryEstimator:
    """Adds ``Face.geometry`` (478 landmarks, head pose, gaze, blendshapes, AU proxies, quality flags) to faces.

    Works from our detector's boxes: each face is cropped with some context, resized to ``crop_size`` (so small
    faces are upscaled and large ones shrunk), meshed, and the results are mapped back to image coordinates.
    Several faces in one image each get their own crop.

    Args:
        mesh: the face-mesh runtime (default: ``MediaPipeMesh`` on the model found by ``find_model``).
        model_dir: where to look for the model file when ``mesh`` is not given.
        crop_size: side of the square crop given to the mesh, pixels. MediaPipe's landmark network works at
            256 px; larger costs time without adding detail.
        context: crop side as a multiple of the box's longer side. MediaPipe's internal face detector needs to see
            the whole head; much tighter crops lose the mesh on turned faces, much wider ones shrink the face.
        thresholds: when the quality flags are raised.

    Example (needs the model file, so not run as a doctest; the output is the astronaut portrait's):
        >>> import openfer, skimage.data                                       # doctest: +SKIP
        >>> rgb = skimage.data.astronaut()                                     # doctest: +SKIP
        >>> faces = GeometryEstimator().estimate(rgb, openfer.load_detector().detect(rgb))  # doctest: +SKIP
        >>> [round(a) for a in faces[0].geometry.pose]   # pitch, yaw, roll in degrees  # doctest: +SKIP
        [8, 1, 3]
    """

    def __init__(self, mesh: MeshModel | None = None, model_dir: str | Path | None = None, crop_size: int = 256,
                 context: float = 1.8, thresholds: QualityThresholds = QualityThresholds()) -> None:
        self.mesh = mesh if mesh is not None else MediaPipeMesh(model_dir=model_dir)
        self.crop_size, self.context, self.thresholds = crop_size, context, thresholds

    def estimate(self, rgb: np.ndarray, faces: list[Face]) -> list[Face]:
        """New faces with ``geometry`` set (None where no mesh was found in a face's crop); input is not changed.

        Args:
            rgb: the image the faces were detected in, RGB uint8 [H, W, 3].
        """
        return [dataclasses.replace(f, geometry=self.measure(rgb, f)) for f in faces]

    def measure(self, rgb: np.ndarray, face: Face) -> Geometry | None:
        """The geometry of one face of ``rgb``, or None when the mesh finds no face in its crop."""
        crop, to_frame = face_crop(rgb, face.box, self.crop_size, self.context)
        res = self.mesh(crop)
        if res is None:
            return None
        return self._geometry(res, to_frame, (rgb.shape[1], rgb.shape[0]), face, sharpness(rgb, face.box))

    def _geometry(self, res: MeshResult, to_frame: np.ndarray, frame_size: tuple[int, int], face: Face,
                  sharp: float) -> Geometry:
        lm = res.landmarks.astype(np.float64)
        scale = to_frame[0, 0]  # frame px per crop px
        lm_frame = np.column_stack([lm[:, 0] * scale + to_frame[0, 2], lm[:, 1] * scale + to_frame[1, 2],
                                    lm[:, 2] * scale])
        # MediaPipe's rotation is relative to the line of sight to the face (the crop's axis): the landmarks'
        # geometry (gaze) and the face's look in the image (quality) use it; outputs are in the camera frame.
        view = rotation_to_openface(res.matrix)
        translation = head_translation(res.matrix, self.crop_size, to_frame, frame_size)
        to_camera = line_of_sight_rotation(translation)
        pose = tuple(math.degrees(a) for a in euler_xyz(to_camera @ view))
        view_pose = tuple(math.degrees(a) for a in euler_xyz(view))
        gaze = np.stack([to_camera @ eye_gaze(lm_frame, view, 0), to_camera @ eye_gaze(lm_frame, view, 1)])
        return Geometry(
            landmarks=lm_frame,
            pose=pose,
            translation=translation,
            gaze=gaze,
            gaze_angle=gaze_angles(gaze[0], gaze[1]),
            blendshapes=dict(res.blendshapes),
            au_proxies=au_proxies(res.blendshapes),
            quality=quality_flags(view_pose, res.blendshapes, min(face.width, face.height), sharp,
                                  self.thresholds),
            sharpness=sharp,
        )
