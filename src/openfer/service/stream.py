"""One webcam stream: JPEG/PNG frames in, tracked faces with expressions out (one ``FaceFollower`` per stream)."""

from __future__ import annotations

import time
from typing import Any

from openfer.analyzer import Analyzer
from openfer.io.images import read_image


class StreamSession:
    """Analyses the frames of one live stream in order, giving each person a stable ``track_id``.

    Frames are timed by their arrival, so the tracker copes with a browser that sends at a varying rate. As for
    video files, the detector runs on every ``detect_every``-th frame (and when a face is lost) and faces are
    followed by optical flow between, so the page gets more frames per second (it sends the next frame when the
    last result arrives); a followed face is classified again when its face crop looks different or every
    ``DEFAULT_CLASSIFY_EVERY`` frames (``openfer.track.Reclassifier``), as for video files.

    Args:
        analyzer: the shared detector + classifier.
        max_pixels: largest frame accepted (decoding guard).
        detect_every: detector on every this many frames (1: every frame).
    """

    def __init__(self, analyzer: Analyzer, max_pixels: int, detect_every: int | None = None) -> None:
        from openfer.track import FaceTracker
        from openfer.track.bytetrack import preload
        from openfer.track.follow import DEFAULT_DETECT_EVERY, FaceFollower
        from openfer.track.reclassify import Reclassifier

        self.analyzer, self.max_pixels = analyzer, max_pixels
        loading = preload()
        if loading is not None:  # the tracker's library must be in before the first frame is timed: its second of
            loading.join()  # imports would read as a pause longer than lost_seconds, and ids would restart
        self.tracker = FaceTracker(lost_seconds=1.0)
        self.follower = FaceFollower(analyzer.detector, self.tracker, detect_every or DEFAULT_DETECT_EVERY)
        self.reclassifier = Reclassifier(analyzer)
        self.frames = 0
        self._t0 = time.monotonic()

    def analyze(self, data: bytes) -> dict[str, Any]:
        """The result message for one encoded frame (blocking; run it in a worker thread).

        Raises:
            openfer.io.images.ImageReadError: the bytes are not a readable image.
        """
        t = time.perf_counter()
        rgb = read_image(data, max_pixels=self.max_pixels)
        faces = self.follower.step(rgb, time.monotonic() - self._t0)
        faces = self.reclassifier.classify_frames([(rgb, faces)])[0]
        self.frames += 1
        return {"type": "result", "frame": self.frames, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
                "faces": [f.to_dict() for f in faces], "ms": round((time.perf_counter() - t) * 1000, 1)}
