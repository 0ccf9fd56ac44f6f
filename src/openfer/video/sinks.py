"""Frame sinks of the video pipeline: an annotated output video and a live preview window."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from openfer.errors import UsageError
from openfer.io.atomic import part_path, publish
from openfer.report.annotate import annotate
from openfer.types import Face

log = logging.getLogger(__name__)

#: Codec per output container (OpenCV's bundled FFmpeg encoders, no extra install).
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def h264_available() -> bool:
    """Whether PyAV (the [video] extra's decoder of supervision, FFmpeg inside) can encode H.264 here."""
    try:
        import av

        av.codec.Codec("libx264", "w")
        return True
    except Exception:  # noqa: BLE001 - no PyAV, or a build without libx264: OpenCV's MPEG-4 part 2 remains
        return False


class AnnotatedVideoWriter:
    """Writes each analysed frame with its faces drawn (box, track id, label; probability bars where they fit, see
    ``openfer.report.annotate.STYLES`` for ``style``) to a video file.

    ``.mp4``, ``.m4v`` and ``.mov`` are H.264 (PyAV's FFmpeg: plays in every browser) with the sound of
    ``audio_from`` (the source video) from ``audio_start`` seconds on, re-encoded as AAC, so the annotated video
    plays with its sound in step; without PyAV they fall back to OpenCV's MPEG-4 part 2 without sound.
    ``.avi``/``.mkv`` are MJPEG (OpenCV). Frames are timed by their source timestamps when ``write`` gets them,
    else at ``fps``. The size is taken from the first frame; later frames of another size are resized. The file is
    written under a temporary name and renamed to ``path`` by ``close`` (``openfer.io.atomic``).
    """

    def __init__(self, path: str | Path, fps: float, style: str = "auto", audio_from: str | Path | None = None,
                 audio_start: float = 0.0) -> None:
        self.path = Path(path)
        fourcc = _FOURCC.get(self.path.suffix.lower())
        if fourcc is None:
            raise UsageError(f"annotated video must end in one of {', '.join(sorted(_FOURCC))}, got {self.path.name}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps, self.style, self._fourcc = max(1.0, float(fps)), style, fourcc
        self.h264 = fourcc == "mp4v" and h264_available()
        self.audio_from, self.audio_start = audio_from, float(audio_start)
        self._writer = None
        self._size: tuple[int, int] | None = None
        self._t0: float | None = None
        self._last_pts = -1
        self.frames = 0
        self.audio = False  #: whether the source's sound was written

    def write(self, image: np.ndarray, faces: list[Face], timestamp: float | None = None) -> None:
        """Draw ``faces`` on a copy of RGB ``image`` and append it (at ``timestamp`` seconds of the source)."""
        out = annotate(image, faces, self.style)
        if self._writer is None:
            self._size = (out.shape[1] // 2 * 2, out.shape[0] // 2 * 2) if self.h264 else (out.shape[1], out.shape[0])
            self._open()
        if (out.shape[1], out.shape[0]) != self._size:
            out = cv2.resize(out, self._size, interpolation=cv2.INTER_AREA)
        if self.h264:
            self._write_h264(out, timestamp)
        else:
            self._writer.write(cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def _open(self) -> None:
        part = part_path(self.path)
        if not self.h264:
            self._writer = cv2.VideoWriter(str(part), cv2.VideoWriter_fourcc(*self._fourcc), self.fps, self._size)
            if not self._writer.isOpened():
                raise OSError(f"cannot write video {self.path} with codec {self._fourcc}; try an .avi file")
            return
        from fractions import Fraction

        import av

        self._writer = av.open(str(part), "w", format="mp4", options={"movflags": "+faststart"})
        self._video = self._writer.add_stream("libx264", rate=Fraction(round(self.fps * 1000), 1000))
        self._video.width, self._video.height = self._size
        self._video.pix_fmt = "yuv420p"
        self._video.codec_context.time_base = Fraction(1, 1000)  # frames timed in milliseconds of the source
        self._video.options = {"crf": "23", "preset": "veryfast"}
        self._audio_in = self._audio_out = None
        if self.audio_from is not None:
            try:
                src = av.open(str(self.audio_from))
                if src.streams.audio:
                    ain = src.streams.audio[0]
                    self._audio_in = src
                    self._audio_out = self._writer.add_stream("aac", rate=ain.codec_context.sample_rate or 44100,
                                                              layout="stereo" if (ain.codec_context.channels or 1) > 1
                                                              else "mono")
                else:
                    src.close()
            except Exception as e:  # noqa: BLE001 - a source whose sound cannot be read still gets its video
                log.warning("%s: sound not copied (%s)", self.audio_from, e)

    def _write_h264(self, rgb: np.ndarray, timestamp: float | None) -> None:
        from fractions import Fraction

        import av

        if timestamp is None:
            timestamp = self.audio_start + self.frames / self.fps
        if self._t0 is None:
            self._t0 = self.audio_start if self.audio_from is not None else float(timestamp)
        pts = max(self._last_pts + 1, int(round((timestamp - self._t0) * 1000)))
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        for packet in self._video.encode(frame):
            self._writer.mux(packet)

    def _copy_audio(self, end_s: float) -> None:
        """The source's sound from ``audio_start`` to ``end_s`` (seconds of the source), re-encoded as AAC."""
        import av

        ain = self._audio_in.streams.audio[0]
        out = self._audio_out
        resampler = av.AudioResampler(format=out.codec_context.format.name, layout=out.codec_context.layout.name,
                                      rate=out.codec_context.sample_rate)
        written = 0
        for frame in self._audio_in.decode(ain):
            if frame.time is None or frame.time + frame.samples / frame.sample_rate <= self.audio_start:
                continue
            if frame.time >= end_s:
                break
            for f in resampler.resample(frame):
                f.pts = written
                written += f.samples
                for packet in out.encode(f):
                    self._writer.mux(packet)
        for packet in out.encode(None):
            self._writer.mux(packet)
        self.audio = written > 0

    def close(self) -> None:
        """Finish the file (a video with the frames written so far, and its sound up to the last of them)."""
        if self._writer is None:
            return
        if self.h264:
            for packet in self._video.encode(None):
                self._writer.mux(packet)
            if self._audio_in is not None:
                try:
                    self._copy_audio(self._t0 + (self._last_pts + 1000 / self.fps) / 1000)
                except Exception as e:  # noqa: BLE001 - the video is kept without its sound
                    log.warning("%s: sound not copied (%s)", self.audio_from, e)
                finally:
                    self._audio_in.close()
            self._writer.close()
        else:
            self._writer.release()
        self._writer = None
        publish(part_path(self.path), self.path)


class PreviewWindow:
    """Shows annotated frames in a window as they are analysed; ``q`` or Esc asks the run to stop.

    Raises:
        RuntimeError: no display is available (e.g. over SSH or in a container) or OpenCV was built without GUI.
    """

    def __init__(self, title: str = "openfer") -> None:
        self.title = title
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            # OpenCV's Qt backend aborts the whole process without a display; say so before touching it
            raise UsageError("--preview needs a display (DISPLAY is not set: no desktop session, SSH without -X, or "
                             "a container); write --annotate out.mp4 instead")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise UsageError("--preview needs a display and an OpenCV build with GUI support (opencv-python, not "
                             f"-headless); write --annotate out.mp4 instead ({str(e).strip()[:120]})") from None

    def show(self, image: np.ndarray, faces: list[Face]) -> bool:
        """Display one frame; False when the user pressed q or Esc."""
        cv2.imshow(self.title, cv2.cvtColor(annotate(image, faces), cv2.COLOR_RGB2BGR))
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        """Close the window."""
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass
