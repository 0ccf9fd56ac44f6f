"""One webcam stream: JPEG/PNG frames in, tracked faces with expressions out (one ``FaceFollower`` per stream)."""

from __future__ import annotations

import time
from typing import Any

from openfer.analyzer import Analyzer
from openfer.io.images import ReducedImage, read_image_reduced
from openfer.service.work import detection_side
from openfer.types import ImageResult


class StreamSession:
    """Analyses the frames of one live stream in order, giving each person a stable ``face_id``.

    Frames are timed by their arrival, so the tracker copes with a browser that sends at a varying rate. As for
    video files, the detector runs on every ``detect_every``-th frame (and when a face is lost) and faces are
    followed by optical flow between, so the page gets more frames per second (it sends the next frame when the
    last result arrives); a followed face is classified again when its face crop looks different or every
    ``DEFAULT_CLASSIFY_EVERY`` frames (``openfer.track.Reclassifier``), as for video files. A frame larger than the
    detector needs (a 4K camera, a client that sends full-size frames) is decoded at 1/k size, as uploads are;
    faces are answered in the frame's own pixels.

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

        analyzer = analyzer.for_video()  # one detection pass per frame, as for video files
        self.analyzer, self.max_pixels = analyzer, max_pixels
        loading = preload()
        if loading is not None:  # the tracker's library must be in before the first frame is timed: its second of
            loading.join()  # imports would read as a pause longer than lost_seconds, and ids would restart
        self.tracker = FaceTracker(lost_seconds=1.0)
        self.follower = FaceFollower(analyzer.detector, self.tracker, detect_every or DEFAULT_DETECT_EVERY)
        self.reclassifier = Reclassifier(analyzer)
        self.frames = 0
        self._t0 = time.monotonic()
        self._factor = 1

    def analyze(self, data: bytes) -> dict[str, Any]:
        """The result message for one encoded frame (blocking; run it in a worker thread).

        Raises:
            openfer.io.images.ImageReadError: the bytes are not a readable image.
        """
        t = time.perf_counter()
        image = self._decode(data)
        now = time.monotonic() - self._t0
        faces = self.follower.step(image.rgb, now)
        faces = self.reclassifier.classify_frames([(image.rgb, faces)])[0]
        if image.factor > 1:
            faces = [f.scaled(image.factor) for f in faces]
        result = ImageResult(faces, width=image.width, height=image.height, frame=self.frames,
                             timestamp=now)
        self.frames += 1
        return {"type": "result", **result.to_dict(), "ms": round((time.perf_counter() - t) * 1000, 1)}

    def _decode(self, data: bytes) -> ReducedImage:
        """The frame at the size detection needs; the follower's detector is set for that size."""
        image = read_image_reduced(data, detection_side(self.analyzer), max_pixels=self.max_pixels)
        if image.factor != self._factor:
            detector = self.analyzer.detector
            self.follower.detector = detector.for_reduced(image.factor) if image.factor > 1 else detector
            self._factor = image.factor
        return image
