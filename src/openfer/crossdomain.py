"""Cross-domain evaluation on labelled photos (muxspace news photos and film stills, the London portraits).

These are whole photos, not face crops, so they are scored as a user would meet them: CenterFace finds the faces,
the highest-scoring one per image is aligned at the classifier's own input size and channels (``Analyzer``'s crops)
and classified. An image where no face is found counts as a miss. Detection is the slow part, so it runs once per
image and its result (box, score, 5 landmarks) is reused by every classifier, optionally cached in an ``.npz``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openfer.errors import UnknownNameError, UnreadableInputError, UsageError
from openfer.evaluate import calibration_metrics, check_outputs, classification_metrics, restrict, restricted_labels
from openfer.labels import CANONICAL8, canonical
from openfer.types import Face

log = logging.getLogger(__name__)

#: ``$OPENFER_SHARED`` (default ``../shared``) holds ``data/<name>`` for the photo sets.
SHARED_ENV = "OPENFER_SHARED"
#: Share of people (percent, by a stable hash of the person's name) in the person-disjoint ``test`` split, and
#: the next ``VAL_PERCENT`` in ``val`` (for choices made on this domain when its ``train`` part is trained on).
TEST_PERCENT = 20
VAL_PERCENT = 10
#: A class is scored only when the whole set has at least this many images of it (muxspace's fear, 21 images,
#: and contempt, 9, are too few for a recall that means anything; they are reported as left out).
MIN_IMAGES = 50
#: Prediction index of an image without a detected face, one past the scored classes.
NO_FACE = "(no face)"
SPLITS = ("all", "train", "val", "test")


def shared_data_path(name: str) -> Path:
    """``$OPENFER_SHARED/data/<name>``, by default ``../shared/data/<name>`` (like ``default_npz_path``)."""
    return Path(os.environ.get(SHARED_ENV, "../shared")) / "data" / name


def person_split(person: str) -> str:
    """``"test"`` for about ``TEST_PERCENT`` % of people, ``"val"`` for the next ``VAL_PERCENT`` %, else ``"train"``:
    sha1 of the name, mod 100. Stable across runs, machines and dataset versions, and never splits one person's
    images. ``split="train"`` (70 %) is what a model may train on; ``test`` is never trained on or chosen on."""
    bucket = int(hashlib.sha1(person.encode("utf-8")).hexdigest(), 16) % 100
    return "test" if bucket < TEST_PERCENT else "val" if bucket < TEST_PERCENT + VAL_PERCENT else "train"


@dataclass(frozen=True)
class PhotoSet:
    """Labelled photos of one folder (``labels.csv`` with ``file``, ``emotion``, ``person`` + the images).

    Attributes:
        name: the folder's name (``muxspace``, ``london``).
        root: the folder.
        files: image paths relative to ``root``, one per row.
        labels: int64 [N] index into ``classes``.
        persons: who is in each image (splits keep a person on one side).
        classes: the scored classes, canonical order.
        split: ``all``, ``train``, ``val`` or ``test`` (person-disjoint, ``person_split``).
        left_out: classes not scored (fewer than ``MIN_IMAGES`` images in the whole set) -> images dropped.
    """

    name: str
    root: Path
    files: tuple[str, ...]
    labels: np.ndarray
    persons: tuple[str, ...]
    classes: tuple[str, ...]
    split: str
    left_out: dict[str, int]

    def __len__(self) -> int:
        return len(self.files)

    def split_mask(self, split: str) -> np.ndarray:
        """bool [N]: the rows of one person-disjoint split (``all``: every row)."""
        if split == "all":
            return np.ones(len(self), bool)
        return np.array([person_split(p) == split for p in self.persons], bool)

    def subset(self, split: str) -> "PhotoSet":
        """The rows of one person-disjoint split (``all`` returns this set)."""
        if split == "all":
            return self
        keep = self.split_mask(split)
        return PhotoSet(self.name, self.root, tuple(f for f, k in zip(self.files, keep) if k), self.labels[keep],
                        tuple(p for p, k in zip(self.persons, keep) if k), self.classes, split, self.left_out)


def is_photo_folder(path: str | Path) -> bool:
    """True for a folder with a ``labels.csv`` (muxspace, london layout)."""
    return Path(path).is_dir() and (Path(path) / "labels.csv").is_file()


def load_photo_set(path: str | Path, split: str = "all", min_images: int = MIN_IMAGES) -> PhotoSet:
    """Read a photo folder's ``labels.csv`` (``file``, ``emotion``, optional ``person``; file names relative to it).

    Args:
        path: the folder, e.g. ``shared_data_path("muxspace")``.
        split: ``all``, or the person-disjoint ``train`` / ``val`` / ``test`` part (rows without a person are
            their own).
        min_images: classes with fewer images in the whole set are left out of scoring (``PhotoSet.left_out``).
    """
    root = Path(path)
    if split not in SPLITS:
        raise UnknownNameError(f"unknown split {split!r} for a photo folder; use one of {', '.join(SPLITS)}")
    if not is_photo_folder(root):
        raise FileNotFoundError(f"{root} is not a photo folder with a labels.csv (set {SHARED_ENV} or pass the path)")
    with open(root / "labels.csv", newline="") as f:
        reader = csv.DictReader(f)
        if not {"file", "emotion"} <= set(reader.fieldnames or []):
            raise UnreadableInputError(f"{root / 'labels.csv'} needs columns file and emotion, has {reader.fieldnames}")
        rows = [(r["file"], canonical(r["emotion"]), r.get("person") or r["file"]) for r in reader]
    if not rows:
        raise UnreadableInputError(f"{root / 'labels.csv'} has no rows")
    counts = Counter(label for _, label, _ in rows)
    classes = tuple(c for c in CANONICAL8 if counts[c] >= min_images)
    left_out = {c: counts[c] for c in CANONICAL8 if 0 < counts[c] < min_images}
    if not classes:
        raise UsageError(f"no class in {root} has {min_images} images or more: nothing to score")
    kept = [r for r in rows if r[1] in classes]
    full = PhotoSet(root.name, root, tuple(r[0] for r in kept), np.array([classes.index(r[1]) for r in kept], np.int64),
                    tuple(r[2] for r in kept), classes, "all", left_out)
    return full.subset(split)


@dataclass(frozen=True)
class PhotoDetections:
    """The highest-scoring face of each photo, as arrays (one row per photo).

    Attributes:
        found: bool [N], False where the detector found no face.
        boxes: float32 [N, 4] (x1, y1, x2, y2) pixels; NaN where not found.
        scores: float32 [N] detection score; 0 where not found.
        landmarks: float32 [N, 5, 2] pixels; NaN where not found.
    """

    found: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def take(self, keep: np.ndarray) -> "PhotoDetections":
        """The rows where bool [N] ``keep`` is True (e.g. ``PhotoSet.split_mask``)."""
        return PhotoDetections(self.found[keep], self.boxes[keep], self.scores[keep], self.landmarks[keep])

    def face(self, i: int) -> Face | None:
        """Row ``i`` as a ``Face`` (None when no face was found)."""
        if not self.found[i]:
            return None
        return Face(box=tuple(self.boxes[i]), score=float(self.scores[i]), landmarks=self.landmarks[i])


def detector_key(detector) -> str:
    """What makes two detectors' results interchangeable in a cache: the class and its constructor settings."""
    import inspect

    names = inspect.signature(type(detector)).parameters
    settings = {k: getattr(detector, k) for k in sorted(names)
                if isinstance(getattr(detector, k, None), (int, float, str, bool))}
    return json.dumps({"detector": type(detector).__name__, **settings}, sort_keys=True)


