"""The streaming video loop: read -> detect (or follow) -> track -> classify (batched across frames) -> smooth -> write.

Three threads overlap: one decodes, one finds and tracks faces (the detector on some frames, optical flow between:
``openfer.track.FaceFollower``), and the calling thread classifies and writes. Memory stays constant: frames wait in
bounded queues (``prefetch``) and in one classification batch (``batch_frames``); rows are written as soon as their
batch is classified; the summary keeps per-track statistics only.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from openfer.analyzer import Analyzer
from openfer.classify.damage import damage_kinds
from openfer.classify.prior import decision_of
from openfer.errors import UsageError
from openfer.io.atomic import write_text_atomic
from openfer.io.rows import RowWriter, row_columns
from openfer.report.summary import VideoSummary
from openfer.track import EmaSmoother, FaceTracker
from openfer.track.follow import DEFAULT_DETECT_EVERY, FaceFollower
from openfer.track.reclassify import DEFAULT_CLASSIFY_EVERY, Reclassifier
from openfer.track.reid import Reidentifier
from openfer.types import Face, ImageResult
from openfer.video.sinks import AnnotatedVideoWriter, PreviewWindow
from openfer.video.sources import Frame, FrameSource

log = logging.getLogger(__name__)


@dataclass
class VideoRunResult:
    """What a video run did.

    Attributes:
        source: the source's name (path, ``camera N`` or URL).
        frames: frames analysed (after frame stepping).
        rows: rows produced (one per face, or one ``success=0`` row per frame without faces).
        faces: faces found, over all frames.
        tracks: distinct track ids given.
        seconds: wall-clock time of the run.
        interrupted: stopped early by Ctrl-C (or q in the preview); the outputs hold everything before that.
        problems: what could not be read or analysed (truncated file, dropped stream, a failed frame).
        summary: the per-track summary (``VideoSummary.to_dict``, plus run information).
    """

    source: str
    frames: int = 0
    rows: int = 0
    faces: int = 0
    tracks: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    problems: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """Analysed frames per second of wall-clock time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Prefetch:
    """Runs an iterable (the source's decoding, or the face finding over decoded frames) in a background thread
    into a bounded queue (OpenCV and ONNX Runtime release the GIL while they work)."""

    _END = object()

    def __init__(self, source, size: int, name: str = "openfer-decode") -> None:
        self._q: queue.Queue = queue.Queue(maxsize=max(1, size))
        self._stop = threading.Event()
        self._source = source
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        item: Any = self._END
        try:
            for frame in self._source:
                if not self._put(frame):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it in its thread
            item = e
        self._put(item)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator:
        while True:
            try:
                item = self._q.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():  # stopped: the producer puts nothing more
                    return
                continue
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run_video(
    analyzer: Analyzer,
    source: FrameSource,
    out: str | Path | None = None,
    summary_path: str | Path | None = None,
    annotate_path: str | Path | None = None,
    tracker: FaceTracker | None = None,
    smoother: EmaSmoother | None = None,
    batch_frames: int = 8,
    prefetch: int = 4,
    preview: bool = False,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
    on_frame: Callable[[VideoRunResult], None] | None = None,
    on_faces: Callable[[Frame, list[Face]], None] | None = None,
    voice=None,
    detect_every: int = DEFAULT_DETECT_EVERY,
    follower: FaceFollower | None = None,
    classify_every: int = DEFAULT_CLASSIFY_EVERY,
    reid: Reidentifier | None = None,
) -> VideoRunResult:
    """Analyse every sampled frame of ``source``, streaming rows, annotated frames and finally the summary.

    Args:
        analyzer: detector + classifier.
        source: frames to analyse (``open_source``, or any ``FrameSource`` such as ``ArraySource``); closed here.
        out: rows file, format from its suffix (.csv, .jsonl, .parquet).
        summary_path: per-track summary JSON, written at the end (also after Ctrl-C).
        annotate_path: annotated video (.mp4, .avi, ...).
        tracker: gives faces their ``face_id`` (default: a new ``FaceTracker``).
        smoother: smooths each track's probabilities (default: none, rows hold per-frame outputs).
        batch_frames: frames whose face crops are classified together. Larger batches are a little faster per
            face; rows are written up to this many frames later and that many frames are held in memory.
        prefetch: frames decoded ahead in a background thread, and frames whose faces are found ahead in another
            (0: decode, find faces, classify and write in this thread, one after the other).
        preview: show annotated frames in a window (q or Esc stops).
        on_rows: called with each frame's rows as they are written (e.g. to collect a DataFrame).
        on_frame: called with the running result after each frame is written (progress bars).
        on_faces: called with each frame and its finished faces (e.g. to collect ``Face.embedding``).
        voice: the recording's ``openfer.audio.voice.VoiceTrack`` (``analyze_sound``): every row gets its voice
            columns at the frame's timestamp (empty without sound) and the summary its ``voice`` section.
        detect_every: run the detector on every this many frames (and whenever a face is lost), following faces
            with optical flow between (``FaceFollower``). 1: detect every frame, the exact and slow way; higher is
            faster but a new face can wait up to ``detect_every - 1`` frames to be found.
        follower: finds and tracks the faces (default: a ``FaceFollower`` over ``analyzer.detector``, ``tracker``
            and ``detect_every``); when given, ``tracker`` and ``detect_every`` are its own.
        classify_every: classify a followed face at least every this many frames, and at once when its aligned
            crop looks different (``openfer.track.Reclassifier``); the frames between reuse its last probabilities.
            1: classify every face on every frame.
        reid: re-identification (``openfer.track.reid.Reidentifier``): a person who comes back after an absence
            or a cut keeps their ``face_id``; a new track's first frames are held back (up to
            ``ReidSettings.max_hold``) until that is decided. The summary gets its ``reid`` section.

    Returns:
        What was done; ``problems`` lists what could not be read (the run itself does not raise for bad frames).

    Ctrl-C stops the run after the frames already detected are classified and written and every output is
    closed, so each output is complete up to that frame.
    """
    classes, damage = analyzer.classifier.classes, damage_kinds(analyzer.classifier)
    result = VideoRunResult(source=source.name)
    follower = follower or FaceFollower(analyzer.detector, tracker or FaceTracker(frame_rate=source.fps or 30.0),
                                        detect_every)
    reclassifier = Reclassifier(analyzer, classify_every)
    summary = VideoSummary(classes)
    writer = video = window = None
    try:  # outputs that cannot be opened (no display, bad suffix) end the run before any frame is read
        window = PreviewWindow() if preview else None
        video = AnnotatedVideoWriter(annotate_path, _analysed_fps(source), **_sound_of(source)) \
            if annotate_path else None
        writer = RowWriter(out, classes, geometry=analyzer.geometry is not None, damage=damage,
                           voice=voice.classes if voice is not None else None) if out else None
    except BaseException:
        for sink in (window, video, source):
            if sink is not None:
                sink.close()
        raise
    track_ids: set[int] = set()
    pending: list[tuple[Frame, list[Face]]] = []
    t0 = time.perf_counter()

    def flush() -> bool:
        batch = pending[:]
        pending.clear()  # taken now: an interrupt while writing this batch must not write it twice
        if not batch:
            return True
        try:
            classified = reclassifier.classify_frames([(fr.image, faces) for fr, faces in batch])
        except Exception as e:  # noqa: BLE001 - the frames are still reported, without expressions
            log.debug("classification failed", exc_info=True)
            result.problems.append(f"classification failed for frames {batch[0][0].index + 1}-"
                                   f"{batch[-1][0].index + 1}: {type(e).__name__}: {e}")
            classified = [faces for _, faces in batch]
        keep_going = True
        for (fr, _), faces in zip(batch, classified):
            if smoother is not None:
                faces = smoother.smooth(faces)
            rows = ImageResult(faces, frame=fr.index, timestamp=fr.timestamp).to_rows(
                classes, geometry=analyzer.geometry is not None, damage=damage)
            if voice is not None:
                at = voice.at(fr.timestamp)
                rows = [{**r, **at} for r in rows]
            if writer:
                writer.write(rows)
            if video:
                video.write(fr.image, faces, fr.timestamp)
            if window and keep_going:
                keep_going = window.show(fr.image, faces)
            summary.add(fr.index, fr.timestamp, faces)
            track_ids.update(f.track_id for f in faces if f.track_id is not None)
            result.frames += 1
            result.rows += len(rows)
            result.faces += len(faces)
            result.tracks = len(track_ids)
            result.seconds = time.perf_counter() - t0
            if on_rows:
                on_rows(rows)
            if on_faces:
                on_faces(fr, faces)
            if on_frame:
                on_frame(result)
        return keep_going

    # Live timestamps are arrival times: decoders and networks hand frames over in bursts, and a reconnect adds a
    # pause. The tracker's motion model would read that jitter as speed (and a pause as a long flight), so live
    # sources are tracked frame by frame; files keep their container times (stepping, variable frame rate).
    live = bool(getattr(source, "live", False))

    def found(frames) -> Iterator[tuple[Frame, list[Face]]]:
        for frame in frames:
            t = None if live else frame.timestamp
            try:
                faces = follower.step(frame.image, t)
            except Exception as e:  # noqa: BLE001 - one bad frame must not end the run
                log.debug("detection failed on frame %d", frame.index, exc_info=True)
                result.problems.append(f"frame {frame.index + 1}: detection failed: {type(e).__name__}: {e}")
                faces = follower.missed(t)
            yield frame, faces

    def identified(frames) -> Iterator[tuple[Frame, list[Face]]]:
        stream = found(frames)
        return stream if reid is None else reid.relabel((fr, fr.timestamp, faces) for fr, faces in stream)

    reader = _Prefetch(source, prefetch) if prefetch > 0 else None
    finder = _Prefetch(identified(reader), prefetch, "openfer-faces") if reader is not None else None
    try:
        for frame, faces in finder if finder is not None else identified(source):
            pending.append((frame, faces))
            if len(pending) >= batch_frames and not flush():
                result.interrupted = True
                break
        else:
            flush()
    except KeyboardInterrupt:
        result.interrupted = True
        try:
            flush()
        except KeyboardInterrupt:  # a second Ctrl-C: give up on the pending frames, still close the outputs
            pass
    except Exception as e:  # noqa: BLE001 - e.g. the decoder thread failed: keep what is done, report it
        log.debug("video run stopped", exc_info=True)
        result.problems.append(f"stopped: {type(e).__name__}: {e}")
        flush()
    finally:
        for stage in (reader, finder):  # the decoder first: the face finder may be waiting for its next frame
            if stage is not None:
                stage.stop()
        source.close()
        result.problems = [*source.problems, *result.problems]
        result.seconds = time.perf_counter() - t0
        for sink in (writer, video, window):
            if sink is not None:
                sink.close()
        result.summary = {"source": source.name, "source_fps": source.fps, "interrupted": result.interrupted,
                          "detect_every": follower.detect_every, "detected_frames": follower.detections,
                          "classify_every": reclassifier.every, "classified_faces": reclassifier.classified,
                          "problems": result.problems, "classes": list(classes), **summary.to_dict()}
        if voice is not None:
            result.summary["voice"] = voice.summary()
        if reid is not None:
            result.summary["reid"] = reid.summary()
        if summary_path:
            write_text_atomic(summary_path, json.dumps(result.summary, indent=2))
    return result


