"""``explain_faces``: one ``Explanation`` per face, whatever the method."""

from __future__ import annotations

import dataclasses
from typing import Callable

import cv2
import numpy as np

from openfer.align import FER_TEMPLATE, crop_face
from openfer.classify.base import Classifier
from openfer.classify.prior import decision_of
from openfer.explain.base import class_index
from openfer.explain.occlusion import occlusion_map
from openfer.explain.rationale import rationale
from openfer.explain.regions import mesh_region_masks, region_areas, region_masks, region_shares
from openfer.explain.rise import rise_map
from openfer.registry import Registry
from openfer.types import Explanation, Face

#: Every explanation method by name: each entry maps (classifier, uint8 crops [N, S, S(, 3)], class columns [N],
#: **settings) to float32 heatmaps [N, S, S]. ``gradcam`` and ``gradcam++`` need a PyTorch model
#: (``openfer.nn.TorchClassifier``).
METHODS: Registry[Callable[..., np.ndarray]] = Registry("explanation method")


@METHODS.register("occlusion", "patches of the face covered one by one: where the class probability drops (any model)")
def _occlusion(classifier, crops: np.ndarray, targets: list[int], **params) -> np.ndarray:
    return np.stack([occlusion_map(classifier, c, t, **params) for c, t in zip(crops, targets)])


@METHODS.register("rise", "random masks weighted by the class probability they leave (any model)")
def _rise(classifier, crops: np.ndarray, targets: list[int], **params) -> np.ndarray:
    return np.stack([rise_map(classifier, c, t, **params) for c, t in zip(crops, targets)])


@METHODS.register("gradcam", "gradient-weighted last convolutional maps (PyTorch models)")
def _gradcam(classifier, crops: np.ndarray, targets: list[int], **params) -> np.ndarray:
    from openfer.explain.gradcam import gradcam_maps

    return gradcam_maps(classifier, crops, targets, plus=False, **params)


@METHODS.register("gradcam++", "Grad-CAM with higher-order gradient weights, sharper for several regions "
                  "(PyTorch models)")
def _gradcam_plus(classifier, crops: np.ndarray, targets: list[int], **params) -> np.ndarray:
    from openfer.explain.gradcam import gradcam_maps

    return gradcam_maps(classifier, crops, targets, plus=True, **params)


def crop_landmarks(face: Face, crop_to_image: np.ndarray, size: int) -> np.ndarray:
    """The face's 5 landmarks in crop pixels [5, 2]; the alignment template's positions when it has none (or its
    eyes are less than a pixel apart in the crop)."""
    if not np.isfinite(face.landmarks).all():
        return FER_TEMPLATE * size
    to_crop = cv2.invertAffineTransform(crop_to_image)
    pts = np.asarray(face.landmarks, np.float64) @ to_crop[:, :2].T + to_crop[:, 2]
    return pts if np.linalg.norm(pts[1] - pts[0]) >= 1 else FER_TEMPLATE * size


def face_regions(face: Face, crop_to_image: np.ndarray, size: int) -> tuple[dict[str, np.ndarray], str]:
    """Region masks of ``face`` in its crop and where they came from: ``mesh`` (the geometry stage's 478 points),
    ``landmarks`` (the 5 detector landmarks) or ``template`` (no landmarks: the alignment template's)."""
    to_crop = cv2.invertAffineTransform(crop_to_image)
    if face.geometry is not None:
        pts = np.asarray(face.geometry.landmarks[:, :2], np.float64) @ to_crop[:, :2].T + to_crop[:, 2]
        return mesh_region_masks(pts, size), "mesh"
    source = "landmarks" if np.isfinite(face.landmarks).all() else "template"
    return region_masks(crop_landmarks(face, crop_to_image, size), size), source


def check_request(classifier: Classifier, method: str, target: str | None) -> None:
    """Raise a clear error when ``method`` or ``target`` cannot be used with ``classifier``.

    Raises:
        openfer.UnknownNameError: unknown method or class (also a ``ValueError``).
        TypeError: a Grad-CAM method for a model that is not a PyTorch ``TorchClassifier``.
    """
    METHODS.check(method)
    if target is not None:
        class_index(classifier, target, np.zeros(len(classifier.classes)))
    if method.startswith("gradcam"):
        from openfer.nn.torch_classifier import TorchClassifier

        if not isinstance(classifier, TorchClassifier):
            raise TypeError("Grad-CAM needs a PyTorch model: TorchClassifier.from_onnx(classifier) for an ONNX "
                            "model, or TorchClassifier.from_checkpoint(best.pt)")


def heatmaps(classifier: Classifier, crops: np.ndarray, targets: list[int], method: str, **params) -> np.ndarray:
    """float32 [N, S, S] heatmaps of ``crops`` (uint8 [N, S, S(, 3)]) for class columns ``targets``.

    ``params`` go to the method: ``patch``, ``stride`` (occlusion); ``n_masks``, ``grid``, ``keep``, ``seed``
    (rise); ``layer`` (gradcam, gradcam++).
    """
    return METHODS.get(method)(classifier, crops, targets, **params)


def explain_faces(image: np.ndarray, faces: list[Face], classifier: Classifier, method: str = "occlusion",
                  target: str | None = None, **params) -> list[Face]:
    """New ``Face`` objects with ``expression``, ``probabilities`` and ``explanation`` from ``classifier``.

    The probabilities are recomputed by the classifier that is explained, so the sentence and the numbers always
    describe the same model.

    Args:
        image: RGB uint8 [H, W, 3] the faces were detected in.
        faces: detected faces (box and, ideally, landmarks; faces without landmarks are cropped by their box and
            get the template's regions; faces with ``geometry`` get regions from the 478-point mesh).
        classifier: an ``OnnxClassifier`` (occlusion, rise) or ``TorchClassifier`` (any method).
        method: one of ``METHODS``.
        target: class to explain for every face; None explains each face's top class.
        **params: method settings, see ``heatmaps``.

    Example:
        >>> import openfer, skimage.data
        >>> from openfer.explain import explain_faces
        >>> img = skimage.data.astronaut()
        >>> analyzer = openfer.Analyzer(classifier="fast")
        >>> faces = explain_faces(img, analyzer.detector.detect(img), analyzer.classifier, "occlusion")
        >>> sorted(faces[0].explanation.regions)
        ['brows_eyes', 'mouth_jaw', 'nose', 'other']
    """
    check_request(classifier, method, target)
    if not faces:
        return []
    size = classifier.input_size
    src = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if classifier.channels == 1 and image.ndim == 3 else image
    cropped = [crop_face(src, f, size) for f in faces]
    crops = np.stack([c for c, _ in cropped])
    probs = classifier.predict_proba(crops)
    targets = [class_index(classifier, target, p) for p in probs]
    maps = heatmaps(classifier, crops, targets, method, **params)
    out = []
    for f, (_, inv), p, t, hm in zip(faces, cropped, probs, targets, maps):
        masks, source = face_regions(f, inv, size)
        shares = region_shares(hm, masks)
        name = classifier.classes[t]
        expl = Explanation(method=method, target=name, probability=float(p[t]), heatmap=hm, crop_to_image=inv,
                           regions=shares, region_areas=region_areas(masks),
                           rationale=rationale(name, float(p[t]), shares, method), regions_from=source)
        out.append(dataclasses.replace(f, expression=classifier.classes[int(decision_of(classifier).index(p))],
                                       probabilities={c: float(v) for c, v in zip(classifier.classes, p)},
                                       explanation=expl))
    return out

