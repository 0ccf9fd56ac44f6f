"""Geometry stage (``[geometry]`` extra): 478 landmarks, head pose, gaze, blendshapes, AU proxies, quality flags.

Faces in, faces with ``Face.geometry`` out. MediaPipe is imported only when a ``MediaPipeMesh`` is created; the
model file is never downloaded implicitly (``openfer models fetch face-landmarker``). Reference: docs/geometry.md.
"""

from openfer.geometry.au import AU_PROXY_TABLE, au_proxies
from openfer.geometry.mesh import MediaPipeMesh, MeshModel, MeshResult
from openfer.geometry.model_file import FACE_LANDMARKER, ModelNotFoundError, fetch_model, find_model, model_location
from openfer.geometry.quality import QUALITY_FLAGS, QualityThresholds
from openfer.geometry.stage import GeometryEstimator, face_crop

__all__ = [
    "AU_PROXY_TABLE", "FACE_LANDMARKER", "QUALITY_FLAGS", "GeometryEstimator", "MediaPipeMesh", "MeshModel",
    "MeshResult", "ModelNotFoundError", "QualityThresholds", "au_proxies", "face_crop", "fetch_model", "find_model",
    "model_location",
]
