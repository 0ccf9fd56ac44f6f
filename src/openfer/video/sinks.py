"""Frame sinks of the video pipeline: an annotated output video and a live preview window."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

from openfer.errors import UsageError
from openfer.io.atomic import part_path, publish
from openfer.report.annotate import annotate
from openfer.types import Face

#: Codec per output container (OpenCV's bundled FFmpeg encoders, no extra install).
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class AnnotatedVideoWriter:
    """Writes each analysed frame with its faces drawn (box, track id, label; probability bars where they fit, see
    ``openfer.report.annotate.STYLES`` for ``style``) to a video file.

    The output has one frame per analysed frame at ``fps`` (the analysed rate, so it plays at real speed when
    frames are stepped). The size is taken from the first frame; later frames of another size are resized. The
    file is written under a temporary name and renamed to ``path`` by ``close`` (``openfer.io.atomic``).
    """

    def __init__(self, path: str | Path, fps: float, style: str = "auto") -> None:
        self.path = Path(path)
        fourcc = _FOURCC.get(self.path.suffix.lower())
        if fourcc is None:
            raise UsageError(f"annotated video must end in one of {', '.join(sorted(_FOURCC))}, got {self.path.name}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps, self.style, self._fourcc = max(1.0, float(fps)), style, fourcc
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, image: np.ndarray, faces: list[Face]) -> None:
        """Draw ``faces`` on a copy of RGB ``image`` and append it."""
        out = annotate(image, faces, self.style)
        if self._writer is None:
            self._size = (out.shape[1], out.shape[0])
            self._writer = cv2.VideoWriter(str(part_path(self.path)), cv2.VideoWriter_fourcc(*self._fourcc), self.fps,
                                           self._size)
            if not self._writer.isOpened():
                raise OSError(f"cannot write video {self.path} with codec {self._fourcc}; try an .avi file")
        if (out.shape[1], out.shape[0]) != self._size:
            out = cv2.resize(out, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        """Finish the file (a video with the frames written so far)."""
        if self._writer is not None:
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
