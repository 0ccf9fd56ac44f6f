"""Explanations for video: every tracked face is explained on every Nth frame it appears in."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from openfer.analyzer import Analyzer
from openfer.errors import UsageError
from openfer.explain.core import check_request, explain_faces
from openfer.explain.overlay import render_explanations
from openfer.io.images import mark_output_folder
from openfer.io.writers import JsonlWriter
from openfer.types import ImageResult

log = logging.getLogger(__name__)


@dataclass
class VideoExplainResult:
    """What ``explain_video`` did: frames read, faces explained, tracks seen, problems, whether Ctrl-C stopped it."""

    frames: int = 0
    explained: int = 0
    tracks: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    interrupted: bool = False


def explain_video(analyzer: Analyzer, source, out_dir: str | Path, every_track: int = 30, method: str = "occlusion",
                  classifier=None, target: str | None = None, pictures: bool = True, heatmap_json: bool = False,
                  on_frame: Callable[[VideoExplainResult], None] | None = None, **params) -> VideoExplainResult:
    """Track the faces of ``source`` and explain each track's face on its 1st, (N+1)th, (2N+1)th... frame.

    Writes one JSON Lines record per frame with explained faces to ``out_dir/explanations.jsonl``
    (``ImageResult.to_dict``: ``frame`` from 1, ``timestamp``, ``faces`` with ``face_id`` and ``explanation``) and,
    with ``pictures``, ``out_dir/frame_<frame>.png`` (its ``annotated``).

    Args:
        analyzer: detector (and the classifier explained unless ``classifier`` is given).
        source: an ``openfer.video`` frame source (``open_source``; its ``Sampling`` steps frames first).
        every_track: explain a track on every Nth frame (of the sampled ones) it is seen in. Explanations cost
            0.1-5 s per face on a CPU (see docs/explain.md), so 30 on a 30 frames/s video is about one per person
            per second of video.
        heatmap_json: include the heatmaps in the records (about 15 kB per face).
        **params: method settings, see ``openfer.explain.heatmaps``.
    """
    from openfer.track import FaceTracker

    clf = classifier or analyzer.classifier
    check_request(clf, method, target)
    if every_track < 1:
        raise UsageError(f"every_track must be >= 1, got {every_track}")
    out_dir = Path(out_dir)
    mark_output_folder(out_dir)
    tracker = FaceTracker(frame_rate=source.fps or 30.0)
    seen: dict[int, int] = {}
    result = VideoExplainResult()
    writer = JsonlWriter(out_dir / "explanations.jsonl")
    try:
        for frame in source:
            result.frames += 1
            try:
                faces = tracker.update(analyzer.detector.detect(frame.image), frame.timestamp)
                due = []
                for f in faces:
                    if f.track_id is None:
                        continue
                    result.tracks.add(f.track_id)
                    if seen.get(f.track_id, 0) % every_track == 0:
                        due.append(f)
                    seen[f.track_id] = seen.get(f.track_id, 0) + 1
                if due:
                    if analyzer.geometry is not None:  # regions from the face mesh
                        due = analyzer.geometry.estimate(frame.image, due)
                    explained = explain_faces(frame.image, due, clf, method, target, **params)
                    picture = out_dir / f"frame_{frame.index + 1:06d}.png" if pictures else None
                    if picture:
                        Image.fromarray(render_explanations(frame.image, explained)).save(picture)
                    record = ImageResult(explained, getattr(source, "name", None), frame.image.shape[1],
                                         frame.image.shape[0], frame=frame.index, timestamp=frame.timestamp,
                                         annotated=picture and str(picture))
                    writer.write(record.to_dict(heatmap=heatmap_json))
                    result.explained += len(explained)
            except Exception as e:  # noqa: BLE001 - one bad frame must not end the run
                log.debug("frame %d failed", frame.index, exc_info=True)
                result.problems.append(f"frame {frame.index + 1}: {type(e).__name__}: {e}")
            if on_frame:
                on_frame(result)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        source.close()
        writer.close()
        result.problems = [*getattr(source, "problems", []), *result.problems]
    return result
