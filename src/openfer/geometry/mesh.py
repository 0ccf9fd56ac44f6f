"""The face-mesh runtime: MediaPipe's Face Landmarker on one face crop (``[geometry]`` extra).

``MeshModel`` is the interface the geometry stage needs; ``MediaPipeMesh`` implements it with the
``mediapipe`` package, imported only when one is created. Tests can inject any callable with the same shape.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from openfer.errors import MissingExtraError
from openfer.geometry.model_file import FACE_LANDMARKER, find_model, verify_model


@dataclass(frozen=True)
class MeshResult:
    """One face mesh in a crop.

    Attributes:
        landmarks: float32 [478, 3]: x, y in crop pixels, z relative depth in the same pixel scale (MediaPipe's
            z, larger = farther from the camera).
        blendshapes: the 52 blendshape scores in [0, 1], by MediaPipe's names.
        matrix: float64 [4, 4] facial transformation matrix (canonical face model -> the crop's virtual camera).
    """

    landmarks: np.ndarray
    blendshapes: dict[str, float]
    matrix: np.ndarray


class MeshModel(Protocol):
    """Anything that finds the face mesh in an RGB uint8 crop [S, S, 3], or None when it finds no face."""

    def __call__(self, crop: np.ndarray) -> MeshResult | None: ...


log = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence file descriptor 2 while MediaPipe builds its graph: its C++ logging prints half a dozen
    informational warnings there that no setting turns off. Kept when this module's logger is at DEBUG."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (e.g. some embedded interpreters): just run
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _close_quietly(landmarker) -> None:
    try:
        landmarker.close()
    except Exception:  # noqa: BLE001 - closing at shutdown must not print tracebacks; nothing is left to save
        pass


class MediaPipeMesh:
    """MediaPipe Face Landmarker (478 landmarks, 52 blendshapes, transformation matrix) in still-image mode.

    Args:
        model_path: the ``face_landmarker.task`` file (default: ``find_model(model_dir=model_dir)``).
        model_dir: where to look for it when ``model_path`` is not given.
        max_faces: meshes looked for per crop; the one nearest the crop's centre is kept, so a neighbour's face
            at the crop's edge does not replace the face the detector boxed. 1 is faster whenever MediaPipe also
            sees a second (possibly spurious) face in the crop (measured 8.8 against 15.9 ms on one such crop),
            but then MediaPipe's own score picks the face.
        min_confidence: MediaPipe's own face-detection threshold inside the crop. Lower finds meshes on harder
            faces (our detector already decided there is a face) at the cost of poor fits on non-faces.

    Raises:
        ImportError: ``mediapipe`` is not installed (the message names the extra).
        openfer.geometry.ModelNotFoundError: no model file (the message says how to fetch it).
        ValueError: the model file's SHA-256 is not the pinned one.
    """

    def __init__(self, model_path: str | Path | None = None, model_dir: str | Path | None = None,
                 max_faces: int = 2, min_confidence: float = 0.3) -> None:
        try:
            from mediapipe.tasks.python import vision
            from mediapipe.tasks.python.core import base_options
        except ImportError as e:
            raise MissingExtraError("the geometry stage needs MediaPipe", "geometry", e) from None
        import mediapipe as mp

        self._mp = mp
        path = verify_model(model_path) if model_path else find_model(FACE_LANDMARKER, model_dir)
        opts = vision.FaceLandmarkerOptions(
            base_options=base_options.BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.IMAGE, num_faces=max_faces,
            min_face_detection_confidence=min_confidence, min_face_presence_confidence=min_confidence,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True)
        with _quiet_native_stderr():
            self._landmarker = vision.FaceLandmarker.create_from_options(opts)
        # Close when collected, and at exit before Python stops its thread pools: MediaPipe's close needs one, and
        # its own __del__ fails with a traceback once they are gone.
        self._finalizer = weakref.finalize(self, _close_quietly, self._landmarker)
        register = getattr(threading, "_register_atexit", None)  # runs before thread pools shut down
        if register is not None:
            register(self._finalizer)

    def __call__(self, crop: np.ndarray) -> MeshResult | None:
        """The mesh of the face nearest the centre of ``crop`` (RGB uint8 [S, S, 3]), or None."""
        h, w = crop.shape[:2]
        res = self._landmarker.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB,
                                                     data=np.ascontiguousarray(crop)))
        if not res.face_landmarks:
            return None
        meshes = [np.array([(p.x * w, p.y * h, p.z * w) for p in lms], np.float32) for lms in res.face_landmarks]
        i = int(np.argmin([np.hypot(*(m[:, :2].mean(0) - (w / 2, h / 2))) for m in meshes]))
        return MeshResult(landmarks=meshes[i],
                          blendshapes={c.category_name: float(c.score) for c in res.face_blendshapes[i]},
                          matrix=np.asarray(res.facial_transformation_matrixes[i], np.float64).reshape(4, 4))

    def close(self) -> None:
        """Free the MediaPipe graph (also done automatically when this object is garbage-collected)."""
        self._finalizer()
