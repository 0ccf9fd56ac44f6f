"""The blocking work behind image requests (run on worker threads): decode at the size the detector needs, analyse,
and explain within a face cap and a time budget that stops the work itself, not just the wait for it."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
from fastapi import HTTPException

from openfer.analyzer import Analyzer
from openfer.detect.base import detection_passes
from openfer.errors import ImageTooLargeError
from openfer.io.images import ImageReadError, ReducedImage, read_image_reduced
from openfer.service.config import ServiceConfig
from openfer.types import Face, ImageResult

#: Crops per model call while explaining: the deadline is checked between calls (about 0.1-0.3 s each on a CPU).
EXPLAIN_BATCH = 128


class BudgetExceeded(Exception):
    """The request's time budget ran out; the work stops at the next check."""


class Deadline:
    """A point in time (``time.monotonic``) after which ``check`` raises ``BudgetExceeded``."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.at = seconds, time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise BudgetExceeded(f"time budget of {self.seconds:g} s used up")


class BudgetedClassifier:
    """Wraps a classifier so that every ``predict_proba`` runs in batches of ``batch`` crops and checks the deadline
    before each: an occlusion or RISE explanation (hundreds of masked crops) stops within one batch of its budget."""

    def __init__(self, classifier: Any, deadline: Deadline, batch: int = EXPLAIN_BATCH) -> None:
        self.classifier, self.deadline, self.batch = classifier, deadline, batch

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        parts = []
        for i in range(0, len(crops), self.batch):
            self.deadline.check()
            parts.append(self.classifier.predict_proba(crops[i : i + self.batch]))
        return np.concatenate(parts)

    def __getattr__(self, name: str) -> Any:  # classes, input_size, spec...: the wrapped model's
        return getattr(self.classifier, name)


def detection_side(analyzer: Analyzer) -> Callable[[int, int], int] | None:
    """The longer side an image of a given size must keep for ``analyzer``'s detector to find what it finds in the
    full image (its finest pass), or None for full resolution: a detector that cannot work on reduced images, or
    geometry, which reads full-size pixels."""
    detector = analyzer.detector
    if not hasattr(detector, "for_reduced") or analyzer.geometry is not None:
        return None
    return lambda w, h: max(detector.sides(w, h))


def decode(analyzer: Analyzer, data: bytes, cfg: ServiceConfig) -> ReducedImage:
    """The upload's pixels at the size detection needs (a photo far larger than the detector's finest pass is
    decoded at 1/k size, so a 6300 px PNG does not cost 1.5 GB), or a 413/422 saying why it cannot be read."""
    try:
        return read_image_reduced(data, detection_side(analyzer), max_pixels=cfg.max_pixels)
    except ImageReadError as e:
        raise HTTPException(413 if isinstance(e, ImageTooLargeError) else 422, f"cannot read the image: {e}") from None


def detect(analyzer: Analyzer, image: ReducedImage, cfg: ServiceConfig) -> list[Face]:
    """Faces of the decoded image (its pixels), found by passes chosen for the original's size, the finer ones in
    tiles of ``cfg.detect_tile`` px (the model's memory grows with the pixels of one run)."""
    detector = analyzer.detector
    if hasattr(detector, "for_reduced"):
        detector = detector.for_reduced(image.factor, tile=cfg.detect_tile)
    return detector.detect(image.rgb)


def to_original(faces: list[Face], factor: int) -> list[Face]:
    """``faces`` found in an image reduced ``factor`` times, in the original's pixels (box, landmarks, the
    explanation's crop-to-image transform)."""
    return faces if factor == 1 else [f.scaled(factor) for f in faces]


def answer(analyzer: Analyzer, image: ReducedImage, faces: list[Face], started: float, heatmap: bool = True,
           **extra) -> dict:
    """The JSON answer of ``/v1/analyze`` and ``/v1/explain``: the ``ImageResult`` record of the original image
    (faces, boxes and sizes in its pixels), the model and the time taken."""
    result = ImageResult(to_original(faces, image.factor), width=image.width, height=image.height,
                         detect_sides=detection_passes(analyzer.detector, image.width, image.height))
    return {**result.to_dict(heatmap=heatmap), "model": analyzer.classifier.spec.name,
            "seconds": round(time.perf_counter() - started, 4), **extra}


def analyze_bytes(analyzer: Analyzer, data: bytes, cfg: ServiceConfig) -> dict:
    """Decode and analyse one uploaded image."""
    t = time.perf_counter()
    image = decode(analyzer, data, cfg)
    faces = analyzer.classify(image.rgb, detect(analyzer, image, cfg))
    return answer(analyzer, image, faces, t)


def explain_bytes(analyzer: Analyzer, data: bytes, cfg: ServiceConfig, method: str, target: str | None,
                  heatmap: bool) -> dict:
    """Decode one uploaded image and explain its ``cfg.max_explain_faces`` largest faces within
    ``cfg.explain_timeout`` seconds; every face is in the answer, and ``notes`` say which were not explained and
    why."""
    from openfer.explain import explain_faces

    t = time.perf_counter()
    deadline = Deadline(cfg.explain_timeout)
    image = decode(analyzer, data, cfg)
    try:
        model = analyzer.explained_classifier(method)
    except ImportError as e:
        raise HTTPException(422, f"{method} is not available on this server: {e}") from None
    # Grad-CAM needs the PyTorch model itself (one backward pass per face: the check between faces suffices).
    budgeted = model if method.startswith("gradcam") else BudgetedClassifier(model, deadline)
    faces = analyzer.classify(image.rgb, detect(analyzer, image, cfg))
    chosen = sorted(range(len(faces)), key=lambda i: -_area(faces[i]))[:cfg.max_explain_faces]
    notes = []
    if len(faces) > len(chosen):
        notes.append(f"{len(faces)} faces found; the {len(chosen)} largest are explained (this server's "
                     f"max_explain_faces); crop the photo to explain others")
    try:
        for i in chosen:
            deadline.check()
            faces[i] = explain_faces(image.rgb, [faces[i]], budgeted, method, target)[0]
    except BudgetExceeded:
        done = sum(f.explanation is not None for f in faces)
        notes.append(f"the time budget of {cfg.explain_timeout:g} s ran out after {done} of {len(chosen)} faces; "
                     "the rest have no explanation (try occlusion, the cheaper method, or fewer faces)")
    out = answer(analyzer, image, faces, t, heatmap, explained=sum(f.explanation is not None for f in faces),
                 notes=notes)
    for d in out["faces"]:
        d.setdefault("explanation", None)  # a face not explained says so
    return out


def _area(face: Face) -> float:
    x1, y1, x2, y2 = face.box
    return (x2 - x1) * (y2 - y1)
