"""``Analyzer``: detect -> align -> classify on one image, the library's main entry point."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from openfer.align import align_faces
from openfer.classify import OnnxClassifier, load_classifier
from openfer.classify.damage import damage_kinds
from openfer.classify.prior import decision_of
from openfer.detect import Detector, load_detector
from openfer.detect.base import detection_passes
from openfer.errors import UsageError
from openfer.io.images import read_image, to_rgb
from openfer.types import Face, ImageResult

if TYPE_CHECKING:
    from openfer.geometry import GeometryEstimator


class Analyzer:
    """Finds every face in an image and recognises its expression.

    Args:
        detector: a ``Detector`` or a detector name (``"centerface"``, ``"haar"``).
        classifier: an ``OnnxClassifier`` or a registered model name (``openfer models``).
        geometry: an optional ``openfer.geometry.GeometryEstimator`` (``[geometry]`` extra); when given, every face
            also gets ``Face.geometry`` (478 landmarks, head pose, gaze, blendshapes, AU proxies, quality flags).
        prior: decision prior of a classifier given by name: ``"training"`` (default, best accuracy on everyday
            faces) or ``"balanced"`` (every expression equally likely a priori: rare ones such as disgust, fear and
            contempt are found more often, at some cost in accuracy; ``openfer.classify.prior``).
        embed: also give every face its ``embedding`` (the expression network's features, same pass; for
            ``openfer embed``, heads and adaptation).
        threads: ONNX Runtime intra-op threads of the models this analyzer loads by name (0: ONNX Runtime's
            default, one per core). Several analyzers on one machine (processes of a cluster, a service's
            workers) each set their share of the cores, so they do not fight over all of them.

    Example:
        >>> import openfer, skimage.data
        >>> faces = openfer.Analyzer().analyze(skimage.data.astronaut())
        >>> len(faces), sum(faces[0].probabilities.values()).__round__(3)
        (1, 1.0)
    """

    def __init__(self, detector: Detector | str = "centerface", classifier: OnnxClassifier | str = "default",
                 geometry: GeometryEstimator | None = None, prior: str | None = None, embed: bool = False,
                 threads: int = 0) -> None:
        if threads < 0:
            raise UsageError(f"threads must be 0 (ONNX Runtime's default) or more, got {threads}")
        if isinstance(detector, str):
            detector = load_detector(detector, **({"threads": threads} if detector == "centerface" else {}))
        self.detector = detector
        if isinstance(classifier, str):
            classifier = load_classifier(classifier, prior=prior or "training", threads=threads)
        elif prior is not None and prior != getattr(classifier, "prior", "training"):
            raise UsageError(f"the classifier given uses prior {getattr(classifier, 'prior', 'training')!r}, not "
                             f"{prior!r}: pass prior= to load_classifier instead")
        self.classifier = classifier
        self.geometry = geometry
        self.embed_faces = embed

    def for_video(self) -> Analyzer:
        """This analyzer for video frames: the same models (shared, nothing is loaded) with a detector that makes
        one pass per frame (its ``for_video``, when it searches big photos at finer scales too)."""
        twin = copy.copy(self)
        if hasattr(self.detector, "for_video"):
            twin.detector = self.detector.for_video()
        return twin

    def analyze(self, image: str | Path | np.ndarray) -> list[Face]:
        """Faces in ``image`` (a file path, or an RGB uint8 array [H, W, 3]; grey/RGBA arrays are converted).

        Returns:
            one ``Face`` per detected face, highest detection score first; an image without faces gives [].

        Raises:
            openfer.io.ImageReadError: the path cannot be read as an image.
        """
        return list(self.result(image).faces)

    def result(self, image: str | Path | np.ndarray) -> ImageResult:
        """``analyze`` as an ``ImageResult``: the faces with the image's path (for a file), size and detector
        passes; its ``to_dict()`` is the record ``openfer analyze`` writes to JSON Lines, ``to_rows(classes)`` its
        table rows.

        Raises:
            openfer.io.ImageReadError: the path cannot be read as an image.
        """
        named = isinstance(image, (str, Path))
        rgb = read_image(image) if named else to_rgb(image)
        h, w = rgb.shape[:2]
        return ImageResult(self.classify(rgb, self.detector.detect(rgb)), str(image) if named else None, w, h,
                           detect_sides=detection_passes(self.detector, w, h))

    def analyze_batch(self, images: list[str | Path | np.ndarray]) -> list[list[Face]]:
        """``analyze`` for many images, with the faces of all of them classified in one batched model call.

        Raises ``ImageReadError`` for the first unreadable path; use ``openfer.pipeline.run_images`` to go on
        past bad files.
        """
        rgbs = [read_image(im) if isinstance(im, (str, Path)) else to_rgb(im) for im in images]
        detected = [self.detector.detect(rgb) for rgb in rgbs]
        crops = [self._crops(rgb, faces) for rgb, faces in zip(rgbs, detected) if faces]
        if not crops:
            return [[] for _ in rgbs]
        detected = [self._with_geometry(rgb, faces) for rgb, faces in zip(rgbs, detected)]
        probs = iter(zip(*self._predict(np.concatenate(crops))))
        return [self._with_probs(faces, [next(probs) for _ in faces]) for faces in detected]

    def classify(self, rgb: np.ndarray, faces: list[Face], embed: bool | None = None) -> list[Face]:
        """New ``Face`` objects with expression and probabilities (and ``geometry`` when this analyzer has a
        geometry stage), for already-detected ``faces`` in ``rgb``; with ``embed`` (default: this analyzer's
        setting) also their ``embedding``."""
        if not faces:
            return []
        outputs = self._predict(self._crops(rgb, faces), embed)
        return self._with_probs(self._with_geometry(rgb, faces), list(zip(*outputs)))

    def embed(self, image: str | Path | np.ndarray) -> list[Face]:
        """``analyze`` with every face's ``embedding`` (float32 [D], the expression network's features) filled in."""
        rgb = read_image(image) if isinstance(image, (str, Path)) else to_rgb(image)
        return self.classify(rgb, self.detector.detect(rgb), embed=True)

    def classify_frames(self, frames: list[tuple[np.ndarray, list[Face]]]) -> list[list[Face]]:
        """``classify`` for the faces of many frames (RGB image, its detected faces) in one batched model call.

        The video pipeline uses this to batch the crops of several frames, which is cheaper per face than one call
        per frame. Input faces are not changed; fields such as ``track_id`` are kept.
        """
        crops = [self._crops(rgb, faces) for rgb, faces in frames if faces]
        if not crops:
            return [[] for _ in frames]
        probs = iter(zip(*self._predict(np.concatenate(crops))))
        return [self._with_probs(self._with_geometry(rgb, faces), [next(probs) for _ in faces]) if faces else []
                for rgb, faces in frames]

    def _predict(self, crops: np.ndarray, embed: bool | None = None) -> tuple[list, list, list]:
        """Per face: probabilities [K], the damage probe's kinds [4] or None (models without one), and when
        ``embed`` (default: this analyzer's setting) features [D], else None."""
        embed = self.embed_faces if embed is None else embed
        if hasattr(self.classifier, "predict_outputs"):
            out = self.classifier.predict_outputs(crops, features=embed)
            probs, damage, feats = out.probabilities, out.damage, out.features
        elif embed:
            (probs, feats), damage = self.classifier.predict_features(crops), None
        else:
            probs, damage, feats = self.classifier.predict_proba(crops), None, None
        nones = [None] * len(crops)
        return list(probs), nones if damage is None else list(damage), nones if feats is None else list(feats)

    def _with_geometry(self, rgb: np.ndarray, faces: list[Face]) -> list[Face]:
        return self.geometry.estimate(rgb, faces) if self.geometry is not None and faces else faces

    def explain(self, image: str | Path | np.ndarray, method: str = "occlusion", classifier=None,
                target: str | None = None, **params) -> list[Face]:
        """``analyze`` plus an ``explanation`` on every face (``openfer.explain``): heatmap, region shares, sentence.

        Args:
            image: a file path or an RGB uint8 array.
            method: ``occlusion`` or ``rise`` (any model), ``gradcam`` or ``gradcam++`` (PyTorch models).
            classifier: the model to explain instead of this analyzer's, e.g.
                ``openfer.explain.TorchClassifier.from_checkpoint("runs/x/best.pt")``. For Grad-CAM without one,
                this analyzer's ONNX model is run in PyTorch (``TorchClassifier.from_onnx``, [train] extra).
            target: class to explain on every face (default: each face's top class).
            **params: method settings (``patch``, ``stride``; ``n_masks``, ``grid``, ``seed``; ``layer``).
        """
        from openfer.explain import explain_faces

        rgb = read_image(image) if isinstance(image, (str, Path)) else to_rgb(image)
        faces = self._with_geometry(rgb, self.detector.detect(rgb))  # with a geometry stage: regions from the mesh
        return explain_faces(rgb, faces, classifier or self.explained_classifier(method), method, target, **params)

    def explained_classifier(self, method: str):
        """The model ``explain`` explains with ``method``: this analyzer's, or for Grad-CAM its PyTorch twin
        (``TorchClassifier.from_onnx``, made once, [train] extra)."""
        if not method.startswith("gradcam"):
            return self.classifier
        if getattr(self, "_torch_twin", None) is None:
            from openfer.explain import TorchClassifier

            self._torch_twin = TorchClassifier.from_onnx(self.classifier)
        return self._torch_twin

    def _crops(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        return face_crops(rgb, faces, self.classifier.input_size, self.classifier.channels)

    def _with_probs(self, faces: list[Face], outputs) -> list[Face]:
        """New faces with expression, probabilities, damage and embedding from ``outputs``: one (probabilities,
        damage or None, features or None) triple per face (``_predict``)."""
        classes, decision = self.classifier.classes, decision_of(self.classifier)
        kinds = damage_kinds(self.classifier)
        return [
            dataclasses.replace(f, expression=classes[int(decision.index(p))],
                                probabilities={c: float(v) for c, v in zip(classes, p)},
                                damage={} if d is None else {k: float(v) for k, v in zip(kinds, d)}, embedding=e)
            for f, (p, d, e) in zip(faces, outputs)
        ]


def face_crops(rgb: np.ndarray, faces: list[Face], size: int, channels: int) -> np.ndarray:
    """The crops ``Analyzer`` feeds a classifier: each face aligned to ``size`` px, grey (uint8 [N, S, S]) when
    ``channels`` is 1, else RGB [N, S, S, 3]. Evaluations that reuse detections call this to crop as a user's
    ``Analyzer`` would."""
    src = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if channels == 1 else rgb
    return align_faces(src, faces, size)
