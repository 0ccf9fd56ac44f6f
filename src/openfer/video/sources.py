"""Frame sources: video files, folders of frames, cameras and network streams, as one iterator of ``Frame``.

Every source yields RGB frames with their number in the source and a timestamp, applies frame stepping and a
start/end window, and records what went wrong (a truncated file, a dropped stream) in ``problems`` instead of
raising mid-run, so the pipeline can finish its outputs.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import cv2
import numpy as np

from openfer.errors import UnreadableInputError, UsageError

log = logging.getLogger(__name__)

#: File endings routed to the video pipeline by ``openfer analyze``.
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                            ".ts", ".mts", ".m2ts", ".3gp", ".ogv"})
#: URL schemes opened as network streams.
#: Largest video frame (width x height) a ``CaptureSource`` opens by default: 8K (7680 x 4320) and a margin.
MAX_FRAME_PIXELS = 40_000_000
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


class VideoOpenError(UnreadableInputError):
    """A video, camera or stream could not be opened; the message says why and what to try."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: 0-based number of the frame in the source (counting skipped frames too).
        timestamp: seconds since the start of the source (from the container's timestamps when it has them).
        image: RGB uint8 [H, W, 3].
    """

    index: int
    timestamp: float
    image: np.ndarray


@dataclass(frozen=True)
class Sampling:
    """Which frames to analyse.

    Attributes:
        every: analyse every Nth frame (1 = all).
        fps: analyse at most this many frames per second of source time (None = no limit); combined with
            ``every``, both apply.
        start: skip frames before this time, seconds.
        end: stop at this time, seconds (None = to the end).
    """

    every: int = 1
    fps: float | None = None
    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise UsageError(f"every must be 1 or more (analyse every Nth frame), got {self.every}")
        if self.fps is not None and self.fps <= 0:
            raise UsageError(f"fps must be above 0, got {self.fps:g}")
        if self.start < 0:
            raise UsageError(f"start must be 0 or more seconds, got {self.start:g}")
        if self.end is not None and self.end <= self.start:
            raise UsageError(f"end ({self.end:g} s) must come after start ({self.start:g} s)")


class FrameSource(Protocol):
    """Anything the video pipeline can read: iterate for ``Frame``s, then ``close``."""

    name: str
    #: nominal frames per second (None when unknown, e.g. some streams).
    fps: float | None
    #: expected number of frames analysed after sampling (None when unknown: cameras, streams).
    expected_frames: int | None
    #: human-readable notes on frames that could not be read; empty when all went well.
    problems: list[str]

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class _Problems(list):
    """A list of problem lines that keeps the first ``limit`` (a stream that drops every minute for a day must
    not grow memory) and counts the rest in a last line."""

    limit = 50

    def append(self, line: str) -> None:
        if len(self) < self.limit:
            super().append(line)
            return
        more = int(self[-1].split()[1]) + 1 if len(self) > self.limit else 1
        if len(self) > self.limit:
            self.pop()
        super().append(f"... {more} more problem lines (only the first {self.limit} are kept)")


@dataclass
class _Sampler:
    sampling: Sampling
    _last_t: float | None = None
    _seen: int = 0

    def past_end(self, t: float) -> bool:
        """Whether time ``t`` is at or after the window's end (the source can stop)."""
        return self.sampling.end is not None and t >= self.sampling.end

    def wants(self, t: float) -> bool:
        """Whether the frame at time ``t`` is analysed (call once per frame, in order)."""
        s = self.sampling
        if t < s.start - 1e-6:
            return False
        self._seen += 1
        if (self._seen - 1) % s.every:
            return False
        if s.fps is not None and self._last_t is not None and t - self._last_t < 1.0 / s.fps - 1e-6:
            return False
        self._last_t = t
        return True


class CaptureSource:
    """Frames from ``cv2.VideoCapture``: a video file, a camera index or a stream URL.

    Timestamps come from the container (``CAP_PROP_POS_MSEC``; correct for variable frame rate files) and fall
    back to ``index / fps`` when the container gives none; cameras and streams use the wall clock since opening.
    OpenCV applies rotation metadata (phone videos) so frames come out upright.

    Args:
        target: a file path, a camera index, or a stream URL.
        sampling: frame stepping and time window.
        reconnect: for cameras and streams, how many times to try reopening after a read fails (a dropped
            network stream) before ending the run; files end at their first unreadable frame.
        max_pixels: frames larger than this (width x height, from the container) are refused before any is
            decoded: each decoded frame is held a few times over in the pipeline, so an 8000 x 8000 video needed
            4 GB. The default admits 8K video (33 Mpx).
    """

    def __init__(self, target: str | Path | int, sampling: Sampling = Sampling(), reconnect: int = 3,
                 max_pixels: int = MAX_FRAME_PIXELS) -> None:
        self.target = target
        self.sampling = sampling
        self.reconnect = reconnect
        self.url = not isinstance(target, int) and str(target).lower().startswith(STREAM_SCHEMES)
        self.live = isinstance(target, int) or self.url
        # a URL's user:password never reaches logs, messages or the summary
        self.name = f"camera {target}" if isinstance(target, int) else re.sub(r"//[^/@]*@", "//***@", str(target))
        self.problems = _Problems()
        self._check_target()
        self._cap = self._open()
        w, h = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if w * h > max_pixels:
            self._cap.release()
            raise VideoOpenError(f"{self.name}: frames are {w}x{h} = {w * h:,} pixels, more than the limit of "
                                 f"{max_pixels:,}; scale the video down first (e.g. ffmpeg -i IN -vf "
                                 "scale=3840:-2 OUT.mp4)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps: float | None = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else None
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not isinstance(target, int) else 0
        self.frame_count: int | None = count if count > 0 else None
        if self.url and self.frame_count:  # a finite file served over HTTP: it ends, it does not drop
            self.live = False
        self.expected_frames = self._expected(self.frame_count)

    def _check_target(self) -> None:
        if isinstance(self.target, int) or self.url:
            return
        path = Path(self.target)
        if not path.exists():
            raise VideoOpenError(f"{path}: file not found")
        if path.is_dir():
            raise VideoOpenError(f"{path}: is a folder; for a folder of frames use FolderSource (CLI: --sequence)")
        if not path.is_file():  # a pipe would block the decoder, a device never ends
            raise VideoOpenError(f"{path}: not a regular file (a named pipe, device or socket); only files are read")
        if path.stat().st_size == 0:
            raise VideoOpenError(f"{path}: file is empty (0 bytes)")

    def _open(self) -> cv2.VideoCapture:
        if isinstance(self.target, int):  # a missing camera makes every OpenCV backend log; our error says it once
            level = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
            try:
                cap = cv2.VideoCapture(self.target)
            finally:
                cv2.utils.logging.setLogLevel(level)
        else:
            cap = cv2.VideoCapture(str(self.target))
        if not cap.isOpened():
            cap.release()
            if isinstance(self.target, int):
                raise VideoOpenError(f"camera {self.target} could not be opened: check that it is connected, not in "
                                     "use by another program, and that this user may access it (try --camera 1)")
            if self.url:
                raise VideoOpenError(f"stream {self.name} could not be opened: check the URL, the network and "
                                     "any credentials in the URL")
            if _audio_only(self.target):
                raise VideoOpenError(f"{self.target}: has sound but no video track (an audio-only file); there are "
                                     "no faces to analyse")
            raise VideoOpenError(f"{self.target}: not a video OpenCV can decode (corrupt, truncated header, or an "
                                 "unsupported codec); try converting it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")
        if self.sampling.start > 0 and not self.live:
            cap.set(cv2.CAP_PROP_POS_MSEC, self.sampling.start * 1000.0)
        return cap

    def _expected(self, count: int | None) -> int | None:
        if count is None:
            return None
        s, fps = self.sampling, self.fps or 30.0
        first = int(s.start * fps)
        last = count if s.end is None else min(count, int(np.ceil(s.end * fps)))
        n = max(0, last - first)
        n = -(-n // s.every)
        if s.fps is not None:
            n = min(n, int(np.ceil((last - first) / fps * s.fps)))
        return n

    def __iter__(self) -> Iterator[Frame]:
        sampler = _Sampler(self.sampling)
        start_clock = time.monotonic()
        index = int(round(self._cap.get(cv2.CAP_PROP_POS_FRAMES) or 0)) if not self.live else 0
        last_t = -1.0
        retries = 0
        while True:
            if not self._cap.grab():
                if self.live and retries < self.reconnect:
                    retries += 1
                    self.problems.append(f"{self.name}: read failed after frame {index}; reconnecting "
                                         f"({retries}/{self.reconnect})")
                    log.warning(self.problems[-1])
                    self._cap.release()
                    time.sleep(min(2.0, 0.5 * retries))
                    try:
                        self._cap = self._open()
                    except VideoOpenError as e:
                        self.problems.append(str(e))
                    continue
                self._note_end(index, last_t)
                return
            retries = 0
            t = self._timestamp(index, last_t, start_clock)
            last_t = t
            index += 1
            if sampler.past_end(t):
                return
            if not sampler.wants(t):
                continue
            ok, bgr = self._cap.retrieve()
            if not ok or bgr is None:
                self.problems.append(f"{self.name}: frame {index - 1} could not be decoded; skipped")
                continue
            yield Frame(index - 1, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 else
                        cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB))

    def _timestamp(self, index: int, last_t: float, start_clock: float) -> float:
        if self.live:
            return time.monotonic() - start_clock
        ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        t = ms / 1000.0 if ms and np.isfinite(ms) and ms > 0 else None
        if t is None or t <= last_t:  # no container time (or one that does not advance): use the frame rate
            t = index / (self.fps or 30.0)
            if t <= last_t:
                t = last_t + 1.0 / (self.fps or 30.0)
        return t

    def _note_end(self, index: int, last_t: float) -> None:
        """Record how decoding ended: a dropped stream, or a file that stopped before its end. A file's frame count
        is the container's duration x its frame rate, an estimate for variable-frame-rate files: decoding that
        reached the duration (within three frames or 0.25 s) ended with the file even when fewer frames came."""
        if self.live:
            self.problems.append(f"{self.name}: stream ended or dropped after frame {index}")
        elif (self.frame_count is not None and index < self.frame_count - 1 and self.sampling.end is None
              and last_t < self.frame_count / (self.fps or 30.0) - max(0.25, 3.0 / (self.fps or 30.0))):
            self.problems.append(f"{self.name}: decoding stopped at frame {index} of {self.frame_count} announced "
                                 "by the file (truncated or corrupt); results cover the frames that decoded")
        if self.problems:
            log.warning(self.problems[-1])

    def close(self) -> None:
        """Release the file, camera or stream."""
        self._cap.release()


def _audio_only(path) -> bool:
    """Whether a file that OpenCV cannot open as video is a container with sound and no picture (PyAV, when
    installed, reads the container's streams; without it the generic message stays)."""
    try:
        import av

        with av.open(str(path)) as c:
            return bool(c.streams.audio) and not c.streams.video
    except Exception:  # noqa: BLE001 - not readable by PyAV either: the caller's message applies
        return False


class FolderSource:
    """A sequence of image files (a folder of frames, in name order) as a video at ``fps`` frames per second.

    A frame that cannot be read is skipped and noted in ``problems``; the sequence goes on.
    """

    def __init__(self, files: list[Path], fps: float = 30.0, sampling: Sampling = Sampling(),
                 name: str = "image sequence") -> None:
        if not files:
            raise VideoOpenError(f"{name}: no image files")
        if fps <= 0:
            raise UsageError(f"fps must be above 0, got {fps:g}")
        self.files, self.fps, self.sampling, self.name = list(files), float(fps), sampling, name
        self.problems = _Problems()
        self.expected_frames = None

    def __iter__(self) -> Iterator[Frame]:
        from openfer.io.images import ImageReadError, read_image

        sampler = _Sampler(self.sampling)
        for i, path in enumerate(self.files):
            t = i / self.fps
            if sampler.past_end(t):
                return
            if not sampler.wants(t):
                continue
            try:
                yield Frame(i, t, read_image(path))
            except ImageReadError as e:
                self.problems.append(f"{path}: {e}; skipped")
                log.warning(self.problems[-1])

    def close(self) -> None:
        """Nothing to release."""


class ArraySource:
    """Frames from memory (tests, or frames your own code decodes): an iterable of RGB uint8 arrays.

    Args:
        frames: RGB uint8 [H, W, 3] arrays, or ``Frame`` objects (used as they are).
        fps: frames per second for the timestamps of plain arrays.
    """

    def __init__(self, frames, fps: float = 30.0, name: str = "arrays", expected_frames: int | None = None) -> None:
        self._frames, self.fps, self.name = frames, float(fps), name
        self.problems = _Problems()
        self.expected_frames = expected_frames

    def __iter__(self) -> Iterator[Frame]:
        for i, f in enumerate(self._frames):
            yield f if isinstance(f, Frame) else Frame(i, i / self.fps, f)

    def close(self) -> None:
        """Nothing to release."""


def find_videos(folder: str | Path, recursive: bool = True) -> list[Path]:
    """The video files in a folder (by their ending; hidden names skipped), in a stable order."""
    folder = Path(folder)
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(f for f in found if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES and not f.name.startswith("."))


def split_video_inputs(items: list[str], recursive: bool = True) -> tuple[list[Path], list[str]]:
    """The video files among files, folders and globs (folders and globs searched for them), and the items left
    for the photo path (folders stay there too: their photos are analysed as well). ``openfer analyze`` and
    ``openfer.scale.analyze`` split their inputs with this, so both see the same videos and photos."""
    import glob as globlib

    videos: list[Path] = []
    rest: list[str] = []
    for item in items:
        p = Path(item)
        if str(item).lower().startswith(STREAM_SCHEMES):
            videos.append(p)
        elif p.is_dir():
            videos += find_videos(p, recursive)
            rest.append(item)
        elif globlib.has_magic(item) and not p.exists():
            found = sorted(Path(m) for m in globlib.glob(item) if Path(m).suffix.lower() in VIDEO_SUFFIXES)
            videos += found
            if len(found) < len(globlib.glob(item)):
                rest.append(item)
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            videos.append(p)
        else:
            rest.append(item)
    return list(dict.fromkeys(videos)), rest


def is_video_input(item: str) -> bool:
    """Whether a CLI input is a video file (by its ending) or a stream URL, not an image."""
    return str(item).lower().startswith(STREAM_SCHEMES) or Path(item).suffix.lower() in VIDEO_SUFFIXES


def open_source(target: str | Path | int | list[Path], sampling: Sampling = Sampling(),
                sequence_fps: float = 30.0, max_pixels: int = MAX_FRAME_PIXELS) -> FrameSource:
    """Open a video file, camera index, stream URL, or a list of frame files (an image sequence); video frames
    larger than ``max_pixels`` are refused (``CaptureSource``).

    Raises:
        VideoOpenError: the input cannot be opened (the message says why).
    """
    if isinstance(target, list):
        return FolderSource(target, fps=sequence_fps, sampling=sampling)
    return CaptureSource(target, sampling, max_pixels=max_pixels)
