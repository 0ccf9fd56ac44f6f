"""Classify a followed face again only when it may have changed: the classifier's share of a video frame's cost.

Once faces are followed between detections (``FaceFollower``), classification is as costly per frame as
detection (the default model: about 4 ms per face at batch 8 against about 4 ms of detection per frame at 640x480
with ``detect_every=5``). A face seen a moment ago with the same look gets the same probabilities, so
``Reclassifier`` classifies a tracked face again only when its aligned crop looks different from the crop it was
last classified on, or when ``classify_every`` frames have passed; the frames between get that classification
again. Every frame still gets its rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from openfer.errors import UsageError
from openfer.types import Face

#: Classify a followed face at least every this many frames by default (``--classify-every``; 1: every frame).
DEFAULT_CLASSIFY_EVERY = 5
#: Default ``max_change``: mean absolute difference of two normalised 16x16 looks (``appearance``) above which a
#: face is classified again. Measured on generated clips (benchmarks/realtime.py quality, docs/video.md): a face
#: carried unchanged over a few frames stays below about 0.1; the same person going from neutral to smiling
#: passes it within the first frames of the change.
DEFAULT_MAX_CHANGE = 0.15
_LOOK_PX = 16


def appearance(crop: np.ndarray) -> np.ndarray:
    """A small look of an aligned face crop (uint8 [S, S] or [S, S, 3]): grey, 16x16, zero mean, unit spread
    (float32 [16, 16]), so that lighting changes of the whole face do not count as a new look."""
    grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey.astype(np.float32), (_LOOK_PX, _LOOK_PX), interpolation=cv2.INTER_AREA)
    small -= small.mean()
    return small / max(float(small.std()), 1.0)


@dataclass(eq=False)  # compared by identity: ``look`` is an array, and == on two of them has no truth value
class _Last:
    look: np.ndarray  # the face's appearance when it was last classified
    frame: int  # the frame (counted by this Reclassifier) it was classified on
    index: int  # its place in the model call of that frame's batch
    outputs: tuple = ()  # (probabilities [K], features [D] or None) of that classification


class Reclassifier:
    """``Analyzer.classify_frames`` for the frames of one video, reusing a tracked face's last classification
    while it looks the same.

    Args:
        analyzer: crops and classifies (its classifier, embedding and geometry settings are used as they are).
        every: classify a tracked face at least every this many frames; the frames between reuse its last
            probabilities (and features). 1 classifies every face on every frame (the exact, slower way).
            Higher saves more classifier time, but a change the look test misses (a subtle expression on a
            still face) shows up to ``every - 1`` frames late.
        max_change: a face whose ``appearance`` differs from the one it was last classified on by more than this
            (mean absolute difference of the normalised 16x16 looks) is classified at once. Lower classifies more
            often; 0 classifies on any change at all.

    Faces without a ``track_id`` are always classified. Geometry (``Analyzer(geometry=...)``) is estimated on every
    frame: only the classifier's outputs are reused.

    Example:
        >>> import skimage.data
        >>> from openfer import Analyzer
        >>> from openfer.detect import load_detector
        >>> from openfer.track import FaceTracker
        >>> analyzer = Analyzer(detector=load_detector("centerface", max_shrink=None))
        >>> frame = skimage.data.astronaut()
        >>> faces = FaceTracker().update(analyzer.detector.detect(frame), 0.0)
        >>> reclassifier = Reclassifier(analyzer, every=5)
        >>> out = reclassifier.classify_frames([(frame, faces)] * 3)
        >>> out[0][0].probabilities == out[2][0].probabilities, reclassifier.classified, reclassifier.faces
        (True, 1, 3)
    """

    def __init__(self, analyzer, every: int = DEFAULT_CLASSIFY_EVERY, max_change: float = DEFAULT_MAX_CHANGE) -> None:
        if every < 1:
            raise UsageError(f"classify every must be at least 1 (1: classify every face on every frame), got {every}")
        if max_change < 0:
            raise UsageError(f"max_change must be 0 or more, got {max_change}")
        self.analyzer = analyzer
        self.every = every
        self.max_change = max_change
        self._last: dict[int, _Last] = {}
        self._frame = 0
        #: faces classified by the model, and faces given probabilities in all (for the run's statistics)
        self.classified = 0
        self.faces = 0

    def classify_frames(self, frames: list[tuple[np.ndarray, list[Face]]]) -> list[list[Face]]:
        """Each frame's faces with expression and probabilities, as ``Analyzer.classify_frames``; frames must come
        in video order, each once."""
        an = self.analyzer
        if self.every == 1:
            out = an.classify_frames(frames)
            n = sum(len(faces) for _, faces in frames)
            self.classified += n
            self.faces += n
            return out
        crops = [an._crops(rgb, faces) if faces else None for rgb, faces in frames]
        # Decide first which faces the model sees (a track's later frames in this batch compare with the look it
        # will be classified on), then classify them in one call, then hand each reused face its source's outputs.
        todo: list[np.ndarray] = []
        plan: list[list[int | _Last]] = []  # per face: index into todo, or the _Last whose outputs it reuses
        made: list[_Last] = []  # classifications decided in this batch: outputs filled in after the model call
        for (_, faces), fc in zip(frames, crops):
            self._frame += 1
            row: list[int | _Last] = []
            for face, crop in zip(faces, fc if fc is not None else []):
                tid = face.track_id
                last = self._last.get(tid) if tid is not None else None
                look = appearance(crop) if tid is not None else None
                if last is None or self._frame - last.frame >= self.every or \
                        float(np.abs(look - last.look).mean()) > self.max_change:
                    row.append(len(todo))
                    if tid is not None:
                        self._last[tid] = _Last(look, self._frame, len(todo))
                        made.append(self._last[tid])
                    todo.append(crop)
                else:
                    row.append(last)
            plan.append(row)
        try:
            outputs = list(zip(*an._predict(np.stack(todo)))) if todo else []
        except BaseException:
            for tid in [t for t, e in self._last.items() if e in made]:
                del self._last[tid]  # never classified: these tracks are classified on their next frame
            raise
        for entry in made:
            entry.outputs = outputs[entry.index]
        for tid in [t for t, e in self._last.items() if self._frame - e.frame >= self.every]:
            del self._last[tid]  # due again (or gone): nothing to reuse
        self.classified += len(todo)
        result = []
        for (rgb, faces), row in zip(frames, plan):
            self.faces += len(faces)
            chosen = [outputs[i] if isinstance(i, int) else i.outputs for i in row]
            result.append(an._with_probs(an._with_geometry(rgb, faces), chosen) if faces else [])
        return result

    def reset(self) -> None:
        """Forget every track's last classification: call between unrelated videos."""
        self._last.clear()
        self._frame = 0

