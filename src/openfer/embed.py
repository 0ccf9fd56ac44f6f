"""Face features for photos and videos (``openfer embed``): every face found, its probabilities and features.

Photos give one row per face (``face_id`` = its index in the photo, best detection first); videos one row per
tracked face per analysed frame (``face_id`` = track id), so features line up with the rows ``openfer analyze``
writes. A file that cannot be read is reported and skipped; Ctrl-C keeps every finished file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from openfer.analyzer import Analyzer
from openfer.io.features import FeatureTable
from openfer.types import Face

log = logging.getLogger(__name__)


@dataclass
class EmbedResult:
    """What an embedding run produced: the table, the files that failed (path, reason), and whether Ctrl-C
    stopped it (the table then holds every file finished before)."""

    table: FeatureTable
    files: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False


def embed_inputs(analyzer: Analyzer, images: list[Path], videos: list[str] | None = None, sampling=None,
                 model: str = "", on_file: Callable[[str], None] | None = None,
                 on_frame: Callable[[int], None] | None = None) -> EmbedResult:
    """Embed every face of ``images`` and of each video in ``videos`` (sampled by ``openfer.video.Sampling``).

    Args:
        analyzer: an ``Analyzer(embed=True)``.
        model: name recorded in the table (default: the classifier's spec name).
        on_file: called with each finished file (progress).
        on_frame: called with the number of frames done in the current video (progress).

    Raises:
        ValueError: the analyzer does not embed.
    """
    if not analyzer.embed_faces:
        raise ValueError("embed_inputs needs Analyzer(embed=True)")
    from openfer.pipeline import BatchSummary, each_image

    clf = analyzer.classifier
    rows: list[tuple[str, int, float, int, Face]] = []
    result = EmbedResult(table=None)  # type: ignore[arg-type]
    try:
        summary = BatchSummary()
        for found in each_image(images, lambda rgb: analyzer.classify(rgb, analyzer.detector.detect(rgb)),
                                None, summary, analyzer.detector):
            result.files += 1
            if found.error:
                result.failed.append((found.source, found.error))
            for i, f in enumerate(found.faces):
                rows.append((found.source, 0, float("nan"), i, f))
            if on_file:
                on_file(found.source)
        for video in videos or []:
            done = _embed_video(analyzer, video, sampling, rows, result, on_frame)
            result.files += 1
            if on_file:
                on_file(video)
            if not done:
                break
    except KeyboardInterrupt:
        result.interrupted = True
    dim = getattr(clf, "feature_dim", None) or (len(rows[0][4].embedding) if rows else 0)
    result.table = FeatureTable.from_faces(rows, clf.classes, model or clf.spec.name, dim)
    return result


def _embed_video(analyzer: Analyzer, video: str, sampling, rows: list, result: EmbedResult,
                 on_frame: Callable[[int], None] | None) -> bool:
    """Append the rows of one video; False when the run was interrupted (stop the batch)."""
    from openfer.video import Sampling, VideoOpenError, open_source, run_video

    try:
        source = open_source(video, sampling or Sampling())
    except VideoOpenError as e:
        result.failed.append((video, str(e)))
        return True

    def keep(frame, faces: list[Face]) -> None:
        for f in faces:
            rows.append((video, frame.index + 1, float(frame.timestamp), -1 if f.track_id is None else
                         int(f.track_id), f))

    run = run_video(analyzer, source, on_faces=keep,
                    on_frame=(lambda r: on_frame(r.frames)) if on_frame else None)
    if run.problems:
        result.failed.extend((video, p) for p in run.problems)
    if run.interrupted:
        result.interrupted = True
    return not run.interrupted


def split_inputs(items: list[str], recursive: bool = True) -> tuple[list[Path], list[str]]:
    """Image files and videos named by files, folders and globs: a folder gives both its photos and its videos
    (``openfer.io.images.expand_inputs`` alone keeps only photos), video files and stream URLs are kept as given."""
    from openfer.io.images import expand_inputs
    from openfer.video.sources import VIDEO_SUFFIXES, is_video_input

    videos = [str(i) for i in items if is_video_input(i)]
    for item in items:
        if Path(item).is_dir():
            found = Path(item).glob("**/*" if recursive else "*")
            videos += sorted(str(f) for f in found if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
    return expand_inputs([i for i in items if not is_video_input(i)], recursive=recursive), videos


def path_key(path: str) -> str:
    """The absolute, resolved form of a file name, so a CSV's paths match the paths a table was embedded under."""
    return str(Path(path).resolve())


def largest_face_rows(table: FeatureTable) -> np.ndarray:
    """Row indices of ``table``, one per source file and frame: the face with the largest box (the labelled
    person of a photo in a ``openfer fit`` CSV), in table order."""
    area = (table.box[:, 2] - table.box[:, 0]) * (table.box[:, 3] - table.box[:, 1])
    best: dict[tuple[str, int], int] = {}
    for i, key in enumerate(zip(table.path, table.frame.tolist())):
        if key not in best or area[i] > area[best[key]]:
            best[key] = i
    return np.array(sorted(best.values()), np.int64)


def largest_face(table: FeatureTable) -> FeatureTable:
    """``table`` reduced to its ``largest_face_rows``."""
    return table.take(largest_face_rows(table))
