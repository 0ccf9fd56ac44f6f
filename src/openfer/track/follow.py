"""Detect some frames, follow faces through the others: the video pipeline's fast path.

The face detector is most of the cost of a video frame (CenterFace: about 20 ms at 640x480 on a laptop core,
against about 1 ms to move a face with optical flow). ``FaceFollower`` runs it on every ``detect_every``-th frame
and whenever a followed face is lost, and moves the faces it found through the frames between with a
``FlowCarrier``; ByteTrack then gives every face its ``track_id`` as before.
"""

from __future__ import annotations

import cv2
import numpy as np

from openfer.detect import Detector
from openfer.errors import UsageError
from openfer.track.bytetrack import FaceTracker
from openfer.track.flow import FlowCarrier
from openfer.types import Face

#: Detector every this many frames by default for videos (``--detect-every``): measured in docs/video.md, new
#: faces are found within this many frames and the carried boxes stay within a few pixels of detected ones.
DEFAULT_DETECT_EVERY = 5
#: On a scheduled detection, the frame is shrunk so the smallest followed face is still this tall (pixels)...
_SCALED_FACE_PX = 64.0
#: ...but not below this longer side (pixels): new faces of a fifth of the frame's height are still found.
_SCALED_MIN_SIDE = 320


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
        full_every: scheduled detections while faces are followed run on a copy shrunk so the smallest followed
            face stays 64 px tall (not below 320 px a side; up to 4x cheaper for big faces); every
            ``full_every``-th of them, the first, and every detection after a loss run at full size. So a new face
            at least a third of the followed ones' size is found within ``detect_every`` frames, a smaller one
            within ``detect_every * full_every``. 1: always full size (also when the detector upscales itself).

    Example:
        >>> import skimage.data
        >>> from openfer.detect import load_detector
        >>> follower = FaceFollower(load_detector("centerface", max_shrink=None), detect_every=5)
        >>> frame = skimage.data.astronaut()
        >>> [[f.track_id for f in follower.step(frame, t / 25)] for t in range(3)], follower.detections
        ([[0], [0], [0]], 1)
    """

    def __init__(self, detector: Detector, tracker: FaceTracker | None = None, detect_every: int = DEFAULT_DETECT_EVERY,
                 carrier: FlowCarrier | None = None, full_every: int = 3) -> None:
        if detect_every < 1:
            raise UsageError(f"detect_every must be at least 1 (1: detect every frame), got {detect_every}")
        if full_every < 1:
            raise UsageError(f"full_every must be at least 1 (1: always detect at full size), got {full_every}")
        self.detector = detector
        self.tracker = tracker or FaceTracker()
        self.detect_every = detect_every
        self.carrier = carrier or FlowCarrier()
        self.full_every = 1 if getattr(detector, "upscale", False) else full_every
        self._scheduled = 0  # scheduled detections since the last full-size one
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
        scheduled = self._since is not None
        if self.detect_every > 1 and scheduled and self._since + 1 < self.detect_every:
            moved, uncertain = self.carrier.carry(image)
            if not uncertain:
                self._since += 1
                return self._track(image, moved, timestamp, detected=False)
            scheduled = False
        self._since = None  # if the detector fails, the next frame tries again
        scale = self._scale(image) if scheduled and self._scheduled + 1 < self.full_every else 1.0
        faces = self._detect(image, scale)
        self._scheduled = self._scheduled + 1 if scale < 1.0 else 0
        self.detections += 1
        self._since = 0
        return self._track(image, faces, timestamp, detected=True)

    def _scale(self, image: np.ndarray) -> float:
        """How much a scheduled detection may shrink ``image``: the smallest followed face stays ``_SCALED_FACE_PX``
        tall, the longer side at least ``_SCALED_MIN_SIDE``; 1 when nothing is followed."""
        faces = self.carrier.faces
        if not faces:
            return 1.0
        smallest = min(min(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in faces)
        side = min(max(image.shape[:2]), getattr(self.detector, "max_side", None) or max(image.shape[:2]))
        scale = max(_SCALED_FACE_PX / max(smallest, 1.0), _SCALED_MIN_SIDE / side) * side / max(image.shape[:2])
        return scale if scale < 0.8 else 1.0

    def _detect(self, image: np.ndarray, scale: float) -> list[Face]:
        """The detector's faces in ``image``, found on a copy shrunk by ``scale`` and mapped back."""
        if scale >= 1.0:
            return self.detector.detect(image)
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        sx, sy = image.shape[1] / small.shape[1], image.shape[0] / small.shape[0]
        return [f.scaled(sx, sy) for f in self.detector.detect(small)]

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
        self._since = self._shape = None
        self._scheduled = 0