def _sound_of(source: FrameSource) -> dict:
    """Where an annotated video takes its sound from: a video file's own track, from the first analysed time on
    (cameras, streams and image sequences have none to copy)."""
    target = getattr(source, "target", None)
    if getattr(source, "live", True) or not isinstance(target, (str, Path)):
        return {}
    sampling = getattr(source, "sampling", None)
    return {"audio_from": target, "audio_start": sampling.start if sampling is not None else 0.0}


def _analysed_fps(source: FrameSource) -> float:
    """Frames per second of the analysed frames (source rate divided by the stepping), for the output video."""
    fps = source.fps or 30.0
    sampling = getattr(source, "sampling", None)
    if sampling is not None:
        fps /= sampling.every
        if sampling.fps is not None:
            fps = min(fps, sampling.fps)
    return fps


def analyze_video(source: FrameSource | str | Path | int, analyzer: Analyzer | None = None, *, every: int = 1,
                  fps: float | None = None, start: float = 0.0, end: float | None = None, smooth: float = 1.0,
                  **kwargs):
    """Analyse a video and return its rows as a pandas DataFrame (columns: ``openfer.io.rows.row_columns``).

    Args:
        source: a ``FrameSource``, a video path, a camera index or a stream URL.
        analyzer: default ``Analyzer()`` with one CenterFace pass per frame at 640 px (``max_shrink=None``: the
            finer passes photos above 2400 px get would cost 4-5x per 4K frame).
        every, fps, start, end: which frames to analyse, as ``openfer analyze --every/--fps/--start/--end``
            (``Sampling``); for a path, camera or URL only (a ``FrameSource`` you built samples its own frames).
        smooth: weight of the newest frame in each face's moving average of probabilities (1 = off; 0.3 steadies
            flickering labels), as ``--smooth``.
        **kwargs: passed to ``run_video`` (``out``, ``summary_path``, ``annotate_path``, ``tracker``...).

    Raises:
        ValueError: a sampling option out of range, or given with a ``FrameSource``.

    The DataFrame grows with the video (about 0.5 kB per row); for hours of video write ``out=`` and read it
    back in chunks instead. The run's ``VideoRunResult`` is in ``df.attrs["result"]``.

    Example:
        >>> import skimage.data
        >>> from openfer.video import ArraySource, analyze_video
        >>> frames = [skimage.data.astronaut()] * 3 + [skimage.data.chelsea()]   # 3 frames with a face, 1 without
        >>> df = analyze_video(ArraySource(frames, fps=25))
        >>> df[["frame", "timestamp", "face_id", "success"]].values.tolist()
        [[1.0, 0.0, 0.0, 1.0], [2.0, 0.04, 0.0, 1.0], [3.0, 0.08, 0.0, 1.0], [4.0, 0.12, -1.0, 0.0]]
    """
    import pandas as pd

    from openfer.video.sources import Sampling, open_source

    sampling = Sampling(every=every, fps=fps, start=start, end=end)  # checks the ranges
    if isinstance(source, (str, Path, int)):
        src = open_source(source, sampling)
    elif sampling != Sampling():
        raise UsageError("every/fps/start/end apply to a path, camera or URL; a FrameSource samples its own frames "
                         "(e.g. open_source(path, Sampling(every=5)))")
    else:
        src = source
    if analyzer is None:  # as `openfer analyze video.mp4`: one detection pass per frame, whatever its size
        from openfer.detect import load_detector

        analyzer = Analyzer(detector=load_detector("centerface", max_shrink=None))
    if "smoother" not in kwargs and smooth != 1.0:
        kwargs["smoother"] = EmaSmoother(alpha=smooth, decision=decision_of(analyzer.classifier))
    rows: list[dict[str, Any]] = []
    result = run_video(analyzer, src, on_rows=rows.extend, **kwargs)
    voice = kwargs.get("voice")
    df = pd.DataFrame(rows, columns=row_columns(analyzer.classifier.classes, analyzer.geometry is not None,
                                                voice.classes if voice is not None else None,
                                                damage=damage_kinds(analyzer.classifier)))
    df.attrs["result"] = result
    return df