def detect_photos(photos: PhotoSet, detector, cache: str | Path | None = None,
                  on_done: Callable[[], None] | None = None) -> PhotoDetections:
    """Detect the best face of every photo, reading and extending the ``.npz`` ``cache`` when given (rows are keyed
    by file name; a cache written by a detector with other settings is ignored and rewritten).

    Raises:
        openfer.io.ImageReadError: a listed image cannot be read.
    """
    from openfer.io.images import read_image

    key = detector_key(detector)
    known: dict[str, tuple] = {}
    cache = Path(cache) if cache else None
    if cache and cache.is_file():
        with np.load(cache, allow_pickle=False) as npz:
            d = {k: npz[k] for k in npz.files}  # each npz[k] access decompresses again: read every array once
        if str(d["detector"]) == key and str(d["root"]) == str(photos.root.resolve()):
            known = {f: (d["found"][i], d["boxes"][i], d["scores"][i], d["landmarks"][i])
                     for i, f in enumerate(d["files"])}
        else:
            log.warning("%s was written for another folder or detector settings: detecting again", cache)
    n = len(photos)
    found, scores = np.zeros(n, bool), np.zeros(n, np.float32)
    boxes, landmarks = np.full((n, 4), np.nan, np.float32), np.full((n, 5, 2), np.nan, np.float32)
    for i, f in enumerate(photos.files):
        if f not in known:
            faces = detector.detect(read_image(photos.root / f))
            best = max(faces, key=lambda face: face.score) if faces else None
            known[f] = (best is not None, best.box if best else np.nan, best.score if best else 0.0,
                        best.landmarks if best else np.nan)
        found[i], boxes[i], scores[i], landmarks[i] = known[f]
        if on_done:
            on_done()
    if cache:
        files = sorted(known)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, files=np.array(files), detector=key, root=str(photos.root.resolve()),
                 found=np.array([known[f][0] for f in files], bool),
                 boxes=np.array([np.broadcast_to(known[f][1], 4) for f in files], np.float32),
                 scores=np.array([known[f][2] for f in files], np.float32),
                 landmarks=np.array([np.broadcast_to(known[f][3], (5, 2)) for f in files], np.float32))
    return PhotoDetections(found, boxes, scores, landmarks)


