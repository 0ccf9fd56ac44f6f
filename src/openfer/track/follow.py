"""Detect some frames, follow faces through the others: the video pipeline's fast path.

The face detector is most of the cost of a video frame (CenterFace: about 20 ms at 640x480 on a laptop core,
against about 1 ms to move a face with optical flow). ``FaceFollower`` runs it on every ``detect_every``-th frame
and whenever a followed face is lost, and moves the faces it found through the frames between with a
``FlowCarrier``; ByteTrack then gives every face its ``track_id`` as before.
"""

from __future__ import annotations

import numpy as np

from openfer.detect import Detector
from openfer.errors import UsageError
from openfer.track.bytetrack import FaceTracker
from openfer.track.flow import FlowCarrier
from openfer.types import Face

#: Detector every this many frames by default for videos (``--detect-every``): measured in docs/video.md, new
#: faces are found within this many frames and the carried boxes stay within a few pixels of detected ones.
DEFAULT_DETECT_EVERY = 5


class FaceFollower:
    """Faces of consecutive frames with stable ids, from a detector run only on some of them.

    Args:
        detector: finds faces on detection frames.
        tracker: gives ``track_id``s (default: a new ``FaceTracker``).
        detect_every: run the detector on the first frame and then every this many frames; frames between get the
            faces of the frame before, moved by optical flow. 1 detects every frame (the exact, slow behaviour).
            Higher is faster, but a face that enters the picture waits up to ``detect_every - 1`` frames to be
            found, and boxes drift a little between detections.
        carrier: moves faces between detections (default: a ``FlowCarrier``). When it loses a face (turned
            away, hidden, leaving the frame) the detector runs on that frame at once.

    Example:
        >>> import skimage.data
        >>> from openfer.detect import load_detector
        >>> follower = FaceFollower(load_detector("centerface", max_shrink=None), detect_every=5)
        >>> frame = skimage.data.astronaut()
        >>> [[f.track_id for f in follower.step(frame, t / 25)] for t in range(3)], follower.detections
        ([[0], [0], [0]], 1)
    """

    def __init__(self, detector: Detector, tracker: FaceTracker | None = None, detect_every: int = DEFAULT_DETECT_EVERY,
                 carrier: FlowCarrier | None = None) -> None:
        if detect_every < 1:
            raise UsageError(f"detect_every must be at least 1 (1: detect every frame), got {detect_every}")
        self.detector = detector
        self.tracker = tracker or FaceTracker()
        self.detect_every = detect_every
        self.carrier = carrier or FlowCarrier()
        self._since: int | None = None  # frames since the last detection; None: detect on the next frame
        self._shape: tuple[int, ...] | None = None
        #: frames the detector ran on, and frames in all (for the run's statistics)
        self.detections = 0
        self.frames = 0

    def step(self, image: np.ndarray, timestamp: float | None = None) -> list[Face]:
        """This frame's faces (RGB uint8 [H, W, 3]), with ``track_id``; ``timestamp`` in seconds as for
        ``FaceTracker.update``. A detector error propagates; call ``missed`` for that frame then."""
        self.frames += 1
        if image.shape[:2] != self._shape:  # a stream that changes its frame size: nothing to follow across it
            self._since, self._shape = None, image.shape[:2]
        if self.detect_every > 1 and self._since is not None and self._since + 1 < self.detect_every:
            moved, uncertain = self.carrier.carry(image)
            if not uncertain:
                self._since += 1
                return self._track(image, moved, timestamp, detected=False)
        self._since = None  # if the detector fails, the next frame tries again
        faces = self.detector.detect(image)
        self.detections += 1
        self._since = 0
        return self._track(image, faces, timestamp, detected=True)

    def _track(self, image: np.ndarray, faces: list[Face], timestamp: float | None, detected: bool) -> list[Face]:
        tracked = self.tracker.update(faces, timestamp)
        if detected and self.detect_every > 1:
            self.carrier.start(image, tracked)
        return tracked

    def missed(self, timestamp: float | None = None) -> list[Face]:
        """A frame the detector failed on: tracks age as for a frame without faces, and the next frame detects."""
        self._since = None
        return self.tracker.update([], timestamp)

    def reset(self) -> None:
        """Forget every face and track (ids restart from 0): call between unrelated videos."""
        self.tracker.reset()
        self.carrier.reset()
        self._since = None
