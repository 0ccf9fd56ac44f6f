"""Detect some frames, follow faces through the others: the video pipeline's fast path.

The face detector is most of the cost of a video frame (CenterFace: about 20 ms at 640x480 on a laptop core,
against about 1 ms to move a face with optical flow). ``FaceFollower`` runs it on every ``detect_every``-th frame
and whenever a followed face is lost, and moves the faces it found through the frames between with a
``FlowCarrier``; ByteTrack then gives every face its ``track_id`` as before.
"""

from __future__ import annotations

import dataclasses

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
#: Every this many scheduled detections, one runs on the whole frame at full size (the others are cheap: crops
#: around the followed faces and a 320-px copy for new faces). At 5 x 6 = 30 frames (1 s at 30 frames/s), a new
#: face too small for the 320-px copy (under about a tenth of the frame's height) waits at most that long. 3 halves
#: that wait; on a 1-face 640x480 clip it ran at 107 frames/s against 128 with 6 (docs/video.md).
DEFAULT_FULL_EVERY = 6
#: A scheduled detection while faces are followed looks for new faces on a copy of the frame shrunk to this longer
#: side (pixels): faces of about a tenth of the frame's height are still found...
_SCALED_SIDE = 320
#: ...and refreshes each followed face on a crop around it: the face's box grown by this share of its size on every
#: side...
_ROI_MARGIN = 0.5
#: ...shrunk where the face is larger than this (its shorter side, pixels): CenterFace's boxes and landmarks are as
#: good there, and a big face costs no more than a small one.
_ROI_FACE_PX = 96.0


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
        full_every: scheduled detections while faces are followed are cheap ones: each followed face is
            detected again on a crop around it, and new faces are looked for on a copy of the frame shrunk to 320 px
            a side (at 640x480 about 2.5x cheaper than a full detection for a few faces). Every ``full_every``-th
            of them, the first, and every detection after a loss run on the whole frame at full size. So a new face
            of about a tenth of the frame's height or more is found within ``detect_every`` frames, a smaller one
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
                 carrier: FlowCarrier | None = None, full_every: int = DEFAULT_FULL_EVERY) -> None:
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
        cheap = scheduled and self._scheduled + 1 < self.full_every and bool(self.carrier.faces)
        faces = self._refresh(image) if cheap else self.detector.detect(image)
        self._scheduled = self._scheduled + 1 if cheap else 0
        self.detections += 1
        self._since = 0
        return self._track(image, faces, timestamp, detected=True)

    def _refresh(self, image: np.ndarray) -> list[Face]:
        """A cheap scheduled detection: every followed face detected again on a crop around it (``_roi``), and new
        faces (those not overlapping a refreshed one) from a copy of the frame shrunk to ``_SCALED_SIDE``."""
        refreshed = [f for face in self.carrier.faces if (f := self._roi(image, face)) is not None]
        h, w = image.shape[:2]
        side = min(max(h, w), getattr(self.detector, "max_side", None) or max(h, w))
        scale = _SCALED_SIDE / max(h, w) if side > _SCALED_SIDE * 1.25 else 1.0
        new = [f for f in self._detect(image, scale) if all(_overlap(f.box, r.box) < 0.3 for r in refreshed)]
        if new and scale < 1.0:
            # a newcomer: detect it on the whole frame, where its score (and so whether the tracker starts a
            # track for it at once, rather than leaving it without an id for a few frames) is as a full detection's
            return self.detector.detect(image)
        return sorted(refreshed + new, key=lambda f: -f.score)

    def _roi(self, image: np.ndarray, face: Face) -> Face | None:
        """``face`` (placed on the frame before) detected again on a crop of ``image`` around it; None when the
        detector finds nothing there that overlaps it."""
        h, w = image.shape[:2]
        x1, y1, x2, y2 = face.box
        m = _ROI_MARGIN * max(x2 - x1, y2 - y1)
        # the crop starts on the detector's 32-px grid, so that unshrunk its outputs fall where the full frame's do
        cx1, cy1 = max(0, int(x1 - m) // 32 * 32), max(0, int(y1 - m) // 32 * 32)
        cx2, cy2 = min(w, int(np.ceil(x2 + m))), min(h, int(np.ceil(y2 + m)))
        if cx2 - cx1 < 16 or cy2 - cy1 < 16:
            return None
        crop = image[cy1:cy2, cx1:cx2]
        scale = min(1.0, _ROI_FACE_PX / max(1.0, min(x2 - x1, y2 - y1)))
        found = self._detect(crop, scale)
        best = max(found, key=lambda f: _overlap(f.box, (x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1)), default=None)
        if best is None or _overlap(best.box, (x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1)) < 0.3:
            return None
        bx1, by1, bx2, by2 = best.box
        return dataclasses.replace(best, box=(bx1 + cx1, by1 + cy1, bx2 + cx1, by2 + cy1),
                                   landmarks=best.landmarks + np.array([cx1, cy1], np.float32))

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


def _overlap(a, b) -> float:
    """Intersection over union of two boxes (x1, y1, x2, y2)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