def photo_crops(photos: PhotoSet, detections: PhotoDetections, size: int, channels: int) -> np.ndarray:
    """The aligned crop of each detected face (``Analyzer``'s crops), uint8 [n_found, S, S(, 3)] in photo order."""
    from openfer.analyzer import face_crops
    from openfer.io.images import read_image

    shape = (size, size) if channels == 1 else (size, size, 3)
    out = np.empty((int(detections.found.sum()),) + shape, np.uint8)
    j = 0
    for i, f in enumerate(photos.files):
        face = detections.face(i)
        if face is not None:
            out[j] = face_crops(read_image(photos.root / f), [face], size, channels)[0]
            j += 1
    return out


def evaluate_photos(classifier, photos: PhotoSet, detections: PhotoDetections,
                    crops: np.ndarray | None = None) -> dict:
    """Metrics of ``classifier`` on a photo set, its label (``decision``) restricted to the scored classes.

    The top level scores every image, a miss (no face found) counting as wrong (``confusion`` gets a
    ``NO_FACE`` column); ``detected_only`` scores the images with a face, and adds NLL and ECE.

    Args:
        crops: ``photo_crops`` at the classifier's input size and channels (computed when None; pass them to
            score several classifiers that read the same crops).
    """
    if crops is None:
        crops = photo_crops(photos, detections, classifier.input_size, classifier.channels)
    found = detections.found
    full = classifier.predict_proba(crops)
    p = restrict(full, classifier.classes, photos.classes)
    k = len(photos.classes)
    pred = np.full(len(photos), k, np.int64)
    pred[found] = restricted_labels(classifier, full, photos.classes)
    result = classification_metrics(photos.labels, pred, photos.classes + (NO_FACE,))
    result["support"].pop(NO_FACE)
    detected_only = classification_metrics(photos.labels[found], pred[found], photos.classes)
    detected_only.update(calibration_metrics(p, photos.labels[found]))
    result.update({"detected": int(found.sum()), "missed": int((~found).sum()), "detected_only": detected_only,
                   "left_out": photos.left_out, "protocol": f"{photos.name}, {k} classes, detect + align",
                   "split": photos.split, "data": str(photos.root)})
    return result


def evaluate_photo_folder(classifier, path: str | Path, split: str = "all", detector=None,
                          cache: str | Path | None = None, on_done: Callable[[], None] | None = None,
                          min_images: int = MIN_IMAGES) -> dict:
    """``evaluate_photos`` on a photo folder (``load_photo_set``), detecting with ``detector`` (default: CenterFace
    as ``Analyzer`` uses it)."""
    from openfer.detect import load_detector

    photos = load_photo_set(path, split, min_images)
    check_outputs(classifier.classes, photos.classes)  # before the slow part, not after it
    detections = detect_photos(photos, detector or load_detector("centerface"), cache, on_done)
    return evaluate_photos(classifier, photos, detections)
